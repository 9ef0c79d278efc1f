//! The instruction decoder.
//!
//! Ports `x86_decode_insn` (kvm_emulate.c:960): prefixes, the one- and
//! two-byte opcode maps, groups, ModRM/SIB/displacement and immediates, with
//! operand and address size chosen per SDM Vol. 1 §3.6 and Vol. 2 §2.2.1.
//! Decoding works on a byte slice so it can be tested (and benchmarked)
//! without an [`crate::EmulatorOps`] implementation.

pub mod modrm;
pub mod prefix;
mod sse;
pub mod table;

use crate::mode::{Mode, Size};
pub use modrm::{MemRef, Rm};
pub use prefix::{Prefixes, Rep, Rex};
use table::{Attr, Entry, Loc, Op, Slot};

/// The longest legal instruction (SDM Vol. 2 §2.3.11); longer raises #GP(0).
pub const MAX_LEN: usize = 15;

/// Why decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended before the instruction did.
    Truncated,
    /// More than 15 bytes: #GP(0).
    TooLong,
    /// An opcode the CPU rejects here (#UD): LOCK misuse, No64 opcode, a
    /// register where memory is required.
    Invalid,
    /// An opcode this emulator does not handle.
    Unsupported,
}

/// Which opcode map the opcode byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// One-byte map.
    One,
    /// 0F map.
    Two,
}

/// A register operand: number 0-15, or one of AH/CH/DH/BH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegRef {
    /// Register number (for high-byte forms, the 16-bit register 0-3).
    pub num: u8,
    /// AH/CH/DH/BH (8-bit operand, no REX, encodings 4-7).
    pub high: bool,
}

/// A decoded operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// None.
    None,
    /// A general-purpose register of a width.
    Reg(RegRef, Size),
    /// The memory operand [`Insn::mem`] of a width.
    Mem(Size),
    /// An immediate, extended to 64 bits as the instruction specifies.
    Imm(u64, Size),
    /// An XMM register (0-15) of an SSE data move.
    Xmm(u8),
    /// An MMX register (0-7) of an MMX data move.
    Mmx(u8),
    /// The memory operand [`Insn::mem`] of an SSE data move: 4, 8 or 16
    /// bytes moved as a byte string.
    MemBytes(u8),
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The operation.
    pub op: Op,
    /// Length in bytes.
    pub len: u8,
    /// The mode it was decoded in.
    pub mode: Mode,
    /// Effective operand size.
    pub op_size: Size,
    /// Effective address size.
    pub addr_size: Size,
    /// Prefixes.
    pub prefixes: Prefixes,
    /// Opcode map.
    pub map: Map,
    /// Opcode byte.
    pub opcode: u8,
    /// ModRM byte, when present.
    pub modrm: Option<u8>,
    /// The memory operand (ModRM memory form or moffs), when present.
    pub mem: Option<MemRef>,
    /// Destination.
    pub dst: Operand,
    /// Source.
    pub src: Operand,
    /// Second source (count, immediate, selector of a far pointer).
    pub src2: Operand,
    /// Table attributes.
    pub attr: Attr,
}

impl Insn {
    /// ModRM.reg with REX.R applied.
    pub fn modrm_reg(&self) -> u8 {
        self.modrm
            .map_or(0, |m| ((m >> 3) & 7) | self.prefixes.rex.r())
    }
}

/// A bounds-checked reader over the instruction bytes.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Next byte.
    #[inline]
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_LEN {
            return Err(DecodeError::TooLong);
        }
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A little-endian value of `size` (zero-extended).
    #[inline]
    pub fn imm(&mut self, size: Size) -> Result<u64, DecodeError> {
        let n = size.bytes();
        let end = self.pos + n;
        // Same verdict as reading byte by byte: missing bytes before the
        // 15-byte limit are "truncated", bytes past it "too long".
        if self.bytes.len() < end.min(MAX_LEN) {
            return Err(DecodeError::Truncated);
        }
        if end > MAX_LEN {
            return Err(DecodeError::TooLong);
        }
        let mut b = [0u8; 8];
        if let (Some(dst), Some(src)) = (b.get_mut(..n), self.bytes.get(self.pos..end)) {
            dst.copy_from_slice(src);
        } else {
            return Err(DecodeError::Truncated);
        }
        self.pos = end;
        Ok(u64::from_le_bytes(b))
    }
}

fn reg_ref(num: u8, size: Size, rex: Rex) -> RegRef {
    if size == Size::S8 && !rex.present() && (4..8).contains(&num) {
        RegRef {
            num: num - 4,
            high: true,
        }
    } else {
        RegRef { num, high: false }
    }
}

fn op_size(mode: Mode, p: &Prefixes, attr: Attr) -> Size {
    if attr.contains(Attr::BYTE) {
        return Size::S8;
    }
    if attr.contains(Attr::CTRL) {
        return if mode.is_64() { Size::S64 } else { Size::S32 };
    }
    if mode.is_64() {
        if attr.contains(Attr::FORCE64) || p.rex.w() {
            return Size::S64;
        }
        if attr.contains(Attr::DEF64) {
            return if p.opsize { Size::S16 } else { Size::S64 };
        }
    }
    match (mode.default_op_size(), p.opsize) {
        (Size::S16, false) | (Size::S32, true) => Size::S16,
        _ => Size::S32,
    }
}

fn addr_size(mode: Mode, p: &Prefixes) -> Size {
    match (mode.default_addr_size(), p.addrsize) {
        (Size::S64, false) => Size::S64,
        (Size::S64, true) | (Size::S16, true) => Size::S32,
        (Size::S32, false) => Size::S32,
        _ => Size::S16,
    }
}

/// Decode one instruction from `bytes` in `mode`.
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Insn, DecodeError> {
    let (prefixes, n) = prefix::parse(bytes.get(..MAX_LEN).unwrap_or(bytes), mode);
    let mut cur = Cursor { bytes, pos: n };
    let rex = prefixes.rex;
    let is64 = mode.is_64();
    let mut opcode = cur.byte()?;
    let mut map = Map::One;
    let mut slot = table::lookup(opcode, false, is64);
    if opcode == 0x0f {
        opcode = cur.byte()?;
        map = Map::Two;
        if sse::is_sse_move(opcode) {
            return sse::decode(&mut cur, prefixes, mode, opcode, addr_size(mode, &prefixes));
        }
        slot = table::lookup(opcode, true, is64);
    }
    let mut modrm = None;
    let entry: Entry = match slot {
        Slot::Insn(en) => {
            if en.attr.contains(Attr::MODRM) {
                modrm = Some(cur.byte()?);
            }
            en
        }
        Slot::Group(g) => {
            let m = cur.byte()?;
            modrm = Some(m);
            match table::group(g, m) {
                Slot::Insn(en) => en,
                _ => return Err(DecodeError::Unsupported),
            }
        }
        Slot::Unsupported => return Err(DecodeError::Unsupported),
    };
    let attr = entry.attr;
    // C4/C5 with mod = 11 are the VEX prefixes (SDM Vol. 2 §2.3.5).
    if map == Map::One && matches!(opcode, 0xc4 | 0xc5) && modrm.is_some_and(|m| m >> 6 == 3) {
        return Err(DecodeError::Unsupported);
    }
    if is64 && attr.contains(Attr::NO64) {
        return Err(DecodeError::Invalid);
    }
    let mut entry = entry;
    // 90 without REX.B is NOP (and F3 90 is PAUSE), not XCHG EAX, EAX.
    if map == Map::One && opcode == 0x90 && (rex.b() == 0 || prefixes.rep == Some(Rep::Repe)) {
        entry.op = Op::Nop;
        entry.dst = Loc::None;
        entry.src = Loc::None;
    }
    let op = entry.op;
    // F3 0F BC/BD are TZCNT/LZCNT on current CPUs.
    if matches!(op, Op::Bsf | Op::Bsr) && prefixes.rep == Some(Rep::Repe) {
        return Err(DecodeError::Unsupported);
    }
    let mut op_size = op_size(mode, &prefixes, attr);
    if let Some(m) = modrm {
        let reg = ((m >> 3) & 7) | rex.r();
        let bad = match op {
            Op::MovFromCr | Op::MovToCr => !matches!(reg, 0 | 2 | 3 | 4 | 8),
            Op::MovFromDr | Op::MovToDr => reg > 7,
            Op::MovToSeg => !matches!(reg & 7, 0 | 2..=5),
            Op::MovFromSeg => reg & 7 > 5,
            _ => false,
        };
        if bad {
            return Err(DecodeError::Invalid);
        }
    }
    // VMCALL/VMMCALL take no 66/F2/F3 prefix.
    if op == Op::Vmcall && (prefixes.opsize || prefixes.rep.is_some()) {
        return Err(DecodeError::Invalid);
    }
    // CLFLUSH and MOVNTI are other instructions with a 66/F2/F3 prefix.
    if map == Map::Two
        && matches!(opcode, 0xae | 0xc3)
        && (prefixes.opsize || prefixes.rep.is_some())
    {
        return Err(DecodeError::Invalid);
    }
    // MOVNTI has no 16-bit form.
    if map == Map::Two && opcode == 0xc3 {
        if prefixes.opsize {
            return Err(DecodeError::Invalid);
        }
        if op_size == Size::S16 {
            op_size = Size::S32;
        }
    }
    // Port I/O is at most 32 bits wide; REX.W is ignored.
    if op_size == Size::S64
        && matches!(
            op,
            Op::In | Op::Out | Op::Str(table::StrOp::Ins | table::StrOp::Outs)
        )
    {
        op_size = Size::S32;
    }
    let addr_size = addr_size(mode, &prefixes);

    let mut rm = None;
    if let Some(m) = modrm {
        if attr.contains(Attr::CTRL) {
            // MOV to/from CR/DR ignore mod and always name a register.
            rm = Some(Rm::Reg((m & 7) | rex.b()));
        } else {
            rm = Some(modrm::decode(
                &mut cur,
                m,
                rex,
                addr_size,
                prefixes.seg,
                is64,
            )?);
        }
    }
    let mut mem = match rm {
        Some(Rm::Mem(mr)) => Some(mr),
        _ => None,
    };
    let reg_field = modrm.map_or(0, |m| ((m >> 3) & 7) | rex.r());

    let sizes = Sizes {
        op: op_size,
        addr: addr_size,
    };
    let fields = Fields {
        reg: reg_field,
        rm,
        rex,
        opcode,
        seg: prefixes.seg,
    };
    let dst = operand(entry.dst, sizes, &fields, &mut cur, &mut mem)?;
    let src = operand(entry.src, sizes, &fields, &mut cur, &mut mem)?;
    let src2 = operand(entry.src2, sizes, &fields, &mut cur, &mut mem)?;

    if prefixes.lock && !(attr.contains(Attr::LOCK) && matches!(dst, Operand::Mem(_))) {
        return Err(DecodeError::Invalid);
    }
    Ok(Insn {
        op,
        len: cur.pos as u8,
        mode,
        op_size,
        addr_size,
        prefixes,
        map,
        opcode,
        modrm,
        mem,
        dst,
        src,
        src2,
        attr,
    })
}

/// Operand and address size of the instruction being decoded.
#[derive(Clone, Copy)]
struct Sizes {
    op: Size,
    addr: Size,
}

/// The already decoded fields an operand descriptor draws from.
struct Fields {
    reg: u8,
    rm: Option<Rm>,
    rex: Rex,
    opcode: u8,
    seg: Option<crate::ops::Seg>,
}

/// Resolve one operand descriptor, reading its immediate (in encoding order:
/// the caller asks for dst, src, src2) or moffs from `cur`.
#[inline(always)]
fn operand(
    loc: Loc,
    sizes: Sizes,
    f: &Fields,
    cur: &mut Cursor<'_>,
    mem: &mut Option<MemRef>,
) -> Result<Operand, DecodeError> {
    let Sizes {
        op: op_size,
        addr: addr_size,
    } = sizes;
    let (reg_field, rm, rex, opcode) = (f.reg, f.rm, f.rex, f.opcode);
    Ok(match loc {
        Loc::None => Operand::None,
        Loc::Reg => Operand::Reg(reg_ref(reg_field, op_size, rex), op_size),
        Loc::Rm | Loc::RmSized(_) | Loc::MemOnly => {
            let size = match loc {
                // MOVSXD with a 16-bit operand size reads 16 bits.
                Loc::RmSized(s) => s.min(op_size),
                _ => op_size,
            };
            match rm {
                Some(Rm::Reg(r)) if loc != Loc::MemOnly => {
                    Operand::Reg(reg_ref(r, size, rex), size)
                }
                Some(Rm::Mem(_)) => Operand::Mem(size),
                _ => return Err(DecodeError::Invalid),
            }
        }
        Loc::Acc => Operand::Reg(
            RegRef {
                num: 0,
                high: false,
            },
            op_size,
        ),
        Loc::OpReg => {
            let r = (opcode & 7) | rex.b();
            Operand::Reg(reg_ref(r, op_size, rex), op_size)
        }
        Loc::Imm => {
            let isz = if op_size == Size::S64 {
                Size::S32
            } else {
                op_size
            };
            Operand::Imm(op_size.trunc(isz.sext(cur.imm(isz)?)), op_size)
        }
        Loc::ImmFull => Operand::Imm(cur.imm(op_size)?, op_size),
        Loc::ImmS8 => Operand::Imm(op_size.trunc(Size::S8.sext(cur.imm(Size::S8)?)), op_size),
        Loc::ImmU8 => Operand::Imm(cur.imm(Size::S8)?, Size::S8),
        Loc::Imm16 => Operand::Imm(cur.imm(Size::S16)?, Size::S16),
        Loc::One => Operand::Imm(1, Size::S8),
        Loc::Cl => Operand::Reg(
            RegRef {
                num: 1,
                high: false,
            },
            Size::S8,
        ),
        Loc::Dx => Operand::Reg(
            RegRef {
                num: 2,
                high: false,
            },
            Size::S16,
        ),
        Loc::MemAbs => {
            let off = cur.imm(addr_size)?;
            *mem = Some(MemRef {
                seg: f.seg.unwrap_or(crate::ops::Seg::Ds),
                base: None,
                index: None,
                scale: 1,
                disp: off as i64,
                rip_rel: false,
            });
            Operand::Mem(op_size)
        }
        Loc::Rel8 => Operand::Imm(Size::S8.sext(cur.imm(Size::S8)?), Size::S64),
        Loc::Rel => {
            let isz = if op_size == Size::S16 {
                Size::S16
            } else {
                Size::S32
            };
            Operand::Imm(isz.sext(cur.imm(isz)?), Size::S64)
        }
        Loc::FarPtr => {
            let isz = if op_size == Size::S16 {
                Size::S16
            } else {
                Size::S32
            };
            let off = cur.imm(isz)?;
            Operand::Imm(off | (cur.imm(Size::S16)? << 32), Size::S64)
        }
    })
}
