//! LAPIC register map: offsets, x2APIC MSR numbers, LVT entries, bit
//! definitions (SDM vol. 3 §11.4.1 Table 11-1, §11.12.1.2 Table 11-6;
//! port of kvm_apicdef.h and the register tables of kvm_lapic.c).

/// Default IA32_APIC_BASE physical base (`APIC_DEFAULT_PHYS_BASE`).
pub const APIC_DEFAULT_PHYS_BASE: u64 = 0xfee0_0000;
/// Length of the MMIO page (`LAPIC_MMIO_LENGTH`).
pub const LAPIC_MMIO_LENGTH: u64 = 0x1000;
/// Size of the saved register page (`KVM_APIC_REG_SIZE`).
pub const KVM_APIC_REG_SIZE: usize = 0x400;
/// Version register value: integrated APIC version 0x14, 6 LVT entries.
pub const APIC_VERSION: u32 = 0x14 | ((LVT_COUNT as u32 - 1) << 16);
/// IA32_APIC_BASE MSR number.
pub const MSR_IA32_APICBASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE MSR number.
pub const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;
/// First x2APIC MSR.
pub const X2APIC_MSR_BASE: u32 = 0x800;
/// Last x2APIC MSR.
pub const X2APIC_MSR_LAST: u32 = 0x8ff;
/// CPUID.01H:ECX bit advertising TSC-deadline mode.
pub const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// CPUID.01H:ECX bit advertising x2APIC.
pub const CPUID_1_ECX_X2APIC: u32 = 1 << 21;
/// `APIC_BUS_CYCLE_NS`: one timer input clock per nanosecond.
pub const APIC_BUS_CYCLE_NS: u64 = 1;

/// Hyper-V synthetic EOI MSR.
pub const HV_X64_MSR_EOI: u32 = 0x4000_0070;
/// Hyper-V synthetic ICR MSR.
pub const HV_X64_MSR_ICR: u32 = 0x4000_0071;
/// Hyper-V synthetic TPR MSR.
pub const HV_X64_MSR_TPR: u32 = 0x4000_0072;

/// IA32_APIC_BASE bits.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// x2APIC enable (EXTD).
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// Global enable (EN).
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
pub(super) const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

pub(super) const LVT_MASKED: u32 = 1 << 16;
pub(super) const SVR_ENABLED: u32 = 1 << 8;
pub(super) const SVR_FOCUS_DISABLED: u32 = 1 << 9;
pub(super) const SVR_SUPPRESS_EOI_BROADCAST: u32 = 1 << 12;
pub(super) const LVR_DIRECTED_EOI: u32 = 1 << 24;
pub(super) const ICR_DELIVERY_STATUS: u32 = 1 << 12;

/// Number of LVT entries (timer, thermal, perf, LINT0, LINT1, error).
pub const LVT_COUNT: usize = 6;

/// ESR error bits (SDM §11.5.3).
pub mod esr {
    /// Send Illegal Vector.
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    /// Receive Illegal Vector.
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
    /// Illegal Register Address.
    pub const ILLEGAL_REGISTER: u32 = 1 << 7;
}

/// The local vector table entries, in register order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lvt {
    Timer,
    Thermal,
    PerfCounter,
    Lint0,
    Lint1,
    Error,
}

impl Lvt {
    pub(super) const ALL: [Lvt; LVT_COUNT] = [
        Self::Timer,
        Self::Thermal,
        Self::PerfCounter,
        Self::Lint0,
        Self::Lint1,
        Self::Error,
    ];

    /// MMIO offset of the entry.
    pub const fn offset(self) -> u32 {
        0x320 + 0x10 * self.index()
    }
    pub(super) const fn index(self) -> u32 {
        match self {
            Self::Timer => 0,
            Self::Thermal => 1,
            Self::PerfCounter => 2,
            Self::Lint0 => 3,
            Self::Lint1 => 4,
            Self::Error => 5,
        }
    }
    /// Writable bits (port of `apic_lvt_mask`).
    pub(super) const fn writable(self, tsc_deadline: bool) -> u32 {
        const LVT_MASK: u32 = LVT_MASKED | ICR_DELIVERY_STATUS | 0xff;
        match self {
            Self::Timer => LVT_MASK | (1 << 17) | if tsc_deadline { 1 << 18 } else { 0 },
            Self::Thermal | Self::PerfCounter => LVT_MASK | 0x700,
            Self::Lint0 | Self::Lint1 => LVT_MASK | 0x700 | (1 << 13) | (1 << 14) | (1 << 15),
            Self::Error => LVT_MASK,
        }
    }
}

/// The registers of the page, decoded from an offset (xAPIC) or an MSR
/// index (x2APIC: offset = (msr − 0x800) × 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApicReg {
    Id,
    Version,
    Tpr,
    Apr,
    Ppr,
    Eoi,
    Ldr,
    Dfr,
    Svr,
    /// ISR word 0–7.
    Isr(u8),
    /// TMR word 0–7.
    Tmr(u8),
    /// IRR word 0–7.
    Irr(u8),
    Esr,
    IcrLow,
    IcrHigh,
    Lvt(Lvt),
    InitialCount,
    CurrentCount,
    DivideConfig,
    /// x2APIC only (0x3F0).
    SelfIpi,
}

impl ApicReg {
    /// Decode a 16-byte aligned offset below 0x400.
    pub const fn from_offset(off: u32) -> Option<Self> {
        Some(match off {
            0x020 => Self::Id,
            0x030 => Self::Version,
            0x080 => Self::Tpr,
            0x090 => Self::Apr,
            0x0a0 => Self::Ppr,
            0x0b0 => Self::Eoi,
            0x0d0 => Self::Ldr,
            0x0e0 => Self::Dfr,
            0x0f0 => Self::Svr,
            0x100..=0x170 if off & 0xf == 0 => Self::Isr(((off - 0x100) >> 4) as u8),
            0x180..=0x1f0 if off & 0xf == 0 => Self::Tmr(((off - 0x180) >> 4) as u8),
            0x200..=0x270 if off & 0xf == 0 => Self::Irr(((off - 0x200) >> 4) as u8),
            0x280 => Self::Esr,
            0x300 => Self::IcrLow,
            0x310 => Self::IcrHigh,
            0x320 => Self::Lvt(Lvt::Timer),
            0x330 => Self::Lvt(Lvt::Thermal),
            0x340 => Self::Lvt(Lvt::PerfCounter),
            0x350 => Self::Lvt(Lvt::Lint0),
            0x360 => Self::Lvt(Lvt::Lint1),
            0x370 => Self::Lvt(Lvt::Error),
            0x380 => Self::InitialCount,
            0x390 => Self::CurrentCount,
            0x3e0 => Self::DivideConfig,
            0x3f0 => Self::SelfIpi,
            _ => return None,
        })
    }

    /// The register's offset in the page.
    pub const fn offset(self) -> u32 {
        match self {
            Self::Id => 0x20,
            Self::Version => 0x30,
            Self::Tpr => 0x80,
            Self::Apr => 0x90,
            Self::Ppr => 0xa0,
            Self::Eoi => 0xb0,
            Self::Ldr => 0xd0,
            Self::Dfr => 0xe0,
            Self::Svr => 0xf0,
            Self::Isr(i) => 0x100 + 0x10 * (i as u32 & 7),
            Self::Tmr(i) => 0x180 + 0x10 * (i as u32 & 7),
            Self::Irr(i) => 0x200 + 0x10 * (i as u32 & 7),
            Self::Esr => 0x280,
            Self::IcrLow => 0x300,
            Self::IcrHigh => 0x310,
            Self::Lvt(l) => l.offset(),
            Self::InitialCount => 0x380,
            Self::CurrentCount => 0x390,
            Self::DivideConfig => 0x3e0,
            Self::SelfIpi => 0x3f0,
        }
    }
}

/// The vector bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bitmap {
    Isr,
    Tmr,
    Irr,
}

impl Bitmap {
    pub(super) const fn base(self) -> u32 {
        match self {
            Self::Isr => 0x100,
            Self::Tmr => 0x180,
            Self::Irr => 0x200,
        }
    }
}

/// LVT timer mode (bits 18:17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerMode {
    OneShot,
    Periodic,
    TscDeadline,
}
