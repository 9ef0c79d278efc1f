//! BT, BTS, BTR, BTC, BSF, BSR and BSWAP.
//!
//! Ports the `bt:`/`bts:`/`btr:`/`btc:` cases and group 8 of kvm_emulate.c,
//! fixing its treatment of a register bit offset as unsigned: per SDM Vol. 2
//! "BT", a register offset with a memory operand is a signed integer and
//! selects the operand-sized word at `ea + (offset SAR log2(bits)) * bytes`;
//! an immediate offset or a register destination takes the offset modulo the
//! operand width. CF receives the bit; ZF is unchanged; OF, SF, AF, PF are
//! undefined (unchanged here). BSF/BSR (SDM "BSF"/"BSR") set ZF when the
//! source is zero and then leave the destination unchanged.

use super::{Exec, R, Stop};
use crate::decode::Operand;
use crate::decode::table::BitOp;
use crate::flags::Rflags;
use crate::mode::Size;
use crate::ops::EmulatorOps;

fn apply(op: BitOp, v: u64, bit: u32) -> u64 {
    let m = 1u64 << bit;
    match op {
        BitOp::Bt => v,
        BitOp::Bts => v | m,
        BitOp::Btr => v & !m,
        BitOp::Btc => v ^ m,
    }
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn set_cf(&mut self, on: bool) {
        if on {
            self.regs.rflags |= Rflags::CF.bits();
        } else {
            self.regs.rflags &= !Rflags::CF.bits();
        }
    }

    pub(super) fn bit(&mut self, op: BitOp) -> R<()> {
        let size = self.osz();
        let bits = size.bits();
        let raw = self.read_op(self.insn.src)?;
        let bit = (raw & u64::from(bits - 1)) as u32;
        match self.insn.dst {
            Operand::Reg(r, _) => {
                let v = self.reg_read(r, size);
                self.set_cf((v >> bit) & 1 != 0);
                if op != BitOp::Bt {
                    self.reg_write(r, size, apply(op, v, bit));
                }
                Ok(())
            }
            Operand::Mem(_) => {
                let m = self.insn.mem.ok_or(Stop::Form)?;
                let mut ea = self.effective_address(&m);
                if let Operand::Reg(..) = self.insn.src {
                    // Signed offset: displacement in operand-sized units.
                    let off = size.sext(raw) as i64;
                    let words = off >> size.bits().trailing_zeros();
                    ea = self
                        .insn
                        .addr_size
                        .trunc(ea.wrapping_add((words as u64).wrapping_mul(size.bytes() as u64)));
                }
                let la = self.linear(m.seg, ea, size.bytes(), op != BitOp::Bt)?;
                let mut v = self.read_lin(la, size)?;
                if op != BitOp::Bt {
                    if self.insn.prefixes.lock {
                        let mut done = false;
                        for _ in 0..64 {
                            match self.cmpxchg_lin(la, size, v, apply(op, v, bit))? {
                                None => {
                                    done = true;
                                    break;
                                }
                                Some(cur) => v = cur,
                            }
                        }
                        if !done {
                            return Err(Stop::Retry);
                        }
                    } else {
                        self.write_lin(la, size, apply(op, v, bit))?;
                    }
                }
                self.set_cf((v >> bit) & 1 != 0);
                Ok(())
            }
            _ => Err(Stop::Form),
        }
    }

    pub(super) fn bsf_bsr(&mut self, forward: bool) -> R<()> {
        let size = self.osz();
        let s = self.read_op(self.insn.src)?;
        if s == 0 {
            self.regs.rflags |= Rflags::ZF.bits();
            return Ok(());
        }
        self.regs.rflags &= !Rflags::ZF.bits();
        let idx = if forward {
            s.trailing_zeros()
        } else {
            63 - s.leading_zeros()
        };
        self.write_op(self.insn.dst, u64::from(idx))?;
        let _ = size;
        Ok(())
    }

    pub(super) fn bswap(&mut self) -> R<()> {
        let size = self.osz();
        let v = self.read_op(self.insn.dst)?;
        let r = match size {
            Size::S64 => v.swap_bytes(),
            Size::S32 => u64::from((v as u32).swap_bytes()),
            // BSWAP r16 is undefined; current CPUs clear the word.
            _ => 0,
        };
        self.write_op(self.insn.dst, r)
    }
}
