//! The platform boundary: what the driver (illumos kernel) and the tests
//! (a fake arena) provide. The crate itself has no `unsafe` and touches
//! memory only through these traits.

use crate::MmuError;
use crate::memslot::PAGE_SIZE;

/// Width of a guest paging-structure entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PteSize {
    /// 32-bit paging (4-byte entries).
    Four,
    /// PAE and 4-level paging (8-byte entries).
    Eight,
}

impl PteSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PteSize::Four => 4,
            PteSize::Eight => 8,
        }
    }
}

/// What kind of host memory backs a VMM page (decides the EPT memory type,
/// `vmx_get_mt_mask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMemKind {
    /// Ordinary RAM: mapped write-back with "ignore PAT" (WB+IPAT).
    Ram,
    /// Device memory the VMM mapped (`kvm_is_mmio_pfn`): mapped uncacheable.
    Device,
}

/// A host physical page behind a VMM address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPage {
    /// Host physical address (aligned to the page size asked for).
    pub pa: u64,
    /// RAM or device memory.
    pub kind: HostMemKind,
}

/// Pages for the EPT paging structures (`alloc_page` + `kvm_va2pa` and the
/// kpm mapping in kvm_mmu.c:3040–3079).
///
/// Tables are named by their host physical address. The driver implements
/// this with `kmem_zalloc(PAGESIZE)` + `hat_getpfnum` and reaches entries
/// through the kpm mapping; entry reads and writes must be single 64-bit
/// accesses (the CPU walks the tables concurrently).
pub trait TablePages {
    /// A zeroed, 4 KiB-aligned page, or `None` when memory is short (must not
    /// sleep if the caller cannot: the driver decides `KM_NOSLEEP`).
    fn alloc_table(&mut self) -> Option<u64>;
    /// Give back a page from [`Self::alloc_table`]. The MMU only calls this
    /// after the page is unreachable from the EPT root and, for pages that
    /// were reachable, after the driver confirmed the INVEPT
    /// ([`crate::Mmu::invept_done`]).
    fn free_table(&mut self, pa: u64);
    /// Entry `index` (< 512) of table `table`.
    fn read_entry(&self, table: u64, index: usize) -> u64;
    /// Store entry `index` (< 512) of table `table` (one atomic 64-bit store).
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
}

/// The guest's RAM as the VMM supplied it: host virtual addresses of the
/// VMM process (`userspace_addr` of each slot).
///
/// On illumos `resolve` is `hat_getpfnum(curproc->p_as->a_hat, hva)`
/// (kvm.c:1145: QEMU locks and pre-touches guest RAM) and the accessors are
/// `copyin`/`copyout`/`atomic_cas_*` on the kpm mapping. No access passed
/// to `read`/`write`/`cmpxchg` crosses a 4 KiB page.
pub trait GuestMemory {
    /// The host page behind `hva` (4 KiB aligned), if mapped and locked.
    fn resolve(&self, hva: u64) -> Option<HostPage>;

    /// If the 2 MiB of VMM memory starting at `hva` (2 MiB-aligned in the
    /// slot's guest-physical space, not necessarily in the VMM) is one
    /// physically contiguous, 2 MiB-aligned host range of one kind, its
    /// first page. The default resolves all 512 pages; the driver may
    /// override it with a HAT page-size query.
    fn resolve_2m(&self, hva: u64) -> Option<HostPage> {
        let first = self.resolve(hva)?;
        if first.pa % (512 * PAGE_SIZE) != 0 {
            return None;
        }
        let mut off = PAGE_SIZE;
        while off < 512 * PAGE_SIZE {
            let p = self.resolve(hva.checked_add(off)?)?;
            if p.kind != first.kind || Some(p.pa) != first.pa.checked_add(off) {
                return None;
            }
            off += PAGE_SIZE;
        }
        Some(first)
    }

    /// `copyin`: read `buf.len()` bytes at `hva` ([`MmuError::HostFault`] on
    /// failure).
    fn read(&self, hva: u64, buf: &mut [u8]) -> Result<(), MmuError>;

    /// `copyout`: write `data` at `hva` ([`MmuError::HostFault`] on failure).
    fn write(&self, hva: u64, data: &[u8]) -> Result<(), MmuError>;

    /// Atomic compare-and-swap of a naturally aligned 4- or 8-byte value at
    /// `hva`: `Ok(true)` if it held `old` and now holds `new`, `Ok(false)`
    /// if it held something else (and is unchanged).
    fn cmpxchg(&self, hva: u64, size: PteSize, old: u64, new: u64) -> Result<bool, MmuError>;
}

/// Guest-physical access for the page-table walker (and the emulator): the
/// MMU implements it over the slots (`impl GuestPhys for Mmu`); tests
/// implement it directly.
pub trait GuestPhys {
    /// Read the naturally aligned entry at `gpa`; `None` if no RAM backs it
    /// (the walk then reports "not present", as `walk_addr` does when
    /// `kvm_read_guest` fails).
    fn read_pte(&mut self, gpa: u64, size: PteSize) -> Option<u64>;
    /// Compare-and-swap the entry at `gpa` (`cmpxchg_gpte`); `None` if no
    /// RAM backs it. A successful swap counts as a kernel write for dirty
    /// logging.
    fn cmpxchg_pte(&mut self, gpa: u64, size: PteSize, old: u64, new: u64) -> Option<bool>;
}
