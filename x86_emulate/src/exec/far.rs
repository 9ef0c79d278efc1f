//! Far JMP/CALL/RET, ENTER and INT n/INT3/INTO.
//!
//! kvm_emulate.c decoded 9A, CC, CD and CE but had no execute case for
//! them (RIP was advanced and nothing happened); here they follow the SDM
//! Vol. 2 pseudo-code. Far transfers to code segments check and load CS
//! (and for a RET to an outer privilege level SS) through
//! [`super::segment`]; call gates, task gates and TSSs (task switches) are
//! unhandleable. INT is emulated in real-address mode only (the IVT at
//! IDTR.base); elsewhere it is unhandleable, since delivery through the IDT
//! is the caller's business.

use super::segment::Transfer;
use super::{Exec, GP0, R, Stop, fault};
use crate::decode::table::IntKind;
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Seg, SegmentCache};
use crate::regs::Gpr;

/// Where a far transfer goes: the new CS cache, the mode it selects and
/// the instruction pointer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FarTarget {
    pub cs: SegmentCache,
    pub mode: Mode,
    pub ip: u64,
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// Protected mode (or IA-32e mode): CS loads go through descriptors.
    pub(crate) fn protected(&self) -> bool {
        !matches!(self.mode, Mode::Real | Mode::Vm86)
    }

    /// Check a far JMP/CALL target `sel:off` (SDM "JMP"/"CALL", far,
    /// to a conforming or non-conforming code segment): #GP(0) for a null
    /// selector or an offset beyond the limit (non-canonical in 64-bit
    /// mode), the descriptor checks of [`Exec::segment_for`].
    pub(crate) fn far_target(&mut self, sel: u16, off: u64, transfer: Transfer) -> R<FarTarget> {
        let ip = self.osz().trunc(off);
        let cpl = self.cpl();
        let cs = self.segment_for(Seg::Cs, sel, cpl, transfer, false)?;
        let mode = self.mode_for_cs(&cs)?;
        let ip = if self.protected() {
            self.check_target(&cs, mode, ip)?
        } else {
            ip
        };
        Ok(FarTarget { cs, mode, ip })
    }

    /// Load CS and continue at the target: the instruction's last step.
    pub(crate) fn go_far(&mut self, t: FarTarget) -> R<()> {
        self.ops.set_segment(Seg::Cs, t.cs)?;
        self.new_mode = t.mode;
        self.next_rip = t.ip;
        Ok(())
    }

    /// CALL ptr16:16/32 (9A).
    pub(super) fn call_far_ptr(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        self.far_call((v >> 32) as u16, v & 0xffff_ffff)
    }

    /// JMP ptr16:16/32 (EA).
    pub(super) fn jmp_far(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        let t = self.far_target((v >> 32) as u16, v & 0xffff_ffff, Transfer::CallJmp)?;
        self.go_far(t)
    }

    /// Far CALL: check the target, push CS and the return address (the
    /// operand size wide), then load CS.
    fn far_call(&mut self, sel: u16, off: u64) -> R<()> {
        let size = self.osz();
        let t = self.far_target(sel, off, Transfer::CallJmp)?;
        let cs = u64::from(self.ops.segment_selector(Seg::Cs));
        let ret = self.next_rip;
        self.push(size, cs)?;
        self.push(size, ret)?;
        self.go_far(t)
    }

    /// The far pointer m16:16/32/64 of the memory operand: the offset
    /// (operand size), then the selector after it. Returns (selector,
    /// offset).
    pub(super) fn read_far_ptr(&mut self) -> R<(u16, u64)> {
        let size = self.osz();
        let m = self.insn.mem.ok_or(Stop::Form)?;
        let ea = self.effective_address(&m);
        let off = self.read_seg(m.seg, ea, size)?;
        let sel_off = self
            .insn
            .addr_size
            .trunc(ea.wrapping_add(size.bytes() as u64));
        let sel = self.read_seg(m.seg, sel_off, Size::S16)? as u16;
        Ok((sel, off))
    }

    /// CALL/JMP m16:16/32/64 (FF /3, FF /5): offset, then the selector.
    pub(super) fn far_mem(&mut self, call: bool) -> R<()> {
        let (sel, off) = self.read_far_ptr()?;
        if call {
            self.far_call(sel, off)
        } else {
            let t = self.far_target(sel, off, Transfer::CallJmp)?;
            self.go_far(t)
        }
    }

    /// RET far (CB, CA imm16; SDM "RET"): to the same privilege level, or
    /// (RPL > CPL) to an outer one with SS:RSP popped too and ES, FS, GS
    /// and DS nulled when the new CPL may not use them.
    pub(super) fn ret_far(&mut self) -> R<()> {
        let size = self.osz();
        let ip = self.pop(size)?;
        let sel = self.pop(size)? as u16;
        let extra = self.read_op(self.insn.src)?;
        let ss = self.stack_size();
        let sp = ss.trunc(self.gpr(Gpr::Rsp, ss).wrapping_add(extra));
        self.set_gpr(Gpr::Rsp, ss, sp);
        let cpl = self.cpl();
        let rpl = (sel & 3) as u8;
        let t = self.far_target(sel, ip, Transfer::Ret)?;
        if !self.protected() || rpl <= cpl {
            return self.go_far(t);
        }
        let new_sp = self.pop(size)?;
        let ss_sel = self.pop(size)? as u16;
        let ss = self.segment_for(Seg::Ss, ss_sel, rpl, Transfer::Data, t.mode.is_64())?;
        self.finish_return(t, Some((ss, new_sp.wrapping_add(extra))), true)
    }

    /// The end of a far RET or IRET to `t` (SDM "RET"/"IRET"): CS loaded;
    /// with `stack`, SS and RSP (its width from the new mode and SS.B) too;
    /// and for a return to an outer privilege level (RETURN-TO-OUTER-
    /// PRIVILEGE-LEVEL), each of ES, FS, GS and DS that holds a data or
    /// non-conforming code segment with DPL < the new CPL becomes null
    /// (selector 0, unusable; base and limit kept).
    pub(crate) fn finish_return(
        &mut self,
        t: FarTarget,
        stack: Option<(SegmentCache, u64)>,
        outer: bool,
    ) -> R<()> {
        let cpl = (t.cs.selector & 3) as u8;
        let mut nulls = [None; 4];
        if outer {
            for (slot, seg) in nulls.iter_mut().zip([Seg::Es, Seg::Fs, Seg::Gs, Seg::Ds]) {
                let cur = self.ops.get_segment(seg)?;
                let conforming_code = cur.typ() & 0xc == 0xc;
                let invalid = !cur.usable() || (cur.dpl() < cpl && !conforming_code);
                if invalid && (cur.usable() || cur.selector != 0) {
                    *slot = Some((
                        seg,
                        SegmentCache {
                            selector: 0,
                            access_rights: cur.access_rights | SegmentCache::UNUSABLE,
                            ..cur
                        },
                    ));
                }
            }
        }
        self.go_far(t)?;
        if let Some((ss, sp)) = stack {
            let width = if t.mode.is_64() {
                Size::S64
            } else if ss.access_rights & (1 << 14) != 0 {
                Size::S32
            } else {
                Size::S16
            };
            self.set_gpr(Gpr::Rsp, width, width.trunc(sp));
            self.ops.set_segment(Seg::Ss, ss)?;
        }
        for (seg, cache) in nulls.into_iter().flatten() {
            self.ops.set_segment(seg, cache)?;
        }
        Ok(())
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
        let t = self.far_target(cs as u16, ip, Transfer::CallJmp)?;
        self.push(Size::S16, flags)?;
        self.push(Size::S16, old_cs)?;
        self.push(Size::S16, ret)?;
        self.regs.rflags &= !(Rflags::IF | Rflags::TF | Rflags::AC).bits();
        self.go_far(FarTarget { ip, ..t })
    }
}
