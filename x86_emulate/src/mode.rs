//! CPU execution modes and operand sizes.
//!
//! Ports `enum x86emul_mode` (kvm_emulate.h) and the default operand/address
//! size selection at the top of `x86_decode_insn`: SDM Vol. 1 §3.6 "Operand-size
//! and address-size attributes" and Vol. 3 §9.1 (real mode) / §20.1 (virtual-8086).

/// The execution mode the guest was in when the instruction trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Real-address mode (CR0.PE = 0).
    Real,
    /// Virtual-8086 mode (EFLAGS.VM = 1).
    Vm86,
    /// Protected mode with a 16-bit code segment (CS.D = 0).
    Prot16,
    /// Protected mode with a 32-bit code segment (CS.D = 1), also compatibility mode.
    Prot32,
    /// 64-bit mode (IA32_EFER.LMA = 1, CS.L = 1).
    Prot64,
}

impl Mode {
    /// Default operand size of the code segment (SDM Vol. 1 Table 3-4).
    pub const fn default_op_size(self) -> Size {
        match self {
            Mode::Real | Mode::Vm86 | Mode::Prot16 => Size::S16,
            Mode::Prot32 | Mode::Prot64 => Size::S32,
        }
    }

    /// Default address size of the code segment.
    pub const fn default_addr_size(self) -> Size {
        match self {
            Mode::Real | Mode::Vm86 | Mode::Prot16 => Size::S16,
            Mode::Prot32 => Size::S32,
            Mode::Prot64 => Size::S64,
        }
    }

    /// True in 64-bit mode.
    pub const fn is_64(self) -> bool {
        matches!(self, Mode::Prot64)
    }
}

/// The width of an operand or an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Size {
    /// 8 bits.
    S8,
    /// 16 bits.
    S16,
    /// 32 bits.
    S32,
    /// 64 bits.
    S64,
}

impl Size {
    /// Width in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            Size::S8 => 1,
            Size::S16 => 2,
            Size::S32 => 4,
            Size::S64 => 8,
        }
    }

    /// Width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Size::S8 => 8,
            Size::S16 => 16,
            Size::S32 => 32,
            Size::S64 => 64,
        }
    }

    /// All-ones mask of the width.
    pub const fn mask(self) -> u64 {
        match self {
            Size::S8 => 0xff,
            Size::S16 => 0xffff,
            Size::S32 => 0xffff_ffff,
            Size::S64 => u64::MAX,
        }
    }

    /// The sign bit of the width.
    pub const fn sign_bit(self) -> u64 {
        1u64 << (self.bits() - 1)
    }

    /// Twice the width (for MUL/DIV), saturating at 64 bits.
    pub const fn double(self) -> Size {
        match self {
            Size::S8 => Size::S16,
            Size::S16 => Size::S32,
            Size::S32 | Size::S64 => Size::S64,
        }
    }

    /// Truncate `v` to the width.
    pub const fn trunc(self, v: u64) -> u64 {
        v & self.mask()
    }

    /// Sign-extend the low `self` bits of `v` to 64 bits.
    pub const fn sext(self, v: u64) -> u64 {
        match self {
            Size::S8 => v as u8 as i8 as i64 as u64,
            Size::S16 => v as u16 as i16 as i64 as u64,
            Size::S32 => v as u32 as i32 as i64 as u64,
            Size::S64 => v,
        }
    }

    /// Width from a byte count (1, 2, 4, 8).
    pub const fn from_bytes(n: usize) -> Option<Size> {
        match n {
            1 => Some(Size::S8),
            2 => Some(Size::S16),
            4 => Some(Size::S32),
            8 => Some(Size::S64),
            _ => None,
        }
    }
}
