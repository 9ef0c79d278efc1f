//! String instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with
//! REP/REPE/REPNE.
//!
//! Ports the string cases of `x86_emulate_insn` and the REP loop (and
//! `kvm_emulate_pio_string`) of kvm_emulate.c, following SDM Vol. 2 "REP/REPE/
//! REPZ/REPNE/REPNZ": with a zero count nothing is done; otherwise one
//! element is processed, rSI/rDI move by the element size in the direction of
//! DF, the count (rCX at the address size) is decremented, and REPE/REPNE stop
//! on ZF *after* the element (the C driver tested ZF before the first one).
//! CMPS and SCAS set flags as `CMP src, dst` = `[rSI] - [rDI]` and
//! `rAX - [rDI]`. Each completed iteration is committed, so a fault or a
//! pending I/O in iteration k leaves the first k-1 done.

use super::{Exec, MAX_REP_ITERATIONS, R};
use crate::decode::Rep;
use crate::decode::table::StrOp;
use crate::flags::{self, Rflags, STATUS};
use crate::mode::Size;
use crate::ops::{EmulatorOps, Seg};
use crate::regs::Gpr;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn string_once(&mut self, op: StrOp, size: Size, src_seg: Seg) -> R<()> {
        let asz = self.insn.addr_size;
        let si = self.gpr(Gpr::Rsi, asz);
        let di = self.gpr(Gpr::Rdi, asz);
        match op {
            StrOp::Movs => {
                let v = self.read_seg(src_seg, si, size)?;
                self.write_seg(Seg::Es, di, size, v)?;
            }
            StrOp::Cmps => {
                let a = self.read_seg(src_seg, si, size)?;
                let b = self.read_seg(Seg::Es, di, size)?;
                let (_, st) = flags::sub(a, b, false, size);
                self.set_status(st, STATUS);
            }
            StrOp::Stos => {
                let v = self.gpr(Gpr::Rax, size);
                self.write_seg(Seg::Es, di, size, v)?;
            }
            StrOp::Lods => {
                let v = self.read_seg(src_seg, si, size)?;
                self.set_gpr(Gpr::Rax, size, v);
            }
            StrOp::Scas => {
                let b = self.read_seg(Seg::Es, di, size)?;
                let a = self.gpr(Gpr::Rax, size);
                let (_, st) = flags::sub(a, b, false, size);
                self.set_status(st, STATUS);
            }
            StrOp::Ins => {
                let port = self.gpr(Gpr::Rdx, Size::S16) as u16;
                self.check_io(port, size)?;
                // Translate (and fault) before touching the port.
                let la = self.linear(Seg::Es, di, size.bytes(), true)?;
                let v = self.ops.io_in(port, size.bytes() as u8)?;
                self.write_lin(la, size, u64::from(v))?;
            }
            StrOp::Outs => {
                let port = self.gpr(Gpr::Rdx, Size::S16) as u16;
                self.check_io(port, size)?;
                let v = self.read_seg(src_seg, si, size)?;
                self.ops.io_out(port, size.bytes() as u8, v as u32)?;
            }
        }
        let step = size.bytes() as u64;
        let down = self.rflags() & Rflags::DF.bits() != 0;
        let mv = |x: u64| {
            asz.trunc(if down {
                x.wrapping_sub(step)
            } else {
                x.wrapping_add(step)
            })
        };
        if matches!(op, StrOp::Movs | StrOp::Cmps | StrOp::Lods | StrOp::Outs) {
            self.set_gpr(Gpr::Rsi, asz, mv(si));
        }
        if matches!(
            op,
            StrOp::Movs | StrOp::Cmps | StrOp::Stos | StrOp::Scas | StrOp::Ins
        ) {
            self.set_gpr(Gpr::Rdi, asz, mv(di));
        }
        Ok(())
    }

    pub(super) fn string(&mut self, op: StrOp) -> R<()> {
        let mut size = self.osz();
        if matches!(op, StrOp::Ins | StrOp::Outs) && size == Size::S64 {
            size = Size::S32;
        }
        let asz = self.insn.addr_size;
        let src_seg = self.insn.prefixes.seg.unwrap_or(Seg::Ds);
        let Some(rep) = self.insn.prefixes.rep else {
            return self.string_once(op, size, src_seg);
        };
        let mut iterations = 0u32;
        loop {
            let count = self.gpr(Gpr::Rcx, asz);
            if count == 0 {
                return Ok(());
            }
            if iterations >= MAX_REP_ITERATIONS {
                // Let the guest re-execute the rest (RIP stays).
                self.advance = false;
                return Ok(());
            }
            self.string_once(op, size, src_seg)?;
            iterations += 1;
            let count = asz.trunc(count.wrapping_sub(1));
            self.set_gpr(Gpr::Rcx, asz, count);
            self.committed = self.regs;
            if count == 0 {
                return Ok(());
            }
            if matches!(op, StrOp::Cmps | StrOp::Scas) {
                let zf = self.rflags() & Rflags::ZF.bits() != 0;
                match rep {
                    Rep::Repe if !zf => return Ok(()),
                    Rep::Repne if zf => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}
