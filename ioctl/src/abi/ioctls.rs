//! Port of the ioctl numbers of the C driver's `sys/kvm.h`, computed with the
//! illumos encoding (`ioccom.rs`) from the sizes of our ABI structs, which
//! are asserted equal to C's.

use super::ioccom::{KVMIO, io, ior, iow, iowr};
use super::kvm::*;
use super::x86::*;
use core::mem::size_of;

macro_rules! ioctls {
    ($( $variant:ident = $name:literal => $value:expr ,)+) => {
        /// Every ioctl `sys/kvm.h` defines, with its illumos number as the
        /// discriminant (the compiler rejects two equal numbers).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Ioctl {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant = $value,
            )+
        }

        impl Ioctl {
            /// Every ioctl, in header order.
            pub const ALL: &'static [Ioctl] = &[$(Ioctl::$variant,)+];

            /// The C name (`KVM_...`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Ioctl::$variant => $name,)+
                }
            }

            /// The ioctl whose number is `cmd`, if `sys/kvm.h` defines one.
            pub const fn from_cmd(cmd: u32) -> Option<Ioctl> {
                $(
                    if cmd == Ioctl::$variant as u32 {
                        return Some(Ioctl::$variant);
                    }
                )+
                None
            }

            /// The number user space passes as `cmd`.
            pub const fn cmd(self) -> u32 {
                self as u32
            }
        }

        /// Every ioctl with its C name and illumos number, in header order.
        pub const ALL_IOCTLS: &[(&str, u32)] = &[$(($name, Ioctl::$variant as u32),)+];
    };
}

ioctls! {
    // ioctls for /dev/kvm fds
    GetApiVersion = "KVM_GET_API_VERSION" => io(KVMIO, 0x00),
    CreateVm = "KVM_CREATE_VM" => io(KVMIO, 0x01),
    GetMsrIndexList = "KVM_GET_MSR_INDEX_LIST" => iowr(KVMIO, 0x02, size_of::<kvm_msr_list>()),
    Clone = "KVM_CLONE" => io(KVMIO, 0x20),
    CheckExtension = "KVM_CHECK_EXTENSION" => io(KVMIO, 0x03),
    GetVcpuMmapSize = "KVM_GET_VCPU_MMAP_SIZE" => io(KVMIO, 0x04),
    GetSupportedCpuid = "KVM_GET_SUPPORTED_CPUID" => iowr(KVMIO, 0x05, size_of::<kvm_cpuid2>()),
    // ioctls for VM fds
    CreateVcpu = "KVM_CREATE_VCPU" => io(KVMIO, 0x41),
    GetDirtyLog = "KVM_GET_DIRTY_LOG" => iow(KVMIO, 0x42, size_of::<kvm_dirty_log>()),
    SetNrMmuPages = "KVM_SET_NR_MMU_PAGES" => io(KVMIO, 0x44),
    GetNrMmuPages = "KVM_GET_NR_MMU_PAGES" => io(KVMIO, 0x45),
    SetUserMemoryRegion = "KVM_SET_USER_MEMORY_REGION"
        => iow(KVMIO, 0x46, size_of::<kvm_userspace_memory_region>()),
    SetTssAddr = "KVM_SET_TSS_ADDR" => io(KVMIO, 0x47),
    SetIdentityMapAddr = "KVM_SET_IDENTITY_MAP_ADDR" => iow(KVMIO, 0x48, size_of::<u64>()),
    CreateIrqchip = "KVM_CREATE_IRQCHIP" => io(KVMIO, 0x60),
    IrqLine = "KVM_IRQ_LINE" => iow(KVMIO, 0x61, size_of::<kvm_irq_level>()),
    GetIrqchip = "KVM_GET_IRQCHIP" => iowr(KVMIO, 0x62, size_of::<kvm_irqchip>()),
    // _IOR (sic) in the C header.
    SetIrqchip = "KVM_SET_IRQCHIP" => ior(KVMIO, 0x63, size_of::<kvm_irqchip>()),
    CreatePit = "KVM_CREATE_PIT" => io(KVMIO, 0x64),
    GetPit = "KVM_GET_PIT" => iowr(KVMIO, 0x65, size_of::<kvm_pit_state>()),
    // _IOR (sic) in the C header.
    SetPit = "KVM_SET_PIT" => ior(KVMIO, 0x66, size_of::<kvm_pit_state>()),
    IrqLineStatus = "KVM_IRQ_LINE_STATUS" => iowr(KVMIO, 0x67, size_of::<kvm_irq_level>()),
    RegisterCoalescedMmio = "KVM_REGISTER_COALESCED_MMIO"
        => iow(KVMIO, 0x67, size_of::<kvm_coalesced_mmio_zone>()),
    UnregisterCoalescedMmio = "KVM_UNREGISTER_COALESCED_MMIO"
        => iow(KVMIO, 0x68, size_of::<kvm_coalesced_mmio_zone>()),
    SetGsiRouting = "KVM_SET_GSI_ROUTING" => iow(KVMIO, 0x6a, size_of::<kvm_irq_routing>()),
    ReinjectControl = "KVM_REINJECT_CONTROL" => io(KVMIO, 0x71),
    CreatePit2 = "KVM_CREATE_PIT2" => iow(KVMIO, 0x77, size_of::<kvm_pit_config>()),
    SetBootCpuId = "KVM_SET_BOOT_CPU_ID" => io(KVMIO, 0x78),
    SetClock = "KVM_SET_CLOCK" => iow(KVMIO, 0x7b, size_of::<kvm_clock_data>()),
    GetClock = "KVM_GET_CLOCK" => ior(KVMIO, 0x7c, size_of::<kvm_clock_data>()),
    GetPit2 = "KVM_GET_PIT2" => ior(KVMIO, 0x9f, size_of::<kvm_pit_state2>()),
    SetPit2 = "KVM_SET_PIT2" => iow(KVMIO, 0xa0, size_of::<kvm_pit_state2>()),
    // ioctls for VCPU fds
    Run = "KVM_RUN" => io(KVMIO, 0x80),
    GetRegs = "KVM_GET_REGS" => ior(KVMIO, 0x81, size_of::<kvm_regs>()),
    SetRegs = "KVM_SET_REGS" => iow(KVMIO, 0x82, size_of::<kvm_regs>()),
    GetSregs = "KVM_GET_SREGS" => ior(KVMIO, 0x83, size_of::<kvm_sregs>()),
    SetSregs = "KVM_SET_SREGS" => iow(KVMIO, 0x84, size_of::<kvm_sregs>()),
    Interrupt = "KVM_INTERRUPT" => iow(KVMIO, 0x86, size_of::<kvm_interrupt>()),
    GetMsrs = "KVM_GET_MSRS" => iowr(KVMIO, 0x88, size_of::<kvm_msrs>()),
    SetMsrs = "KVM_SET_MSRS" => iow(KVMIO, 0x89, size_of::<kvm_msrs>()),
    SetCpuid = "KVM_SET_CPUID" => iow(KVMIO, 0x8a, size_of::<kvm_cpuid>()),
    SetSignalMask = "KVM_SET_SIGNAL_MASK" => iow(KVMIO, 0x8b, size_of::<kvm_signal_mask>()),
    GetFpu = "KVM_GET_FPU" => ior(KVMIO, 0x8c, size_of::<kvm_fpu>()),
    SetFpu = "KVM_SET_FPU" => iow(KVMIO, 0x8d, size_of::<kvm_fpu>()),
    GetLapic = "KVM_GET_LAPIC" => ior(KVMIO, 0x8e, size_of::<kvm_lapic_state>()),
    SetLapic = "KVM_SET_LAPIC" => iow(KVMIO, 0x8f, size_of::<kvm_lapic_state>()),
    SetCpuid2 = "KVM_SET_CPUID2" => iow(KVMIO, 0x90, size_of::<kvm_cpuid2>()),
    GetCpuid2 = "KVM_GET_CPUID2" => iowr(KVMIO, 0x91, size_of::<kvm_cpuid2>()),
    TprAccessReporting = "KVM_TPR_ACCESS_REPORTING"
        => iowr(KVMIO, 0x92, size_of::<kvm_tpr_access_ctl>()),
    SetVapicAddr = "KVM_SET_VAPIC_ADDR" => iow(KVMIO, 0x93, size_of::<kvm_vapic_addr>()),
    GetMpState = "KVM_GET_MP_STATE" => ior(KVMIO, 0x98, size_of::<kvm_mp_state>()),
    SetMpState = "KVM_SET_MP_STATE" => iow(KVMIO, 0x99, size_of::<kvm_mp_state>()),
    Nmi = "KVM_NMI" => io(KVMIO, 0x9a),
    X86SetupMce = "KVM_X86_SETUP_MCE" => iow(KVMIO, 0x9c, size_of::<u64>()),
    X86GetMceCapSupported = "KVM_X86_GET_MCE_CAP_SUPPORTED" => ior(KVMIO, 0x9d, size_of::<u64>()),
    X86SetMce = "KVM_X86_SET_MCE" => iow(KVMIO, 0x9e, size_of::<kvm_x86_mce>()),
    GetVcpuEvents = "KVM_GET_VCPU_EVENTS" => ior(KVMIO, 0x9f, size_of::<kvm_vcpu_events>()),
    SetVcpuEvents = "KVM_SET_VCPU_EVENTS" => iow(KVMIO, 0xa0, size_of::<kvm_vcpu_events>()),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers of inventory §1.5 and §1.6, written out by hand (computed
    /// there independently with the illumos macros against the C headers).
    const EXPECTED: &[(&str, u32)] = &[
        ("KVM_GET_API_VERSION", 0x2000ae00),
        ("KVM_CREATE_VM", 0x2000ae01),
        ("KVM_GET_MSR_INDEX_LIST", 0xc008ae02),
        ("KVM_CHECK_EXTENSION", 0x2000ae03),
        ("KVM_GET_VCPU_MMAP_SIZE", 0x2000ae04),
        ("KVM_GET_SUPPORTED_CPUID", 0xc008ae05),
        ("KVM_CLONE", 0x2000ae20),
        ("KVM_CREATE_VCPU", 0x2000ae41),
        ("KVM_GET_DIRTY_LOG", 0x8010ae42),
        ("KVM_SET_USER_MEMORY_REGION", 0x8020ae46),
        ("KVM_SET_TSS_ADDR", 0x2000ae47),
        ("KVM_SET_IDENTITY_MAP_ADDR", 0x8008ae48),
        ("KVM_CREATE_IRQCHIP", 0x2000ae60),
        ("KVM_IRQ_LINE", 0x8008ae61),
        ("KVM_GET_IRQCHIP", 0xc008ae62),
        ("KVM_SET_IRQCHIP", 0x4008ae63),
        ("KVM_CREATE_PIT", 0x2000ae64),
        ("KVM_IRQ_LINE_STATUS", 0xc008ae67),
        ("KVM_REGISTER_COALESCED_MMIO", 0x8010ae67),
        ("KVM_UNREGISTER_COALESCED_MMIO", 0x8010ae68),
        ("KVM_SET_GSI_ROUTING", 0x8038ae6a),
        ("KVM_CREATE_PIT2", 0x8040ae77),
        ("KVM_SET_BOOT_CPU_ID", 0x2000ae78),
        ("KVM_GET_PIT2", 0x4070ae9f),
        ("KVM_SET_PIT2", 0x8070aea0),
        ("KVM_RUN", 0x2000ae80),
        ("KVM_GET_REGS", 0x4090ae81),
        ("KVM_SET_REGS", 0x8090ae82),
        ("KVM_GET_SREGS", 0x4038ae83),
        ("KVM_SET_SREGS", 0x8038ae84),
        ("KVM_INTERRUPT", 0x8004ae86),
        ("KVM_GET_MSRS", 0xc048ae88),
        ("KVM_SET_MSRS", 0x8048ae89),
        ("KVM_SET_SIGNAL_MASK", 0x8008ae8b),
        ("KVM_GET_FPU", 0x40a0ae8c),
        ("KVM_SET_FPU", 0x80a0ae8d),
        ("KVM_GET_LAPIC", 0x4000ae8e),
        ("KVM_SET_LAPIC", 0x8000ae8f),
        ("KVM_SET_CPUID2", 0x8008ae90),
        ("KVM_GET_CPUID2", 0xc008ae91),
        ("KVM_SET_VAPIC_ADDR", 0x8008ae93),
        ("KVM_GET_MP_STATE", 0x4004ae98),
        ("KVM_SET_MP_STATE", 0x8004ae99),
        ("KVM_NMI", 0x2000ae9a),
        ("KVM_X86_SETUP_MCE", 0x8008ae9c),
        ("KVM_X86_GET_MCE_CAP_SUPPORTED", 0x4008ae9d),
        ("KVM_GET_VCPU_EVENTS", 0x4040ae9f),
        ("KVM_SET_VCPU_EVENTS", 0x8040aea0),
        // §1.6
        ("KVM_SET_NR_MMU_PAGES", 0x2000ae44),
        ("KVM_GET_NR_MMU_PAGES", 0x2000ae45),
        ("KVM_GET_PIT", 0xc048ae65),
        ("KVM_SET_PIT", 0x4048ae66),
        ("KVM_REINJECT_CONTROL", 0x2000ae71),
        ("KVM_SET_CLOCK", 0x8030ae7b),
        ("KVM_GET_CLOCK", 0x4030ae7c),
        ("KVM_SET_CPUID", 0x8068ae8a),
        ("KVM_TPR_ACCESS_REPORTING", 0xc028ae92),
        ("KVM_X86_SET_MCE", 0x8040ae9e),
    ];

    #[test]
    fn numbers_match_the_inventory() {
        assert_eq!(EXPECTED.len(), 58);
        assert_eq!(ALL_IOCTLS.len(), EXPECTED.len());
        for (name, want) in EXPECTED {
            let got = ALL_IOCTLS.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            assert_eq!(got, Some(*want), "{name}");
        }
    }

    #[test]
    fn from_cmd_round_trips() {
        for &i in Ioctl::ALL {
            assert_eq!(Ioctl::from_cmd(i.cmd()), Some(i));
        }
        assert_eq!(Ioctl::from_cmd(0), None);
        // Linux's KVM_GET_API_VERSION (0xae00) is not an illumos number.
        assert_eq!(Ioctl::from_cmd(0xae00), None);
    }
}
