//! Data movement: MOV, MOVZX, MOVSX/MOVSXD, LEA, SETcc, CMOVcc, CBW/CWD
//! families and XLAT.
//!
//! Ports the `mov:`, `movzx`, `movsx`, `lea:`, `cmov` cases of kvm_emulate.c.
//! CMOVcc with a 32-bit operand clears bits 63:32 of the destination even
//! when the condition is false (SDM Vol. 2 "CMOVcc", 64-bit mode note), a
//! defect of the C driver; its memory source is read either way.

use super::{Exec, R, Stop};
use crate::decode::Operand;
use crate::flags::Cond;
use crate::mode::Size;
use crate::ops::{EmulatorOps, Seg};
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn mov(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        self.write_op(self.insn.dst, v)
    }

    pub(super) fn movx(&mut self, signed: bool) -> R<()> {
        let size = self.osz();
        let (src, ssz) = match self.insn.src {
            Operand::Reg(_, s) | Operand::Mem(s) => (self.read_op(self.insn.src)?, s),
            _ => return Err(Stop::Form),
        };
        let v = if signed {
            size.trunc(ssz.sext(src))
        } else {
            src
        };
        self.write_op(self.insn.dst, v)
    }

    pub(super) fn lea(&mut self) -> R<()> {
        let m = self.insn.mem.ok_or(Stop::Form)?;
        let ea = self.effective_address(&m);
        self.write_op(self.insn.dst, self.osz().trunc(ea))
    }

    pub(super) fn setcc(&mut self, c: Cond) -> R<()> {
        let v = u64::from(c.eval(self.rflags()));
        self.write_op(self.insn.dst, v)
    }

    pub(super) fn cmovcc(&mut self, c: Cond) -> R<()> {
        let size = self.osz();
        let v = self.read_op(self.insn.src)?;
        if c.eval(self.rflags()) {
            self.write_op(self.insn.dst, v)
        } else if size == Size::S32 {
            let d = self.read_op(self.insn.dst)?;
            self.write_op(self.insn.dst, d)
        } else {
            Ok(())
        }
    }

    pub(super) fn cbw(&mut self) -> R<()> {
        let size = self.osz();
        let half = match size {
            Size::S64 => Size::S32,
            Size::S32 => Size::S16,
            _ => Size::S8,
        };
        let v = self.gpr(Gpr::Rax, half);
        self.set_gpr(Gpr::Rax, size, size.trunc(half.sext(v)));
        Ok(())
    }

    pub(super) fn cwd(&mut self) -> R<()> {
        let size = self.osz();
        let neg = self.gpr(Gpr::Rax, size) & size.sign_bit() != 0;
        self.set_gpr(Gpr::Rdx, size, if neg { size.mask() } else { 0 });
        Ok(())
    }

    pub(super) fn xlat(&mut self) -> R<()> {
        let asz = self.insn.addr_size;
        let seg = self.insn.prefixes.seg.unwrap_or(Seg::Ds);
        let off = asz.trunc(
            self.gpr(Gpr::Rbx, asz)
                .wrapping_add(self.gpr(Gpr::Rax, Size::S8)),
        );
        let v = self.read_seg(seg, off, Size::S8)?;
        self.set_gpr(Gpr::Rax, Size::S8, v);
        Ok(())
    }
}
