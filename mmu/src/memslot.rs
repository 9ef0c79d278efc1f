//! Memory slots: port of `__kvm_set_memory_region`, `gfn_to_memslot`,
//! `gfn_to_hva` (kvm.c:806–1160) with the semantics of
//! `KVM_SET_USER_MEMORY_REGION`.
//!
//! 32 user slots (the ioctl's range) plus the private slots the kernel makes
//! for itself (`TSS_PRIVATE_MEMSLOT`, `APIC_ACCESS_PAGE_PRIVATE_MEMSLOT`,
//! `IDENTITY_PAGETABLE_PRIVATE_MEMSLOT`, kvm_vmx.h:359). This module is pure
//! bookkeeping: what the change means for the EPT tables is returned as a
//! [`SlotChange`] and applied by [`crate::Mmu`].
//!
//! Checks, in the original's order, all on user-controlled values:
//! * `memory_size`, `guest_phys_addr`, `userspace_addr` page-aligned
//!   ([`MmuError::Misaligned`], `EINVAL`);
//! * slot number in range ([`MmuError::BadSlot`], `EINVAL`);
//! * `guest_phys_addr + memory_size` does not wrap
//!   ([`MmuError::AddressOverflow`], `EINVAL`);
//! * flags: only `KVM_MEM_LOG_DIRTY_PAGES` ([`MmuError::UnsupportedFlags`],
//!   `EINVAL`). *Deviation:* the original never looks at the other bits, so a
//!   VMM asking for `KVM_MEM_READONLY` got a writable slot; we refuse it.
//! * an existing slot keeps its size ([`MmuError::Resize`], `EINVAL`); it may
//!   move (same size, new `guest_phys_addr`) and change flags, and — as in
//!   the original — its `userspace_addr` is kept (a new one is ignored);
//! * no overlap with another *user* slot ([`MmuError::Overlap`], `EEXIST`).
//!   As in the original, the existing private slots are not checked (a user
//!   slot may cover one; lookups try user slots first), but a private slot
//!   being set is checked against the user slots. *Deviation:* a delete (size 0) is never refused for
//!   overlap (the original's check refused deleting with a
//!   `guest_phys_addr` strictly inside another slot).
//!
//! Deleting a slot that does not exist succeeds and changes nothing.

use alloc::vec::Vec;

use bitflags::bitflags;

use crate::MmuError;
use crate::dirty::DirtyBitmap;

/// log2 of the (x86 base) page size.
pub const PAGE_SHIFT: u32 = 12;
/// The x86 base page size.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// User slots `KVM_SET_USER_MEMORY_REGION` may name (`KVM_MEMORY_SLOTS`).
pub const USER_SLOTS: u32 = 32;
/// Private slots reserved for the kernel (`KVM_PRIVATE_MEM_SLOTS`).
pub const PRIVATE_SLOTS: u32 = 4;
/// All slots.
pub const TOTAL_SLOTS: u32 = USER_SLOTS + PRIVATE_SLOTS;

bitflags! {
    /// `kvm_userspace_memory_region.flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MemFlags: u32 {
        /// `KVM_MEM_LOG_DIRTY_PAGES`: track writes for `KVM_GET_DIRTY_LOG`.
        const LOG_DIRTY_PAGES = 1 << 0;
        /// `KVM_MEM_READONLY` (later Linux ABI); always refused here.
        const READONLY = 1 << 1;
    }
}

// kvm_x86host.h: 32 user + 4 private; the private ids fit.
static_assertions::const_assert_eq!(TOTAL_SLOTS, 36);
static_assertions::const_assert!(34 < TOTAL_SLOTS);

/// A slot number: user slots `0..32`, then the private ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(u8);

impl SlotId {
    /// `TSS_PRIVATE_MEMSLOT`: the real-mode TSS pages (`vmx_set_tss_addr`).
    pub const TSS: SlotId = SlotId(32);
    /// `APIC_ACCESS_PAGE_PRIVATE_MEMSLOT`: the APIC-access page.
    pub const APIC_ACCESS: SlotId = SlotId(33);
    /// `IDENTITY_PAGETABLE_PRIVATE_MEMSLOT`: the identity page table used
    /// for unrestricted-guest-less real mode under EPT.
    pub const IDENTITY_PAGETABLE: SlotId = SlotId(34);

    /// A user slot number as the ioctl passes it; [`MmuError::BadSlot`]
    /// (`EINVAL`) if ≥ 32 (`kvm_vm_ioctl_set_memory_region`).
    pub fn user(slot: u32) -> Result<SlotId, MmuError> {
        if slot < USER_SLOTS {
            u8::try_from(slot)
                .map(SlotId)
                .map_err(|_| MmuError::BadSlot)
        } else {
            Err(MmuError::BadSlot)
        }
    }

    /// Any slot number, private ones included.
    pub fn any(slot: u32) -> Result<SlotId, MmuError> {
        if slot < TOTAL_SLOTS {
            u8::try_from(slot)
                .map(SlotId)
                .map_err(|_| MmuError::BadSlot)
        } else {
            Err(MmuError::BadSlot)
        }
    }

    /// The slot number.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    /// Whether this is one of the 32 user slots.
    pub fn is_user(self) -> bool {
        u32::from(self.0) < USER_SLOTS
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The fields of `struct kvm_userspace_memory_region` (the ioctl crate owns
/// the ABI struct and passes its fields here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// `flags` (raw, checked here).
    pub flags: u32,
    /// `guest_phys_addr`.
    pub guest_phys_addr: u64,
    /// `memory_size`; 0 deletes the slot.
    pub memory_size: u64,
    /// `userspace_addr`: where the VMM mapped the memory.
    pub userspace_addr: u64,
}

/// Guest-physical page range `[start, end)` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpaRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// One populated slot (`struct kvm_memory_slot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memslot {
    id: SlotId,
    base_gfn: u64,
    npages: u64,
    userspace_addr: u64,
    flags: MemFlags,
    dirty: Option<DirtyBitmap>,
}

impl Memslot {
    /// The slot number.
    pub fn id(&self) -> SlotId {
        self.id
    }
    /// First guest frame.
    pub fn base_gfn(&self) -> u64 {
        self.base_gfn
    }
    /// Number of pages (never 0).
    pub fn npages(&self) -> u64 {
        self.npages
    }
    /// Host virtual address of the first page in the VMM.
    pub fn userspace_addr(&self) -> u64 {
        self.userspace_addr
    }
    /// Flags as set.
    pub fn flags(&self) -> MemFlags {
        self.flags
    }
    /// Whether writes are being logged.
    pub fn is_logging(&self) -> bool {
        self.dirty.is_some()
    }
    /// The guest-physical byte range (cannot overflow: checked at creation).
    pub fn gpa_range(&self) -> GpaRange {
        let start = self.base_gfn << PAGE_SHIFT;
        GpaRange {
            start,
            end: start.saturating_add(self.npages << PAGE_SHIFT),
        }
    }
    /// Whether `gfn` is in this slot.
    pub fn contains(&self, gfn: u64) -> bool {
        gfn >= self.base_gfn && gfn - self.base_gfn < self.npages
    }
    /// `gfn_to_hva`: the VMM address of `gfn`, if it is in this slot.
    pub fn gfn_to_hva(&self, gfn: u64) -> Option<u64> {
        if !self.contains(gfn) {
            return None;
        }
        (gfn - self.base_gfn)
            .checked_mul(PAGE_SIZE)
            .and_then(|off| self.userspace_addr.checked_add(off))
    }
    /// `mark_page_dirty` for a gfn of this slot; no-op when not logging.
    pub fn mark_dirty(&mut self, gfn: u64) {
        if let (true, Some(bm)) = (self.contains(gfn), self.dirty.as_mut()) {
            bm.set(gfn - self.base_gfn);
        }
    }
    /// The dirty bitmap, if logging.
    pub fn dirty_bitmap(&self) -> Option<&DirtyBitmap> {
        self.dirty.as_ref()
    }
    pub(crate) fn dirty_bitmap_mut(&mut self) -> Option<&mut DirtyBitmap> {
        self.dirty.as_mut()
    }
}

/// What a successful [`Memslots::set`] did, for the EPT side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotChange {
    /// Nothing changed (deleting an empty slot, or same values again).
    None,
    /// A new slot covers `new`.
    Created {
        /// The new range.
        new: GpaRange,
    },
    /// The slot covering `old` is gone.
    Deleted {
        /// The old range.
        old: GpaRange,
    },
    /// An existing slot moved and/or changed its flags.
    Changed {
        /// The range before.
        old: GpaRange,
        /// The range after.
        new: GpaRange,
        /// Logging was switched on by this change.
        logging_started: bool,
    },
}

/// All slots of a VM (`struct kvm_memslots`), fixed size, on the heap.
#[derive(Debug)]
pub struct Memslots {
    slots: Vec<Option<Memslot>>,
}

impl Memslots {
    /// No slots; [`MmuError::NoMemory`] if the table cannot be allocated.
    pub fn new() -> Result<Self, MmuError> {
        let mut slots = Vec::new();
        let n = TOTAL_SLOTS as usize;
        slots.try_reserve_exact(n).map_err(|_| MmuError::NoMemory)?;
        slots.resize_with(n, || None);
        Ok(Memslots { slots })
    }

    /// `__kvm_set_memory_region`: create, delete (size 0), move or re-flag
    /// slot `id`. All the checks in the module documentation apply.
    pub fn set(&mut self, id: SlotId, region: &MemoryRegion) -> Result<SlotChange, MmuError> {
        if !region.memory_size.is_multiple_of(PAGE_SIZE)
            || !region.guest_phys_addr.is_multiple_of(PAGE_SIZE)
            || !region.userspace_addr.is_multiple_of(PAGE_SIZE)
        {
            return Err(MmuError::Misaligned);
        }
        let end = region
            .guest_phys_addr
            .checked_add(region.memory_size)
            .ok_or(MmuError::AddressOverflow)?;
        let flags = MemFlags::from_bits(region.flags).ok_or(MmuError::UnsupportedFlags)?;
        if flags.contains(MemFlags::READONLY) {
            return Err(MmuError::UnsupportedFlags);
        }
        let base_gfn = region.guest_phys_addr >> PAGE_SHIFT;
        let npages = region.memory_size >> PAGE_SHIFT;
        if npages != 0 {
            // The VMM's range must not wrap either (gfn_to_hva arithmetic).
            region
                .userspace_addr
                .checked_add(region.memory_size - 1)
                .ok_or(MmuError::AddressOverflow)?;
        }
        let new_range = GpaRange {
            start: region.guest_phys_addr,
            end,
        };
        let idx = id.index();
        let old = self.slots.get(idx).ok_or(MmuError::BadSlot)?;

        if npages == 0 {
            // Delete (LOG_DIRTY is dropped with the slot).
            return Ok(match self.slots.get_mut(idx).and_then(Option::take) {
                Some(old) => SlotChange::Deleted {
                    old: old.gpa_range(),
                },
                None => SlotChange::None,
            });
        }
        if let Some(old) = old
            && old.npages != npages
        {
            return Err(MmuError::Resize);
        }
        let overlaps = self
            .slots
            .iter()
            .take(USER_SLOTS as usize)
            .flatten()
            .filter(|s| s.id != id)
            .any(|s| {
                let r = s.gpa_range();
                new_range.start < r.end && r.start < new_range.end
            });
        if overlaps {
            return Err(MmuError::Overlap);
        }
        let slot = self.slots.get_mut(idx).ok_or(MmuError::BadSlot)?;
        match slot {
            None => {
                let dirty = if flags.contains(MemFlags::LOG_DIRTY_PAGES) {
                    Some(DirtyBitmap::new(npages)?)
                } else {
                    None
                };
                *slot = Some(Memslot {
                    id,
                    base_gfn,
                    npages,
                    userspace_addr: region.userspace_addr,
                    flags,
                    dirty,
                });
                Ok(SlotChange::Created { new: new_range })
            }
            Some(s) => {
                let old_range = s.gpa_range();
                let want_log = flags.contains(MemFlags::LOG_DIRTY_PAGES);
                let logging_started = want_log && s.dirty.is_none();
                if logging_started {
                    s.dirty = Some(DirtyBitmap::new(npages)?);
                } else if !want_log {
                    s.dirty = None;
                }
                let moved = s.base_gfn != base_gfn;
                let reflagged = s.flags != flags;
                s.base_gfn = base_gfn;
                s.flags = flags;
                if !moved && !reflagged {
                    return Ok(SlotChange::None);
                }
                Ok(SlotChange::Changed {
                    old: old_range,
                    new: new_range,
                    logging_started,
                })
            }
        }
    }

    /// The slot `id`, if populated.
    pub fn get(&self, id: SlotId) -> Option<&Memslot> {
        self.slots.get(id.index()).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: SlotId) -> Option<&mut Memslot> {
        self.slots.get_mut(id.index()).and_then(Option::as_mut)
    }

    /// `gfn_to_memslot`: the slot holding `gfn` (user slots first).
    pub fn lookup(&self, gfn: u64) -> Option<&Memslot> {
        self.slots.iter().flatten().find(|s| s.contains(gfn))
    }

    pub(crate) fn lookup_mut(&mut self, gfn: u64) -> Option<&mut Memslot> {
        self.slots.iter_mut().flatten().find(|s| s.contains(gfn))
    }

    /// The slot every gfn of `[gfn, gfn + npages)` resolves to, if it is one
    /// slot (lookups try slots in order, so the first slot overlapping the
    /// range must contain all of it).
    pub fn covering(&self, gfn: u64, npages: u64) -> Option<&Memslot> {
        let end = gfn.checked_add(npages)?;
        let first = self.slots.iter().flatten().find(|s| {
            let s_end = s.base_gfn.saturating_add(s.npages);
            gfn < s_end && s.base_gfn < end
        })?;
        (first.base_gfn <= gfn && end <= first.base_gfn.saturating_add(first.npages))
            .then_some(first)
    }

    /// `gfn_to_hva`: the VMM address of `gfn`, if a slot backs it.
    pub fn gfn_to_hva(&self, gfn: u64) -> Option<u64> {
        self.lookup(gfn).and_then(|s| s.gfn_to_hva(gfn))
    }

    /// `mark_page_dirty`: record a write the kernel made to `gfn`.
    pub fn mark_dirty(&mut self, gfn: u64) {
        if let Some(s) = self.lookup_mut(gfn) {
            s.mark_dirty(gfn);
        }
    }

    /// Populated slots in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Memslot> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(gpa: u64, size: u64, hva: u64, flags: u32) -> MemoryRegion {
        MemoryRegion {
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: hva,
        }
    }
    fn s(n: u32) -> SlotId {
        SlotId::user(n).unwrap()
    }

    #[test]
    fn create_lookup_delete() {
        let mut m = Memslots::new().unwrap();
        let c = m
            .set(s(0), &region(0x10_0000, 0x4000, 0x7000_0000, 0))
            .unwrap();
        assert_eq!(
            c,
            SlotChange::Created {
                new: GpaRange {
                    start: 0x10_0000,
                    end: 0x10_4000
                }
            }
        );
        assert_eq!(m.gfn_to_hva(0x102), Some(0x7000_2000));
        assert_eq!(m.gfn_to_hva(0x104), None);
        assert_eq!(m.gfn_to_hva(0xff), None);
        let d = m.set(s(0), &region(0, 0, 0, 0)).unwrap();
        assert!(matches!(d, SlotChange::Deleted { .. }));
        assert_eq!(m.gfn_to_hva(0x102), None);
        // deleting an empty slot is a no-op success
        assert_eq!(m.set(s(0), &region(0, 0, 0, 0)), Ok(SlotChange::None));
    }

    #[test]
    fn sanity_checks() {
        let mut m = Memslots::new().unwrap();
        assert_eq!(
            m.set(s(1), &region(0x1000, 0x1001, 0, 0)),
            Err(MmuError::Misaligned)
        );
        assert_eq!(
            m.set(s(1), &region(0x1001, 0x1000, 0, 0)),
            Err(MmuError::Misaligned)
        );
        assert_eq!(
            m.set(s(1), &region(0x1000, 0x1000, 0x10, 0)),
            Err(MmuError::Misaligned)
        );
        assert_eq!(
            m.set(s(1), &region(!0xfff, 0x2000, 0, 0)),
            Err(MmuError::AddressOverflow)
        );
        assert_eq!(
            m.set(s(1), &region(0, 0x2000, !0xfff, 0)),
            Err(MmuError::AddressOverflow)
        );
        assert_eq!(
            m.set(s(1), &region(0, 0x1000, 0, 2)),
            Err(MmuError::UnsupportedFlags)
        );
        assert_eq!(
            m.set(s(1), &region(0, 0x1000, 0, 4)),
            Err(MmuError::UnsupportedFlags)
        );
        assert_eq!(SlotId::user(32), Err(MmuError::BadSlot));
        assert!(SlotId::any(34).is_ok() && SlotId::any(36).is_err());
        assert!(m.iter().next().is_none());
        assert_eq!(MmuError::Overlap.errno(), crate::Errno::Exist);
    }

    #[test]
    fn overlap_resize_move() {
        let mut m = Memslots::new().unwrap();
        m.set(s(0), &region(0, 0x10000, 0x100000, 0)).unwrap();
        assert_eq!(
            m.set(s(1), &region(0xf000, 0x2000, 0, 0)),
            Err(MmuError::Overlap)
        );
        assert!(m.set(s(1), &region(0x10000, 0x2000, 0, 0)).is_ok());
        // resize refused
        assert_eq!(
            m.set(s(0), &region(0, 0x20000, 0x100000, 0)),
            Err(MmuError::Resize)
        );
        // move into the other slot refused, move elsewhere allowed, hva kept
        assert_eq!(
            m.set(s(0), &region(0x8000, 0x10000, 0x100000, 0)),
            Err(MmuError::Overlap)
        );
        let c = m
            .set(s(0), &region(0x100000, 0x10000, 0x900000, 0))
            .unwrap();
        assert!(matches!(
            c,
            SlotChange::Changed {
                logging_started: false,
                ..
            }
        ));
        assert_eq!(m.gfn_to_hva(0x100), Some(0x100000));
        // same slot may be re-set over itself
        assert_eq!(
            m.set(s(0), &region(0x100000, 0x10000, 0x100000, 0)),
            Ok(SlotChange::None)
        );
        // a private slot is checked against user slots, but user slots are
        // not checked against private ones, and lookups prefer user slots
        assert_eq!(
            m.set(SlotId::TSS, &region(0x100000, 0x3000, 0, 0)),
            Err(MmuError::Overlap)
        );
        m.set(SlotId::TSS, &region(0x200000, 0x3000, 0x5000000, 0))
            .unwrap();
        m.set(s(3), &region(0x200000, 0x1000, 0x6000000, 0))
            .unwrap();
        assert_eq!(m.gfn_to_hva(0x200), Some(0x6000000));
        assert_eq!(m.gfn_to_hva(0x201), Some(0x5001000));
        // delete with a gpa inside another slot still deletes (deviation)
        assert!(matches!(
            m.set(s(1), &region(0x5000, 0, 0, 0)),
            Ok(SlotChange::Deleted { .. })
        ));
    }

    #[test]
    fn logging_flags() {
        let mut m = Memslots::new().unwrap();
        m.set(s(2), &region(0, 0x3000, 0x1000, 0)).unwrap();
        let c = m.set(s(2), &region(0, 0x3000, 0x1000, 1)).unwrap();
        assert!(matches!(
            c,
            SlotChange::Changed {
                logging_started: true,
                ..
            }
        ));
        m.mark_dirty(1);
        assert!(m.get(s(2)).unwrap().dirty_bitmap().unwrap().is_set(1));
        let c = m.set(s(2), &region(0, 0x3000, 0x1000, 0)).unwrap();
        assert!(matches!(
            c,
            SlotChange::Changed {
                logging_started: false,
                ..
            }
        ));
        assert!(!m.get(s(2)).unwrap().is_logging());
    }
}
