//! The ioctl layer's platform on bare metal: minors from a counter with a
//! small free list, `spin::Mutex` locks (one CPU, nothing sleeps: the
//! `SpinLocks` family of `kvm_ioctl` itself), and copyin/copyout as plain
//! copies of identity-mapped host memory (the VMM is the host).

use kvm_ioctl::platform::{Fault, Minor, Platform, SpinLocks, UserMemory};

use super::user;
use crate::sync::SpinLock;

const FREE_MINORS: usize = 32;

struct Minors {
    next: Minor,
    free: [Minor; FREE_MINORS],
    nfree: usize,
}

/// `kvm_ioctl::Platform` for the bare-metal host.
pub struct BarePlatform {
    minors: SpinLock<Minors>,
}

impl BarePlatform {
    pub const fn new() -> Self {
        BarePlatform {
            minors: SpinLock::new(Minors {
                next: 1,
                free: [0; FREE_MINORS],
                nfree: 0,
            }),
        }
    }
}

impl Platform for BarePlatform {
    type Locks = SpinLocks;

    fn alloc_minor(&self) -> Option<Minor> {
        let mut m = self.minors.lock();
        if m.nfree > 0 {
            m.nfree -= 1;
            let i = m.nfree;
            return m.free.get(i).copied();
        }
        let minor = m.next;
        if minor >= i32::MAX as u32 {
            return None;
        }
        m.next += 1;
        Some(minor)
    }

    fn free_minor(&self, minor: Minor) {
        let mut m = self.minors.lock();
        let i = m.nfree;
        if let Some(slot) = m.free.get_mut(i) {
            *slot = minor;
            m.nfree += 1;
        }
    }
}

/// The VMM's memory for one ioctl: host RAM, identity mapped. An address
/// outside RAM (or in page 0) faults as an unmapped user address would.
pub struct HostUser;

impl UserMemory for HostUser {
    fn copyin(&mut self, uaddr: u64, dst: &mut [u8]) -> Result<(), Fault> {
        if dst.is_empty() {
            return Ok(());
        }
        if !user::in_ram(uaddr, dst.len() as u64) {
            return Err(Fault);
        }
        // SAFETY: RAM, identity mapped; the VMM owns what it points at.
        unsafe {
            core::ptr::copy_nonoverlapping(uaddr as usize as *const u8, dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn copyout(&mut self, src: &[u8], uaddr: u64) -> Result<(), Fault> {
        if src.is_empty() {
            return Ok(());
        }
        if !user::in_ram(uaddr, src.len() as u64) {
            return Err(Fault);
        }
        // SAFETY: as `copyin`.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), uaddr as usize as *mut u8, src.len())
        };
        Ok(())
    }
}
