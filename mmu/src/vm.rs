//! The per-VM MMU: slots, the EPT and the statistics, behind one type the
//! driver keeps under its `slots_lock`/`mmu_lock` (one mutex is enough: every
//! method takes `&mut self` or `&self`). The EPT-violation path is in
//! [`crate::fault`], dirty logging in [`crate::dirty`].

use crate::MmuError;
use crate::ept::{Ept, Invept};
use crate::memslot::{MemoryRegion, Memslots, PAGE_SHIFT, PAGE_SIZE, SlotChange, SlotId};
use crate::platform::{GuestMemory, GuestPhys, PteSize, TablePages};

/// MMU statistics for the per-VM kstat (`kvm_stats_t`, inventory §3.1) and
/// the memory accounting of issue 6.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuStats {
    /// EPT table pages in use (root included), × 4 KiB = table memory.
    pub table_pages: u64,
    /// 2 MiB leaves present (`lpages`).
    pub lpages: u64,
    /// EPT violations handled.
    pub faults: u64,
    /// EPT violations on guest-physical addresses no slot backs (MMIO).
    pub mmio_faults: u64,
    /// Changes that asked the driver for an INVEPT (`remote-tlb-flush`).
    pub invept_requests: u64,
}

/// A VM's guest memory: `T` gives EPT table pages, `G` reaches the VMM's
/// memory. Dropping it frees every table page.
pub struct Mmu<T: TablePages, G: GuestMemory> {
    pub(crate) slots: Memslots,
    pub(crate) ept: Ept,
    pub(crate) tables: T,
    pub(crate) mem: G,
    pub(crate) stats: MmuStats,
    pub(crate) large_pages: bool,
}

impl<T: TablePages, G: GuestMemory> Mmu<T, G> {
    /// No slots, an empty EPT (one root page). [`MmuError::NoMemory`]
    /// (`ENOMEM`) if the root or the slot table cannot be allocated.
    pub fn new(mut tables: T, mem: G) -> Result<Self, MmuError> {
        let slots = Memslots::new()?;
        let ept = Ept::new(&mut tables)?;
        Ok(Mmu {
            slots,
            ept,
            tables,
            mem,
            stats: MmuStats::default(),
            large_pages: true,
        })
    }

    /// Allow or forbid 2 MiB EPT leaves (default: allowed). Forbidding does
    /// not split existing ones.
    pub fn set_large_pages(&mut self, on: bool) {
        self.large_pages = on;
    }

    /// The EPT pointer to load into the VMCS.
    pub fn eptp(&self) -> u64 {
        self.ept.eptp()
    }

    /// `KVM_SET_USER_MEMORY_REGION` (`kvm_vm_ioctl_set_memory_region`):
    /// `slot` must be < 32 ([`MmuError::BadSlot`], `EINVAL`); see
    /// [`crate::memslot`] for the other checks and their errnos.
    pub fn set_user_memory_region(
        &mut self,
        slot: u32,
        region: &MemoryRegion,
    ) -> Result<Invept, MmuError> {
        let id = SlotId::user(slot)?;
        self.set_memory_region(id, region)
    }

    /// `kvm_set_memory_region` for any slot, private ones included (the
    /// kernel's TSS, APIC-access and identity-page-table slots; the driver
    /// maps and locks their memory in the VMM process first, as
    /// `kvm_arch_prepare_memory_region` does).
    pub fn set_memory_region(
        &mut self,
        id: SlotId,
        region: &MemoryRegion,
    ) -> Result<Invept, MmuError> {
        let change = self.slots.set(id, region)?;
        let t = &mut self.tables;
        let inv = match change {
            SlotChange::None => Invept::NotNeeded,
            // A new slot may cover a range an overlapped private slot had
            // mapped: clear it so faults resolve through the new slot.
            SlotChange::Created { new } => self.ept.zap_range(t, new),
            SlotChange::Deleted { old } => self.ept.zap_range(t, old),
            SlotChange::Changed {
                old,
                new,
                logging_started,
            } => {
                let mut inv = Invept::NotNeeded;
                if old != new {
                    inv = self.ept.zap_range(t, old).or(self.ept.zap_range(t, new));
                }
                if logging_started {
                    inv = inv.or(self.ept.write_protect_range(t, new));
                }
                inv
            }
        };
        Ok(self.note(inv))
    }

    pub(crate) fn note(&mut self, inv: Invept) -> Invept {
        if inv == Invept::Needed {
            self.stats.invept_requests = self.stats.invept_requests.saturating_add(1);
        }
        inv
    }

    /// Tell the MMU the INVEPT it asked for has run on every CPU: the table
    /// pages unlinked before it are freed now.
    pub fn invept_done(&mut self) {
        self.ept.invept_done(&mut self.tables);
    }

    /// Statistics (table pages and `lpages` are current).
    pub fn stats(&self) -> MmuStats {
        MmuStats {
            table_pages: self.ept.table_pages(),
            lpages: self.ept.lpages(),
            ..self.stats
        }
    }

    /// The slots.
    pub fn slots(&self) -> &Memslots {
        &self.slots
    }

    /// The EPT.
    pub fn ept(&self) -> &Ept {
        &self.ept
    }

    /// The table backend (tests and mdb-style inspection).
    pub fn tables(&self) -> &T {
        &self.tables
    }

    /// The VMM memory backend.
    pub fn guest_memory(&self) -> &G {
        &self.mem
    }

    /// The VMM memory backend, mutably (the driver's view of the process).
    pub fn guest_memory_mut(&mut self) -> &mut G {
        &mut self.mem
    }

    /// Free every EPT table (`kvm_mmu_destroy`); the MMU maps nothing
    /// afterwards. Also done on drop.
    pub fn destroy(&mut self) {
        self.ept.destroy(&mut self.tables);
    }

    /// The VMM address of `gpa` and the bytes left in its page.
    fn hva_of(&self, gpa: u64) -> Result<(u64, u64), MmuError> {
        let hva = self
            .slots
            .gfn_to_hva(gpa >> PAGE_SHIFT)
            .ok_or(MmuError::NoSlot)?;
        let off = gpa & (PAGE_SIZE - 1);
        Ok((hva | off, PAGE_SIZE - off))
    }

    /// `kvm_read_guest`: copy guest-physical memory (any length, across
    /// pages and slots). [`MmuError::NoSlot`] (`EFAULT`) if a byte is not in
    /// a slot, [`MmuError::HostFault`] (`EFAULT`) if the VMM memory is gone.
    pub fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MmuError> {
        let mut gpa = gpa;
        let mut rest = buf;
        while !rest.is_empty() {
            let (hva, room) = self.hva_of(gpa)?;
            let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let (now, later) = rest.split_at_mut(n);
            self.mem.read(hva, now)?;
            gpa = gpa.checked_add(n as u64).ok_or(MmuError::AddressOverflow)?;
            rest = later;
        }
        Ok(())
    }

    /// `kvm_write_guest`: copy into guest-physical memory and mark the pages
    /// dirty (`mark_page_dirty`). Errors as [`Self::read_guest`]; bytes
    /// before the failing page are written.
    pub fn write_guest(&mut self, gpa: u64, data: &[u8]) -> Result<(), MmuError> {
        let mut gpa = gpa;
        let mut rest = data;
        while !rest.is_empty() {
            let (hva, room) = self.hva_of(gpa)?;
            let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let (now, later) = rest.split_at(n);
            self.mem.write(hva, now)?;
            self.slots.mark_dirty(gpa >> PAGE_SHIFT);
            gpa = gpa.checked_add(n as u64).ok_or(MmuError::AddressOverflow)?;
            rest = later;
        }
        Ok(())
    }
}

/// The walker's view of guest-physical memory: entries read through the
/// slots; A/D updates are compare-exchanges on the VMM's memory and count as
/// kernel writes for dirty logging (`cmpxchg_gpte` + `mark_page_dirty`).
impl<T: TablePages, G: GuestMemory> GuestPhys for Mmu<T, G> {
    fn read_pte(&mut self, gpa: u64, size: PteSize) -> Option<u64> {
        let mut b = [0u8; 8];
        let n = usize::try_from(size.bytes()).ok()?;
        if !gpa.is_multiple_of(size.bytes()) {
            return None;
        }
        let dst = b.get_mut(..n)?;
        self.read_guest(gpa, dst).ok()?;
        Some(u64::from_le_bytes(b))
    }

    fn cmpxchg_pte(&mut self, gpa: u64, size: PteSize, old: u64, new: u64) -> Option<bool> {
        if !gpa.is_multiple_of(size.bytes()) {
            return None;
        }
        let (hva, _) = self.hva_of(gpa).ok()?;
        let swapped = self.mem.cmpxchg(hva, size, old, new).ok()?;
        if swapped {
            self.slots.mark_dirty(gpa >> PAGE_SHIFT);
        }
        Some(swapped)
    }
}

impl<T: TablePages, G: GuestMemory> Drop for Mmu<T, G> {
    fn drop(&mut self) {
        self.destroy();
    }
}
