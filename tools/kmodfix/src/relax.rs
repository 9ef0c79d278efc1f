//! In-place GOTPCREL relaxation (§0.1, §5.4.1).
//!
//! krtld (`uts/intel/amd64/krtld/kobj_reloc.c` `do_relocate`) has no GOT: for
//! R_X86_64_GOTPCREL/GOTPCRELX/REX_GOTPCRELX it stores the low 32 bits of
//! `S + A` without subtracting P (`doreloc.c` gives those types no
//! `FLG_RE_PCREL`). A module in the top 2 GiB passes the overflow check, so it
//! loads and then jumps into garbage (opte issue #1). The standard psABI
//! relaxations below turn each "load the address of S from its GOT slot" into
//! "use S directly", with a same-size encoding and a PC32 relocation, which
//! krtld computes correctly. The relaxation is only valid when the symbol is
//! within ±2 GiB, which `code-model=kernel` guarantees for module and kernel.

use crate::Error;
use crate::elf::{
    self, Elf, R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_PC32, R_X86_64_REX_GOTPCRELX,
    SHT_NOBITS, SHT_RELA,
};

/// Whether a relocation type loads through the GOT.
pub fn is_gotpcrel(r_type: u32) -> bool {
    matches!(
        r_type,
        R_X86_64_GOTPCREL | R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX
    )
}

/// The addend every relaxable site has: the 32-bit field is the last thing
/// in the instruction, so `P + 4` is the address of the next instruction.
const GOT_ADDEND: i64 = -4;

/// What a GOTPCREL site becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relaxation {
    /// `ff 15 disp32` (`call *S@GOTPCREL(%rip)`) -> `67 e8 rel32`
    /// (`addr32 call S`). The 0x67 prefix is ignored by a near call and keeps
    /// the size; the field stays at the same offset, so offset and addend stay.
    Call,
    /// `ff 25 disp32` (`jmp *S@GOTPCREL(%rip)`) -> `e9 rel32; 90`. The field
    /// moves one byte back (offset - 1). The addend stays the same because in
    /// both encodings the field ends exactly at the end of the jump: before,
    /// target slot = (P + 4) + (S + A - P) = S + A + 4; after, with the field
    /// at P' = P - 1 and the `jmp` ending at P' + 4, target =
    /// (P' + 4) + (S + A - P') = S + A + 4. The `nop` is after the `jmp`
    /// and never executes.
    Jmp,
    /// `REX.W 8b /r` with ModRM mod=00 rm=101 (`mov S@GOTPCREL(%rip), %r64`)
    /// -> the same bytes with opcode `8d` (`lea S(%rip), %r64`): it loads the
    /// address instead of reading it from the GOT. Offset and addend stay.
    Mov,
}

impl Relaxation {
    pub fn describe(self) -> &'static str {
        match self {
            Relaxation::Call => "call *GOT -> addr32 call",
            Relaxation::Jmp => "jmp *GOT -> jmp rel32; nop",
            Relaxation::Mov => "mov GOT(%rip) -> lea",
        }
    }
}

/// Decides how the GOTPCREL site whose 32-bit field is at `o` in `code` can be
/// relaxed, or why it cannot.
pub fn classify(code: &[u8], o: u64, addend: i64) -> Result<Relaxation, String> {
    let o = usize::try_from(o).map_err(|_| format!("offset {o:#x} out of range"))?;
    if o.checked_add(4).is_none_or(|end| end > code.len()) {
        return Err(format!(
            "relocation field {o:#x}+4 is outside the section ({:#x} bytes)",
            code.len()
        ));
    }
    if o < 2 {
        return Err("no room for an opcode before the relocation field".to_string());
    }
    let (op, modrm) = (code[o - 2], code[o - 1]);
    let found = if o >= 3 {
        format!("{:02x} {op:02x} {modrm:02x}", code[o - 3])
    } else {
        format!("{op:02x} {modrm:02x}")
    };
    let kind = match (op, modrm) {
        (0xff, 0x15) => Relaxation::Call,
        (0xff, 0x25) => Relaxation::Jmp,
        // mod=00 rm=101 is RIP-relative; reg (bits 5:3) is the destination.
        (0x8b, m) if m & 0xc7 == 0x05 && o >= 3 && is_rex_w(code[o - 3]) => Relaxation::Mov,
        (0x8b, m) if m & 0xc7 == 0x05 => {
            return Err(format!(
                "bytes [{found}] are a mov without REX.W (32-bit load of a GOT slot)"
            ));
        }
        _ => {
            return Err(format!(
                "bytes [{found}] are not `call *GOT` (ff 15), `jmp *GOT` (ff 25) or `REX.W mov GOT(%rip), %reg` (48+ 8b)"
            ));
        }
    };
    if addend != GOT_ADDEND {
        return Err(format!(
            "addend {addend} is not {GOT_ADDEND}: the instruction reads GOT slot + offset, not the slot"
        ));
    }
    Ok(kind)
}

fn is_rex_w(b: u8) -> bool {
    b & 0xf8 == 0x48
}

/// What [`relax_gotpcrel`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelaxStats {
    pub calls: usize,
    pub jmps: usize,
    pub movs: usize,
}

impl RelaxStats {
    pub fn total(&self) -> usize {
        self.calls + self.jmps + self.movs
    }
}

struct Edit {
    reloc: elf::Reloc,
    /// File offset of the 32-bit field.
    field: usize,
    kind: Relaxation,
}

/// Relaxes every relaxable GOTPCREL* relocation of an object in place.
/// Sites that cannot be relaxed are left untouched: the audit reports them
/// (with the reason from [`classify`]) and fails the build.
pub fn relax_gotpcrel(bytes: &mut [u8]) -> Result<RelaxStats, Error> {
    let edits = {
        let elf = Elf::parse(bytes)?;
        let mut edits = Vec::new();
        // Two GOT relocations on one field (corrupt input) must not be
        // rewritten twice; the second stays and the audit rejects it.
        let mut seen = std::collections::HashSet::new();
        for rs in elf.sections.iter().filter(|s| s.sh_type == SHT_RELA) {
            let target = elf.section(rs.info as usize)?;
            if !target.is_alloc() || target.sh_type == SHT_NOBITS {
                continue;
            }
            let code = elf.section_data(target)?;
            let base = elf.section_file_offset(target)?;
            for r in elf.relocs(rs)? {
                if !is_gotpcrel(r.r_type) {
                    continue;
                }
                if !seen.insert((target.index, r.offset)) {
                    continue;
                }
                if let Ok(kind) = classify(code, r.offset, r.addend) {
                    // classify() checked offset + 4 <= code.len().
                    edits.push(Edit {
                        reloc: r,
                        field: base + r.offset as usize,
                        kind,
                    });
                }
            }
        }
        edits
    };

    let mut stats = RelaxStats::default();
    for e in &edits {
        match e.kind {
            Relaxation::Call => {
                bytes[e.field - 2] = 0x67;
                bytes[e.field - 1] = 0xe8;
                elf::write_rela(bytes, &e.reloc, e.reloc.offset, R_X86_64_PC32)?;
                stats.calls += 1;
            }
            Relaxation::Jmp => {
                // ff 25 d0 d1 d2 d3 -> e9 d0 d1 d2 d3 90; the field (all
                // zero in an ET_REL, since the addend is in the RELA entry)
                // moves one byte back.
                bytes.copy_within(e.field..e.field + 4, e.field - 1);
                bytes[e.field - 2] = 0xe9;
                bytes[e.field + 3] = 0x90;
                elf::write_rela(bytes, &e.reloc, e.reloc.offset - 1, R_X86_64_PC32)?;
                stats.jmps += 1;
            }
            Relaxation::Mov => {
                bytes[e.field - 2] = 0x8d;
                elf::write_rela(bytes, &e.reloc, e.reloc.offset, R_X86_64_PC32)?;
                stats.movs += 1;
            }
        }
    }
    Ok(stats)
}

/// The GOT base symbol gas declares (undefined) in objects using GOTPCREL.
pub const GOT_SYMBOL: &str = "_GLOBAL_OFFSET_TABLE_";

/// Whether the object has an undefined [`GOT_SYMBOL`] that no relocation
/// names, i.e. one that can be stripped after relaxation.
pub fn got_symbol_unreferenced(bytes: &[u8]) -> Result<bool, Error> {
    Ok(!unreferenced_undefined(bytes, |n| n == GOT_SYMBOL)?.is_empty())
}

/// The undefined symbols selected by `select` that no relocation names
/// (sorted, distinct), i.e. ones that can be stripped: nothing in the
/// object uses them, but krtld would still try to resolve each.
pub fn unreferenced_undefined(
    bytes: &[u8],
    select: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Error> {
    let elf = Elf::parse(bytes)?;
    let symbols = elf.symbols()?;
    let mut referenced = std::collections::BTreeSet::new();
    for rs in elf
        .sections
        .iter()
        .filter(|s| s.sh_type == SHT_RELA || s.sh_type == elf::SHT_REL)
    {
        for r in elf.relocs(rs)? {
            referenced.insert(r.sym as usize);
        }
    }
    let mut names: Vec<String> = symbols
        .iter()
        .filter(|s| {
            s.is_undefined()
                && !s.name.is_empty()
                && select(&s.name)
                && !referenced.contains(&s.index)
        })
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_three_relaxable_shapes() {
        let call = [0xff, 0x15, 0, 0, 0, 0];
        assert_eq!(classify(&call, 2, -4), Ok(Relaxation::Call));
        let jmp = [0xff, 0x25, 0, 0, 0, 0];
        assert_eq!(classify(&jmp, 2, -4), Ok(Relaxation::Jmp));
        // movq x@GOTPCREL(%rip), %r9 = 4c 8b 0d
        let mov = [0x4c, 0x8b, 0x0d, 0, 0, 0, 0];
        assert_eq!(classify(&mov, 3, -4), Ok(Relaxation::Mov));
    }

    #[test]
    fn refuses_everything_else() {
        // addq x@GOTPCREL(%rip), %rax = 48 03 05
        let add = [0x48, 0x03, 0x05, 0, 0, 0, 0];
        assert!(classify(&add, 3, -4).unwrap_err().contains("48 03 05"));
        // movl x@GOTPCREL(%rip), %eax = 8b 05 (no REX.W)
        let movl = [0x90, 0x8b, 0x05, 0, 0, 0, 0];
        assert!(
            classify(&movl, 3, -4)
                .unwrap_err()
                .contains("without REX.W")
        );
        // mov with a SIB byte is not RIP-relative
        let sib = [0x48, 0x8b, 0x04, 0, 0, 0, 0];
        assert!(classify(&sib, 3, -4).is_err());
        // odd addend
        let call = [0xff, 0x15, 0, 0, 0, 0];
        assert!(classify(&call, 2, 4).unwrap_err().contains("addend"));
        // truncated
        assert!(classify(&call, 3, -4).is_err());
        assert!(classify(&call, 1, -4).is_err());
        assert!(classify(&call, u64::MAX, -4).is_err());
    }
}
