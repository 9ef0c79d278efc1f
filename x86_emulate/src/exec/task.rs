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
use crate::mode::Mode;
use crate::ops::{EmulatorOps, Exception};

/// Available 16-bit TSS (legacy modes only).
const TSS16_AVAILABLE: u8 = 1;
/// Available 32-bit TSS, or 64-bit TSS in IA-32e mode.
const TSS_AVAILABLE: u8 = 9;
/// The busy bit of a TSS descriptor's type.
const TSS_BUSY: u8 = 2;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn ltr(&mut self) -> R<()> {
        if matches!(self.mode, Mode::Real | Mode::Vm86) {
            return fault(Exception::InvalidOpcode);
        }
        if self.cpl() != 0 {
            return fault(GP0);
        }
        // First, so ops without GDT access are unhandleable before any
        // memory access.
        self.ops.gdtr()?;
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
        let entry = self.table_entry(selector, long)?;
        let mut desc = entry.desc;
        let typ = desc.typ();
        let available = typ == TSS_AVAILABLE || (typ == TSS16_AVAILABLE && !long);
        if !desc.system() || !available {
            return fault(gp);
        }
        if !desc.present() {
            return fault(Exception::SegmentNotPresent(err));
        }
        if long {
            let high = self.upper_half(&entry)?;
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
        self.set_access_bits(&entry, TSS_BUSY, long)?;
        desc.access_rights |= u32::from(TSS_BUSY);
        self.ops
            .load_tr(selector, desc.base, desc.limit, desc.access_rights)?;
        Ok(())
    }
}
