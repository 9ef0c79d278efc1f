//! Console and system-log messages through `cmn_err`.

use core::ffi::CStr;

use super::sys;

/// `cmn_err(CE_WARN, "%s", msg)`: the message is an argument, so a `%` in it
/// is printed as is.
pub fn warn(msg: &CStr) {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    unsafe { sys::cmn_err(sys::CE_WARN, c"%s".as_ptr(), msg.as_ptr()) }
}

/// `warn` for a message held as bytes without its NUL: copied into a
/// bounded buffer first (messages are one line; longer ones are cut).
pub fn warn_str(msg: &str) {
    let mut m = crate::cstr_buf::CStrBuf::<256>::new();
    let _ = core::fmt::Write::write_str(&mut m, msg);
    if let Ok(c) = CStr::from_bytes_with_nul(m.as_c_bytes()) {
        warn(c);
    }
}
