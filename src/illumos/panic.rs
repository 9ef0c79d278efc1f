//! The panic handler: a Rust panic in the kernel is a host panic, so it goes
//! to illumos `panic()` with the message and its source location, formatted
//! without allocating. The audit counts the call sites that can reach it
//! (`tools/kmodfix`, `panic-call-sites`): that number must only go down.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::sys;
use crate::cstr_buf::CStrBuf;

/// One message buffer, owned by the first CPU to panic.
struct Buffer(core::cell::UnsafeCell<CStrBuf<512>>);
// SAFETY: only the thread that wins `OWNED` touches the buffer.
unsafe impl Sync for Buffer {}

static OWNED: AtomicBool = AtomicBool::new(false);
static BUFFER: Buffer = Buffer(core::cell::UnsafeCell::new(CStrBuf::new()));

#[panic_handler]
fn kvm_rust_panic(info: &PanicInfo<'_>) -> ! {
    if OWNED.swap(true, Ordering::AcqRel) {
        // A second panic (nested, or on another CPU): no formatting.
        // SAFETY: constant NUL-terminated strings.
        unsafe { sys::panic(c"%s".as_ptr(), c"kvm: Rust panic while panicking".as_ptr()) }
    }
    // SAFETY: we won `OWNED`; nobody else ever touches the buffer.
    let msg = unsafe { &mut *BUFFER.0.get() };
    msg.clear();
    let _ = write!(msg, "kvm: Rust panic: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(msg, " at {}:{}", loc.file(), loc.line());
    }
    let text = msg.as_c_bytes().as_ptr();
    // SAFETY: `text` is NUL-terminated (as_c_bytes) and lives in a static.
    unsafe { sys::panic(c"%s".as_ptr(), text) }
}
