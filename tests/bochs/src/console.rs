//! The console: bytes written to port 0xE9 appear on Bochs' output
//! (`port_e9_hack: enabled=1`; QEMU calls it `-debugcon`).
//!
//! `print!`/`println!` format through `core::fmt` without allocating.

use crate::io::outb;
use core::fmt;

/// Bochs' (and QEMU's debugcon) "print a byte" port.
pub const DEBUG_PORT: u16 = 0xe9;

/// Writes one byte to the console.
pub fn put_byte(b: u8) {
    outb(DEBUG_PORT, b);
}

/// Writes a string to the console.
pub fn put_str(s: &str) {
    s.bytes().for_each(put_byte);
}

/// `core::fmt` sink for the console.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        put_str(s);
        Ok(())
    }
}

/// Formats to the console; errors cannot happen (the sink never fails).
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let _ = fmt::write(&mut Console, args);
}

/// `print!` for the host.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// `println!` for the host.
#[macro_export]
macro_rules! println {
    () => { $crate::console::put_byte(b'\n') };
    ($($arg:tt)*) => {{
        $crate::console::print_fmt(format_args!($($arg)*));
        $crate::console::put_byte(b'\n');
    }};
}
