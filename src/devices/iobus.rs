//! PIO and MMIO bus dispatch tables.
//!
//! Port of `struct kvm_io_bus` and `kvm_io_bus_{register,unregister}_dev`,
//! `kvm_io_bus_{read,write}` (kvm.c:1527–1636) and `kvm_iodev.c`. A bus holds
//! at most [`NR_IOBUS_DEVS`] devices; an access goes to the first device, in
//! registration order, whose range contains the whole access. The C lets
//! each device's callback decide (`in_range`); here the range is part of the
//! registration and the caller dispatches on the returned device handle, so
//! the table stays a plain value the platform can copy-on-write.

/// Maximum devices per bus (`NR_IOBUS_DEVS`).
use alloc::vec::Vec;

pub const NR_IOBUS_DEVS: usize = 200;

/// Which bus (`enum kvm_bus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BusKind {
    /// `KVM_MMIO_BUS`.
    Mmio,
    /// `KVM_PIO_BUS`.
    Pio,
}

/// A registration error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBusError {
    /// The bus already has [`NR_IOBUS_DEVS`] devices (C: ENOSPC).
    Full,
    /// A zero-length or wrapping range.
    BadRange,
}

/// One registered device range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoRange<D> {
    pub base: u64,
    pub len: u64,
    pub dev: D,
}

impl<D> IoRange<D> {
    /// Whether `[addr, addr + len)` lies inside the range.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        let (Some(end), Some(my_end)) = (addr.checked_add(len), self.base.checked_add(self.len))
        else {
            return false;
        };
        addr >= self.base && end <= my_end
    }
}

/// A bus: up to [`NR_IOBUS_DEVS`] ranges, each naming a device handle `D`.
#[derive(Clone, Debug)]
pub struct IoBus<D: Copy> {
    /// In registration order, at most [`NR_IOBUS_DEVS`]. In kmem, not
    /// inline: a 200-entry array would make every VM (and whatever
    /// constructs one) carry kilobytes on the 20 KiB kernel stack.
    devs: Vec<IoRange<D>>,
}

impl<D: Copy> Default for IoBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Copy> IoBus<D> {
    /// An empty bus.
    pub const fn new() -> Self {
        Self { devs: Vec::new() }
    }

    /// Number of registered devices.
    pub fn len(&self) -> usize {
        self.devs.len()
    }

    /// Whether no device is registered.
    pub fn is_empty(&self) -> bool {
        self.devs.is_empty()
    }

    /// Port of `kvm_io_bus_register_dev`.
    pub fn register(&mut self, base: u64, len: u64, dev: D) -> Result<(), IoBusError> {
        if len == 0 || base.checked_add(len).is_none() {
            return Err(IoBusError::BadRange);
        }
        if self.devs.len() >= NR_IOBUS_DEVS {
            return Err(IoBusError::Full);
        }
        // Registration runs in ioctl context, where allocation may sleep.
        self.devs.try_reserve(1).map_err(|_| IoBusError::Full)?;
        self.devs.push(IoRange { base, len, dev });
        Ok(())
    }

    /// Port of `kvm_io_bus_unregister_dev`: removes every range of `dev`,
    /// keeping the order of the others. Returns how many were removed.
    pub fn unregister(&mut self, dev: D) -> usize
    where
        D: PartialEq,
    {
        let before = self.devs.len();
        self.devs.retain(|r| r.dev != dev);
        before - self.devs.len()
    }

    pub fn find(&self, addr: u64, len: u64) -> Option<IoRange<D>> {
        self.devs.iter().find(|r| r.contains(addr, len)).copied()
    }

    /// Iterate the registrations in order.
    pub fn iter(&self) -> impl Iterator<Item = &IoRange<D>> {
        self.devs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Dev {
        Pic,
        Pit,
        Elcr,
    }

    #[test]
    fn iobus_dispatches_whole_access_to_first_matching_range() {
        let mut b = IoBus::new();
        b.register(0x20, 2, Dev::Pic).ok();
        b.register(0x40, 4, Dev::Pit).ok();
        b.register(0x4d0, 2, Dev::Elcr).ok();
        assert_eq!(b.find(0x21, 1).map(|r| r.dev), Some(Dev::Pic));
        assert_eq!(b.find(0x43, 1).map(|r| r.dev), Some(Dev::Pit));
        assert_eq!(b.find(0x43, 2), None, "access crossing the end exits");
        assert_eq!(b.find(0x60, 1), None);
        assert_eq!(b.find(u64::MAX, 4), None);
    }

    #[test]
    fn iobus_holds_at_most_200_devices() {
        let mut b = IoBus::new();
        for i in 0..NR_IOBUS_DEVS as u64 {
            assert_eq!(b.register(i * 16, 16, Dev::Pit), Ok(()));
        }
        assert_eq!(b.register(0x10_0000, 1, Dev::Pic), Err(IoBusError::Full));
        assert_eq!(b.len(), NR_IOBUS_DEVS);
    }

    #[test]
    fn iobus_unregister_removes_all_ranges_of_device_keeping_order() {
        let mut b = IoBus::new();
        b.register(0x20, 2, Dev::Pic).ok();
        b.register(0x40, 4, Dev::Pit).ok();
        b.register(0xa0, 2, Dev::Pic).ok();
        b.register(0x4d0, 2, Dev::Elcr).ok();
        assert_eq!(b.unregister(Dev::Pic), 2);
        let devs: std::vec::Vec<Dev> = b.iter().map(|r| r.dev).collect();
        assert_eq!(devs, [Dev::Pit, Dev::Elcr]);
        assert_eq!(b.find(0xa0, 1), None);
        assert!(b.register(0, 0, Dev::Pic).is_err());
        assert!(!b.is_empty());
    }

    #[test]
    fn iobus_earlier_registration_wins_on_overlap() {
        let mut b = IoBus::new();
        b.register(0xfee0_0000, 0x1000, Dev::Pic).ok();
        b.register(0xfee0_0000, 0x10, Dev::Pit).ok();
        assert_eq!(b.find(0xfee0_0000, 4).map(|r| r.dev), Some(Dev::Pic));
    }
}
