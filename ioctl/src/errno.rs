//! illumos errno values (`usr/src/uts/common/sys/errno.h`) the /dev/kvm
//! contract returns. Handlers return `Result<_, Errno>`; the DDI glue turns
//! `Err(e)` into the positive errno `e as i32`.

/// An illumos errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Errno {
    /// Not super-user.
    EPERM = 1,
    /// No such file or directory (e.g. GET_DIRTY_LOG on a slot without a log).
    ENOENT = 2,
    /// No such process (KVM_CLONE of a minor without a VM).
    ESRCH = 3,
    /// Interrupted system call (KVM_RUN with a signal pending).
    EINTR = 4,
    /// I/O error.
    EIO = 5,
    /// No such device or address (no irqchip/PIT, bad minor, open failure).
    ENXIO = 6,
    /// Argument list too long (count above its limit, buffer too small).
    E2BIG = 7,
    /// Resource temporarily unavailable (KVM_RUN of an uninitialised VCPU).
    EAGAIN = 11,
    /// Not enough memory.
    ENOMEM = 12,
    /// Bad address: a copyin/copyout failed.
    EFAULT = 14,
    /// Device busy.
    EBUSY = 16,
    /// Already exists.
    EEXIST = 17,
    /// No such device (KVM_CLONE of another driver's dev_t).
    ENODEV = 19,
    /// Invalid argument.
    EINVAL = 22,
    /// Operation not supported: the documented answer of a subsystem that
    /// is not built yet (see `backend::Unimplemented`).
    ENOTSUP = 48,
    /// No buffer space available (too many coalesced-MMIO zones).
    ENOBUFS = 132,
}

impl Errno {
    /// The positive errno the DDI entry point returns.
    pub const fn code(self) -> i32 {
        self as i32
    }
}
