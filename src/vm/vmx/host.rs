//! [`VmxHost`]: what only the hardware and the kernel can do for the VMX
//! run loop. The illumos kernel implements it (`src/illumos`), the
//! bare-metal Bochs test host implements it, and the integration tests
//! implement it over `kvm_vmx::fake` with scripted VM exits
//! (`tests/run_support`).
//!
//! Every method names its illumos counterpart. Everything that is policy
//! (the VMCS layout, exit handling, injection, the `KVM_RUN` loop) stays in
//! `kvm-vmx` and [`super::RealVmx`]; the host only runs instructions and
//! kernel primitives.
//!
//! Pieces of `kvm-vmx` an implementer plugs in:
//! - `VmxHost::Vmcs`: `kvm_vmx::vmcs::Vmcs` (VMREAD/VMWRITE/VMPTRLD/
//!   VMCLEAR/INVEPT/INVVPID instructions; tests: `kvm_vmx::fake::FakeVmcs`);
//! - `VmxHost::enter`: `kvm_vmx::entry::hw::vmx_enter` (the kernel
//!   trampoline; HOST_RIP in [`VmxHost::host_state`] must be
//!   `kvm_vmx::entry::hw::vmx_exit`);
//! - `VmxHost::HostCpu`: `kvm_vmx::host::HostCpu` (+ `MsrHw`);
//! - `VmxHost::Cpu`: `kvm_vmx::CpuFeatures` (for `VmcsConfig::probe`);
//! - `VmxHost::smt_acquire`: `kvm_vmx::run::SmtAcquire`.

use kvm_ioctl::{Errno, VmId};
use kvm_vmx::CpuFeatures;
use kvm_vmx::entry::EntryResult;
use kvm_vmx::host::{CpuSharedMsrs, HostCpu};
use kvm_vmx::run::SmtAcquire;
use kvm_vmx::setup::{HostCpuState, HostState, Page};
use kvm_vmx::vcpu::GuestRegs;
use kvm_vmx::vmcs::{InveptType, Vmcs};

/// A zeroed, 4 KiB-aligned kernel page with a physical address: the VMCS
/// region, the MSR bitmaps, the I/O bitmaps, the APIC-access page.
/// illumos: `kmem_cache_alloc` of a page-aligned cache (or
/// `kmem_zalloc(PAGESIZE)`) + `hat_getpfnum(kas.a_hat, va)`; dropping it
/// frees the page (`kmem_free`). Never on the kernel stack.
pub trait HostPage: Send {
    /// Physical address of the page.
    fn pa(&self) -> u64;
    /// The page's bytes (kernel mapping).
    fn page(&self) -> &Page;
    /// Mutable bytes.
    fn page_mut(&mut self) -> &mut Page;
}

/// Where a VCPU's VMCS stands just before an entry ([`VmxHost::loaded`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadState {
    /// The CPU the thread runs on (`CPU->cpu_id`); interrupts are off, so it
    /// cannot change before the entry.
    pub cpu: u32,
    /// The VMCS was VMCLEARed since the previous call (the context op's
    /// save ran because the thread left the CPU): the next entry must be a
    /// VMLAUNCH, and the per-CPU host fields are rewritten when `cpu`
    /// changed.
    pub cleared: bool,
}

/// The platform half of VMX (see the module documentation).
///
/// All methods take `&self`: the host is shared by every VM and VCPU. The
/// per-VCPU objects it hands out ([`Self::Vmcs`], [`Self::Fpu`]) are owned
/// by the VCPU, which the driver serialises (its run lock).
pub trait VmxHost: Send + Sync + 'static {
    /// A page ([`HostPage`]).
    type Page: HostPage;
    /// A handle on one VCPU's VMCS: VMREAD/VMWRITE act on the current VMCS
    /// of the CPU (hardware), VMPTRLD/VMCLEAR/INVEPT/INVVPID are the
    /// instructions. Several handles of the same region may exist at once
    /// and must act on the same VMCS (on hardware they are stateless; the
    /// fake shares its storage).
    type Vmcs: Vmcs + Send;
    /// CPUID/RDMSR of the host CPU, for `VmcsConfig::probe`.
    type Cpu: CpuFeatures;
    /// The current CPU's selectors, LDT, TSS, GDTR limit and MSRs
    /// (`kvm_vmx::host::HostCpu`): what a VM exit does not restore. A cheap
    /// handle on "this CPU", used with preemption disabled.
    type HostCpu: HostCpu;
    /// A guest FPU save area (`hma_fpu_t` from `hma_fpu_alloc`).
    type Fpu: Send;

    // ---- attach / probe ------------------------------------------------

    /// The host CPU's features (`cpuid`, `rdmsr`), read once by
    /// `hardware_enable` for `VmcsConfig::probe`.
    fn cpu(&self) -> &Self::Cpu;
    /// `rdmsr_safe`: `None` if the MSR does not exist (#GP caught; illumos
    /// `checked_rdmsr`). For KVM_GET_MSR_INDEX_LIST.
    fn rdmsr_safe(&self, msr: u32) -> Option<u64>;

    // ---- memory ------------------------------------------------------------

    /// A zeroed page with its physical address; ENOMEM if none
    /// (`kmem_zalloc(PAGESIZE, KM_SLEEP)` + `hat_getpfnum`).
    fn alloc_page(&self) -> Result<Self::Page, Errno>;
    /// A handle on the VMCS whose region is `region` (already initialised
    /// with the revision id by the caller).
    fn vmcs(&self, region: &Self::Page) -> Self::Vmcs;

    // ---- VPIDs -------------------------------------------------------------

    /// A VPID, 0 when none is left (`hma_vmx_vpid_alloc`).
    fn vpid_alloc(&self) -> u16;
    /// Give one back (`hma_vmx_vpid_free`); never called with 0.
    fn vpid_free(&self, vpid: u16);

    // ---- host state --------------------------------------------------------

    /// Host state the same on every CPU (`vmx_vcpu_setup`: CR0 with TS,
    /// CR4, KCS_SEL/KDS_SEL/KTSS_SEL, FS/GS, SYSENTER, PAT) with
    /// `rip` = the trampoline's exit address (`entry::hw::vmx_exit`).
    fn host_state(&self) -> HostState;
    /// This CPU's host state (CR3, TR/GDTR/IDTR/GS bases, SYSENTER_ESP,
    /// `tsc_gethrtime_tick_delta`). Called with interrupts disabled.
    fn host_cpu_state(&self) -> HostCpuState;
    /// The current CPU's `HostCpu` handle (preemption disabled).
    fn host_cpu(&self) -> Self::HostCpu;
    /// Run `f` on this CPU's shared-MSR cache (`shared_msrs[CPU->cpu_id]`;
    /// preemption disabled).
    fn with_shared_msrs(&self, f: &mut dyn FnMut(&mut CpuSharedMsrs));
    /// Arrange for `CpuSharedMsrs::on_user_return` before the thread goes
    /// back to user mode or leaves the CPU (`kvm_user_return_notifier_
    /// register`: a context op / `lwp` return hook on illumos).
    fn register_user_return(&self);
    /// The host's CR0 now (`getcr0()`; the FPU switch may change TS).
    fn host_cr0(&self) -> u64;

    // ---- the VMCS across thread switches -----------------------------------

    /// Start of `KVM_RUN` (`vcpu_load` → `kvm_arch_vcpu_load` →
    /// `vmx_vcpu_load`): `installctx` a save op that VMCLEARs `vmcs` when
    /// the thread leaves its CPU and a restore op that VMPTRLDs it when the
    /// thread comes back (on whatever CPU), then VMPTRLD it now, with
    /// preemption disabled around the two.
    fn vcpu_load(&self, vmcs: &mut Self::Vmcs);
    /// End of `KVM_RUN` and of the register ioctls (`vcpu_put` →
    /// `vmx_vcpu_put`): VMCLEAR and `removectx`. The caller has already
    /// put the host's selectors/KERNEL_GS_BASE back and stopped the guest
    /// FPU; after this the next entry is a VMLAUNCH.
    fn vcpu_put(&self, vmcs: &mut Self::Vmcs);
    /// Just before an entry, preemption off (called from
    /// `prepare_guest_switch`): where the VMCS is (see [`LoadState`]),
    /// VMPTRLDing it first if the thread moved without the restore op
    /// having run. `cleared` is reported once per VMCLEAR; the caller then
    /// rewrites the per-CPU host fields, flushes the VPID/EPT tags and
    /// uses VMLAUNCH.
    fn loaded(&self, vmcs: &mut Self::Vmcs) -> LoadState;
    /// VMLAUNCH (`launched == false`) or VMRESUME with `regs`:
    /// `kvm_vmx::entry::hw::vmx_enter(regs, launched)` on the kernel; the
    /// VMCS is current and interrupts are disabled. Tests script exits here.
    fn enter(&self, vmcs: &mut Self::Vmcs, regs: &mut GuestRegs, launched: bool) -> EntryResult;
    /// Attach the VCPU's debugger record (`VcpuCore::debug`, whose event
    /// ring `::kvm_ringbuf_entry` shows) to the VMCS region `vmcs` is a
    /// handle of, so the host records its own events there: on illumos the
    /// context ops' `CTXSAVE`/`CTXRESTORE`, and `VMPTRLD`, `VCPUMIGRATE`,
    /// `VCPUCLEAR` (the `kvm_ringbuf_record` calls of kvm.c
    /// `kvm_ctx_save`/`kvm_ctx_restore` and kvm_vmx.c `vmx_vcpu_load`,
    /// which reached `vcpu->kvcpu_ringbuf` directly). `None` detaches.
    /// Default: the host records nothing (the test and Bochs hosts).
    ///
    /// The ring is recorded through `&` (atomics, `kvm_kstat::ringbuf`),
    /// so the VCPU thread recording `VCPULOAD`/`VCPUPUT` through
    /// `VcpuCore::debug` and a context op recording at the same time need
    /// no exclusive access.
    ///
    /// # Safety
    ///
    /// While `rec` is attached, the host may record into it during any call
    /// given a handle of this VMCS region ([`Self::vcpu_load`],
    /// [`Self::loaded`], [`Self::enter`], [`Self::vcpu_put`], the handle's
    /// `Vmcs::vmptrld`/`vmclear` of its own region) and from the context
    /// ops `vcpu_load` installs, until the matching `vcpu_put` returns. At
    /// each of those moments the record must be alive, at the address
    /// `rec` gives, and reached only through shared references. Attaching
    /// `None`, or dropping every handle of the region, ends the attachment.
    unsafe fn attach_debug(
        &self,
        _vmcs: &mut Self::Vmcs,
        _rec: Option<core::ptr::NonNull<kvm_kstat::debug::KvmDebugVcpu>>,
    ) {
    }
    /// INVEPT of `eptp` on every CPU (`kvm_flush_remote_tlbs`: an
    /// `xc_call` of INVEPT to the CPUs in the VM's CPU set). Run when the
    /// MMU zapped mappings.
    fn invept_all_cpus(&self, kind: InveptType, eptp: u64);

    // ---- scheduling --------------------------------------------------------

    /// `kpreempt_disable` / `kpreempt_enable`.
    fn preempt_disable(&self);
    fn preempt_enable(&self);
    /// `cli` / `sti` (`intr_clear`/`intr_restore`).
    fn interrupts_disable(&self);
    fn interrupts_enable(&self);
    /// `smt_mark_as_vcpu`, `smt_acquire`, `smt_release`.
    fn smt_mark_as_vcpu(&self);
    fn smt_acquire(&self) -> SmtAcquire;
    fn smt_release(&self);
    /// `thread_affinity_set(curthread, CPU_BEST)` then
    /// `thread_affinity_clear` (after `smt_acquire` said to move).
    fn migrate(&self);
    /// `issig(JUSTLOOKING)`: a signal is pending for the calling thread.
    fn signal_pending(&self) -> bool;
    /// KVM_SET_SIGNAL_MASK around KVM_RUN (`kvm_vcpu_ioctl`:
    /// `sigprocmask(SIG_SETMASK, &vcpu->sigset, &sigsaved)`): install `mask`
    /// (a `sigset_t`) for the calling thread and return the previous one,
    /// which [`Self::restore_signal_mask`] puts back after the run. Default:
    /// no signal masks (`None`), for hosts without signals.
    fn set_signal_mask(
        &self,
        _mask: &kvm_ioctl::backend::SigSet,
    ) -> Option<kvm_ioctl::backend::SigSet> {
        None
    }
    /// Put back the mask [`Self::set_signal_mask`] returned.
    fn restore_signal_mask(&self, _saved: &kvm_ioctl::backend::SigSet) {}
    /// The scheduler wants this CPU (`CPU->cpu_runrun || CPU->cpu_kprunrun`).
    fn host_wants_cpu(&self) -> bool;
    /// `kvm_vcpu_block`: sleep on VCPU `vcpu` of `vm`'s kick CV
    /// (`cv_wait_sig_swap` on `kvcpu_kick_cv` under `kvcpu_kick_lock`)
    /// until `wake()` returns true (checked under the lock before each
    /// sleep), a [`Self::kick`] or a signal. Returns without sleeping if
    /// `wake()` is already true.
    fn block(&self, vm: VmId, vcpu: u32, wake: &mut dyn FnMut() -> bool);
    /// Wake VCPU `vcpu` of `vm` from [`Self::block`] (`cv_broadcast` of its
    /// kick CV), and poke its CPU if it runs a guest (`kvm_vcpu_kick`:
    /// `poke_cpu`). The timer callbacks and interrupt injection call it.
    fn kick(&self, vm: VmId, vcpu: u32);
    /// KVM_RUN of VCPU `vcpu` of `vm` starts: its VMCS is current, and the
    /// thread may allocate. A host prepares what [`Self::kick`] needs to
    /// reach a VCPU in guest mode (illumos: the kick object, tied to the
    /// VMCS, so `poke_cpu` finds the CPU even before the VCPU first
    /// blocks). Default: nothing.
    fn vcpu_running(&self, _vm: VmId, _vcpu: u32) {}
    /// VCPU `vcpu` of `vm` is gone (its thread left KVM_RUN for good): free
    /// what [`Self::block`]/[`Self::kick`] keep for it (the C driver freed
    /// the kick CV with the VCPU).
    fn vcpu_destroyed(&self, _vm: VmId, _vcpu: u32) {}
    /// Deliver the host NMI that caused a VM exit (`int $2`).
    fn host_nmi(&self);

    // ---- FPU -----------------------------------------------------------

    /// A guest FPU area in the reset state (`hma_fpu_alloc(KM_SLEEP)` +
    /// `hma_fpu_init`).
    fn fpu_alloc(&self) -> Result<Self::Fpu, Errno>;
    /// Load the guest FPU (`hma_fpu_start_guest`); preemption disabled.
    fn fpu_start_guest(&self, fpu: &mut Self::Fpu);
    /// Save it and restore the host's (`hma_fpu_stop_guest`).
    fn fpu_stop_guest(&self, fpu: &mut Self::Fpu);
    /// The guest FPU as an FXSAVE image (`hma_fpu_get_fxsave_state`).
    fn fpu_get(&self, fpu: &Self::Fpu, fxsave: &mut [u8; 512]);
    /// Replace it (`hma_fpu_set_fxsave_state`); EINVAL if rejected.
    fn fpu_set(&self, fpu: &mut Self::Fpu, fxsave: &[u8; 512]) -> Result<(), Errno>;

    // ---- time ----------------------------------------------------------

    /// The current CPU's id (`CPU->cpu_id`) and thread (`curthread`), for
    /// the VCPU event ring (`::kvm_ringbuf_entry`).
    fn cpu_id(&self) -> u32 {
        0
    }
    fn thread_id(&self) -> u64 {
        0
    }
    /// Monotonic nanoseconds (`gethrtime`).
    fn now_ns(&self) -> u64;
    /// The host TSC (`rdtsc`).
    fn host_tsc(&self) -> u64;
    /// A VCPU spins in a PAUSE loop (`kvm_vcpu_on_spin`). Default: nothing,
    /// as the C (unported there); the Bochs host, whose VCPUs share one
    /// CPU, ends the slice so the VCPU being waited for runs.
    fn vcpu_on_spin(&self) {}
    /// Load the guest's breakpoint addresses into DR0–DR3
    /// (`set_debugreg`), interrupts off, right before VM entry; the VMCS
    /// loads DR7. The host's are not restored (as the C: the VM exit
    /// sets DR7 to 0x400, disarming them).
    fn load_debug_regs(&self, db: &[u64; 4]);
    /// One consistent reading of the host clock and TSC with the TSC→ns
    /// scale, for kvmclock (`tsc_gethrtime_params`). Its `hrtime` is in
    /// the time base of [`Self::now_ns`]; its `tsc` is CPU-neutral (the
    /// TSC of this CPU plus its `tsc_gethrtime_tick_delta`).
    fn clock_params(&self) -> crate::vm::kvmclock::ClockParams;
    /// The wall-clock time (seconds, nanoseconds since the epoch;
    /// `gethrestime`), taken at VM creation for the guest's kvmclock.
    fn wall_clock(&self) -> (u64, u32);
    /// A VMX-preemption timer value for the next entry
    /// (`kvm_vmx::run::RunEnv::preemption_timer`): `None` on illumos, whose
    /// clock interrupts end a guest's time slice; the Bochs test host,
    /// which shares one CPU between VCPUs, asks for one.
    fn preemption_timer(&self) -> Option<u32> {
        None
    }
}
