//! Guest memory for illumos-kvm: memslots, EPT tables, the guest page-table
//! walker and dirty logging (port of `kvm_mmu.c` and `kvm_paging_tmpl.h`,
//! EPT path only; the MMU issue fills it in).
//!
//! The crate reaches memory only through the two traits below: the driver
//! implements them for the illumos kernel (pinned pages of the VMM process,
//! `kmem` pages with their physical addresses) and tests with a fake arena.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(test)]
extern crate std;

/// A host physical page the MMU may point EPT entries at or read through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPage {
    /// Host physical address (page-aligned).
    pub pa: u64,
    /// A kernel virtual address of the same page (segkpm on illumos).
    pub va: usize,
}

/// Pages for the MMU's own tables (EPT paging structures): zeroed,
/// page-aligned, with their physical address.
pub trait PageAllocator {
    /// A zeroed page, or `None` when memory is short (never blocks in a
    /// context that cannot sleep).
    fn alloc_page(&self) -> Option<HostPage>;
    /// Give back a page from `alloc_page`.
    fn free_page(&self, page: HostPage);
}

/// The guest's RAM as the VMM supplied it: host virtual addresses of the
/// VMM process (`userspace_addr` of each memslot), resolved to pinned pages.
pub trait GuestMemory {
    /// The host page behind host virtual address `hva` of the VMM, if it is
    /// mapped and locked (QEMU mlocks and pre-touches guest RAM).
    fn resolve(&self, hva: u64) -> Option<HostPage>;
}
