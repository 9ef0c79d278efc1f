//! The VMM's address space: identity-mapped host memory. A "user" address
//! is a host physical address. Two views:
//!
//! * ioctl arguments (`copyin`/`copyout`): any address inside host RAM
//!   (the VMM passes pointers to its stack and heap);
//! * guest memory the MMU resolves (`GuestMemory::resolve`): only the
//!   ranges registered here (guest RAM, private memslots), so a memslot
//!   over host code or page tables cannot be mapped into a guest.

use crate::sync::SpinLock;

const MAX_RANGES: usize = 16;

struct Ranges {
    ranges: [(u64, u64); MAX_RANGES],
    ram_end: u64,
}

static RANGES: SpinLock<Ranges> = SpinLock::new(Ranges {
    ranges: [(0, 0); MAX_RANGES],
    ram_end: 0,
});

/// Sets the end of host RAM (the limit of copyin/copyout).
pub fn init(ram_end: u64) {
    RANGES.lock().ram_end = ram_end;
}

/// Whether `[addr, addr + len)` is host RAM (not page 0).
pub fn in_ram(addr: u64, len: u64) -> bool {
    let end = RANGES.lock().ram_end;
    addr >= 0x1000 && addr.checked_add(len).is_some_and(|e| e <= end)
}

/// Registers `[start, start + len)` as guest-mappable memory. False if the
/// table is full.
pub fn register(start: u64, len: u64) -> bool {
    let mut r = RANGES.lock();
    match r.ranges.iter_mut().find(|e| e.1 == 0) {
        Some(slot) => {
            *slot = (start, len);
            true
        }
        None => false,
    }
}

/// Forgets the range starting at `start`.
pub fn unregister(start: u64) {
    let mut r = RANGES.lock();
    if let Some(slot) = r.ranges.iter_mut().find(|e| e.0 == start && e.1 != 0) {
        *slot = (0, 0);
    }
}

/// Whether `[addr, addr + len)` lies inside one registered range.
pub fn mappable(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    RANGES
        .lock()
        .ranges
        .iter()
        .any(|&(s, l)| l != 0 && addr >= s && end <= s + l)
}
