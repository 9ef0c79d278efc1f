//! Coalesced MMIO: batch guest writes to registered zones into a ring that
//! userspace drains after KVM_RUN.
//!
//! Port of `kvm_coalesced_mmio.c`. Rules: at most
//! [`KVM_COALESCED_MMIO_ZONE_MAX`] zones; a write is coalesced only if it
//! lies fully inside one zone, is at most 8 bytes, and the ring keeps at
//! least [`KVM_MAX_VCPUS`] free slots (one per VCPU that may be racing);
//! otherwise it takes the ordinary MMIO exit. Reads are never coalesced.
//! `last` is the first free slot, `first` the first used one; one slot always
//! stays empty. Unregistering removes every zone inside the given range.
//!
//! Differences from the C driver: the free-slot count is computed modulo the
//! ring size correctly (the C subtracted unsigned indices and took the
//! remainder of a wrapped value); indices read from the shared page are
//! validated, and writes longer than the 8-byte data field exit instead of
//! overflowing it.

use alloc::vec::Vec;
/// Maximum zones (`KVM_COALESCED_MMIO_ZONE_MAX`).
pub const KVM_COALESCED_MMIO_ZONE_MAX: usize = 100;
/// Free slots that must remain for a write to be coalesced (`KVM_MAX_VCPUS`).
pub const KVM_MAX_VCPUS: u32 = 64;
/// Page size of the ring mapping.
pub const RING_PAGE_SIZE: usize = 4096;
/// Entries in the ring page (`KVM_COALESCED_MMIO_MAX`).
pub const KVM_COALESCED_MMIO_MAX: u32 =
    ((RING_PAGE_SIZE - 8) / core::mem::size_of::<CoalescedMmioEntry>()) as u32;

/// `struct kvm_coalesced_mmio_zone` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoalescedMmioZone {
    pub addr: u64,
    pub size: u32,
    pub pad: u32,
}
static_assertions::const_assert_eq!(core::mem::size_of::<CoalescedMmioZone>(), 16);

impl CoalescedMmioZone {
    /// Whether `[addr, addr + len)` lies fully inside the zone.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        match (
            addr.checked_add(len),
            self.addr.checked_add(u64::from(self.size)),
        ) {
            (Some(end), Some(zend)) => self.addr <= addr && end <= zend,
            _ => false,
        }
    }
}

/// `struct kvm_coalesced_mmio` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoalescedMmioEntry {
    pub phys_addr: u64,
    pub len: u32,
    pub pad: u32,
    pub data: [u8; 8],
}
static_assertions::const_assert_eq!(core::mem::size_of::<CoalescedMmioEntry>(), 24);

/// `struct kvm_coalesced_mmio_ring`, laid out to fill the shared page.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoalescedMmioRing {
    pub first: u32,
    pub last: u32,
    pub entries: [CoalescedMmioEntry; KVM_COALESCED_MMIO_MAX as usize],
}
static_assertions::const_assert!(core::mem::size_of::<CoalescedMmioRing>() <= RING_PAGE_SIZE);

impl Default for CoalescedMmioRing {
    fn default() -> Self {
        Self {
            first: 0,
            last: 0,
            entries: [CoalescedMmioEntry::default(); KVM_COALESCED_MMIO_MAX as usize],
        }
    }
}

impl CoalescedMmioRing {
    /// Free slots (one always stays unused); `None` if userspace corrupted
    /// an index.
    pub fn free_slots(&self) -> Option<u32> {
        let max = KVM_COALESCED_MMIO_MAX;
        if self.first >= max || self.last >= max {
            return None;
        }
        Some((self.first + max - self.last - 1) % max)
    }

    /// Userspace side: take the oldest entry.
    pub fn pop(&mut self) -> Option<CoalescedMmioEntry> {
        if self.first == self.last || self.first >= KVM_COALESCED_MMIO_MAX {
            return None;
        }
        let e = self.entries.get(self.first as usize).copied();
        self.first = (self.first + 1) % KVM_COALESCED_MMIO_MAX;
        e
    }
}

/// Zone registration errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneError {
    /// Already [`KVM_COALESCED_MMIO_ZONE_MAX`] zones (C: ENOBUFS).
    NoSpace,
}

/// What became of an MMIO write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioWrite {
    /// Appended to the ring; no exit.
    Coalesced,
    /// Not coalesced: take the normal MMIO path (bus or exit).
    NotCoalesced,
}

/// The coalesced-MMIO device (port of `struct kvm_coalesced_mmio_dev`).
#[derive(Clone, Debug)]
pub struct CoalescedMmio {
    /// At most [`KVM_COALESCED_MMIO_ZONE_MAX`], in kmem rather than an
    /// inline 1.6 KB array (kernel stack budget).
    zones: Vec<CoalescedMmioZone>,
}

impl Default for CoalescedMmio {
    fn default() -> Self {
        Self::new()
    }
}

impl CoalescedMmio {
    /// No zones.
    pub const fn new() -> Self {
        Self { zones: Vec::new() }
    }

    /// The registered zones.
    pub fn zones(&self) -> &[CoalescedMmioZone] {
        &self.zones
    }

    /// KVM_REGISTER_COALESCED_MMIO.
    pub fn register(&mut self, zone: CoalescedMmioZone) -> Result<(), ZoneError> {
        if self.zones.len() >= KVM_COALESCED_MMIO_ZONE_MAX {
            return Err(ZoneError::NoSpace);
        }
        // ioctl context: the allocation may sleep.
        self.zones.try_reserve(1).map_err(|_| ZoneError::NoSpace)?;
        self.zones.push(zone);
        Ok(())
    }

    /// KVM_UNREGISTER_COALESCED_MMIO: drop every zone inside `range`
    /// (the last zone moves into the hole, as in the C).
    pub fn unregister(&mut self, range: CoalescedMmioZone) {
        let mut i = self.zones.len();
        while i > 0 {
            i -= 1;
            let inside = self
                .zones
                .get(i)
                .is_some_and(|z| range.contains(z.addr, u64::from(z.size)));
            if inside {
                self.zones.swap_remove(i);
            }
        }
    }

    /// Port of `coalesced_mmio_in_range` + `coalesced_mmio_write`: append the
    /// write to `ring` if it qualifies.
    pub fn write(&self, ring: &mut CoalescedMmioRing, addr: u64, data: &[u8]) -> MmioWrite {
        let len = data.len();
        if len == 0 || len > 8 {
            return MmioWrite::NotCoalesced;
        }
        match ring.free_slots() {
            Some(free) if free >= KVM_MAX_VCPUS => {}
            _ => return MmioWrite::NotCoalesced,
        }
        if !self.zones().iter().any(|z| z.contains(addr, len as u64)) {
            return MmioWrite::NotCoalesced;
        }
        let last = ring.last;
        let Some(e) = ring.entries.get_mut(last as usize) else {
            return MmioWrite::NotCoalesced;
        };
        let mut buf = [0u8; 8];
        if let Some(dst) = buf.get_mut(..len) {
            dst.copy_from_slice(data);
        }
        *e = CoalescedMmioEntry {
            phys_addr: addr,
            len: len as u32,
            pad: 0,
            data: buf,
        };
        // The platform issues a store barrier before publishing `last`.
        ring.last = (last + 1) % KVM_COALESCED_MMIO_MAX;
        MmioWrite::Coalesced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    fn zone(addr: u64, size: u32) -> CoalescedMmioZone {
        CoalescedMmioZone { addr, size, pad: 0 }
    }

    #[test]
    fn coalesced_ring_fills_a_page_with_170_entries() {
        assert_eq!(KVM_COALESCED_MMIO_MAX, 170);
    }

    #[test]
    fn coalesced_write_inside_zone_is_appended_in_order() {
        let mut d = CoalescedMmio::new();
        d.register(zone(0xa0000, 0x20000)).ok();
        let mut r = Box::<CoalescedMmioRing>::default();
        assert_eq!(d.write(&mut r, 0xa0010, &[1, 2]), MmioWrite::Coalesced);
        assert_eq!(
            d.write(&mut r, 0xa0020, &[3, 4, 5, 6]),
            MmioWrite::Coalesced
        );
        let e = r.pop().unwrap_or_default();
        assert_eq!(
            (e.phys_addr, e.len, &e.data[..2]),
            (0xa0010, 2, &[1u8, 2][..])
        );
        assert_eq!(r.pop().map(|e| e.phys_addr), Some(0xa0020));
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn coalesced_write_must_lie_fully_inside_a_zone() {
        let mut d = CoalescedMmio::new();
        d.register(zone(0x1000, 0x10)).ok();
        let mut r = Box::<CoalescedMmioRing>::default();
        assert_eq!(d.write(&mut r, 0x100e, &[0; 4]), MmioWrite::NotCoalesced);
        assert_eq!(d.write(&mut r, 0x0fff, &[0; 1]), MmioWrite::NotCoalesced);
        assert_eq!(d.write(&mut r, 0x100c, &[0; 4]), MmioWrite::Coalesced);
    }

    #[test]
    fn coalesced_ring_full_falls_back_to_an_exit_keeping_64_slots() {
        let mut d = CoalescedMmio::new();
        d.register(zone(0, 0x1000)).ok();
        let mut r = Box::<CoalescedMmioRing>::default();
        let mut n = 0;
        while d.write(&mut r, 8, &[1]) == MmioWrite::Coalesced {
            n += 1;
            assert!(n < 1000);
        }
        assert_eq!(n, KVM_COALESCED_MMIO_MAX - 1 - KVM_MAX_VCPUS + 1);
        assert_eq!(r.free_slots(), Some(KVM_MAX_VCPUS - 1));
        r.pop();
        assert_eq!(
            d.write(&mut r, 8, &[1]),
            MmioWrite::Coalesced,
            "draining makes room"
        );
    }

    #[test]
    fn coalesced_ring_wraps_around() {
        let mut d = CoalescedMmio::new();
        d.register(zone(0, 0x1000)).ok();
        let mut r = Box::<CoalescedMmioRing>::default();
        for i in 0..1000u64 {
            assert_eq!(d.write(&mut r, i % 0x100, &[i as u8]), MmioWrite::Coalesced);
            assert_eq!(r.pop().map(|e| e.data[0]), Some(i as u8));
        }
    }

    #[test]
    fn coalesced_corrupt_ring_indices_and_long_writes_exit() {
        let mut d = CoalescedMmio::new();
        d.register(zone(0, 0x1000)).ok();
        let mut r = Box::<CoalescedMmioRing>::default();
        assert_eq!(d.write(&mut r, 0, &[0; 9]), MmioWrite::NotCoalesced);
        assert_eq!(d.write(&mut r, 0, &[]), MmioWrite::NotCoalesced);
        r.last = 5000;
        assert_eq!(d.write(&mut r, 0, &[1]), MmioWrite::NotCoalesced);
        r.last = 0;
        r.first = u32::MAX;
        assert_eq!(d.write(&mut r, 0, &[1]), MmioWrite::NotCoalesced);
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn coalesced_at_most_100_zones_and_unregister_removes_contained_zones() {
        let mut d = CoalescedMmio::new();
        for i in 0..KVM_COALESCED_MMIO_ZONE_MAX as u64 {
            assert_eq!(d.register(zone(i * 0x1000, 0x100)), Ok(()));
        }
        assert_eq!(d.register(zone(0, 1)), Err(ZoneError::NoSpace));
        d.unregister(zone(0x1000, 0x2000));
        assert_eq!(d.zones().len(), KVM_COALESCED_MMIO_ZONE_MAX - 2);
        assert!(
            !d.zones()
                .iter()
                .any(|z| z.addr == 0x1000 || z.addr == 0x2000)
        );
        d.unregister(zone(0, 0x80));
        assert_eq!(
            d.zones().len(),
            KVM_COALESCED_MMIO_ZONE_MAX - 2,
            "partial overlap stays"
        );
    }
}
