//! IRET/IRETD/IRETQ (CF) in real-address, protected and IA-32e mode.
//!
//! kvm_emulate.c had no IRET; Linux emulates only the real-mode one
//! (`emulate_iret_real`). This follows the SDM Vol. 2 "IRET" pseudo-code:
//! REAL-ADDRESS-MODE, PROTECTED-MODE / IA-32e-MODE with
//! RETURN-TO-SAME-PRIVILEGE-LEVEL and RETURN-TO-OUTER-PRIVILEGE-LEVEL
//! (ES, FS, GS and DS nulled when the new CPL may not use them). Not
//! emulated (unhandleable): a nested-task return (NT = 1 outside IA-32e
//! mode: a task switch), a return to virtual-8086 mode and IRET in
//! virtual-8086 mode. In IA-32e mode NT = 1 is #GP(0).

use super::segment::Transfer;
use super::{Exec, GP0, R, Stop, fault};
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Seg};
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn iret(&mut self) -> R<()> {
        match self.mode {
            Mode::Real => self.iret_real(),
            Mode::Vm86 => Err(Stop::Form),
            _ => self.iret_protected(),
        }
    }

    /// IRET in real-address mode (SDM Vol. 2 "IRET", REAL-ADDRESS-MODE).
    fn iret_real(&mut self) -> R<()> {
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
        let t = self.far_target(cs as u16, ip, Transfer::Ret)?;
        self.set_gpr(Gpr::Rsp, ss, ss.trunc(sp.wrapping_add(3 * step)));
        let f = &mut self.regs.rflags;
        *f = if size == Size::S32 {
            // VM, VIF, VIP are kept (tempEFLAGS AND 257FD5H) OR (EFLAGS AND 1A0000H).
            (fl & 0x25_7fd5) | (*f & 0x1a_0000)
        } else {
            (*f & !0xffff) | (fl & 0xffff)
        } | Rflags::FIXED.bits();
        self.go_far(t)
    }

    /// IRET in protected and IA-32e mode.
    fn iret_protected(&mut self) -> R<()> {
        let long = self.ia32e()?;
        if self.regs.rflags & Rflags::NT.bits() != 0 {
            return if long { fault(GP0) } else { Err(Stop::Form) };
        }
        let size = self.osz();
        let ip = self.pop(size)?;
        let sel = self.pop(size)? as u16;
        let fl = self.pop(size)?;
        let cpl = self.cpl();
        if !long && fl & Rflags::VM.bits() != 0 && cpl == 0 {
            // RETURN-TO-VIRTUAL-8086-MODE.
            return Err(Stop::Form);
        }
        let t = self.far_target(sel, ip, Transfer::Ret)?;
        let rpl = (sel & 3) as u8;
        // Outer privilege, or any IRET from 64-bit mode: SS:RSP are popped.
        let stack = if rpl > cpl || self.mode.is_64() {
            let sp = self.pop(size)?;
            let ss_sel = self.pop(size)? as u16;
            let ss = self.segment_for(Seg::Ss, ss_sel, rpl, Transfer::Data, t.mode.is_64())?;
            Some((ss, sp))
        } else {
            None
        };
        // EFLAGS from tempEFLAGS: the bits the old CPL and IOPL allow.
        let iopl = ((self.regs.rflags >> 12) & 3) as u8;
        let mut mask = (Rflags::CF
            | Rflags::PF
            | Rflags::AF
            | Rflags::ZF
            | Rflags::SF
            | Rflags::TF
            | Rflags::DF
            | Rflags::OF
            | Rflags::NT)
            .bits();
        if size != Size::S16 {
            mask |= (Rflags::RF | Rflags::AC | Rflags::ID).bits();
        }
        if cpl <= iopl {
            mask |= Rflags::IF.bits();
        }
        if cpl == 0 {
            mask |= Rflags::IOPL.bits();
            if size != Size::S16 {
                mask |= (Rflags::VIF | Rflags::VIP).bits();
            }
        }
        self.finish_return(t, stack, rpl > cpl)?;
        self.regs.rflags = (self.regs.rflags & !mask) | (fl & mask) | Rflags::FIXED.bits();
        self.keep_rf = fl & mask & Rflags::RF.bits() != 0;
        Ok(())
    }
}
