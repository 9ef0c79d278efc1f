//! `kvm::vm::vmx::host::VmxHost` for the illumos kernel: the VMX
//! instructions, the host CPU state and the kernel primitives the VMX run
//! loop needs, each over the interface illumos-kvm used for the same job.
//!
//! | method | illumos / illumos-kvm |
//! |---|---|
//! | pages | `kmem_zalloc(PAGESIZE)` + `hat_getpfnum(kas.a_hat)` |
//! | VMCS | VMREAD/VMWRITE/VMPTRLD/VMCLEAR/INVEPT/INVVPID (`kvm_vmx::insn`, kvm_vmx.c `vmcs_load`/`vmcs_clear`/`__invept`) |
//! | VPIDs | `hma_vmx_vpid_alloc`/`hma_vmx_vpid_free` |
//! | context ops | `installctx_preallocate`/`installctx`/`removectx` (kvm.c `vcpu_load`/`vcpu_put`) in kvm_vmx_glue.c |
//! | INVEPT everywhere | `xc_sync` over `CPUSET_ALL` (kvm.c `kvm_xcall`) |
//! | preemption | `kpreempt_disable`/`kpreempt_enable` (macros: C glue) |
//! | interrupts | `cli`/`sti` (`asm!`) |
//! | SMT | `smt_mark_as_vcpu`/`smt_acquire`/`smt_release`, `thread_affinity_set(CPU_BEST)` |
//! | signals, runrun | `issig(JUSTLOOKING)`, `CPU->cpu_runrun \|\| CPU->cpu_kprunrun` |
//! | block/kick | `cv_wait_sig_swap`/`cv_broadcast` on a per-VCPU kick object, `poke_cpu` |
//! | FPU | `hma_fpu_*` |
//! | time | `gethrtime`, `rdtsc`, `tsc_gethrtime_tick_delta` |
//!
//! ## The VMCS across thread switches
//!
//! Each VMCS region page carries a [`VmcsCtx`] (reference counted, shared
//! by every [`IllumosVmcs`] handle of that region). `vcpu_load` installs a
//! context op on the VCPU thread whose argument is a counted reference on
//! that `VmcsCtx` (released by the op's free callback, which `removectx`
//! and thread exit call). The save op (the thread leaves its CPU) does what
//! illumos-kvm's `kvm_ctx_save` → `kvm_arch_vcpu_put` did that the run
//! loop cannot do itself:
//! - VMCLEAR (the VMCS may next be loaded on another CPU) and remember it,
//!   so [`VmxHost::loaded`] reports `cleared` once;
//! - `hma_fpu_stop_guest` if the guest FPU is loaded (`fpu_start_guest`);
//!   the restore op does `hma_fpu_start_guest` again, so the run loop's
//!   "FPU loaded" flag stays true across a switch;
//! - if the guest's KERNEL_GS_BASE is in the MSR (`HostSwitch::save` ran and
//!   `HostSwitch::load` has not), park it and put the host's back; the
//!   restore op loads the guest's again (part of the
//!   `__vmx_load_host_state` of `vmx_vcpu_put`, see "Approximations");
//! - `CpuSharedMsrs::on_user_return` for the CPU being left (illumos-kvm's
//!   `kvm_fire_urn` in `kvm_ctx_save`).
//!
//! The restore op VMPTRLDs the VMCS on the new CPU.
//!
//! ## The event ring
//!
//! Once the VCPU's debugger record is attached to its VMCS
//! ([`IllumosVmcs::attach_ring`]), the context ops and the VMCS loads and
//! clears record into its event ring (`::kvm_ringbuf_entry`), as
//! illumos-kvm's did (kvm.c `kvm_ctx_save`/`kvm_ctx_restore`, kvm_vmx.c
//! `vmx_vcpu_load`): `CTXSAVE` and `CTXRESTORE` (payload: the CPU the VCPU
//! is on, `vcpu->cpu`), `VCPUMIGRATE` when the VMCS is loaded on another
//! CPU than last time (payload: the new CPU, as the C), and, which the C
//! declared but never recorded, `VMPTRLD` (payload: the VMCS's physical
//! address) and `VCPUCLEAR` (payload: the CPU it was cleared on). Nothing
//! is recorded before the attach.
//!
//! The backend attaches it through
//! [`VmxHost::attach_debug`](crate::vm::vmx::host::VmxHost::attach_debug).
//! The ring is atomics and records through `&` (`kvm_kstat::ringbuf`): the
//! VCPU thread (through `VcpuCore::debug`) and a context op that preempts
//! it both hold only shared references to the record, so there is no
//! `&mut` to alias, and two events recorded at once take distinct slots.
//!
//! ## Per-CPU state
//!
//! A static table indexed by `cpu_id` ([`KVM_VMX_MAX_CPUS`] entries;
//! kvm_vmx_glue.c asserts `NCPU` fits): the shared-MSR cache
//! (`shared_msrs[cpu]`) and the `VmcsCtx` current on that CPU. Both are
//! touched only on their own CPU with preemption disabled (or from the
//! context ops, which run in the dispatcher on the CPU being left/entered).
//!
//! ## Block and kick
//!
//! A registry, `(vm id, vcpu index)` → boxed [`Kick`] (`kmutex_t` +
//! `kcondvar_t` + a generation counter + the CPU the VCPU is in guest mode
//! on): an intrusive singly linked list (a handful of VCPUs; no container
//! code, so no allocation or panic path on lookup) behind a statically
//! zeroed `kmutex_t` (a zero-filled `kmutex_t` is a valid adaptive mutex on
//! illumos). [`VmxHost::vcpu_running`] (each KVM_RUN) and
//! [`VmxHost::block`] create the VCPU's object on first use and tie it to
//! the VMCS (thread context: they may allocate, outside the registry lock);
//! [`VmxHost::kick`] only looks it up (a list walk: no allocation),
//! bumps the generation and `cv_broadcast`s (never sleeps), so it is safe
//! from a `CY_LOW_LEVEL` cyclic handler, which may take adaptive mutexes as
//! the C driver's `kvm_timer_fire` did. Lock order: registry → kick lock;
//! `block` evaluates `wake()` with neither held (the generation counter
//! closes the lost-wakeup window: a kick after the `wake()` check changes
//! the generation and the sleep is skipped), so `wake()` may take device
//! locks that a kicker holds.
//!
//! ## Approximations
//!
//! - Host state on a thread switch: illumos-kvm's save op ran the whole
//!   `__vmx_load_host_state` (selectors, LDT, TSS, KERNEL_GS_BASE, GDTR
//!   limit). `kvm_vmx::host::HostSwitch` lives in the VCPU, out of the
//!   save op's reach, so the save op only parks KERNEL_GS_BASE (the one
//!   whose leak would be fatal: `swapgs` to user mode with the guest's GS
//!   base), tracked through [`IllumosHostCpu`]'s `wrmsr`. The selectors and
//!   the LDT are the dispatcher's to restore for threads that use them
//!   (illumos reloads user segment registers on return to user mode and
//!   has its own LDT context ops); the TR limit (0x67 after an exit) and
//!   the GDTR limit stay until `load_host_state` (only the TSS I/O bitmap
//!   is past 0x67). A trait hook for "the thread left the CPU" would let
//!   the run loop do the full restore.
//! - `block` calls `wake()` without the kick lock (the trait documents it
//!   under the lock); the generation counter gives the same guarantee.
//! - A kick before the VCPU's first KVM_RUN finds no kick object (it is
//!   created and tied to the VMCS by `vcpu_running` at each KVM_RUN, and
//!   by `block`) and only counts through `wake()`.
//! - `invept_all_cpus` cross-calls every CPU, not only those that ran the
//!   VM (illumos-kvm tracked the VM's CPU set).
//! - Kick objects are freed by `vcpu_destroyed` (VCPU destroy)
//!   and [`IllumosVmxHost::teardown`] (`_fini`), which the driver must call.
//!
//! ## What only a real illumos host can verify
//!
//! Everything here runs only in the kernel module (feature `kernel`); none
//! of it executes on Linux. Marked `ILLUMOS-VERIFY` below: the context-op
//! ordering (save on the CPU being left), the TSS/GDT reload, the GS
//! reload, `on_trap` catching the #GP of RDMSR, and the cyclic-context kick.

// Nothing in the driver constructs the host yet: the VMX backend's wiring
// (src/vm/vmx, another engineer's) will instantiate `IllumosVmxHost`. Remove
// this once it does.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

use kvm_ioctl::{Errno, VmId};
use kvm_kstat::debug::KvmDebugVcpu;
use kvm_kstat::ringbuf::Tag;
use kvm_vmx::entry::EntryResult;
use kvm_vmx::host::{CpuSharedMsrs, HostCpu, MsrHw};
use kvm_vmx::insn;
use kvm_vmx::run::SmtAcquire;
use kvm_vmx::setup::{HostCpuState, HostState, Page};
use kvm_vmx::vcpu::GuestRegs;
use kvm_vmx::vmcs::{InveptType, InvvpidType, VmFail, Vmcs};

use super::cpu::HostCpu as HostCpuFeatures;
use super::sys::{self, KCondvarRaw, KMutexRaw, KVM_VMX_MAX_CPUS};
use crate::vm::vmx::host::{HostPage, LoadState, VmxHost};

const PAGE_SIZE: usize = 4096;

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_CR_PAT: u32 = 0x277;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

const CR0_TS: u64 = 1 << 3;
const CR4_VMXE: u64 = 1 << 13;

// ---- small instruction wrappers --------------------------------------------

/// This CPU's id. Meaningful only with preemption (or interrupts) disabled.
fn cpu_id() -> u32 {
    // SAFETY: reads CPU->cpu_id; no preconditions.
    unsafe { sys::kvm_vmx_glue_cpu_id() }
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: ring 0; only architectural MSRs every VMX-capable x86_64 CPU
    // has are read this way (the probing path uses `rdmsr_safe`).
    unsafe { x86::msr::rdmsr(msr) }
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: ring 0; callers write host values read back from the same
    // MSR or guest values kvm-vmx already validated (shared MSRs,
    // KERNEL_GS_BASE).
    unsafe { x86::msr::wrmsr(msr, value) }
}

fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect in ring 0.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: as `read_cr0`.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: as `read_cr0`.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// SGDT/SIDT image.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct DescTable {
    limit: u16,
    base: u64,
}

fn sgdt() -> DescTable {
    let mut d = DescTable::default();
    // SAFETY: SGDT stores 10 bytes into `d`, which is 10 bytes.
    unsafe { asm!("sgdt [{}]", in(reg) &mut d, options(nostack, preserves_flags)) };
    d
}

fn sidt() -> DescTable {
    let mut d = DescTable::default();
    // SAFETY: SIDT stores 10 bytes into `d`.
    unsafe { asm!("sidt [{}]", in(reg) &mut d, options(nostack, preserves_flags)) };
    d
}

fn str_selector() -> u16 {
    let v: u16;
    // SAFETY: STR only reads the task register.
    unsafe { asm!("str {0:x}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The base of the 16-byte system descriptor (TSS) `sel` of the GDT
/// (kvm_x86.c `segment_base` for a TSS selector).
fn system_descriptor_base(sel: u16) -> u64 {
    let gdt = sgdt();
    let off = u64::from(sel & !7);
    if sel == 0 || off + 15 > u64::from(gdt.limit) {
        return 0;
    }
    let p = (gdt.base + off) as *const u32;
    // SAFETY: the descriptor lies inside the live GDT (checked against its
    // limit above); the GDT is mapped kernel memory. Volatile: the CPU
    // writes the busy bit.
    let (w0, w1, w2) = unsafe {
        (
            core::ptr::read_volatile(p),
            core::ptr::read_volatile(p.add(1)),
            core::ptr::read_volatile(p.add(2)),
        )
    };
    let base_lo = u64::from(w0 >> 16);
    let base_mid = u64::from(w1 & 0xff);
    let base_hi = u64::from(w1 >> 24);
    base_lo | (base_mid << 16) | (base_hi << 24) | (u64::from(w2) << 32)
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is always available in ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

// ---- VMX instructions ---------------------------------------------------------

// The instructions are `kvm_vmx::insn` (shared with the Bochs host). The
// driver only runs them in VMX root operation: HMA ran VMXON on every CPU
// before `hma_register` returned, and the VMCS regions are the driver's.

// ---- per-VMCS context -------------------------------------------------------

/// What the context ops and [`VmxHost::loaded`] know about one VMCS.
pub struct VmcsCtx {
    /// Physical address of the VMCS region.
    pa: u64,
    /// The CPU on which the VMCS is current, -1 if none.
    cpu: AtomicI32,
    /// VMCLEARed since the last [`VmxHost::loaded`].
    cleared: AtomicBool,
    /// The VCPU's kick object (for `poke_cpu`), once KVM_RUN (or `block`)
    /// has run.
    kick: AtomicPtr<Kick>,
    /// The guest FPU while it is loaded (`fpu_start_guest` .. `_stop_guest`).
    fpu: AtomicPtr<sys::HmaFpu>,
    /// The guest's KERNEL_GS_BASE is in the MSR; `kgsb_host` is the host's.
    kgsb_switched: AtomicBool,
    kgsb_host: AtomicU64,
    /// The save op put the host's value back; `kgsb_guest` is the guest's.
    kgsb_parked: AtomicBool,
    kgsb_guest: AtomicU64,
    /// The VCPU's debugger record, whose event ring the context ops and
    /// VMPTRLD/VMCLEAR record into; null until [`IllumosVmcs::attach_ring`].
    ring: AtomicPtr<KvmDebugVcpu>,
    /// The CPU the VMCS was last loaded on (`vmx->cpu_lastrun`), -1 before
    /// the first load.
    last_cpu: AtomicI32,
}

impl VmcsCtx {
    fn new(pa: u64) -> Self {
        Self {
            pa,
            cpu: AtomicI32::new(-1),
            cleared: AtomicBool::new(true),
            kick: AtomicPtr::new(core::ptr::null_mut()),
            fpu: AtomicPtr::new(core::ptr::null_mut()),
            kgsb_switched: AtomicBool::new(false),
            kgsb_host: AtomicU64::new(0),
            kgsb_parked: AtomicBool::new(false),
            kgsb_guest: AtomicU64::new(0),
            ring: AtomicPtr::new(core::ptr::null_mut()),
            last_cpu: AtomicI32::new(-1),
        }
    }

    /// Port of kvm.c:kvm_ringbuf_record for the events this file sees:
    /// `tag` with `payload` into the attached ring, stamped with this CPU,
    /// `curthread` and the TSC (`gethrtime_unscaled`). Nothing before the
    /// ring is attached. Callers have preemption disabled (or are context
    /// ops).
    fn record(&self, tag: Tag, payload: u64) {
        let rec = self.ring.load(Ordering::Acquire);
        if rec.is_null() {
            return;
        }
        // SAFETY: reads `curthread`; no preconditions.
        let thread = unsafe { sys::kvm_vmx_glue_curthread() };
        // SAFETY: `attach_ring`'s contract: the record is alive whenever
        // this can run (inside `vcpu_load`/`loaded`/`vcpu_put` of this VMCS
        // and the context ops installed between them) until detached; only
        // shared references to it exist (recording is atomic stores).
        let rec: &KvmDebugVcpu = unsafe { &*rec };
        rec.record(tag, cpu_id(), thread, rdtsc(), payload);
    }

    /// VMPTRLD on this CPU and record it (preemption disabled); in the
    /// event ring `VMPTRLD`, and `VCPUMIGRATE` if the VMCS was last loaded
    /// on another CPU (kvm_vmx.c:vmx_vcpu_load's `cpu_lastrun` check).
    fn load_here(&self) -> Result<(), VmFail> {
        let cpu = cpu_id();
        // SAFETY: VMX root (HMA); `pa` is this VCPU's VMCS region.
        let r = unsafe { insn::vmptrld(self.pa) };
        if r.is_ok() {
            self.cpu.store(cpu as i32, Ordering::Relaxed);
            if let Some(p) = percpu(cpu) {
                p.current
                    .store(self as *const VmcsCtx as *mut VmcsCtx, Ordering::Relaxed);
            }
            self.record(Tag::Vmptrld, self.pa);
            if self.last_cpu.swap(cpu as i32, Ordering::Relaxed) != cpu as i32 {
                self.record(Tag::VcpuMigrate, u64::from(cpu));
            }
        }
        r
    }

    /// VMCLEAR and record it (preemption disabled); `VCPUCLEAR` in the
    /// event ring.
    fn clear_here(&self) -> Result<(), VmFail> {
        self.record(Tag::VcpuClear, u64::from(cpu_id()));
        // SAFETY: as in `load_here`.
        let r = unsafe { insn::vmclear(self.pa) };
        self.cleared.store(true, Ordering::Relaxed);
        self.cpu.store(-1, Ordering::Relaxed);
        if let Some(p) = percpu(cpu_id()) {
            let me = self as *const VmcsCtx as *mut VmcsCtx;
            let _ = p.current.compare_exchange(
                me,
                core::ptr::null_mut(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        r
    }
}

/// The context-op save callback: the VCPU thread leaves its CPU
/// (illumos-kvm `kvm_ctx_save`). Runs in the dispatcher: must not block or
/// allocate.
///
/// ILLUMOS-VERIFY: called with the thread still on the CPU it leaves.
unsafe extern "C" fn ctx_save(arg: *mut c_void) {
    // SAFETY: `arg` is a counted reference installed by `vcpu_load`,
    // released only by `ctx_free`, which runs after the last save.
    let ctx = unsafe { &*(arg as *const VmcsCtx) };
    // kvm.c:kvm_ctx_save records first, with `vcpu->cpu` (-1 reads as
    // u64::MAX, as the C's int widened to the uint64_t payload).
    ctx.record(Tag::CtxSave, ctx.cpu.load(Ordering::Relaxed) as i64 as u64);
    let fpu = ctx.fpu.load(Ordering::Relaxed);
    if !fpu.is_null() {
        // SAFETY: the area is live while `fpu` is set (fpu_stop_guest
        // clears it before the area can be freed); we are in the save op,
        // as hma.h asks.
        unsafe { sys::hma_fpu_stop_guest(fpu) };
    }
    if ctx.kgsb_switched.load(Ordering::Relaxed) && !ctx.kgsb_parked.load(Ordering::Relaxed) {
        ctx.kgsb_guest
            .store(rdmsr(MSR_KERNEL_GS_BASE), Ordering::Relaxed);
        wrmsr(MSR_KERNEL_GS_BASE, ctx.kgsb_host.load(Ordering::Relaxed));
        ctx.kgsb_parked.store(true, Ordering::Relaxed);
    }
    let _ = ctx.clear_here();
    user_return_here();
}

/// The context-op restore callback: the VCPU thread runs again, perhaps on
/// another CPU (illumos-kvm `kvm_ctx_restore`).
unsafe extern "C" fn ctx_restore(arg: *mut c_void) {
    // SAFETY: as `ctx_save`.
    let ctx = unsafe { &*(arg as *const VmcsCtx) };
    // kvm.c:kvm_ctx_restore records `vcpu->cpu` (still the CPU the VCPU
    // last ran on) before `kvm_arch_vcpu_load`.
    ctx.record(
        Tag::CtxRestore,
        ctx.last_cpu.load(Ordering::Relaxed) as i64 as u64,
    );
    let _ = ctx.load_here();
    if ctx.kgsb_parked.load(Ordering::Relaxed) {
        ctx.kgsb_host
            .store(rdmsr(MSR_KERNEL_GS_BASE), Ordering::Relaxed);
        wrmsr(MSR_KERNEL_GS_BASE, ctx.kgsb_guest.load(Ordering::Relaxed));
        ctx.kgsb_parked.store(false, Ordering::Relaxed);
    }
    let fpu = ctx.fpu.load(Ordering::Relaxed);
    if !fpu.is_null() {
        // SAFETY: as in `ctx_save`; the restore op is where hma.h wants it.
        unsafe { sys::hma_fpu_start_guest(fpu) };
    }
}

/// The context-op free callback (`removectx`, thread exit): drop the
/// reference `vcpu_load` gave the op.
///
/// illumos-gate thread.c: `removectx` calls `free_op(arg, 0)` for the op it
/// removes, `freectx` (thread exit) `free_op(arg, isexec)` for any op left.
/// A kernel that did not would leak the reference, never free it early.
unsafe extern "C" fn ctx_free(arg: *mut c_void, _isexec: c_int) {
    if !arg.is_null() {
        // SAFETY: `arg` came from `Arc::into_raw` in `vcpu_load`, and the
        // kernel calls the free op once per installed op.
        drop(unsafe { Arc::from_raw(arg as *const VmcsCtx) });
    }
}

// ---- per-CPU table ------------------------------------------------------------

struct PerCpu {
    /// `shared_msrs[cpu]`: touched only on this CPU, preemption disabled.
    shared: UnsafeCell<CpuSharedMsrs>,
    /// The VMCS current on this CPU (set by VMPTRLD, cleared by VMCLEAR).
    current: AtomicPtr<VmcsCtx>,
}

struct PerCpuTable([PerCpu; KVM_VMX_MAX_CPUS]);

// SAFETY: `shared` is accessed only by the thread running on that CPU with
// preemption disabled (so never concurrently); `current` is atomic.
unsafe impl Sync for PerCpuTable {}

static PERCPU: PerCpuTable = PerCpuTable(
    [const {
        PerCpu {
            shared: UnsafeCell::new(CpuSharedMsrs {
                host: [0; 6],
                curr: [0; 6],
                host_saved: 0,
                registered: false,
            }),
            current: AtomicPtr::new(core::ptr::null_mut()),
        }
    }; KVM_VMX_MAX_CPUS],
);

fn percpu(cpu: u32) -> Option<&'static PerCpu> {
    PERCPU.0.get(cpu as usize)
}

/// The VMCS current on this CPU (preemption disabled).
fn current_ctx() -> Option<&'static VmcsCtx> {
    let p = percpu(cpu_id())?.current.load(Ordering::Relaxed);
    // SAFETY: a non-null `current` is a VmcsCtx kept alive by the context
    // op of the thread running here (or by the caller's handle during
    // `vcpu_load`/`vcpu_put`); it is reset by VMCLEAR before it can go.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// `kvm_on_user_return` for this CPU, if shared MSRs are switched.
fn user_return_here() {
    if let Some(p) = percpu(cpu_id()) {
        // SAFETY: this CPU's entry, preemption disabled (callers: context
        // ops, `vcpu_put`): nobody else touches it now.
        let shared = unsafe { &mut *p.shared.get() };
        if shared.registered {
            shared.on_user_return(&mut IllumosHostCpu);
        }
    }
}

// ---- kick objects -------------------------------------------------------------

/// One VCPU's kick object (illumos-kvm `kvcpu_kick_lock`/`kvcpu_kick_cv`).
pub struct Kick {
    key: (VmId, u32),
    /// The next object of the registry list (under the registry lock).
    next: core::cell::Cell<*mut Kick>,
    lock: UnsafeCell<KMutexRaw>,
    cv: UnsafeCell<KCondvarRaw>,
    /// Bumped by every kick (written under `lock`).
    generation: AtomicU64,
    /// The CPU the VCPU is in guest mode on, -1 when not.
    guest_cpu: AtomicI32,
}

// SAFETY: the kmutex/kcondvar are used only through the kernel's own
// synchronisation; `next` only under the registry lock; `key` is immutable;
// the other fields are atomics.
unsafe impl Send for Kick {}
// SAFETY: as above.
unsafe impl Sync for Kick {}

impl Kick {
    fn new(key: (VmId, u32)) -> Box<Self> {
        let k = Box::new(Self {
            key,
            next: core::cell::Cell::new(core::ptr::null_mut()),
            lock: UnsafeCell::new(KMutexRaw::zeroed()),
            cv: UnsafeCell::new(KCondvarRaw::zeroed()),
            generation: AtomicU64::new(0),
            guest_cpu: AtomicI32::new(-1),
        });
        // SAFETY: both are at their final (heap) address and unused yet.
        unsafe {
            sys::mutex_init(
                k.lock.get(),
                core::ptr::null(),
                sys::MUTEX_DRIVER,
                core::ptr::null_mut(),
            );
            sys::cv_init(
                k.cv.get(),
                core::ptr::null(),
                sys::CV_DRIVER,
                core::ptr::null_mut(),
            );
        }
        k
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Wake the sleeper: never sleeps, never allocates.
    fn wake(&self) {
        // SAFETY: initialised in `new`, destroyed only in `drop`.
        unsafe { sys::mutex_enter(self.lock.get()) };
        self.generation.fetch_add(1, Ordering::AcqRel);
        // SAFETY: we hold the CV's mutex.
        unsafe {
            sys::cv_broadcast(self.cv.get());
            sys::mutex_exit(self.lock.get());
        }
    }
}

impl Drop for Kick {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody waits on or holds them.
        unsafe {
            sys::cv_destroy(self.cv.get());
            sys::mutex_destroy(self.lock.get());
        }
    }
}

/// The kick objects, a list linked through [`Kick::next`].
struct KickRegistry {
    /// Statically zeroed adaptive mutex (valid without `mutex_init`).
    lock: UnsafeCell<KMutexRaw>,
    /// First object (from `Box::into_raw`), or null.
    head: UnsafeCell<*mut Kick>,
}

// SAFETY: `head` and every `next` are only accessed with `lock` held.
unsafe impl Sync for KickRegistry {}

static KICKS: KickRegistry = KickRegistry {
    lock: UnsafeCell::new(KMutexRaw::zeroed()),
    head: UnsafeCell::new(core::ptr::null_mut()),
};

/// The list, borrowed under the registry lock.
struct KickList<'a> {
    head: &'a mut *mut Kick,
}

impl KickList<'_> {
    /// The object of `key`, if any.
    fn find(&self, key: (VmId, u32)) -> Option<&Kick> {
        let mut p = *self.head;
        // SAFETY: every pointer in the list is a live `Box<Kick>` owned by
        // the list; the registry lock is held.
        while let Some(k) = unsafe { p.as_ref() } {
            if k.key == key {
                return Some(k);
            }
            p = k.next.get();
        }
        None
    }

    /// Add `k` (its key is not in the list); returns its address.
    fn push(&mut self, k: Box<Kick>) -> *const Kick {
        k.next.set(*self.head);
        let raw = Box::into_raw(k);
        *self.head = raw;
        raw
    }

    /// Unlink every object whose key satisfies `pred` and free it.
    fn remove_if(&mut self, pred: impl Fn((VmId, u32)) -> bool) {
        let mut link: *mut *mut Kick = &mut *self.head;
        // SAFETY: `link` points at the head or at the `next` of a live
        // object; unlinked objects came from `Box::into_raw` and are freed
        // once. The registry lock is held.
        unsafe {
            while !(*link).is_null() {
                let k = *link;
                if pred((*k).key) {
                    *link = (*k).next.get();
                    drop(Box::from_raw(k));
                } else {
                    link = (*k).next.as_ptr();
                }
            }
        }
    }
}

impl KickRegistry {
    /// Run `f` on the list with the registry lock held.
    fn with<R>(&self, f: impl FnOnce(&mut KickList<'_>) -> R) -> R {
        // SAFETY: a zero-filled kmutex_t is a valid adaptive mutex.
        unsafe { sys::mutex_enter(self.lock.get()) };
        // SAFETY: we hold the lock: this is the only reference.
        let mut list = KickList {
            head: unsafe { &mut *self.head.get() },
        };
        let r = f(&mut list);
        // SAFETY: entered above.
        unsafe { sys::mutex_exit(self.lock.get()) };
        r
    }
}

// ---- pages --------------------------------------------------------------------

/// A zeroed, page-aligned kmem page with its physical address; for a VMCS
/// region it also carries the [`VmcsCtx`] its handles share.
pub struct IllumosPage {
    va: *mut Page,
    pa: u64,
    ctx: Arc<VmcsCtx>,
}

// SAFETY: the page is owned kernel memory; `&`/`&mut` access follows the
// Rust borrow of the `IllumosPage`.
unsafe impl Send for IllumosPage {}

impl HostPage for IllumosPage {
    fn pa(&self) -> u64 {
        self.pa
    }
    fn page(&self) -> &Page {
        // SAFETY: `va` is a live, page-aligned 4 KiB kmem allocation.
        unsafe { &*self.va }
    }
    fn page_mut(&mut self) -> &mut Page {
        // SAFETY: as above, borrowed mutably through `&mut self`.
        unsafe { &mut *self.va }
    }
}

impl Drop for IllumosPage {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_page` with this size. A VMCS region is
        // VMCLEARed (`vcpu_put`) before the VCPU drops it.
        unsafe { sys::kmem_free(self.va.cast(), PAGE_SIZE) }
    }
}

// ---- VMCS handle ----------------------------------------------------------------

/// A handle on one VMCS: the instructions act on the CPU's current VMCS
/// (stateless, as the trait asks); VMPTRLD/VMCLEAR of this region also
/// update the shared [`VmcsCtx`].
pub struct IllumosVmcs {
    ctx: Arc<VmcsCtx>,
}

impl IllumosVmcs {
    /// Attach the VCPU's debugger record (`VcpuCore::debug`) to this VMCS
    /// region (every handle of it: the record hangs off the shared
    /// [`VmcsCtx`]), so the context ops and VMPTRLD/VMCLEAR record into its
    /// event ring (see "The event ring" in the module documentation);
    /// `None` detaches. [`VmxHost::attach_debug`] of [`IllumosVmxHost`].
    ///
    /// # Safety
    ///
    /// [`VmxHost::attach_debug`]'s: while attached, the record must be
    /// alive, at its address and reached only through shared references
    /// whenever this can record: during `vcpu_load`, `loaded` and
    /// `vcpu_put` of a handle of this region, its `Vmcs::vmptrld`/`vmclear`
    /// of the region, and from `vcpu_load` until the matching `vcpu_put`
    /// returns (the context ops record in between).
    pub unsafe fn attach_ring(&self, rec: Option<core::ptr::NonNull<KvmDebugVcpu>>) {
        let p = rec.map_or(core::ptr::null_mut(), core::ptr::NonNull::as_ptr);
        self.ctx.ring.store(p, Ordering::Release);
    }
}

impl Vmcs for IllumosVmcs {
    // SAFETY (all below): VMX root operation (HMA); the run loop owns the
    // meaning of the fields and only names VMCS regions it allocated.
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        unsafe { insn::vmread(field) }
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        unsafe { insn::vmwrite(field, value) }
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        if pa == self.ctx.pa {
            self.ctx.load_here()
        } else {
            unsafe { insn::vmptrld(pa) }
        }
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        if pa == self.ctx.pa {
            self.ctx.clear_here()
        } else {
            unsafe { insn::vmclear(pa) }
        }
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        unsafe { insn::invept(kind as u64, eptp) }
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        unsafe { insn::invvpid(kind as u64, vpid, gva) }
    }
}

// ---- host CPU -----------------------------------------------------------------

/// The current CPU's selectors, LDT, TSS, GDTR limit and MSRs
/// (`kvm_vmx::host::HostCpu`). Used with preemption disabled.
pub struct IllumosHostCpu;

impl MsrHw for IllumosHostCpu {
    fn rdmsr(&mut self, msr: u32) -> u64 {
        rdmsr(msr)
    }
    fn wrmsr(&mut self, msr: u32, value: u64) {
        if msr != MSR_KERNEL_GS_BASE {
            wrmsr(msr, value);
            return;
        }
        // Track whose KERNEL_GS_BASE is in the MSR, for the save op:
        // `HostSwitch::save` writes the guest's first, `load` writes back the
        // host value it read (the one recorded here). Preemption off so the
        // record and the write happen on the same CPU, whatever the caller
        // did (src/vm/vmx/mod.rs restores host state with it enabled).
        // SAFETY: kpreempt_disable/enable pair on curthread.
        unsafe { sys::kvm_vmx_glue_preempt_disable() };
        if let Some(ctx) = current_ctx() {
            if !ctx.kgsb_switched.load(Ordering::Relaxed) {
                ctx.kgsb_host
                    .store(rdmsr(MSR_KERNEL_GS_BASE), Ordering::Relaxed);
                ctx.kgsb_switched.store(true, Ordering::Relaxed);
            } else if value == ctx.kgsb_host.load(Ordering::Relaxed) {
                ctx.kgsb_switched.store(false, Ordering::Relaxed);
            }
        }
        wrmsr(msr, value);
        // SAFETY: as above.
        unsafe { sys::kvm_vmx_glue_preempt_enable() };
    }
}

impl HostCpu for IllumosHostCpu {
    fn ldt_selector(&mut self) -> u16 {
        let v: u16;
        // SAFETY: SLDT only reads LDTR.
        unsafe { asm!("sldt {0:x}", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    fn fs_selector(&mut self) -> u16 {
        let v: u16;
        // SAFETY: reads the FS selector.
        unsafe { asm!("mov {0:x}, fs", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    fn gs_selector(&mut self) -> u16 {
        let v: u16;
        // SAFETY: reads the GS selector.
        unsafe { asm!("mov {0:x}, gs", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    fn load_fs(&mut self, sel: u16) {
        // SAFETY: `sel` is the host's own FS selector saved before entry
        // (kvm_x86.c `kvm_load_fs`).
        unsafe { asm!("mov fs, {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
    }
    fn load_ldt(&mut self, sel: u16) {
        // SAFETY: `sel` is the host's LDT selector saved before entry
        // (kvm_x86.c `kvm_load_ldt`).
        unsafe { asm!("lldt {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
    }
    fn load_gs_keep_base(&mut self, sel: u16, gs_base: u64) {
        // Loading GS clobbers the kernel's GS base (the cpu_t pointer): it
        // must be written back before anything (an interrupt, an FBT probe)
        // uses %gs, so the whole sequence is one asm block with interrupts
        // off (illumos-kvm: `dtrace_kvm_load_gs` + wrmsr under cli).
        // ILLUMOS-VERIFY: with DTrace FBT active on the module.
        // SAFETY: `sel` is the host's saved GS selector and `gs_base` the
        // host's GS base (VMCS HOST_GS_BASE); RFLAGS.IF is restored.
        unsafe {
            asm!(
                "pushfq",
                "cli",
                "mov gs, {sel:x}",
                "wrmsr",
                "popfq",
                sel = in(reg) sel,
                in("ecx") MSR_GS_BASE,
                in("eax") gs_base as u32,
                in("edx") (gs_base >> 32) as u32,
            )
        };
    }
    fn reload_tss(&mut self) {
        // kvm_vmx.c `reload_tss`: mark the TSS descriptor available again
        // and LTR it (a VM exit left TR's limit at 0x67).
        // ILLUMOS-VERIFY: the GDT is writable here (it is on the 2021 gate;
        // KPTI kernels keep a per-CPU writable GDT too).
        let sel = str_selector();
        let gdt = sgdt();
        let off = u64::from(sel & !7);
        if sel == 0 || off + 15 > u64::from(gdt.limit) {
            return;
        }
        let ty = (gdt.base + off + 5) as *mut u8;
        // SAFETY: byte 5 of the live TSS descriptor (inside the GDT limit):
        // type 0xB (busy) becomes 0x9 (available), then LTR marks it busy
        // again. Preemption is disabled, so this CPU's GDT and TR stay ours.
        unsafe {
            let v = core::ptr::read_volatile(ty);
            core::ptr::write_volatile(ty, (v & 0xf0) | 0x9);
            asm!("ltr {0:x}", in(reg) sel, options(nostack, preserves_flags));
        }
    }
    fn reset_gdtr_limit(&mut self) {
        // SAFETY: illumos' own routine; reloads this CPU's GDTR limit.
        unsafe { sys::reset_gdtr_limit() }
    }
}

// ---- FPU ------------------------------------------------------------------------

/// A guest FPU area (`hma_fpu_t`), freed on drop (`hma_fpu_free`).
pub struct IllumosFpu {
    raw: *mut sys::HmaFpu,
}

// SAFETY: the area belongs to one VCPU, which the driver serialises.
unsafe impl Send for IllumosFpu {}

impl Drop for IllumosFpu {
    fn drop(&mut self) {
        // SAFETY: allocated by `fpu_alloc`; the guest FPU is stopped
        // (`fpu_stop_guest`) before the VCPU goes.
        unsafe { sys::hma_fpu_free(self.raw) }
    }
}

/// `struct fxsave_state`: 512 bytes, 16-byte aligned.
#[repr(C, align(16))]
struct Fxsave([u8; 512]);

// ---- the host ---------------------------------------------------------------------

/// The illumos VMX host. Stateless apart from statics (per-CPU table, kick
/// registry), so it can be a `static`.
pub struct IllumosVmxHost {
    cpu: HostCpuFeatures,
}

impl Default for IllumosVmxHost {
    fn default() -> Self {
        Self::new()
    }
}

impl IllumosVmxHost {
    pub const fn new() -> Self {
        Self {
            cpu: HostCpuFeatures,
        }
    }

    /// Free the kick object of one VCPU.
    fn forget_vcpu(&self, vm: VmId, vcpu: u32) {
        KICKS.with(|l| l.remove_if(|key| key == (vm, vcpu)));
    }

    /// Free every kick object (module unload, `_fini`).
    pub fn teardown(&self) {
        KICKS.with(|l| l.remove_if(|_| true));
    }

    /// The VCPU's kick object, created if needed, tied to its VMCS (for
    /// `poke_cpu`): the VMCS current on this CPU is the calling VCPU
    /// thread's. Thread context (may allocate).
    fn tie_kick(&self, vm: VmId, vcpu: u32) -> *const Kick {
        let kick_ptr = self.kick_object(vm, vcpu);
        self.preempt_disable();
        if let Some(ctx) = current_ctx() {
            ctx.kick.store(kick_ptr as *mut Kick, Ordering::Relaxed);
        }
        self.preempt_enable();
        kick_ptr
    }

    /// The VCPU's kick object, created on first use (thread context).
    fn kick_object(&self, vm: VmId, vcpu: u32) -> *const Kick {
        let key = (vm, vcpu);
        if let Some(k) = KICKS.with(|l| l.find(key).map(|k| k as *const Kick)) {
            return k;
        }
        // Allocate outside the registry lock, so a kicker from a cyclic
        // never waits on kmem. Only the VCPU's own thread creates its
        // object, so nobody added it meanwhile; checked again anyway.
        let fresh = Kick::new(key);
        KICKS.with(|l| match l.find(key) {
            Some(k) => k as *const Kick,
            None => l.push(fresh),
        })
    }
}

impl VmxHost for IllumosVmxHost {
    type Page = IllumosPage;
    type Vmcs = IllumosVmcs;
    type Cpu = HostCpuFeatures;
    type HostCpu = IllumosHostCpu;
    type Fpu = IllumosFpu;

    /// `cpuid`/`rdmsr` of the executing CPU (`src/illumos/cpu.rs`).
    fn cpu(&self) -> &HostCpuFeatures {
        &self.cpu
    }

    /// illumos-kvm `rdmsr_safe` (`on_trap(OT_DATA_ACCESS)` around RDMSR).
    /// ILLUMOS-VERIFY: the #GP of a missing MSR is caught by on_trap.
    fn rdmsr_safe(&self, msr: u32) -> Option<u64> {
        let mut v = 0u64;
        // SAFETY: `v` is a valid out-pointer.
        let r = unsafe { sys::kvm_vmx_glue_rdmsr_safe(msr, &mut v) };
        (r == 0).then_some(v)
    }

    /// `kmem_zalloc(PAGESIZE, KM_SLEEP)` + `hat_getpfnum(kas.a_hat)`.
    fn alloc_page(&self) -> Result<IllumosPage, Errno> {
        // SAFETY: plain kmem allocation; PAGESIZE allocations are
        // page-aligned (checked below).
        let va = unsafe { sys::kmem_zalloc(PAGE_SIZE, sys::KM_SLEEP) };
        if va.is_null() {
            return Err(Errno::ENOMEM);
        }
        // SAFETY: `va` is a mapped kernel address.
        let pa = unsafe { sys::kvm_glue_kva2pa(va) };
        if !(va as usize).is_multiple_of(PAGE_SIZE) || !pa.is_multiple_of(PAGE_SIZE as u64) {
            // SAFETY: just allocated with this size.
            unsafe { sys::kmem_free(va, PAGE_SIZE) };
            return Err(Errno::ENOMEM);
        }
        Ok(IllumosPage {
            va: va.cast(),
            pa,
            ctx: Arc::new(VmcsCtx::new(pa)),
        })
    }

    fn vmcs(&self, region: &IllumosPage) -> IllumosVmcs {
        IllumosVmcs {
            ctx: region.ctx.clone(),
        }
    }

    /// `hma_vmx_vpid_alloc`.
    fn vpid_alloc(&self) -> u16 {
        // SAFETY: HMA call, any context.
        unsafe { sys::hma_vmx_vpid_alloc() }
    }

    /// `hma_vmx_vpid_free`.
    fn vpid_free(&self, vpid: u16) {
        if vpid != 0 {
            // SAFETY: `vpid` came from `vpid_alloc`.
            unsafe { sys::hma_vmx_vpid_free(vpid) }
        }
    }

    /// `vmx_vcpu_setup`'s host fields that are the same on every CPU.
    fn host_state(&self) -> HostState {
        let (mut cs, mut ds, mut tr) = (0u16, 0u16, 0u16);
        // SAFETY: three valid out-pointers.
        unsafe { sys::kvm_vmx_glue_host_selectors(&mut cs, &mut ds, &mut tr) };
        let mut cpu = IllumosHostCpu;
        HostState {
            cr0: read_cr0() | CR0_TS,
            cr4: read_cr4(),
            cs,
            ds,
            es: ds,
            ss: ds,
            fs: cpu.fs_selector(),
            gs: cpu.gs_selector(),
            tr,
            fs_base: rdmsr(MSR_FS_BASE),
            sysenter_cs: rdmsr(MSR_IA32_SYSENTER_CS) as u32,
            sysenter_eip: rdmsr(MSR_IA32_SYSENTER_EIP),
            pat: rdmsr(MSR_IA32_CR_PAT),
            rip: kvm_vmx::entry::hw::exit_address(),
        }
    }

    /// `vmx_vcpu_load`'s per-CPU host fields (interrupts disabled).
    fn host_cpu_state(&self) -> HostCpuState {
        HostCpuState {
            cr3: read_cr3(),
            tr_base: system_descriptor_base(str_selector()),
            gdtr_base: sgdt().base,
            idtr_base: sidt().base,
            gs_base: rdmsr(MSR_GS_BASE),
            sysenter_esp: rdmsr(MSR_IA32_SYSENTER_ESP),
            // SAFETY: timestamp routine, any context.
            tsc_tick_delta: unsafe { sys::tsc_gethrtime_tick_delta() } as u64,
        }
    }

    fn host_cpu(&self) -> IllumosHostCpu {
        IllumosHostCpu
    }

    /// `shared_msrs[CPU->cpu_id]` (preemption disabled by the caller).
    fn with_shared_msrs(&self, f: &mut dyn FnMut(&mut CpuSharedMsrs)) {
        if let Some(p) = percpu(cpu_id()) {
            // SAFETY: this CPU's entry with preemption disabled: no other
            // thread runs here, and interrupts never touch it.
            f(unsafe { &mut *p.shared.get() });
        }
    }

    /// `kvm_user_return_notifier_register`: nothing to do, because the
    /// save op and `vcpu_put` run `on_user_return` whenever the CPU's cache
    /// says `registered` (illumos-kvm `kvm_fire_urn`).
    fn register_user_return(&self) {}

    /// `getcr0()`.
    fn host_cr0(&self) -> u64 {
        read_cr0()
    }

    /// illumos-kvm `vcpu_load`: preallocate the context op (may sleep),
    /// then with preemption disabled `installctx` and VMPTRLD.
    fn vcpu_load(&self, vmcs: &mut IllumosVmcs) {
        // SAFETY: KM_SLEEP allocation, preemption still enabled.
        let pre = unsafe { sys::kvm_vmx_glue_ctx_prealloc() };
        self.preempt_disable();
        let arg = Arc::into_raw(vmcs.ctx.clone()) as *mut c_void;
        // SAFETY: `arg` is a counted reference the free op releases; the
        // callbacks match `ctx_remove` in `vcpu_put`.
        unsafe { sys::kvm_vmx_glue_ctx_install(pre, arg, ctx_save, ctx_restore, ctx_free) };
        let _ = vmcs.ctx.load_here();
        self.preempt_enable();
    }

    /// illumos-kvm `vcpu_put`: with preemption disabled, VMCLEAR, the
    /// user-return MSRs (`kvm_fire_urn`) and `removectx`.
    fn vcpu_put(&self, vmcs: &mut IllumosVmcs) {
        self.preempt_disable();
        let ctx = &*vmcs.ctx;
        let fpu = ctx.fpu.swap(core::ptr::null_mut(), Ordering::Relaxed);
        if !fpu.is_null() {
            // SAFETY: the run loop left the guest FPU loaded; stop it here
            // rather than return to user mode with it (preemption disabled).
            unsafe { sys::hma_fpu_stop_guest(fpu) };
        }
        if ctx.kgsb_switched.swap(false, Ordering::Relaxed) {
            // The run loop did not restore the host's KERNEL_GS_BASE: do it
            // rather than return to user mode with the guest's.
            wrmsr(MSR_KERNEL_GS_BASE, ctx.kgsb_host.load(Ordering::Relaxed));
        }
        let _ = ctx.clear_here();
        user_return_here();
        let arg = Arc::as_ptr(&vmcs.ctx) as *mut c_void;
        // SAFETY: removes the op `vcpu_load` installed (same arg and
        // callbacks); it calls `ctx_free`, which drops that reference while
        // `vmcs` still holds its own.
        unsafe { sys::kvm_vmx_glue_ctx_remove(arg, ctx_save, ctx_restore, ctx_free) };
        self.preempt_enable();
    }

    /// [`IllumosVmcs::attach_ring`]: the VCPU's event ring gets the context
    /// ops' and VMPTRLD/VMCLEAR events (kvm.c `kvm_ringbuf_record` in
    /// `kvm_ctx_save`/`kvm_ctx_restore`, kvm_vmx.c `vmx_vcpu_load`).
    unsafe fn attach_debug(
        &self,
        vmcs: &mut IllumosVmcs,
        rec: Option<core::ptr::NonNull<KvmDebugVcpu>>,
    ) {
        // SAFETY: the trait's contract is `attach_ring`'s.
        unsafe { vmcs.attach_ring(rec) }
    }

    /// Where the VMCS is just before an entry (interrupts off). If it is
    /// not current on this CPU (only if the context ops did not run, which
    /// would be a bug) it is loaded now and reported cleared.
    fn loaded(&self, vmcs: &mut IllumosVmcs) -> LoadState {
        let cpu = cpu_id();
        let ctx = &*vmcs.ctx;
        if ctx.cpu.load(Ordering::Relaxed) != cpu as i32 {
            ctx.cleared.store(true, Ordering::Relaxed);
            let _ = ctx.load_here();
        }
        LoadState {
            cpu,
            cleared: ctx.cleared.swap(false, Ordering::Relaxed),
        }
    }

    /// `kvm_vmx::entry::hw::vmx_enter`; records the CPU for `kick`'s
    /// `poke_cpu` while the guest runs.
    fn enter(&self, vmcs: &mut IllumosVmcs, regs: &mut GuestRegs, launched: bool) -> EntryResult {
        let kick = vmcs.ctx.kick.load(Ordering::Relaxed);
        // SAFETY: kick objects live until `vcpu_destroyed`/`teardown`, which
        // run only when the VM is destroyed (its last fd closed, so no VCPU
        // thread and no ioctl can kick) or the module detaches.
        let kick = unsafe { kick.as_ref() };
        if let Some(k) = kick {
            k.guest_cpu.store(cpu_id() as i32, Ordering::Release);
        }
        // SAFETY: the run loop calls this with interrupts disabled, the
        // VMCS current (`loaded`) and the host fields written with HOST_RIP =
        // `exit_address()` (`host_state`); `regs` is exclusive.
        let raw = unsafe { kvm_vmx::entry::hw::vmx_enter(regs, u64::from(launched)) };
        if let Some(k) = kick {
            k.guest_cpu.store(-1, Ordering::Release);
        }
        EntryResult::from_raw(raw)
    }

    /// `kvm_flush_remote_tlbs`: INVEPT by `xc_sync` on every CPU.
    /// illumos-kvm sent it to the CPUs in the VM's set; every CPU is
    /// simpler and only costs an IPI per CPU (HMA's own
    /// `hma_vmx_invept_allcpus` does the same over `cpu_active_set`). HMA
    /// (hma.c `hma_vmx_init`, `hma_vmx_cpu_setup`) runs VMXON on every
    /// online CPU at boot and on every CPU brought online later, setting
    /// CR4.VMXE first; each CPU still skips the INVEPT unless CR4.VMXE is
    /// set, so a CPU outside VMX operation never takes a #UD.
    fn invept_all_cpus(&self, kind: InveptType, eptp: u64) {
        // SAFETY: the callback only executes INVEPT; xc_sync waits for all.
        unsafe { sys::kvm_vmx_glue_xcall_all(invept_xcall, kind as u64, eptp) }
    }

    fn preempt_disable(&self) {
        // SAFETY: kpreempt_disable on curthread.
        unsafe { sys::kvm_vmx_glue_preempt_disable() }
    }

    fn preempt_enable(&self) {
        // SAFETY: pairs with `preempt_disable`.
        unsafe { sys::kvm_vmx_glue_preempt_enable() }
    }

    /// `cli` (illumos-kvm used `cli()`). Not `nomem`: a compiler barrier.
    fn interrupts_disable(&self) {
        // SAFETY: ring 0; the run loop re-enables with `interrupts_enable`.
        unsafe { asm!("cli", options(nostack)) }
    }

    /// `sti`.
    fn interrupts_enable(&self) {
        // SAFETY: ring 0; pairs with `interrupts_disable`.
        unsafe { asm!("sti", options(nostack)) }
    }

    fn smt_mark_as_vcpu(&self) {
        // SAFETY: marks curthread; any thread context.
        unsafe { sys::smt_mark_as_vcpu() }
    }

    /// `smt_acquire`: 1 acquired, 0 busy, -1 migrate (interrupts off).
    fn smt_acquire(&self) -> SmtAcquire {
        // SAFETY: called with interrupts disabled, as smt.c requires.
        match unsafe { sys::smt_acquire() } {
            1 => SmtAcquire::Acquired,
            r if r < 0 => SmtAcquire::Migrate,
            _ => SmtAcquire::Busy,
        }
    }

    fn smt_release(&self) {
        // SAFETY: pairs with a successful `smt_acquire`.
        unsafe { sys::smt_release() }
    }

    /// `thread_affinity_set(curthread, CPU_BEST)` + clear.
    fn migrate(&self) {
        // SAFETY: curthread, thread context (preemption still disabled by
        // the run loop: thread_affinity_set only marks and the switch
        // happens at kpreempt_enable).
        unsafe { sys::kvm_vmx_glue_migrate() }
    }

    /// `issig(JUSTLOOKING)`.
    fn signal_pending(&self) -> bool {
        // SAFETY: curthread, thread context.
        unsafe { sys::kvm_vmx_glue_issig() != 0 }
    }

    /// `CPU->cpu_runrun || CPU->cpu_kprunrun`.
    fn host_wants_cpu(&self) -> bool {
        // SAFETY: reads this CPU's flags.
        unsafe { sys::kvm_vmx_glue_runrun() != 0 }
    }

    /// `kvm_vcpu_block` (see the module documentation, "Block and kick").
    fn block(&self, vm: VmId, vcpu: u32, wake: &mut dyn FnMut() -> bool) {
        let kick_ptr = self.tie_kick(vm, vcpu);
        // SAFETY: kick objects live until `vcpu_destroyed`/`teardown` (VM
        // destroyed: no VCPU thread of the VM left).
        let Some(kick) = (unsafe { kick_ptr.as_ref() }) else {
            return;
        };

        let start = kick.generation();
        if wake() {
            return;
        }
        // SAFETY: initialised in `Kick::new`.
        unsafe { sys::mutex_enter(kick.lock.get()) };
        while kick.generation() == start && !self.signal_pending() {
            // SAFETY: we hold the CV's mutex. 0: a signal.
            let r = unsafe { sys::cv_wait_sig_swap(kick.cv.get(), kick.lock.get()) };
            if r == 0 {
                break;
            }
        }
        // SAFETY: entered above (cv_wait_sig_swap returns with it held).
        unsafe { sys::mutex_exit(kick.lock.get()) };
    }

    fn vcpu_destroyed(&self, vm: VmId, vcpu: u32) {
        self.forget_vcpu(vm, vcpu);
    }

    /// KVM_RUN starts: the kick object exists and is tied to the VMCS, so
    /// a kick pokes this VCPU out of guest mode even if it never blocked.
    fn vcpu_running(&self, vm: VmId, vcpu: u32) {
        self.tie_kick(vm, vcpu);
    }

    fn cpu_id(&self) -> u32 {
        cpu_id()
    }

    fn thread_id(&self) -> u64 {
        // SAFETY: reads the current thread pointer.
        unsafe { sys::kvm_vmx_glue_curthread() }
    }

    /// `kvm_vcpu_kick`: `cv_broadcast` of the VCPU's kick CV, then
    /// `poke_cpu` of the CPU it runs a guest on. Never allocates or sleeps
    /// (safe from a `CY_LOW_LEVEL` cyclic). A VCPU that has not entered
    /// KVM_RUN yet has no kick object: nothing sleeps, nothing to poke.
    /// ILLUMOS-VERIFY: adaptive `mutex_enter` from the cyclic handler.
    fn kick(&self, vm: VmId, vcpu: u32) {
        let target = KICKS.with(|l| {
            l.find((vm, vcpu)).map(|k| {
                k.wake();
                k.guest_cpu.load(Ordering::Acquire)
            })
        });
        if let Some(cpu) = target
            && cpu >= 0
            && cpu as u32 != cpu_id()
        {
            // SAFETY: `cpu` is a valid cpu_id (recorded by `enter`); a stale
            // one only costs a spurious poke.
            unsafe { sys::poke_cpu(cpu) }
        }
    }

    /// `int $2`: deliver the NMI that caused the VM exit to the host.
    fn host_nmi(&self) {
        // SAFETY: vectors through the kernel's NMI handler, as illumos-kvm
        // did after an NMI exit.
        unsafe { asm!("int 2") }
    }

    /// `hma_fpu_alloc(KM_SLEEP)` + `hma_fpu_init`.
    fn fpu_alloc(&self) -> Result<IllumosFpu, Errno> {
        // SAFETY: KM_SLEEP allocation.
        let raw = unsafe { sys::hma_fpu_alloc(sys::KM_SLEEP) };
        if raw.is_null() {
            return Err(Errno::ENOMEM);
        }
        let fpu = IllumosFpu { raw };
        // SAFETY: a fresh area.
        if unsafe { sys::hma_fpu_init(fpu.raw) } != 0 {
            return Err(Errno::ENOMEM);
        }
        Ok(fpu)
    }

    /// `hma_fpu_start_guest`; the save/restore ops stop and restart it
    /// across a thread switch. Disables preemption itself (hma.h requires
    /// it; the nesting is free).
    fn fpu_start_guest(&self, fpu: &mut IllumosFpu) {
        self.preempt_disable();
        if let Some(ctx) = current_ctx() {
            ctx.fpu.store(fpu.raw, Ordering::Relaxed);
        }
        // SAFETY: live area, preemption disabled.
        unsafe { sys::hma_fpu_start_guest(fpu.raw) }
        self.preempt_enable();
    }

    /// `hma_fpu_stop_guest`. Disables preemption itself: src/vm/vmx/mod.rs
    /// calls it after the run loop with preemption enabled. A no-op if
    /// `vcpu_put` already stopped this area.
    fn fpu_stop_guest(&self, fpu: &mut IllumosFpu) {
        self.preempt_disable();
        // Without a VMCS context (not between vcpu_load and vcpu_put) the
        // area was not tracked: stop it unconditionally.
        let loaded = current_ctx().is_none_or(|ctx| {
            ctx.fpu
                .compare_exchange(
                    fpu.raw,
                    core::ptr::null_mut(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        });
        if loaded {
            // SAFETY: live area, loaded by `fpu_start_guest` and not yet
            // stopped; preemption disabled.
            unsafe { sys::hma_fpu_stop_guest(fpu.raw) }
        }
        self.preempt_enable();
    }

    /// `hma_fpu_get_fxsave_state`.
    fn fpu_get(&self, fpu: &IllumosFpu, fxsave: &mut [u8; 512]) {
        let mut fx = Fxsave([0; 512]);
        // SAFETY: `fx` is a 512-byte, 16-byte aligned fxsave_state.
        unsafe { sys::hma_fpu_get_fxsave_state(fpu.raw, (&mut fx as *mut Fxsave).cast()) };
        *fxsave = fx.0;
    }

    /// `hma_fpu_set_fxsave_state`: EINVAL when rejected.
    fn fpu_set(&self, fpu: &mut IllumosFpu, fxsave: &[u8; 512]) -> Result<(), Errno> {
        let fx = Fxsave(*fxsave);
        // SAFETY: as `fpu_get`; the guest FPU is not loaded (ioctl path).
        let r = unsafe { sys::hma_fpu_set_fxsave_state(fpu.raw, (&fx as *const Fxsave).cast()) };
        if r == 0 { Ok(()) } else { Err(Errno::EINVAL) }
    }

    /// `gethrtime()`.
    fn now_ns(&self) -> u64 {
        // SAFETY: any context.
        u64::try_from(unsafe { sys::gethrtime() }).unwrap_or(0)
    }

    /// `rdtsc`.
    fn host_tsc(&self) -> u64 {
        rdtsc()
    }

    /// `set_debugreg` (kvm_x86.c `vcpu_enter_guest`).
    fn load_debug_regs(&self, db: &[u64; 4]) {
        // SAFETY: kernel mode; the run loop calls this with interrupts
        // disabled, right before the entry.
        unsafe { kvm_vmx::debugreg::load_guest_breakpoints(db) }
    }

    /// `tsc_gethrtime_params` (kvm_x86.c `kvm_write_guest_time`).
    /// ILLUMOS-VERIFY: that its TSC is the CPU-neutral one (`tsc_read()`
    /// plus this CPU's tick delta), as the C's `tsc + vcpu->arch.tsc_offset`
    /// assumes.
    fn clock_params(&self) -> crate::vm::kvmclock::ClockParams {
        let mut tsc = 0u64;
        let mut scale = 0u32;
        let mut shift = 0u8;
        // SAFETY: three valid out-pointers to locals; any context.
        let hrt = unsafe { sys::tsc_gethrtime_params(&mut tsc, &mut scale, &mut shift) };
        crate::vm::kvmclock::ClockParams {
            hrtime: u64::try_from(hrt).unwrap_or(0),
            tsc,
            mul: scale,
            shift: shift as i8,
        }
    }

    /// `gethrestime` (the C's `boot_wallclock` at VM creation).
    fn wall_clock(&self) -> (u64, u32) {
        let mut ts = sys::Timespec::default();
        // SAFETY: a valid out-pointer to a local.
        unsafe { sys::gethrestime(&mut ts) };
        (
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    }
}

/// The `xc_sync` callback of `invept_all_cpus`: INVEPT on this CPU if it is
/// in VMX operation.
unsafe extern "C" fn invept_xcall(kind: usize, eptp: usize, _: usize) -> c_int {
    if read_cr4() & CR4_VMXE != 0 {
        // SAFETY: CR4.VMXE is set: this CPU is in VMX root operation.
        let _ = unsafe { insn::invept(kind as u64, eptp as u64) };
    }
    0
}
