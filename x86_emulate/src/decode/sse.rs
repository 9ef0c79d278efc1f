//! The SSE/SSE2 data moves of the 0F map (SDM Vol. 2 Table A-3, the
//! instruction pages of MOVUPS ... MOVQ).
//!
//! These opcodes select the instruction by a mandatory prefix: F3 or F2
//! (the last of them) wins over 66, which wins over none (SDM Vol. 2
//! §2.1.2: a 66 with a mandatory F2/F3 is ignored). Only data moves are
//! decoded: the MMX forms without a prefix of 6E/6F/7E/7F (MOVD/MOVQ with
//! an MMX register, [`Op::Mmx`]) too; F2/F3 D6 (MOVQ2DQ/MOVDQ2Q), the SSE3
//! duplicating moves (F2/F3 12/16) and every other SSE or MMX instruction
//! are [`DecodeError::Unsupported`].

use super::modrm::{self, Rm};
use super::prefix::Rep;
use super::table::{Attr, Op, XmmMove};
use super::{Cursor, DecodeError, Insn, Map, Operand, Prefixes, RegRef};
use crate::mode::{Mode, Size};

/// Whether 0F `opcode` is one of the SSE data moves this module decodes.
pub(super) const fn is_sse_move(opcode: u8) -> bool {
    matches!(
        opcode,
        0x10 | 0x11 | 0x12 | 0x13 | 0x16 | 0x17 | 0x28 | 0x29 | 0x6e | 0x6f | 0x7e | 0x7f | 0xd6
    )
}

/// The mandatory prefix in effect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mp {
    None,
    P66,
    F3,
    F2,
}

/// The direction of the move between ModRM.reg (always an XMM register)
/// and ModRM.rm.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// reg (XMM) ← rm.
    Load,
    /// rm ← reg (XMM).
    Store,
}

const fn mv(len: u8, src_off: u8, dst_off: u8, zero_rest: bool, aligned: bool) -> XmmMove {
    XmmMove {
        len,
        src_off,
        dst_off,
        zero_rest,
        aligned,
    }
}

/// Classify 0F `op` under mandatory prefix `mp`: direction, whether rm is a
/// general-purpose register (MOVD/MOVQ 66 0F 6E/7E), and the move.
fn classify(op: u8, mp: Mp, is_reg: bool, wide: bool) -> Option<(Dir, bool, XmmMove)> {
    use Dir::{Load, Store};
    let full = mv(16, 0, 0, true, false);
    let aligned = mv(16, 0, 0, true, true);
    let gpr_len = if wide { 8 } else { 4 };
    Some(match (op, mp, is_reg) {
        // MOVUPS / MOVUPD.
        (0x10, Mp::None | Mp::P66, _) => (Load, false, full),
        (0x11, Mp::None | Mp::P66, _) => (Store, false, full),
        // MOVSS / MOVSD: from memory the rest is zeroed, between registers kept.
        (0x10, Mp::F3, _) => (Load, false, mv(4, 0, 0, !is_reg, false)),
        (0x11, Mp::F3, _) => (Store, false, mv(4, 0, 0, false, false)),
        (0x10, Mp::F2, _) => (Load, false, mv(8, 0, 0, !is_reg, false)),
        (0x11, Mp::F2, _) => (Store, false, mv(8, 0, 0, false, false)),
        // MOVLPS / MOVLPD m64 and MOVHLPS xmm, xmm.
        (0x12, Mp::None | Mp::P66, false) => (Load, false, mv(8, 0, 0, false, false)),
        (0x12, Mp::None, true) => (Load, false, mv(8, 8, 0, false, false)),
        (0x13, Mp::None | Mp::P66, false) => (Store, false, mv(8, 0, 0, false, false)),
        // MOVHPS / MOVHPD m64 and MOVLHPS xmm, xmm.
        (0x16, Mp::None | Mp::P66, false) => (Load, false, mv(8, 0, 8, false, false)),
        (0x16, Mp::None, true) => (Load, false, mv(8, 0, 8, false, false)),
        (0x17, Mp::None | Mp::P66, false) => (Store, false, mv(8, 8, 0, false, false)),
        // MOVAPS / MOVAPD.
        (0x28, Mp::None | Mp::P66, _) => (Load, false, aligned),
        (0x29, Mp::None | Mp::P66, _) => (Store, false, aligned),
        // MOVD / MOVQ xmm, r/m32/64 and r/m32/64, xmm.
        (0x6e, Mp::P66, _) => (Load, true, mv(gpr_len, 0, 0, true, false)),
        (0x7e, Mp::P66, _) => (Store, true, mv(gpr_len, 0, 0, true, false)),
        // MOVDQA / MOVDQU.
        (0x6f, Mp::P66, _) => (Load, false, aligned),
        (0x7f, Mp::P66, _) => (Store, false, aligned),
        (0x6f, Mp::F3, _) => (Load, false, full),
        (0x7f, Mp::F3, _) => (Store, false, full),
        // MOVQ xmm, xmm/m64 and MOVQ xmm/m64, xmm.
        (0x7e, Mp::F3, _) => (Load, false, mv(8, 0, 0, true, false)),
        (0xd6, Mp::P66, _) => (Store, false, mv(8, 0, 0, true, false)),
        _ => return None,
    })
}

/// Decode the rest of an SSE data move: `cur` is just past the 0F opcode
/// byte `opcode`.
pub(super) fn decode(
    cur: &mut Cursor<'_>,
    prefixes: Prefixes,
    mode: Mode,
    opcode: u8,
    addr_size: Size,
) -> Result<Insn, DecodeError> {
    let m = cur.byte()?;
    let rex = prefixes.rex;
    let is_reg = m >> 6 == 3;
    let mp = match (prefixes.rep, prefixes.opsize) {
        (Some(Rep::Repe), _) => Mp::F3,
        (Some(Rep::Repne), _) => Mp::F2,
        (None, true) => Mp::P66,
        (None, false) => Mp::None,
    };
    let wide = mode.is_64() && rex.w();
    if mp == Mp::None && matches!(opcode, 0x6e | 0x6f | 0x7e | 0x7f) {
        return decode_mmx(cur, prefixes, mode, opcode, addr_size, m);
    }
    let (dir, gpr, xm) = classify(opcode, mp, is_reg, wide).ok_or(DecodeError::Unsupported)?;
    let rm = modrm::decode(cur, m, rex, addr_size, prefixes.seg, mode.is_64())?;
    // LOCK is #UD on every SSE instruction.
    if prefixes.lock {
        return Err(DecodeError::Invalid);
    }
    let op_size = if gpr && wide { Size::S64 } else { Size::S32 };
    let xmm_reg = Operand::Xmm(((m >> 3) & 7) | rex.r());
    let (rm_op, mem) = match rm {
        Rm::Reg(r) if gpr => (
            Operand::Reg(
                RegRef {
                    num: r,
                    high: false,
                },
                op_size,
            ),
            None,
        ),
        Rm::Reg(r) => (Operand::Xmm(r), None),
        Rm::Mem(mr) => (Operand::MemBytes(xm.len), Some(mr)),
    };
    let (dst, src) = match dir {
        Dir::Load => (xmm_reg, rm_op),
        Dir::Store => (rm_op, xmm_reg),
    };
    Ok(Insn {
        op: Op::Xmm(xm),
        len: cur.pos as u8,
        mode,
        op_size,
        addr_size,
        prefixes,
        map: Map::Two,
        opcode,
        modrm: Some(m),
        mem,
        dst,
        src,
        src2: Operand::None,
        attr: Attr::MODRM,
    })
}

/// The MMX moves (SDM Vol. 2 "MOVD/MOVQ", "MOVQ"): 0F 6E (MOVD/MOVQ mm,
/// r/m32/64), 0F 7E (MOVD/MOVQ r/m32/64, mm), 0F 6F (MOVQ mm, mm/m64),
/// 0F 7F (MOVQ mm/m64, mm). ModRM.reg names an MMX register (REX.R is
/// ignored), as does ModRM.rm of 6F/7F; REX.W widens 6E/7E to 8 bytes.
fn decode_mmx(
    cur: &mut Cursor<'_>,
    prefixes: Prefixes,
    mode: Mode,
    opcode: u8,
    addr_size: Size,
    m: u8,
) -> Result<Insn, DecodeError> {
    let rex = prefixes.rex;
    let rm = modrm::decode(cur, m, rex, addr_size, prefixes.seg, mode.is_64())?;
    if prefixes.lock {
        return Err(DecodeError::Invalid);
    }
    let gpr = matches!(opcode, 0x6e | 0x7e);
    let len = if gpr && !(mode.is_64() && rex.w()) {
        4
    } else {
        8
    };
    let op_size = if len == 8 && gpr {
        Size::S64
    } else {
        Size::S32
    };
    let mm = Operand::Mmx((m >> 3) & 7);
    let (rm_op, mem) = match rm {
        Rm::Reg(r) if gpr => (
            Operand::Reg(
                RegRef {
                    num: r,
                    high: false,
                },
                op_size,
            ),
            None,
        ),
        Rm::Reg(_) => (Operand::Mmx(m & 7), None),
        Rm::Mem(mr) => (Operand::MemBytes(len), Some(mr)),
    };
    let (dst, src) = if matches!(opcode, 0x6e | 0x6f) {
        (mm, rm_op)
    } else {
        (rm_op, mm)
    };
    Ok(Insn {
        op: Op::Mmx(len),
        len: cur.pos as u8,
        mode,
        op_size,
        addr_size,
        prefixes,
        map: Map::Two,
        opcode,
        modrm: Some(m),
        mem,
        dst,
        src,
        src2: Operand::None,
        attr: Attr::MODRM,
    })
}
