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
    pub fn kvm_glue_timer_create() -> *mut c_void;
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
