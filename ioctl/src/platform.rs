//! What the ioctl layer needs from the kernel, as traits: user-memory access
//! (`copyin`/`copyout`), minor-number allocation, the caller's data model,
//! probes, and locks. The driver crate implements them for illumos
//! (`ddi_copyin`, `id_alloc`, `ddi_model_convert_from`, `kmutex_t`); the
//! tests implement them with std (a fake user address space, `std::sync`).

use crate::errno::Errno;

/// A minor number (`minor_t`).
pub type Minor = u32;

/// The self-cloning node's minor (`KVM_MINOR_BASE`): every open must target it.
pub const KVM_MINOR_BASE: Minor = 0;

/// Bits of the minor in a 64-bit `dev_t` (`NBITSMINOR64`).
pub const NBITSMINOR64: u32 = 32;

/// A 64-bit illumos `dev_t` (major in the high 32 bits, minor in the low 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dev(pub u64);

impl Dev {
    /// Port of `makedevice(major, minor)` (64-bit).
    pub const fn new(major: u32, minor: Minor) -> Dev {
        Dev(((major as u64) << NBITSMINOR64) | minor as u64)
    }
    /// Port of `getmajor(dev)`.
    pub const fn major(self) -> u32 {
        (self.0 >> NBITSMINOR64) as u32
    }
    /// Port of `getminor(dev)`.
    pub const fn minor(self) -> Minor {
        (self.0 & 0xffff_ffff) as u32
    }
}

/// `FREAD` (open flag).
pub const FREAD: i32 = 0x01;
/// `FWRITE` (open flag).
pub const FWRITE: i32 = 0x02;
/// `FNDELAY` (open flag).
pub const FNDELAY: i32 = 0x04;
/// `FEXCL` (open flag).
pub const FEXCL: i32 = 0x0400;
/// `OTYP_CHR` (open type).
pub const OTYP_CHR: i32 = 2;
/// `DATAMODEL_MASK` (= `FMODELS`, the model bits of an ioctl `mode`).
pub const DATAMODEL_MASK: i32 = 0x0FF0_0000;
/// `DATAMODEL_ILP32`.
pub const DATAMODEL_ILP32: i32 = 0x0010_0000;
/// `DATAMODEL_LP64`.
pub const DATAMODEL_LP64: i32 = 0x0020_0000;
/// `PROT_READ`.
pub const PROT_READ: u32 = 0x1;
/// `PROT_WRITE`.
pub const PROT_WRITE: u32 = 0x2;
/// `PROT_EXEC`.
pub const PROT_EXEC: u32 = 0x4;
/// `PROT_USER`.
pub const PROT_USER: u32 = 0x8;

/// The data model of a caller (`ddi_model_convert_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataModel {
    /// A 32-bit process: refused, the ABI structs are LP64.
    Ilp32,
    /// A 64-bit process (or a kernel caller).
    Lp64,
}

impl DataModel {
    /// Decodes the model bits of an ioctl `mode` / devmap `model`
    /// (`mode & FMODELS`); anything but `DATAMODEL_ILP32` is native LP64,
    /// as `ddi_model_convert_from` answers.
    pub const fn from_mode(mode: i32) -> DataModel {
        if mode & DATAMODEL_MASK == DATAMODEL_ILP32 {
            DataModel::Ilp32
        } else {
            DataModel::Lp64
        }
    }
}

/// A copyin/copyout of user memory failed (the caller gets EFAULT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

impl From<Fault> for Errno {
    fn from(_: Fault) -> Errno {
        Errno::EFAULT
    }
}

/// The address space of the calling process for one ioctl: port of
/// `ddi_copyin`/`ddi_copyout` with the ioctl's `mode` (the illumos
/// implementation carries `mode`, so `FKIOCTL` callers work too).
pub trait UserMemory {
    /// Copies `dst.len()` bytes from user address `uaddr` into `dst`.
    /// On `Err`, `dst` may be partly written but nothing else changed.
    fn copyin(&mut self, uaddr: u64, dst: &mut [u8]) -> Result<(), Fault>;
    /// Copies `src` to user address `uaddr`.
    fn copyout(&mut self, src: &[u8], uaddr: u64) -> Result<(), Fault>;
}

/// A lock protecting a `T`; `kmutex_t` in the kernel, `std::sync::Mutex` in
/// tests. Held across backend calls (KVM_RUN holds its VCPU's lock while the
/// guest runs), so the kernel implementation must be a sleeping mutex.
pub trait Lock<T>: Send + Sync {
    /// A new unlocked lock around `value`.
    fn new(value: T) -> Self;
    /// Runs `f` with the lock held.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// A family of locks (one generic type per platform).
pub trait LockFamily {
    /// The lock type for protected data `T`.
    type Lock<T: Send>: Lock<T>;
}

/// The kernel services the ioctl layer needs (everything else of the C
/// driver's DDI use stays in the driver crate's glue).
pub trait Platform: Send + Sync {
    /// The locks the driver's objects are protected by.
    type Locks: LockFamily;

    /// Port of `id_alloc(kvm_minors)`: a fresh minor in [1, INT32_MAX), or
    /// `None` if there is none left (the open fails with ENXIO).
    fn alloc_minor(&self) -> Option<Minor>;
    /// Port of `id_free(kvm_minors, minor)`.
    fn free_minor(&self, minor: Minor);
    /// Port of `ddi_model_convert_from(mode & FMODELS)`.
    fn data_model(&self, mode: i32) -> DataModel {
        DataModel::from_mode(mode)
    }
    /// The `kvm-bad-ioctl` SDT probe (`KVM_TRACE1(bad__ioctl, int, cmd)`).
    fn probe_bad_ioctl(&self, _cmd: u32) {}
}

/// Locks over `spin::Mutex`: usable where nothing sleeps while holding them
/// (tests, or a kernel build that never blocks under them). The kernel
/// driver should provide a `kmutex_t` family instead.
pub struct SpinLocks;

impl LockFamily for SpinLocks {
    type Lock<T: Send> = SpinLock<T>;
}

/// A `spin::Mutex` as a [`Lock`].
pub struct SpinLock<T>(spin::Mutex<T>);

impl<T: Send> Lock<T> for SpinLock<T> {
    fn new(value: T) -> Self {
        SpinLock(spin::Mutex::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}
