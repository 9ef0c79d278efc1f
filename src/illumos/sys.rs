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

unsafe extern "C" {
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
