//! Two-operand arithmetic and logic: ADD OR ADC SBB AND SUB XOR CMP, TEST,
//! INC DEC NOT NEG, XADD, XCHG, CMPXCHG, CMPXCHG8B/16B.
//!
//! Ports the `add:`/`or:`/.../`cmp:` cases and `emulate_grp3`/`emulate_grp45`
//! / `emulate_grp9` of kvm_emulate.c, fixing its defects: CMP and TEST never
//! write back; CMPXCHG compares `accumulator - destination` (SDM Vol. 2
//! "CMPXCHG") and is a real compare-exchange; CMPXCHG16B is not run as 8B.

use super::{Exec, GP0, R, Stop, fault};
use crate::decode::Operand;
use crate::decode::table::{AluOp, Op};
use crate::flags::{self, Rflags, STATUS};
use crate::mode::Size;
use crate::ops::EmulatorOps;
use crate::regs::Gpr;

/// Result and RFLAGS of `dst op src` (SDM "Flags Affected" of each instruction).
pub(crate) fn alu_result(op: AluOp, d: u64, s: u64, rflags: u64, size: Size) -> (u64, u64) {
    let cf = rflags & Rflags::CF.bits() != 0;
    let (r, st) = match op {
        AluOp::Add => flags::add(d, s, false, size),
        AluOp::Adc => flags::add(d, s, cf, size),
        AluOp::Sub | AluOp::Cmp => flags::sub(d, s, false, size),
        AluOp::Sbb => flags::sub(d, s, cf, size),
        AluOp::And => (size.trunc(d & s), flags::logic(d & s, size)),
        AluOp::Or => (size.trunc(d | s), flags::logic(d | s, size)),
        AluOp::Xor => (size.trunc(d ^ s), flags::logic(d ^ s, size)),
    };
    (r, flags::merge(rflags, st, STATUS))
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn alu(&mut self, op: AluOp) -> R<()> {
        let size = self.osz();
        let s = self.read_op(self.insn.src)?;
        if op == AluOp::Cmp {
            let d = self.read_op(self.insn.dst)?;
            let (_, fl) = alu_result(op, d, s, self.rflags(), size);
            self.regs.rflags = fl;
            return Ok(());
        }
        self.rmw(|d, fl| alu_result(op, d, s, fl, size))?;
        Ok(())
    }

    pub(super) fn test(&mut self) -> R<()> {
        let size = self.osz();
        let s = self.read_op(self.insn.src)?;
        let d = self.read_op(self.insn.dst)?;
        self.set_status(flags::logic(d & s, size), STATUS);
        Ok(())
    }

    pub(super) fn unary(&mut self, op: Op) -> R<()> {
        let size = self.osz();
        self.rmw(|d, fl| match op {
            Op::Inc => {
                let (r, st) = flags::add(d, 1, false, size);
                (r, flags::merge(fl, st, STATUS & !Rflags::CF.bits()))
            }
            Op::Dec => {
                let (r, st) = flags::sub(d, 1, false, size);
                (r, flags::merge(fl, st, STATUS & !Rflags::CF.bits()))
            }
            Op::Neg => {
                let (r, st) = flags::sub(0, d, false, size);
                (r, flags::merge(fl, st, STATUS))
            }
            _ => (size.trunc(!d), fl),
        })?;
        Ok(())
    }

    pub(super) fn xadd(&mut self) -> R<()> {
        let size = self.osz();
        let Operand::Reg(sreg, _) = self.insn.src else {
            return Err(Stop::Form);
        };
        let s = self.reg_read(sreg, size);
        if let Operand::Reg(dreg, _) = self.insn.dst {
            // TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP.
            let d = self.reg_read(dreg, size);
            let (r, st) = flags::add(d, s, false, size);
            self.reg_write(sreg, size, d);
            self.reg_write(dreg, size, r);
            self.set_status(st, STATUS);
            self.ops.note_xadd(0);
            return Ok(());
        }
        let la = self.mem_linear(size.bytes(), true)?;
        let old = self.rmw(|d, fl| {
            let (r, st) = flags::add(d, s, false, size);
            (r, flags::merge(fl, st, STATUS))
        })?;
        self.ops.note_xadd(la);
        self.reg_write(sreg, size, old);
        Ok(())
    }

    pub(super) fn xchg(&mut self) -> R<()> {
        let size = self.osz();
        let Operand::Reg(sreg, _) = self.insn.src else {
            return Err(Stop::Form);
        };
        let s = self.reg_read(sreg, size);
        match self.insn.dst {
            Operand::Reg(dreg, _) => {
                let d = self.reg_read(dreg, size);
                self.reg_write(dreg, size, s);
                self.reg_write(sreg, size, d);
                Ok(())
            }
            Operand::Mem(_) => {
                // XCHG with memory is always locked (SDM Vol. 2 "XCHG").
                let la = self.mem_linear(size.bytes(), true)?;
                let mut old = self.read_lin(la, size)?;
                for _ in 0..64 {
                    match self.cmpxchg_lin(la, size, old, s)? {
                        None => {
                            self.reg_write(sreg, size, old);
                            return Ok(());
                        }
                        Some(cur) => old = cur,
                    }
                }
                Err(Stop::Retry)
            }
            _ => Err(Stop::Form),
        }
    }

    pub(super) fn cmpxchg(&mut self) -> R<()> {
        let size = self.osz();
        let s = self.read_op(self.insn.src)?;
        let acc = self.gpr(Gpr::Rax, size);
        match self.insn.dst {
            Operand::Reg(dreg, _) => {
                let d = self.reg_read(dreg, size);
                let (_, st) = flags::sub(acc, d, false, size);
                self.set_status(st, STATUS);
                if acc == d {
                    self.reg_write(dreg, size, s);
                } else {
                    self.set_gpr(Gpr::Rax, size, d);
                }
                Ok(())
            }
            Operand::Mem(_) => {
                let la = self.mem_linear(size.bytes(), true)?;
                match self.cmpxchg_lin(la, size, acc, s)? {
                    None => {
                        let (_, st) = flags::sub(acc, acc, false, size);
                        self.set_status(st, STATUS);
                    }
                    Some(cur) => {
                        let (_, st) = flags::sub(acc, cur, false, size);
                        self.set_status(st, STATUS);
                        self.set_gpr(Gpr::Rax, size, cur);
                    }
                }
                Ok(())
            }
            _ => Err(Stop::Form),
        }
    }

    pub(super) fn cmpxchg8b16b(&mut self) -> R<()> {
        let wide = self.insn.prefixes.rex.w();
        let half = if wide { Size::S64 } else { Size::S32 };
        let la = self.mem_linear(2 * half.bytes(), true)?;
        if wide && la & 15 != 0 {
            return fault(GP0);
        }
        let n = 2 * half.bytes();
        let mut exp = [0u8; 16];
        let mut new = [0u8; 16];
        let lo = self.gpr(Gpr::Rax, half).to_le_bytes();
        let hi = self.gpr(Gpr::Rdx, half).to_le_bytes();
        let nlo = self.gpr(Gpr::Rbx, half).to_le_bytes();
        let nhi = self.gpr(Gpr::Rcx, half).to_le_bytes();
        let hb = half.bytes();
        for i in 0..hb {
            let (Some(e0), Some(e1), Some(n0), Some(n1)) =
                (lo.get(i), hi.get(i), nlo.get(i), nhi.get(i))
            else {
                return Err(Stop::Form);
            };
            if let Some(x) = exp.get_mut(i) {
                *x = *e0;
            }
            if let Some(x) = exp.get_mut(i + hb) {
                *x = *e1;
            }
            if let Some(x) = new.get_mut(i) {
                *x = *n0;
            }
            if let Some(x) = new.get_mut(i + hb) {
                *x = *n1;
            }
        }
        let (Some(e), Some(nw)) = (exp.get_mut(..n), new.get(..n)) else {
            return Err(Stop::Form);
        };
        let ok = self.ops.cmpxchg(la, e, nw)?;
        if ok {
            self.regs.rflags |= Rflags::ZF.bits();
        } else {
            self.regs.rflags &= !Rflags::ZF.bits();
            let mut lo = [0u8; 8];
            let mut hi = [0u8; 8];
            for i in 0..hb {
                if let (Some(d), Some(s)) = (lo.get_mut(i), exp.get(i)) {
                    *d = *s;
                }
                if let (Some(d), Some(s)) = (hi.get_mut(i), exp.get(i + hb)) {
                    *d = *s;
                }
            }
            self.set_gpr(Gpr::Rax, half, u64::from_le_bytes(lo));
            self.set_gpr(Gpr::Rdx, half, u64::from_le_bytes(hi));
        }
        Ok(())
    }
}
