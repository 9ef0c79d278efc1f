//! Raw declarations of the illumos kernel interfaces the Rust side calls.
//! Each signature follows the illumos header named beside it
//! (illumos-gate `usr/src/uts/common/sys/...`); every symbol used here must be
//! in `tools/kmodfix/allowlist.txt`, which the post-link audit enforces.

use core::ffi::{c_char, c_int, c_void};

pub use crate::ddi::{CE_WARN, KM_SLEEP};

unsafe extern "C" {
    /// `void *kmem_alloc(size_t size, int kmflag)` (`<sys/kmem.h>`).
    pub fn kmem_alloc(size: usize, kmflag: c_int) -> *mut c_void;
    /// `void kmem_free(void *buf, size_t size)` (`<sys/kmem.h>`).
    pub fn kmem_free(buf: *mut c_void, size: usize);
    /// `void cmn_err(int level, const char *fmt, ...)` (`<sys/cmn_err.h>`).
    pub fn cmn_err(level: c_int, fmt: *const c_char, ...);
    /// `void panic(const char *fmt, ...)` (`<sys/cmn_err.h>`): does not return.
    pub fn panic(fmt: *const c_char, ...) -> !;
}
