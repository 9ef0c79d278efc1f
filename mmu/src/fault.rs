//! The EPT-violation path: port of `tdp_page_fault` (kvm_mmu.c:2075) and
//! its callees `mapping_level`, `gfn_to_pfn`, `__direct_map`, for an EPT
//! built on demand.
//!
//! * A guest-physical address no slot backs is MMIO: nothing is mapped, the
//!   driver emulates the access (`kvm_mmu_page_fault` → emulator) and every
//!   later access exits again.
//! * RAM is mapped R/W/X with WB+IPAT, device memory the VMM mapped with UC
//!   (`vmx_get_mt_mask`).
//! * A 2 MiB leaf is used when the whole aligned 2 MiB is in the one slot
//!   that lookups give for it, the slot is not logging dirty pages, no 4 KiB
//!   table is there already, and the VMM memory behind it is one physically
//!   contiguous 2 MiB-aligned range ([`GuestMemory::resolve_2m`]). The
//!   original never did this (`kvm_host_page_size` was always 4 KiB).
//! * While a slot logs dirty pages, a read or fetch maps the page without W;
//!   a write maps it with W and marks it dirty, so W in the EPT implies "in
//!   the dirty bitmap" (what `KVM_GET_DIRTY_LOG` relies on).

use crate::MmuError;
use crate::ept::{EptEntry, EptMemType, EptPageSize, EptPerms, GPA_LIMIT, Invept, SIZE_2M};
use crate::memslot::PAGE_SHIFT;
use crate::platform::{GuestMemory, HostMemKind, TablePages};
use crate::vm::Mmu;

/// The access bits of an EPT-violation exit qualification (SDM §28.2.1,
/// table "Exit Qualification for EPT Violations").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EptViolation {
    /// Bit 0: data read.
    pub read: bool,
    /// Bit 1: data write.
    pub write: bool,
    /// Bit 2: instruction fetch.
    pub fetch: bool,
}

impl EptViolation {
    /// Decode an exit qualification.
    pub fn from_qualification(q: u64) -> Self {
        EptViolation {
            read: q & 1 != 0,
            write: q & 2 != 0,
            fetch: q & 4 != 0,
        }
    }
}

/// What the driver does after [`Mmu::handle_ept_violation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Mapped (or already mapped by another VCPU): resume the guest, after
    /// INVEPT if asked.
    Mapped {
        /// Leaf size used.
        size: EptPageSize,
        /// Whether INVEPT is needed first.
        invept: Invept,
    },
    /// No slot: emulate the access as MMIO.
    Mmio,
}

fn mem_type(kind: HostMemKind) -> EptMemType {
    match kind {
        HostMemKind::Ram => EptMemType::WriteBack,
        HostMemKind::Device => EptMemType::Uncacheable,
    }
}

impl<T: TablePages, G: GuestMemory> Mmu<T, G> {
    /// `tdp_page_fault`: handle an EPT violation at `gpa`.
    ///
    /// Errors: [`MmuError::HostFault`] (`EFAULT`) if the VMM memory behind
    /// the slot is not mapped and locked (`hat_getpfnum` failed; the original
    /// then fell into the emulator); [`MmuError::NoMemory`] (`ENOMEM`) if a
    /// table page could not be allocated (retry after freeing memory).
    pub fn handle_ept_violation(
        &mut self,
        gpa: u64,
        access: EptViolation,
    ) -> Result<FaultOutcome, MmuError> {
        self.stats.faults = self.stats.faults.saturating_add(1);
        let gfn = gpa >> PAGE_SHIFT;
        let slot = match self.slots.lookup(gfn) {
            Some(s) if gpa < GPA_LIMIT => s,
            _ => {
                self.stats.mmio_faults = self.stats.mmio_faults.saturating_add(1);
                return Ok(FaultOutcome::Mmio);
            }
        };
        let logging = slot.is_logging();
        let slot_id = slot.id();

        // Already mapped with what the access needs (another VCPU won)?
        if let Some((e, size)) = self.ept.lookup(&self.tables, gpa)
            && (!access.write || e.perms().contains(EptPerms::W))
        {
            return Ok(FaultOutcome::Mapped {
                size,
                invept: Invept::NotNeeded,
            });
        }

        if !logging && self.large_pages {
            let base = gpa & !(SIZE_2M - 1);
            let base_gfn = base >> PAGE_SHIFT;
            let whole = self
                .slots
                .covering(base_gfn, SIZE_2M >> PAGE_SHIFT)
                .is_some_and(|s| s.id() == slot_id);
            if whole && self.ept.can_map_2m(&self.tables, base) {
                let hva = self.slots.gfn_to_hva(base_gfn).ok_or(MmuError::NoSlot)?;
                if let Some(hp) = self.mem.resolve_2m(hva) {
                    let e = EptEntry::leaf(
                        hp.pa,
                        EptPerms::all(),
                        mem_type(hp.kind),
                        EptPageSize::Size2M,
                    );
                    let inv = self
                        .ept
                        .map(&mut self.tables, base, EptPageSize::Size2M, e)?;
                    let invept = self.note(inv);
                    return Ok(FaultOutcome::Mapped {
                        size: EptPageSize::Size2M,
                        invept,
                    });
                }
            }
        }

        let hva = self.slots.gfn_to_hva(gfn).ok_or(MmuError::NoSlot)?;
        let hp = self.mem.resolve(hva).ok_or(MmuError::HostFault)?;
        let mut perms = EptPerms::all();
        if logging {
            if access.write {
                self.slots.mark_dirty(gfn);
            } else {
                // (A page that is already writable never gets here: the
                // early return above took it.)
                perms.remove(EptPerms::W);
            }
        }
        let e = EptEntry::leaf(hp.pa, perms, mem_type(hp.kind), EptPageSize::Size4K);
        let inv = self
            .ept
            .map(&mut self.tables, gpa & !0xfff, EptPageSize::Size4K, e)?;
        let invept = self.note(inv);
        Ok(FaultOutcome::Mapped {
            size: EptPageSize::Size4K,
            invept,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualification_bits() {
        let v = EptViolation::from_qualification(0x182 | 1 << 3);
        assert_eq!(
            v,
            EptViolation {
                read: false,
                write: true,
                fetch: false
            }
        );
        assert!(EptViolation::from_qualification(4).fetch);
        assert_eq!(mem_type(HostMemKind::Device), EptMemType::Uncacheable);
    }
}
