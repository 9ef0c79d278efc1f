//! Raw declarations of the illumos kernel interfaces the Rust side calls.
//! Each signature follows the illumos header named beside it
//! (illumos-gate `usr/src/uts/common/sys/...`); every symbol used here must be
//! in `tools/kmodfix/allowlist.txt`, which the post-link audit enforces.

use core::ffi::{c_char, c_int, c_void};

pub use crate::ddi::{CE_WARN, KM_SLEEP};

/// `kmutex_t` (`<sys/mutex.h>`: `void *_opaque[1]` on amd64, 8 bytes).
#[repr(C)]
pub struct KMutexRaw {
    _opaque: [*mut c_void; 1],
}

impl KMutexRaw {
    pub const fn zeroed() -> Self {
        Self {
            _opaque: [core::ptr::null_mut()],
        }
    }
}

pub use crate::ddi::MUTEX_DRIVER;

/// `id_space_t` (`<sys/id_space.h>`): opaque.
#[repr(C)]
pub struct IdSpace {
    _opaque: [u8; 0],
}

/// `timespec_t` (`<sys/time_impl.h>`, LP64: `time_t tv_sec; long tv_nsec`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `<sys/sunddi.h>`: `ddi_umem_alloc` may sleep and never fails.
pub const DDI_UMEM_SLEEP: c_int = 0x0;

unsafe extern "C" {
    /// `void *kmem_zalloc(size_t size, int kmflag)` (`<sys/kmem.h>`).
    pub fn kmem_zalloc(size: usize, kmflag: c_int) -> *mut c_void;
    /// `hrtime_t gethrtime(void)` (`<sys/time.h>`).
    pub fn gethrtime() -> i64;
    /// `int copyin(const void *uaddr, void *kaddr, size_t len)`: 0 or -1.
    pub fn copyin(uaddr: *const c_void, kaddr: *mut c_void, len: usize) -> c_int;
    /// `int copyout(const void *kaddr, void *uaddr, size_t len)`: 0 or -1.
    pub fn copyout(kaddr: *const c_void, uaddr: *mut c_void, len: usize) -> c_int;
    /// `void *ddi_umem_alloc(size_t, int flag, ddi_umem_cookie_t *)`.
    pub fn ddi_umem_alloc(size: usize, flag: c_int, cookie: *mut *mut c_void) -> *mut c_void;
    /// `void ddi_umem_free(ddi_umem_cookie_t)`.
    pub fn ddi_umem_free(cookie: *mut c_void);

    // src/glue/kvm_glue.h: services that reach into kernel structures.
    pub fn kvm_glue_kva2pa(va: *const c_void) -> u64;
    pub fn kvm_glue_user_page(hva: u64, pfn: *mut u64, is_ram: *mut c_int) -> c_int;
    pub fn kvm_glue_pfn2kva(pfn: u64) -> *mut c_void;
    pub fn kvm_glue_caller(pid: *mut u64, zone: *mut c_char, zonelen: usize);
    pub fn kvm_glue_kstat_install(
        instance: c_int,
        name: *const c_char,
        ndata: u32,
        data: *mut c_void,
        data_size: usize,
    ) -> *mut c_void;
    pub fn kvm_glue_kstat_delete(ksp: *mut c_void);
    pub fn kvm_glue_map_private(len: usize, errp: *mut c_int) -> u64;
    pub fn kvm_glue_unmap_private(addr: u64, len: usize);
    pub fn kvm_glue_timer_create(vm: u32, vcpu: u32) -> *mut c_void;
    pub fn kvm_glue_timer_arm(timer: *mut c_void, deadline_ns: i64);
    pub fn kvm_glue_timer_cancel(timer: *mut c_void);
    pub fn kvm_glue_timer_destroy(timer: *mut c_void);

    /// `id_space_t *id_space_create(const char *, id_t low, id_t high)`.
    pub fn id_space_create(name: *const c_char, low: c_int, high: c_int) -> *mut IdSpace;
    /// `void id_space_destroy(id_space_t *)`.
    pub fn id_space_destroy(space: *mut IdSpace);
    /// `id_t id_alloc(id_space_t *)`: sleeps until an id is free.
    pub fn id_alloc(space: *mut IdSpace) -> c_int;
    /// `void id_free(id_space_t *, id_t)`.
    pub fn id_free(space: *mut IdSpace, id: c_int);
    /// `int ddi_copyin(const void *from, void *to, size_t len, int mode)`:
    /// 0, or -1 when the user address faults.
    pub fn ddi_copyin(from: *const c_void, to: *mut c_void, len: usize, mode: c_int) -> c_int;
    /// `int ddi_copyout(const void *from, void *to, size_t len, int mode)`.
    pub fn ddi_copyout(from: *const c_void, to: *mut c_void, len: usize, mode: c_int) -> c_int;
    /// `void mutex_init(kmutex_t *, char *name, kmutex_type_t, void *arg)`.
    pub fn mutex_init(m: *mut KMutexRaw, name: *const c_char, ty: c_int, arg: *mut c_void);
    /// `void mutex_enter(kmutex_t *)`.
    pub fn mutex_enter(m: *mut KMutexRaw);
    /// `void mutex_exit(kmutex_t *)`.
    pub fn mutex_exit(m: *mut KMutexRaw);
    /// `void mutex_destroy(kmutex_t *)`.
    pub fn mutex_destroy(m: *mut KMutexRaw);
    /// `void *kmem_alloc(size_t size, int kmflag)` (`<sys/kmem.h>`).
    pub fn kmem_alloc(size: usize, kmflag: c_int) -> *mut c_void;
    /// `void kmem_free(void *buf, size_t size)` (`<sys/kmem.h>`).
    pub fn kmem_free(buf: *mut c_void, size: usize);
    /// `void cmn_err(int level, const char *fmt, ...)` (`<sys/cmn_err.h>`).
    pub fn cmn_err(level: c_int, fmt: *const c_char, ...);
    /// `void panic(const char *fmt, ...)` (`<sys/cmn_err.h>`): does not return.
    pub fn panic(fmt: *const c_char, ...) -> !;
}

const _: () = assert!(core::mem::size_of::<KMutexRaw>() == crate::ddi::KMUTEX_SIZE);

// ---------------------------------------------------------------------------
// VMX host (src/illumos/vmx_host.rs): appended section, owned by the VMX
// host. The kernel functions below are illumos exports already in
// tools/kmodfix/allowlist.txt (part 1: the C driver imported them); the
// kvm_vmx_glue_* functions are src/glue/kvm_vmx_glue.c.
// ---------------------------------------------------------------------------

/// `kcondvar_t` (`<sys/condvar.h>`: `ushort_t _opaque`, 2 bytes).
#[repr(C)]
pub struct KCondvarRaw {
    _opaque: u16,
}

impl KCondvarRaw {
    pub const fn zeroed() -> Self {
        Self { _opaque: 0 }
    }
}

/// `CV_DRIVER` (`<sys/condvar.h>` `kcv_type_t`).
pub const CV_DRIVER: c_int = 1;

/// `hma_fpu_t` (`<sys/hma.h>`): opaque.
#[repr(C)]
pub struct HmaFpu {
    _opaque: [u8; 0],
}

/// The per-CPU table size of the VMX host; `KVM_VMX_MAX_CPUS` in
/// kvm_vmx_glue.h (which asserts `NCPU <= KVM_VMX_MAX_CPUS`).
pub const KVM_VMX_MAX_CPUS: usize = 256;

unsafe extern "C" {
    /// `void cv_init(kcondvar_t *, char *, kcv_type_t, void *)`.
    pub fn cv_init(cv: *mut KCondvarRaw, name: *const c_char, ty: c_int, arg: *mut c_void);
    /// `void cv_destroy(kcondvar_t *)`.
    pub fn cv_destroy(cv: *mut KCondvarRaw);
    /// `void cv_broadcast(kcondvar_t *)`: never sleeps.
    pub fn cv_broadcast(cv: *mut KCondvarRaw);
    /// `int cv_wait_sig_swap(kcondvar_t *, kmutex_t *)`: 0 if a signal
    /// interrupted the wait, > 0 otherwise.
    pub fn cv_wait_sig_swap(cv: *mut KCondvarRaw, m: *mut KMutexRaw) -> c_int;
    /// `void poke_cpu(int cpun)` (`<sys/cpuvar.h>`).
    pub fn poke_cpu(cpun: c_int);
    /// `hrtime_t tsc_gethrtime_tick_delta(void)` (`<sys/machsystm.h>`).
    pub fn tsc_gethrtime_tick_delta() -> i64;
    /// `hrtime_t tsc_gethrtime_params(uint64_t *tsc, uint32_t *scale,
    /// uint8_t *shift)` (`<sys/machsystm.h>`, OS-7102): hrtime and the
    /// TSC it was computed from, with the pvclock scale and shift.
    pub fn tsc_gethrtime_params(tsc: *mut u64, scale: *mut u32, shift: *mut u8) -> i64;
    /// `void gethrestime(timespec_t *)` (`<sys/time.h>`): wall-clock time.
    pub fn gethrestime(ts: *mut Timespec);
    /// `void reset_gdtr_limit(void)` (`<sys/archsystm.h>`).
    pub fn reset_gdtr_limit();
    /// `int smt_acquire(void)`: 1 acquired, 0 busy, -1 should migrate
    /// (`<sys/smt.h>`).
    pub fn smt_acquire() -> c_int;
    /// `void smt_release(void)`.
    pub fn smt_release();
    /// `void smt_mark_as_vcpu(void)`.
    pub fn smt_mark_as_vcpu();
    /// `uint16_t hma_vmx_vpid_alloc(void)`: 0 when none is left
    /// (`<sys/hma.h>`).
    pub fn hma_vmx_vpid_alloc() -> u16;
    /// `void hma_vmx_vpid_free(uint16_t)`.
    pub fn hma_vmx_vpid_free(vpid: u16);
    /// `hma_fpu_t *hma_fpu_alloc(int kmflag)`.
    pub fn hma_fpu_alloc(kmflag: c_int) -> *mut HmaFpu;
    /// `void hma_fpu_free(hma_fpu_t *)`.
    pub fn hma_fpu_free(fpu: *mut HmaFpu);
    /// `int hma_fpu_init(hma_fpu_t *)`: 0 on success.
    pub fn hma_fpu_init(fpu: *mut HmaFpu) -> c_int;
    /// `void hma_fpu_start_guest(hma_fpu_t *)`: preemption disabled.
    pub fn hma_fpu_start_guest(fpu: *mut HmaFpu);
    /// `void hma_fpu_stop_guest(hma_fpu_t *)`: preemption disabled.
    pub fn hma_fpu_stop_guest(fpu: *mut HmaFpu);
    /// `void hma_fpu_get_fxsave_state(const hma_fpu_t *, struct fxsave_state *)`
    /// (512 bytes, 16-byte aligned).
    pub fn hma_fpu_get_fxsave_state(fpu: *const HmaFpu, fx: *mut c_void);
    /// `int hma_fpu_set_fxsave_state(hma_fpu_t *, const struct fxsave_state *)`:
    /// 0, or EINVAL when the image is rejected.
    pub fn hma_fpu_set_fxsave_state(fpu: *mut HmaFpu, fx: *const c_void) -> c_int;

    // src/glue/kvm_vmx_glue.h.
    pub fn kvm_vmx_glue_cpu_id() -> u32;
    pub fn kvm_vmx_glue_curthread() -> u64;
    pub fn kvm_vmx_glue_preempt_disable();
    pub fn kvm_vmx_glue_preempt_enable();
    pub fn kvm_vmx_glue_runrun() -> c_int;
    pub fn kvm_vmx_glue_issig() -> c_int;
    pub fn kvm_vmx_glue_migrate();
    pub fn kvm_vmx_glue_ctx_prealloc() -> *mut c_void;
    pub fn kvm_vmx_glue_ctx_install(
        prealloc: *mut c_void,
        arg: *mut c_void,
        save: unsafe extern "C" fn(*mut c_void),
        restore: unsafe extern "C" fn(*mut c_void),
        freef: unsafe extern "C" fn(*mut c_void, c_int),
    );
    pub fn kvm_vmx_glue_ctx_remove(
        arg: *mut c_void,
        save: unsafe extern "C" fn(*mut c_void),
        restore: unsafe extern "C" fn(*mut c_void),
        freef: unsafe extern "C" fn(*mut c_void, c_int),
    ) -> c_int;
    pub fn kvm_vmx_glue_xcall_all(
        func: unsafe extern "C" fn(usize, usize, usize) -> c_int,
        a1: u64,
        a2: u64,
    );
    pub fn kvm_vmx_glue_host_selectors(cs: *mut u16, ds: *mut u16, tr: *mut u16);
    pub fn kvm_vmx_glue_rdmsr_safe(msr: u32, val: *mut u64) -> c_int;
}

const _: () = assert!(core::mem::size_of::<KCondvarRaw>() == 2);
