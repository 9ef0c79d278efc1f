//! A 4-level EPT (SDM vol. 3 §29.3) built from allocator pages. It owns
//! its tables and the guest pages mapped into it; `destroy` frees all.

use crate::pages::{self, PAGE_SIZE, Page};

const READ_WRITE_EXECUTE: u64 = 0b111;
const MEMTYPE_WB: u64 = 6 << 3;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const ENTRIES: usize = 512;
/// EPTP: write-back paging structures, 4-level walk (length - 1 = 3).
const EPTP_WB_4_LEVEL: u64 = 6 | (3 << 3);

/// Why a mapping failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    OutOfMemory,
    AlreadyMapped,
}

pub struct Ept {
    pml4: Page,
}

/// Index of `gpa` in a table at `level` (4 = PML4 ... 1 = PT).
fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Pointer to entry `i` of the table at physical address `table`.
fn entry(table: u64, i: usize) -> *mut u64 {
    (table as usize as *mut u64).wrapping_add(i)
}

impl Ept {
    /// An empty EPT, or `None` without memory.
    pub fn new() -> Option<Self> {
        pages::alloc().map(|pml4| Ept { pml4 })
    }

    /// The EPT pointer for the VMCS.
    pub fn eptp(&self) -> u64 {
        self.pml4.phys() | EPTP_WB_4_LEVEL
    }

    /// Maps the 4 KiB page at `gpa` to `page`, read/write/execute,
    /// write-back. The EPT takes ownership of `page`.
    pub fn map(&mut self, gpa: u64, page: Page) -> Result<(), EptError> {
        let mut table = self.pml4.phys();
        for level in (2..=4).rev() {
            let e = entry(table, index(gpa, level));
            // SAFETY: `table` is one of our table pages; the index is < 512.
            let mut value = unsafe { e.read() };
            if value & READ_WRITE_EXECUTE == 0 {
                let Some(next) = pages::alloc() else {
                    pages::free(page);
                    return Err(EptError::OutOfMemory);
                };
                value = next.into_phys() | READ_WRITE_EXECUTE;
                // SAFETY: as above; the new table is zeroed (not present).
                unsafe { e.write(value) };
            }
            table = value & ADDRESS_MASK;
        }
        let e = entry(table, index(gpa, 1));
        // SAFETY: as above.
        if unsafe { e.read() } & READ_WRITE_EXECUTE != 0 {
            pages::free(page);
            return Err(EptError::AlreadyMapped);
        }
        // SAFETY: as above.
        unsafe { e.write(page.into_phys() | READ_WRITE_EXECUTE | MEMTYPE_WB) };
        Ok(())
    }

    /// The host-physical address `gpa` maps to.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let mut table = self.pml4.phys();
        for level in (1..=4).rev() {
            // SAFETY: `table` is one of our table pages; the index is < 512.
            let value = unsafe { entry(table, index(gpa, level)).read() };
            if value & READ_WRITE_EXECUTE == 0 {
                return None;
            }
            table = value & ADDRESS_MASK;
        }
        Some(table | (gpa & (PAGE_SIZE - 1)))
    }

    /// Frees every table and every mapped page.
    pub fn destroy(self) {
        free_table(self.pml4.phys(), 4);
        pages::free(self.pml4);
    }
}

/// Frees what the table at `table` (at `level`) points to.
fn free_table(table: u64, level: u32) {
    for i in 0..ENTRIES {
        // SAFETY: `table` is one of our table pages; `i` < 512.
        let value = unsafe { entry(table, i).read() };
        if value & READ_WRITE_EXECUTE == 0 {
            continue;
        }
        let next = value & ADDRESS_MASK;
        if level > 1 {
            free_table(next, level - 1);
        }
        // SAFETY: every present entry records a page from `pages::alloc`
        // that only this EPT owns.
        pages::free(unsafe { Page::from_phys(next) });
    }
}
