//! Ending the simulation.
//!
//! Bochs stops when the string "Shutdown" is written byte by byte to port
//! 0x8900 (its exit status is then 1; the runner judges the printed lines).
//! For QEMU the same image also pokes isa-debug-exit (0xF4).

use crate::io::outb;

const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;
const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;

/// Stops the machine; never returns.
pub fn shutdown() -> ! {
    for b in b"Shutdown" {
        outb(BOCHS_SHUTDOWN_PORT, *b);
    }
    outb(QEMU_DEBUG_EXIT_PORT, 0);
    halt_forever()
}

/// Prints the verdict line the runner looks for, then stops.
pub fn fail(why: &str) -> ! {
    crate::println!("RESULT: FAIL: {why}");
    shutdown()
}

/// `cli; hlt` forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU with interrupts off; no memory effects.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
