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

unsafe extern "C" {
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
