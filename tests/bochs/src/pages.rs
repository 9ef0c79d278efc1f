//! The physical page allocator: 4 KiB pages between the end of the host
//! image and the top of RAM, identity mapped (a page's physical address is
//! also the pointer to it), minus one reserved hole (where the harness puts
//! the guest payload, see `payload.rs`). Freed pages go on a free list
//! threaded through the pages themselves; fresh ones come from a bump
//! pointer. Every page is handed out zeroed.

use crate::sync::SpinLock;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;

/// The highest address the boot identity map covers.
const MAPPED_LIMIT: u64 = 4 << 30;

/// A 4 KiB-aligned physical (= virtual) address owned by whoever holds it.
#[derive(Debug, PartialEq, Eq)]
pub struct Page(u64);

impl Page {
    /// The physical address.
    pub fn phys(&self) -> u64 {
        self.0
    }

    /// The page as a pointer (identity mapping).
    pub fn ptr<T>(&self) -> *mut T {
        self.0 as usize as *mut T
    }
}

struct Pool {
    next: u64,
    end: u64,
    hole_start: u64,
    hole_end: u64,
    free_head: u64,
    free_pages: u64,
    handed_out: u64,
}

static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    next: 0,
    end: 0,
    hole_start: 0,
    hole_end: 0,
    free_head: 0,
    free_pages: 0,
    handed_out: 0,
});

/// Pages available in `[start, end)` minus the hole, after `init`.
#[derive(Clone, Copy, Debug)]
pub struct PoolInfo {
    pub start: u64,
    pub end: u64,
    pub pages: u64,
}

fn page_floor(a: u64) -> u64 {
    a / PAGE_SIZE * PAGE_SIZE
}

/// Gives the allocator the RAM in `[start, end)` except `[hole_start,
/// hole_end)` (all rounded to pages, clipped to the identity map).
pub fn init(start: u64, end: u64, hole_start: u64, hole_end: u64) -> PoolInfo {
    let start = start.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let end = page_floor(end.min(MAPPED_LIMIT)).max(start);
    let hole_start = page_floor(hole_start).max(start).min(end);
    let hole_end = hole_end
        .div_ceil(PAGE_SIZE)
        .saturating_mul(PAGE_SIZE)
        .max(hole_start)
        .min(end);
    let mut pool = POOL.lock();
    pool.next = if start == hole_start { hole_end } else { start };
    pool.end = end;
    pool.hole_start = hole_start;
    pool.hole_end = hole_end;
    pool.free_head = 0;
    pool.free_pages = 0;
    pool.handed_out = 0;
    PoolInfo {
        start,
        end,
        pages: (end - start - (hole_end - hole_start)) / PAGE_SIZE,
    }
}

/// A zeroed page, or `None` when RAM is exhausted.
pub fn alloc() -> Option<Page> {
    let mut pool = POOL.lock();
    let pa = if pool.free_head != 0 {
        let pa = pool.free_head;
        // SAFETY: free pages hold the next free address in their first word.
        pool.free_head = unsafe { (pa as usize as *const u64).read() };
        pool.free_pages -= 1;
        pa
    } else if pool.next < pool.end {
        let pa = pool.next;
        pool.next += PAGE_SIZE;
        if pool.next == pool.hole_start {
            pool.next = pool.hole_end;
        }
        pa
    } else {
        return None;
    };
    pool.handed_out += 1;
    drop(pool);
    // SAFETY: the page is ours, mapped and 4 KiB long.
    unsafe { zero_page(pa) };
    Some(Page(pa))
}

/// Returns a page to the allocator.
pub fn free(page: Page) {
    let mut pool = POOL.lock();
    // SAFETY: the caller gave up the page, so its first word is ours.
    unsafe { (page.0 as usize as *mut u64).write(pool.free_head) };
    pool.free_head = page.0;
    pool.free_pages += 1;
    pool.handed_out -= 1;
}

/// Pages currently handed out (leak check at the end of a run).
pub fn in_use() -> u64 {
    POOL.lock().handed_out
}

/// Zeroes 4 KiB at `pa` with `rep stosq` (no SSE in this host).
///
/// # Safety
/// `pa` must be a mapped, writable page nobody else uses.
unsafe fn zero_page(pa: u64) {
    // SAFETY: the caller owns the page.
    unsafe {
        core::arch::asm!(
            "rep stosq",
            inout("rdi") pa => _,
            inout("rcx") PAGE_SIZE / 8 => _,
            in("rax") 0u64,
            options(nostack, preserves_flags)
        );
    }
}

impl Page {
    /// Takes back ownership of a page handed out earlier and recorded
    /// elsewhere by address (EPT entries, for instance).
    ///
    /// # Safety
    /// `pa` must come from `alloc`, not be freed, and have no other owner.
    pub unsafe fn from_phys(pa: u64) -> Page {
        Page(pa)
    }

    /// Gives up the `Page` wrapper; the page stays allocated and is now
    /// recorded only by its address (see `from_phys`).
    pub fn into_phys(self) -> u64 {
        self.0
    }
}

/// Takes `bytes` (rounded up to pages) of never-used RAM off the top of the
/// pool, aligned to `align` (a power of two, at least a page), for
/// allocations that must be physically contiguous (the heap arena, guest
/// RAM). Only works while the bump pointer is below the range; the range
/// never returns to the pool. `None` if it does not fit.
///
/// The memory is as the machine left it at reset: zero under Bochs, which
/// zero-fills RAM, unless the caller writes it.
pub fn carve_top(bytes: u64, align: u64) -> Option<u64> {
    let mut pool = POOL.lock();
    let bytes = bytes.checked_next_multiple_of(PAGE_SIZE)?;
    let align = align.max(PAGE_SIZE);
    let start = pool.end.checked_sub(bytes)? / align * align;
    let overlaps_hole = start < pool.hole_end && pool.end > pool.hole_start;
    if start < pool.next || overlaps_hole {
        return None;
    }
    pool.end = start;
    Some(start)
}

/// Pages still available (bump range plus free list).
#[allow(dead_code)]
pub fn available() -> u64 {
    let pool = POOL.lock();
    let bump = pool.end.saturating_sub(pool.next) / PAGE_SIZE;
    let hole = if pool.next < pool.hole_start && pool.end > pool.hole_end {
        (pool.hole_end - pool.hole_start) / PAGE_SIZE
    } else {
        0
    };
    bump.saturating_sub(hole) + pool.free_pages
}
