//! The task-state segment layouts: the 32-bit TSS (SDM Vol. 3 §7.2.1,
//! Figure 7-2) and the 16-bit TSS (§7.6, Figure 7-11). Which fields a task
//! switch reads from the new task's TSS and which dynamic fields it writes
//! into the outgoing task's TSS (§7.2.1: the static fields — the stack
//! pointers of the inner levels, CR3, the LDT selector, T and the I/O map
//! base — are never written).
//!
//! Port of the `struct tss32`/`struct tss16` images of kvm_x86.c
//! (`save_state_to_tss32/16`, `load_state_from_tss32/16`); unlike the C,
//! the outgoing task's CR3 and LDT selector are not written (static
//! fields, as Linux's `save_state_to_tss32` since) and the reserved upper
//! halves of the selector slots keep what the TSS held.

/// A TSS format, from the type of its descriptor (1/3: 16-bit, 9/11:
/// 32-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TssKind {
    /// The 80286 TSS (types 1 and 3).
    Bits16,
    /// The 32-bit TSS (types 9 and 11).
    Bits32,
}

/// The largest image read (the 32-bit TSS up to the I/O map base).
pub(crate) const IMAGE_MAX: usize = 0x68;

impl TssKind {
    /// The format of a TSS descriptor of type `typ` (bit 3: 32-bit).
    pub(crate) fn of(typ: u8) -> TssKind {
        if typ & 8 != 0 {
            TssKind::Bits32
        } else {
            TssKind::Bits16
        }
    }

    /// The least limit a TSS of this format may have (SDM Vol. 3 §7.2.2:
    /// 67H; §7.6: 2BH), else #TS.
    pub(crate) fn min_limit(self) -> u32 {
        match self {
            TssKind::Bits16 => 0x2b,
            TssKind::Bits32 => 0x67,
        }
    }

    /// How many bytes of the new task's TSS a switch reads.
    pub(crate) fn image_len(self) -> usize {
        self.min_limit() as usize + 1
    }

    /// The dynamic fields an outgoing task saves: the byte range from the
    /// instruction pointer to the last segment selector (32-bit: EIP at
    /// 20H to GS at 5CH; 16-bit: IP at 0EH to DS at 28H).
    pub(crate) fn dynamic(self) -> (usize, usize) {
        match self {
            TssKind::Bits16 => (0x0e, 0x2a - 0x0e),
            TssKind::Bits32 => (0x20, 0x5e - 0x20),
        }
    }

    /// Width of the stack push of an error code through this TSS's task
    /// gate (SDM Vol. 2 "INT n": a 32-bit TSS pushes 4 bytes, a 16-bit
    /// one 2).
    pub(crate) fn push_bytes(self) -> usize {
        match self {
            TssKind::Bits16 => 2,
            TssKind::Bits32 => 4,
        }
    }
}

/// A task's dynamic state as a TSS holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TaskState {
    pub eip: u32,
    pub eflags: u32,
    /// EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI.
    pub gpr: [u32; 8],
    /// ES, CS, SS, DS, FS, GS (the TSS order).
    pub sel: [u16; 6],
    pub ldt: u16,
    /// CR3 (32-bit TSS only).
    pub cr3: u32,
    /// T, the debug trap flag (32-bit TSS only).
    pub trap: bool,
}

fn u16_at(img: &[u8], off: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(s) = img.get(off..off.saturating_add(2)) {
        b.copy_from_slice(s);
    }
    u16::from_le_bytes(b)
}

fn u32_at(img: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = img.get(off..off.saturating_add(4)) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

fn put(img: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(d) = img.get_mut(off..off.saturating_add(bytes.len())) {
        d.copy_from_slice(bytes);
    }
}

impl TaskState {
    /// The state a switch loads from the new task's TSS image `img` (read
    /// from offset 0). A 16-bit TSS has no FS, GS, CR3 or T: FS and GS
    /// are loaded null and the upper halves of the general registers are
    /// set, as Bochs does for an incoming 16-bit TSS.
    pub(crate) fn parse(kind: TssKind, img: &[u8]) -> TaskState {
        match kind {
            TssKind::Bits32 => {
                let mut gpr = [0u32; 8];
                for (off, r) in (0x28..).step_by(4).zip(gpr.iter_mut()) {
                    *r = u32_at(img, off);
                }
                let mut sel = [0u16; 6];
                for (off, s) in (0x48..).step_by(4).zip(sel.iter_mut()) {
                    *s = u16_at(img, off);
                }
                TaskState {
                    eip: u32_at(img, 0x20),
                    eflags: u32_at(img, 0x24),
                    gpr,
                    sel,
                    ldt: u16_at(img, 0x60),
                    cr3: u32_at(img, 0x1c),
                    trap: u16_at(img, 0x64) & 1 != 0,
                }
            }
            TssKind::Bits16 => {
                let mut gpr = [0u32; 8];
                for (off, r) in (0x12..).step_by(2).zip(gpr.iter_mut()) {
                    *r = 0xffff_0000 | u32::from(u16_at(img, off));
                }
                let mut sel = [0u16; 6];
                for (off, s) in (0x22..).step_by(2).zip(sel.iter_mut().take(4)) {
                    *s = u16_at(img, off);
                }
                TaskState {
                    eip: u32::from(u16_at(img, 0x0e)),
                    eflags: u32::from(u16_at(img, 0x10)),
                    gpr,
                    sel,
                    ldt: u16_at(img, 0x2a),
                    cr3: 0,
                    trap: false,
                }
            }
        }
    }

    /// Write this state's dynamic fields into `block`, the outgoing TSS's
    /// bytes [`TssKind::dynamic`] as read (the reserved upper halves of
    /// the 32-bit selector slots keep their contents).
    pub(crate) fn save(&self, kind: TssKind, block: &mut [u8]) {
        match kind {
            TssKind::Bits32 => {
                put(block, 0, &self.eip.to_le_bytes());
                put(block, 4, &self.eflags.to_le_bytes());
                for (off, r) in (8..).step_by(4).zip(self.gpr.iter()) {
                    put(block, off, &r.to_le_bytes());
                }
                for (off, s) in (0x28..).step_by(4).zip(self.sel.iter()) {
                    put(block, off, &s.to_le_bytes());
                }
            }
            TssKind::Bits16 => {
                put(block, 0, &(self.eip as u16).to_le_bytes());
                put(block, 2, &(self.eflags as u16).to_le_bytes());
                for (off, r) in (4..).step_by(2).zip(self.gpr.iter()) {
                    put(block, off, &(*r as u16).to_le_bytes());
                }
                for (off, s) in (0x14..).step_by(2).zip(self.sel.iter().take(4)) {
                    put(block, off, &s.to_le_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_sdm_figures() {
        let mut img = [0u8; IMAGE_MAX];
        for (i, b) in img.iter_mut().enumerate() {
            *b = i as u8;
        }
        let t = TaskState::parse(TssKind::Bits32, &img);
        assert_eq!(t.cr3, 0x1f1e_1d1c);
        assert_eq!(t.eip, 0x2322_2120);
        assert_eq!(t.eflags, 0x2726_2524);
        assert_eq!(t.gpr[0], 0x2b2a_2928);
        assert_eq!(t.gpr[7], 0x4746_4544);
        assert_eq!(t.sel, [0x4948, 0x4d4c, 0x5150, 0x5554, 0x5958, 0x5d5c]);
        assert_eq!(t.ldt, 0x6160);
        assert!(!t.trap);
        let t = TaskState::parse(TssKind::Bits16, &img);
        assert_eq!((t.eip, t.eflags), (0x0f0e, 0x1110));
        assert_eq!(t.gpr[0], 0xffff_1312);
        assert_eq!(t.gpr[7], 0xffff_2120);
        assert_eq!(t.sel, [0x2322, 0x2524, 0x2726, 0x2928, 0, 0]);
        assert_eq!(t.ldt, 0x2b2a);
        // Saving writes back exactly the dynamic bytes.
        for kind in [TssKind::Bits32, TssKind::Bits16] {
            let (off, len) = kind.dynamic();
            let state = TaskState::parse(kind, &img);
            let mut block = [0u8; IMAGE_MAX];
            let block = &mut block[..len];
            block.copy_from_slice(&img[off..off + len]);
            let mut again = TaskState::parse(kind, &img);
            again.gpr = state.gpr;
            again.save(kind, block);
            assert_eq!(block, &img[off..off + len], "{kind:?}");
        }
    }
}
