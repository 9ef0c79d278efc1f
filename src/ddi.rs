//! Types and constants of the C boundary with the illumos kernel, taken from
//! the illumos headers named beside each (`usr/src/uts/common/sys/...`).
//! `tests/glue_abi.rs` compiles those headers with gcc and checks every value
//! and size here against them.

use core::ffi::{c_int, c_uint};

/// `minor_t` (`<sys/types.h>`).
pub type Minor = c_uint;
/// `offset_t` (`<sys/types.h>`: `long long`).
pub type Offset = i64;

/// `<sys/kmem.h>`: may block for memory; never fails.
pub const KM_SLEEP: c_int = 0x0000;
/// `<sys/kmem.h>`: may fail instead of blocking (interrupt context).
pub const KM_NOSLEEP: c_int = 0x0001;

/// `<sys/cmn_err.h>`: `cmn_err` levels.
pub const CE_NOTE: c_int = 1;
pub const CE_WARN: c_int = 2;

/// `<sys/file.h>`: open(9E) flags.
pub const FREAD: c_int = 0x01;
pub const FWRITE: c_int = 0x02;
pub const FNDELAY: c_int = 0x04;
pub const FEXCL: c_int = 0x0400;

/// `<sys/mutex.h>`: `kmutex_type_t` of a driver mutex.
pub const MUTEX_DRIVER: c_int = 4;
/// `sizeof (kmutex_t)` on amd64.
pub const KMUTEX_SIZE: usize = 8;

/// `<sys/open.h>`: open of a character special file.
pub const OTYP_CHR: c_int = 2;

/// `<sys/errno.h>` values returned across the boundary.
pub mod errno {
    use core::ffi::c_int;
    pub const ENXIO: c_int = 6;
    pub const EINVAL: c_int = 22;
    pub const ENOTSUP: c_int = 48;
}
