//! The `KVM_RUN` loop as far as it is VMX business: `kvm_arch_vcpu_ioctl_run`,
//! `__vcpu_run`, `vcpu_enter_guest` (kvm_x86.c, inventory §9.10),
//! `vmx_vcpu_run` around the trampoline, `vmx_vcpu_load`/`vmx_vcpu_put`
//! (the context ops that VMPTRLD/VMCLEAR as the thread moves between CPUs),
//! `vmx_flush_tlb`, `vmx_fpu_deactivate` and the kick of a running VCPU.
//!
//! Pure decisions over [`RunEnv`]: the driver supplies preemption and
//! interrupt control, SMT exclusion, signals, blocking, the MMU and the
//! timers; tests script them.

use core::sync::atomic::{AtomicU32, Ordering};

use x86::vmx::vmcs::control::PinbasedControls;
use x86::vmx::vmcs::{control, guest, host, ro};

use crate::entry::{EntryResult, GuestEntry};
use crate::env::{ControlRegister, Emulation, EmulationReason, ExitEnv, Probe};
use crate::exit::{ExitOutcome, complete_pio_in, handle_exit, update_exception_bitmap};
use crate::inject::{
    self, enable_irq_window, enable_nmi_window, inject_pending_event, interrupt_allowed,
    set_interrupt_shadow, update_cr8_intercept,
};
use crate::setup::{CR0_MP, CR0_TS, HostCpuState, construct_eptp, load_host_cpu_state};
use crate::vcpu::{GuestDebug, MpState, UserExit, VmxVcpu};
use crate::vmcs::{InveptType, Vmcs};

/// A per-VCPU request (`KVM_REQ_*`, kvm_host.h; inventory appendix B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Request {
    TlbFlush = 0,
    ReportTprAccess = 2,
    MmuReload = 3,
    TripleFault = 4,
    PendingTimer = 5,
    Unhalt = 6,
    MmuSync = 7,
    KvmclockUpdate = 8,
    Kick = 9,
    DeactivateFpu = 10,
}

/// The request bits, set by other threads (timers, IPIs, `make_all_cpus_
/// request`) and consumed by the VCPU thread.
#[derive(Debug, Default)]
pub struct Requests(AtomicU32);

impl Clone for Requests {
    fn clone(&self) -> Requests {
        Requests(AtomicU32::new(self.0.load(Ordering::SeqCst)))
    }
}

impl Requests {
    const fn bit(r: Request) -> u32 {
        1 << r as u32
    }
    /// `set_bit`.
    pub fn set(&self, r: Request) {
        self.0.fetch_or(Self::bit(r), Ordering::SeqCst);
    }
    /// `clear_bit`.
    pub fn clear(&self, r: Request) {
        self.0.fetch_and(!Self::bit(r), Ordering::SeqCst);
    }
    /// `test_bit`.
    pub fn test(&self, r: Request) -> bool {
        self.0.load(Ordering::SeqCst) & Self::bit(r) != 0
    }
    /// `test_and_clear_bit`.
    pub fn take(&self, r: Request) -> bool {
        self.0.fetch_and(!Self::bit(r), Ordering::SeqCst) & Self::bit(r) != 0
    }
    /// Any request pending (`vcpu->requests != 0`).
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }
    /// `kvm_vcpu_kick` from another thread: true when the caller must
    /// poke the CPU the VCPU runs on (KICK was clear: the VCPU is between
    /// the last check and VM entry, or in the guest). The VCPU thread sets
    /// KICK whenever it is outside the guest, so only one IPI goes out.
    pub fn kick(&self) -> bool {
        self.0.fetch_or(Self::bit(Request::Kick), Ordering::SeqCst) & Self::bit(Request::Kick) == 0
    }
}

/// `smt_acquire()`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtAcquire {
    /// The sibling is ours (1).
    Acquired,
    /// Lost the race for the core (0): retry later.
    Busy,
    /// Lost and should move (-1): `thread_affinity_set(CPU_BEST)` and
    /// clear.
    Migrate,
}

/// Errors `KVM_RUN` returns (beside a `kvm_run` exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// EINTR: a signal, or userspace's irq window (`KVM_EXIT_INTR`).
    Interrupted,
    /// EAGAIN: the VCPU is not initialized (an AP before its SIPI).
    Again,
    /// An errno from the MMU or a reset.
    Errno(i32),
}

/// What userspace wrote into `kvm_run` before `KVM_RUN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunInput {
    pub request_interrupt_window: bool,
    /// `kvm_run.cr8` (used without an in-kernel irqchip).
    pub cr8: u64,
    /// `kvm_run.mmio.data`, for a pending MMIO read.
    pub mmio_data: [u8; 8],
}

/// What `post_kvm_run_save` writes into `kvm_run` after `KVM_RUN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOutput {
    pub if_flag: bool,
    pub cr8: u64,
    pub apic_base: u64,
    pub ready_for_interrupt_injection: bool,
}

/// What the run loop needs besides the exit handlers' [`ExitEnv`].
pub trait RunEnv: ExitEnv + GuestEntry {
    /// `kpreempt_disable` / `kpreempt_enable`.
    fn preempt_disable(&mut self);
    fn preempt_enable(&mut self);
    /// `cli` / `sti`.
    fn interrupts_disable(&mut self);
    fn interrupts_enable(&mut self);
    /// `issig(JUSTLOOKING)`.
    fn signal_pending(&mut self) -> bool;
    /// `kvm_vcpu_block`: sleep until kicked, an interrupt or a signal;
    /// sets [`Request::Unhalt`] when the VCPU became runnable.
    fn block(&mut self, vcpu: &VmxVcpu);
    /// `smt_mark_as_vcpu`, once per thread.
    fn smt_mark_as_vcpu(&mut self);
    fn smt_acquire(&mut self) -> SmtAcquire;
    fn smt_release(&mut self);
    /// `thread_affinity_set(curthread, CPU_BEST)` + clear.
    fn migrate(&mut self);
    /// `kvm_mmu_unload` / `kvm_mmu_reload` (the latter loads the EPT root
    /// into [`VmxVcpu::ept_root`] and EPTP).
    fn mmu_unload(&mut self, vcpu: &mut VmxVcpu);
    fn mmu_reload(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs) -> Result<(), i32>;
    /// `kvm_mmu_sync_roots`.
    fn mmu_sync_roots(&mut self, vcpu: &mut VmxVcpu);
    /// `kvm_write_guest_time` (kvmclock).
    fn kvmclock_update(&mut self, vcpu: &mut VmxVcpu);
    /// `vmx_save_host_state` (shared MSRs, KERNEL_GS_BASE, host selectors).
    fn prepare_guest_switch(&mut self, vcpu: &mut VmxVcpu);
    /// `kvm_load_guest_fpu` (HMA).
    fn load_guest_fpu(&mut self);
    /// The host's CR0 now (FPU loading may have changed TS).
    fn host_cr0(&self) -> u64;
    /// `kvm_lapic_enabled`, `kvm_lapic_get_cr8` (TPR >> 4) and the
    /// priority class of the highest pending IRR (`None`: none or vAPIC).
    fn lapic_enabled(&mut self) -> bool;
    fn lapic_tpr_class(&mut self) -> u8;
    fn lapic_highest_irr_class(&mut self) -> Option<u8>;
    /// `kvm_lapic_sync_to_vapic` / `kvm_lapic_sync_from_vapic`.
    fn sync_to_vapic(&mut self) {}
    fn sync_from_vapic(&mut self) {}
    /// Load DR0–DR3 (`set_debugreg`) when the guest uses breakpoints (DR7
    /// comes from the VMCS; DR6 is `vcpu.debug.dr6`, since every #DB
    /// exits and MOV DR exits).
    fn load_debug_regs(&mut self, _db: &[u64; 4]) {}
    /// `kvm-guest-entry` / `kvm-guest-exit` probes (VMCS current).
    fn guest_enter(&mut self) {}
    fn guest_exit(&mut self) {}
    /// Deliver a host NMI that caused an exit (`int $2`), and a machine
    /// check (`kvm_machine_check`).
    fn host_nmi(&mut self);
    fn machine_check(&mut self) {}
    /// Timers (`kvm_cpu_has_pending_timer`,
    /// `kvm_inject_pending_timer_irqs`).
    fn has_pending_timer(&mut self) -> bool;
    fn inject_pending_timer_irqs(&mut self);
    /// `kvm_lapic_reset` + `kvm_arch_vcpu_reset` for an AP that got its
    /// SIPI (the VMCS part is `setup::reset_guest_state`).
    fn reset_vcpu(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs) -> Result<(), i32>;
    /// Copy the answer of an MMIO read for the emulator.
    fn complete_mmio_read(&mut self, data: &[u8; 8]);
    /// Finish a string PIO (`complete_pio` for INS/OUTS: guest memory,
    /// RCX/RSI/RDI).
    fn complete_string_pio(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs);
    /// `kvm_get_apic_base`.
    fn apic_base(&mut self) -> u64;
    /// Monotonic nanoseconds (`gethrtime`).
    fn now_ns(&self) -> u64 {
        0
    }
    /// A VMX-preemption timer value for this entry (SDM §25.5.1: it counts
    /// down at the TSC rate shifted right by IA32_VMX_MISC\[4:0\]), or
    /// `None` for none. A host whose timer interrupts cannot be relied on
    /// to end a spinning guest's time slice (the Bochs test host runs
    /// several VCPUs on one CPU) asks for an exit this way; illumos has its
    /// clock interrupts and answers `None`, as the C driver did.
    fn preemption_timer(&mut self) -> Option<u32> {
        None
    }
    /// An NMI the in-kernel LAPIC accepted (delivery mode NMI: a self-IPI,
    /// another CPU's IPI, LINT0/1 in NMI mode) since the last call: the C
    /// LAPIC set `nmi_pending` itself (`kvm_inject_nmi`); here the loop
    /// takes it before injecting.
    fn take_nmi(&mut self) -> bool {
        false
    }
    /// `kvm_vcpu_kick` of the VCPUs an exit's side effects reached (an IPI
    /// sent by a LAPIC write, an interrupt routed through the IOAPIC): the
    /// C's `__apic_accept_irq` kicked its target; here the VCPU thread
    /// kicks once the exit is handled, outside the devices' lock.
    fn deliver_kicks(&mut self) {}
}

/// Arm (or disarm) the VMX-preemption timer for the next entry as the
/// environment asks; the pin-based control is only touched on a change.
fn set_preemption_timer<V: Vmcs, E: RunEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) {
    let want = if vcpu.config.preemption_timer() {
        env.preemption_timer()
    } else {
        None
    };
    let bit = PinbasedControls::VMX_PREEMPTION_TIMER.bits();
    match want {
        Some(value) => {
            if !vcpu.preemption_timer_on {
                v.set_bits(control::PINBASED_EXEC_CONTROLS, bit);
                vcpu.preemption_timer_on = true;
            }
            v.write(guest::VMX_PREEMPTION_TIMER_VALUE, u64::from(value));
        }
        None if vcpu.preemption_timer_on => {
            v.clear_bits(control::PINBASED_EXEC_CONTROLS, bit);
            vcpu.preemption_timer_on = false;
        }
        None => {}
    }
}

/// `vmx_vcpu_load`: make the VMCS current on `cpu`; when the VCPU last ran
/// elsewhere, rewrite the per-CPU host fields and the TSC offset and flush
/// the TLB before the next entry. Called with preemption disabled (the
/// context-op restore).
pub fn vcpu_load(
    v: &mut impl Vmcs,
    vcpu: &mut VmxVcpu,
    cpu: u32,
    host: &HostCpuState,
    tsc_offset: u64,
) {
    let _ = v.vmptrld(vcpu.vmcs_pa);
    if vcpu.last_cpu != Some(cpu) {
        vcpu.requests.set(Request::TlbFlush);
        load_host_cpu_state(v, host, tsc_offset);
        vcpu.last_cpu = Some(cpu);
    }
}

/// `vmx_vcpu_put`: VMCLEAR, so the VMCS may be loaded on another CPU; the
/// next entry must be a VMLAUNCH. (The host state restore is the driver's
/// `__vmx_load_host_state`.)
pub fn vcpu_put(v: &mut impl Vmcs, vcpu: &mut VmxVcpu) {
    let _ = v.vmclear(vcpu.vmcs_pa);
    vcpu.launched = false;
}

/// `vmx_flush_tlb`: INVVPID this VCPU's tags, INVEPT its EPT.
pub fn flush_tlb(v: &mut impl Vmcs, vcpu: &VmxVcpu) {
    if vcpu.vpid != 0
        && let Some(kind) = vcpu.config.invvpid_kind()
    {
        let _ = v.invvpid(kind, vcpu.vpid, 0);
    }
    if vcpu.config.ept() {
        match vcpu.config.invept_kind() {
            Some(InveptType::SingleContext) => {
                let _ = v.invept(InveptType::SingleContext, construct_eptp(vcpu.ept_root));
            }
            _ => {
                let _ = v.invept(InveptType::Global, 0);
            }
        }
    }
}

/// `vmx_fpu_deactivate`: intercept #NM and run with CR0.TS|MP set.
pub fn fpu_deactivate(v: &mut impl Vmcs, vcpu: &mut VmxVcpu) {
    vcpu.fpu_active = false;
    v.set_bits(guest::CR0, (CR0_TS | CR0_MP) as u32);
    update_exception_bitmap(v, vcpu);
}

/// One pass of `vcpu_enter_guest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Keep looping (r = 1).
    Again,
    /// Return to userspace with `vcpu.exit` (r = 0).
    Userspace,
    Error(i32),
}

fn exit_now(vcpu: &mut VmxVcpu, e: UserExit) -> Step {
    vcpu.exit = Some(e);
    Step::Userspace
}

/// `vcpu_enter_guest`.
fn enter_guest<V: Vmcs, E: RunEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> Step {
    let req_int_win = !env.irqchip_in_kernel() && vcpu.request_interrupt_window;
    if vcpu.events.triple_fault {
        vcpu.events.triple_fault = false;
        vcpu.requests.set(Request::TripleFault);
    }
    if vcpu.requests.take(Request::MmuReload) {
        env.mmu_unload(vcpu);
    }
    if let Err(e) = env.mmu_reload(vcpu, v) {
        return Step::Error(e);
    }
    if vcpu.requests.take(Request::KvmclockUpdate) {
        env.kvmclock_update(vcpu);
    }
    if vcpu.requests.take(Request::MmuSync) {
        env.mmu_sync_roots(vcpu);
    }
    if vcpu.requests.take(Request::TlbFlush) {
        flush_tlb(v, vcpu);
    }
    if vcpu.requests.take(Request::ReportTprAccess) {
        return exit_now(vcpu, UserExit::TprAccess);
    }
    if vcpu.requests.take(Request::TripleFault) {
        return exit_now(vcpu, UserExit::Shutdown);
    }
    if vcpu.requests.take(Request::DeactivateFpu) {
        fpu_deactivate(v, vcpu);
    }

    if env.take_nmi() {
        vcpu.events.nmi_pending = true;
    }
    // Injection may sleep on a lock: before preemption goes off.
    inject_pending_event(v, vcpu, env);

    env.preempt_disable();
    env.prepare_guest_switch(vcpu);
    if vcpu.fpu_active {
        env.load_guest_fpu();
    }
    vcpu.requests.clear(Request::Kick);
    if vcpu.requests.any() || env.signal_pending() {
        vcpu.requests.set(Request::Kick);
        env.preempt_enable();
        return Step::Again;
    }

    env.interrupts_disable();
    match env.smt_acquire() {
        SmtAcquire::Acquired => {}
        other => {
            vcpu.requests.set(Request::Kick);
            env.interrupts_enable();
            if other == SmtAcquire::Migrate {
                env.migrate();
            }
            env.preempt_enable();
            return Step::Again;
        }
    }

    if vcpu.events.nmi_pending {
        enable_nmi_window(v, vcpu);
    } else if env.has_interrupt() || req_int_win {
        enable_irq_window(v);
    }
    if env.lapic_enabled() {
        if vcpu.config.tpr_shadow() {
            let tpr = env.lapic_tpr_class();
            let irr = env.lapic_highest_irr_class();
            update_cr8_intercept(v, tpr, irr);
        }
        env.sync_to_vapic();
    }
    env.guest_enter();
    if vcpu.debug.switch_db_regs {
        let db = vcpu.debug.eff_db;
        env.load_debug_regs(&db);
    }

    let host_events = run_guest(vcpu, v, env);

    env.smt_release();
    vcpu.requests.set(Request::Kick);
    if host_events.nmi {
        env.host_nmi();
    }
    if host_events.machine_check {
        env.machine_check();
    }
    env.interrupts_enable();
    env.guest_exit();
    env.preempt_enable();
    env.sync_from_vapic();
    let outcome = handle_exit(vcpu, v, env);
    env.deliver_kicks();
    match outcome {
        ExitOutcome::Resume => Step::Again,
        ExitOutcome::Userspace => Step::Userspace,
    }
}

/// `vmx_vcpu_run`: VM entry, then the exit bookkeeping that must happen
/// with interrupts still off.
fn run_guest<V: Vmcs, E: RunEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> inject::HostEvents {
    if !vcpu.config.virtual_nmis() && vcpu.soft_vnmi_blocked {
        vcpu.entry_time = env.now_ns();
    }
    env.probe(Probe::Vrun {
        rip: v.read(guest::RIP),
    });
    // Entry fails with a STI/MOV-SS shadow while single-stepping (SDM
    // §26.3.1.5, pending debug exceptions BS).
    if vcpu.guest_debug.has(GuestDebug::SINGLESTEP) {
        set_interrupt_shadow(v, 0);
    }
    v.write(host::CR0, env.host_cr0());
    set_preemption_timer(vcpu, v, env);
    env.probe(if vcpu.launched {
        Probe::VmResume
    } else {
        Probe::VmLaunch
    });

    let result = env.enter(&mut vcpu.regs, vcpu.launched);

    vcpu.fail = result != EntryResult::Exited;
    if result == EntryResult::Exited {
        vcpu.launched = true;
        vcpu.exit_reason = v.read32(ro::EXIT_REASON);
        vcpu.idt_vectoring_info = v.read32(ro::IDT_VECTORING_INFO);
        if vcpu.rmode.irq.pending {
            vcpu.idt_vectoring_info =
                crate::rmode::fixup_irq(v, &mut vcpu.rmode, vcpu.idt_vectoring_info);
        }
    } else {
        vcpu.idt_vectoring_info = 0;
    }
    let host = if vcpu.fail {
        inject::HostEvents::default()
    } else {
        inject::complete_interrupts(v, vcpu)
    };
    if !vcpu.config.virtual_nmis() && vcpu.soft_vnmi_blocked {
        let spent = env.now_ns().saturating_sub(vcpu.entry_time);
        vcpu.vnmi_blocked_time = vcpu.vnmi_blocked_time.saturating_add(spent);
    }
    host
}

/// `dm_request_for_irq_injection`: userspace's irqchip asked for a window
/// and the guest can take an interrupt now.
fn userspace_wants_irq_window<V: Vmcs, E: RunEnv>(vcpu: &VmxVcpu, v: &V, env: &mut E) -> bool {
    !env.irqchip_in_kernel()
        && vcpu.request_interrupt_window
        && !env.has_interrupt()
        && interrupt_allowed(v)
}

/// `__vcpu_run`: enter the guest until something is for userspace, or a
/// signal; block while halted.
fn vcpu_loop<V: Vmcs, E: RunEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
) -> Result<(), RunError> {
    if !vcpu.smt_marked {
        env.smt_mark_as_vcpu();
        vcpu.smt_marked = true;
    }
    if vcpu.mp_state == MpState::SipiReceived {
        env.reset_vcpu(vcpu, v).map_err(RunError::Errno)?;
        vcpu.mp_state = MpState::Runnable;
    }
    loop {
        let mut step = Step::Again;
        if vcpu.mp_state == MpState::Runnable {
            step = enter_guest(vcpu, v, env);
        } else {
            env.block(vcpu);
            if vcpu.requests.take(Request::Unhalt) {
                match vcpu.mp_state {
                    MpState::Halted => vcpu.mp_state = MpState::Runnable,
                    MpState::Runnable => {}
                    _ => step = Step::Error(EINTR),
                }
            }
        }
        let r = match step {
            Step::Again => 1,
            Step::Userspace => 0,
            Step::Error(e) => -e,
        };
        env.probe(Probe::VcpuRun {
            line: line!(),
            r: Some(r),
        });
        match step {
            Step::Again => {}
            Step::Userspace => return Ok(()),
            Step::Error(EINTR) => return Err(RunError::Interrupted),
            Step::Error(e) => return Err(RunError::Errno(e)),
        }
        vcpu.requests.clear(Request::PendingTimer);
        if env.has_pending_timer() {
            env.probe(Probe::VcpuRun {
                line: line!(),
                r: None,
            });
            env.inject_pending_timer_irqs();
            env.deliver_kicks();
        }
        if userspace_wants_irq_window(vcpu, v, env) {
            env.probe(Probe::VcpuRun {
                line: line!(),
                r: None,
            });
            vcpu.exit = Some(UserExit::Intr);
            vcpu.stats.request_irq_exits = vcpu.stats.request_irq_exits.wrapping_add(1);
            return Err(RunError::Interrupted);
        }
        if env.signal_pending() {
            env.probe(Probe::VcpuRun {
                line: line!(),
                r: None,
            });
            vcpu.exit = Some(UserExit::Intr);
            vcpu.stats.signal_exits = vcpu.stats.signal_exits.wrapping_add(1);
            return Err(RunError::Interrupted);
        }
    }
}

/// illumos EINTR, the loop's internal "stop" value.
const EINTR: i32 = 4;

/// `kvm_arch_vcpu_ioctl_run` after `vcpu_load` (and the signal-mask swap
/// of `KVM_SET_SIGNAL_MASK`, which the driver does around this call):
/// finish what userspace answered, run, and report `kvm_run`'s trailer.
pub fn vcpu_run<V: Vmcs, E: RunEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
    input: &RunInput,
) -> (Result<(), RunError>, RunOutput) {
    let r = vcpu_run_inner(vcpu, v, env, input);
    env.probe(Probe::VcpuRun {
        line: line!(),
        r: None,
    });
    (r, post_run(vcpu, v, env))
}

fn vcpu_run_inner<V: Vmcs, E: RunEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
    input: &RunInput,
) -> Result<(), RunError> {
    vcpu.request_interrupt_window = input.request_interrupt_window;
    if vcpu.mp_state == MpState::Uninitialized {
        env.block(vcpu);
        vcpu.requests.clear(Request::Unhalt);
        return Err(RunError::Again);
    }
    if !env.irqchip_in_kernel() {
        // Re-sync the TPR userspace may have changed.
        let _ = env.set_cr(vcpu, v, ControlRegister::Cr8, input.cr8);
    }
    if let Some(pio) = vcpu.pio.take() {
        if pio.string {
            env.complete_string_pio(vcpu, v);
        } else if pio.input {
            let mut data = [0u8; 4];
            let n = usize::from(pio.size.min(4));
            if let (Some(dst), Some(src)) = (data.get_mut(..n), env.pio_page().get(..n)) {
                dst.copy_from_slice(src);
            }
            complete_pio_in(vcpu, &data, pio.size);
        }
    }
    if vcpu.mmio_read_pending {
        vcpu.mmio_read_pending = false;
        env.complete_mmio_read(&input.mmio_data);
        match env.emulate(vcpu, v, EmulationReason::CompleteMmio) {
            Emulation::Done => {}
            Emulation::Mmio(m) => {
                // Read-modify-write: back to userspace.
                vcpu.mmio_read_pending = !m.is_write;
                vcpu.exit = Some(UserExit::Mmio(m));
                return Ok(());
            }
            Emulation::Failed => {
                vcpu.exit = Some(UserExit::InternalError {
                    suberror: crate::vcpu::kvm_exit::INTERNAL_ERROR_EMULATION,
                    ndata: 0,
                    data: [0; 2],
                });
                return Ok(());
            }
        }
    }
    vcpu.exit = None;
    vcpu_loop(vcpu, v, env)
}

/// `post_kvm_run_save`.
fn post_run<V: Vmcs, E: RunEnv>(vcpu: &VmxVcpu, v: &V, env: &mut E) -> RunOutput {
    let in_kernel = env.irqchip_in_kernel();
    RunOutput {
        if_flag: v.read(guest::RFLAGS) & inject::RFLAGS_IF != 0,
        cr8: env.cr8(),
        apic_base: env.apic_base(),
        ready_for_interrupt_injection: in_kernel
            || (interrupt_allowed(v) && !env.has_interrupt() && !vcpu.events.needs_reinjection()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
