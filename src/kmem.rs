//! How Rust allocations map onto illumos `kmem_alloc`/`kmem_free`.
//!
//! `kmem_alloc` promises 8-byte alignment (`KMEM_ALIGN`) and nothing more,
//! and `kmem_free` must be told the exact size that was allocated. Rust asks
//! for arbitrary power-of-two alignments and gives the same `Layout` back on
//! free, so:
//! - alignment ≤ 8: one `kmem_alloc(size)`;
//! - larger alignment (≤ one page): `kmem_alloc(size + align)`, hand out the
//!   first `align`-aligned address at least 8 bytes in, and keep the raw
//!   pointer in the 8 bytes just below it for `kmem_free`.
//!
//! Page-aligned hardware structures (VMCS, EPT tables, MSR bitmaps) do not
//! come from here: they need physical addresses and come from the platform's
//! page allocator.

use core::alloc::Layout;
use core::ptr;

/// The alignment `kmem_alloc` guarantees (`KMEM_ALIGN` on amd64).
pub const KMEM_ALIGN: usize = 8;
/// The largest alignment served by over-allocation.
pub const MAX_ALIGN: usize = 4096;

/// The raw allocator underneath: `kmem_alloc(size, KM_SLEEP)` and
/// `kmem_free(ptr, size)` in the kernel, a fake in tests.
///
/// # Safety
/// `alloc` must return null or a block of `size` bytes aligned to
/// [`KMEM_ALIGN`], and `free` must accept exactly what `alloc` returned with
/// the same size.
pub unsafe trait KmemBackend {
    fn alloc(&self, size: usize) -> *mut u8;
    /// # Safety
    /// `ptr` and `size` are a block this backend returned and not yet freed.
    unsafe fn free(&self, ptr: *mut u8, size: usize);
}

/// What to ask the backend for, for one `Layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One block of `size` bytes: its natural alignment is enough.
    Direct { size: usize },
    /// `size + align` bytes, the caller's pointer placed inside.
    OverAligned { raw_size: usize, align: usize },
}

/// Choose the backend request for `layout`; `None` when it cannot be served
/// (alignment above a page, or a size that overflows).
pub fn plan(layout: Layout) -> Option<Plan> {
    // A zero-sized request still needs a unique, freeable pointer.
    let size = layout.size().max(1);
    let align = layout.align();
    if align <= KMEM_ALIGN {
        Some(Plan::Direct { size })
    } else if align <= MAX_ALIGN {
        size.checked_add(align)
            .map(|raw_size| Plan::OverAligned { raw_size, align })
    } else {
        None
    }
}

/// The address handed out inside an over-aligned block starting at `raw`
/// (itself [`KMEM_ALIGN`]-aligned): the first multiple of `align` that leaves
/// 8 bytes below it for the raw pointer. It ends at most `raw + align + size`,
/// inside the `size + align` block.
pub fn place(raw: usize, align: usize) -> usize {
    let lowest = raw + KMEM_ALIGN;
    (lowest + align - 1) & !(align - 1)
}

/// A `GlobalAlloc`-shaped allocator over a [`KmemBackend`].
pub struct KmemAllocator<B> {
    backend: B,
}

impl<B: KmemBackend> KmemAllocator<B> {
    pub const fn new(backend: B) -> Self {
        Self { backend }
    }

    /// Allocate for `layout`; null on failure (as `GlobalAlloc::alloc`).
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        match plan(layout) {
            None => ptr::null_mut(),
            Some(Plan::Direct { size }) => self.backend.alloc(size),
            Some(Plan::OverAligned { raw_size, align }) => {
                let raw = self.backend.alloc(raw_size);
                if raw.is_null() {
                    return raw;
                }
                let offset = place(raw as usize, align) - raw as usize;
                // SAFETY: `place` keeps `offset` within `[8, align]`, so the
                // result and the 8-byte slot below it lie inside the
                // `size + align` block the backend just returned.
                unsafe {
                    let user = raw.add(offset);
                    user.cast::<*mut u8>().sub(1).write(raw);
                    user
                }
            }
        }
    }

    /// Free what [`Self::alloc`] returned for the same `layout`.
    ///
    /// # Safety
    /// `ptr` came from `self.alloc(layout)` and was not freed since.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match plan(layout) {
            None => {}
            Some(Plan::Direct { size }) => {
                // SAFETY: the backend returned `ptr` for `size` (caller's contract).
                unsafe { self.backend.free(ptr, size) }
            }
            Some(Plan::OverAligned { raw_size, .. }) => {
                // SAFETY: `alloc` stored the raw block pointer just below `ptr`.
                unsafe {
                    let raw = ptr.cast::<*mut u8>().sub(1).read();
                    self.backend.free(raw, raw_size);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// A kmem stand-in that hands out blocks that are 8-aligned but
    /// deliberately *not* 16-aligned, and checks every free against what it
    /// handed out.
    #[derive(Default)]
    struct FakeKmem {
        live: RefCell<BTreeMap<usize, (usize, Vec<u64>)>>,
        bad_frees: RefCell<Vec<(usize, usize)>>,
    }

    unsafe impl KmemBackend for FakeKmem {
        fn alloc(&self, size: usize) -> *mut u8 {
            // One spare word so the block can start at 8 mod 16.
            let mut storage = std::vec![0u64; size.div_ceil(8) + 1];
            let mut p = storage.as_mut_ptr() as usize;
            if p.is_multiple_of(16) {
                p += 8;
            }
            self.live.borrow_mut().insert(p, (size, storage));
            p as *mut u8
        }
        unsafe fn free(&self, ptr: *mut u8, size: usize) {
            let mut live = self.live.borrow_mut();
            match live.get(&(ptr as usize)) {
                Some((s, _)) if *s == size => {
                    live.remove(&(ptr as usize));
                }
                _ => self.bad_frees.borrow_mut().push((ptr as usize, size)),
            }
        }
    }

    fn block_of(k: &FakeKmem, p: usize) -> Option<(usize, usize)> {
        k.live
            .borrow()
            .iter()
            .find(|(start, (size, _))| p >= **start && p < **start + *size)
            .map(|(start, (size, _))| (*start, *size))
    }

    #[test]
    fn small_alignment_is_one_kmem_block_of_the_exact_size() {
        let l = Layout::from_size_align(24, 8).unwrap();
        assert_eq!(plan(l), Some(Plan::Direct { size: 24 }));
        let l = Layout::from_size_align(3, 1).unwrap();
        assert_eq!(plan(l), Some(Plan::Direct { size: 3 }));
    }

    #[test]
    fn zero_size_still_gets_a_real_block() {
        let l = Layout::from_size_align(0, 1).unwrap();
        assert_eq!(plan(l), Some(Plan::Direct { size: 1 }));
    }

    #[test]
    fn alignment_above_a_page_is_refused() {
        let l = Layout::from_size_align(8192, 8192).unwrap();
        assert_eq!(plan(l), None);
        let a = KmemAllocator::new(FakeKmem::default());
        assert!(a.alloc(l).is_null());
    }

    #[test]
    fn the_largest_layout_plans_size_plus_align_without_wrapping() {
        let size = isize::MAX as usize - 63;
        let l = Layout::from_size_align(size, 64).unwrap();
        assert_eq!(
            plan(l),
            Some(Plan::OverAligned {
                raw_size: isize::MAX as usize + 1,
                align: 64
            })
        );
    }

    #[test]
    fn place_leaves_room_for_the_raw_pointer_and_stays_in_the_block() {
        for raw in (0x1000..0x1100).step_by(8) {
            for align in [16usize, 32, 64, 4096] {
                let p = place(raw, align);
                assert_eq!(p % align, 0);
                assert!(p >= raw + 8, "slot for the raw pointer below {p:#x}");
                assert!(p <= raw + align, "user block must end inside raw block");
            }
        }
    }

    proptest! {
        #[test]
        fn every_layout_gets_aligned_memory_inside_its_block_and_frees_exactly(
            reqs in proptest::collection::vec((0usize..5000, 0u32..13), 1..40)
        ) {
            let a = KmemAllocator::new(FakeKmem::default());
            let mut out = Vec::new();
            for (size, align_log) in reqs {
                let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                let p = a.alloc(layout);
                prop_assert!(!p.is_null());
                prop_assert_eq!(p as usize % layout.align(), 0);
                let (start, len) = block_of(&a.backend, p as usize).unwrap();
                prop_assert!(p as usize + layout.size() <= start + len);
                // The memory is usable end to end.
                unsafe { core::ptr::write_bytes(p, 0xa5, layout.size()) };
                out.push((p, layout));
            }
            for (p, layout) in out {
                unsafe { a.dealloc(p, layout) };
            }
            prop_assert!(a.backend.bad_frees.borrow().is_empty());
            prop_assert!(a.backend.live.borrow().is_empty(), "leaked blocks");
        }
    }
}
