//! Legacy and REX prefixes.
//!
//! Ports the prefix loop at the top of `x86_decode_insn` (kvm_emulate.c:1000)
//! following SDM Vol. 2 §2.1.1 (legacy prefixes) and §2.2.1 (REX: only
//! effective when it immediately precedes the opcode, only in 64-bit mode).

use crate::mode::Mode;
use crate::ops::Seg;

/// A repeat prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// F3: REP / REPE / REPZ.
    Repe,
    /// F2: REPNE / REPNZ.
    Repne,
}

/// The REX prefix byte (0 when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rex(pub u8);

impl Rex {
    /// A REX prefix is present (changes byte-register encoding).
    pub const fn present(self) -> bool {
        self.0 & 0xf0 == 0x40
    }
    /// REX.W: 64-bit operand size.
    pub const fn w(self) -> bool {
        self.0 & 8 != 0
    }
    /// REX.R: extends ModRM.reg.
    pub const fn r(self) -> u8 {
        (self.0 & 4) << 1
    }
    /// REX.X: extends SIB.index.
    pub const fn x(self) -> u8 {
        (self.0 & 2) << 2
    }
    /// REX.B: extends ModRM.rm, SIB.base or the opcode register.
    pub const fn b(self) -> u8 {
        (self.0 & 1) << 3
    }
}

/// The prefixes of one instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefixes {
    /// 66: operand-size override.
    pub opsize: bool,
    /// 67: address-size override.
    pub addrsize: bool,
    /// Segment override (the last one wins).
    pub seg: Option<Seg>,
    /// F0: LOCK.
    pub lock: bool,
    /// F2/F3 (the last one wins).
    pub rep: Option<Rep>,
    /// REX (64-bit mode only).
    pub rex: Rex,
}

/// Parse the prefixes at the start of `bytes`; returns them and their length.
/// Running out of bytes returns the count consumed so far (the caller then
/// fails to read the opcode).
pub fn parse(bytes: &[u8], mode: Mode) -> (Prefixes, usize) {
    let mut p = Prefixes::default();
    let mut n = 0;
    for &b in bytes {
        match b {
            0x66 => p.opsize = true,
            0x67 => p.addrsize = true,
            // In 64-bit mode ES/CS/SS/DS overrides have no effect (SDM Vol. 1
            // §3.3.7.1): they are recorded, but do not displace FS/GS.
            0x26 | 0x2e | 0x36 | 0x3e
                if mode.is_64() && matches!(p.seg, Some(Seg::Fs | Seg::Gs)) => {}
            0x26 => p.seg = Some(Seg::Es),
            0x2e => p.seg = Some(Seg::Cs),
            0x36 => p.seg = Some(Seg::Ss),
            0x3e => p.seg = Some(Seg::Ds),
            0x64 => p.seg = Some(Seg::Fs),
            0x65 => p.seg = Some(Seg::Gs),
            0xf0 => p.lock = true,
            0xf2 => p.rep = Some(Rep::Repne),
            0xf3 => p.rep = Some(Rep::Repe),
            0x40..=0x4f if mode.is_64() => {
                p.rex = Rex(b);
                n += 1;
                // A REX followed by anything but the opcode is ignored: keep
                // scanning, and drop it if another prefix comes next.
                continue;
            }
            _ => break,
        }
        p.rex = Rex(0);
        n += 1;
    }
    (p, n)
}
