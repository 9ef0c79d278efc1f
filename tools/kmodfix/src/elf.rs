//! A small, bounds-checked reader for ELF64 little-endian x86-64 relocatable
//! objects (`ET_REL`), the only thing krtld loads as a module.
//!
//! Written here instead of pulling in a parsing crate because kmodfix needs
//! very little (section headers, one symbol table, RELA entries) and, for the
//! GOTPCREL relaxation, the *file offsets* of the bytes it rewrites. Every
//! read is checked: a truncated or corrupt object yields an [`Error`], never a
//! panic.

use crate::Error;

pub const ET_REL: u16 = 1;
pub const EM_X86_64: u16 = 62;

pub const SHT_NULL: u32 = 0;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_REL: u32 = 9;
pub const SHT_INIT_ARRAY: u32 = 14;
pub const SHT_FINI_ARRAY: u32 = 15;
pub const SHT_PREINIT_ARRAY: u32 = 16;
pub const SHT_SYMTAB_SHNDX: u32 = 18;
/// `.eh_frame` on x86-64 (psABI).
pub const SHT_X86_64_UNWIND: u32 = 0x7000_0001;

pub const SHF_ALLOC: u64 = 0x2;
pub const SHF_EXECINSTR: u64 = 0x4;
pub const SHF_TLS: u64 = 0x400;

pub const SHN_UNDEF: u32 = 0;
pub const SHN_LORESERVE: u32 = 0xff00;
pub const SHN_XINDEX: u32 = 0xffff;

pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;

pub const STT_NOTYPE: u8 = 0;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const STT_FILE: u8 = 4;
pub const STT_TLS: u8 = 6;

pub const R_X86_64_64: u32 = 1;
pub const R_X86_64_PC32: u32 = 2;
pub const R_X86_64_PLT32: u32 = 4;
pub const R_X86_64_GOTPCREL: u32 = 9;
pub const R_X86_64_32: u32 = 10;
pub const R_X86_64_32S: u32 = 11;
pub const R_X86_64_GOTPCRELX: u32 = 41;
pub const R_X86_64_REX_GOTPCRELX: u32 = 42;

const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
pub const RELA_SIZE: usize = 24;
const REL_SIZE: usize = 16;

/// Name of an x86-64 relocation type, for messages.
pub fn reloc_type_name(r_type: u32) -> String {
    let name = match r_type {
        0 => "R_X86_64_NONE",
        1 => "R_X86_64_64",
        2 => "R_X86_64_PC32",
        3 => "R_X86_64_GOT32",
        4 => "R_X86_64_PLT32",
        5 => "R_X86_64_COPY",
        6 => "R_X86_64_GLOB_DAT",
        7 => "R_X86_64_JUMP_SLOT",
        8 => "R_X86_64_RELATIVE",
        9 => "R_X86_64_GOTPCREL",
        10 => "R_X86_64_32",
        11 => "R_X86_64_32S",
        12 => "R_X86_64_16",
        13 => "R_X86_64_PC16",
        14 => "R_X86_64_8",
        15 => "R_X86_64_PC8",
        16 => "R_X86_64_DTPMOD64",
        17 => "R_X86_64_DTPOFF64",
        18 => "R_X86_64_TPOFF64",
        19 => "R_X86_64_TLSGD",
        20 => "R_X86_64_TLSLD",
        21 => "R_X86_64_DTPOFF32",
        22 => "R_X86_64_GOTTPOFF",
        23 => "R_X86_64_TPOFF32",
        24 => "R_X86_64_PC64",
        25 => "R_X86_64_GOTOFF64",
        26 => "R_X86_64_GOTPC32",
        27 => "R_X86_64_GOT64",
        28 => "R_X86_64_GOTPCREL64",
        29 => "R_X86_64_GOTPC64",
        30 => "R_X86_64_GOTPLT64",
        31 => "R_X86_64_PLTOFF64",
        32 => "R_X86_64_SIZE32",
        33 => "R_X86_64_SIZE64",
        34 => "R_X86_64_GOTPC32_TLSDESC",
        35 => "R_X86_64_TLSDESC_CALL",
        36 => "R_X86_64_TLSDESC",
        37 => "R_X86_64_IRELATIVE",
        41 => "R_X86_64_GOTPCRELX",
        42 => "R_X86_64_REX_GOTPCRELX",
        _ => return format!("R_X86_64_<{r_type}>"),
    };
    name.to_string()
}

/// One section header, with its resolved name.
#[derive(Debug, Clone)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub entsize: u64,
}

impl Section {
    pub fn is_alloc(&self) -> bool {
        self.flags & SHF_ALLOC != 0
    }

    pub fn is_exec(&self) -> bool {
        self.flags & SHF_EXECINSTR != 0
    }
}

/// One symbol table entry, with its resolved name and (extended) section index.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub index: usize,
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub bind: u8,
    pub sym_type: u8,
    /// Section index; extended indices (`SHN_XINDEX`) already resolved.
    pub shndx: u32,
}

impl Symbol {
    pub fn is_undefined(&self) -> bool {
        self.shndx == SHN_UNDEF
    }

    /// Defined in a real section (not undefined, not ABS/COMMON).
    pub fn in_section(&self) -> Option<usize> {
        if self.shndx == SHN_UNDEF || (SHN_LORESERVE..=SHN_XINDEX).contains(&self.shndx) {
            None
        } else {
            Some(self.shndx as usize)
        }
    }
}

/// One relocation (RELA or REL) entry.
#[derive(Debug, Clone, Copy)]
pub struct Reloc {
    /// File offset of the entry itself (so it can be rewritten in place).
    pub entry_offset: usize,
    /// `r_offset`: where in the target section the relocation applies.
    pub offset: u64,
    pub r_type: u32,
    pub sym: u32,
    /// `r_addend` (0 for SHT_REL).
    pub addend: i64,
}

/// A parsed view of an object file.
#[derive(Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    pub sections: Vec<Section>,
}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::new(msg))
}

pub fn read_u16(data: &[u8], off: usize) -> Result<u16, Error> {
    match data.get(off..off.wrapping_add(2)) {
        Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
        None => err(format!("truncated object: u16 at file offset {off:#x}")),
    }
}

pub fn read_u32(data: &[u8], off: usize) -> Result<u32, Error> {
    match data
        .get(off..off.wrapping_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    {
        Some(b) => Ok(u32::from_le_bytes(b)),
        None => err(format!("truncated object: u32 at file offset {off:#x}")),
    }
}

pub fn read_u64(data: &[u8], off: usize) -> Result<u64, Error> {
    match data
        .get(off..off.wrapping_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
    {
        Some(b) => Ok(u64::from_le_bytes(b)),
        None => err(format!("truncated object: u64 at file offset {off:#x}")),
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::new(format!("{what} {v:#x} does not fit in memory")))
}

/// Bytes `[off, off+len)` of `data`, or an error naming `what`.
fn slice<'d>(data: &'d [u8], off: u64, len: u64, what: &str) -> Result<&'d [u8], Error> {
    let start = to_usize(off, what)?;
    let len = to_usize(len, what)?;
    start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| {
            Error::new(format!(
                "{what}: bytes {start:#x}+{len:#x} are outside the file ({:#x} bytes)",
                data.len()
            ))
        })
}

/// NUL-terminated string at `off` in a string table.
fn cstr(table: &[u8], off: u32, what: &str) -> Result<String, Error> {
    let off = off as usize;
    let rest = table
        .get(off..)
        .ok_or_else(|| Error::new(format!("{what}: name offset {off:#x} outside string table")))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::new(format!("{what}: unterminated name at {off:#x}")))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

impl<'a> Elf<'a> {
    /// Parses the ELF header and section headers. Only ELF64, little-endian,
    /// `EM_X86_64`, `ET_REL` is accepted: that is what krtld loads on amd64.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < EHDR_SIZE || &data[..4] != b"\x7fELF" {
            return err("not an ELF file");
        }
        if data[4] != 2 {
            return err("not ELF64 (EI_CLASS != ELFCLASS64)");
        }
        if data[5] != 1 {
            return err("not little-endian (EI_DATA != ELFDATA2LSB)");
        }
        let e_type = read_u16(data, 16)?;
        if e_type != ET_REL {
            return err(format!(
                "not a relocatable object (e_type {e_type}, want ET_REL): krtld loads `ld -r` output"
            ));
        }
        let machine = read_u16(data, 18)?;
        if machine != EM_X86_64 {
            return err(format!("e_machine {machine} is not EM_X86_64"));
        }
        let shoff = read_u64(data, 40)?;
        let shentsize = read_u16(data, 58)?;
        let mut shnum = u64::from(read_u16(data, 60)?);
        let mut shstrndx = u32::from(read_u16(data, 62)?);
        if shoff == 0 {
            return err("object has no section header table");
        }
        if usize::from(shentsize) != SHDR_SIZE {
            return err(format!("e_shentsize {shentsize} != {SHDR_SIZE}"));
        }
        // Extended numbering: the real counts live in section header 0.
        let sh0 = slice(data, shoff, SHDR_SIZE as u64, "section header 0")?;
        if shnum == 0 {
            shnum = read_u64(sh0, 32)?;
        }
        if shstrndx == SHN_XINDEX {
            shstrndx = read_u32(sh0, 40)?;
        }
        let table_len = shnum
            .checked_mul(SHDR_SIZE as u64)
            .ok_or_else(|| Error::new("section count overflows"))?;
        let table = slice(data, shoff, table_len, "section header table")?;

        let mut sections = Vec::with_capacity(to_usize(shnum, "section count")?);
        let mut name_offsets = Vec::with_capacity(sections.capacity());
        for (index, sh) in table.chunks_exact(SHDR_SIZE).enumerate() {
            name_offsets.push(read_u32(sh, 0)?);
            sections.push(Section {
                index,
                name: String::new(),
                sh_type: read_u32(sh, 4)?,
                flags: read_u64(sh, 8)?,
                offset: read_u64(sh, 24)?,
                size: read_u64(sh, 32)?,
                link: read_u32(sh, 40)?,
                info: read_u32(sh, 44)?,
                entsize: read_u64(sh, 56)?,
            });
        }
        let mut elf = Elf { data, sections };
        if shstrndx != 0 {
            let strtab_sec = elf.section(shstrndx as usize)?.clone();
            let strtab = elf.section_data(&strtab_sec)?;
            let names = name_offsets
                .iter()
                .map(|&o| cstr(strtab, o, "section name"))
                .collect::<Result<Vec<_>, _>>()?;
            for (s, n) in elf.sections.iter_mut().zip(names) {
                s.name = n;
            }
        }
        Ok(elf)
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn section(&self, index: usize) -> Result<&Section, Error> {
        self.sections
            .get(index)
            .ok_or_else(|| Error::new(format!("section index {index} out of range")))
    }

    /// The file bytes of a section (empty for SHT_NOBITS).
    pub fn section_data(&self, s: &Section) -> Result<&'a [u8], Error> {
        if s.sh_type == SHT_NOBITS || s.sh_type == SHT_NULL {
            return Ok(&[]);
        }
        slice(
            self.data,
            s.offset,
            s.size,
            &format!("section [{}] {}", s.index, s.name),
        )
    }

    /// File offset of the section's bytes (for in-place patching).
    pub fn section_file_offset(&self, s: &Section) -> Result<usize, Error> {
        to_usize(s.offset, "section offset")
    }

    /// The (single) `SHT_SYMTAB` of the object, if any.
    pub fn symtab_index(&self) -> Option<usize> {
        self.sections
            .iter()
            .find(|s| s.sh_type == SHT_SYMTAB)
            .map(|s| s.index)
    }

    /// All entries of the symbol table (index 0 included), names resolved.
    pub fn symbols(&self) -> Result<Vec<Symbol>, Error> {
        let Some(symtab_index) = self.symtab_index() else {
            return Ok(Vec::new());
        };
        let symtab = self.section(symtab_index)?;
        let data = self.section_data(symtab)?;
        let strtab = self.section_data(self.section(symtab.link as usize)?)?;
        // SHN_XINDEX support: SHT_SYMTAB_SHNDX whose sh_link is the symtab.
        let xindex = match self
            .sections
            .iter()
            .find(|s| s.sh_type == SHT_SYMTAB_SHNDX && s.link as usize == symtab_index)
        {
            Some(s) => Some(self.section_data(s)?),
            None => None,
        };
        if data.len() % SYM_SIZE != 0 {
            return err(format!(
                "symbol table size {:#x} is not a multiple of {SYM_SIZE}",
                data.len()
            ));
        }
        let mut out = Vec::with_capacity(data.len() / SYM_SIZE);
        for (index, e) in data.chunks_exact(SYM_SIZE).enumerate() {
            let info = e[4];
            let mut shndx = u32::from(read_u16(e, 6)?);
            if shndx == SHN_XINDEX {
                let table = xindex.ok_or_else(|| {
                    Error::new(format!(
                        "symbol {index} uses SHN_XINDEX but there is no SHT_SYMTAB_SHNDX"
                    ))
                })?;
                shndx = read_u32(table, index * 4)?;
            }
            out.push(Symbol {
                index,
                name: cstr(strtab, read_u32(e, 0)?, "symbol name")?,
                value: read_u64(e, 8)?,
                size: read_u64(e, 16)?,
                bind: info >> 4,
                sym_type: info & 0xf,
                shndx,
            });
        }
        Ok(out)
    }

    /// The entries of an `SHT_RELA` or `SHT_REL` section.
    pub fn relocs(&self, s: &Section) -> Result<Vec<Reloc>, Error> {
        let (entsize, rela) = match s.sh_type {
            SHT_RELA => (RELA_SIZE, true),
            SHT_REL => (REL_SIZE, false),
            t => {
                return err(format!(
                    "section {} (type {t}) is not a relocation section",
                    s.name
                ));
            }
        };
        let data = self.section_data(s)?;
        if data.len() % entsize != 0 {
            return err(format!(
                "relocation section {} size {:#x} is not a multiple of {entsize}",
                s.name,
                data.len()
            ));
        }
        let base = self.section_file_offset(s)?;
        let mut out = Vec::with_capacity(data.len() / entsize);
        for (i, e) in data.chunks_exact(entsize).enumerate() {
            let info = read_u64(e, 8)?;
            out.push(Reloc {
                entry_offset: base + i * entsize,
                offset: read_u64(e, 0)?,
                r_type: (info & 0xffff_ffff) as u32,
                sym: (info >> 32) as u32,
                addend: if rela { read_u64(e, 16)? as i64 } else { 0 },
            });
        }
        Ok(out)
    }
}

/// Writes `r_offset` and `r_info` (keeping the symbol) of a RELA entry in place.
pub fn write_rela(out: &mut [u8], r: &Reloc, new_offset: u64, new_type: u32) -> Result<(), Error> {
    let entry = out
        .get_mut(r.entry_offset..r.entry_offset + RELA_SIZE)
        .ok_or_else(|| Error::new("relocation entry outside the file"))?;
    let info = (u64::from(r.sym) << 32) | u64::from(new_type);
    entry[0..8].copy_from_slice(&new_offset.to_le_bytes());
    entry[8..16].copy_from_slice(&info.to_le_bytes());
    Ok(())
}
