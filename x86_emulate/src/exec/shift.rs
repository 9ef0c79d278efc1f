//! Shifts and rotates (group 2: ROL ROR RCL RCR SHL SHR SAR) and SHLD/SHRD.
//!
//! Ports `emulate_grp2` and the 0F A4/A5/AC/AD cases of kvm_emulate.c, fixing
//! the C driver's SHLD/SHRD-by-CL count (`RCX & 8`). Rules from SDM Vol. 2
//! "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR", "SHLD", "SHRD": the count is masked
//! to 5 bits (6 with a 64-bit operand); a masked count of zero changes
//! nothing; OF is defined only for a count of 1; AF is undefined (cleared).

use super::{Exec, R};
use crate::decode::table::ShiftOp;
use crate::flags::{self, Rflags, STATUS, bit_if};
use crate::mode::Size;
use crate::ops::EmulatorOps;

/// Result and RFLAGS of a group-2 operation with an already masked, non-zero
/// count.
pub(crate) fn shift_result(op: ShiftOp, d: u64, count: u32, rflags: u64, size: Size) -> (u64, u64) {
    let bits = size.bits();
    let d = size.trunc(d);
    let msb = |v: u64| v & size.sign_bit() != 0;
    let cf_in = rflags & Rflags::CF.bits() != 0;
    let cf_of = Rflags::CF.bits() | Rflags::OF.bits();
    match op {
        ShiftOp::Shl => {
            let wide = u128::from(d) << count;
            let r = size.trunc(wide as u64);
            let cf = (wide >> bits) & 1 != 0;
            let of = msb(r) != cf;
            let st = flags::szp(r, size) | bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF);
            (r, flags::merge(rflags, st, STATUS))
        }
        ShiftOp::Shr => {
            let r = d.checked_shr(count).unwrap_or(0);
            let cf = d.checked_shr(count.wrapping_sub(1)).unwrap_or(0) & 1 != 0;
            let st = flags::szp(r, size) | bit_if(cf, Rflags::CF) | bit_if(msb(d), Rflags::OF);
            (r, flags::merge(rflags, st, STATUS))
        }
        ShiftOp::Sar => {
            let sd = size.sext(d) as i64;
            let r = size.trunc(sd.checked_shr(count).unwrap_or(sd >> 63) as u64);
            let cf = sd.checked_shr(count.wrapping_sub(1)).unwrap_or(sd >> 63) & 1 != 0;
            let st = flags::szp(r, size) | bit_if(cf, Rflags::CF);
            (r, flags::merge(rflags, st, STATUS))
        }
        ShiftOp::Rol | ShiftOp::Ror => {
            let c = count % bits;
            let r = if c == 0 {
                d
            } else if op == ShiftOp::Rol {
                size.trunc((d << c) | (d >> (bits - c)))
            } else {
                size.trunc((d >> c) | (d << (bits - c)))
            };
            let (cf, of) = if op == ShiftOp::Rol {
                let cf = r & 1 != 0;
                (cf, msb(r) != cf)
            } else {
                (msb(r), msb(r) != (r & (size.sign_bit() >> 1) != 0))
            };
            (
                r,
                flags::merge(
                    rflags,
                    bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF),
                    cf_of,
                ),
            )
        }
        ShiftOp::Rcl | ShiftOp::Rcr => {
            let w = bits + 1;
            let t = match size {
                Size::S8 => count % 9,
                Size::S16 => count % 17,
                _ => count,
            };
            let wmask = (1u128 << w) - 1;
            let v = (u128::from(cf_in) << bits) | u128::from(d);
            let rot = if t == 0 {
                v
            } else if op == ShiftOp::Rcl {
                ((v << t) | (v >> (w - t))) & wmask
            } else {
                ((v >> t) | (v << (w - t))) & wmask
            };
            let r = size.trunc(rot as u64);
            let cf = (rot >> bits) & 1 != 0;
            let of = if op == ShiftOp::Rcl {
                msb(r) != cf
            } else {
                msb(d) != cf_in
            };
            (
                r,
                flags::merge(
                    rflags,
                    bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF),
                    cf_of,
                ),
            )
        }
    }
}

/// Result and RFLAGS of SHLD (`left`) / SHRD with a masked non-zero count.
pub(crate) fn shxd_result(
    left: bool,
    d: u64,
    s: u64,
    count: u32,
    rflags: u64,
    size: Size,
) -> (u64, u64) {
    let bits = size.bits();
    let d = size.trunc(d);
    let s = size.trunc(s);
    let (r, cf) = if left {
        let cat = (u128::from(d) << bits) | u128::from(s);
        let r = size.trunc((cat.checked_shl(count).unwrap_or(0) >> bits) as u64);
        let cf = cat.checked_shr((2 * bits).wrapping_sub(count)).unwrap_or(0) & 1 != 0;
        (r, cf)
    } else {
        let cat = (u128::from(s) << bits) | u128::from(d);
        let r = size.trunc(cat.checked_shr(count).unwrap_or(0) as u64);
        let cf = cat.checked_shr(count.wrapping_sub(1)).unwrap_or(0) & 1 != 0;
        (r, cf)
    };
    let of = (r ^ d) & size.sign_bit() != 0;
    let st = flags::szp(r, size) | bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF);
    (r, flags::merge(rflags, st, STATUS))
}

fn mask_count(c: u64, size: Size) -> u32 {
    (c & if size == Size::S64 { 0x3f } else { 0x1f }) as u32
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// A masked count of zero: flags and memory are untouched (the operand
    /// is still read and may fault), but a 32-bit register destination is
    /// still written, which clears bits 63:32 as on hardware.
    fn zero_count(&mut self) -> R<()> {
        let d = self.read_op(self.insn.dst)?;
        if let crate::decode::Operand::Reg(_, Size::S32) = self.insn.dst {
            self.write_op(self.insn.dst, d)?;
        }
        Ok(())
    }

    pub(super) fn shift(&mut self, op: ShiftOp) -> R<()> {
        let size = self.osz();
        let count = mask_count(self.read_op(self.insn.src)?, size);
        if count == 0 {
            return self.zero_count();
        }
        self.rmw(|d, fl| shift_result(op, d, count, fl, size))?;
        Ok(())
    }

    pub(super) fn shxd(&mut self, left: bool) -> R<()> {
        let size = self.osz();
        let s = self.read_op(self.insn.src)?;
        let count = mask_count(self.read_op(self.insn.src2)?, size);
        if count == 0 {
            return self.zero_count();
        }
        self.rmw(|d, fl| shxd_result(left, d, s, count, fl, size))?;
        Ok(())
    }
}
