//! The local APIC of one virtual CPU: xAPIC MMIO page and x2APIC MSRs.
//!
//! Port of `kvm_lapic.c`. Rules from the Intel SDM vol. 3, chapter 11
//! ("Advanced Programmable Interrupt Controller"; chapter 10 in older
//! editions):
//! * §11.4.1/§11.4.6: registers live at 16-byte aligned offsets of the 4 KiB
//!   page at IA32_APIC_BASE; they must be accessed with aligned 32-bit
//!   accesses. ID (0x20), version (0x30: version 7:0, max LVT 23:16, EOI
//!   broadcast suppression 24), TPR 0x80, APR 0x90, PPR 0xA0, EOI 0xB0, LDR
//!   0xD0, DFR 0xE0, SVR 0xF0, ISR 0x100–0x170, TMR 0x180–0x1F0, IRR
//!   0x200–0x270, ESR 0x280, ICR 0x300/0x310, LVT timer/thermal/perf/LINT0/
//!   LINT1/error 0x320–0x370, initial count 0x380, current count 0x390,
//!   divide configuration 0x3E0.
//! * §11.4.3/§11.4.7: IA32_APIC_BASE bit 11 enables the APIC (hardware),
//!   SVR bit 8 software-enables it; while software-disabled every LVT is
//!   masked and cannot be unmasked, fixed interrupts are not accepted, but
//!   INIT, NMI, SMI and SIPI still are and IRR/ISR are kept.
//! * §11.5.3: the ESR collects errors (illegal vector sent/received, illegal
//!   register address); a write to the ESR makes the collected errors
//!   readable and clears the collection; an error raises the LVT error entry.
//! * §11.5.4: timer divide (TDCR bits 0, 1, 3), initial/current count,
//!   one-shot, periodic and TSC-deadline modes (LVT timer bits 18:17; the
//!   IA32_TSC_DEADLINE MSR 0x6E0 arms the latter, reads 0 in other modes,
//!   is cleared when the timer fires; mode changes to or from TSC-deadline
//!   disarm the timer; CPUID.01H:ECX\[24\] advertises it).
//! * §11.6: ICR fields, delivery modes, destination modes (physical; logical
//!   flat/cluster via DFR/LDR), shorthands; sending a fixed IPI with a
//!   vector below 16 is an error; INIT level de-assert is ignored.
//! * §11.8.3–§11.8.5: TPR/PPR (PPR = TPR if TPR\[7:4\] ≥ ISRV\[7:4\], else
//!   ISRV\[7:4\]:0), IRR→ISR at acknowledge, only vectors whose class is above
//!   PPR\[7:4\] are dispatched, EOI clears the highest ISR bit and, for a
//!   level-triggered vector (TMR), is broadcast to the I/O APICs unless SVR
//!   bit 12 suppresses it.
//! * §11.12: x2APIC mode (IA32_APIC_BASE bit 10): MSRs 0x800–0x8FF map
//!   offset/16, 32-bit IDs, LDR derived from the ID (cluster 31:16, bit
//!   1 << ID\[3:0\]), 64-bit ICR at 0x830, SELF IPI at 0x83F, no DFR/ICR2/APR,
//!   writes to read-only registers, non-zero writes to EOI/ESR and accesses to
//!   reserved registers raise #GP; the MMIO page is not decoded.
//!
//! Differences from the C driver: TSC-deadline mode (the C lacked it); the
//! ESR actually records errors; x2APIC logical destinations match cluster
//! and bitmap as the SDM says (the C just ANDed); TMCCT is written into the
//! saved page and a restore continues the countdown where it was (the C
//! restarted from the initial count); periodic-timer clamp is configurable
//! (default 500 µs, the C's value); expirations while the LVT timer entry is
//! masked are discarded rather than replayed on unmask; EOI leaves TMR alone
//! (TMR changes only on acceptance), so a level vector re-pending in IRR
//! keeps its trigger mode; the APR is computed (the C read it as 0) and is
//! what lowest-priority arbitration compares.
//!
//! The model is split: register map in `regs`, the timer in `timer`, MSR
//! access (x2APIC, Hyper-V, APIC base) in `msr`; delivery between LAPICs is
//! `lapic_bus`.

use crate::apic_bus::{ApicMessage, DeliveryMode, DestMode, Shorthand, TriggerMode};
use crate::clock::{Clock, Timer, muldiv};

mod msr;
mod regs;
mod timer;

pub use regs::*;

/// Multiprocessor state driven by INIT / SIPI (`KVM_MP_STATE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MpState {
    Runnable,
    Uninitialized,
    InitReceived,
    Halted,
    /// A start-up IPI arrived; the vector names the start page.
    SipiReceived(u8),
}

/// A register access the architecture rejects with #GP (x2APIC MSRs, APIC
/// base transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// Side effects of a register write that the caller must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LapicAction {
    None,
    /// Route this IPI to the LAPICs (`lapic_bus::deliver` with this APIC as
    /// the source).
    SendIpi(ApicMessage),
    /// Broadcast an EOI for a level-triggered vector to the I/O APICs.
    IoapicEoi(u8),
}

/// Construction parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LapicConfig {
    /// Initial APIC ID (the VCPU id).
    pub id: u32,
    /// Bootstrap processor (sets IA32_APIC_BASE.BSP).
    pub bsp: bool,
    /// Expose TSC-deadline mode.
    pub tsc_deadline: bool,
    /// Expose EOI-broadcast suppression (version bit 24, SVR bit 12).
    pub directed_eoi: bool,
    /// Shortest periodic period accepted, ns (the C clamps to 500 µs).
    pub min_periodic_ns: u64,
    /// Guest TSC frequency in kHz (for TSC-deadline).
    pub tsc_khz: u64,
}

impl LapicConfig {
    /// VCPU `id` with the port's defaults.
    pub const fn new(id: u32) -> Self {
        Self {
            id,
            bsp: id == 0,
            tsc_deadline: true,
            directed_eoi: false,
            min_periodic_ns: 500_000,
            tsc_khz: 1_000_000,
        }
    }
}

/// Saved state: the 1024-byte register page of `struct kvm_lapic_state`.
/// Local mirror until `kvm-ioctl` owns the ABI struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LapicState {
    pub regs: [u8; KVM_APIC_REG_SIZE],
}
static_assertions::const_assert_eq!(core::mem::size_of::<LapicState>(), 1024);

impl Default for LapicState {
    fn default() -> Self {
        Self {
            regs: [0; KVM_APIC_REG_SIZE],
        }
    }
}

/// Timer bookkeeping (port of `struct kvm_timer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TimerState {
    /// Start of the countdown, ns.
    start: u64,
    /// Period (one-shot length) in ns; 0 when stopped.
    period: u64,
    /// Index (1-based) of the next expiration not yet counted.
    next_expiry: u64,
    /// Expirations counted and not yet delivered.
    pending: u64,
    /// IA32_TSC_DEADLINE (guest TSC), 0 = disarmed.
    tsc_deadline: u64,
}

/// One local APIC (port of `struct kvm_lapic` and the APIC part of
/// `struct kvm_vcpu_arch`).
pub struct Lapic<C: Clock, T: Timer> {
    clock: C,
    timer: T,
    cfg: LapicConfig,
    /// Register page, one `u32` per 16-byte slot (offset >> 4).
    regs: [u32; KVM_APIC_REG_SIZE / 16],
    apic_base: u64,
    /// Errors collected since the last ESR write.
    esr_pending: u32,
    timer_state: TimerState,
    /// Guest TSC = now × tsc_khz / 10^6 + tsc_offset.
    tsc_offset: u64,
    mp_state: MpState,
    nmi_pending: u32,
    /// Round-robin tie breaker of lowest-priority arbitration.
    arb_prio: u32,
}

fn bit_of(vector: u8) -> u32 {
    1u32 << (vector & 31)
}

impl<C: Clock, T: Timer> Lapic<C, T> {
    /// A LAPIC in its reset state (port of `kvm_create_lapic` +
    /// `kvm_lapic_reset`).
    pub fn new(cfg: LapicConfig, clock: C, timer: T) -> Self {
        let mut s = Self {
            clock,
            timer,
            cfg,
            regs: [0; KVM_APIC_REG_SIZE / 16],
            apic_base: APIC_DEFAULT_PHYS_BASE | APIC_BASE_ENABLE,
            esr_pending: 0,
            timer_state: TimerState::default(),
            tsc_offset: 0,
            mp_state: if cfg.bsp {
                MpState::Runnable
            } else {
                MpState::Uninitialized
            },
            nmi_pending: 0,
            arb_prio: 0,
        };
        s.reset();
        s
    }

    /// Port of `kvm_lapic_reset` (SDM §11.4.7.1 power-up state; LVT0 is
    /// left in ExtINT mode as the C does so the PIC reaches the BSP).
    pub fn reset(&mut self) {
        self.timer.cancel();
        self.regs = [0; KVM_APIC_REG_SIZE / 16];
        self.set_reg(ApicReg::Id, self.cfg.id << 24);
        self.set_reg(ApicReg::Version, self.version());
        for l in Lvt::ALL {
            self.set_reg(ApicReg::Lvt(l), LVT_MASKED);
        }
        self.set_reg(ApicReg::Lvt(Lvt::Lint0), DeliveryMode::ExtInt.bits() << 8);
        self.set_reg(ApicReg::Dfr, 0xffff_ffff);
        self.set_reg(ApicReg::Svr, 0xff);
        self.esr_pending = 0;
        self.timer_state = TimerState::default();
        self.nmi_pending = 0;
        self.arb_prio = 0;
        if self.cfg.bsp {
            self.apic_base |= APIC_BASE_BSP;
        } else {
            self.apic_base &= !APIC_BASE_BSP;
        }
        self.update_ppr();
    }

    fn version(&self) -> u32 {
        APIC_VERSION
            | if self.cfg.directed_eoi {
                LVR_DIRECTED_EOI
            } else {
                0
            }
    }

    /// The platform timer (tests inspect the fake).
    pub fn timer(&self) -> &T {
        &self.timer
    }

    /// The construction parameters.
    pub fn config(&self) -> &LapicConfig {
        &self.cfg
    }

    /// CPUID.01H:ECX bits this APIC model supports (x2APIC, TSC-deadline).
    pub fn cpuid_1_ecx(&self) -> u32 {
        CPUID_1_ECX_X2APIC
            | if self.cfg.tsc_deadline {
                CPUID_1_ECX_TSC_DEADLINE
            } else {
                0
            }
    }

    /// Set the guest TSC offset (guest TSC = now × kHz / 10^6 + offset).
    pub fn set_tsc_offset(&mut self, offset: u64) {
        self.tsc_offset = offset;
    }

    /// The guest TSC at `now`.
    pub fn guest_tsc(&self, now: u64) -> u64 {
        muldiv(now, self.cfg.tsc_khz, 1_000_000).wrapping_add(self.tsc_offset)
    }

    // ----- register storage ---------------------------------------------

    fn reg(&self, r: ApicReg) -> u32 {
        self.regs
            .get((r.offset() >> 4) as usize)
            .copied()
            .unwrap_or(0)
    }

    fn set_reg(&mut self, r: ApicReg, v: u32) {
        if let Some(slot) = self.regs.get_mut((r.offset() >> 4) as usize) {
            *slot = v;
        }
    }

    fn vec_slot(map: Bitmap, vector: u8) -> usize {
        ((map.base() >> 4) + u32::from(vector >> 5)) as usize
    }

    fn test_vec(&self, map: Bitmap, vector: u8) -> bool {
        self.regs
            .get(Self::vec_slot(map, vector))
            .is_some_and(|w| w & bit_of(vector) != 0)
    }

    /// Set a vector bit; returns whether it was already set.
    fn set_vec(&mut self, map: Bitmap, vector: u8) -> bool {
        match self.regs.get_mut(Self::vec_slot(map, vector)) {
            Some(w) => {
                let was = *w & bit_of(vector) != 0;
                *w |= bit_of(vector);
                was
            }
            None => false,
        }
    }

    /// Clear a vector bit; returns whether it was set.
    fn clear_vec(&mut self, map: Bitmap, vector: u8) -> bool {
        match self.regs.get_mut(Self::vec_slot(map, vector)) {
            Some(w) => {
                let was = *w & bit_of(vector) != 0;
                *w &= !bit_of(vector);
                was
            }
            None => false,
        }
    }

    /// Port of `find_highest_vector`.
    fn highest(&self, map: Bitmap) -> Option<u8> {
        (0..8u8).rev().find_map(|word| {
            let w = self
                .regs
                .get(Self::vec_slot(map, word << 5))
                .copied()
                .unwrap_or(0);
            (w != 0).then(|| (word << 5) | (31 - w.leading_zeros()) as u8)
        })
    }

    // ----- state predicates ----------------------------------------------

    /// IA32_APIC_BASE.EN.
    pub fn hw_enabled(&self) -> bool {
        self.apic_base & APIC_BASE_ENABLE != 0
    }

    /// SVR bit 8.
    pub fn sw_enabled(&self) -> bool {
        self.reg(ApicReg::Svr) & SVR_ENABLED != 0
    }

    /// Hardware- and software-enabled (`apic_enabled`).
    pub fn enabled(&self) -> bool {
        self.hw_enabled() && self.sw_enabled()
    }

    /// x2APIC mode (IA32_APIC_BASE.EXTD).
    pub fn x2apic_mode(&self) -> bool {
        self.apic_base & APIC_BASE_EXTD != 0
    }

    /// The APIC ID (8 bits in xAPIC mode, the 32-bit x2APIC ID otherwise).
    pub fn id(&self) -> u32 {
        if self.x2apic_mode() {
            self.cfg.id
        } else {
            self.reg(ApicReg::Id) >> 24
        }
    }

    /// The MMIO base from IA32_APIC_BASE.
    pub fn base_address(&self) -> u64 {
        self.apic_base & APIC_BASE_ADDR_MASK
    }

    /// Whether the MMIO page decodes `addr` (`apic_mmio_in_range`; never in
    /// x2APIC mode).
    pub fn mmio_in_range(&self, addr: u64) -> bool {
        self.hw_enabled()
            && !self.x2apic_mode()
            && addr >= self.base_address()
            && addr < self.base_address().saturating_add(LAPIC_MMIO_LENGTH)
    }

    fn lvt(&self, l: Lvt) -> u32 {
        self.reg(ApicReg::Lvt(l))
    }

    /// The LVT timer mode.
    pub fn timer_mode(&self) -> TimerMode {
        match (self.lvt(Lvt::Timer) >> 17) & 3 {
            1 => TimerMode::Periodic,
            2 if self.cfg.tsc_deadline => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }

    /// Multiprocessor state.
    pub fn mp_state(&self) -> MpState {
        self.mp_state
    }

    /// KVM_SET_MP_STATE.
    pub fn set_mp_state(&mut self, s: MpState) {
        self.mp_state = s;
    }

    // ----- priorities ----------------------------------------------------

    /// Port of `apic_update_ppr` (SDM §11.8.3.1).
    fn update_ppr(&mut self) {
        let tpr = self.reg(ApicReg::Tpr) & 0xff;
        let isrv = u32::from(self.highest(Bitmap::Isr).unwrap_or(0));
        let ppr = if (tpr & 0xf0) >= (isrv & 0xf0) {
            tpr
        } else {
            isrv & 0xf0
        };
        self.set_reg(ApicReg::Ppr, ppr);
    }

    /// Processor priority.
    pub fn ppr(&self) -> u8 {
        (self.reg(ApicReg::Ppr) & 0xff) as u8
    }

    /// Arbitration priority (SDM §11.8.3.2 / Figure 11-15): TPR if TPR\[7:4\]
    /// is at least IRRV\[7:4\] and above ISRV\[7:4\], else the highest of the
    /// three classes.
    pub fn apr(&self) -> u8 {
        let tpr = (self.reg(ApicReg::Tpr) & 0xff) as u8;
        let isrv = self.highest(Bitmap::Isr).unwrap_or(0);
        let irrv = self.highest(Bitmap::Irr).unwrap_or(0);
        if (tpr & 0xf0) >= (irrv & 0xf0) && (tpr & 0xf0) > (isrv & 0xf0) {
            tpr
        } else {
            (tpr & 0xf0).max(isrv & 0xf0).max(irrv & 0xf0)
        }
    }

    /// Set TPR (port of `apic_set_tpr`).
    fn set_tpr(&mut self, tpr: u32) {
        self.set_reg(ApicReg::Tpr, tpr & 0xff);
        self.update_ppr();
    }

    /// MOV to CR8 (port of `kvm_lapic_set_tpr`): TPR\[7:4\] = CR8\[3:0\].
    pub fn set_cr8(&mut self, cr8: u64) {
        self.set_tpr(((cr8 & 0xf) as u32) << 4);
    }

    /// MOV from CR8 (port of `kvm_lapic_get_cr8`).
    pub fn cr8(&self) -> u64 {
        u64::from((self.reg(ApicReg::Tpr) & 0xf0) >> 4)
    }

    // ----- accepting interrupts -------------------------------------------

    fn record_error(&mut self, err: u32) {
        let fresh = self.esr_pending & err != err;
        self.esr_pending |= err;
        if fresh {
            self.local_deliver(Lvt::Error);
        }
    }

    /// Accept one message addressed to this APIC (port of
    /// `__apic_accept_irq`). Returns whether it was newly accepted.
    pub fn accept(&mut self, msg: &ApicMessage) -> bool {
        match msg.delivery_mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                if msg.delivery_mode == DeliveryMode::LowestPriority {
                    self.arb_prio = self.arb_prio.wrapping_add(1);
                }
                if !self.enabled() {
                    return false;
                }
                if msg.vector < 16 {
                    self.record_error(esr::RECEIVE_ILLEGAL_VECTOR);
                    return false;
                }
                if msg.trigger == TriggerMode::Level {
                    self.set_vec(Bitmap::Tmr, msg.vector);
                } else {
                    self.clear_vec(Bitmap::Tmr, msg.vector);
                }
                !self.set_vec(Bitmap::Irr, msg.vector)
            }
            DeliveryMode::Nmi => {
                self.nmi_pending = self.nmi_pending.saturating_add(1);
                true
            }
            DeliveryMode::Init => {
                if msg.level || msg.trigger == TriggerMode::Edge {
                    self.mp_state = MpState::InitReceived;
                    true
                } else {
                    false
                }
            }
            DeliveryMode::StartUp => {
                if self.mp_state == MpState::InitReceived {
                    self.mp_state = MpState::SipiReceived(msg.vector);
                    true
                } else {
                    false
                }
            }
            DeliveryMode::Smi | DeliveryMode::RemoteRead | DeliveryMode::ExtInt => false,
        }
    }

    /// Deliver through a local vector table entry (port of
    /// `kvm_apic_local_deliver`): nothing if masked or hardware-disabled.
    pub fn local_deliver(&mut self, l: Lvt) -> bool {
        let v = self.lvt(l);
        if !self.hw_enabled() || v & LVT_MASKED != 0 {
            return false;
        }
        let level = l != Lvt::Timer && l != Lvt::Error && v & (1 << 15) != 0;
        let msg = ApicMessage {
            vector: (v & 0xff) as u8,
            delivery_mode: DeliveryMode::from_bits(v >> 8),
            dest_mode: DestMode::Physical,
            trigger: if level {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            level: true,
            shorthand: Shorthand::SelfOnly,
            dest_id: self.id(),
        };
        self.accept(&msg)
    }

    /// Whether the 8259A may interrupt this CPU via LINT0 (port of
    /// `kvm_apic_accept_pic_intr`).
    pub fn accept_pic_intr(&self) -> bool {
        if !self.cfg.bsp {
            return false;
        }
        let lvt0 = self.lvt(Lvt::Lint0);
        !self.hw_enabled()
            || (lvt0 & LVT_MASKED == 0
                && DeliveryMode::from_bits(lvt0 >> 8) == DeliveryMode::ExtInt)
    }

    /// The vector the CPU would take now, if any (port of
    /// `kvm_apic_has_interrupt`, SDM §11.8.3.1).
    pub fn has_interrupt(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = self.highest(Bitmap::Irr)?;
        ((v & 0xf0) > (self.ppr() & 0xf0)).then_some(v)
    }

    /// Interrupt acknowledge: move the vector from IRR to ISR (port of
    /// `kvm_get_apic_interrupt`).
    pub fn get_interrupt(&mut self) -> Option<u8> {
        let v = self.has_interrupt()?;
        self.set_vec(Bitmap::Isr, v);
        self.clear_vec(Bitmap::Irr, v);
        self.update_ppr();
        Some(v)
    }

    /// An NMI was accepted and not yet taken by the VCPU.
    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending > 0
    }

    /// Take one pending NMI (`kvm_inject_nmi` bookkeeping): the VCPU
    /// queues it for injection.
    pub fn take_nmi(&mut self) -> bool {
        if self.nmi_pending > 0 {
            self.nmi_pending -= 1;
            true
        } else {
            false
        }
    }

    /// Whether `vector` is pending in IRR.
    pub fn irr_has(&self, vector: u8) -> bool {
        self.test_vec(Bitmap::Irr, vector)
    }

    /// Whether `vector` is in service.
    pub fn isr_has(&self, vector: u8) -> bool {
        self.test_vec(Bitmap::Isr, vector)
    }

    /// Whether `vector` is marked level-triggered in TMR.
    pub fn tmr_has(&self, vector: u8) -> bool {
        self.test_vec(Bitmap::Tmr, vector)
    }

    /// The arbitration tie-breaker counter.
    pub fn arb_prio(&self) -> u32 {
        self.arb_prio
    }

    /// Port of `apic_set_eoi`: retire the highest in-service vector.
    fn set_eoi(&mut self) -> LapicAction {
        let Some(v) = self.highest(Bitmap::Isr) else {
            return LapicAction::None;
        };
        self.clear_vec(Bitmap::Isr, v);
        self.update_ppr();
        // TMR is updated only when a vector is accepted into IRR (SDM
        // §11.8.4); the C cleared it here, which lost the trigger mode of a
        // level interrupt already pending again in IRR.
        let level = self.test_vec(Bitmap::Tmr, v);
        if level && self.reg(ApicReg::Svr) & SVR_SUPPRESS_EOI_BROADCAST == 0 {
            LapicAction::IoapicEoi(v)
        } else {
            LapicAction::None
        }
    }

    // ----- destination matching -------------------------------------------

    /// Physical destination match (`kvm_apic_match_physical_addr`).
    pub fn match_physical(&self, dest: u32) -> bool {
        if self.x2apic_mode() {
            dest == u32::MAX || dest == self.id()
        } else {
            let d = dest & 0xff;
            d == 0xff || d == self.id()
        }
    }

    /// Logical destination match (`kvm_apic_match_logical_addr`, SDM
    /// §11.6.2.2 flat/cluster, §11.12.10 x2APIC cluster).
    pub fn match_logical(&self, mda: u32) -> bool {
        let ldr = self.reg(ApicReg::Ldr);
        if self.x2apic_mode() {
            if mda == u32::MAX {
                return true;
            }
            return (mda >> 16) == (ldr >> 16) && (mda & ldr & 0xffff) != 0;
        }
        let mda = mda & 0xff;
        let logical = ldr >> 24;
        match self.reg(ApicReg::Dfr) >> 28 {
            0xf => logical & mda != 0,
            0x0 => {
                let cluster_ok = (mda >> 4) == 0xf || (logical >> 4) == (mda >> 4);
                cluster_ok && (logical & mda & 0xf) != 0
            }
            _ => false,
        }
    }

    /// Port of `kvm_apic_match_dest`; `is_source` tells whether this APIC
    /// sent the message.
    pub fn match_dest(&self, msg: &ApicMessage, is_source: bool) -> bool {
        match msg.shorthand {
            Shorthand::None => match msg.dest_mode {
                DestMode::Physical => self.match_physical(msg.dest_id),
                DestMode::Logical => self.match_logical(msg.dest_id),
            },
            Shorthand::SelfOnly => is_source,
            Shorthand::AllIncludingSelf => true,
            Shorthand::AllExcludingSelf => !is_source,
        }
    }

    /// Whether vector is being serviced or pending here and focus checking
    /// is on (SDM §11.6.2.4 focus processor).
    pub fn is_focus_for(&self, vector: u8) -> bool {
        self.reg(ApicReg::Svr) & SVR_FOCUS_DISABLED == 0
            && (self.test_vec(Bitmap::Isr, vector) || self.test_vec(Bitmap::Irr, vector))
    }

    // ----- ICR -------------------------------------------------------------

    /// Decode the ICR into a message (port of `apic_send_ipi`).
    fn icr_message(&self) -> ApicMessage {
        let lo = self.reg(ApicReg::IcrLow);
        let hi = self.reg(ApicReg::IcrHigh);
        ApicMessage {
            vector: (lo & 0xff) as u8,
            delivery_mode: DeliveryMode::from_bits(lo >> 8),
            dest_mode: if lo & (1 << 11) != 0 {
                DestMode::Logical
            } else {
                DestMode::Physical
            },
            level: lo & (1 << 14) != 0,
            trigger: if lo & (1 << 15) != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            shorthand: Shorthand::from_bits(lo >> 18),
            dest_id: if self.x2apic_mode() { hi } else { hi >> 24 },
        }
    }

    fn send_ipi(&mut self) -> LapicAction {
        let msg = self.icr_message();
        if matches!(
            msg.delivery_mode,
            DeliveryMode::Fixed | DeliveryMode::LowestPriority
        ) && msg.vector < 16
        {
            self.record_error(esr::SEND_ILLEGAL_VECTOR);
            return LapicAction::None;
        }
        LapicAction::SendIpi(msg)
    }

    // ----- register reads ----------------------------------------------------

    /// Port of `__apic_read` for a decoded register.
    fn read_reg(&self, r: ApicReg) -> u32 {
        match r {
            ApicReg::Id => {
                if self.x2apic_mode() {
                    self.id()
                } else {
                    self.reg(ApicReg::Id)
                }
            }
            ApicReg::Apr => u32::from(self.apr()),
            ApicReg::CurrentCount => self.current_count(self.clock.now_ns()),
            ApicReg::Eoi | ApicReg::SelfIpi => 0,
            other => self.reg(other),
        }
    }

    /// Whether xAPIC MMIO reads of `r` are defined (the C `rmask`).
    fn xapic_readable(r: ApicReg) -> bool {
        !matches!(r, ApicReg::Eoi | ApicReg::SelfIpi)
    }

    /// xAPIC MMIO read of `len` (1, 2 or 4) bytes at `offset` in the page
    /// (port of `apic_reg_read`). Accesses crossing a register or hitting a
    /// reserved one read 0 and log an illegal register address.
    pub fn mmio_read(&mut self, offset: u64, len: usize) -> u32 {
        let align = (offset & 0xf) as usize;
        let reg_off = (offset & 0xff0) as u32;
        if !matches!(len, 1 | 2 | 4) || align + len > 4 || offset >= 0x400 {
            return 0;
        }
        match ApicReg::from_offset(reg_off) {
            Some(r) if Self::xapic_readable(r) => {
                let v = self.read_reg(r) >> (align * 8);
                match len {
                    1 => v & 0xff,
                    2 => v & 0xffff,
                    _ => v,
                }
            }
            _ => {
                self.record_error(esr::ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// Read a register by offset with 32-bit width (convenience for tests
    /// and the Hyper-V synthetic MSRs).
    pub fn read(&mut self, offset: u32) -> u32 {
        self.mmio_read(u64::from(offset), 4)
    }

    // ----- register writes -----------------------------------------------------

    /// xAPIC MMIO write (port of `apic_mmio_write`): only aligned 4-byte
    /// writes are honoured (SDM §11.4.1), others are dropped silently.
    pub fn mmio_write(&mut self, offset: u64, len: usize, val: u32) -> LapicAction {
        if len != 4 || offset & 0xf != 0 || offset >= 0x400 || self.x2apic_mode() {
            return LapicAction::None;
        }
        match ApicReg::from_offset(offset as u32) {
            Some(r) => self.write_reg(r, val).unwrap_or(LapicAction::None),
            None => {
                self.record_error(esr::ILLEGAL_REGISTER);
                LapicAction::None
            }
        }
    }

    /// Write a register by offset (32-bit, xAPIC semantics).
    pub fn write(&mut self, offset: u32, val: u32) -> LapicAction {
        self.mmio_write(u64::from(offset), 4, val)
    }

    /// Port of `apic_reg_write` for a decoded register. `Err` is #GP in
    /// x2APIC mode.
    fn write_reg(&mut self, r: ApicReg, val: u32) -> Result<LapicAction, GeneralProtection> {
        let x2 = self.x2apic_mode();
        match r {
            ApicReg::Id => {
                if x2 {
                    return Err(GeneralProtection);
                }
                self.set_reg(ApicReg::Id, val & 0xff00_0000);
            }
            ApicReg::Tpr => self.set_tpr(val),
            ApicReg::Eoi => {
                if x2 && val != 0 {
                    return Err(GeneralProtection);
                }
                return Ok(self.set_eoi());
            }
            ApicReg::Ldr => {
                if x2 {
                    return Err(GeneralProtection);
                }
                self.set_reg(ApicReg::Ldr, val & 0xff00_0000);
            }
            ApicReg::Dfr => {
                if x2 {
                    return Err(GeneralProtection);
                }
                self.set_reg(ApicReg::Dfr, val | 0x0fff_ffff);
            }
            ApicReg::Svr => self.write_svr(val),
            ApicReg::Esr => {
                if x2 && val != 0 {
                    return Err(GeneralProtection);
                }
                self.set_reg(ApicReg::Esr, self.esr_pending);
                self.esr_pending = 0;
            }
            ApicReg::IcrLow => {
                self.set_reg(ApicReg::IcrLow, val & !ICR_DELIVERY_STATUS);
                return Ok(self.send_ipi());
            }
            ApicReg::IcrHigh => {
                if x2 {
                    return Err(GeneralProtection);
                }
                self.set_reg(ApicReg::IcrHigh, val & 0xff00_0000);
            }
            ApicReg::Lvt(l) => self.write_lvt(l, val),
            ApicReg::InitialCount => {
                if self.timer_mode() != TimerMode::TscDeadline {
                    self.set_reg(ApicReg::InitialCount, val);
                    let now = self.clock.now_ns();
                    self.start_timer_at(now);
                }
            }
            ApicReg::DivideConfig => {
                self.set_reg(ApicReg::DivideConfig, val & 0xb);
            }
            ApicReg::SelfIpi => {
                if !x2 {
                    return Ok(LapicAction::None);
                }
                self.set_reg(ApicReg::IcrLow, (val & 0xff) | (1 << 18));
                return Ok(self.send_ipi());
            }
            ApicReg::Version
            | ApicReg::Apr
            | ApicReg::Ppr
            | ApicReg::Isr(_)
            | ApicReg::Tmr(_)
            | ApicReg::Irr(_)
            | ApicReg::CurrentCount => {
                if x2 {
                    return Err(GeneralProtection);
                }
            }
        }
        Ok(LapicAction::None)
    }

    /// SVR write: software disable masks every LVT (SDM §11.4.7.2).
    fn write_svr(&mut self, val: u32) {
        let mut mask = 0x3ff;
        if self.reg(ApicReg::Version) & LVR_DIRECTED_EOI != 0 {
            mask |= SVR_SUPPRESS_EOI_BROADCAST;
        }
        self.set_reg(ApicReg::Svr, val & mask);
        if val & SVR_ENABLED == 0 {
            for l in Lvt::ALL {
                let v = self.lvt(l);
                self.set_reg(ApicReg::Lvt(l), v | LVT_MASKED);
            }
            self.timer_state.pending = 0;
        }
    }

    /// LVT write: masked while software-disabled; a timer-mode change to or
    /// from TSC-deadline disarms the timer (SDM §11.5.4.1).
    fn write_lvt(&mut self, l: Lvt, val: u32) {
        let old_mode = self.timer_mode();
        let now = self.clock.now_ns();
        let count_before = if l == Lvt::Timer {
            self.current_count(now)
        } else {
            0
        };
        let mut v = val & l.writable(self.cfg.tsc_deadline);
        if !self.sw_enabled() {
            v |= LVT_MASKED;
        }
        if l == Lvt::Timer && (v >> 17) & 3 == 3 {
            // Reserved mode 11b: keep the previous mode bits.
            v = (v & !(3 << 17)) | (self.lvt(Lvt::Timer) & (3 << 17));
        }
        self.set_reg(ApicReg::Lvt(l), v);
        if l == Lvt::Timer {
            let new_mode = self.timer_mode();
            if (old_mode == TimerMode::TscDeadline) != (new_mode == TimerMode::TscDeadline) {
                self.set_reg(ApicReg::InitialCount, 0);
                self.timer_state = TimerState {
                    pending: self.timer_state.pending,
                    ..TimerState::default()
                };
                self.timer.cancel();
            } else if old_mode != new_mode && self.timer_state.period != 0 {
                // One-shot ↔ periodic: the count goes on from where it is
                // (not reset to TMICT); a count that already reached zero
                // stays there until TMICT is written (SDM §11.5.4;
                // kvm-unit-tests' apic.flat test_apic_change_mode).
                if count_before == 0 {
                    self.timer_state.period = 0;
                    self.timer.cancel();
                } else {
                    let initial = u64::from(self.reg(ApicReg::InitialCount));
                    let done = initial
                        .saturating_sub(u64::from(count_before))
                        .saturating_mul(self.tick_ns());
                    self.timer_state.start = now.saturating_sub(done);
                    self.timer_state.period = self.timer_period();
                    self.timer_state.next_expiry = 1;
                    self.rearm();
                }
            }
        }
    }

    // ----- save / restore ------------------------------------------------------

    /// KVM_GET_LAPIC: the register page, with the current count filled in.
    /// Timer expirations due by now are counted first (so none is left
    /// behind by the saved phase); the backlog in [`Lapic::pending_timer`]
    /// has no place in the page and is the caller's to inject or drop.
    pub fn save(&mut self) -> LapicState {
        let now = self.clock.now_ns();
        self.on_timer(now);
        let mut st = LapicState::default();
        for (i, v) in self.regs.iter().enumerate() {
            let v = if i == (ApicReg::CurrentCount.offset() >> 4) as usize {
                self.current_count(now)
            } else {
                *v
            };
            if let Some(dst) = st.regs.get_mut(i * 16..i * 16 + 4) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        st
    }

    /// KVM_SET_LAPIC (port of `kvm_apic_post_state_restore`): registers as
    /// given, PPR recomputed, and a running one-shot/periodic countdown
    /// continues from the saved current count.
    pub fn restore(&mut self, st: &LapicState) {
        for (i, slot) in self.regs.iter_mut().enumerate() {
            let mut b = [0u8; 4];
            if let Some(src) = st.regs.get(i * 16..i * 16 + 4) {
                b.copy_from_slice(src);
            }
            *slot = u32::from_le_bytes(b);
        }
        self.set_reg(ApicReg::Version, self.version());
        self.update_ppr();
        let now = self.clock.now_ns();
        let initial = u64::from(self.reg(ApicReg::InitialCount));
        let current = u64::from(self.reg(ApicReg::CurrentCount));
        self.set_reg(ApicReg::CurrentCount, 0);
        self.timer_state.pending = 0;
        if self.timer_mode() == TimerMode::TscDeadline {
            self.rearm();
            return;
        }
        // Place the start so that `current` counts remain in this period.
        let tick = self.tick_ns();
        let remaining = if current == 0 || current > initial {
            initial
        } else {
            current
        };
        let elapsed = initial.saturating_sub(remaining).saturating_mul(tick);
        self.start_timer_at(now.saturating_sub(elapsed));
        if current == 0 && initial != 0 && self.timer_mode() == TimerMode::OneShot {
            // A finished one-shot stays finished.
            self.timer_state.next_expiry = 2;
            self.rearm();
        }
    }
}

#[cfg(test)]
mod tests;
