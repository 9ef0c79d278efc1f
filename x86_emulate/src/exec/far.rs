//! Far CALL/JMP, ENTER, INT n/INT3/INTO and IRET.
//!
//! kvm_emulate.c decoded 9A, CC, CD, CE and CF but had no execute case for
//! them (RIP was advanced and nothing happened); here they follow the SDM
//! Vol. 2 pseudo-code. Far transfers load CS through
//! [`EmulatorOps::load_segment`], which performs the descriptor checks;
//! call gates and task switches are not modelled, so in protected mode a far
//! CALL is left to the ops' `load_segment` verdict. INT and IRET are
//! emulated in real-address mode only (the IVT at IDTR.base); elsewhere they
//! are unhandleable, since delivery through the IDT is the caller's
//! business.

use super::{Exec, GP0, R, Stop, fault};
use crate::decode::table::IntKind;
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Seg};
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// CALL ptr16:16/32 (9A).
    pub(super) fn call_far_ptr(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        self.far_call((v >> 32) as u16, v & 0xffff_ffff)
    }

    fn far_call(&mut self, sel: u16, off: u64) -> R<()> {
        let size = self.osz();
        let cs = u64::from(self.ops.segment_selector(Seg::Cs));
        let ret = self.next_rip;
        // Push before loading CS so a stack fault leaves CS alone.
        let ss = self.stack_size();
        let sp = self.gpr(Gpr::Rsp, ss);
        self.push(size, cs)?;
        self.push(size, ret)?;
        if let Err(e) = self.ops.load_segment(Seg::Cs, sel) {
            self.set_gpr(Gpr::Rsp, ss, sp);
            return Err(Stop::Op(e));
        }
        self.next_rip = size.trunc(off);
        Ok(())
    }

    /// CALL/JMP m16:16/32/64 (FF /3, FF /5): offset, then the selector.
    pub(super) fn far_mem(&mut self, call: bool) -> R<()> {
        let size = self.osz();
        let m = self.insn.mem.ok_or(Stop::Form)?;
        let ea = self.effective_address(&m);
        let off = self.read_seg(m.seg, ea, size)?;
        let sel_off = self
            .insn
            .addr_size
            .trunc(ea.wrapping_add(size.bytes() as u64));
        let sel = self.read_seg(m.seg, sel_off, Size::S16)? as u16;
        if call {
            self.far_call(sel, off)
        } else {
            self.ops.load_segment(Seg::Cs, sel)?;
            self.next_rip = size.trunc(off);
            Ok(())
        }
    }

    /// ENTER imm16, imm8 (SDM Vol. 2 "ENTER").
    pub(super) fn enter(&mut self) -> R<()> {
        let size = self.osz();
        let ss = self.stack_size();
        let alloc = self.read_op(self.insn.src)?;
        let level = self.read_op(self.insn.src2)? % 32;
        let bp = self.gpr(Gpr::Rbp, size);
        self.push(size, bp)?;
        let frame = self.gpr(Gpr::Rsp, ss);
        if level > 0 {
            let mut rbp = self.gpr(Gpr::Rbp, ss);
            for _ in 1..level {
                rbp = ss.trunc(rbp.wrapping_sub(size.bytes() as u64));
                let v = self.read_seg(Seg::Ss, rbp, size)?;
                self.push(size, v)?;
            }
            self.push(size, frame)?;
        }
        self.set_gpr(Gpr::Rbp, size, frame);
        let sp = ss.trunc(self.gpr(Gpr::Rsp, ss).wrapping_sub(alloc));
        self.set_gpr(Gpr::Rsp, ss, sp);
        Ok(())
    }

    /// INT3 / INT n / INTO in real-address mode (SDM Vol. 2 "INT n",
    /// REAL-ADDRESS-MODE): push FLAGS, CS, IP; clear IF, TF, AC; load CS:IP
    /// from the vector table.
    pub(super) fn int(&mut self, kind: IntKind) -> R<()> {
        let vector = match kind {
            IntKind::Int3 => 3,
            IntKind::Into => {
                if self.regs.rflags & Rflags::OF.bits() == 0 {
                    return Ok(());
                }
                4
            }
            IntKind::IntN => self.read_op(self.insn.src)? as u8,
        };
        if self.mode != Mode::Real {
            return Err(Stop::Form);
        }
        let (base, limit) = self.ops.idtr();
        let entry = u64::from(vector) * 4;
        if entry + 3 > u64::from(limit) {
            return fault(GP0);
        }
        let ip = self.read_lin(base.wrapping_add(entry) & 0xffff_ffff, Size::S16)?;
        let cs = self.read_lin(base.wrapping_add(entry + 2) & 0xffff_ffff, Size::S16)?;
        let flags = self.regs.rflags & 0xffff;
        let old_cs = u64::from(self.ops.segment_selector(Seg::Cs));
        let ret = self.next_rip;
        self.push(Size::S16, flags)?;
        self.push(Size::S16, old_cs)?;
        self.push(Size::S16, ret)?;
        self.ops.load_segment(Seg::Cs, cs as u16)?;
        self.regs.rflags &= !(Rflags::IF | Rflags::TF | Rflags::AC).bits();
        self.next_rip = ip;
        Ok(())
    }

    /// IRET in real-address mode (SDM Vol. 2 "IRET", REAL-ADDRESS-MODE).
    pub(super) fn iret(&mut self) -> R<()> {
        if self.mode != Mode::Real {
            return Err(Stop::Form);
        }
        let size = self.osz();
        let ss = self.stack_size();
        let sp = self.gpr(Gpr::Rsp, ss);
        let ip = self.read_seg(Seg::Ss, sp, size)?;
        let step = size.bytes() as u64;
        let cs = self.read_seg(Seg::Ss, ss.trunc(sp.wrapping_add(step)), size)?;
        let fl = self.read_seg(Seg::Ss, ss.trunc(sp.wrapping_add(2 * step)), size)?;
        if size == Size::S32 && ip > 0xffff {
            return fault(GP0);
        }
        self.ops.load_segment(Seg::Cs, cs as u16)?;
        self.set_gpr(Gpr::Rsp, ss, ss.trunc(sp.wrapping_add(3 * step)));
        let f = &mut self.regs.rflags;
        *f = if size == Size::S32 {
            // VM, VIF, VIP are kept (tempEFLAGS AND 257FD5H) OR (EFLAGS AND 1A0000H).
            (fl & 0x25_7fd5) | (*f & 0x1a_0000)
        } else {
            (*f & !0xffff) | (fl & 0xffff)
        } | Rflags::FIXED.bits();
        self.next_rip = ip;
        Ok(())
    }
}
