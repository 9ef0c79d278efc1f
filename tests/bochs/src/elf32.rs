//! Reading a kvm-unit-tests image: an ELF32 i386 executable (the `.flat`
//! files are `objcopy -O elf32-i386` output) with a multiboot header in its
//! first 8 KiB. This is what QEMU's multiboot loader reads before it copies
//! the PT_LOAD segments into guest RAM; the harness will do the same.

const PT_LOAD: u32 = 1;
const EM_386: u16 = 3;
const ET_EXEC: u16 = 2;
const MULTIBOOT_MAGIC: u32 = 0x1bad_b002;
const MULTIBOOT_SEARCH: usize = 8192;
/// Most segments we keep.
pub const MAX_SEGMENTS: usize = 8;

/// One PT_LOAD segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Segment {
    pub offset: u32,
    pub paddr: u32,
    pub filesz: u32,
    pub memsz: u32,
}

/// What the loader needs from the image.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub entry: u32,
    pub segments: [Segment; MAX_SEGMENTS],
    pub count: usize,
    /// Flags of the multiboot header, if there is one.
    pub multiboot_flags: Option<u32>,
}

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf32,
    NotI386Executable,
    Truncated,
    TooManySegments,
    SegmentOutsideFile,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the ELF header, the PT_LOAD program headers and the multiboot
/// header of `b`.
pub fn parse(b: &[u8]) -> Result<Image, ElfError> {
    if b.get(..5) != Some(&[0x7f, b'E', b'L', b'F', 1][..]) {
        return Err(ElfError::NotElf32);
    }
    let t = ElfError::Truncated;
    if u16_at(b, 16).ok_or(t)? != ET_EXEC || u16_at(b, 18).ok_or(t)? != EM_386 {
        return Err(ElfError::NotI386Executable);
    }
    let entry = u32_at(b, 24).ok_or(t)?;
    let phoff = u32_at(b, 28).ok_or(t)? as usize;
    let phentsize = usize::from(u16_at(b, 42).ok_or(t)?);
    let phnum = usize::from(u16_at(b, 44).ok_or(t)?);
    let mut image = Image {
        entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
        multiboot_flags: None,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(b, ph).ok_or(t)? != PT_LOAD {
            continue;
        }
        let seg = Segment {
            offset: u32_at(b, ph + 4).ok_or(t)?,
            paddr: u32_at(b, ph + 12).ok_or(t)?,
            filesz: u32_at(b, ph + 16).ok_or(t)?,
            memsz: u32_at(b, ph + 20).ok_or(t)?,
        };
        if u64::from(seg.offset) + u64::from(seg.filesz) > b.len() as u64 {
            return Err(ElfError::SegmentOutsideFile);
        }
        let slot = image
            .segments
            .get_mut(image.count)
            .ok_or(ElfError::TooManySegments)?;
        *slot = seg;
        image.count += 1;
    }
    let search = b.len().min(MULTIBOOT_SEARCH);
    image.multiboot_flags = (0..search.saturating_sub(12))
        .step_by(4)
        .find(|&at| {
            let (Some(m), Some(f), Some(c)) = (u32_at(b, at), u32_at(b, at + 4), u32_at(b, at + 8))
            else {
                return false;
            };
            m == MULTIBOOT_MAGIC && m.wrapping_add(f).wrapping_add(c) == 0
        })
        .and_then(|at| u32_at(b, at + 4));
    Ok(image)
}

impl Image {
    /// The PT_LOAD segments.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }
}
