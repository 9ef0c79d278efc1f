//! The opcode tables: what each opcode does and where its operands are.
//!
//! Ports `opcode_table`, `twobyte_table` and `group_table` of kvm_emulate.c
//! (lines 129-330), with the operand-descriptor bit fields replaced by the
//! [`Loc`] enum and the execute switch's opcode numbers replaced by [`Op`].
//! Opcodes follow the SDM Vol. 2 Appendix A opcode maps. Entries the C table
//! left empty but executed (2C/2D/34/35) or that the C driver rejected though
//! the hardware runs them (MUL/DIV, IMUL, BSF/BSR, SETcc, STC, SCAS ...) are
//! present here.

use crate::flags::Cond;

/// An arithmetic/logic operation of the 00-3F block and group 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    /// ADD.
    Add,
    /// OR.
    Or,
    /// ADC.
    Adc,
    /// SBB.
    Sbb,
    /// AND.
    And,
    /// SUB.
    Sub,
    /// XOR.
    Xor,
    /// CMP (no write-back).
    Cmp,
}

impl AluOp {
    /// The operation selected by bits 5:3 of the opcode or ModRM.reg.
    pub const fn from_index(n: u8) -> AluOp {
        match n & 7 {
            0 => AluOp::Add,
            1 => AluOp::Or,
            2 => AluOp::Adc,
            3 => AluOp::Sbb,
            4 => AluOp::And,
            5 => AluOp::Sub,
            6 => AluOp::Xor,
            _ => AluOp::Cmp,
        }
    }
}

/// A shift or rotate of group 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftOp {
    /// ROL.
    Rol,
    /// ROR.
    Ror,
    /// RCL.
    Rcl,
    /// RCR.
    Rcr,
    /// SHL/SAL (/4 and /6).
    Shl,
    /// SHR.
    Shr,
    /// SAR.
    Sar,
}

/// A bit-test operation (BT/BTS/BTR/BTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    /// BT: test only.
    Bt,
    /// BTS: set.
    Bts,
    /// BTR: reset.
    Btr,
    /// BTC: complement.
    Btc,
}

/// A string instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    /// MOVS.
    Movs,
    /// CMPS.
    Cmps,
    /// STOS.
    Stos,
    /// LODS.
    Lods,
    /// SCAS.
    Scas,
    /// INS.
    Ins,
    /// OUTS.
    Outs,
}

/// The semantic operation of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// ADD ... CMP: dst op= src.
    Alu(AluOp),
    /// TEST: AND without write-back.
    Test,
    /// MOV (and MOV r/m, imm; MOV moffs).
    Mov,
    /// MOVZX.
    Movzx,
    /// MOVSX / MOVSXD.
    Movsx,
    /// LEA.
    Lea,
    /// XCHG.
    Xchg,
    /// INC.
    Inc,
    /// DEC.
    Dec,
    /// NOT.
    Not,
    /// NEG.
    Neg,
    /// MUL (one operand, accumulator implicit).
    Mul,
    /// IMUL one-operand form.
    Imul1,
    /// IMUL r, r/m and IMUL r, r/m, imm.
    Imul,
    /// DIV.
    Div,
    /// IDIV.
    Idiv,
    /// Shift/rotate by src.
    Shift(ShiftOp),
    /// SHLD dst, src, count.
    Shld,
    /// SHRD dst, src, count.
    Shrd,
    /// BT family.
    Bit(BitOp),
    /// BSF.
    Bsf,
    /// BSR.
    Bsr,
    /// SETcc.
    Setcc(Cond),
    /// CMOVcc.
    Cmovcc(Cond),
    /// Jcc rel.
    Jcc(Cond),
    /// JMP rel.
    Jmp,
    /// JMP r/m (absolute near).
    JmpAbs,
    /// JMP far ptr16:16/32.
    JmpFar,
    /// CALL rel.
    Call,
    /// CALL r/m.
    CallAbs,
    /// RET near (src = optional imm16 to pop).
    Ret,
    /// RET far.
    RetFar,
    /// LOOP / LOOPE / LOOPNE (with their condition) and JCXZ.
    Loop(LoopKind),
    /// CMPXCHG.
    Cmpxchg,
    /// CMPXCHG8B / CMPXCHG16B.
    Cmpxchg8b16b,
    /// XADD.
    Xadd,
    /// A string instruction.
    Str(StrOp),
    /// IN.
    In,
    /// OUT.
    Out,
    /// PUSH src.
    Push,
    /// POP to dst.
    Pop,
    /// PUSH segment register.
    PushSeg(crate::ops::Seg),
    /// POP segment register.
    PopSeg(crate::ops::Seg),
    /// PUSHA.
    Pusha,
    /// POPA.
    Popa,
    /// PUSHF.
    Pushf,
    /// POPF.
    Popf,
    /// LEAVE.
    Leave,
    /// CBW/CWDE/CDQE.
    Cbw,
    /// CWD/CDQ/CQO.
    Cwd,
    /// SAHF.
    Sahf,
    /// LAHF.
    Lahf,
    /// CMC.
    Cmc,
    /// CLC.
    Clc,
    /// STC.
    Stc,
    /// CLI.
    Cli,
    /// STI.
    Sti,
    /// CLD.
    Cld,
    /// STD.
    Std,
    /// HLT.
    Hlt,
    /// NOP, PAUSE, prefetch hints, CLFLUSH, INVD, WBINVD.
    Nop,
    /// BSWAP.
    Bswap,
    /// MOV r/m, Sreg.
    MovFromSeg,
    /// MOV Sreg, r/m.
    MovToSeg,
    /// MOV r, CRn.
    MovFromCr,
    /// MOV CRn, r.
    MovToCr,
    /// MOV r, DRn.
    MovFromDr,
    /// MOV DRn, r.
    MovToDr,
    /// RDMSR.
    Rdmsr,
    /// WRMSR.
    Wrmsr,
    /// CLTS.
    Clts,
    /// LTR r/m16 (0F 00 /3).
    Ltr,
    /// LGDT.
    Lgdt,
    /// LIDT.
    Lidt,
    /// SMSW.
    Smsw,
    /// LMSW.
    Lmsw,
    /// INVLPG.
    Invlpg,
    /// VMCALL / VMMCALL.
    Vmcall,
    /// XLAT.
    Xlat,
    /// CALL far ptr16:16/32.
    CallFar,
    /// CALL far m16:16/32/64 (FF /3).
    CallFarMem,
    /// JMP far m16:16/32/64 (FF /5).
    JmpFarMem,
    /// ENTER imm16, imm8.
    Enter,
    /// INT3, INT n, INTO: the vector (INTO: 4, only when OF = 1).
    Int(IntKind),
    /// IRET.
    Iret,
    /// SYSCALL.
    Syscall,
    /// SYSENTER.
    Sysenter,
    /// SYSEXIT.
    Sysexit,
    /// LDS/LES/LFS/LGS/LSS r, m16:16/32/64: the segment register loaded.
    LoadFarPtr(crate::ops::Seg),
    /// An MMX data move (MOVD/MOVQ, 0F 6E/6F/7E/7F without a mandatory
    /// prefix) of this many bytes (4 or 8) between an MMX register and
    /// memory, a general-purpose register or another MMX register.
    Mmx(u8),
    /// An SSE/SSE2 data move between an XMM register and memory, a
    /// general-purpose register or another XMM register (MOVUPS ... MOVQ).
    Xmm(XmmMove),
}

/// What an SSE/SSE2 data move does (decoded from opcode, mandatory prefix,
/// REX.W and whether ModRM names a register). The source supplies `len`
/// bytes starting at byte `src_off` of an XMM source (offset 0 of memory or
/// a general-purpose register); they land at byte `dst_off` of an XMM
/// destination (whose other bytes are zeroed when `zero_rest`, else kept)
/// or at the start of a memory or general-purpose destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmmMove {
    /// Bytes moved: 4, 8 or 16.
    pub len: u8,
    /// Byte offset in an XMM source (8 for MOVHPS/MOVHPD stores and MOVHLPS).
    pub src_off: u8,
    /// Byte offset in an XMM destination (8 for MOVHPS/MOVHPD loads and MOVLHPS).
    pub dst_off: u8,
    /// An XMM destination's other bytes are zeroed (MOVD/MOVQ, MOVSS/MOVSD
    /// from memory) rather than kept (MOVSS/MOVSD between registers,
    /// MOVLPS/MOVHPS ...).
    pub zero_rest: bool,
    /// A memory operand must be 16-byte aligned, else #GP(0) (MOVAPS,
    /// MOVAPD, MOVDQA).
    pub aligned: bool,
}

/// Which software-interrupt instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// INT3 (CC): vector 3.
    Int3,
    /// INT imm8 (CD).
    IntN,
    /// INTO (CE): vector 4 when OF = 1.
    Into,
}

/// The LOOP family (E0-E3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopKind {
    /// LOOPNE: count != 0 and ZF = 0.
    Ne,
    /// LOOPE: count != 0 and ZF = 1.
    E,
    /// LOOP: count != 0.
    Always,
    /// JCXZ/JECXZ/JRCXZ: count == 0 (no decrement).
    Jcxz,
}

/// Where an operand comes from (the C `Dst*`/`Src*`/`Src2*` descriptors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// No operand / implicit.
    None,
    /// The register in ModRM.reg.
    Reg,
    /// The register or memory in ModRM.rm, at the operand size.
    Rm,
    /// ModRM.rm forced to a width: 8 (MOVZX/MOVSX byte), 16, 32 (MOVSXD).
    RmSized(crate::mode::Size),
    /// ModRM.rm that must be memory (else #UD).
    MemOnly,
    /// The accumulator (AL/AX/EAX/RAX).
    Acc,
    /// The register in opcode bits 2:0 (plus REX.B).
    OpReg,
    /// An immediate of the operand size, at most 32 bits, sign-extended.
    Imm,
    /// An immediate of the full operand size (MOV r64, imm64).
    ImmFull,
    /// An 8-bit immediate sign-extended to the operand size.
    ImmS8,
    /// An 8-bit unsigned immediate.
    ImmU8,
    /// A 16-bit unsigned immediate.
    Imm16,
    /// The constant 1.
    One,
    /// CL.
    Cl,
    /// DX (I/O port).
    Dx,
    /// A memory operand at an absolute offset of the address size (moffs).
    MemAbs,
    /// A branch displacement of 8 bits.
    Rel8,
    /// A branch displacement of 16 or 32 bits.
    Rel,
    /// A far pointer: offset of the operand size, then a 16-bit selector.
    FarPtr,
}

bitflags::bitflags! {
    /// Decode attributes (the C flag bits that are not operand descriptors).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Attr: u16 {
        /// 8-bit operands (`ByteOp`).
        const BYTE = 1 << 0;
        /// Has a ModRM byte.
        const MODRM = 1 << 1;
        /// LOCK prefix allowed (with a memory destination).
        const LOCK = 1 << 2;
        /// #GP(0) unless CPL 0.
        const PRIV = 1 << 3;
        /// #UD in 64-bit mode.
        const NO64 = 1 << 4;
        /// Operand size defaults to 64 bits in 64-bit mode (stack ops).
        const DEF64 = 1 << 5;
        /// Operand size is always 64 bits in 64-bit mode (near branches, MOV CR/DR).
        const FORCE64 = 1 << 6;
        /// Only valid in 64-bit mode.
        const ONLY64 = 1 << 7;
        /// MOV CR/DR: operand size is 32 outside 64-bit mode, prefixes ignored.
        const CTRL = 1 << 8;
    }
}

/// One opcode table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The operation.
    pub op: Op,
    /// Destination operand.
    pub dst: Loc,
    /// Source operand.
    pub src: Loc,
    /// Third operand (shift count, IMUL immediate, RET imm16 ...).
    pub src2: Loc,
    /// Attributes.
    pub attr: Attr,
}

/// The result of the first-level lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Fully described by the opcode.
    Insn(Entry),
    /// ModRM.reg (and mod) select the instruction.
    Group(Group),
    /// Not emulated.
    Unsupported,
}

/// Opcode groups (SDM Vol. 2 Table A-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// 80-83: ALU r/m, imm. The field is the immediate kind and byte-ness.
    G1 { byte: bool, src: Loc },
    /// 8F: POP r/m.
    G1a,
    /// C0/C1/D0-D3: shifts; the field is the count operand.
    G2 { byte: bool, count: Loc },
    /// F6/F7.
    G3 { byte: bool },
    /// FE.
    G4,
    /// FF.
    G5,
    /// C6/C7: MOV r/m, imm.
    G11 { byte: bool },
    /// 0F 00: only LTR (/3) is emulated.
    G6,
    /// 0F 01.
    G7,
    /// 0F BA: BT* r/m, imm8.
    G8,
    /// 0F C7: CMPXCHG8B/16B.
    G9,
    /// 0F AE: CLFLUSH and fences.
    G15,
    /// 0F 18-0F 1F: hint NOPs / prefetch.
    Hint,
}

const fn e(op: Op, dst: Loc, src: Loc, attr: Attr) -> Slot {
    Slot::Insn(Entry {
        op,
        dst,
        src,
        src2: Loc::None,
        attr,
    })
}

const fn e3(op: Op, dst: Loc, src: Loc, src2: Loc, attr: Attr) -> Slot {
    Slot::Insn(Entry {
        op,
        dst,
        src,
        src2,
        attr,
    })
}

const N: Attr = Attr::empty();
const B: Attr = Attr::BYTE;
const M: Attr = Attr::MODRM;
const BM: Attr = Attr::BYTE.union(Attr::MODRM);
const ML: Attr = Attr::MODRM.union(Attr::LOCK);
const BML: Attr = BM.union(Attr::LOCK);
const D64: Attr = Attr::DEF64;
const F64: Attr = Attr::FORCE64;

/// The one-byte opcode map (port of `opcode_table`).
pub const fn one_byte(op: u8, is64: bool) -> Slot {
    use crate::ops::Seg;
    use Loc::*;
    let no64 = Attr::NO64;
    match op {
        0x00..=0x3f if op & 7 < 6 => {
            let alu = Op::Alu(AluOp::from_index(op >> 3));
            // CMP never writes, so LOCK is not allowed on it.
            let lock = if op >> 3 == 7 { M } else { ML };
            let block = if op >> 3 == 7 { BM } else { BML };
            match op & 7 {
                0 => e(alu, Rm, Reg, block),
                1 => e(alu, Rm, Reg, lock),
                2 => e(alu, Reg, Rm, BM),
                3 => e(alu, Reg, Rm, M),
                4 => e(alu, Acc, ImmU8, B),
                _ => e(alu, Acc, Imm, N),
            }
        }
        0x06 => e(Op::PushSeg(Seg::Es), None, None, no64),
        0x07 => e(Op::PopSeg(Seg::Es), None, None, no64),
        0x0e => e(Op::PushSeg(Seg::Cs), None, None, no64),
        0x16 => e(Op::PushSeg(Seg::Ss), None, None, no64),
        0x17 => e(Op::PopSeg(Seg::Ss), None, None, no64),
        0x1e => e(Op::PushSeg(Seg::Ds), None, None, no64),
        0x1f => e(Op::PopSeg(Seg::Ds), None, None, no64),
        0x40..=0x47 if !is64 => e(Op::Inc, OpReg, None, N),
        0x48..=0x4f if !is64 => e(Op::Dec, OpReg, None, N),
        0x50..=0x57 => e(Op::Push, None, OpReg, D64),
        0x58..=0x5f => e(Op::Pop, OpReg, None, D64),
        0x60 => e(Op::Pusha, None, None, no64),
        0x61 => e(Op::Popa, None, None, no64),
        0x63 if is64 => e(Op::Movsx, Reg, RmSized(crate::mode::Size::S32), M),
        0x68 => e(Op::Push, None, Imm, D64),
        0x69 => e3(Op::Imul, Reg, Rm, Imm, M),
        0x6a => e(Op::Push, None, ImmS8, D64),
        0x6b => e3(Op::Imul, Reg, Rm, ImmS8, M),
        0x6c => e(Op::Str(StrOp::Ins), None, None, B),
        0x6d => e(Op::Str(StrOp::Ins), None, None, N),
        0x6e => e(Op::Str(StrOp::Outs), None, None, B),
        0x6f => e(Op::Str(StrOp::Outs), None, None, N),
        0x70..=0x7f => e(Op::Jcc(Cond::from_low_nibble(op)), None, Rel8, F64),
        0x80 => Slot::Group(Group::G1 {
            byte: true,
            src: ImmU8,
        }),
        0x81 => Slot::Group(Group::G1 {
            byte: false,
            src: Imm,
        }),
        0x82 if !is64 => Slot::Group(Group::G1 {
            byte: true,
            src: ImmU8,
        }),
        0x83 => Slot::Group(Group::G1 {
            byte: false,
            src: ImmS8,
        }),
        0x84 => e(Op::Test, Rm, Reg, BM),
        0x85 => e(Op::Test, Rm, Reg, M),
        0x86 => e(Op::Xchg, Rm, Reg, BML),
        0x87 => e(Op::Xchg, Rm, Reg, ML),
        0x88 => e(Op::Mov, Rm, Reg, BM),
        0x89 => e(Op::Mov, Rm, Reg, M),
        0x8a => e(Op::Mov, Reg, Rm, BM),
        0x8b => e(Op::Mov, Reg, Rm, M),
        0x8c => e(Op::MovFromSeg, Rm, None, M),
        0x8d => e(Op::Lea, Reg, MemOnly, M),
        0x8e => e(Op::MovToSeg, None, RmSized(crate::mode::Size::S16), M),
        0x8f => Slot::Group(Group::G1a),
        0x90 => e(Op::Xchg, OpReg, Acc, N),
        0x91..=0x97 => e(Op::Xchg, OpReg, Acc, N),
        0x98 => e(Op::Cbw, None, None, N),
        0x99 => e(Op::Cwd, None, None, N),
        0x9a => e(Op::CallFar, None, FarPtr, no64),
        0x9c => e(Op::Pushf, None, None, D64),
        0x9d => e(Op::Popf, None, None, D64),
        0x9e => e(Op::Sahf, None, None, N),
        0x9f => e(Op::Lahf, None, None, N),
        0xa0 => e(Op::Mov, Acc, MemAbs, B),
        0xa1 => e(Op::Mov, Acc, MemAbs, N),
        0xa2 => e(Op::Mov, MemAbs, Acc, B),
        0xa3 => e(Op::Mov, MemAbs, Acc, N),
        0xa4 => e(Op::Str(StrOp::Movs), None, None, B),
        0xa5 => e(Op::Str(StrOp::Movs), None, None, N),
        0xa6 => e(Op::Str(StrOp::Cmps), None, None, B),
        0xa7 => e(Op::Str(StrOp::Cmps), None, None, N),
        0xa8 => e(Op::Test, Acc, ImmU8, B),
        0xa9 => e(Op::Test, Acc, Imm, N),
        0xaa => e(Op::Str(StrOp::Stos), None, None, B),
        0xab => e(Op::Str(StrOp::Stos), None, None, N),
        0xac => e(Op::Str(StrOp::Lods), None, None, B),
        0xad => e(Op::Str(StrOp::Lods), None, None, N),
        0xae => e(Op::Str(StrOp::Scas), None, None, B),
        0xaf => e(Op::Str(StrOp::Scas), None, None, N),
        0xb0..=0xb7 => e(Op::Mov, OpReg, ImmU8, B),
        0xb8..=0xbf => e(Op::Mov, OpReg, ImmFull, N),
        0xc0 => Slot::Group(Group::G2 {
            byte: true,
            count: ImmU8,
        }),
        0xc1 => Slot::Group(Group::G2 {
            byte: false,
            count: ImmU8,
        }),
        0xc2 => e(Op::Ret, None, Imm16, F64),
        0xc3 => e(Op::Ret, None, None, F64),
        // LES/LDS; in 64-bit mode (and with mod = 11) the VEX prefixes.
        0xc4 if !is64 => e(Op::LoadFarPtr(Seg::Es), Reg, MemOnly, M),
        0xc5 if !is64 => e(Op::LoadFarPtr(Seg::Ds), Reg, MemOnly, M),
        0xc6 => Slot::Group(Group::G11 { byte: true }),
        0xc7 => Slot::Group(Group::G11 { byte: false }),
        0xc8 => e3(Op::Enter, None, Imm16, ImmU8, D64),
        0xc9 => e(Op::Leave, None, None, D64),
        0xca => e(Op::RetFar, None, Imm16, N),
        0xcb => e(Op::RetFar, None, None, N),
        0xcc => e(Op::Int(IntKind::Int3), None, None, N),
        0xcd => e(Op::Int(IntKind::IntN), None, ImmU8, N),
        0xce => e(Op::Int(IntKind::Into), None, None, no64),
        0xcf => e(Op::Iret, None, None, N),
        0xd0 => Slot::Group(Group::G2 {
            byte: true,
            count: One,
        }),
        0xd1 => Slot::Group(Group::G2 {
            byte: false,
            count: One,
        }),
        0xd2 => Slot::Group(Group::G2 {
            byte: true,
            count: Cl,
        }),
        0xd3 => Slot::Group(Group::G2 {
            byte: false,
            count: Cl,
        }),
        0xd7 => e(Op::Xlat, None, None, B),
        0xe0 => e(Op::Loop(LoopKind::Ne), None, Rel8, F64),
        0xe1 => e(Op::Loop(LoopKind::E), None, Rel8, F64),
        0xe2 => e(Op::Loop(LoopKind::Always), None, Rel8, F64),
        0xe3 => e(Op::Loop(LoopKind::Jcxz), None, Rel8, F64),
        0xe4 => e(Op::In, Acc, ImmU8, B),
        0xe5 => e(Op::In, Acc, ImmU8, N),
        0xe6 => e(Op::Out, ImmU8, Acc, B),
        0xe7 => e(Op::Out, ImmU8, Acc, N),
        0xe8 => e(Op::Call, None, Rel, F64),
        0xe9 => e(Op::Jmp, None, Rel, F64),
        0xea => e(Op::JmpFar, None, FarPtr, no64),
        0xeb => e(Op::Jmp, None, Rel8, F64),
        0xec => e(Op::In, Acc, Dx, B),
        0xed => e(Op::In, Acc, Dx, N),
        0xee => e(Op::Out, Dx, Acc, B),
        0xef => e(Op::Out, Dx, Acc, N),
        0xf4 => e(Op::Hlt, None, None, Attr::PRIV),
        0xf5 => e(Op::Cmc, None, None, N),
        0xf6 => Slot::Group(Group::G3 { byte: true }),
        0xf7 => Slot::Group(Group::G3 { byte: false }),
        0xf8 => e(Op::Clc, None, None, N),
        0xf9 => e(Op::Stc, None, None, N),
        0xfa => e(Op::Cli, None, None, N),
        0xfb => e(Op::Sti, None, None, N),
        0xfc => e(Op::Cld, None, None, N),
        0xfd => e(Op::Std, None, None, N),
        0xfe => Slot::Group(Group::G4),
        0xff => Slot::Group(Group::G5),
        _ => Slot::Unsupported,
    }
}

/// The two-byte (0F xx) opcode map (port of `twobyte_table`).
pub const fn two_byte(op: u8) -> Slot {
    use crate::mode::Size;
    use crate::ops::Seg;
    use Loc::*;
    let ctrl = Attr::MODRM.union(Attr::PRIV).union(Attr::CTRL);
    match op {
        0x00 => Slot::Group(Group::G6),
        0x01 => Slot::Group(Group::G7),
        0x05 => e(Op::Syscall, None, None, N),
        0x06 => e(Op::Clts, None, None, Attr::PRIV),
        0x08 | 0x09 => e(Op::Nop, None, None, Attr::PRIV),
        0x0d => Slot::Group(Group::Hint),
        0x18..=0x1f => Slot::Group(Group::Hint),
        0x20 => e(Op::MovFromCr, Rm, None, ctrl),
        0x21 => e(Op::MovFromDr, Rm, None, ctrl),
        0x22 => e(Op::MovToCr, None, Rm, ctrl),
        0x23 => e(Op::MovToDr, None, Rm, ctrl),
        0x30 => e(Op::Wrmsr, None, None, Attr::PRIV),
        0x32 => e(Op::Rdmsr, None, None, Attr::PRIV),
        0x34 => e(Op::Sysenter, None, None, N),
        0x35 => e(Op::Sysexit, None, None, N),
        0x40..=0x4f => e(Op::Cmovcc(Cond::from_low_nibble(op)), Reg, Rm, M),
        0x80..=0x8f => e(Op::Jcc(Cond::from_low_nibble(op)), None, Rel, F64),
        0x90..=0x9f => e(Op::Setcc(Cond::from_low_nibble(op)), Rm, None, BM),
        0xa0 => e(Op::PushSeg(Seg::Fs), None, None, D64),
        0xa1 => e(Op::PopSeg(Seg::Fs), None, None, D64),
        0xa3 => e(Op::Bit(BitOp::Bt), Rm, Reg, M),
        0xa4 => e3(Op::Shld, Rm, Reg, ImmU8, M),
        0xa5 => e3(Op::Shld, Rm, Reg, Cl, M),
        0xa8 => e(Op::PushSeg(Seg::Gs), None, None, D64),
        0xa9 => e(Op::PopSeg(Seg::Gs), None, None, D64),
        0xab => e(Op::Bit(BitOp::Bts), Rm, Reg, ML),
        0xac => e3(Op::Shrd, Rm, Reg, ImmU8, M),
        0xad => e3(Op::Shrd, Rm, Reg, Cl, M),
        0xae => Slot::Group(Group::G15),
        0xaf => e(Op::Imul, Reg, Rm, M),
        0xb0 => e(Op::Cmpxchg, Rm, Reg, BML),
        0xb1 => e(Op::Cmpxchg, Rm, Reg, ML),
        0xb2 => e(Op::LoadFarPtr(Seg::Ss), Reg, MemOnly, M),
        0xb3 => e(Op::Bit(BitOp::Btr), Rm, Reg, ML),
        0xb4 => e(Op::LoadFarPtr(Seg::Fs), Reg, MemOnly, M),
        0xb5 => e(Op::LoadFarPtr(Seg::Gs), Reg, MemOnly, M),
        0xb6 => e(Op::Movzx, Reg, RmSized(Size::S8), M),
        0xb7 => e(Op::Movzx, Reg, RmSized(Size::S16), M),
        0xba => Slot::Group(Group::G8),
        0xbb => e(Op::Bit(BitOp::Btc), Rm, Reg, ML),
        0xbc => e(Op::Bsf, Reg, Rm, M),
        0xbd => e(Op::Bsr, Reg, Rm, M),
        0xbe => e(Op::Movsx, Reg, RmSized(Size::S8), M),
        0xbf => e(Op::Movsx, Reg, RmSized(Size::S16), M),
        0xc0 => e(Op::Xadd, Rm, Reg, BML),
        0xc1 => e(Op::Xadd, Rm, Reg, ML),
        0xc3 => e(Op::Mov, MemOnly, Reg, M),
        0xc7 => Slot::Group(Group::G9),
        0xc8..=0xcf => e(Op::Bswap, OpReg, None, N),
        _ => Slot::Unsupported,
    }
}

/// Resolve a group by its ModRM byte (reg field, and mod = 3 for the
/// register-only forms). Port of `group_table` / `group2_table`.
pub const fn group(g: Group, modrm: u8) -> Slot {
    use Loc::*;
    let reg = (modrm >> 3) & 7;
    let is_reg = modrm >> 6 == 3;
    let rm = modrm & 7;
    match g {
        Group::G1 { byte, src } => {
            let cmp = reg == 7;
            let mut attr = if byte { BM } else { M };
            if !cmp {
                attr = attr.union(Attr::LOCK);
            }
            e(Op::Alu(AluOp::from_index(reg)), Rm, src, attr)
        }
        Group::G1a if reg == 0 => e(Op::Pop, Rm, None, M.union(D64)),
        Group::G2 { byte, count } => {
            let op = match reg {
                0 => ShiftOp::Rol,
                1 => ShiftOp::Ror,
                2 => ShiftOp::Rcl,
                3 => ShiftOp::Rcr,
                4 | 6 => ShiftOp::Shl,
                5 => ShiftOp::Shr,
                _ => ShiftOp::Sar,
            };
            e(Op::Shift(op), Rm, count, if byte { BM } else { M })
        }
        Group::G3 { byte } => {
            let a = if byte { BM } else { M };
            let imm = if byte { ImmU8 } else { Imm };
            match reg {
                0 | 1 => e(Op::Test, Rm, imm, a),
                2 => e(Op::Not, Rm, None, a.union(Attr::LOCK)),
                3 => e(Op::Neg, Rm, None, a.union(Attr::LOCK)),
                4 => e(Op::Mul, None, Rm, a),
                5 => e(Op::Imul1, None, Rm, a),
                6 => e(Op::Div, None, Rm, a),
                _ => e(Op::Idiv, None, Rm, a),
            }
        }
        Group::G4 => match reg {
            0 => e(Op::Inc, Rm, None, BML),
            1 => e(Op::Dec, Rm, None, BML),
            _ => Slot::Unsupported,
        },
        Group::G5 => match reg {
            0 => e(Op::Inc, Rm, None, ML),
            1 => e(Op::Dec, Rm, None, ML),
            2 => e(Op::CallAbs, None, Rm, M.union(F64)),
            3 => e(Op::CallFarMem, None, MemOnly, M),
            4 => e(Op::JmpAbs, None, Rm, M.union(F64)),
            5 => e(Op::JmpFarMem, None, MemOnly, M),
            6 => e(Op::Push, None, Rm, M.union(D64)),
            _ => Slot::Unsupported,
        },
        Group::G11 { byte } if reg == 0 => {
            if byte {
                e(Op::Mov, Rm, ImmU8, BM)
            } else {
                e(Op::Mov, Rm, Imm, M)
            }
        }
        // LTR: the CPL and mode checks come from the instruction (#UD in
        // real and virtual-8086 mode before the CPL test), not Attr::PRIV.
        Group::G6 if reg == 3 => e(Op::Ltr, None, RmSized(crate::mode::Size::S16), M),
        Group::G7 => match (reg, is_reg) {
            (2, false) => e(Op::Lgdt, None, MemOnly, M.union(Attr::PRIV)),
            (3, false) => e(Op::Lidt, None, MemOnly, M.union(Attr::PRIV)),
            (4, _) => e(Op::Smsw, Rm, None, M),
            (6, _) => e(
                Op::Lmsw,
                None,
                RmSized(crate::mode::Size::S16),
                M.union(Attr::PRIV),
            ),
            (7, false) => e(Op::Invlpg, None, MemOnly, M.union(Attr::PRIV)),
            (0, true) | (3, true) if rm == 1 => e(Op::Vmcall, None, None, M),
            _ => Slot::Unsupported,
        },
        Group::G8 => match reg {
            4 => e(Op::Bit(BitOp::Bt), Rm, ImmU8, M),
            5 => e(Op::Bit(BitOp::Bts), Rm, ImmU8, ML),
            6 => e(Op::Bit(BitOp::Btr), Rm, ImmU8, ML),
            7 => e(Op::Bit(BitOp::Btc), Rm, ImmU8, ML),
            _ => Slot::Unsupported,
        },
        Group::G9 if reg == 1 && !is_reg => e(Op::Cmpxchg8b16b, MemOnly, None, ML),
        Group::G15 if reg == 7 && !is_reg => e(Op::Nop, None, MemOnly, M),
        Group::Hint => e(Op::Nop, None, Rm, M),
        _ => Slot::Unsupported,
    }
}

// Evaluated at compile time only (an out-of-range index would be a build
// error); no guest byte reaches this indexing.
#[allow(clippy::indexing_slicing)]
const fn build(map: u8) -> [Slot; 256] {
    let mut t = [Slot::Unsupported; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match map {
            0 => one_byte(i as u8, false),
            1 => one_byte(i as u8, true),
            _ => two_byte(i as u8),
        };
        i += 1;
    }
    t
}

/// The one-byte map outside 64-bit mode, built at compile time.
pub static ONE_BYTE_LEGACY: [Slot; 256] = build(0);
/// The one-byte map in 64-bit mode.
pub static ONE_BYTE_64: [Slot; 256] = build(1);
/// The 0F map.
pub static TWO_BYTE: [Slot; 256] = build(2);

/// Look up `op` in the one-byte (`two` = false) or 0F map.
pub fn lookup(op: u8, two: bool, is64: bool) -> Slot {
    let t = match (two, is64) {
        (true, _) => &TWO_BYTE,
        (false, true) => &ONE_BYTE_64,
        (false, false) => &ONE_BYTE_LEGACY,
    };
    t.get(usize::from(op)).copied().unwrap_or(Slot::Unsupported)
}
