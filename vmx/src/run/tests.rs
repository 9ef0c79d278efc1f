//! The run loop over a scripted CPU: each VM entry consumes one scripted
//! exit, written into the (shared) fake VMCS as the CPU would.

use super::*;
use crate::caps::VmcsConfig;
use crate::caps::tests::skylake;
use crate::exit::tests::{FakeEnv, parts};
use crate::exit_reason::ExitReason;
use crate::fake::{FakeOp, FakeVmcs};
use crate::qualification::IoDirection;
use crate::vcpu::{GuestRegs, MmioExit};
use crate::vmcs::{InvvpidType, VmFail};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;
use x86::vmx::vmcs::control;

/// The VMCS the run loop and the scripted CPU both see.
#[derive(Clone, Default)]
pub(crate) struct SharedVmcs(pub(crate) Rc<RefCell<FakeVmcs>>);

impl Vmcs for SharedVmcs {
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        self.0.borrow().vmread(field)
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        self.0.borrow_mut().vmwrite(field, value)
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.borrow_mut().vmptrld(pa)
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.borrow_mut().vmclear(pa)
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        self.0.borrow_mut().invept(kind, eptp)
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        self.0.borrow_mut().invvpid(kind, vpid, gva)
    }
}

/// One VM exit the scripted CPU produces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scripted {
    pub(crate) result: EntryResult,
    pub(crate) reason: ExitReason,
    pub(crate) len: u64,
    pub(crate) qual: u64,
    pub(crate) vm_instruction_error: u64,
    pub(crate) intr_info: u64,
}

fn ex(reason: ExitReason, len: u64, qual: u64) -> Scripted {
    Scripted {
        result: EntryResult::Exited,
        reason,
        len,
        qual,
        vm_instruction_error: 0,
        intr_info: 0,
    }
}

/// Run-loop side of the fake driver.
#[derive(Default)]
pub(crate) struct RunScript {
    pub(crate) vmcs: SharedVmcs,
    pub(crate) exits: VecDeque<Scripted>,
    /// `launched` of each entry.
    pub(crate) entries: Vec<bool>,
    /// Calls in order (preemption, interrupts, SMT, blocking...).
    pub(crate) log: Vec<&'static str>,
    /// `signal_pending` answers; empty: no signal.
    pub(crate) signals: VecDeque<bool>,
    pub(crate) smt: VecDeque<SmtAcquire>,
    /// `block` finds the VCPU runnable (an interrupt arrived) and sets
    /// UNHALT.
    pub(crate) wake_on_block: bool,
    pub(crate) pending_timer: bool,
    pub(crate) mmu_reload_error: Option<i32>,
    pub(crate) mmio_completed: Vec<[u8; 8]>,
    pub(crate) host_nmis: u32,
    /// Guest RAX the scripted CPU observed at each entry.
    pub(crate) rax_at_entry: Vec<u64>,
    /// `preemption_timer` answer.
    pub(crate) preemption_timer: Option<u32>,
    /// NMIs the LAPIC has for `take_nmi`.
    pub(crate) lapic_nmis: u32,
    /// (pin-based controls, preemption timer value) at each entry.
    pub(crate) pin_at_entry: Vec<(u64, u64)>,
    /// DR0–DR3 "in the CPU" (`load_debug_regs`).
    pub(crate) debug_regs: Option<[u64; 4]>,
}

impl GuestEntry for FakeEnv {
    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> EntryResult {
        self.run.entries.push(launched);
        self.run.rax_at_entry.push(regs.rax);
        {
            let v = self.run.vmcs.0.borrow();
            let pin = v.read(control::PINBASED_EXEC_CONTROLS);
            let value = v.read(guest::VMX_PREEMPTION_TIMER_VALUE);
            self.run.pin_at_entry.push((pin, value));
        }
        let s = self
            .run
            .exits
            .pop_front()
            .unwrap_or(ex(ExitReason::TripleFault, 0, 0));
        let mut v = self.run.vmcs.0.borrow_mut();
        v.set_exit_info(ro::EXIT_REASON, s.reason as u64);
        v.set_exit_info(ro::VMEXIT_INSTRUCTION_LEN, s.len);
        v.set_exit_info(ro::EXIT_QUALIFICATION, s.qual);
        v.set_exit_info(ro::VM_INSTRUCTION_ERROR, s.vm_instruction_error);
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, s.intr_info);
        v.set_exit_info(ro::IDT_VECTORING_INFO, 0);
        s.result
    }
}

impl RunEnv for FakeEnv {
    fn preemption_timer(&mut self) -> Option<u32> {
        self.run.preemption_timer
    }
    fn deliver_kicks(&mut self) {
        self.run.log.push("deliver_kicks");
    }
    fn take_nmi(&mut self) -> bool {
        let had = self.run.lapic_nmis > 0;
        self.run.lapic_nmis = self.run.lapic_nmis.saturating_sub(1);
        had
    }
    fn preempt_disable(&mut self) {
        self.run.log.push("preempt_disable");
    }
    fn preempt_enable(&mut self) {
        self.run.log.push("preempt_enable");
    }
    fn interrupts_disable(&mut self) {
        self.run.log.push("cli");
    }
    fn interrupts_enable(&mut self) {
        self.run.log.push("sti");
    }
    fn signal_pending(&mut self) -> bool {
        self.run.signals.pop_front().unwrap_or(false)
    }
    fn block(&mut self, vcpu: &VmxVcpu) {
        self.run.log.push("block");
        if self.run.wake_on_block {
            vcpu.requests.set(Request::Unhalt);
        }
    }
    fn smt_mark_as_vcpu(&mut self) {
        self.run.log.push("smt_mark");
    }
    fn smt_acquire(&mut self) -> SmtAcquire {
        self.run.log.push("smt_acquire");
        self.run.smt.pop_front().unwrap_or(SmtAcquire::Acquired)
    }
    fn smt_release(&mut self) {
        self.run.log.push("smt_release");
    }
    fn migrate(&mut self) {
        self.run.log.push("migrate");
    }
    fn mmu_unload(&mut self, _: &mut VmxVcpu) {
        self.run.log.push("mmu_unload");
    }
    fn mmu_reload(&mut self, _: &mut VmxVcpu, _: &mut dyn Vmcs) -> Result<(), i32> {
        self.run.mmu_reload_error.map_or(Ok(()), Err)
    }
    fn mmu_sync_roots(&mut self, _: &mut VmxVcpu) {
        self.run.log.push("mmu_sync");
    }
    fn kvmclock_update(&mut self, _: &mut VmxVcpu) {
        self.run.log.push("kvmclock");
    }
    fn prepare_guest_switch(&mut self, _: &mut VmxVcpu) {
        self.run.log.push("prepare_guest_switch");
    }
    fn load_guest_fpu(&mut self) {
        self.run.log.push("load_guest_fpu");
    }
    fn host_cr0(&self) -> u64 {
        0x8005_003b
    }
    fn lapic_enabled(&mut self) -> bool {
        self.irqchip
    }
    fn lapic_tpr_class(&mut self) -> u8 {
        0
    }
    fn lapic_highest_irr_class(&mut self) -> Option<u8> {
        None
    }
    fn host_nmi(&mut self) {
        self.run.host_nmis += 1;
    }
    fn has_pending_timer(&mut self) -> bool {
        self.run.pending_timer
    }
    fn inject_pending_timer_irqs(&mut self) {
        self.run.log.push("inject_timer");
        self.run.pending_timer = false;
    }
    fn reset_vcpu(&mut self, _: &mut VmxVcpu, _: &mut dyn Vmcs) -> Result<(), i32> {
        self.run.log.push("reset_vcpu");
        Ok(())
    }
    fn complete_mmio_read(&mut self, data: &[u8; 8]) {
        self.run.mmio_completed.push(*data);
    }
    fn complete_string_pio(&mut self, _: &mut VmxVcpu, _: &mut dyn Vmcs) {
        self.run.log.push("complete_string_pio");
    }
    fn apic_base(&mut self) -> u64 {
        0xfee0_0900
    }
    fn load_debug_regs(&mut self, db: &[u64; 4]) {
        self.run.log.push("load_debug_regs");
        self.run.debug_regs = Some(*db);
    }
}

struct R {
    vcpu: VmxVcpu,
    v: SharedVmcs,
    env: FakeEnv,
}

/// A runnable 64-bit guest and a CPU that will produce `exits`.
fn setup(exits: Vec<Scripted>) -> R {
    let (vcpu, fake, mut env) = parts(ExitReason::Cpuid, 0, 0);
    let v = SharedVmcs(Rc::new(RefCell::new(fake)));
    env.run.vmcs = v.clone();
    env.run.exits = exits.into();
    R { vcpu, v, env }
}

impl R {
    fn run(&mut self, input: RunInput) -> (Result<(), RunError>, RunOutput) {
        vcpu_run(&mut self.vcpu, &mut self.v, &mut self.env, &input)
    }
    fn vmcs(&self) -> std::cell::Ref<'_, FakeVmcs> {
        self.v.0.borrow()
    }
}

fn out_exit() -> Scripted {
    // out %al,$0x3f8 → userspace.
    ex(ExitReason::IoInstruction, 2, 0x03f8_0040)
}

#[test]
fn exits_handled_in_kernel_loop_until_one_is_for_userspace() {
    let mut r = setup(vec![
        ex(ExitReason::Cpuid, 2, 0),
        ex(ExitReason::Wbinvd, 2, 0),
        out_exit(),
    ]);
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert_eq!(
        r.env.run.entries,
        vec![false, true, true],
        "VMLAUNCH then VMRESUME"
    );
    assert!(matches!(
        r.vcpu.exit,
        Some(UserExit::Io { port: 0x3f8, .. })
    ));
    assert_eq!(r.vcpu.stats.exits, 3);
    assert_eq!(r.vmcs().get(guest::RIP), Some(0x1000 + 6));
    assert_eq!(r.env.run.log.first(), Some(&"smt_mark"));
    assert!(r.env.probes.contains(&Probe::VmLaunch) && r.env.probes.contains(&Probe::VmResume));
}

#[test]
fn preemption_and_interrupts_bracket_the_entry() {
    let mut r = setup(vec![out_exit()]);
    let _ = r.run(RunInput::default());
    let log: Vec<&str> = r
        .env
        .run
        .log
        .iter()
        .copied()
        .filter(|s| *s != "smt_mark")
        .collect();
    assert_eq!(
        log,
        vec![
            "preempt_disable",
            "prepare_guest_switch",
            "load_guest_fpu",
            "cli",
            "smt_acquire",
            "smt_release",
            "sti",
            "preempt_enable",
            "deliver_kicks",
        ]
    );
    // The host CR0 is refreshed before each entry.
    assert_eq!(r.vmcs().get(host::CR0), Some(0x8005_003b));
}

#[test]
fn signal_before_entry_is_eintr_without_entering() {
    let mut r = setup(vec![out_exit()]);
    r.env.run.signals = VecDeque::from([true, true]);
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Err(RunError::Interrupted));
    assert_eq!(r.vcpu.exit, Some(UserExit::Intr));
    assert_eq!(r.vcpu.exit.unwrap().abi_exit_reason(), 10);
    assert!(r.env.run.entries.is_empty());
    assert_eq!(r.vcpu.stats.signal_exits, 1);
    assert!(r.vcpu.requests.test(Request::Kick));
}

#[test]
fn signal_after_an_in_kernel_exit_is_eintr() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    // Checked before entry (no), then after the CPUID exit (yes).
    r.env.run.signals = VecDeque::from([false, true]);
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Err(RunError::Interrupted));
    assert_eq!(r.env.run.entries.len(), 1);
}

#[test]
fn halted_vcpu_blocks_until_unhalt() {
    let mut r = setup(vec![ex(ExitReason::Hlt, 1, 0), out_exit()]);
    r.env.run.wake_on_block = true;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert_eq!(r.vcpu.stats.halt_exits, 1);
    assert_eq!(r.vcpu.mp_state, MpState::Runnable);
    assert_eq!(r.env.run.log.iter().filter(|s| **s == "block").count(), 1);
    assert_eq!(r.env.run.entries, vec![false, true]);
    assert_eq!(r.vmcs().get(guest::RIP), Some(0x1000 + 1 + 2));
}

#[test]
fn pending_timer_is_injected_between_entries() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    r.env.run.pending_timer = true;
    r.vcpu.requests.set(Request::PendingTimer);
    let _ = r.run(RunInput::default());
    assert!(r.env.run.log.contains(&"inject_timer"));
    assert!(!r.vcpu.requests.test(Request::PendingTimer));
}

#[test]
fn pio_in_completes_from_the_pio_page_on_the_next_run() {
    // in $0x71,%al with no in-kernel device.
    let mut r = setup(vec![
        ex(ExitReason::IoInstruction, 2, 0x0071_0048),
        out_exit(),
    ]);
    r.vcpu.regs.rax = 0xaa00;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert_eq!(
        r.vcpu.exit,
        Some(UserExit::Io {
            direction: IoDirection::In,
            size: 1,
            port: 0x71,
            count: 1,
            data_offset: 4096
        })
    );
    // Userspace answers 0x42 in the PIO page.
    r.env.pio_page[0] = 0x42;
    let _ = r.run(RunInput::default());
    assert_eq!(r.env.run.rax_at_entry, vec![0xaa00, 0xaa42]);
    assert_eq!(
        r.vcpu.pio.map(|p| p.port),
        Some(0x3f8),
        "the OUT that ended this run"
    );
}

#[test]
fn mmio_read_completes_through_the_emulator() {
    let m = MmioExit {
        phys_addr: 0xfebf_0000,
        data: [0; 8],
        len: 4,
        is_write: false,
    };
    let mut r = setup(vec![ex(ExitReason::EptViolation, 0, 0x181), out_exit()]);
    r.env.page_fault = Some(Emulation::Mmio(m));
    let _ = r.run(RunInput::default());
    assert_eq!(r.vcpu.exit, Some(UserExit::Mmio(m)));
    assert!(r.vcpu.mmio_read_pending);
    let input = RunInput {
        mmio_data: [1, 2, 3, 4, 0, 0, 0, 0],
        ..RunInput::default()
    };
    let (res, _) = r.run(input);
    assert_eq!(res, Ok(()));
    assert_eq!(r.env.run.mmio_completed, vec![[1, 2, 3, 4, 0, 0, 0, 0]]);
    assert!(r.env.emulated.contains(&EmulationReason::CompleteMmio));
    assert!(!r.vcpu.mmio_read_pending);
}

#[test]
fn uninitialized_ap_is_eagain_and_sipi_resets() {
    let mut r = setup(vec![out_exit()]);
    r.vcpu.mp_state = MpState::Uninitialized;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Err(RunError::Again));
    assert!(r.env.run.entries.is_empty());
    r.vcpu.mp_state = MpState::SipiReceived;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert!(r.env.run.log.contains(&"reset_vcpu"));
    assert_eq!(r.vcpu.mp_state, MpState::Runnable);
}

#[test]
fn init_received_blocks_and_sipi_while_blocked_is_eintr() {
    let mut r = setup(vec![]);
    r.vcpu.mp_state = MpState::InitReceived;
    r.env.run.wake_on_block = true;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Err(RunError::Interrupted));
    assert!(r.env.run.entries.is_empty());
}

#[test]
fn requests_are_served_before_entry() {
    let mut r = setup(vec![out_exit()]);
    r.vcpu.vpid = 3;
    r.vcpu.ept_root = 0x30_0000;
    r.vcpu.requests.set(Request::TlbFlush);
    r.vcpu.requests.set(Request::MmuReload);
    r.vcpu.requests.set(Request::KvmclockUpdate);
    let _ = r.run(RunInput::default());
    let ops = r.vmcs().ops.clone();
    assert!(ops.contains(&FakeOp::Invvpid(InvvpidType::SingleContext, 3, 0)));
    assert!(ops.contains(&FakeOp::Invept(InveptType::SingleContext, 0x30_0000 | 0x1e)));
    assert!(r.env.run.log.contains(&"mmu_unload") && r.env.run.log.contains(&"kvmclock"));
    // Triple fault and TPR access go straight to userspace.
    let mut r = setup(vec![out_exit()]);
    r.vcpu.requests.set(Request::TripleFault);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.vcpu.exit, Some(UserExit::Shutdown));
    assert!(r.env.run.entries.is_empty());
    let mut r = setup(vec![out_exit()]);
    r.vcpu.requests.set(Request::ReportTprAccess);
    let _ = r.run(RunInput::default());
    assert_eq!(r.vcpu.exit, Some(UserExit::TprAccess));
    // A #DF + fault queued by a handler is a triple fault.
    let mut r = setup(vec![out_exit()]);
    r.vcpu.events.triple_fault = true;
    let _ = r.run(RunInput::default());
    assert_eq!(r.vcpu.exit, Some(UserExit::Shutdown));
    // An MMU error is returned.
    let mut r = setup(vec![out_exit()]);
    r.env.run.mmu_reload_error = Some(12);
    assert_eq!(r.run(RunInput::default()).0, Err(RunError::Errno(12)));
}

#[test]
fn lost_smt_race_retries_and_may_migrate() {
    let mut r = setup(vec![out_exit()]);
    r.env.run.smt = VecDeque::from([SmtAcquire::Busy, SmtAcquire::Migrate]);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.env.run.entries.len(), 1);
    assert_eq!(
        r.env
            .run
            .log
            .iter()
            .filter(|s| **s == "smt_acquire")
            .count(),
        3
    );
    assert!(r.env.run.log.contains(&"migrate"));
}

#[test]
fn host_preemption_returns_to_the_host() {
    let mut r = setup(vec![ex(ExitReason::ExternalInterrupt, 0, 0), out_exit()]);
    r.env.host_wants_cpu = true;
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.vcpu.exit, Some(UserExit::Intr));
    assert_eq!(r.env.run.entries.len(), 1);
}

#[test]
fn userspace_irq_window_is_eintr_when_open() {
    let mut r = setup(vec![ex(ExitReason::PendingInterrupt, 0, 0), out_exit()]);
    r.env.irqchip = false;
    r.v.write(guest::RFLAGS, 0x202);
    let (res, out) = r.run(RunInput {
        request_interrupt_window: true,
        ..RunInput::default()
    });
    // The window exit itself reports IRQ_WINDOW_OPEN.
    assert_eq!(res, Ok(()));
    assert_eq!(r.vcpu.exit, Some(UserExit::IrqWindowOpen));
    assert!(out.ready_for_interrupt_injection && out.if_flag);
    // The interrupt-window exiting control was requested before entry.
    assert!(
        r.vmcs()
            .writes
            .iter()
            .any(|(f, v)| *f == control::PRIMARY_PROCBASED_EXEC_CONTROLS && v & (1 << 2) != 0)
    );
    // After an in-kernel exit with IF set, the loop stops with EINTR.
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    r.env.irqchip = false;
    let (res, _) = r.run(RunInput {
        request_interrupt_window: true,
        ..RunInput::default()
    });
    assert_eq!(res, Err(RunError::Interrupted));
    assert_eq!(r.vcpu.stats.request_irq_exits, 1);
    assert_eq!(r.vcpu.stats.irq_exits, 0, "no host interrupt exit happened");
}

#[test]
fn vmfail_reports_fail_entry_and_stays_unlaunched() {
    let mut r = setup(vec![Scripted {
        result: EntryResult::VmFailValid,
        reason: ExitReason::Cpuid,
        len: 0,
        qual: 0,
        vm_instruction_error: 7,
        intr_info: 0,
    }]);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(
        r.vcpu.exit,
        Some(UserExit::FailEntry {
            hardware_entry_failure_reason: 7
        })
    );
    assert!(!r.vcpu.launched);
}

#[test]
fn pending_nmi_opens_an_nmi_window_when_blocked() {
    let mut r = setup(vec![ex(ExitReason::NmiWindow, 0, 0), out_exit()]);
    r.vcpu.events.nmi_pending = true;
    r.v.write(guest::INTERRUPTIBILITY_STATE, 8); // blocked by NMI
    let _ = r.run(RunInput::default());
    assert!(
        r.vmcs()
            .writes
            .iter()
            .any(|(f, v)| *f == control::PRIMARY_PROCBASED_EXEC_CONTROLS && v & (1 << 22) != 0)
    );
    assert_eq!(r.vcpu.stats.nmi_window_exits, 1);
}

#[test]
fn kick_pokes_once_and_load_put_follow_the_thread() {
    let q = Requests::default();
    assert!(q.kick(), "first kick needs an IPI");
    assert!(!q.kick(), "already kicked");
    q.clear(Request::Kick);
    assert!(q.kick());

    let cfg = VmcsConfig::probe(&skylake()).unwrap();
    let mut vcpu = VmxVcpu::new(cfg);
    vcpu.vmcs_pa = 0x8000;
    let mut v = FakeVmcs::new();
    let host = HostCpuState {
        tr_base: 0x1000,
        ..HostCpuState::default()
    };
    vcpu_load(&mut v, &mut vcpu, 2, &host, 5);
    assert_eq!(v.current, Some(0x8000));
    assert_eq!(v.get(host::TR_BASE), Some(0x1000));
    assert!(vcpu.requests.take(Request::TlbFlush));
    // Same CPU again: no host rewrite, no flush.
    let n = v.writes.len();
    vcpu_load(&mut v, &mut vcpu, 2, &host, 5);
    assert_eq!(v.writes.len(), n);
    assert!(!vcpu.requests.test(Request::TlbFlush));
    vcpu.launched = true;
    vcpu_put(&mut v, &mut vcpu);
    assert_eq!(v.current, None);
    assert!(!vcpu.launched, "VMCLEAR: next entry is VMLAUNCH");
}

#[test]
fn fpu_deactivate_request_sets_ts_and_intercepts_nm() {
    let mut r = setup(vec![out_exit()]);
    r.vcpu.requests.set(Request::DeactivateFpu);
    let _ = r.run(RunInput::default());
    assert!(!r.vcpu.fpu_active);
    assert_eq!(
        r.vmcs().get(guest::CR0).unwrap() & (CR0_TS | CR0_MP),
        CR0_TS | CR0_MP
    );
    assert_ne!(
        r.vmcs().get(control::EXCEPTION_BITMAP).unwrap() & (1 << 7),
        0
    );
    assert!(!r.env.run.log.contains(&"load_guest_fpu"));
}

#[test]
fn post_run_reports_if_cr8_apic_base() {
    let mut r = setup(vec![out_exit()]);
    r.env.cr8 = 3;
    let (_, out) = r.run(RunInput::default());
    assert_eq!(
        out,
        RunOutput {
            if_flag: true,
            cr8: 3,
            apic_base: 0xfee0_0900,
            ready_for_interrupt_injection: true
        }
    );
}

#[test]
fn host_nmi_exit_is_delivered_to_the_host() {
    let mut nmi = ex(ExitReason::ExceptionNmi, 0, 0);
    nmi.intr_info = 0x8000_0202;
    let mut r = setup(vec![nmi, out_exit()]);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.env.run.host_nmis, 1);
    assert_eq!(r.env.run.entries.len(), 2);
}

const PIN_PREEMPTION_TIMER: u64 = 1 << 6;

#[test]
fn preemption_timer_is_armed_per_entry_and_disarmed_when_not_wanted() {
    let mut r = setup(vec![out_exit(), out_exit()]);
    r.env.run.preemption_timer = Some(1234);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    let (pin, value) = r.env.run.pin_at_entry[0];
    assert_ne!(pin & PIN_PREEMPTION_TIMER, 0, "SDM 24.6.1 bit 6 not set");
    assert_eq!(value, 1234);
    r.env.run.preemption_timer = None;
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.env.run.pin_at_entry[1].0 & PIN_PREEMPTION_TIMER, 0);
    // The other pin-based controls are untouched.
    assert_eq!(r.env.run.pin_at_entry[1].0, pin & !PIN_PREEMPTION_TIMER);
}

#[test]
fn preemption_timer_exit_returns_to_the_host_only_when_it_wants_the_cpu() {
    // Not wanted: the guest resumes and the next exit goes to user space.
    let mut r = setup(vec![ex(ExitReason::PreemptionTimer, 0, 0), out_exit()]);
    r.env.run.preemption_timer = Some(10);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.env.run.entries.len(), 2);
    assert!(matches!(r.vcpu.exit, Some(UserExit::Io { .. })));
    assert_eq!(r.vcpu.stats.irq_exits, 0, "no interrupt was taken");
    // Wanted: KVM_EXIT_INTR after one entry.
    let mut r = setup(vec![ex(ExitReason::PreemptionTimer, 0, 0), out_exit()]);
    r.env.run.preemption_timer = Some(10);
    r.env.host_wants_cpu = true;
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.vcpu.exit, Some(UserExit::Intr));
    assert_eq!(r.env.run.entries.len(), 1);
}

#[test]
fn no_preemption_timer_on_a_cpu_without_the_control() {
    let mut r = setup(vec![out_exit()]);
    // Nehalem-class pin-based allowed-1 settings without bit 6.
    r.vcpu.config.caps.pinbased = crate::caps::ControlCapability(0x0000_003f_0000_0016);
    r.env.run.preemption_timer = Some(1234);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    assert_eq!(r.env.run.pin_at_entry[0].0 & PIN_PREEMPTION_TIMER, 0);
}

/// An NMI the LAPIC accepted (a self-NMI through the ICR, as
/// kvm-unit-tests' eventinj sends) is injected at the next entry: VM-entry
/// interruption information type NMI (2), vector 2 (SDM vol. 3 §24.8.3).
#[test]
fn lapic_nmi_is_injected_at_the_next_entry() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    r.env.run.lapic_nmis = 1;
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    let injected = r
        .vmcs()
        .writes
        .iter()
        .any(|(f, v)| *f == control::VMENTRY_INTERRUPTION_INFO_FIELD && *v == 0x8000_0202);
    assert!(injected, "no NMI injected");
    assert_eq!(r.vcpu.stats.nmi_injections, 1);
    assert_eq!(r.env.run.lapic_nmis, 0);
}

/// The kicks an exit's side effects queued go out after every handled
/// exit, in-kernel or for user space (`__apic_accept_irq`'s kick).
#[test]
fn kicks_are_delivered_after_each_exit() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    let n = r
        .env
        .run
        .log
        .iter()
        .filter(|e| **e == "deliver_kicks")
        .count();
    assert_eq!(n, 2);
}

/// `kvm-vcpu-run` fires at `__vcpu_run`'s decision points: after every
/// pass with its result (1: loop, 0: user space), and once more on the way
/// out with the VCPU (kvm_x86.c:3532ff).
#[test]
fn vcpu_run_probe_marks_each_pass_and_the_exit() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    assert_eq!(r.run(RunInput::default()).0, Ok(()));
    let runs: Vec<Option<i32>> = r
        .env
        .probes
        .iter()
        .filter_map(|p| match p {
            Probe::VcpuRun { r, .. } => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec![Some(1), Some(0), None]);
    let lines: std::collections::BTreeSet<u32> = r
        .env
        .probes
        .iter()
        .filter_map(|p| match p {
            Probe::VcpuRun { line, .. } => Some(*line),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2, "the pass and the exit are different sites");
}

/// With breakpoints enabled (DR7 L0..G3) the guest's DR0–DR3 are in the
/// CPU for the entry (SDM vol. 3 §28.3.1: VM entry loads only DR7 of the
/// debug registers); without, nothing is loaded.
#[test]
fn guest_breakpoints_are_loaded_before_entry() {
    let mut r = setup(vec![ex(ExitReason::Cpuid, 2, 0), out_exit()]);
    r.vcpu.debug.eff_db = [0x1000, 0x2000, 0x3000, 0x4000];
    r.vcpu.debug.switch_db_regs = true;
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert_eq!(r.env.run.debug_regs, Some([0x1000, 0x2000, 0x3000, 0x4000]));
    assert_eq!(
        r.env
            .run
            .log
            .iter()
            .filter(|l| **l == "load_debug_regs")
            .count(),
        2,
        "before each entry"
    );

    let mut r = setup(vec![out_exit()]);
    let (res, _) = r.run(RunInput::default());
    assert_eq!(res, Ok(()));
    assert!(!r.env.run.log.contains(&"load_debug_regs"));
}
