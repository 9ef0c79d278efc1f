//! LTR (0F 00 /3): load the task register from a GDT descriptor.
//!
//! Follows the SDM Vol. 2 "LTR" pseudo-code and exception lists (and Linux's
//! `__load_segment_descriptor` for `VCPU_SREG_TR`): #UD in real-address and
//! virtual-8086 mode; #GP(0) unless CPL 0; #GP(0) for a null selector;
//! #GP(selector) for a TI = 1 selector, a descriptor beyond the GDT limit,
//! a descriptor that is not an available TSS (a busy one included), and in
//! IA-32e mode a non-zero type in the upper 8 bytes of the 16-byte
//! descriptor or a non-canonical base; #NP(selector) for a TSS that is not
//! present. Then the busy bit is set in the GDT copy of the descriptor and TR
//! is loaded through [`EmulatorOps::load_tr`].

use super::{Exec, GP0, R, fault};
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Exception, OpError};

const MSR_EFER: u32 = 0xc000_0080;
const EFER_LMA: u64 = 1 << 10;
/// Available 16-bit TSS (legacy modes only).
const TSS16_AVAILABLE: u64 = 1;
/// Available 32-bit TSS, or 64-bit TSS in IA-32e mode.
const TSS_AVAILABLE: u64 = 9;
/// The busy bit of a TSS descriptor's type.
const TSS_BUSY: u64 = 2;

/// The fields of an 8-byte segment descriptor LTR loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TssDescriptor {
    /// Base[31:0] (IA-32e mode adds base[63:32] from the upper 8 bytes).
    pub base: u64,
    /// The effective limit in bytes (granularity applied).
    pub limit: u32,
    /// Access rights in the VMCS format: type[3:0], S[4], DPL[6:5], P[7],
    /// AVL[12], L[13], D/B[14], G[15].
    pub access_rights: u32,
}

impl TssDescriptor {
    /// Split the low 8 bytes of a descriptor (SDM Vol. 3 Figure 3-8).
    pub(crate) fn from_low(d: u64) -> TssDescriptor {
        let raw_limit = ((d & 0xffff) | (((d >> 48) & 0xf) << 16)) as u32;
        let base = ((d >> 16) & 0x00ff_ffff) | (((d >> 56) & 0xff) << 24);
        let access = ((d >> 40) & 0xff) as u32;
        let flags = ((d >> 52) & 0xf) as u32;
        let g = flags & 8 != 0;
        TssDescriptor {
            base,
            limit: if g {
                (raw_limit << 12) | 0xfff
            } else {
                raw_limit
            },
            access_rights: access | (flags << 12),
        }
    }

    fn typ(&self) -> u64 {
        u64::from(self.access_rights & 0xf)
    }

    fn system(&self) -> bool {
        self.access_rights & 0x10 == 0
    }

    fn present(&self) -> bool {
        self.access_rights & 0x80 != 0
    }
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// IA-32e mode (IA32_EFER.LMA = 1): 64-bit mode, or compatibility mode
    /// as reported by EFER. A fault reading EFER (no such MSR) means legacy
    /// protected mode.
    fn ia32e(&mut self) -> R<bool> {
        if self.mode.is_64() {
            return Ok(true);
        }
        match self.ops.read_msr(MSR_EFER) {
            Ok(efer) => Ok(efer & EFER_LMA != 0),
            Err(OpError::Fault(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn ltr(&mut self) -> R<()> {
        if matches!(self.mode, Mode::Real | Mode::Vm86) {
            return fault(Exception::InvalidOpcode);
        }
        if self.cpl() != 0 {
            return fault(GP0);
        }
        // First, so ops without GDT access are unhandleable before any
        // memory access.
        let (gdt_base, gdt_limit) = self.ops.gdtr()?;
        let long = self.ia32e()?;
        let selector = self.read_op(self.insn.src)? as u16;
        let err = selector & 0xfffc;
        let gp = Exception::GeneralProtection(err);
        if err == 0 {
            return fault(GP0);
        }
        if selector & 4 != 0 {
            return fault(gp);
        }
        let index = u64::from(selector & 0xfff8);
        let last = index + if long { 15 } else { 7 };
        if last > u64::from(gdt_limit) {
            return fault(gp);
        }
        let wrap = |a: u64| if long { a } else { a & 0xffff_ffff };
        let la = wrap(gdt_base.wrapping_add(index));
        let low = self.read_lin(la, Size::S64)?;
        let mut desc = TssDescriptor::from_low(low);
        let typ = desc.typ();
        let available = typ == TSS_AVAILABLE || (typ == TSS16_AVAILABLE && !long);
        if !desc.system() || !available {
            return fault(gp);
        }
        if !desc.present() {
            return fault(Exception::SegmentNotPresent(err));
        }
        if long {
            let high = self.read_lin(la.wrapping_add(8), Size::S64)?;
            // The upper 8 bytes' type field (bits 12:8 of dword 3) must be 0.
            if (high >> 40) & 0x1f != 0 {
                return fault(gp);
            }
            desc.base |= (high & 0xffff_ffff) << 32;
            if ((desc.base as i64) << 16) >> 16 != desc.base as i64 {
                return fault(gp);
            }
        }
        // Mark the TSS busy in the GDT: the access byte is byte 5.
        let access = ((low >> 40) as u8) | TSS_BUSY as u8;
        self.ops.write(wrap(la.wrapping_add(5)), &[access])?;
        desc.access_rights |= TSS_BUSY as u32;
        self.ops
            .load_tr(selector, desc.base, desc.limit, desc.access_rights)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TssDescriptor;

    #[test]
    fn descriptor_fields() {
        // base 0x1234_5678, limit 0x6_7890 (G = 0), type 9, P, DPL 0, AVL.
        let d = 0x1216_8934_5678_7890u64;
        let t = TssDescriptor::from_low(d);
        assert_eq!(t.base, 0x1234_5678);
        assert_eq!(t.limit, 0x6_7890);
        assert_eq!(t.access_rights, 0x89 | (1 << 12));
        // G = 1: limit in 4 KiB units.
        let t = TssDescriptor::from_low(d | (1 << 55));
        assert_eq!(t.limit, 0x6789_0fff);
        assert_eq!(t.access_rights, 0x89 | (1 << 12) | (1 << 15));
    }
}
