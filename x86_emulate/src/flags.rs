//! RFLAGS bits, condition codes and the arithmetic flag rules.
//!
//! Replaces the inline-assembly `emulate_2op_*` / `emulate_1op` macros and
//! `test_cc` of kvm_emulate.c with plain integer code that follows the
//! "Flags Affected" sections of the SDM Vol. 2 (and Vol. 1 Appendix A).

use crate::mode::Size;

bitflags::bitflags! {
    /// RFLAGS (SDM Vol. 1 §3.4.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Rflags: u64 {
        /// Carry.
        const CF = 1 << 0;
        /// Reserved, always 1.
        const FIXED = 1 << 1;
        /// Parity of the low byte.
        const PF = 1 << 2;
        /// Auxiliary (BCD) carry.
        const AF = 1 << 4;
        /// Zero.
        const ZF = 1 << 6;
        /// Sign.
        const SF = 1 << 7;
        /// Trap.
        const TF = 1 << 8;
        /// Interrupt enable.
        const IF = 1 << 9;
        /// Direction.
        const DF = 1 << 10;
        /// Overflow.
        const OF = 1 << 11;
        /// I/O privilege level (two bits).
        const IOPL = 3 << 12;
        /// Nested task.
        const NT = 1 << 14;
        /// Resume.
        const RF = 1 << 16;
        /// Virtual-8086 mode.
        const VM = 1 << 17;
        /// Alignment check.
        const AC = 1 << 18;
        /// Virtual interrupt flag.
        const VIF = 1 << 19;
        /// Virtual interrupt pending.
        const VIP = 1 << 20;
        /// CPUID available.
        const ID = 1 << 21;
    }
}

/// The six status flags.
pub const STATUS: u64 = Rflags::CF.bits()
    | Rflags::PF.bits()
    | Rflags::AF.bits()
    | Rflags::ZF.bits()
    | Rflags::SF.bits()
    | Rflags::OF.bits();

/// A condition code: the low nibble of Jcc/SETcc/CMOVcc (SDM Vol. 1 Table B-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// OF = 1.
    O,
    /// OF = 0.
    No,
    /// CF = 1.
    B,
    /// CF = 0.
    Ae,
    /// ZF = 1.
    E,
    /// ZF = 0.
    Ne,
    /// CF = 1 or ZF = 1.
    Be,
    /// CF = 0 and ZF = 0.
    A,
    /// SF = 1.
    S,
    /// SF = 0.
    Ns,
    /// PF = 1.
    P,
    /// PF = 0.
    Np,
    /// SF != OF.
    L,
    /// SF = OF.
    Ge,
    /// ZF = 1 or SF != OF.
    Le,
    /// ZF = 0 and SF = OF.
    G,
}

impl Cond {
    /// The condition encoded in the low four bits of `op`.
    pub const fn from_low_nibble(op: u8) -> Cond {
        match op & 15 {
            0 => Cond::O,
            1 => Cond::No,
            2 => Cond::B,
            3 => Cond::Ae,
            4 => Cond::E,
            5 => Cond::Ne,
            6 => Cond::Be,
            7 => Cond::A,
            8 => Cond::S,
            9 => Cond::Ns,
            10 => Cond::P,
            11 => Cond::Np,
            12 => Cond::L,
            13 => Cond::Ge,
            14 => Cond::Le,
            _ => Cond::G,
        }
    }

    /// Evaluate against `rflags` (port of `test_cc`).
    pub const fn eval(self, rflags: u64) -> bool {
        let f = Rflags::from_bits_retain(rflags);
        let cf = f.contains(Rflags::CF);
        let zf = f.contains(Rflags::ZF);
        let sf = f.contains(Rflags::SF);
        let of = f.contains(Rflags::OF);
        let pf = f.contains(Rflags::PF);
        match self {
            Cond::O => of,
            Cond::No => !of,
            Cond::B => cf,
            Cond::Ae => !cf,
            Cond::E => zf,
            Cond::Ne => !zf,
            Cond::Be => cf || zf,
            Cond::A => !cf && !zf,
            Cond::S => sf,
            Cond::Ns => !sf,
            Cond::P => pf,
            Cond::Np => !pf,
            Cond::L => sf != of,
            Cond::Ge => sf == of,
            Cond::Le => zf || sf != of,
            Cond::G => !zf && sf == of,
        }
    }
}

/// Set `bit` in `flags` when `cond`.
pub const fn bit_if(cond: bool, bit: Rflags) -> u64 {
    if cond { bit.bits() } else { 0 }
}

/// PF, ZF and SF of a result of width `size`.
pub const fn szp(result: u64, size: Size) -> u64 {
    let r = size.trunc(result);
    bit_if((r as u8).count_ones() & 1 == 0, Rflags::PF)
        | bit_if(r == 0, Rflags::ZF)
        | bit_if(r & size.sign_bit() != 0, Rflags::SF)
}

/// Replace the status flags in `rflags` with `status` (other bits kept).
pub const fn merge(rflags: u64, status: u64, which: u64) -> u64 {
    (rflags & !which) | (status & which)
}

/// Result and status flags of an addition `a + b + carry` (ADD, ADC, INC, XADD).
pub const fn add(a: u64, b: u64, carry: bool, size: Size) -> (u64, u64) {
    let a = size.trunc(a);
    let b = size.trunc(b);
    let wide = a as u128 + b as u128 + carry as u128;
    let r = size.trunc(wide as u64);
    let cf = (wide >> size.bits()) != 0;
    let of = ((a ^ r) & (b ^ r) & size.sign_bit()) != 0;
    let af = ((a ^ b ^ r) & 0x10) != 0;
    (
        r,
        szp(r, size) | bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF) | bit_if(af, Rflags::AF),
    )
}

/// Result and status flags of a subtraction `a - b - borrow` (SUB, SBB, CMP, DEC, NEG).
pub const fn sub(a: u64, b: u64, borrow: bool, size: Size) -> (u64, u64) {
    let a = size.trunc(a);
    let b = size.trunc(b);
    let r = size.trunc(a.wrapping_sub(b).wrapping_sub(borrow as u64));
    let cf = (a as u128) < (b as u128 + borrow as u128);
    let of = ((a ^ b) & (a ^ r) & size.sign_bit()) != 0;
    let af = ((a ^ b ^ r) & 0x10) != 0;
    (
        r,
        szp(r, size) | bit_if(cf, Rflags::CF) | bit_if(of, Rflags::OF) | bit_if(af, Rflags::AF),
    )
}

/// Status flags of a logical result (AND, OR, XOR, TEST): CF = OF = 0, AF
/// undefined (cleared here, as current Intel and AMD parts do).
pub const fn logic(r: u64, size: Size) -> u64 {
    szp(r, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sets_carry_and_overflow() {
        // add al, 0x01 with al = 0x7f: OF, SF, AF
        let (r, f) = add(0x7f, 1, false, Size::S8);
        assert_eq!(r, 0x80);
        assert_eq!(
            f,
            (Rflags::OF | Rflags::SF | Rflags::AF).bits(),
            "0x7f + 1 overflows"
        );
    }

    #[test]
    fn sub_borrow_sets_cf() {
        // sub eax, 1 with eax = 0
        let (r, f) = sub(0, 1, false, Size::S32);
        assert_eq!(r, 0xffff_ffff);
        assert_eq!(f & Rflags::CF.bits(), Rflags::CF.bits());
    }

    #[test]
    fn cond_le() {
        assert!(Cond::Le.eval(Rflags::ZF.bits()));
        assert!(Cond::Le.eval(Rflags::SF.bits()));
        assert!(!Cond::Le.eval((Rflags::SF | Rflags::OF).bits()));
    }
}
