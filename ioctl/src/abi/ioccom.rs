//! The illumos ioctl encoding. Port of illumos `usr/src/uts/common/sys/ioccom.h`
//! (`_IO`, `_IOR`, `_IOW`, `_IOWR`), which differs from Linux's `_IOC`: the
//! direction bits are `IOC_VOID`/`IOC_OUT`/`IOC_IN` in the top three bits and
//! the size field keeps only 8 bits (`sizeof & IOCPARM_MASK`).

/// Mask of the parameter-size field (`IOCPARM_MASK`): only 8 bits survive.
pub const IOCPARM_MASK: u32 = 0xff;
/// No parameters (`IOC_VOID`).
pub const IOC_VOID: u32 = 0x2000_0000;
/// Copy out parameters (`IOC_OUT`).
pub const IOC_OUT: u32 = 0x4000_0000;
/// Copy in parameters (`IOC_IN`).
pub const IOC_IN: u32 = 0x8000_0000;
/// Copy in and out (`IOC_INOUT`).
pub const IOC_INOUT: u32 = IOC_IN | IOC_OUT;
/// The ioctl group of KVM (`KVMIO`).
pub const KVMIO: u8 = 0xAE;

/// Direction of an ioctl's parameter, as encoded in its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `_IO`: no parameter block (the argument, if any, is passed by value).
    None,
    /// `_IOR`: the kernel copies a block out (`IOC_OUT`).
    Read,
    /// `_IOW`: the kernel copies a block in (`IOC_IN`).
    Write,
    /// `_IOWR`: in and out (`IOC_INOUT`).
    ReadWrite,
}

impl Direction {
    /// The direction bits of this direction.
    pub const fn bits(self) -> u32 {
        match self {
            Direction::None => IOC_VOID,
            Direction::Read => IOC_OUT,
            Direction::Write => IOC_IN,
            Direction::ReadWrite => IOC_INOUT,
        }
    }
}

/// Port of the body shared by illumos `_IO`/`_IOR`/`_IOW`/`_IOWR`:
/// `dir | ((size & IOCPARM_MASK) << 16) | (group << 8) | num`.
pub const fn ioc(dir: Direction, group: u8, num: u8, size: usize) -> u32 {
    // Only the low 8 bits of the size are kept (IOCPARM_MASK), exactly as C.
    let size_field = (size & (IOCPARM_MASK as usize)) as u32;
    dir.bits() | (size_field << 16) | ((group as u32) << 8) | (num as u32)
}

/// Port of `_IO(x, y)`.
pub const fn io(group: u8, num: u8) -> u32 {
    ioc(Direction::None, group, num, 0)
}

/// Port of `_IOR(x, y, t)`; `size` is `sizeof (t)`.
pub const fn ior(group: u8, num: u8, size: usize) -> u32 {
    ioc(Direction::Read, group, num, size)
}

/// Port of `_IOW(x, y, t)`; `size` is `sizeof (t)`.
pub const fn iow(group: u8, num: u8, size: usize) -> u32 {
    ioc(Direction::Write, group, num, size)
}

/// Port of `_IOWR(x, y, t)`; `size` is `sizeof (t)`.
pub const fn iowr(group: u8, num: u8, size: usize) -> u32 {
    ioc(Direction::ReadWrite, group, num, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_field_is_eight_bits() {
        // 1608 = 0x648 keeps only 0x48; 1024 keeps nothing.
        assert_eq!(iowr(KVMIO, 0x88, 1608), 0xc048_ae88);
        assert_eq!(ior(KVMIO, 0x8e, 1024), 0x4000_ae8e);
        assert_eq!(io(KVMIO, 0), 0x2000_ae00);
        assert_eq!(iow(KVMIO, 0x46, 32), 0x8020_ae46);
    }
}
