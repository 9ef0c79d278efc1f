//! The crate's error type. Mapping to an errno is the ioctl layer's job; each
//! variant documents the errno the original driver returned in that case and
//! [`MmuError::errno`] names it.

/// The errno an [`MmuError`] stands for (illumos `<sys/errno.h>` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// `EINVAL`
    Inval,
    /// `EEXIST`
    Exist,
    /// `ENOMEM`
    NoMem,
    /// `ENOENT`
    NoEnt,
    /// `EFAULT`
    Fault,
}

/// Everything that can go wrong in the MMU on a path an ioctl or a guest
/// reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmuError {
    /// `memory_size`, `guest_phys_addr` or `userspace_addr` is not a multiple
    /// of the page size (`__kvm_set_memory_region`). → `EINVAL`.
    Misaligned,
    /// Slot number out of range: ≥ 32 from the ioctl, or not a slot at all.
    /// → `EINVAL`.
    BadSlot,
    /// `guest_phys_addr + memory_size` (or an address derived from it)
    /// overflows. → `EINVAL`.
    AddressOverflow,
    /// An existing slot was given a different size ("Disallow changing a
    /// memory slot's size"). → `EINVAL`.
    Resize,
    /// A flag other than `KVM_MEM_LOG_DIRTY_PAGES` (e.g. `KVM_MEM_READONLY`,
    /// which the original does not implement). → `EINVAL`.
    UnsupportedFlags,
    /// The new range overlaps another user slot. → `EEXIST`.
    Overlap,
    /// A kernel allocation (slot bitmap, EPT table page, bookkeeping)
    /// failed. → `ENOMEM`.
    NoMemory,
    /// `KVM_GET_DIRTY_LOG` on a slot that is not logging. → `ENOENT`.
    NotLogging,
    /// The caller's dirty-log buffer is shorter than the slot's bitmap.
    /// → `EINVAL` (the ioctl layer sizes it, so this is a driver bug).
    BufferTooSmall,
    /// The VMM's address behind a slot is not mapped and locked, or a copy
    /// to or from it failed (`hat_getpfnum` gave `PFN_INVALID`, `copyin`
    /// failed). → `EFAULT`.
    HostFault,
    /// A guest-physical address that no slot backs was accessed by the
    /// kernel (`kvm_read_guest` on MMIO). → `EFAULT`.
    NoSlot,
}

impl MmuError {
    /// The errno the original driver returns for this error.
    pub const fn errno(self) -> Errno {
        match self {
            MmuError::Misaligned
            | MmuError::BadSlot
            | MmuError::AddressOverflow
            | MmuError::Resize
            | MmuError::UnsupportedFlags
            | MmuError::BufferTooSmall => Errno::Inval,
            MmuError::Overlap => Errno::Exist,
            MmuError::NoMemory => Errno::NoMem,
            MmuError::NotLogging => Errno::NoEnt,
            MmuError::HostFault | MmuError::NoSlot => Errno::Fault,
        }
    }
}
