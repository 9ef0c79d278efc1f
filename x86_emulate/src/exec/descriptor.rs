//! Segment descriptors and the descriptor tables: splitting an 8-byte
//! descriptor (SDM Vol. 3 §3.4.5, Figure 3-8), finding a selector's
//! descriptor in the GDT or LDT with the table-limit check (§3.4.2, §5.3:
//! #GP(selector) beyond the limit) and the implicit supervisor accesses to
//! the tables (§4.6.1). Shared by LTR, the segment loads and task switches.
//!
//! Ports the table lookup of kvm_x86.c:`get_segment_descriptor_dtable` /
//! `load_guest_segment_descriptor` (Linux emulate.c
//! `get_descriptor_table_ptr`/`read_segment_descriptor`).

use super::{Exec, R, Stop, page_chunk};
use crate::ops::{EmulatorOps, Exception, OpError, SegmentCache};

const MSR_EFER: u32 = 0xc000_0080;
const EFER_LMA: u64 = 1 << 10;

/// The fields of an 8-byte segment descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// Base[31:0] (a 16-byte system descriptor of IA-32e mode adds
    /// base[63:32] from the upper 8 bytes).
    pub base: u64,
    /// The effective limit in bytes (granularity applied).
    pub limit: u32,
    /// Access rights in the VMCS format: type[3:0], S[4], DPL[6:5], P[7],
    /// AVL[12], L[13], D/B[14], G[15].
    pub access_rights: u32,
}

impl Descriptor {
    /// Split the low 8 bytes of a descriptor (SDM Vol. 3 Figure 3-8).
    pub(crate) fn from_low(d: u64) -> Descriptor {
        let raw_limit = ((d & 0xffff) | (((d >> 48) & 0xf) << 16)) as u32;
        let base = ((d >> 16) & 0x00ff_ffff) | (((d >> 56) & 0xff) << 24);
        let access = ((d >> 40) & 0xff) as u32;
        let flags = ((d >> 52) & 0xf) as u32;
        let g = flags & 8 != 0;
        Descriptor {
            base,
            limit: if g {
                (raw_limit << 12) | 0xfff
            } else {
                raw_limit
            },
            access_rights: access | (flags << 12),
        }
    }

    /// The type field (Table 3-1 / 3-2).
    pub(crate) fn typ(&self) -> u8 {
        (self.access_rights & 0xf) as u8
    }

    /// S = 0: a system descriptor (TSS, LDT, gate).
    pub(crate) fn system(&self) -> bool {
        self.access_rights & 0x10 == 0
    }

    /// Descriptor privilege level.
    pub(crate) fn dpl(&self) -> u8 {
        ((self.access_rights >> 5) & 3) as u8
    }

    /// P: present.
    pub(crate) fn present(&self) -> bool {
        self.access_rights & 0x80 != 0
    }

    /// L: a 64-bit code segment.
    pub(crate) fn long(&self) -> bool {
        self.access_rights & (1 << 13) != 0
    }

    /// D/B: 32-bit default size.
    pub(crate) fn big(&self) -> bool {
        self.access_rights & (1 << 14) != 0
    }

    /// The descriptor cache a segment register gets for `selector`.
    pub(crate) fn cache(&self, selector: u16) -> SegmentCache {
        SegmentCache {
            selector,
            base: self.base,
            limit: self.limit,
            access_rights: self.access_rights,
        }
    }
}

/// A descriptor read from its table, with where it was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableEntry {
    pub desc: Descriptor,
    /// The descriptor's 8 bytes as read.
    pub raw: u64,
    /// Its linear address.
    pub addr: u64,
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// IA-32e mode (IA32_EFER.LMA = 1): 64-bit mode, or compatibility mode
    /// as reported by EFER. A fault reading EFER (no such MSR) means legacy
    /// protected mode.
    pub(crate) fn ia32e(&mut self) -> R<bool> {
        if self.mode.is_64() {
            return Ok(true);
        }
        match self.ops.read_msr(MSR_EFER) {
            Ok(efer) => Ok(efer & EFER_LMA != 0),
            Err(OpError::Fault(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Read 8 bytes at linear `la` as a supervisor access, split at a page
    /// boundary like [`Exec::read_lin`].
    pub(crate) fn read_sys_u64(&mut self, la: u64) -> R<u64> {
        let mut b = [0u8; 8];
        let first = page_chunk(la, 8);
        let (lo, hi) = b.split_at_mut_checked(first).ok_or(Stop::Form)?;
        self.ops.read_system(la, lo)?;
        if !hi.is_empty() {
            self.ops.read_system(la.wrapping_add(first as u64), hi)?;
        }
        Ok(u64::from_le_bytes(b))
    }

    /// The descriptor `selector` names in the GDT (TI = 0) or the LDT
    /// (TI = 1). #GP(selector) when it lies beyond the table's limit, or
    /// the LDT is unusable (`get_segment_descriptor_dtable` takes its limit
    /// as 0). `wide` checks room for a 16-byte system descriptor.
    pub(crate) fn table_entry(&mut self, selector: u16, wide: bool) -> R<TableEntry> {
        let gp = Exception::GeneralProtection(selector & 0xfffc);
        let (base, limit) = if selector & 4 == 0 {
            let (b, l) = self.ops.gdtr()?;
            (b, Some(u32::from(l)))
        } else {
            let ldt = self.ops.ldtr()?;
            (ldt.base, ldt.usable().then_some(ldt.limit))
        };
        let index = u64::from(selector & 0xfff8);
        let last = index + if wide { 15 } else { 7 };
        if limit.is_none_or(|l| last > u64::from(l)) {
            return super::fault(gp);
        }
        let long = self.ia32e()?;
        let addr = base.wrapping_add(index);
        let addr = if long { addr } else { addr & 0xffff_ffff };
        let raw = self.read_sys_u64(addr)?;
        Ok(TableEntry {
            desc: Descriptor::from_low(raw),
            raw,
            addr,
        })
    }

    /// Write the access byte (byte 5) of the descriptor at `e` with `set`
    /// ORed in: the accessed bit of a segment, the busy bit of a TSS.
    pub(crate) fn set_access_bits(&mut self, e: &TableEntry, set: u8, long: bool) -> R<()> {
        self.write_access_byte(e, ((e.raw >> 40) as u8) | set, long)
    }

    /// Write `access` as the access byte (byte 5: P, DPL, S, type) of the
    /// descriptor at `e`: a task switch clears and sets TSS busy bits.
    pub(crate) fn write_access_byte(&mut self, e: &TableEntry, access: u8, long: bool) -> R<()> {
        let la = e.addr.wrapping_add(5);
        let la = if long { la } else { la & 0xffff_ffff };
        self.ops.write_system(la, &[access])?;
        Ok(())
    }

    /// Read the upper 8 bytes of a 16-byte system descriptor.
    pub(crate) fn upper_half(&mut self, e: &TableEntry) -> R<u64> {
        self.read_sys_u64(e.addr.wrapping_add(8))
    }
}

#[cfg(test)]
mod tests {
    use super::Descriptor;

    #[test]
    fn descriptor_fields() {
        // base 0x1234_5678, limit 0x6_7890 (G = 0), type 9, P, DPL 0, AVL.
        let d = 0x1216_8934_5678_7890u64;
        let t = Descriptor::from_low(d);
        assert_eq!(t.base, 0x1234_5678);
        assert_eq!(t.limit, 0x6_7890);
        assert_eq!(t.access_rights, 0x89 | (1 << 12));
        // G = 1: limit in 4 KiB units.
        let t = Descriptor::from_low(d | (1 << 55));
        assert_eq!(t.limit, 0x6789_0fff);
        assert_eq!(t.access_rights, 0x89 | (1 << 12) | (1 << 15));
        // DPL 3 code, L, D.
        let t = Descriptor::from_low(0x0060_fa00_0000_ffff);
        assert_eq!((t.typ(), t.dpl(), t.long(), t.big()), (0xa, 3, true, true));
        assert!(t.present() && !t.system());
    }
}
