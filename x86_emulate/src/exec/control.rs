//! Control transfer: Jcc, JMP, CALL, RET (near), LOOP family, JrCXZ (far
//! transfers: `far.rs`).
//!
//! Ports the `jmp`, `jcc`, `call`, `ret` cases of kvm_emulate.c. The target
//! is truncated to the operand size (SDM Vol. 2 "JMP": EIP/IP wrap) and
//! must be canonical in 64-bit mode, else #GP(0).
//! Near branches in 64-bit mode always have a 64-bit operand size (Intel).

use super::{Exec, GP0, R, fault};
use crate::decode::table::LoopKind;
use crate::flags::{Cond, Rflags};
use crate::ops::EmulatorOps;
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn branch_to(&mut self, target: u64) -> R<()> {
        let t = self.osz().trunc(target);
        if self.mode.is_64() && ((t as i64) << 16) >> 16 != t as i64 {
            return fault(GP0);
        }
        self.next_rip = t;
        Ok(())
    }

    fn rel_target(&mut self) -> R<u64> {
        let rel = self.read_op(self.insn.src)?;
        Ok(self.next_rip.wrapping_add(rel))
    }

    pub(super) fn jcc(&mut self, c: Cond) -> R<()> {
        let t = self.rel_target()?;
        if c.eval(self.rflags()) {
            self.branch_to(t)
        } else {
            Ok(())
        }
    }

    pub(super) fn jmp_rel(&mut self) -> R<()> {
        let t = self.rel_target()?;
        self.branch_to(t)
    }

    pub(super) fn jmp_abs(&mut self) -> R<()> {
        let t = self.read_op(self.insn.src)?;
        self.branch_to(t)
    }

    pub(super) fn call_rel(&mut self) -> R<()> {
        let t = self.rel_target()?;
        let ret = self.next_rip;
        self.push(self.osz(), ret)?;
        self.branch_to(t)
    }

    pub(super) fn call_abs(&mut self) -> R<()> {
        let t = self.read_op(self.insn.src)?;
        let ret = self.next_rip;
        self.push(self.osz(), ret)?;
        self.branch_to(t)
    }

    pub(super) fn ret(&mut self) -> R<()> {
        let t = self.pop(self.osz())?;
        let extra = self.read_op(self.insn.src)?;
        let ss = self.stack_size();
        let sp = ss.trunc(self.gpr(Gpr::Rsp, ss).wrapping_add(extra));
        self.set_gpr(Gpr::Rsp, ss, sp);
        self.branch_to(t)
    }

    pub(super) fn loop_(&mut self, k: LoopKind) -> R<()> {
        let asz = self.insn.addr_size;
        let t = self.rel_target()?;
        let zf = self.rflags() & Rflags::ZF.bits() != 0;
        let take = if k == LoopKind::Jcxz {
            self.gpr(Gpr::Rcx, asz) == 0
        } else {
            let c = asz.trunc(self.gpr(Gpr::Rcx, asz).wrapping_sub(1));
            self.set_gpr(Gpr::Rcx, asz, c);
            c != 0
                && match k {
                    LoopKind::Ne => !zf,
                    LoopKind::E => zf,
                    _ => true,
                }
        };
        if take { self.branch_to(t) } else { Ok(()) }
    }
}
