//! Port I/O, flag instructions, segment and control/debug register moves,
//! MSRs and the descriptor-table / CR0 helpers.
//!
//! Ports the `in`/`out` cases with `emulator_io_permited` (SDM Vol. 1 §18.5:
//! CPL > IOPL or virtual-8086 mode consults the TSS I/O bitmap), the flag
//! instructions (SDM Vol. 2 "CLI"/"STI": #GP(0) when CPL > IOPL; STI opens
//! an interrupt shadow), MOV Sreg, LDS/LES/LFS/LGS/LSS (the descriptor
//! checks: `segment.rs`), MOV CR/DR, RDMSR/WRMSR, CLTS, LGDT/LIDT,
//! SMSW/LMSW ("PE can be set but not cleared") and INVLPG of kvm_emulate.c
//! and the `realmode_*`/`emulate_clts` leftovers it carried.

use super::{Exec, GP0, InterruptShadow, R, Stop, fault};
use crate::decode::Operand;
use crate::decode::table::Op;
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Exception, Seg};
use crate::regs::Gpr;

const UD: Exception = Exception::InvalidOpcode;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn iopl_ok(&self) -> bool {
        match self.mode {
            Mode::Real => true,
            Mode::Vm86 => false,
            _ => u64::from(self.cpl()) <= (self.regs.rflags >> 12) & 3,
        }
    }

    pub(super) fn check_io(&mut self, port: u16, size: Size) -> R<()> {
        if self.iopl_ok() || self.ops.io_permitted(port, size.bytes() as u8) {
            Ok(())
        } else {
            fault(GP0)
        }
    }

    fn io_size(&self) -> Size {
        if self.osz() == Size::S64 {
            Size::S32
        } else {
            self.osz()
        }
    }

    pub(super) fn in_(&mut self) -> R<()> {
        let size = self.io_size();
        let port = self.read_op(self.insn.src)? as u16;
        self.check_io(port, size)?;
        let v = self.ops.io_in(port, size.bytes() as u8)?;
        // A 32-bit IN zero-extends into RAX like any 32-bit register write.
        self.set_gpr(Gpr::Rax, size, u64::from(v));
        Ok(())
    }

    pub(super) fn out(&mut self) -> R<()> {
        let size = self.io_size();
        let port = self.read_op(self.insn.dst)? as u16;
        self.check_io(port, size)?;
        let v = self.gpr(Gpr::Rax, size);
        self.ops.io_out(port, size.bytes() as u8, v as u32)?;
        Ok(())
    }

    pub(super) fn flag_op(&mut self, op: Op) -> R<()> {
        let ah = self.regs.read_high_byte(0);
        let f = &mut self.regs.rflags;
        let low = (Rflags::SF | Rflags::ZF | Rflags::AF | Rflags::PF | Rflags::CF).bits();
        match op {
            Op::Sahf => {
                *f = (*f & !low) | (ah & low);
            }
            Op::Lahf => {
                let ah = (*f & low) | Rflags::FIXED.bits();
                self.regs.write_high_byte(0, ah);
            }
            Op::Cmc => *f ^= Rflags::CF.bits(),
            Op::Clc => *f &= !Rflags::CF.bits(),
            Op::Stc => *f |= Rflags::CF.bits(),
            Op::Cld => *f &= !Rflags::DF.bits(),
            Op::Std => *f |= Rflags::DF.bits(),
            _ => return Err(Stop::Form),
        }
        Ok(())
    }

    pub(super) fn cli_sti(&mut self, sti: bool) -> R<()> {
        // IOPL-sensitive: CPL <= IOPL, or IOPL = 3 in virtual-8086 mode
        // (without VME, which the emulator does not model).
        let iopl = (self.regs.rflags >> 12) & 3;
        let ok = match self.mode {
            Mode::Real => true,
            Mode::Vm86 => iopl == 3,
            _ => u64::from(self.cpl()) <= iopl,
        };
        if !ok {
            return fault(GP0);
        }
        if sti {
            if self.regs.rflags & Rflags::IF.bits() == 0 {
                self.shadow = InterruptShadow::Sti;
            }
            self.regs.rflags |= Rflags::IF.bits();
        } else {
            self.regs.rflags &= !Rflags::IF.bits();
        }
        Ok(())
    }

    fn sreg(&self) -> R<Seg> {
        let n = self.insn.modrm.map_or(0, |m| (m >> 3) & 7);
        match Seg::from_index(n) {
            Some(s) => Ok(s),
            None => fault(UD),
        }
    }

    pub(super) fn mov_from_seg(&mut self) -> R<()> {
        let seg = self.sreg()?;
        let sel = u64::from(self.ops.segment_selector(seg));
        match self.insn.dst {
            Operand::Mem(_) => self.write_op(Operand::Mem(Size::S16), sel),
            d => self.write_op(d, sel),
        }
    }

    pub(super) fn mov_to_seg(&mut self) -> R<()> {
        let seg = self.sreg()?;
        if seg == Seg::Cs {
            return fault(UD);
        }
        let v = self.read_op(self.insn.src)?;
        self.load_sreg(seg, v as u16)?;
        if seg == Seg::Ss {
            self.shadow = InterruptShadow::MovSs;
        }
        Ok(())
    }

    /// LDS/LES/LFS/LGS/LSS r, m16:16/32/64 (SDM Vol. 2 "LDS/LES/LFS/LGS/
    /// LSS"): the offset (operand size), then the selector after it; the
    /// segment register is checked and loaded before the register is
    /// written.
    pub(super) fn load_far_ptr(&mut self, seg: Seg) -> R<()> {
        let (sel, off) = self.read_far_ptr()?;
        self.load_sreg(seg, sel)?;
        self.write_op(self.insn.dst, off)
    }

    pub(super) fn mov_crdr(&mut self, op: Op) -> R<()> {
        let n = self.insn.modrm_reg();
        let size = self.osz();
        match op {
            Op::MovFromCr | Op::MovToCr if !matches!(n, 0 | 2 | 3 | 4 | 8) => fault(UD),
            Op::MovFromDr | Op::MovToDr if n > 7 => fault(UD),
            Op::MovFromCr => {
                let v = self.ops.read_cr(n)?;
                self.write_op(self.insn.dst, size.trunc(v))
            }
            Op::MovFromDr => {
                let v = self.ops.read_dr(n)?;
                self.write_op(self.insn.dst, size.trunc(v))
            }
            Op::MovToCr => {
                let v = self.read_op(self.insn.src)?;
                Ok(self.ops.write_cr(n, v)?)
            }
            _ => {
                let v = self.read_op(self.insn.src)?;
                Ok(self.ops.write_dr(n, v)?)
            }
        }
    }

    pub(super) fn rdmsr(&mut self) -> R<()> {
        let msr = self.gpr(Gpr::Rcx, Size::S32) as u32;
        let v = self.ops.read_msr(msr)?;
        self.set_gpr(Gpr::Rax, Size::S32, v & 0xffff_ffff);
        self.set_gpr(Gpr::Rdx, Size::S32, v >> 32);
        Ok(())
    }

    pub(super) fn wrmsr(&mut self) -> R<()> {
        let msr = self.gpr(Gpr::Rcx, Size::S32) as u32;
        let v = (self.gpr(Gpr::Rdx, Size::S32) << 32) | self.gpr(Gpr::Rax, Size::S32);
        Ok(self.ops.write_msr(msr, v)?)
    }

    pub(super) fn clts(&mut self) -> R<()> {
        let cr0 = self.ops.read_cr(0)?;
        Ok(self.ops.write_cr(0, cr0 & !8)?)
    }

    pub(super) fn lgdt_lidt(&mut self, idt: bool) -> R<()> {
        let m = self.insn.mem.ok_or(Stop::Form)?;
        let ea = self.effective_address(&m);
        let limit = self.read_seg(m.seg, ea, Size::S16)? as u16;
        let base_off = self.insn.addr_size.trunc(ea.wrapping_add(2));
        let base = if self.mode.is_64() {
            self.read_seg(m.seg, base_off, Size::S64)?
        } else {
            let b = self.read_seg(m.seg, base_off, Size::S32)?;
            if self.osz() == Size::S16 {
                b & 0x00ff_ffff
            } else {
                b
            }
        };
        Ok(self.ops.load_descriptor_table(idt, base, limit)?)
    }

    pub(super) fn smsw(&mut self) -> R<()> {
        let cr0 = self.ops.read_cr(0)?;
        match self.insn.dst {
            Operand::Mem(_) => self.write_op(Operand::Mem(Size::S16), cr0 & 0xffff),
            d => self.write_op(d, self.osz().trunc(cr0)),
        }
    }

    pub(super) fn lmsw(&mut self) -> R<()> {
        let v = self.read_op(self.insn.src)?;
        let cr0 = self.ops.read_cr(0)?;
        // Bits 3:1 are replaced, PE (bit 0) can only be set.
        let new = (cr0 & !0xf) | (v & 0xf) | (cr0 & 1);
        Ok(self.ops.write_cr(0, new)?)
    }

    pub(super) fn invlpg(&mut self) -> R<()> {
        let la = self.mem_linear(1, false)?;
        self.ops.invlpg(la);
        Ok(())
    }
}
