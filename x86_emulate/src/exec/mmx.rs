//! MMX data moves: MOVD/MOVQ between an MMX register and memory, a
//! general-purpose register or another MMX register (0F 6E/6F/7E/7F).
//!
//! Not in kvm_emulate.c (Linux emulates them for MMIO since 3.x,
//! kvm-unit-tests `test_mmx`). MMX register i is the low 8 bytes of the
//! x87 register ST(i) area of the FXSAVE image, which the emulator reads
//! and writes through [`EmulatorOps::fpu_read`]/[`EmulatorOps::fpu_write`]
//! (it executes no MMX instruction itself).
//!
//! Exceptions (the MMX forms' lists of SDM Vol. 2 "MOVD/MOVQ" and "MOVQ",
//! the legacy SIMD/MMX table of Vol. 3 ch. 22 they refer to): #UD with
//! CR0.EM = 1 (LOCK: #UD at decode; CR4.OSFXSR does not matter), #NM with
//! CR0.TS = 1, #MF when an unmasked x87 exception is pending (FSW.ES),
//! then the segment checks and page faults of the memory operand. The x87
//! state change of SDM Vol. 1 §9.5.1: every MMX instruction but EMMS sets
//! TOS (FSW bits 13:11) to 0 and all tags valid (abridged FTW 0xFF); a
//! write to MMX register i also sets bits 79:64 of ST(i) to ones.

use super::{Exec, R, Stop, fault};
use crate::decode::Operand;
use crate::ops::{EmulatorOps, Exception};

/// CR0.EM: emulate x87 (MMX instructions raise #UD).
const CR0_EM: u64 = 1 << 2;
/// CR0.TS: task switched (MMX instructions raise #NM).
const CR0_TS: u64 = 1 << 3;
/// FXSAVE offset of the x87 status word.
const FSW: usize = 2;
/// FXSAVE offset of the abridged tag word.
const FTW: usize = 4;
/// FXSAVE offset of ST(0)/MM0; each register takes 16 bytes.
const ST0: usize = 32;
/// FSW.ES: an unmasked exception is pending.
const FSW_ES: u16 = 1 << 7;
/// FSW.TOP (bits 13:11).
const FSW_TOP: u16 = 7 << 11;

fn mm_offset(reg: u8) -> usize {
    ST0 + 16 * usize::from(reg & 7)
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    pub(super) fn mmx_move(&mut self, len: u8) -> R<()> {
        let cr0 = self.ops.read_cr(0)?;
        if cr0 & CR0_EM != 0 {
            return fault(Exception::InvalidOpcode);
        }
        if cr0 & CR0_TS != 0 {
            return fault(Exception::DeviceNotAvailable);
        }
        // First FPU access: ops without one stop before any memory access.
        let mut fsw = [0u8; 2];
        self.ops.fpu_read(FSW, &mut fsw)?;
        let fsw = u16::from_le_bytes(fsw);
        if fsw & FSW_ES != 0 {
            return fault(Exception::FloatingPoint);
        }
        let len = usize::from(len);
        let insn = self.insn;
        let mut v = [0u8; 8];
        let part = v.get_mut(..len).ok_or(Stop::Form)?;
        match insn.src {
            Operand::Mmx(s) => {
                let mut b = [0u8; 8];
                self.ops.fpu_read(mm_offset(s), &mut b)?;
                part.copy_from_slice(b.get(..len).ok_or(Stop::Form)?);
            }
            Operand::Reg(r, size) => {
                let b = self.reg_read(r, size).to_le_bytes();
                part.copy_from_slice(b.get(..len).ok_or(Stop::Form)?);
            }
            Operand::MemBytes(_) => {
                let la = self.mem_linear(len, false)?;
                self.read_bytes(la, part)?;
            }
            _ => return Err(Stop::Form),
        }
        let mut dst_mm = None;
        match insn.dst {
            // MOVD mm, r/m32 zero-extends to 64 bits.
            Operand::Mmx(d) => dst_mm = Some(d),
            Operand::Reg(r, size) => self.reg_write(r, size, u64::from_le_bytes(v)),
            Operand::MemBytes(_) => {
                let la = self.mem_linear(len, true)?;
                self.write_bytes(la, v.get(..len).ok_or(Stop::Form)?)?;
            }
            _ => return Err(Stop::Form),
        }
        // The x87 state every MMX instruction leaves, then the register.
        self.ops.fpu_write(FSW, &(fsw & !FSW_TOP).to_le_bytes())?;
        self.ops.fpu_write(FTW, &[0xff])?;
        if let Some(d) = dst_mm {
            let at = mm_offset(d);
            self.ops.fpu_write(at, &v)?;
            self.ops.fpu_write(at + 8, &[0xff, 0xff])?;
        }
        Ok(())
    }
}
