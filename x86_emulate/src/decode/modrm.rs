//! ModRM, SIB and displacement decoding.
//!
//! Ports `decode_modrm` (kvm_emulate.c:821) following SDM Vol. 2 §2.1.5
//! (Tables 2-1 to 2-3: 16- and 32-bit addressing forms) and §2.2.1.6
//! (RIP-relative addressing in 64-bit mode).

use super::{Cursor, DecodeError};
use crate::mode::Size;
use crate::ops::Seg;
use crate::regs::Gpr;

/// A decoded memory operand: `seg:[base + index*scale + disp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRef {
    /// Effective segment (override or default: SS for RSP/RBP bases, else DS).
    pub seg: Seg,
    /// Base register number.
    pub base: Option<u8>,
    /// Index register number.
    pub index: Option<u8>,
    /// Scale factor (1, 2, 4, 8).
    pub scale: u8,
    /// Displacement, sign-extended.
    pub disp: i64,
    /// RIP-relative: the address is relative to the next instruction.
    pub rip_rel: bool,
}

/// What ModRM.rm designates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rm {
    /// A register (mod = 3), REX.B applied.
    Reg(u8),
    /// Memory.
    Mem(MemRef),
}

/// Decode the addressing form of `modrm` (already consumed) and the SIB byte
/// and displacement that follow it in `cur`.
pub fn decode(
    cur: &mut Cursor<'_>,
    modrm: u8,
    rex: super::prefix::Rex,
    addr_size: Size,
    seg_override: Option<Seg>,
    is64: bool,
) -> Result<Rm, DecodeError> {
    let md = modrm >> 6;
    let rm = modrm & 7;
    if md == 3 {
        return Ok(Rm::Reg(rm | rex.b()));
    }
    let mut m = MemRef {
        seg: Seg::Ds,
        base: None,
        index: None,
        scale: 1,
        disp: 0,
        rip_rel: false,
    };
    if addr_size == Size::S16 {
        let (base, index) = match rm {
            0 => (Some(Gpr::Rbx), Some(Gpr::Rsi)),
            1 => (Some(Gpr::Rbx), Some(Gpr::Rdi)),
            2 => (Some(Gpr::Rbp), Some(Gpr::Rsi)),
            3 => (Some(Gpr::Rbp), Some(Gpr::Rdi)),
            4 => (Some(Gpr::Rsi), None),
            5 => (Some(Gpr::Rdi), None),
            6 if md == 0 => (None, None),
            6 => (Some(Gpr::Rbp), None),
            _ => (Some(Gpr::Rbx), None),
        };
        m.base = base.map(|r| r as u8);
        m.index = index.map(|r| r as u8);
        if base == Some(Gpr::Rbp) {
            m.seg = Seg::Ss;
        }
        m.disp = match md {
            0 if rm == 6 => cur.imm(Size::S16)? as i16 as i64,
            0 => 0,
            1 => cur.imm(Size::S8)? as i8 as i64,
            _ => cur.imm(Size::S16)? as i16 as i64,
        };
    } else {
        if rm == 4 {
            let sib = cur.byte()?;
            let index = ((sib >> 3) & 7) | rex.x();
            if index != 4 {
                m.index = Some(index);
                m.scale = 1 << (sib >> 6);
            }
            let base_low = sib & 7;
            if base_low == 5 && md == 0 {
                m.base = None;
            } else {
                m.base = Some(base_low | rex.b());
            }
        } else if rm == 5 && md == 0 {
            m.rip_rel = is64;
        } else {
            m.base = Some(rm | rex.b());
        }
        // SS is the default for ESP/EBP bases (not R12/R13).
        if matches!(m.base, Some(4) | Some(5)) {
            m.seg = Seg::Ss;
        }
        m.disp = match md {
            0 if m.base.is_none() => cur.imm(Size::S32)? as i32 as i64,
            0 => 0,
            1 => cur.imm(Size::S8)? as i8 as i64,
            _ => cur.imm(Size::S32)? as i32 as i64,
        };
    }
    if let Some(s) = seg_override {
        m.seg = s;
    }
    Ok(Rm::Mem(m))
}
