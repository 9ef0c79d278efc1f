//! Event injection: the exception/interrupt/NMI queue of a VCPU and how
//! it reaches the guest through the VM-entry interruption-information field.
//!
//! Ports `kvm_multiple_exception` and `inject_pending_event` (kvm_x86.c) and
//! `vmx_queue_exception`, `vmx_inject_irq`, `vmx_inject_nmi`,
//! `vmx_{nmi,interrupt}_allowed`, `vmx_{get,set}_nmi_mask`,
//! `vmx_{get,set}_interrupt_shadow`, `enable_{irq,nmi}_window`,
//! `vmx_complete_interrupts` and `vmx_update_cr8_intercept` (kvm_vmx.c).
//! SDM vol. 3: §6.15 table 6-5 (double fault), §25.4.2 (interruptibility),
//! §26.6 (event injection), §27.2.4 (IDT-vectoring information), §27.7.1.2
//! (NMI blocking after a faulting IRET / NMI delivery), §26.3.1.5 (entry
//! checks on interruptibility).

use x86::vmx::vmcs::control::{self, PrimaryControls};
use x86::vmx::vmcs::{guest, ro};

use crate::env::{InterruptSource, Probe, ProbeSink};
use crate::qualification::{EventType, InterruptionInfo, interruptibility};
use crate::setup::{
    BP_VECTOR, DB_VECTOR, DE_VECTOR, DF_VECTOR, GP_VECTOR, MC_VECTOR, NMI_VECTOR, NP_VECTOR,
    OF_VECTOR, PF_VECTOR, SS_VECTOR, TS_VECTOR,
};
use crate::vcpu::VmxVcpu;
use crate::vmcs::Vmcs;

/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS.RF (resume flag).
pub const RFLAGS_RF: u64 = 1 << 16;

/// A queued exception (`vcpu->arch.exception`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingException {
    pub vector: u8,
    pub error_code: Option<u32>,
}

/// A queued interrupt (`vcpu->arch.interrupt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingInterrupt {
    pub vector: u8,
    /// A software interrupt (INTn) being re-injected.
    pub soft: bool,
}

/// The events of one VCPU not yet delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventQueue {
    pub exception: Option<PendingException>,
    pub interrupt: Option<PendingInterrupt>,
    /// An NMI is being (re-)injected.
    pub nmi_injected: bool,
    /// An NMI waits for an NMI window.
    pub nmi_pending: bool,
    /// Instruction length of the software event being re-injected.
    pub event_exit_inst_len: u32,
    /// A fault while delivering #DF: the run loop shuts the VCPU down
    /// (`KVM_REQ_TRIPLE_FAULT`).
    pub triple_fault: bool,
    /// `exception` is an event whose delivery an exit interrupted (IDT
    /// vectoring information), not a new one: it is re-injected as it was.
    pub exception_reinjected: bool,
}

/// Exception classes for the double-fault rules (SDM table 6-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExceptionClass {
    Benign,
    Contributory,
    PageFault,
}

fn class(vector: u8) -> ExceptionClass {
    match vector {
        PF_VECTOR => ExceptionClass::PageFault,
        DE_VECTOR | TS_VECTOR | NP_VECTOR | SS_VECTOR | GP_VECTOR => ExceptionClass::Contributory,
        _ => ExceptionClass::Benign,
    }
}

/// Fault-class exceptions (SDM vol. 3 §6.5, table 6-1; reserved vectors
/// count as faults): all but the traps #DB, #BP, #OF and the aborts #DF,
/// #MC (Linux's `exception_type`).
pub const fn exception_is_fault(vector: u8) -> bool {
    !matches!(
        vector,
        DB_VECTOR | BP_VECTOR | OF_VECTOR | DF_VECTOR | MC_VECTOR | 2
    )
}

/// #BP and #OF are injected as software exceptions (`kvm_exception_is_soft`).
pub const fn exception_is_soft(vector: u8) -> bool {
    vector == BP_VECTOR || vector == OF_VECTOR
}

impl EventQueue {
    /// Queue exception `vector` (`kvm_multiple_exception`): a second
    /// exception while one is pending becomes #DF per SDM table 6-5, a
    /// third (on #DF) a triple fault; otherwise the new one replaces the
    /// old, which re-execution regenerates.
    pub fn queue_exception(&mut self, vector: u8, error_code: Option<u32>) {
        self.exception_reinjected = false;
        if let Some(prev) = self.exception {
            if prev.vector == DF_VECTOR {
                self.triple_fault = true;
                return;
            }
            let (c1, c2) = (class(prev.vector), class(vector));
            let double = (c1 == ExceptionClass::Contributory && c2 == ExceptionClass::Contributory)
                || (c1 == ExceptionClass::PageFault && c2 != ExceptionClass::Benign);
            if double {
                self.exception = Some(PendingException {
                    vector: DF_VECTOR,
                    error_code: Some(0),
                });
                return;
            }
        }
        self.exception = Some(PendingException { vector, error_code });
    }

    /// `kvm_event_needs_reinjection`.
    pub fn needs_reinjection(&self) -> bool {
        self.exception.is_some() || self.interrupt.is_some() || self.nmi_injected
    }

    /// `kvm_queue_interrupt`.
    pub fn queue_interrupt(&mut self, vector: u8, soft: bool) {
        self.interrupt = Some(PendingInterrupt { vector, soft });
    }
}

/// Write `info` (and its error code) into the VM-entry fields.
fn write_entry_event(
    v: &mut impl Vmcs,
    info: InterruptionInfo,
    error_code: Option<u32>,
    inst_len: Option<u32>,
) {
    if let Some(ec) = error_code {
        v.write(control::VMENTRY_EXCEPTION_ERR_CODE, u64::from(ec));
    }
    if let Some(len) = inst_len {
        v.write(control::VMENTRY_INSTRUCTION_LEN, u64::from(len));
    }
    v.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        u64::from(info.encode()),
    );
}

/// `vmx_queue_exception`: inject exception `e` on the next entry.
pub fn inject_exception(v: &mut impl Vmcs, vcpu: &mut VmxVcpu, e: PendingException) {
    if vcpu.rmode.vm86_active {
        if let Some(ec) = e.error_code {
            v.write(control::VMENTRY_EXCEPTION_ERR_CODE, u64::from(ec));
        }
        let soft = exception_is_soft(e.vector).then_some(vcpu.events.event_exit_inst_len);
        crate::rmode::inject(v, &mut vcpu.rmode, e.vector, soft);
        return;
    }
    // A CPU delivering a fault pushes RFLAGS with RF set, so that the
    // faulting instruction's breakpoint does not fire again on return
    // (SDM vol. 3 §17.3.1.1); an injected event is pushed with the guest's
    // RFLAGS as they are: set RF for a new fault (Linux's
    // `inject_pending_event`). Found by kvm-unit-tests' idt_test.
    if !vcpu.events.exception_reinjected && exception_is_fault(e.vector) {
        let rflags = v.read(guest::RFLAGS);
        v.write(guest::RFLAGS, rflags | RFLAGS_RF);
    }
    let (kind, len) = if exception_is_soft(e.vector) {
        (
            EventType::SoftwareException,
            Some(vcpu.events.event_exit_inst_len),
        )
    } else {
        (EventType::HardwareException, None)
    };
    let info = InterruptionInfo::new(e.vector, kind, e.error_code.is_some());
    write_entry_event(v, info, e.error_code, len);
}

/// `vmx_inject_irq`: inject the queued interrupt.
pub fn inject_irq(v: &mut impl Vmcs, vcpu: &mut VmxVcpu, probes: &mut impl ProbeSink) {
    let Some(irq) = vcpu.events.interrupt else {
        return;
    };
    probes.probe(Probe::InjVirq { irq: irq.vector });
    vcpu.stats.irq_injections = vcpu.stats.irq_injections.wrapping_add(1);
    if vcpu.rmode.vm86_active {
        let soft = irq.soft.then_some(vcpu.events.event_exit_inst_len);
        crate::rmode::inject(v, &mut vcpu.rmode, irq.vector, soft);
        return;
    }
    if irq.soft {
        let info = InterruptionInfo::new(irq.vector, EventType::SoftwareInterrupt, false);
        write_entry_event(v, info, None, Some(vcpu.events.event_exit_inst_len));
    } else {
        let info = InterruptionInfo::new(irq.vector, EventType::ExternalInterrupt, false);
        write_entry_event(v, info, None, None);
    }
}

/// `vmx_inject_nmi`.
pub fn inject_nmi(v: &mut impl Vmcs, vcpu: &mut VmxVcpu) {
    if !vcpu.config.virtual_nmis() {
        // Track NMI blocking in software until the next IRQ window.
        vcpu.soft_vnmi_blocked = true;
        vcpu.vnmi_blocked_time = 0;
    }
    vcpu.stats.nmi_injections = vcpu.stats.nmi_injections.wrapping_add(1);
    if vcpu.rmode.vm86_active {
        crate::rmode::inject(v, &mut vcpu.rmode, NMI_VECTOR, None);
        return;
    }
    let info = InterruptionInfo::new(NMI_VECTOR, EventType::Nmi, false);
    write_entry_event(v, info, None, None);
}

/// `vmx_interrupt_allowed`: RFLAGS.IF and no STI/MOV-SS shadow.
pub fn interrupt_allowed(v: &impl Vmcs) -> bool {
    v.read(guest::RFLAGS) & RFLAGS_IF != 0
        && v.read32(guest::INTERRUPTIBILITY_STATE)
            & (interruptibility::STI | interruptibility::MOV_SS)
            == 0
}

/// `vmx_nmi_allowed`: no NMI blocking and no MOV-SS shadow (SDM §26.3.1.5:
/// NMI injection with blocking by MOV SS fails the entry).
///
/// Not in an STI shadow either, which the C allowed: "a processor may
/// require blocking by STI to be 0" when an NMI is injected (SDM vol. 3
/// §26.3.1.5), and Bochs' VMX does (VM entry failed with invalid guest
/// state right after `sti`, kvm-unit-tests' apic.flat test_sti_nmi with
/// two VCPUs); the NMI window opens one instruction later.
pub fn nmi_allowed(v: &impl Vmcs, vcpu: &VmxVcpu) -> bool {
    if !vcpu.config.virtual_nmis() && vcpu.soft_vnmi_blocked {
        return false;
    }
    let blocking = interruptibility::STI | interruptibility::MOV_SS | interruptibility::NMI;
    v.read32(guest::INTERRUPTIBILITY_STATE) & blocking == 0
}

/// `vmx_get_nmi_mask`.
pub fn nmi_masked(v: &impl Vmcs, vcpu: &VmxVcpu) -> bool {
    if vcpu.config.virtual_nmis() {
        v.read32(guest::INTERRUPTIBILITY_STATE) & interruptibility::NMI != 0
    } else {
        vcpu.soft_vnmi_blocked
    }
}

/// `vmx_set_nmi_mask` (KVM_SET_VCPU_EVENTS).
pub fn set_nmi_mask(v: &mut impl Vmcs, vcpu: &mut VmxVcpu, masked: bool) {
    if !vcpu.config.virtual_nmis() {
        if vcpu.soft_vnmi_blocked != masked {
            vcpu.soft_vnmi_blocked = masked;
            vcpu.vnmi_blocked_time = 0;
        }
    } else if masked {
        v.set_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
    } else {
        v.clear_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
    }
}

/// The STI/MOV-SS interrupt shadow bits
/// ([`interruptibility::STI`], [`interruptibility::MOV_SS`]).
pub fn interrupt_shadow(v: &impl Vmcs) -> u32 {
    v.read32(guest::INTERRUPTIBILITY_STATE) & (interruptibility::STI | interruptibility::MOV_SS)
}

/// Replace the interrupt shadow with `mask` (`vmx_set_interrupt_shadow`);
/// the field is only written when it changes.
pub fn set_interrupt_shadow(v: &mut impl Vmcs, mask: u32) {
    let old = v.read32(guest::INTERRUPTIBILITY_STATE);
    let shadow = interruptibility::STI | interruptibility::MOV_SS;
    let new = (old & !shadow) | (mask & shadow);
    if new != old {
        v.write(guest::INTERRUPTIBILITY_STATE, u64::from(new));
    }
}

/// `skip_emulated_instruction`: advance RIP by the VM-exit instruction
/// length; stepping over an instruction ends any STI/MOV-SS shadow.
pub fn skip_instruction(v: &mut impl Vmcs) {
    let rip = v.read(guest::RIP);
    let len = v.read(ro::VMEXIT_INSTRUCTION_LEN);
    v.write(guest::RIP, rip.wrapping_add(len));
    set_interrupt_shadow(v, 0);
}

/// `enable_irq_window`: exit as soon as the guest can take an interrupt.
pub fn enable_irq_window(v: &mut impl Vmcs) {
    v.set_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::INTERRUPT_WINDOW_EXITING.bits(),
    );
}

/// `enable_nmi_window`; without virtual NMIs the IRQ window stands in.
pub fn enable_nmi_window(v: &mut impl Vmcs, vcpu: &VmxVcpu) {
    if !vcpu.config.nmi_window_exiting() {
        enable_irq_window(v);
        return;
    }
    v.set_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::NMI_WINDOW_EXITING.bits(),
    );
}

/// `vmx_update_cr8_intercept`: exit when the guest lowers its TPR below
/// the highest pending interrupt's priority class.
pub fn update_cr8_intercept(v: &mut impl Vmcs, tpr: u8, max_irr_class: Option<u8>) {
    let threshold = match max_irr_class {
        Some(irr) if tpr >= irr => irr,
        _ => 0,
    };
    v.write(control::TPR_THRESHOLD, u64::from(threshold));
}

/// `inject_pending_event` (kvm_x86.c): re-inject what an exit interrupted,
/// else start a new NMI or interrupt when the guest can take it.
pub fn inject_pending_event(
    v: &mut impl Vmcs,
    vcpu: &mut VmxVcpu,
    irqs: &mut (impl InterruptSource + ProbeSink),
) {
    if let Some(e) = vcpu.events.exception {
        inject_exception(v, vcpu, e);
        return;
    }
    if vcpu.events.nmi_injected {
        inject_nmi(v, vcpu);
        return;
    }
    if vcpu.events.interrupt.is_some() {
        inject_irq(v, vcpu, irqs);
        return;
    }
    if vcpu.events.nmi_pending {
        if nmi_allowed(v, vcpu) {
            vcpu.events.nmi_pending = false;
            vcpu.events.nmi_injected = true;
            inject_nmi(v, vcpu);
        }
    } else if irqs.has_interrupt()
        && interrupt_allowed(v)
        && let Some(vector) = irqs.get_interrupt()
    {
        vcpu.events.queue_interrupt(vector, false);
        inject_irq(v, vcpu, irqs);
    }
}

/// What the host must do right after an exit, before interrupts are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostEvents {
    /// The exit was a host NMI: deliver it (`int $2`).
    pub nmi: bool,
    /// A machine check hit during entry or in the guest.
    pub machine_check: bool,
}

/// `vmx_complete_interrupts`: after an exit, put an event whose delivery
/// the exit interrupted back in the queue (SDM §27.2.4), fix NMI blocking
/// (§27.7.1.2), and report host NMIs / machine checks.
pub fn complete_interrupts(v: &mut impl Vmcs, vcpu: &mut VmxVcpu) -> HostEvents {
    let exit_info = InterruptionInfo::decode(v.read32(ro::VMEXIT_INTERRUPTION_INFO));
    let basic = crate::exit_reason::basic(vcpu.exit_reason);
    let mut host = HostEvents {
        machine_check: basic == crate::ExitReason::MceDuringVmentry as u16
            || (basic == crate::ExitReason::ExceptionNmi as u16
                && matches!(exit_info, Some(i) if i.kind == EventType::HardwareException
                    && i.vector == crate::setup::MC_VECTOR)),
        ..HostEvents::default()
    };
    if matches!(exit_info, Some(i) if i.kind == EventType::Nmi) {
        host.nmi = true;
    }
    let idt = InterruptionInfo::decode(vcpu.idt_vectoring_info);

    if vcpu.config.virtual_nmis() {
        // A guest IRET that faulted unblocked NMIs; the exit did not
        // re-block them: do it now (bit 12 is undefined with valid IDT
        // vectoring info or for #DF).
        if let Some(i) = exit_info
            && i.nmi_unblocking
            && i.vector != DF_VECTOR
            && idt.is_none()
        {
            v.set_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
        }
    }

    vcpu.events.nmi_injected = false;
    vcpu.events.exception = None;
    vcpu.events.interrupt = None;

    let Some(idt) = idt else {
        return host;
    };
    match idt.kind {
        EventType::Nmi => {
            vcpu.events.nmi_injected = true;
            // NMI delivery faulted: NMIs are not blocked yet.
            v.clear_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
        }
        EventType::SoftwareException | EventType::HardwareException => {
            if idt.kind == EventType::SoftwareException {
                vcpu.events.event_exit_inst_len = v.read32(ro::VMEXIT_INSTRUCTION_LEN);
            }
            let error_code = idt
                .has_error_code
                .then(|| v.read32(ro::IDT_VECTORING_ERR_CODE));
            vcpu.events.queue_exception(idt.vector, error_code);
            vcpu.events.exception_reinjected = true;
        }
        EventType::SoftwareInterrupt | EventType::ExternalInterrupt => {
            let soft = idt.kind == EventType::SoftwareInterrupt;
            if soft {
                vcpu.events.event_exit_inst_len = v.read32(ro::VMEXIT_INSTRUCTION_LEN);
            }
            vcpu.events.queue_interrupt(idt.vector, soft);
        }
        EventType::PrivilegedSoftwareException | EventType::Other => {}
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VmcsConfig;
    use crate::caps::tests::{nehalem, skylake};
    use crate::fake::FakeVmcs;
    use crate::setup::{AC_VECTOR, UD_VECTOR};

    struct Irqs {
        pending: Option<u8>,
        probes: std::vec::Vec<Probe>,
    }
    impl InterruptSource for Irqs {
        fn has_interrupt(&mut self) -> bool {
            self.pending.is_some()
        }
        fn get_interrupt(&mut self) -> Option<u8> {
            self.pending.take()
        }
    }
    impl ProbeSink for Irqs {
        fn probe(&mut self, p: Probe) {
            self.probes.push(p);
        }
    }

    fn vcpu() -> VmxVcpu {
        VmxVcpu::new(VmcsConfig::probe(&skylake()).unwrap())
    }
    fn entry_info(v: &FakeVmcs) -> u64 {
        v.get(control::VMENTRY_INTERRUPTION_INFO_FIELD).unwrap_or(0)
    }

    #[test]
    fn double_and_triple_fault_rules() {
        // Table 6-5: contributory + contributory → #DF.
        let mut q = EventQueue::default();
        q.queue_exception(GP_VECTOR, Some(0));
        q.queue_exception(NP_VECTOR, Some(8));
        assert_eq!(
            q.exception,
            Some(PendingException {
                vector: DF_VECTOR,
                error_code: Some(0)
            })
        );
        // A further exception on #DF → triple fault.
        q.queue_exception(GP_VECTOR, Some(0));
        assert!(q.triple_fault);
        // #PF + #PF → #DF; #PF + contributory → #DF.
        for second in [PF_VECTOR, GP_VECTOR, DE_VECTOR] {
            let mut q = EventQueue::default();
            q.queue_exception(PF_VECTOR, Some(2));
            q.queue_exception(second, Some(0));
            assert_eq!(q.exception.unwrap().vector, DF_VECTOR, "PF then {second}");
        }
        // Contributory then #PF, or anything with a benign one: serial,
        // the new one replaces the old.
        for (first, second) in [
            (GP_VECTOR, PF_VECTOR),
            (UD_VECTOR, GP_VECTOR),
            (PF_VECTOR, DB_VECTOR),
        ] {
            let mut q = EventQueue::default();
            q.queue_exception(first, None);
            q.queue_exception(second, None);
            assert_eq!(q.exception.unwrap().vector, second, "{first} then {second}");
            assert!(!q.triple_fault);
        }
    }

    #[test]
    fn exception_injection_encodes_type_and_error_code() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        inject_exception(
            &mut v,
            &mut c,
            PendingException {
                vector: GP_VECTOR,
                error_code: Some(0x18),
            },
        );
        assert_eq!(entry_info(&v), 0x8000_0b0d);
        assert_eq!(v.get(control::VMENTRY_EXCEPTION_ERR_CODE), Some(0x18));
        // #AC has an error code too; #UD has none.
        inject_exception(
            &mut v,
            &mut c,
            PendingException {
                vector: UD_VECTOR,
                error_code: None,
            },
        );
        assert_eq!(entry_info(&v), 0x8000_0306);
        // #BP is a software exception with the instruction length.
        c.events.event_exit_inst_len = 1;
        inject_exception(
            &mut v,
            &mut c,
            PendingException {
                vector: BP_VECTOR,
                error_code: None,
            },
        );
        assert_eq!(entry_info(&v), 0x8000_0603);
        assert_eq!(v.get(control::VMENTRY_INSTRUCTION_LEN), Some(1));
        let _ = AC_VECTOR;
    }

    /// SDM vol. 3 §6.5 / §17.3.1.1: a fault is delivered with RF set in the
    /// pushed RFLAGS; traps (#DB, #BP, #OF) and aborts (#DF) are not, and a
    /// re-injected event keeps the RFLAGS the interrupted delivery had.
    #[test]
    fn new_faults_are_injected_with_rflags_rf() {
        let rf = |vector: u8, reinjected: bool| {
            let mut v = FakeVmcs::new();
            v.write(guest::RFLAGS, 0x2);
            let mut c = vcpu();
            c.events.queue_exception(vector, None);
            c.events.exception_reinjected = reinjected;
            let e = c.events.exception.unwrap();
            inject_exception(&mut v, &mut c, e);
            v.get(guest::RFLAGS).unwrap() & (1 << 16) != 0
        };
        for fault in [0u8, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21] {
            assert!(rf(fault, false), "fault {fault}");
            assert!(!rf(fault, true), "re-injected fault {fault}");
        }
        for not_fault in [1u8, 3, 4, 8, 18] {
            assert!(!rf(not_fault, false), "vector {not_fault}");
        }
        // complete_interrupts marks what it requeues as re-injected; a
        // new exception queued afterwards is new again.
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        c.idt_vectoring_info = 0x8000_0b0e;
        complete_interrupts(&mut v, &mut c);
        assert!(c.events.exception_reinjected);
        c.events.exception = None;
        c.events.queue_exception(GP_VECTOR, Some(0));
        assert!(!c.events.exception_reinjected);
    }

    #[test]
    fn new_interrupt_needs_if_and_no_shadow() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        let mut irqs = Irqs {
            pending: Some(0x30),
            probes: std::vec::Vec::new(),
        };
        // IF clear: nothing injected, interrupt stays with the controller.
        v.write(guest::RFLAGS, 0x2);
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        assert_eq!(irqs.pending, Some(0x30));
        // IF set but STI shadow: still not.
        v.write(guest::RFLAGS, 0x202);
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::STI),
        );
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        // MOV SS shadow: not either.
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::MOV_SS),
        );
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        // Shadow gone: external interrupt 0x30.
        v.write(guest::INTERRUPTIBILITY_STATE, 0);
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0x8000_0030);
        assert_eq!(c.stats.irq_injections, 1);
        assert_eq!(irqs.probes, [Probe::InjVirq { irq: 0x30 }]);
    }

    #[test]
    fn nmi_waits_for_nmi_blocking_and_the_mov_ss_and_sti_shadows() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        let mut irqs = Irqs {
            pending: None,
            probes: std::vec::Vec::new(),
        };
        c.events.nmi_pending = true;
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::NMI),
        );
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::MOV_SS),
        );
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        // STI blocking does not block NMIs on delivery (SDM table 25-3),
        // but a processor may refuse the VM entry that injects one in an
        // STI shadow (§26.3.1.5): wait for the window.
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::STI),
        );
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0);
        v.write(guest::INTERRUPTIBILITY_STATE, 0);
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0x8000_0202);
        assert!(c.events.nmi_injected && !c.events.nmi_pending);
        assert_eq!(c.stats.nmi_injections, 1);
    }

    #[test]
    fn reinjection_order_exception_nmi_interrupt() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        let mut irqs = Irqs {
            pending: Some(0x40),
            probes: std::vec::Vec::new(),
        };
        c.events.exception = Some(PendingException {
            vector: PF_VECTOR,
            error_code: Some(2),
        });
        c.events.nmi_injected = true;
        c.events.queue_interrupt(0x31, false);
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0x8000_0b0e);
        c.events.exception = None;
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0x8000_0202);
        c.events.nmi_injected = false;
        // The re-injected interrupt goes even with IF clear: it was
        // already being delivered.
        v.write(guest::RFLAGS, 0x2);
        inject_pending_event(&mut v, &mut c, &mut irqs);
        assert_eq!(entry_info(&v), 0x8000_0031);
        assert_eq!(irqs.pending, Some(0x40), "no new interrupt acknowledged");
    }

    #[test]
    fn idt_vectoring_info_is_requeued() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        // #PF with error code 6 during delivery.
        c.idt_vectoring_info = 0x8000_0b0e;
        v.set_exit_info(ro::IDT_VECTORING_ERR_CODE, 6);
        complete_interrupts(&mut v, &mut c);
        assert_eq!(
            c.events.exception,
            Some(PendingException {
                vector: PF_VECTOR,
                error_code: Some(6)
            })
        );
        // External interrupt 0x30.
        c.idt_vectoring_info = 0x8000_0030;
        complete_interrupts(&mut v, &mut c);
        assert_eq!(c.events.exception, None);
        assert_eq!(
            c.events.interrupt,
            Some(PendingInterrupt {
                vector: 0x30,
                soft: false
            })
        );
        // Software interrupt INT 0x80 (2 bytes) keeps its length.
        c.idt_vectoring_info = 0x8000_0480;
        v.set_exit_info(ro::VMEXIT_INSTRUCTION_LEN, 2);
        complete_interrupts(&mut v, &mut c);
        assert_eq!(
            c.events.interrupt,
            Some(PendingInterrupt {
                vector: 0x80,
                soft: true
            })
        );
        assert_eq!(c.events.event_exit_inst_len, 2);
        // NMI: re-injected, blocking by NMI cleared.
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::NMI),
        );
        c.idt_vectoring_info = 0x8000_0202;
        complete_interrupts(&mut v, &mut c);
        assert!(c.events.nmi_injected);
        assert_eq!(v.get(guest::INTERRUPTIBILITY_STATE), Some(0));
        // Nothing valid: queue emptied.
        c.idt_vectoring_info = 0;
        complete_interrupts(&mut v, &mut c);
        assert!(!c.events.needs_reinjection());
    }

    #[test]
    fn faulting_iret_reblocks_nmis_and_host_nmi_is_reported() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        c.exit_reason = 0;
        // #GP in the guest with "NMI unblocking due to IRET".
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_1b0d);
        let h = complete_interrupts(&mut v, &mut c);
        assert_eq!(
            v.get(guest::INTERRUPTIBILITY_STATE),
            Some(u64::from(interruptibility::NMI))
        );
        assert!(!h.nmi && !h.machine_check);
        // Bit 12 on a #DF is undefined: ignored.
        v.write(guest::INTERRUPTIBILITY_STATE, 0);
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_1b08);
        complete_interrupts(&mut v, &mut c);
        assert_eq!(v.get(guest::INTERRUPTIBILITY_STATE), Some(0));
        // A host NMI exit, and a machine check.
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0202);
        assert!(complete_interrupts(&mut v, &mut c).nmi);
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0312);
        assert!(complete_interrupts(&mut v, &mut c).machine_check);
    }

    #[test]
    fn windows_and_shadow() {
        let mut v = FakeVmcs::new();
        let c = vcpu();
        v.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, 0);
        enable_nmi_window(&mut v, &c);
        assert_eq!(
            v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
            Some(1 << 22)
        );
        enable_irq_window(&mut v);
        assert_eq!(
            v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
            Some(1 << 22 | 1 << 2)
        );
        // Without virtual NMIs the IRQ window stands in.
        let mut c2 = c.clone();
        c2.config.pin &= !(1 << 5);
        v.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, 0);
        enable_nmi_window(&mut v, &c2);
        assert_eq!(
            v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
            Some(1 << 2)
        );
        // Shadow: set, read back, skip clears it, NMI blocking kept.
        v.write(
            guest::INTERRUPTIBILITY_STATE,
            u64::from(interruptibility::NMI),
        );
        set_interrupt_shadow(&mut v, interruptibility::STI);
        assert_eq!(interrupt_shadow(&v), interruptibility::STI);
        v.set_exit_info(ro::VMEXIT_INSTRUCTION_LEN, 3);
        v.write(guest::RIP, 0x1000);
        skip_instruction(&mut v);
        assert_eq!(v.get(guest::RIP), Some(0x1003));
        assert_eq!(
            v.get(guest::INTERRUPTIBILITY_STATE),
            Some(u64::from(interruptibility::NMI))
        );
        let _ = nehalem;
    }

    #[test]
    fn soft_nmi_blocking_without_virtual_nmis() {
        let mut v = FakeVmcs::new();
        let mut c = vcpu();
        c.config.pin &= !(1 << 5);
        assert!(nmi_allowed(&v, &c));
        inject_nmi(&mut v, &mut c);
        assert!(c.soft_vnmi_blocked && nmi_masked(&v, &c));
        assert!(!nmi_allowed(&v, &c));
        set_nmi_mask(&mut v, &mut c, false);
        assert!(nmi_allowed(&v, &c));
    }

    #[test]
    fn tpr_threshold() {
        let mut v = FakeVmcs::new();
        update_cr8_intercept(&mut v, 5, Some(3));
        assert_eq!(v.get(control::TPR_THRESHOLD), Some(3));
        update_cr8_intercept(&mut v, 2, Some(3));
        assert_eq!(v.get(control::TPR_THRESHOLD), Some(0));
        update_cr8_intercept(&mut v, 2, None);
        assert_eq!(v.get(control::TPR_THRESHOLD), Some(0));
    }
}
