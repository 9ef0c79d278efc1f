//! Segment register loads: the descriptor checks of MOV Sreg, POP Sreg,
//! LDS/LES/LFS/LGS/LSS and of the CS/SS loads of far transfers.
//!
//! Port of kvm_x86.c:`kvm_load_segment_descriptor` with the later fixes of
//! Linux emulate.c `__load_segment_descriptor` (the transfer kind, the
//! 64-bit null SS, L and D both set, the accessed bit only when clear),
//! following the SDM Vol. 2 pseudo-code of "MOV", "POP", "LDS/LES/LFS/LGS/LSS",
//! "JMP", "CALL", "RET" and "IRET" and Vol. 3 §5.5-§5.8 (privilege checks),
//! and the segment loads of a task switch (Vol. 3 §7.3 step 13, Table 7-1:
//! #TS instead of #GP, CS checked against its own RPL, which is the new CPL).
//! Real-address mode loads base = selector << 4 and keeps limit and
//! attributes ("unreal" limits survive, as Linux's emulator keeps them);
//! virtual-8086 mode loads a 64 KiB DPL 3 read/write data segment (Vol. 3
//! ch. 20; the VM-entry "Checks on Guest Segment Registers" of Vol. 3
//! require exactly that cache in virtual-8086 mode).
//! Nothing is committed here: the caller hands the cache to
//! [`EmulatorOps::set_segment`] once every check of its instruction passed.

use super::descriptor::TableEntry;
use super::{Exec, GP0, R, Stop, fault};
use crate::mode::Mode;
use crate::ops::{EmulatorOps, Exception, OpError, Seg, SegmentCache};

/// Why a segment register is loaded (Linux's `enum x86_transfer_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// MOV, POP, LDS ...: data and stack segments.
    Data,
    /// Far JMP or CALL: CS, privilege unchanged.
    CallJmp,
    /// Far RET or IRET: CS, to the same or an outer privilege level.
    Ret,
    /// A task switch loads the new task's segments (`cpl` is the new
    /// CPL, CS.RPL): invalid selectors and descriptors are #TS(selector)
    /// (SDM Vol. 3 Table 7-1); a non-conforming CS needs DPL = RPL, a
    /// conforming one DPL <= RPL (Linux's `X86_TRANSFER_TASK_SWITCH`).
    TaskSwitch,
}

/// Type bit 3: a code segment (S = 1).
const CODE: u8 = 8;
/// Type bit 2 of a code segment: conforming.
const CONFORMING: u8 = 4;
/// Type bit 0: accessed.
const ACCESSED: u8 = 1;
/// Access rights of a 32-bit expand-up read/write data segment, accessed,
/// present, S = 1, D = 1, G = 1 (DPL added).
const FLAT_DATA: u32 = 0xc093;
/// A real-mode data segment: read/write, accessed, present, S = 1.
const REAL_DATA: u32 = 0x93;
/// A virtual-8086 mode segment: as [`REAL_DATA`] with DPL 3.
const VM86_DATA: u32 = 0xf3;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// The cache `seg` gets when `selector` is loaded at privilege `cpl`.
    /// `long` says whether the code that runs afterwards is in 64-bit
    /// mode (a null SS is allowed there at CPL < 3 with RPL = CPL).
    /// Faults: #GP(0) for a null selector where none may be; #GP(selector)
    /// for a descriptor beyond its table, of the wrong type or privilege;
    /// #SS(selector) for an SS and #NP(selector) for the others when not
    /// present; #TS instead of #GP for [`Transfer::TaskSwitch`]. Call
    /// gates, task gates and TSSs as far JMP/CALL targets (task switches)
    /// are unhandleable.
    pub(crate) fn segment_for(
        &mut self,
        seg: Seg,
        selector: u16,
        cpl: u8,
        transfer: Transfer,
        long: bool,
    ) -> R<SegmentCache> {
        let base = u64::from(selector) << 4;
        match self.mode {
            Mode::Real => {
                let cur = self.ops.get_segment(seg)?;
                let access_rights = if cur.usable() {
                    cur.access_rights
                } else {
                    REAL_DATA
                };
                return Ok(SegmentCache {
                    selector,
                    base,
                    access_rights,
                    ..cur
                });
            }
            Mode::Vm86 => {
                return Ok(SegmentCache {
                    selector,
                    base,
                    limit: 0xffff,
                    access_rights: VM86_DATA,
                });
            }
            _ => {}
        }
        let rpl = selector & 3;
        let cpl = cpl & 3;
        let task_switch = transfer == Transfer::TaskSwitch;
        // #GP(code) for the instructions, #TS(code) in a task switch.
        let invalid = |code: u16| {
            if task_switch {
                Exception::InvalidTss(code)
            } else {
                Exception::GeneralProtection(code)
            }
        };
        if selector & !3 == 0 {
            return match seg {
                Seg::Cs => fault(invalid(0)),
                // SDM "MOV", 64-bit mode exceptions: a null SS only below
                // CPL 3 and with RPL = CPL. It keeps the CPL in its DPL
                // (Linux fakes a flat data segment for the same reason).
                Seg::Ss if long && cpl != 3 && rpl == u16::from(cpl) => Ok(SegmentCache {
                    selector,
                    base: 0,
                    limit: 0xffff_ffff,
                    access_rights: SegmentCache::UNUSABLE | FLAT_DATA | (u32::from(cpl) << 5),
                }),
                Seg::Ss => fault(invalid(0)),
                _ => Ok(SegmentCache {
                    selector,
                    base: 0,
                    limit: 0,
                    access_rights: SegmentCache::UNUSABLE,
                }),
            };
        }
        let err = selector & 0xfffc;
        let gp = invalid(err);
        let entry = match self.table_entry(selector, false) {
            // Beyond the table's limit: #TS in a task switch.
            Err(Stop::Op(OpError::Fault(Exception::GeneralProtection(e)))) if e == err => {
                return fault(gp);
            }
            r => r?,
        };
        let d = entry.desc;
        if d.system() {
            // A call gate (4, 12), task gate (5) or TSS (1, 3, 9, 11) as a
            // far JMP/CALL target needs a gate or task switch: not emulated.
            if seg == Seg::Cs
                && transfer == Transfer::CallJmp
                && matches!(d.typ(), 1 | 3 | 4 | 5 | 9 | 11 | 12)
            {
                return Err(Stop::Form);
            }
            return fault(gp);
        }
        let (typ, dpl, rpl) = (d.typ(), d.dpl(), rpl as u8);
        let ok = match (seg, transfer) {
            // A writable data segment, RPL = DPL = CPL.
            (Seg::Ss, _) => rpl == cpl && typ & 0xa == 0x2 && dpl == cpl,
            (Seg::Cs, Transfer::CallJmp) => {
                typ & CODE != 0
                    && if typ & CONFORMING != 0 {
                        dpl <= cpl
                    } else {
                        rpl <= cpl && dpl == cpl
                    }
            }
            // RET/IRET never go to an inner level; the privilege level
            // returned to is the selector's RPL.
            (Seg::Cs, Transfer::Ret) => {
                typ & CODE != 0
                    && rpl >= cpl
                    && if typ & CONFORMING != 0 {
                        dpl <= rpl
                    } else {
                        dpl == rpl
                    }
            }
            // The new CPL is CS.RPL.
            (Seg::Cs, Transfer::TaskSwitch) => {
                typ & CODE != 0
                    && if typ & CONFORMING != 0 {
                        dpl <= rpl
                    } else {
                        dpl == rpl
                    }
            }
            (Seg::Cs, Transfer::Data) => false,
            // A data or readable code segment; data and non-conforming
            // code also need RPL <= DPL and CPL <= DPL.
            _ => typ & 0xa != 0x8 && (typ & 0xc == 0xc || (rpl <= dpl && cpl <= dpl)),
        };
        if !ok {
            return fault(gp);
        }
        if seg == Seg::Cs && d.long() && d.big() && self.ia32e()? {
            return fault(gp);
        }
        if !d.present() {
            return fault(if seg == Seg::Ss {
                Exception::StackFault(err)
            } else {
                Exception::SegmentNotPresent(err)
            });
        }
        let selector = match transfer {
            // CS.RPL <- CPL.
            Transfer::CallJmp => (selector & 0xfffc) | u16::from(cpl),
            _ => selector,
        };
        self.mark_accessed(&entry)?;
        let mut cache = d.cache(selector);
        cache.access_rights |= u32::from(ACCESSED);
        Ok(cache)
    }

    /// Set the accessed bit in the descriptor table, as the CPU does when
    /// it loads a segment register (SDM Vol. 3 §3.4.5.1), if clear.
    fn mark_accessed(&mut self, e: &TableEntry) -> R<()> {
        if e.desc.typ() & ACCESSED != 0 {
            return Ok(());
        }
        let long = self.ia32e()?;
        self.set_access_bits(e, ACCESSED, long)
    }

    /// MOV Sreg, POP Sreg, LDS ...: check and load `selector` into `seg`
    /// at the current privilege level.
    pub(crate) fn load_sreg(&mut self, seg: Seg, selector: u16) -> R<()> {
        let cpl = self.cpl();
        let long = self.mode.is_64();
        let cache = self.segment_for(seg, selector, cpl, Transfer::Data, long)?;
        self.ops.set_segment(seg, cache)?;
        Ok(())
    }

    /// The mode the code segment `cs` selects (SDM Vol. 3 §5.2.1): 64-bit
    /// with CS.L in IA-32e mode, else CS.D's width.
    pub(crate) fn mode_for_cs(&mut self, cs: &SegmentCache) -> R<Mode> {
        if !self.protected() {
            return Ok(self.mode);
        }
        let long = cs.access_rights & (1 << 13) != 0 && self.ia32e()?;
        Ok(if long {
            Mode::Prot64
        } else if cs.access_rights & (1 << 14) != 0 {
            Mode::Prot32
        } else {
            Mode::Prot16
        })
    }

    /// The instruction pointer `ip` in the code segment `cs` of mode
    /// `mode`: #GP(0) beyond the limit outside 64-bit mode, or
    /// non-canonical in it.
    pub(crate) fn check_target(&self, cs: &SegmentCache, mode: Mode, ip: u64) -> R<u64> {
        let bad = if mode.is_64() {
            ((ip as i64) << 16) >> 16 != ip as i64
        } else {
            ip > u64::from(cs.limit)
        };
        if bad { fault(GP0) } else { Ok(ip) }
    }
}
