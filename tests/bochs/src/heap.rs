//! The `#[global_allocator]` the driver crates' `alloc` uses: a first-fit
//! free list with coalescing over one contiguous arena carved off the top
//! of RAM (`pages::carve_top`). Free blocks are kept in address order; each
//! holds its size and the address of the next free block in its first 16
//! bytes. Every block is a multiple of 16 bytes and 16-aligned.
//!
//! Identity mapping makes every heap address a physical address too, which
//! the bare-metal `Services` relies on (`kvm_run` pages, private memslots).

use core::alloc::{GlobalAlloc, Layout};

use crate::sync::SpinLock;

const UNIT: usize = 16;

struct Heap {
    /// First free block (0: none).
    head: usize,
    start: usize,
    end: usize,
    in_use: usize,
    peak: usize,
}

/// A free block's header.
#[repr(C)]
struct Free {
    size: usize,
    next: usize,
}

pub struct BareHeap {
    heap: SpinLock<Heap>,
}

#[global_allocator]
pub static HEAP: BareHeap = BareHeap {
    heap: SpinLock::new(Heap {
        head: 0,
        start: 0,
        end: 0,
        in_use: 0,
        peak: 0,
    }),
};

/// Hands the allocator `[start, start + len)` (identity-mapped RAM nobody
/// else uses).
pub fn init(start: u64, len: u64) {
    let start = (start as usize).next_multiple_of(UNIT);
    let len = (len as usize) / UNIT * UNIT;
    let mut h = HEAP.heap.lock();
    h.start = start;
    h.end = start + len;
    h.head = start;
    // SAFETY: the arena is ours, mapped and at least one unit long.
    unsafe { (start as *mut Free).write(Free { size: len, next: 0 }) };
}

/// (bytes in use, peak bytes in use, arena size).
pub fn usage() -> (usize, usize, usize) {
    let h = HEAP.heap.lock();
    (h.in_use, h.peak, h.end - h.start)
}

fn block_size(layout: Layout) -> usize {
    layout.size().max(1).next_multiple_of(UNIT)
}

// SAFETY: blocks are handed out disjoint and 16/`align`-aligned; the list
// is only touched under the lock.
unsafe impl GlobalAlloc for BareHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = block_size(layout);
        let align = layout.align().max(UNIT);
        let mut h = self.heap.lock();
        let mut prev = 0usize;
        let mut cur = h.head;
        while cur != 0 {
            // SAFETY: `cur` is a free block header in the arena.
            let Free {
                size: cur_size,
                next,
            } = unsafe { (cur as *const Free).read() };
            let aligned = cur.next_multiple_of(align);
            let lead = aligned - cur;
            if lead + size <= cur_size {
                let tail = cur_size - lead - size;
                // The block after the allocation (if any) replaces `cur`.
                let mut after = next;
                if tail != 0 {
                    let t = aligned + size;
                    // SAFETY: inside the free block.
                    unsafe { (t as *mut Free).write(Free { size: tail, next }) };
                    after = t;
                }
                if lead != 0 {
                    // SAFETY: `cur` stays a free block of `lead` bytes.
                    unsafe {
                        (cur as *mut Free).write(Free {
                            size: lead,
                            next: after,
                        })
                    };
                } else {
                    if prev == 0 {
                        h.head = after;
                    } else {
                        // SAFETY: `prev` is a free block header.
                        unsafe { (*(prev as *mut Free)).next = after };
                    }
                }
                // Sizes and addresses are multiples of UNIT, so `lead`
                // and `tail` are 0 or room for a header.
                h.in_use += size;
                h.peak = h.peak.max(h.in_use);
                return aligned as *mut u8;
            }
            prev = cur;
            cur = next;
        }
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = block_size(layout);
        let addr = ptr as usize;
        let mut h = self.heap.lock();
        h.in_use -= size;
        // Find the neighbours in address order.
        let mut prev = 0usize;
        let mut cur = h.head;
        while cur != 0 && cur < addr {
            prev = cur;
            // SAFETY: free block header.
            cur = unsafe { (*(cur as *const Free)).next };
        }
        let mut block = Free { size, next: cur };
        // Merge with the following free block.
        if cur != 0 && addr + size == cur {
            // SAFETY: free block header.
            let f = unsafe { (cur as *const Free).read() };
            block.size += f.size;
            block.next = f.next;
        }
        // Merge into the previous free block.
        if prev != 0 {
            // SAFETY: free block header.
            let p = unsafe { &mut *(prev as *mut Free) };
            if prev + p.size == addr {
                p.size += block.size;
                p.next = block.next;
                return;
            }
            p.next = addr;
        } else {
            h.head = addr;
        }
        // SAFETY: the block was ours and is at least a unit long.
        unsafe { (addr as *mut Free).write(block) };
    }
}
