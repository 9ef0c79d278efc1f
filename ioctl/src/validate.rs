//! Input validation that needs no subsystem: pure functions over the copied-in
//! ABI structs, run before anything changes. Each is a port of (or a fix to)
//! a check of the C driver, named in its doc comment.

use crate::abi::IrqchipId;
use crate::abi::{
    KVM_IOAPIC_NUM_PINS, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MEM_LOG_DIRTY_PAGES,
    KVM_PIT_FLAGS_HPET_LEGACY, KVM_PIT_SPEAKER_DUMMY, KVM_VCPUEVENT_VALID_NMI_PENDING,
    KVM_VCPUEVENT_VALID_SIPI_VECTOR, PAGESIZE, kvm_irq_routing_entry, kvm_userspace_memory_region,
};
use crate::errno::Errno;
use crate::{KVM_MAX_IRQ_ROUTES, KVM_MAX_MCE_BANKS, KVM_MEMORY_SLOTS, MCG_CTL_P};

const PAGE_MASK: u64 = PAGESIZE as u64 - 1;
const PAGESHIFT: u32 = 12;

/// A user memory slot as the ioctl layer tracks it (for the overlap, resize
/// and dirty-log checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemSlot {
    /// First guest frame.
    pub base_gfn: u64,
    /// Number of pages (never 0 for a present slot).
    pub npages: u64,
    /// `KVM_MEM_LOG_DIRTY_PAGES` or 0.
    pub flags: u32,
    /// Start of the user mapping.
    pub userspace_addr: u64,
}

impl MemSlot {
    /// Port of `kvm_dirty_bitmap_bytes`: `BT_SIZEOFMAP(npages)`, i.e. whole
    /// 64-bit words. `None` if it does not fit in `usize`.
    pub fn dirty_bitmap_bytes(&self) -> Option<usize> {
        let words = self.npages.div_ceil(64);
        usize::try_from(words.checked_mul(8)?).ok()
    }
}

/// The memslot table of one VM (user slots only).
pub type MemSlots = [Option<MemSlot>; KVM_MEMORY_SLOTS];

/// Port of the checks of `kvm_vm_ioctl_set_memory_region` and
/// `__kvm_set_memory_region` (kvm.c:807): slot < 32, page-aligned size,
/// guest address and user address, no wrap-around, no resize of an existing
/// slot, no overlap with another slot (EEXIST). Added: unknown flags are
/// EINVAL, and the last guest frame must be addressable (gfn fits in 64
/// bits, guaranteed by the wrap check). Returns the slot's new value (`None`
/// = delete).
pub fn check_memory_region(
    slots: &MemSlots,
    mem: &kvm_userspace_memory_region,
) -> Result<Option<MemSlot>, Errno> {
    let slot = usize::try_from(mem.slot).map_err(|_| Errno::EINVAL)?;
    let old = slots.get(slot).ok_or(Errno::EINVAL)?;
    if mem.flags & !KVM_MEM_LOG_DIRTY_PAGES != 0 {
        return Err(Errno::EINVAL);
    }
    if mem.memory_size & PAGE_MASK != 0
        || mem.guest_phys_addr & PAGE_MASK != 0
        || mem.userspace_addr & PAGE_MASK != 0
    {
        return Err(Errno::EINVAL);
    }
    if mem.guest_phys_addr.checked_add(mem.memory_size).is_none()
        || mem.userspace_addr.checked_add(mem.memory_size).is_none()
    {
        return Err(Errno::EINVAL);
    }
    let npages = mem.memory_size >> PAGESHIFT;
    if npages == 0 {
        return Ok(None);
    }
    let base_gfn = mem.guest_phys_addr >> PAGESHIFT;
    if old.is_some_and(|o| o.npages != npages) {
        return Err(Errno::EINVAL);
    }
    for (i, s) in slots.iter().enumerate() {
        let Some(s) = s else { continue };
        if i == slot {
            continue;
        }
        // No wrap: base + npages <= 2^52 for both.
        let disjoint = base_gfn + npages <= s.base_gfn || base_gfn >= s.base_gfn + s.npages;
        if !disjoint {
            return Err(Errno::EEXIST);
        }
    }
    Ok(Some(MemSlot {
        base_gfn,
        npages,
        flags: mem.flags,
        userspace_addr: mem.userspace_addr,
    }))
}

/// Port of the entry checks of `kvm_set_irq_routing` / `setup_routing_entry`
/// (kvm_irq_comm.c:300, 378): `gsi < 1024`; type IRQCHIP with a PIC master
/// pin < 16, PIC slave pin < 8 or IOAPIC pin < 24, or type MSI; a GSI is
/// never routed twice to the same irqchip, and an MSI GSI has no other
/// route. Added: entry `flags` must be 0. All EINVAL.
pub fn check_routing(entries: &[kvm_irq_routing_entry]) -> Result<(), Errno> {
    for (i, e) in entries.iter().enumerate() {
        if e.gsi >= KVM_MAX_IRQ_ROUTES || e.flags != 0 {
            return Err(Errno::EINVAL);
        }
        let chip = match e.r#type {
            KVM_IRQ_ROUTING_IRQCHIP => {
                // SAFETY: `irqchip` is plain integers; any bits are valid.
                let ic = unsafe { e.u.irqchip };
                let chip = IrqchipId::try_from(ic.irqchip).map_err(|_| Errno::EINVAL)?;
                let max_pin = match chip {
                    IrqchipId::PicMaster => 16,
                    IrqchipId::PicSlave => 8,
                    IrqchipId::Ioapic => KVM_IOAPIC_NUM_PINS as u32,
                };
                if ic.pin >= max_pin {
                    return Err(Errno::EINVAL);
                }
                Some(chip)
            }
            KVM_IRQ_ROUTING_MSI => None,
            _ => return Err(Errno::EINVAL),
        };
        for prev in entries.iter().take(i).filter(|p| p.gsi == e.gsi) {
            if prev.r#type == KVM_IRQ_ROUTING_MSI || chip.is_none() {
                return Err(Errno::EINVAL);
            }
            // SAFETY: as above.
            let pc = unsafe { prev.u.irqchip.irqchip };
            if Some(pc) == chip.map(|c| c as u32) {
                return Err(Errno::EINVAL);
            }
        }
    }
    Ok(())
}

/// Port of the checks of `kvm_vcpu_ioctl_x86_setup_mce` (kvm_x86.c:1936):
/// 1..31 banks, capability bits within `MCG_CTL_P | 0xff | 0xff0000`.
pub fn check_mce_cap(mcg_cap: u64) -> Result<(), Errno> {
    let banks = mcg_cap & 0xff;
    if banks == 0 || banks >= u64::from(KVM_MAX_MCE_BANKS) {
        return Err(Errno::EINVAL);
    }
    if mcg_cap & !(MCG_CTL_P | 0xff | 0xff_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// KVM_SET_VCPU_EVENTS flags (Linux 2.6.34 `kvm_vcpu_ioctl_x86_set_vcpu_events`).
pub fn check_vcpu_events_flags(flags: u32) -> Result<(), Errno> {
    let known = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// KVM_CREATE_PIT2 flags (added check: only `KVM_PIT_SPEAKER_DUMMY`).
pub fn check_pit_config_flags(flags: u32) -> Result<(), Errno> {
    if flags & !KVM_PIT_SPEAKER_DUMMY != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// KVM_SET_PIT2 flags (added check: only `KVM_PIT_FLAGS_HPET_LEGACY`).
pub fn check_pit_state_flags(flags: u32) -> Result<(), Errno> {
    if flags & !KVM_PIT_FLAGS_HPET_LEGACY != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{Pod, kvm_irq_routing_irqchip};

    fn region(slot: u32, gpa: u64, size: u64) -> kvm_userspace_memory_region {
        kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: 0x10_0000_0000,
        }
    }

    #[test]
    fn memory_region_rules() {
        let mut slots: MemSlots = [None; KVM_MEMORY_SLOTS];
        let s0 = check_memory_region(&slots, &region(0, 0, 0x10_0000)).unwrap();
        slots[0] = s0;
        assert_eq!(
            check_memory_region(&slots, &region(32, 0, 4096)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_memory_region(&slots, &region(1, 0x1000, 4096)),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            check_memory_region(&slots, &region(1, 0x10_0000, 4096)).map(|s| s.is_some()),
            Ok(true)
        );
        // Resize refused, same size accepted (move), delete accepted.
        assert_eq!(
            check_memory_region(&slots, &region(0, 0, 0x20_0000)),
            Err(Errno::EINVAL)
        );
        assert!(check_memory_region(&slots, &region(0, 0x40_0000, 0x10_0000)).is_ok());
        assert_eq!(check_memory_region(&slots, &region(0, 0, 0)), Ok(None));
        // Alignment, wrap, flags.
        assert_eq!(
            check_memory_region(&slots, &region(1, 0x10_0001, 4096)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_memory_region(&slots, &region(1, 0x10_0000, 4095)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_memory_region(&slots, &region(1, !0xfff, 0x2000)),
            Err(Errno::EINVAL)
        );
        let mut r = region(1, 0x10_0000, 4096);
        r.flags = 2;
        assert_eq!(check_memory_region(&slots, &r), Err(Errno::EINVAL));
    }

    fn route(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
        let mut e = kvm_irq_routing_entry::zeroed();
        e.gsi = gsi;
        e.r#type = KVM_IRQ_ROUTING_IRQCHIP;
        e.u.irqchip = kvm_irq_routing_irqchip { irqchip: chip, pin };
        e
    }

    #[test]
    fn routing_rules() {
        assert!(check_routing(&[route(0, 0, 0), route(0, 2, 2), route(8, 1, 0)]).is_ok());
        assert_eq!(
            check_routing(&[route(0, 0, 0), route(0, 0, 1)]),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_routing(&[route(0, 1, 8)]), Err(Errno::EINVAL));
        assert_eq!(check_routing(&[route(0, 2, 24)]), Err(Errno::EINVAL));
        assert_eq!(check_routing(&[route(0, 3, 0)]), Err(Errno::EINVAL));
        assert_eq!(check_routing(&[route(1024, 2, 0)]), Err(Errno::EINVAL));
        let mut msi = kvm_irq_routing_entry::zeroed();
        msi.gsi = 5;
        msi.r#type = KVM_IRQ_ROUTING_MSI;
        assert!(check_routing(&[msi]).is_ok());
        assert_eq!(check_routing(&[msi, route(5, 2, 5)]), Err(Errno::EINVAL));
        assert_eq!(check_routing(&[route(5, 2, 5), msi]), Err(Errno::EINVAL));
        msi.r#type = 3;
        assert_eq!(check_routing(&[msi]), Err(Errno::EINVAL));
    }

    #[test]
    fn mce_rules() {
        assert!(check_mce_cap(MCG_CTL_P | 10).is_ok());
        assert!(check_mce_cap(31).is_ok());
        assert_eq!(check_mce_cap(0), Err(Errno::EINVAL));
        assert_eq!(check_mce_cap(32), Err(Errno::EINVAL));
        assert_eq!(check_mce_cap(1 << 9 | 1), Err(Errno::EINVAL));
    }
}
