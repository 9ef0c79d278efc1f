//! Stack instructions: PUSH, POP, PUSH/POP Sreg, PUSHA, POPA, PUSHF, POPF,
//! LEAVE.
//!
//! Ports `emulate_push`, `emulate_pop`, `emulate_popf`, `emulate_pusha`,
//! `emulate_popa` and `emulate_push_sreg`/`emulate_pop_sreg` of
//! kvm_emulate.c. The stack address size is 64 bits in 64-bit mode and the
//! mode's default otherwise. POPF follows SDM Vol. 2 "POPF": IOPL changes only
//! at CPL 0, IF only when CPL <= IOPL, VM/VIF/VIP never, RF is cleared.

use super::{Exec, GP0, InterruptShadow, R, fault};
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Seg};
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(crate) fn push(&mut self, size: Size, v: u64) -> R<()> {
        let ss = self.stack_size();
        let sp = ss.trunc(self.gpr(Gpr::Rsp, ss).wrapping_sub(size.bytes() as u64));
        self.write_seg(Seg::Ss, sp, size, v)?;
        self.set_gpr(Gpr::Rsp, ss, sp);
        Ok(())
    }

    pub(crate) fn pop(&mut self, size: Size) -> R<u64> {
        let ss = self.stack_size();
        let sp = self.gpr(Gpr::Rsp, ss);
        let v = self.read_seg(Seg::Ss, sp, size)?;
        self.set_gpr(Gpr::Rsp, ss, ss.trunc(sp.wrapping_add(size.bytes() as u64)));
        Ok(v)
    }

    pub(super) fn push_op(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        self.push(self.osz(), v)
    }

    pub(super) fn pop_op(&mut self) -> R<()> {
        let v = self.pop(self.osz())?;
        // A memory destination based on RSP uses the incremented RSP.
        self.write_op(self.insn.dst, v)
    }

    pub(super) fn push_seg(&mut self, seg: Seg) -> R<()> {
        let sel = u64::from(self.ops.segment_selector(seg));
        self.push(self.osz(), sel)
    }

    pub(super) fn pop_seg(&mut self, seg: Seg) -> R<()> {
        let v = self.pop(self.osz())?;
        self.load_sreg(seg, v as u16)?;
        if seg == Seg::Ss {
            self.shadow = InterruptShadow::MovSs;
        }
        Ok(())
    }

    pub(super) fn pusha(&mut self) -> R<()> {
        let size = self.osz();
        let sp = self.gpr(Gpr::Rsp, size);
        for r in [Gpr::Rax, Gpr::Rcx, Gpr::Rdx, Gpr::Rbx] {
            let v = self.gpr(r, size);
            self.push(size, v)?;
        }
        self.push(size, sp)?;
        for r in [Gpr::Rbp, Gpr::Rsi, Gpr::Rdi] {
            let v = self.gpr(r, size);
            self.push(size, v)?;
        }
        Ok(())
    }

    pub(super) fn popa(&mut self) -> R<()> {
        let size = self.osz();
        for r in [
            Gpr::Rdi,
            Gpr::Rsi,
            Gpr::Rbp,
            Gpr::Rsp,
            Gpr::Rbx,
            Gpr::Rdx,
            Gpr::Rcx,
            Gpr::Rax,
        ] {
            let v = self.pop(size)?;
            if r != Gpr::Rsp {
                self.set_gpr(r, size, v);
            }
        }
        Ok(())
    }

    fn iopl(&self) -> u8 {
        ((self.regs.rflags >> 12) & 3) as u8
    }

    pub(super) fn pushf(&mut self) -> R<()> {
        if self.mode == Mode::Vm86 && self.iopl() < 3 {
            return fault(GP0);
        }
        let v = self.regs.rflags & !(Rflags::VM | Rflags::RF).bits();
        self.push(self.osz(), v)
    }

    pub(super) fn popf(&mut self) -> R<()> {
        if self.mode == Mode::Vm86 && self.iopl() < 3 {
            return fault(GP0);
        }
        let size = self.osz();
        let v = self.pop(size)?;
        let mut mask = (Rflags::CF
            | Rflags::PF
            | Rflags::AF
            | Rflags::ZF
            | Rflags::SF
            | Rflags::TF
            | Rflags::DF
            | Rflags::OF
            | Rflags::NT
            | Rflags::AC
            | Rflags::ID)
            .bits();
        let cpl = self.cpl();
        if cpl == 0 && self.mode != Mode::Vm86 {
            mask |= Rflags::IOPL.bits();
        }
        if cpl <= self.iopl() || self.mode == Mode::Vm86 {
            mask |= Rflags::IF.bits();
        }
        mask &= size.mask();
        self.regs.rflags =
            (self.regs.rflags & !mask & !Rflags::RF.bits()) | (v & mask) | Rflags::FIXED.bits();
        Ok(())
    }

    pub(super) fn leave(&mut self) -> R<()> {
        let ss = self.stack_size();
        let bp = self.gpr(Gpr::Rbp, ss);
        self.set_gpr(Gpr::Rsp, ss, bp);
        let v = self.pop(self.osz())?;
        self.set_gpr(Gpr::Rbp, self.osz(), v);
        Ok(())
    }
}
