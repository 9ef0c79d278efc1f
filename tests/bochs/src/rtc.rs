//! The wall-clock time at boot from the CMOS real-time clock (MC146818:
//! index port 0x70, data port 0x71), for the guests' kvmclock wall clock.
//! Bochs starts the RTC at the host's time (`clock: time0=utc` in the
//! bochsrc `lib.sh` writes).

use crate::io::{inb, outb};
use core::sync::atomic::{AtomicU64, Ordering};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
/// Status register A: bit 7 is "update in progress".
const STATUS_A: u8 = 0x0a;
/// Status register B: bit 2 binary (not BCD), bit 1 24-hour mode.
const STATUS_B: u8 = 0x0b;
/// The century register of the PC's CMOS (ACPI FADT default).
const CENTURY: u8 = 0x32;

static BOOT_EPOCH: AtomicU64 = AtomicU64::new(0);

fn read(reg: u8) -> u8 {
    // Bit 7 of the index keeps NMIs disabled, as firmware leaves it.
    outb(INDEX, 0x80 | reg);
    inb(DATA)
}

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian;
/// the era arithmetic of "chrono-compatible low-level date algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Read the RTC once (after any update in progress) and remember the
/// time as seconds since the epoch.
pub fn init() {
    let mut spins = 0u32;
    while read(STATUS_A) & 0x80 != 0 && spins < 1_000_000 {
        spins += 1;
    }
    let b = read(STATUS_B);
    let bin = |v: u8| {
        if b & 4 != 0 {
            v
        } else {
            (v & 0x0f) + (v >> 4) * 10
        }
    };
    let sec = i64::from(bin(read(0x00)));
    let min = i64::from(bin(read(0x02)));
    let raw_hour = read(0x04);
    let mut hour = i64::from(bin(raw_hour & 0x7f));
    if b & 2 == 0 {
        // 12-hour mode: bit 7 is PM; 12 AM is midnight.
        hour %= 12;
        if raw_hour & 0x80 != 0 {
            hour += 12;
        }
    }
    let day = i64::from(bin(read(0x07)));
    let month = i64::from(bin(read(0x08)));
    let year = i64::from(bin(read(0x09)));
    let century = match i64::from(bin(read(CENTURY))) {
        c @ 19..=21 => c,
        _ => 20,
    };
    let days = days_from_civil(century * 100 + year, month.clamp(1, 12), day.clamp(1, 31));
    let t = days * 86_400 + hour * 3600 + min * 60 + sec;
    BOOT_EPOCH.store(u64::try_from(t).unwrap_or(0), Ordering::Relaxed);
}

/// Seconds since the epoch when [`init`] ran (0 before).
pub fn boot_epoch_seconds() -> u64 {
    BOOT_EPOCH.load(Ordering::Relaxed)
}
