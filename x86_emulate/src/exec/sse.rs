//! SSE/SSE2 data moves: MOVUPS/MOVUPD/MOVDQU, MOVAPS/MOVAPD/MOVDQA,
//! MOVSS/MOVSD, MOVD/MOVQ, MOVLPS/MOVLPD/MOVHPS/MOVHPD, MOVHLPS/MOVLHPS.
//!
//! Not in kvm_emulate.c (Linux added them in 3.x for guests that touch MMIO
//! with SSE, e.g. kvm-unit-tests `test_sse`). The emulator never executes an
//! SSE instruction itself: XMM contents are byte arrays obtained from and
//! handed back to [`EmulatorOps::xmm_read`]/[`EmulatorOps::xmm_write`].
//!
//! Exceptions (SDM Vol. 2 §2.4, exception classes 4 and 5 of the legacy SSE
//! forms; Vol. 3 chapter 13, the table of actions for combinations of
//! OSFXSR, EM, MP and TS): #UD when
//! CR0.EM = 1 or CR4.OSFXSR = 0 (LOCK: #UD at decode), else #NM when
//! CR0.TS = 1; then the segment checks of the memory operand (#GP(0)/#SS(0)),
//! #GP(0) when a MOVAPS/MOVAPD/MOVDQA operand is not 16-byte aligned, and
//! page faults from the ops.

use super::{Exec, GP0, R, Stop, fault, page_chunk};
use crate::decode::Operand;
use crate::decode::table::XmmMove;
use crate::ops::{EmulatorOps, Exception};

/// CR0.EM: emulate x87 (SSE instructions raise #UD).
const CR0_EM: u64 = 1 << 2;
/// CR0.TS: task switched (SSE instructions raise #NM).
const CR0_TS: u64 = 1 << 3;
/// CR4.OSFXSR: the OS supports FXSAVE/FXRSTOR and SSE.
const CR4_OSFXSR: u64 = 1 << 9;

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn xmm_move(&mut self, mv: XmmMove) -> R<()> {
        let cr0 = self.ops.read_cr(0)?;
        let cr4 = self.ops.read_cr(4)?;
        if cr0 & CR0_EM != 0 || cr4 & CR4_OSFXSR == 0 {
            return fault(Exception::InvalidOpcode);
        }
        if cr0 & CR0_TS != 0 {
            return fault(Exception::DeviceNotAvailable);
        }
        let len = usize::from(mv.len);
        let insn = self.insn;
        // Reading the XMM destination first also makes ops without XMM
        // access stop before any memory access.
        let old = match insn.dst {
            Operand::Xmm(d) => self.ops.xmm_read(d)?,
            _ => [0; 16],
        };
        let mut v = [0u8; 16];
        let part = v.get_mut(..len).ok_or(Stop::Form)?;
        match insn.src {
            Operand::Xmm(s) => {
                let x = self.ops.xmm_read(s)?;
                let off = usize::from(mv.src_off);
                part.copy_from_slice(x.get(off..off + len).ok_or(Stop::Form)?);
            }
            Operand::Reg(r, size) => {
                let b = self.reg_read(r, size).to_le_bytes();
                part.copy_from_slice(b.get(..len).ok_or(Stop::Form)?);
            }
            Operand::MemBytes(_) => {
                let la = self.xmm_linear(len, false, mv.aligned)?;
                self.read_bytes(la, part)?;
            }
            _ => return Err(Stop::Form),
        }
        let part = v.get(..len).ok_or(Stop::Form)?;
        match insn.dst {
            Operand::Xmm(d) => {
                let mut x = if mv.zero_rest { [0; 16] } else { old };
                let off = usize::from(mv.dst_off);
                x.get_mut(off..off + len)
                    .ok_or(Stop::Form)?
                    .copy_from_slice(part);
                self.ops.xmm_write(d, x)?;
            }
            Operand::Reg(r, size) => {
                let mut b = [0u8; 8];
                b.get_mut(..len).ok_or(Stop::Form)?.copy_from_slice(part);
                self.reg_write(r, size, u64::from_le_bytes(b));
            }
            Operand::MemBytes(_) => {
                let la = self.xmm_linear(len, true, mv.aligned)?;
                self.write_bytes(la, part)?;
            }
            _ => return Err(Stop::Form),
        }
        Ok(())
    }

    /// Linear address of the memory operand (segment checks first), with
    /// the 16-byte alignment check of the aligned moves.
    fn xmm_linear(&self, len: usize, write: bool, aligned: bool) -> R<u64> {
        let la = self.mem_linear(len, write)?;
        if aligned && la & 15 != 0 {
            return fault(GP0);
        }
        Ok(la)
    }

    /// Read `buf.len()` (at most 16) bytes at `la`, split at a page boundary.
    pub(super) fn read_bytes(&mut self, la: u64, buf: &mut [u8]) -> R<()> {
        let first = page_chunk(la, buf.len());
        let (lo, hi) = buf.split_at_mut_checked(first).ok_or(Stop::Form)?;
        self.ops.read(la, lo)?;
        if !hi.is_empty() {
            self.ops.read(la.wrapping_add(first as u64), hi)?;
        }
        Ok(())
    }

    /// Write `data` (at most 16 bytes) at `la`, split at a page boundary (a
    /// fault on the second page leaves the first part written, as
    /// [`Exec::write_lin`] does).
    pub(super) fn write_bytes(&mut self, la: u64, data: &[u8]) -> R<()> {
        let first = page_chunk(la, data.len());
        let (lo, hi) = data.split_at_checked(first).ok_or(Stop::Form)?;
        self.ops.write(la, lo)?;
        if !hi.is_empty() {
            self.ops.write(la.wrapping_add(first as u64), hi)?;
        }
        Ok(())
    }
}
