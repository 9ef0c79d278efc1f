//! The global allocator: Rust's heap is illumos `kmem_alloc(KM_SLEEP)`.
//!
//! KM_SLEEP may block, so ioctl-context code only: interrupt and cyclic
//! (timer) paths must not allocate (docs/rust-in-the-illumos-kernel.md §1.4).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use super::sys;
use crate::kmem::{KmemAllocator, KmemBackend};

/// `kmem_alloc`/`kmem_free`.
pub struct Kmem;

// SAFETY: kmem_alloc returns KMEM_ALIGN (8)-aligned memory of the requested
// size (KM_SLEEP never returns null) and kmem_free takes the same size back.
unsafe impl KmemBackend for Kmem {
    fn alloc(&self, size: usize) -> *mut u8 {
        // SAFETY: plain kernel allocation.
        unsafe { sys::kmem_alloc(size, sys::KM_SLEEP).cast() }
    }
    unsafe fn free(&self, ptr: *mut u8, size: usize) {
        // SAFETY: caller passes back a block and size from `alloc`.
        unsafe { sys::kmem_free(ptr.cast::<c_void>(), size) }
    }
}

struct KernelHeap(KmemAllocator<Kmem>);

// SAFETY: `KmemAllocator` returns blocks aligned and sized for the layout and
// frees them with the layout they were allocated for.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc(layout)`.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(KmemAllocator::new(Kmem));
