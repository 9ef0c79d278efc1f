//! A clock from the TSC, calibrated against the PIT (8254 channel 2, whose
//! output is readable in bit 5 of port 0x61, as Linux' quick calibration
//! does). Integer arithmetic only.
//!
//! Under Bochs the TSC advances once per emulated instruction and the PIT
//! runs on the same virtual time (`ips` instructions per second), so the
//! calibrated rate comes out as the bochsrc `ips`.

use crate::cpu::rdtsc;
use crate::io::{inb, outb};
use core::sync::atomic::{AtomicU64, Ordering};

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
const PORT_B: u16 = 0x61;
/// Calibration window: 2 ms of PIT time.
const WINDOW_PIT_TICKS: u64 = PIT_HZ / 500;
/// Give up when the PIT never fires (no PIT): this many TSC ticks.
const CALIBRATION_GIVE_UP: u64 = 1 << 34;
/// What we assume without a PIT: the Bochs default `ips`.
const FALLBACK_HZ: u64 = 50_000_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(FALLBACK_HZ);
/// Nanoseconds per tick as a 32.32 fixed-point factor (`ticks_to_ns` is
/// on every VM entry's timer poll: a multiply, not a 128-bit division).
static NS_PER_TICK_32: AtomicU64 = AtomicU64::new((1_000_000_000u64 << 32) / FALLBACK_HZ);

fn set_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_32.store((1_000_000_000u64 << 32) / hz.max(1), Ordering::Relaxed);
}

/// How the rate was found.
#[derive(Clone, Copy, Debug)]
pub enum Calibration {
    /// Measured over the PIT window.
    Pit { tsc_ticks: u64 },
    /// The PIT never signalled; the fallback rate is in use.
    Fallback,
}

/// Measures the TSC rate; call once at boot.
pub fn calibrate() -> Calibration {
    // Gate channel 2 on, speaker off; mode 0 (interrupt on terminal count),
    // binary, lobyte/hibyte. OUT2 goes high when the count reaches zero.
    outb(PORT_B, (inb(PORT_B) & !0x02) | 0x01);
    outb(PIT_COMMAND, 0xb0);
    outb(PIT_CHANNEL2, (WINDOW_PIT_TICKS & 0xff) as u8);
    outb(PIT_CHANNEL2, (WINDOW_PIT_TICKS >> 8) as u8);
    let start = rdtsc();
    loop {
        let now = rdtsc();
        let elapsed = now.wrapping_sub(start);
        if inb(PORT_B) & 0x20 != 0 {
            let hz = elapsed.saturating_mul(PIT_HZ) / WINDOW_PIT_TICKS;
            if hz == 0 {
                return Calibration::Fallback;
            }
            set_hz(hz);
            return Calibration::Pit { tsc_ticks: elapsed };
        }
        if elapsed > CALIBRATION_GIVE_UP {
            return Calibration::Fallback;
        }
    }
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Now, in TSC ticks.
pub fn now() -> u64 {
    rdtsc()
}

/// The pvclock form of [`ticks_to_ns`] (kvmclock's `tsc_to_system_mul`
/// and `tsc_shift`): `(ticks << shift) * mul >> 32` with `mul` the 32.32
/// factor shifted right until it fits 32 bits, so the guest's kvmclock
/// follows the host's clock line (equal when the dropped bits are 0, as
/// for a 50 MHz TSC: 20 ns = 0.625 << 5).
pub fn pvclock_scale() -> (u32, i8) {
    let mut f = NS_PER_TICK_32.load(Ordering::Relaxed);
    let mut shift = 0i8;
    while f >> 32 != 0 {
        f >>= 1;
        shift += 1;
    }
    (f as u32, shift)
}

/// TSC ticks to nanoseconds (to within 1 ns per 4 s: the factor's
/// truncation).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(NS_PER_TICK_32.load(Ordering::Relaxed))) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}
