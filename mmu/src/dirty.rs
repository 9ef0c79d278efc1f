//! Dirty-page bitmaps of the slots that log (`KVM_MEM_LOG_DIRTY_PAGES`):
//! port of the `dirty_bitmap` of `struct kvm_memory_slot`, `mark_page_dirty`
//! (kvm.c) and the bitmap half of `kvm_vm_ioctl_get_dirty_log`
//! (kvm_x86.c:2232). The EPT half (write-protecting the slot) is in
//! [`crate::ept::Ept::write_protect_range`].
//!
//! The layout is the one `KVM_GET_DIRTY_LOG` copies out: bit `i` of the
//! little-endian 64-bit word `i / 64` is page `i` of the slot
//! (`BT_SIZEOFMAP(npages)` bytes, rounded up to whole words).

use alloc::vec::Vec;

use crate::MmuError;
use crate::ept::Invept;
use crate::memslot::{GpaRange, PAGE_SHIFT, PAGE_SIZE, SlotId};
use crate::platform::{GuestMemory, TablePages};
use crate::vm::Mmu;

/// One bit per page of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyBitmap {
    words: Vec<u64>,
    npages: u64,
}

impl DirtyBitmap {
    /// A clear bitmap for `npages` pages; [`MmuError::NoMemory`] if the
    /// kernel cannot allocate it (the size is user-controlled).
    pub fn new(npages: u64) -> Result<Self, MmuError> {
        let nwords = usize::try_from(npages.div_ceil(64)).map_err(|_| MmuError::NoMemory)?;
        let mut words = Vec::new();
        words
            .try_reserve_exact(nwords)
            .map_err(|_| MmuError::NoMemory)?;
        words.resize(nwords, 0);
        Ok(DirtyBitmap { words, npages })
    }

    /// Number of 64-bit words `KVM_GET_DIRTY_LOG` copies out.
    pub fn words(&self) -> usize {
        self.words.len()
    }

    /// Number of pages covered.
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// Set the bit of page `rel` (relative to the slot base); out-of-range
    /// indices are ignored.
    pub fn set(&mut self, rel: u64) {
        if rel >= self.npages {
            return;
        }
        let (w, b) = split(rel);
        if let Some(word) = self.words.get_mut(w) {
            *word |= 1u64 << b;
        }
    }

    /// Whether page `rel` is dirty.
    pub fn is_set(&self, rel: u64) -> bool {
        let (w, b) = split(rel);
        rel < self.npages
            && self
                .words
                .get(w)
                .is_some_and(|word| word & (1u64 << b) != 0)
    }

    /// Whether any page is dirty.
    pub fn any(&self) -> bool {
        self.words.iter().any(|&w| w != 0)
    }

    /// Copy the bitmap into `out` (at least [`Self::words`] long; words past
    /// the bitmap are zeroed) and clear it.
    pub fn take_into(&mut self, out: &mut [u64]) -> Result<(), MmuError> {
        if out.len() < self.words.len() {
            return Err(MmuError::BufferTooSmall);
        }
        for (dst, src) in out.iter_mut().zip(self.words.iter_mut()) {
            *dst = core::mem::take(src);
        }
        for dst in out.iter_mut().skip(self.words.len()) {
            *dst = 0;
        }
        Ok(())
    }
}

impl<T: TablePages, G: GuestMemory> Mmu<T, G> {
    /// Size in 64-bit words of the bitmap `KVM_GET_DIRTY_LOG` copies out for
    /// user slot `slot` (`kvm_dirty_bitmap_bytes` / 8, rounded up).
    /// [`MmuError::BadSlot`] (`EINVAL`) if `slot` ≥ 32,
    /// [`MmuError::NotLogging`] (`ENOENT`) if the slot has no bitmap.
    pub fn dirty_log_words(&self, slot: u32) -> Result<usize, MmuError> {
        let id = SlotId::user(slot)?;
        let s = self.slots.get(id).ok_or(MmuError::NotLogging)?;
        s.dirty_bitmap()
            .map(DirtyBitmap::words)
            .ok_or(MmuError::NotLogging)
    }

    /// `kvm_vm_ioctl_get_dirty_log`: copy slot `slot`'s bitmap into `out`
    /// (≥ [`Self::dirty_log_words`] words), clear it, and write-protect the
    /// EPT leaves of the pages it reported (the original protected the whole
    /// slot; only reported pages can be writable, see [`crate::fault`]).
    ///
    /// The driver must run the INVEPT this may ask for *before* copying
    /// `out` to the VMM: a page written through a stale translation is then
    /// one whose W bit was set, i.e. one reported in `out`.
    ///
    /// Errors: [`MmuError::BadSlot`] (`EINVAL`), [`MmuError::NotLogging`]
    /// (`ENOENT`), [`MmuError::BufferTooSmall`] (`EINVAL`).
    pub fn get_dirty_log(&mut self, slot: u32, out: &mut [u64]) -> Result<Invept, MmuError> {
        let id = SlotId::user(slot)?;
        let s = self.slots.get_mut(id).ok_or(MmuError::NotLogging)?;
        let range = s.gpa_range();
        let bm = s.dirty_bitmap_mut().ok_or(MmuError::NotLogging)?;
        let words = bm.words();
        let npages = bm.npages();
        bm.take_into(out)?;
        let dirty: u64 = out
            .iter()
            .take(words)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if dirty == 0 {
            return Ok(Invept::NotNeeded);
        }
        // Only pages in the log can be writable in the EPT (a logging slot
        // gets W only on a write fault, which marks the page), so protecting
        // those is enough. Many dirty pages: one pass over the slot instead.
        let inv = if dirty > npages / 64 {
            self.ept.write_protect_range(&mut self.tables, range)
        } else {
            let mut inv = Invept::NotNeeded;
            for (w, &word) in (0u64..).zip(out.iter().take(words)) {
                let mut bits = word;
                while bits != 0 {
                    let rel = w * 64 + u64::from(bits.trailing_zeros());
                    bits &= bits - 1;
                    let start = range.start.saturating_add(rel << PAGE_SHIFT);
                    let page = GpaRange {
                        start,
                        end: start.saturating_add(PAGE_SIZE),
                    };
                    inv = inv.or(self.ept.write_protect_range(&mut self.tables, page));
                }
            }
            inv
        };
        Ok(self.note(inv))
    }

    /// `mark_page_dirty`: record that the kernel wrote guest page `gfn`
    /// behind the MMU's back (through the VMM mapping).
    pub fn mark_page_dirty(&mut self, gfn: u64) {
        self.slots.mark_dirty(gfn);
    }
}

fn split(rel: u64) -> (usize, u32) {
    // rel / 64 fits usize whenever rel < npages (the bitmap was allocated).
    let w = usize::try_from(rel / 64).unwrap_or(usize::MAX);
    (w, (rel % 64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_take_clear() {
        let mut b = DirtyBitmap::new(130).unwrap();
        assert_eq!(b.words(), 3);
        b.set(0);
        b.set(129);
        b.set(130); // out of range: ignored
        assert!(b.is_set(129) && !b.is_set(130));
        let mut out = [u64::MAX; 4];
        b.take_into(&mut out).unwrap();
        assert_eq!(out, [1, 0, 2, 0]);
        assert!(!b.any());
        assert_eq!(b.take_into(&mut [0; 2]), Err(MmuError::BufferTooSmall));
    }

    #[test]
    fn huge_is_nomem_not_abort() {
        assert_eq!(DirtyBitmap::new(u64::MAX).unwrap_err(), MmuError::NoMemory);
    }
}
