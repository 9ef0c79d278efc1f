//! SYSCALL, SYSENTER and SYSEXIT.
//!
//! Ports `emulate_syscall`, `emulate_sysenter` and `emulate_sysexit` of the
//! Linux emulator family kvm_emulate.c belongs to (used when a guest's fast
//! system call traps with #UD, e.g. an AMD guest's SYSCALL on an Intel host
//! in compatibility mode), following the SDM Vol. 2 pseudo-code of each.
//! The flat CS/SS descriptors are loaded through
//! [`EmulatorOps::load_flat_segment`]; the new mode is reported in
//! [`super::Context::mode`].

use super::{Exec, GP0, R, fault};
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Exception, FlatSegment, Seg};
use crate::regs::Gpr;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SFMASK: u32 = 0xc000_0084;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const EFER_SCE: u64 = 1;
const EFER_LMA: u64 = 1 << 10;

const fn code(dpl: u8, long: bool) -> FlatSegment {
    FlatSegment {
        code: true,
        dpl,
        long,
        big: !long,
    }
}

const fn data(dpl: u8) -> FlatSegment {
    FlatSegment {
        code: false,
        dpl,
        long: false,
        big: true,
    }
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn flat(&mut self, cs: u16, ss: u16, c: FlatSegment, d: FlatSegment) -> R<()> {
        self.ops.load_flat_segment(Seg::Cs, cs, c)?;
        self.ops.load_flat_segment(Seg::Ss, ss, d)?;
        Ok(())
    }

    pub(super) fn syscall(&mut self) -> R<()> {
        if matches!(self.mode, Mode::Real | Mode::Vm86) {
            return fault(Exception::InvalidOpcode);
        }
        let efer = self.ops.read_msr(MSR_EFER)?;
        if efer & EFER_SCE == 0 {
            return fault(Exception::InvalidOpcode);
        }
        let star = self.ops.read_msr(MSR_STAR)?;
        let sel = ((star >> 32) as u16) & 0xfffc;
        let next = self.next_rip;
        if efer & EFER_LMA != 0 {
            let target = self.ops.read_msr(if self.mode.is_64() {
                MSR_LSTAR
            } else {
                MSR_CSTAR
            })?;
            let mask = self.ops.read_msr(MSR_SFMASK)?;
            self.flat(sel, sel.wrapping_add(8), code(0, true), data(0))?;
            self.set_gpr(Gpr::Rcx, Size::S64, next);
            self.set_gpr(Gpr::R11, Size::S64, self.regs.rflags & !Rflags::RF.bits());
            self.regs.rflags &= !(mask | Rflags::RF.bits());
            self.next_rip = target;
            self.new_mode = Mode::Prot64;
        } else {
            // Legacy mode (AMD): EIP from STAR[31:0].
            self.flat(sel, sel.wrapping_add(8), code(0, false), data(0))?;
            self.set_gpr(Gpr::Rcx, Size::S32, next);
            self.regs.rflags &= !(Rflags::VM | Rflags::IF | Rflags::RF).bits();
            self.next_rip = star & 0xffff_ffff;
            self.new_mode = Mode::Prot32;
        }
        self.regs.rflags |= Rflags::FIXED.bits();
        Ok(())
    }

    pub(super) fn sysenter(&mut self) -> R<()> {
        if self.mode == Mode::Real {
            return fault(GP0);
        }
        let cs = self.ops.read_msr(MSR_SYSENTER_CS)? as u16 & 0xfffc;
        if cs == 0 {
            return fault(GP0);
        }
        let lma = self.ops.read_msr(MSR_EFER)? & EFER_LMA != 0;
        let eip = self.ops.read_msr(MSR_SYSENTER_EIP)?;
        let esp = self.ops.read_msr(MSR_SYSENTER_ESP)?;
        self.regs.rflags &= !(Rflags::VM | Rflags::IF | Rflags::RF).bits();
        self.flat(cs, cs.wrapping_add(8), code(0, lma), data(0))?;
        if lma {
            self.next_rip = eip;
            self.set_gpr(Gpr::Rsp, Size::S64, esp);
            self.new_mode = Mode::Prot64;
        } else {
            self.next_rip = eip & 0xffff_ffff;
            self.set_gpr(Gpr::Rsp, Size::S32, esp);
            self.new_mode = Mode::Prot32;
        }
        Ok(())
    }

    pub(super) fn sysexit(&mut self) -> R<()> {
        if matches!(self.mode, Mode::Real | Mode::Vm86) || self.cpl() != 0 {
            return fault(GP0);
        }
        let cs = self.ops.read_msr(MSR_SYSENTER_CS)? as u16 & 0xfffc;
        if cs == 0 {
            return fault(GP0);
        }
        if self.insn.prefixes.rex.w() {
            let rip = self.gpr(Gpr::Rdx, Size::S64);
            if ((rip as i64) << 16) >> 16 != rip as i64 {
                return fault(GP0);
            }
            self.flat(
                cs.wrapping_add(32) | 3,
                cs.wrapping_add(40) | 3,
                code(3, true),
                data(3),
            )?;
            self.next_rip = rip;
            let sp = self.gpr(Gpr::Rcx, Size::S64);
            self.set_gpr(Gpr::Rsp, Size::S64, sp);
            self.new_mode = Mode::Prot64;
        } else {
            self.flat(
                cs.wrapping_add(16) | 3,
                cs.wrapping_add(24) | 3,
                code(3, false),
                data(3),
            )?;
            self.next_rip = self.gpr(Gpr::Rdx, Size::S32);
            let sp = self.gpr(Gpr::Rcx, Size::S32);
            self.set_gpr(Gpr::Rsp, Size::S32, sp);
            self.new_mode = Mode::Prot32;
        }
        Ok(())
    }
}
