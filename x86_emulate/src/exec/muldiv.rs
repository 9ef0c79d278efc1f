//! MUL, IMUL (one-, two- and three-operand), DIV and IDIV.
//!
//! The C driver rejected all of these (F6/F7 /4-/7, 0F AF, 69, 6B were not
//! decoded). Semantics from SDM Vol. 2 "MUL", "IMUL", "DIV", "IDIV": MUL and
//! IMUL set CF = OF when the high half is significant (SF, ZF, AF, PF
//! undefined: computed from the low half here); DIV and IDIV leave all flags
//! undefined (unchanged here) and raise #DE on a zero divisor or a quotient
//! that does not fit.

use super::{Exec, R, fault};
use crate::decode::table::Op;
use crate::flags::{self, Rflags, STATUS};
use crate::mode::Size;
use crate::ops::{EmulatorOps, Exception};
use crate::regs::Gpr;

fn mul_flags(rflags: u64, low: u64, overflow: bool, size: Size) -> u64 {
    let of = if overflow {
        (Rflags::CF | Rflags::OF).bits()
    } else {
        0
    };
    flags::merge(rflags, flags::szp(low, size) | of, STATUS)
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// Store a double-width result: AX for bytes, else rDX:rAX.
    fn store_pair(&mut self, size: Size, lo: u64, hi: u64) {
        if size == Size::S8 {
            self.set_gpr(Gpr::Rax, Size::S16, (lo & 0xff) | ((hi & 0xff) << 8));
        } else {
            self.set_gpr(Gpr::Rax, size, lo);
            self.set_gpr(Gpr::Rdx, size, hi);
        }
    }

    /// The double-width dividend: AX for bytes, else rDX:rAX.
    fn load_pair(&self, size: Size) -> u128 {
        if size == Size::S8 {
            u128::from(self.gpr(Gpr::Rax, Size::S16))
        } else {
            (u128::from(self.gpr(Gpr::Rdx, size)) << size.bits())
                | u128::from(self.gpr(Gpr::Rax, size))
        }
    }

    pub(super) fn muldiv1(&mut self, op: Op) -> R<()> {
        let size = self.osz();
        let bits = size.bits();
        let s = self.read_op(self.insn.src)?;
        let a = self.gpr(Gpr::Rax, size);
        match op {
            Op::Mul => {
                let p = u128::from(a) * u128::from(s);
                let lo = size.trunc(p as u64);
                let hi = size.trunc((p >> bits) as u64);
                self.store_pair(size, lo, hi);
                self.regs.rflags = mul_flags(self.regs.rflags, lo, hi != 0, size);
            }
            Op::Imul1 => {
                let p = i128::from(size.sext(a) as i64) * i128::from(size.sext(s) as i64);
                let lo = size.trunc(p as u64);
                let hi = size.trunc((p >> bits) as u64);
                let overflow = i128::from(size.sext(lo) as i64) != p;
                self.store_pair(size, lo, hi);
                self.regs.rflags = mul_flags(self.regs.rflags, lo, overflow, size);
            }
            Op::Div => {
                let n = self.load_pair(size);
                let Some((q, r)) = div_wide((n >> 64) as u64, n as u64, s) else {
                    return fault(Exception::DivideError);
                };
                if q > size.mask() {
                    return fault(Exception::DivideError);
                }
                self.store_quot(size, q, r);
            }
            _ => {
                let n = self.load_pair(size);
                // Sign-extend the 2*bits dividend.
                let shift = 128 - 2 * bits;
                let n = ((n << shift) as i128) >> shift;
                let d = i128::from(size.sext(s) as i64);
                // Magnitudes through `div_wide` (a `i128` division would
                // import compiler_builtins' `__divti3` into the kernel).
                let mag = n.unsigned_abs();
                let Some((qm, rm)) =
                    div_wide((mag >> 64) as u64, mag as u64, d.unsigned_abs() as u64)
                else {
                    return fault(Exception::DivideError);
                };
                let q = if (n < 0) != (d < 0) {
                    -i128::from(qm)
                } else {
                    i128::from(qm)
                };
                let r = if n < 0 {
                    -i128::from(rm)
                } else {
                    i128::from(rm)
                };
                let min = -(1i128 << (bits - 1));
                let max = (1i128 << (bits - 1)) - 1;
                if q < min || q > max {
                    return fault(Exception::DivideError);
                }
                self.store_quot(size, q as u64, r as u64);
            }
        }
        Ok(())
    }

    fn store_quot(&mut self, size: Size, q: u64, r: u64) {
        if size == Size::S8 {
            self.set_gpr(Gpr::Rax, Size::S16, (q & 0xff) | ((r & 0xff) << 8));
        } else {
            self.set_gpr(Gpr::Rax, size, q);
            self.set_gpr(Gpr::Rdx, size, r);
        }
    }

    /// IMUL r, r/m and IMUL r, r/m, imm: the truncated signed product.
    pub(super) fn imul(&mut self) -> R<()> {
        let size = self.osz();
        let (a, b) = if matches!(self.insn.src2, crate::decode::Operand::None) {
            (self.read_op(self.insn.dst)?, self.read_op(self.insn.src)?)
        } else {
            (self.read_op(self.insn.src)?, self.read_op(self.insn.src2)?)
        };
        let p = i128::from(size.sext(a) as i64) * i128::from(size.sext(b) as i64);
        let lo = size.trunc(p as u64);
        let overflow = i128::from(size.sext(lo) as i64) != p;
        self.write_op(self.insn.dst, lo)?;
        self.regs.rflags = mul_flags(self.regs.rflags, lo, overflow, size);
        Ok(())
    }
}

/// `(hi:lo) / d` and `(hi:lo) % d` when the quotient fits 64 bits
/// (`hi < d`), else `None` (the #DE cases of DIV). Shift-and-subtract in
/// 64-bit arithmetic: a `u128` division would call compiler_builtins'
/// `__udivti3`, which the kernel module must not import. The differential
/// tests check DIV/IDIV against the CPU.
fn div_wide(hi: u64, lo: u64, d: u64) -> Option<(u64, u64)> {
    if d == 0 || hi >= d {
        return None;
    }
    let (mut r, mut q) = (hi, 0u64);
    for i in (0..64).rev() {
        let carry = r >> 63;
        r = (r << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry != 0 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
    }
    Some((q, r))
}
