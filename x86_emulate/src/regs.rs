//! The guest register file the caller hands to the emulator.
//!
//! Ports the `regs[]`, `eip` and `eflags` members of `struct decode_cache`
//! (kvm_emulate.h); the caller loads it from the VMCS and stores it back.

use crate::mode::Size;

/// A general-purpose register, numbered as in the ModRM/REX encoding
/// (SDM Vol. 2 Table 2-2 / 2-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Gpr {
    /// RAX / accumulator.
    Rax = 0,
    /// RCX / count.
    Rcx = 1,
    /// RDX / data, I/O port.
    Rdx = 2,
    /// RBX.
    Rbx = 3,
    /// RSP / stack pointer.
    Rsp = 4,
    /// RBP / frame pointer.
    Rbp = 5,
    /// RSI / string source.
    Rsi = 6,
    /// RDI / string destination.
    Rdi = 7,
    /// R8.
    R8 = 8,
    /// R9.
    R9 = 9,
    /// R10.
    R10 = 10,
    /// R11.
    R11 = 11,
    /// R12.
    R12 = 12,
    /// R13.
    R13 = 13,
    /// R14.
    R14 = 14,
    /// R15.
    R15 = 15,
}

/// The 16 GPRs, RIP and RFLAGS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    /// GPRs indexed by [`Gpr`].
    pub gpr: [u64; 16],
    /// Instruction pointer (of the instruction to emulate, on entry).
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
}

impl Registers {
    /// Read a full 64-bit register.
    pub fn get(&self, r: Gpr) -> u64 {
        self.raw(r as u8)
    }

    /// Write a full 64-bit register.
    pub fn set(&mut self, r: Gpr, v: u64) {
        self.write(r as u8, Size::S64, v);
    }

    fn raw(&self, n: u8) -> u64 {
        self.gpr.get(usize::from(n & 15)).copied().unwrap_or(0)
    }

    /// Read register number `n` (0-15) at width `size` (no high-byte forms).
    pub fn read(&self, n: u8, size: Size) -> u64 {
        size.trunc(self.raw(n))
    }

    /// Write register number `n` at width `size` following the SDM rule for
    /// 64-bit mode (Vol. 1 §3.4.1.1): 32-bit writes zero-extend into the full
    /// register, 8- and 16-bit writes leave the other bits unchanged.
    pub fn write(&mut self, n: u8, size: Size, v: u64) {
        if let Some(slot) = self.gpr.get_mut(usize::from(n & 15)) {
            *slot = match size {
                Size::S32 => v & 0xffff_ffff,
                Size::S64 => v,
                s => (*slot & !s.mask()) | (v & s.mask()),
            };
        }
    }

    /// Read the legacy high byte register AH/CH/DH/BH of register `n` (0-3).
    pub fn read_high_byte(&self, n: u8) -> u64 {
        (self.raw(n & 3) >> 8) & 0xff
    }

    /// Write the legacy high byte register AH/CH/DH/BH of register `n` (0-3).
    pub fn write_high_byte(&mut self, n: u8, v: u64) {
        if let Some(slot) = self.gpr.get_mut(usize::from(n & 3)) {
            *slot = (*slot & !0xff00) | ((v & 0xff) << 8);
        }
    }
}
