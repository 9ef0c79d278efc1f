//! The ioctl layer's platform traits for the illumos kernel: minor numbers
//! from an `id_space`, locks over `kmutex_t`, user memory through
//! `ddi_copyin`/`ddi_copyout`, and the `kvm-bad-ioctl` probe.

use alloc::boxed::Box;
use core::ffi::{c_int, c_void};

use kvm_ioctl::platform::{Fault, Lock, LockFamily, Minor, Platform, UserMemory};

use super::sync::KMutex;
use super::sys;

/// The id space the C driver named "kvm_minor": minors [1, INT32_MAX).
pub struct IllumosPlatform {
    minors: *mut sys::IdSpace,
}

// SAFETY: an id_space is internally locked; the pointer is set at attach
// and freed only at detach, when no open minor can exist.
unsafe impl Send for IllumosPlatform {}
// SAFETY: as above.
unsafe impl Sync for IllumosPlatform {}

impl IllumosPlatform {
    /// Create the minor id space (`kvm_attach`); `None` if the kernel
    /// refused.
    pub fn new() -> Option<Self> {
        // SAFETY: constant NUL-terminated name; the range is the C driver's.
        let minors = unsafe { sys::id_space_create(c"kvm_minor".as_ptr(), 1, i32::MAX) };
        (!minors.is_null()).then_some(Self { minors })
    }
}

impl Drop for IllumosPlatform {
    fn drop(&mut self) {
        // SAFETY: created in `new`; every minor was freed (detach requires
        // no open minor).
        unsafe { sys::id_space_destroy(self.minors) }
    }
}

impl Platform for IllumosPlatform {
    type Locks = KLocks;

    fn alloc_minor(&self) -> Option<Minor> {
        // SAFETY: `id_alloc` may sleep: open(9E) context.
        let id = unsafe { sys::id_alloc(self.minors) };
        u32::try_from(id).ok()
    }

    fn free_minor(&self, minor: Minor) {
        if let Ok(id) = c_int::try_from(minor) {
            // SAFETY: `minor` came from `alloc_minor`.
            unsafe { sys::id_free(self.minors, id) }
        }
    }

    fn probe_bad_ioctl(&self, cmd: u32) {
        kvm_kstat::sdt::bad_ioctl(cmd as usize);
    }
}

/// Locks over `kmutex_t`: sleeping mutexes, as KVM_RUN holds its VCPU's
/// lock while the guest runs.
pub struct KLocks;

impl LockFamily for KLocks {
    type Lock<T: Send> = KLock<T>;
}

/// A boxed [`KMutex`]: moving the box never moves the `kmutex_t`.
pub struct KLock<T>(Box<KMutex<T>>);

impl<T: Send> Lock<T> for KLock<T> {
    fn new(value: T) -> Self {
        KLock(KMutex::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}

/// The calling process's memory for one ioctl: `ddi_copyin`/`ddi_copyout`
/// with the ioctl's `mode` (so `FKIOCTL` callers work too).
pub struct IoctlUser {
    pub mode: c_int,
}

impl UserMemory for IoctlUser {
    fn copyin(&mut self, uaddr: u64, dst: &mut [u8]) -> Result<(), Fault> {
        // SAFETY: `dst` is a valid kernel buffer of `dst.len()` bytes;
        // ddi_copyin validates the user address and fails with -1.
        let r = unsafe {
            sys::ddi_copyin(
                uaddr as usize as *const c_void,
                dst.as_mut_ptr().cast(),
                dst.len(),
                self.mode,
            )
        };
        if r == 0 { Ok(()) } else { Err(Fault) }
    }

    fn copyout(&mut self, src: &[u8], uaddr: u64) -> Result<(), Fault> {
        // SAFETY: as `copyin`, the other way.
        let r = unsafe {
            sys::ddi_copyout(
                src.as_ptr().cast(),
                uaddr as usize as *mut c_void,
                src.len(),
                self.mode,
            )
        };
        if r == 0 { Ok(()) } else { Err(Fault) }
    }
}
