//! The real VMX seam: [`RealVmx`] implements [`super::VmxSeam`] over
//! `kvm-vmx` and a platform [`VmxHost`] (port of `vmx_init`,
//! `vmx_create_vcpu`, `kvm_arch_vcpu_ioctl_run` and the register ioctls of
//! kvm_x86.c/kvm_vmx.c).
//!
//! | module | what |
//! |---|---|
//! | [`host`] | [`VmxHost`]: what only the hardware/kernel does |
//! | [`env`](mod@env) | the run loop's `RunEnv`/`ExitEnv` over the VCPU, VM and host |
//! | [`emul`] | `EmulatorOps` over the MMU walker and the MMIO devices |
//! | [`msr`] | `kvm_get/set_msr_common` |
//! | [`regs`] | GET/SET_REGS, SREGS, FPU conversions |
//! | [`task_switch`] | `kvm_task_switch`: the emulator's task switch, committed |
//!
//! The driver picks it with `VmBackend::with_vmx(services, RealVmx::new(host))`.

pub mod emul;
pub mod env;
pub mod host;
pub mod msr;
pub mod regs;
pub mod task_switch;

use alloc::boxed::Box;
use alloc::sync::Arc;

use kvm_ioctl::abi::{Capability, kvm_msr_entry};
use kvm_ioctl::{Errno, VcpuRequest, VmId};
use kvm_kstat::ringbuf::Tag;
use kvm_vmx::caps::VmcsConfig;
use kvm_vmx::cpu::CpuidResult;
use kvm_vmx::run::{RunError, RunInput, vcpu_run};
use kvm_vmx::setup::{self, VcpuLayout};
use kvm_vmx::vcpu::{MpState as VmxMpState, UserExit, VmxVcpu};

use super::VmxSeam;
use super::services::{Services, SharedPages};
use super::vcpu::VcpuCore;
use super::vm::VmShared;
use env::{EnvState, RunCtx};

pub use host::{HostPage, LoadState, VmxHost};

/// The VMX seam over the platform `H`.
pub struct RealVmx<H: VmxHost> {
    host: Arc<H>,
    /// `setup_vmcs_config` at construction (module attach); `None` if the
    /// CPU lacks a required control or EPT (every open then fails EIO).
    config: Option<VmcsConfig>,
    /// `kvm_init_msr_list` at construction.
    msr_list: [u32; msr::MSRS_TO_SAVE.len() + msr::EMULATED_MSRS.len()],
    msr_count: usize,
}

impl<H: VmxHost> RealVmx<H> {
    /// A seam over `host`: probes the VMCS configuration
    /// (`VmcsConfig::probe`, `vmx_init`'s `setup_vmcs_config`) and the MSR
    /// list (`kvm_init_msr_list`, `rdmsr_safe`) now, so call it where the
    /// driver attaches (CPUID/RDMSR allowed). No lazy initialisation: no
    /// `Once` (and its panic paths) in the kernel.
    pub fn new(host: H) -> Self {
        let config = VmcsConfig::probe(host.cpu()).ok().filter(|c| c.ept());
        let mut msr_list = [0u32; msr::MSRS_TO_SAVE.len() + msr::EMULATED_MSRS.len()];
        let mut n = 0;
        let candidates = msr::MSRS_TO_SAVE
            .iter()
            .take(msr::MSRS_TO_SAVE_LEN)
            .enumerate()
            .filter(|(i, m)| *i < msr::MSRS_SAVE_BEGIN || host.rdmsr_safe(**m).is_some())
            .map(|(_, m)| *m)
            .chain(msr::EMULATED_MSRS.iter().copied());
        for (slot, m) in msr_list.iter_mut().zip(candidates) {
            *slot = m;
            n += 1;
        }
        RealVmx {
            host: Arc::new(host),
            config,
            msr_list,
            msr_count: n,
        }
    }

    /// The platform.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The probed VMCS configuration (`None`: VMX unusable).
    pub fn config(&self) -> Option<&VmcsConfig> {
        self.config.as_ref()
    }
}

/// Per-VM VMX state: the bitmaps (`vmx_io_bitmap_a/b`,
/// `vmx_msr_bitmap_legacy/longmode`; per VM here rather than global).
pub struct RealVm<H: VmxHost> {
    io_a: H::Page,
    io_b: H::Page,
    msr_legacy: H::Page,
    msr_longmode: H::Page,
    apic_access: H::Page,
    /// VCPU indexes handed out so far (for kicks: `0..vcpus`).
    vcpus: u32,
}

/// Per-VCPU VMX state.
pub struct RealVcpu<H: VmxHost> {
    host: Arc<H>,
    /// (VM id, VCPU index): what the host keyed its per-VCPU objects by.
    key: (VmId, u32),
    /// The VPID from the host (0: none), freed on drop.
    vpid: u16,
    vcpu: Box<VmxVcpu>,
    vmcs: H::Vmcs,
    region: H::Page,
    st: Box<EnvState<H>>,
    /// The counters as last copied into the kstat.
    reported: [u64; 15],
    /// The guest-CPUID RDTSCP setting last applied to the VMCS.
    rdtscp_applied: Option<bool>,
    /// `core.events` as the last run left them (a difference at the next
    /// run is user space's doing).
    events_seen: super::vcpu::Events,
}

impl<H: VmxHost> RealVcpu<H> {
    /// The VMX VCPU (tests and the kernel's diagnostics).
    pub fn vmx(&self) -> &VmxVcpu {
        &self.vcpu
    }
    /// The VMCS region's physical address.
    pub fn vmcs_pa(&self) -> u64 {
        self.region.pa()
    }
    /// The virtual-APIC page's physical address.
    pub fn virtual_apic_pa(&self) -> u64 {
        self.st.virtual_apic.pa()
    }
}

/// `kvm_find_cpuid_entry` on the VCPU's KVM_SET_CPUID2 table.
pub fn cpuid_lookup<S: Services>(
    core: &VcpuCore<S>,
    function: u32,
    index: u32,
) -> Option<CpuidResult> {
    const SIGNIFICANT_INDEX: u32 = 1;
    core.cpuid
        .iter()
        .take(core.cpuid_nent)
        .find(|e| e.function == function && (e.flags & SIGNIFICANT_INDEX == 0 || e.index == index))
        .map(|e| CpuidResult {
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        })
}

/// The kstat counter of each of `kvm_vmx::vcpu::VcpuStats::named()`, in
/// that order (a field per name rather than a search by name on every
/// `KVM_RUN`; `vcpu_kstat_targets_follow_the_names` checks the pairing).
fn vcpu_kstat_targets(s: &kvm_kstat::stats::VcpuStats) -> [&kvm_kstat::named::KstatNamed; 15] {
    [
        &s.exits,
        &s.halt_exits,
        &s.io_exits,
        &s.mmio_exits,
        &s.irq_exits,
        &s.irq_window_exits,
        &s.nmi_window_exits,
        &s.irq_injections,
        &s.nmi_injections,
        &s.hypercalls,
        &s.signal_exits,
        &s.insn_emulation,
        &s.insn_emulation_fail,
        &s.host_state_reload,
        &s.request_irq_exits,
    ]
}

/// KVM_SET_VCPU_EVENTS's state into the VMX VCPU (`kvm_vcpu_ioctl_x86_
/// set_vcpu_events`: an "injected" exception or interrupt is re-injected
/// as it is, the NMI mask goes to the interruptibility state).
fn events_into_vmx(e: &super::vcpu::Events, vcpu: &mut VmxVcpu, v: &mut impl kvm_vmx::vmcs::Vmcs) {
    let q = &mut vcpu.events;
    q.exception = e
        .exception_pending
        .then_some(kvm_vmx::inject::PendingException {
            vector: e.exception_nr,
            error_code: e.exception_has_error_code.then_some(e.exception_error_code),
        });
    q.exception_reinjected = e.exception_pending;
    q.interrupt = e
        .interrupt_pending
        .then_some(kvm_vmx::inject::PendingInterrupt {
            vector: e.interrupt_nr,
            soft: e.interrupt_soft,
        });
    q.nmi_injected = e.nmi_injected;
    q.nmi_pending = e.nmi_pending;
    kvm_vmx::inject::set_nmi_mask(v, vcpu, e.nmi_masked);
}

/// The VMX VCPU's events as KVM_GET_VCPU_EVENTS reports them
/// (`kvm_vcpu_ioctl_x86_get_vcpu_events`).
fn events_from_vmx(
    vcpu: &VmxVcpu,
    v: &impl kvm_vmx::vmcs::Vmcs,
    sipi_vector: u32,
) -> super::vcpu::Events {
    let q = &vcpu.events;
    super::vcpu::Events {
        exception_pending: q.exception.is_some(),
        exception_nr: q.exception.map_or(0, |x| x.vector),
        exception_has_error_code: q.exception.is_some_and(|x| x.error_code.is_some()),
        exception_error_code: q.exception.and_then(|x| x.error_code).unwrap_or(0),
        interrupt_pending: q.interrupt.is_some(),
        interrupt_nr: q.interrupt.map_or(0, |x| x.vector),
        interrupt_soft: q.interrupt.is_some_and(|x| x.soft),
        nmi_injected: q.nmi_injected,
        nmi_pending: q.nmi_pending,
        nmi_masked: kvm_vmx::inject::nmi_masked(v, vcpu),
        sipi_vector,
    }
}

fn errno_of(code: i32) -> Errno {
    match code {
        4 => Errno::EINTR,
        11 => Errno::EAGAIN,
        12 => Errno::ENOMEM,
        14 => Errno::EFAULT,
        22 => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

fn mp_to_vmx(s: kvm_ioctl::abi::MpState) -> VmxMpState {
    kvm_vmx::state::mp_state_from_abi(s as u32).unwrap_or_default()
}

fn mp_from_vmx(s: VmxMpState) -> kvm_ioctl::abi::MpState {
    match s {
        VmxMpState::Runnable => kvm_ioctl::abi::MpState::Runnable,
        VmxMpState::Uninitialized => kvm_ioctl::abi::MpState::Uninitialized,
        VmxMpState::InitReceived => kvm_ioctl::abi::MpState::InitReceived,
        VmxMpState::Halted => kvm_ioctl::abi::MpState::Halted,
        VmxMpState::SipiReceived => kvm_ioctl::abi::MpState::SipiReceived,
    }
}

// kvm_run byte offsets (kvm_ioctl::abi::kvm_run).
const RUN_REQUEST_IRQ_WINDOW: usize = 0;
const RUN_EXIT_REASON: usize = 8;
const RUN_READY_FOR_INJECTION: usize = 12;
const RUN_IF_FLAG: usize = 13;
const RUN_CR8: usize = 16;
const RUN_APIC_BASE: usize = 24;
const RUN_U: usize = 32;

fn put(run: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(d) = run.get_mut(off..off.saturating_add(bytes.len())) {
        d.copy_from_slice(bytes);
    }
}

fn get_u64(run: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = run.get(off..off + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

/// Write `e` into `kvm_run` (exit reason and its union member).
fn write_exit(run: &mut [u8], e: &UserExit) {
    put(run, RUN_EXIT_REASON, &e.abi_exit_reason().to_le_bytes());
    match *e {
        UserExit::Unknown {
            hardware_exit_reason,
        } => put(run, RUN_U, &hardware_exit_reason.to_le_bytes()),
        UserExit::Exception {
            exception,
            error_code,
        } => {
            put(run, RUN_U, &exception.to_le_bytes());
            put(run, RUN_U + 4, &error_code.to_le_bytes());
        }
        UserExit::Io {
            direction,
            size,
            port,
            count,
            data_offset,
        } => {
            let dir = match direction {
                kvm_vmx::qualification::IoDirection::In => kvm_ioctl::abi::KVM_EXIT_IO_IN,
                kvm_vmx::qualification::IoDirection::Out => kvm_ioctl::abi::KVM_EXIT_IO_OUT,
            };
            put(run, RUN_U, &[dir, size]);
            put(run, RUN_U + 2, &port.to_le_bytes());
            put(run, RUN_U + 4, &count.to_le_bytes());
            put(run, RUN_U + 8, &data_offset.to_le_bytes());
        }
        UserExit::Debug(d) => {
            put(run, RUN_U, &d.exception.to_le_bytes());
            put(run, RUN_U + 4, &0u32.to_le_bytes());
            put(run, RUN_U + 8, &d.pc.to_le_bytes());
            put(run, RUN_U + 16, &d.dr6.to_le_bytes());
            put(run, RUN_U + 24, &d.dr7.to_le_bytes());
        }
        UserExit::Mmio(m) => {
            put(run, RUN_U, &m.phys_addr.to_le_bytes());
            put(run, RUN_U + 8, &m.data);
            put(run, RUN_U + 16, &m.len.to_le_bytes());
            put(run, RUN_U + 20, &[u8::from(m.is_write)]);
        }
        UserExit::FailEntry {
            hardware_entry_failure_reason,
        } => put(run, RUN_U, &hardware_entry_failure_reason.to_le_bytes()),
        UserExit::InternalError {
            suberror,
            ndata,
            data,
        } => {
            put(run, RUN_U, &suberror.to_le_bytes());
            put(run, RUN_U + 4, &ndata.to_le_bytes());
            put(run, RUN_U + 8, &data[0].to_le_bytes());
            put(run, RUN_U + 16, &data[1].to_le_bytes());
        }
        UserExit::Hlt
        | UserExit::IrqWindowOpen
        | UserExit::Shutdown
        | UserExit::Intr
        | UserExit::SetTpr
        | UserExit::TprAccess => {}
    }
}

/// A string I/O the emulator left for user space: its carrier MMIO exit
/// becomes `KVM_EXIT_IO` with `count` elements at offset 4096, and
/// `vcpu.pio` says how to complete it (`kvm_emulate_pio_string`).
fn finish_string_pio<H: VmxHost>(rv: &mut RealVcpu<H>) {
    let Some(p) = rv.st.string_pio.take() else {
        return;
    };
    if !matches!(rv.vcpu.exit, Some(UserExit::Mmio(_))) {
        return;
    }
    rv.vcpu.mmio_read_pending = false;
    rv.st.pio_in_asked = p.input.then_some((p.port, p.size));
    rv.vcpu.pio = Some(kvm_vmx::vcpu::PioRequest {
        port: p.port,
        size: p.size,
        input: p.input,
        count: p.count,
        cur_count: p.count,
        string: true,
        rep: false,
        down: false,
    });
    rv.vcpu.exit = Some(UserExit::Io {
        direction: if p.input {
            kvm_vmx::qualification::IoDirection::In
        } else {
            kvm_vmx::qualification::IoDirection::Out
        },
        size: p.size,
        port: p.port,
        count: p.count,
        data_offset: kvm_vmx::vcpu::KVM_PIO_PAGE_OFFSET * setup::PAGE_SIZE as u64,
    });
}

impl<H: VmxHost> RealVmx<H> {
    fn cfg(&self) -> Result<VmcsConfig, Errno> {
        self.config.ok_or(Errno::ENXIO)
    }

    /// Run `f` with the VCPU's VMCS current and an environment.
    fn with_env<S: Services, R>(
        &self,
        core: &mut VcpuCore<S>,
        rv: &mut RealVcpu<H>,
        f: impl FnOnce(&mut VmxVcpu, &mut H::Vmcs, &mut RunCtx<'_, S, H>) -> R,
    ) -> R {
        let pages = core.run_pages();
        let base = pages.as_ptr();
        let len = pages.len();
        let page = setup::PAGE_SIZE;
        // SAFETY: the run pages are `len` (2 pages) valid bytes until the
        // VCPU is dropped, which cannot happen while we hold `core`; the
        // PIO page (the second page) is not otherwise borrowed in Rust
        // (user space may write it concurrently through its mapping, as
        // with the C driver's `pio_data`).
        let pio: &mut [u8] = if len >= 2 * page {
            unsafe { core::slice::from_raw_parts_mut(base.wrapping_add(page), page) }
        } else {
            &mut []
        };
        // `vcpu_load` with preemption off (kvm.c): the VMCS load and its
        // ring record happen on one CPU.
        self.host.preempt_disable();
        self.host.vcpu_load(&mut rv.vmcs);
        // The event ring `::kvm_ringbuf_entry` shows (`kvm_ringbuf_record`
        // in `vcpu_load`/`vcpu_put`): the VMCS's physical address.
        let vmcs_pa = rv.region.pa();
        let tsc = self.host.host_tsc();
        let (cpu, thread) = (self.host.cpu_id(), self.host.thread_id());
        core.debug.record(Tag::VcpuLoad, cpu, thread, tsc, vmcs_pa);
        self.host.preempt_enable();
        // `kvm_arch_vcpu_load`: a routine kvmclock refresh (at most every
        // 100 ms), done by the run loop's KVM_REQ_KVMCLOCK_UPDATE.
        if rv.st.msrs.kvmclock.wants_update(self.host.now_ns(), false) {
            rv.vcpu.requests.set(kvm_vmx::run::Request::KvmclockUpdate);
        }
        let r = {
            let mut ctx = RunCtx {
                host: &*self.host,
                core,
                st: &mut rv.st,
                pio,
                apic: None,
            };
            let r = f(&mut rv.vcpu, &mut rv.vmcs, &mut ctx);
            // `vmx_vcpu_put`, preemption off (kvm.c `vcpu_put`): the host's
            // selectors and KERNEL_GS_BASE back on this CPU before the
            // thread returns to user mode, then VMCLEAR, then the record.
            self.host.preempt_disable();
            kvm_vmx::env::ExitEnv::load_host_state(&mut ctx, &mut rv.vcpu);
            r
        };
        self.host.vcpu_put(&mut rv.vmcs);
        let tsc = self.host.host_tsc();
        let (cpu, thread) = (self.host.cpu_id(), self.host.thread_id());
        core.debug.record(Tag::VcpuPut, cpu, thread, tsc, vmcs_pa);
        self.host.preempt_enable();
        // The VMCS was VMCLEARed: the next entry is a VMLAUNCH.
        rv.vcpu.launched = false;
        r
    }

    #[inline(never)]
    fn run<S: Services>(&self, core: &mut VcpuCore<S>, rv: &mut RealVcpu<H>) -> Result<i32, Errno> {
        let base = core.run_pages().as_ptr();
        let page = setup::PAGE_SIZE;
        if core.run_pages().len() < 2 * page {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the first run page (struct kvm_run), valid while `core`
        // lives; no Rust reference to it exists besides this one.
        let run: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(base, page) };
        // The rest of a 16-byte MMIO store the last run left: to user
        // space first, the guest does not run in between.
        if let Some(m) = rv.st.mmio_write_more.take() {
            rv.vcpu.exit = Some(UserExit::Mmio(m));
            write_exit(run, &UserExit::Mmio(m));
            return Ok(0);
        }
        let mut mmio_data = [0u8; 8];
        if let Some(s) = run.get(RUN_U + 8..RUN_U + 16) {
            mmio_data.copy_from_slice(s);
        }
        let input = RunInput {
            request_interrupt_window: run.get(RUN_REQUEST_IRQ_WINDOW).is_some_and(|b| *b != 0),
            cr8: get_u64(run, RUN_CR8),
            mmio_data,
        };
        // Events and MP state the backend holds. The VCPU's events live in
        // kvm-vmx while it runs and in `core.events` (KVM_GET/SET_VCPU_EVENTS,
        // KVM_INTERRUPT, KVM_NMI) between runs: what user space changed
        // since the last run goes in, what the run left comes back out.
        rv.vcpu.mp_state = mp_to_vmx(core.mp_state());
        let set_by_user = (core.events != rv.events_seen).then_some(core.events);
        // `vmx_cpuid_update` (the C ran it from KVM_SET_CPUID2): RDTSCP and
        // IA32_TSC_AUX exist for the guest when its CPUID says so.
        let rdtscp = cpuid_lookup(core, 0x8000_0001, 0).is_some_and(|e| e.edx & (1 << 27) != 0);
        let st_rdtscp = rv.rdtscp_applied;
        rv.rdtscp_applied = Some(rdtscp);
        let key = rv.key;
        let ((r, out), events) = self.with_env(core, rv, |vcpu, v, env| {
            // The VMCS is current: the host ties what `kick` needs to it.
            env.host.vcpu_running(key.0, key.1);
            if let Some(e) = set_by_user {
                events_into_vmx(&e, vcpu, v);
            }
            if st_rdtscp != Some(rdtscp) {
                let cfg = vcpu.config;
                vcpu.rdtscp_enabled = setup::cpuid_update(v, &cfg, rdtscp);
                kvm_vmx::state::setup_msrs(vcpu);
            }
            let res = vcpu_run(vcpu, v, env, &input);
            if env.st.fpu_loaded {
                // `kvm_put_guest_fpu` on the CPU that holds the state.
                env.host.preempt_disable();
                env.host.fpu_stop_guest(&mut env.st.fpu);
                env.host.preempt_enable();
                env.st.fpu_loaded = false;
            }
            let events = events_from_vmx(vcpu, v, env.core.events.sipi_vector);
            (res, events)
        });
        core.events = events;
        rv.events_seen = events;
        finish_string_pio(rv);
        if let Some(UserExit::Mmio(m)) = rv.vcpu.exit {
            env::remember_mmio_read(&mut rv.st, &m);
        }
        core.set_mp_state(mp_from_vmx(rv.vcpu.mp_state));
        self.report_stats(core, rv);
        match r {
            Err(RunError::Interrupted) => rv.vcpu.exit = Some(UserExit::Intr),
            Err(RunError::Again) => {}
            _ => {}
        }
        if let Some(e) = rv.vcpu.exit {
            write_exit(run, &e);
        }
        put(run, RUN_IF_FLAG, &[u8::from(out.if_flag)]);
        put(
            run,
            RUN_READY_FOR_INJECTION,
            &[u8::from(out.ready_for_interrupt_injection)],
        );
        put(run, RUN_CR8, &out.cr8.to_le_bytes());
        put(run, RUN_APIC_BASE, &out.apic_base.to_le_bytes());
        match r {
            Ok(()) => Ok(0),
            Err(RunError::Interrupted) => Err(Errno::EINTR),
            Err(RunError::Again) => Err(Errno::EAGAIN),
            Err(RunError::Errno(e)) => Err(errno_of(e)),
        }
    }

    /// Add what the VMX counters gained since the last report to the
    /// VCPU's kstat.
    fn report_stats<S: Services>(&self, core: &VcpuCore<S>, rv: &mut RealVcpu<H>) {
        let now = rv.vcpu.stats.values();
        let targets = vcpu_kstat_targets(core.stats());
        for ((value, last), k) in now.iter().zip(rv.reported.iter_mut()).zip(targets) {
            let delta = value.wrapping_sub(*last);
            *last = *value;
            if delta != 0 {
                k.set(k.get().wrapping_add(delta));
            }
        }
    }

    fn msrs_get<S: Services>(
        &self,
        core: &mut VcpuCore<S>,
        rv: &mut RealVcpu<H>,
        entries: &mut [kvm_msr_entry],
    ) -> Result<i32, Errno> {
        let n = self.with_env(core, rv, |vcpu, v, env| {
            let mut n = 0i32;
            for e in entries.iter_mut() {
                match kvm_vmx::exit::get_msr(vcpu, v, env, e.index) {
                    Ok(d) => e.data = d,
                    Err(_) => break,
                }
                n += 1;
            }
            n
        });
        Ok(n)
    }

    fn msrs_set<S: Services>(
        &self,
        core: &mut VcpuCore<S>,
        rv: &mut RealVcpu<H>,
        entries: &[kvm_msr_entry],
    ) -> Result<i32, Errno> {
        let n = self.with_env(core, rv, |vcpu, v, env| {
            let mut n = 0i32;
            for e in entries.iter() {
                if kvm_vmx::exit::set_msr(vcpu, v, env, e.index, e.data).is_err() {
                    break;
                }
                n += 1;
            }
            n
        });
        Ok(n)
    }
}

impl<S: Services, H: VmxHost> VmxSeam<S> for RealVmx<H> {
    type Vm = RealVm<H>;
    type Vcpu = RealVcpu<H>;

    /// `kvm_hvm_incr`: refuse when the attach-time probe found no usable
    /// VMX (EIO, as the C attach did).
    fn hardware_enable(&self) -> Result<(), Errno> {
        self.config.map(|_| ()).ok_or(Errno::EIO)
    }

    /// What the C reported and this port implements: CLOCKSOURCE
    /// (kvmclock, `vm::kvmclock`); HYPERV (the partition-wide Hyper-V MSRs
    /// and the hypercall page); HYPERV_VAPIC (the APIC assist page and the
    /// EOI/ICR/TPR MSRs, `msr.rs`); HYPERV_SPIN (`HvNotifyLongSpinWait`).
    fn supports(&self, cap: Capability) -> bool {
        matches!(
            cap,
            Capability::Hlt
                | Capability::NopIoDelay
                | Capability::InternalErrorData
                | Capability::Clocksource
                | Capability::Hyperv
                | Capability::HypervVapic
                | Capability::HypervSpin
        )
    }

    /// KVM_GET_MSR_INDEX_LIST (`kvm_init_msr_list`'s result).
    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        Ok(self.msr_list.get(..self.msr_count).unwrap_or(&[]))
    }

    fn create_vm(&self, shared: &Arc<VmShared<S>>) -> Result<RealVm<H>, Errno> {
        // kvmclock's epoch: `kvm_arch_create_vm`'s `boot_wallclock`, and the
        // `boot_hrtime` the C declared but never set.
        let (wall_sec, wall_nsec) = self.host.wall_clock();
        shared.set_kvmclock_boot(crate::vm::vm::KvmclockBoot {
            hrtime: self.host.now_ns(),
            wall_sec,
            wall_nsec,
        });
        let mut io_a = self.host.alloc_page()?;
        let mut io_b = self.host.alloc_page()?;
        let mut msr_legacy = self.host.alloc_page()?;
        let mut msr_longmode = self.host.alloc_page()?;
        let apic_access = self.host.alloc_page()?;
        setup::init_io_bitmaps(io_a.page_mut(), io_b.page_mut());
        setup::init_msr_bitmap(msr_legacy.page_mut(), false);
        setup::init_msr_bitmap(msr_longmode.page_mut(), true);
        Ok(RealVm {
            io_a,
            io_b,
            msr_legacy,
            msr_longmode,
            apic_access,
            vcpus: 0,
        })
    }

    /// `vmx_create_vcpu` + `vmx_vcpu_setup` + `vmx_vcpu_reset`.
    // Out of line: keeps its locals out of the dispatcher frame (kernel
    // stack budget, `make` --max-frame).
    #[inline(never)]
    fn create_vcpu(&self, vm: &mut RealVm<H>, core: &VcpuCore<S>) -> Result<RealVcpu<H>, Errno> {
        let cfg = self.cfg()?;
        let mut region = self.host.alloc_page()?;
        let virtual_apic = self.host.alloc_page()?;
        setup::init_vmcs_region(region.page_mut(), cfg.revision);
        let fpu = self.host.fpu_alloc()?;
        let vpid = self.host.vpid_alloc();
        let root = core.shared().mmu().lock().eptp() & !0xfff;
        let layout = VcpuLayout {
            vpid,
            io_bitmap_a: vm.io_a.pa(),
            io_bitmap_b: vm.io_b.pa(),
            msr_bitmap_legacy: vm.msr_legacy.pa(),
            msr_bitmap_longmode: vm.msr_longmode.pa(),
            irqchip_in_kernel: core.has_lapic(),
            apic_access_page: vm.apic_access.pa(),
            virtual_apic_page: virtual_apic.pa(),
            tsc_offset: 0,
            is_bsp: core.is_bsp(),
            sipi_vector: 0,
            ept_root: root,
        };
        let mut vcpu = Box::new(VmxVcpu::new(cfg));
        vcpu.vmcs_pa = region.pa();
        vcpu.vpid = if cfg.vpid() { vpid } else { 0 };
        vcpu.ept_root = root;
        vcpu.mp_state = mp_to_vmx(core.mp_state());
        vcpu.guest_msrs = kvm_vmx::host::GuestMsrs::new(|m| self.host.rdmsr_safe(m).is_some());
        vcpu.host_efer = self.host.rdmsr_safe(kvm_vmx::host::MSR_EFER).unwrap_or(0);
        kvm_vmx::state::setup_msrs(&mut vcpu);
        let mut vmcs = self.host.vmcs(&region);
        // The host records this VMCS's context switches and loads/clears
        // into the VCPU's event ring (`::kvm_ringbuf_entry`).
        // SAFETY: `core.debug` is boxed, so its address is fixed until the
        // VCPU is dropped, and it is only reached through `&` (recording is
        // atomic). The host records only during `vcpu_load`..`vcpu_put` and
        // `loaded` of this VMCS, which run only while the VCPU, and so its
        // record, exists; `Drop for RealVcpu` detaches before `Vcpu` drops
        // the record (field order in `Vcpu`).
        unsafe {
            self.host
                .attach_debug(&mut vmcs, Some(core::ptr::NonNull::from(&*core.debug)));
        }
        let st = Box::new(EnvState {
            vmcs: self.host.vmcs(&region),
            fpu,
            msrs: msr::MsrState::default(),
            mmio_pending: None,
            mmio_write_more: None,
            mmio_answers: [None; emul::MMIO_ANSWERS],
            string_pio: None,
            pio_in_answer: None,
            pio_in_asked: None,
            fpu_loaded: false,
            layout,
            virtual_apic,
            vapic_tpr: 0,
        });
        // The VMCS is set up on one CPU (VMPTRLD .. VMCLEAR).
        self.host.preempt_disable();
        self.host.vcpu_load(&mut vmcs);
        let host_state = self.host.host_state();
        setup::setup_vmcs(&mut vmcs, &cfg, &host_state, &layout);
        setup::reset_guest_state(&mut vmcs, &cfg, &layout);
        self.host.vcpu_put(&mut vmcs);
        self.host.preempt_enable();
        vcpu.launched = false;
        vm.vcpus = vm.vcpus.max(core.index().saturating_add(1));
        Ok(RealVcpu {
            host: self.host.clone(),
            key: (core.shared().id(), core.index()),
            vpid,
            vcpu,
            vmcs,
            region,
            st,
            reported: [0; 15],
            rdtscp_applied: None,
            events_seen: super::vcpu::Events::default(),
        })
    }

    /// `kvm_vcpu_kick` of every VCPU (`kvm_apic_set_irq` kicked the
    /// target; which one is the devices' business, so all are woken and
    /// the ones without an interrupt block again).
    fn kick_vm(&self, vm: &RealVm<H>, shared: &VmShared<S>) {
        for i in 0..vm.vcpus {
            self.host.kick(shared.id(), i);
        }
    }

    fn flush_ept(&self, _vm: &RealVm<H>, shared: &VmShared<S>) {
        let eptp = shared.mmu().lock().eptp();
        self.host
            .invept_all_cpus(kvm_vmx::vmcs::InveptType::SingleContext, eptp);
    }

    fn vcpu_request(
        &self,
        core: &mut VcpuCore<S>,
        rv: &mut RealVcpu<H>,
        req: VcpuRequest<'_>,
    ) -> Result<i32, Errno> {
        match req {
            VcpuRequest::Run { sigmask } => {
                let saved = sigmask.and_then(|m| self.host.set_signal_mask(m));
                let r = self.run(core, rv);
                if let Some(s) = saved {
                    self.host.restore_signal_mask(&s);
                }
                r
            }
            VcpuRequest::GetRegs(out) => {
                self.with_env(core, rv, |vcpu, v, _| regs::get_regs(vcpu, v, out));
                Ok(0)
            }
            VcpuRequest::SetRegs(r) => {
                self.with_env(core, rv, |vcpu, v, _| regs::set_regs(vcpu, v, r));
                Ok(0)
            }
            VcpuRequest::GetSregs(out) => {
                self.with_env(core, rv, |vcpu, v, env| regs::get_sregs(vcpu, v, env, out));
                Ok(0)
            }
            VcpuRequest::SetSregs(s) => {
                self.with_env(core, rv, |vcpu, v, env| regs::set_sregs(vcpu, v, env, s));
                Ok(0)
            }
            VcpuRequest::GetMsrs(entries) => self.msrs_get(core, rv, entries),
            VcpuRequest::SetMsrs(entries) => self.msrs_set(core, rv, entries),
            VcpuRequest::GetFpu(out) => {
                let mut fx = Box::new([0u8; 512]);
                self.host.fpu_get(&rv.st.fpu, &mut fx);
                regs::fpu_from_fxsave(&fx, out);
                Ok(0)
            }
            VcpuRequest::SetFpu(f) => {
                let mut fx = Box::new([0u8; 512]);
                self.host.fpu_get(&rv.st.fpu, &mut fx);
                regs::fpu_to_fxsave(f, &mut fx);
                self.host.fpu_set(&mut rv.st.fpu, &fx)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTSUP),
        }
    }
}

impl<H: VmxHost> Drop for RealVcpu<H> {
    /// `vmx_free_vcpu`: VMCLEAR is the host's business (`vcpu_put` left
    /// the VMCS clear); the VPID goes back (`hma_vmx_vpid_free`). The pages
    /// and the FPU area are freed by their drops.
    fn drop(&mut self) {
        if self.vpid != 0 {
            self.host.vpid_free(self.vpid);
        }
        self.host.vcpu_destroyed(self.key.0, self.key.1);
        // SAFETY: detaching has no precondition.
        unsafe { self.host.attach_debug(&mut self.vmcs, None) };
    }
}

#[cfg(test)]
mod tests {
    use super::vcpu_kstat_targets;

    #[test]
    fn vcpu_kstat_targets_follow_the_names() {
        let stats = kvm_kstat::stats::VcpuStats::new();
        let names = kvm_vmx::vcpu::VcpuStats::NAMES;
        let targets = vcpu_kstat_targets(&stats);
        for (name, k) in names.iter().zip(targets) {
            assert_eq!(k.name(), *name);
        }
        assert_eq!(names.len(), targets.len());
    }
}
