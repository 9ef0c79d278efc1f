//! Types and constants of the C boundary with the illumos kernel, taken from
//! the illumos headers named beside each (`usr/src/uts/common/sys/...`).
//! `tests/glue_abi.rs` compiles those headers with gcc and checks every value
//! and size here against them, and also the open flags, data models,
//! `dev_t` layout and errno values the ioctl layer keeps in
//! `kvm_ioctl::platform` and `kvm_ioctl::Errno`.

use core::ffi::c_int;

/// `dev_t` (`<sys/types.h>`: `ulong_t` on LP64).
pub type DevT = u64;
/// `offset_t` (`<sys/types.h>`: `long long`).
pub type Offset = i64;

/// `<sys/kmem.h>`: may block for memory; never fails.
pub const KM_SLEEP: c_int = 0x0000;
/// `<sys/kmem.h>`: may fail instead of blocking (interrupt context).
pub const KM_NOSLEEP: c_int = 0x0001;

/// `<sys/cmn_err.h>`: `cmn_err` levels.
pub const CE_NOTE: c_int = 1;
pub const CE_WARN: c_int = 2;

/// `<sys/mutex.h>`: `kmutex_type_t` of a driver mutex.
pub const MUTEX_DRIVER: c_int = 4;
/// `sizeof (kmutex_t)` on amd64.
pub const KMUTEX_SIZE: usize = 8;
