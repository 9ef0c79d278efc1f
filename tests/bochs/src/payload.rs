//! The guest payload the runner hands to the host, the way QEMU gets
//! `-kernel`, `-append` and `-smp` on its command line: the RAM image Bochs
//! loads at 1 MiB (`ram_image` in lib.sh) holds the host, zeros up to
//! `HEADER_ADDR`, a header page there and the guest image right after it.
//!
//! The header is text, one `key=value` per line after the first line
//! `kvm-bochs-payload v1`, NUL-terminated: `name` (the unittests.cfg
//! section), `file`, `size` (image bytes), `smp`, `args` (the guest's
//! command line). The pages from `HEADER_ADDR` to `RESERVED_END` never go to
//! the page allocator.

/// Where the runner puts the header page.
pub const HEADER_ADDR: u64 = 0x80_0000;
/// Where the image starts.
pub const IMAGE_ADDR: u64 = HEADER_ADDR + 0x1000;
/// End of the reserved window (the image may be up to 8 MiB - 4 KiB).
pub const RESERVED_END: u64 = 0x100_0000;

const MAGIC_LINE: &str = "kvm-bochs-payload v1";
const HEADER_BYTES: usize = 4096;

/// What the runner asked for.
#[derive(Clone, Copy, Debug)]
pub struct Payload {
    pub name: &'static str,
    pub file: &'static str,
    pub smp: u32,
    pub args: &'static str,
    /// `smoke` (bring the VM up only), `kut` (run the guest), `guests`
    /// (the harness' own guests and benchmarks, `guests/mod.rs`; no
    /// image) or `bench` (the benchmarks only).
    pub mode: &'static str,
    /// Instruction (TSC tick) budget for the guest run; 0: none.
    pub max_insns: u64,
    /// Show x2APIC in the guest's CPUID.
    pub x2apic: bool,
    /// Sample the host every this many ticks (`profile.rs`); 0: off.
    pub profile: u64,
    pub image: &'static [u8],
}

/// The header's lines (split by hand: `str::lines` brings a bounds-check
/// panic path along).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    core::iter::from_fn(move || {
        let current = rest?;
        match current.bytes().position(|b| b == b'\n') {
            Some(i) => {
                rest = current.get(i + 1..);
                current.get(..i)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Value of `key` in the header text.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    lines(text)
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The payload, if the runner provided one. RAM must reach `RESERVED_END`.
pub fn find(ram_end: u64) -> Option<Payload> {
    if ram_end < RESERVED_END {
        return None;
    }
    // SAFETY: [HEADER_ADDR, RESERVED_END) is RAM below `ram_end`, identity
    // mapped, and reserved from the page allocator; nothing writes it.
    let header: &'static [u8] =
        unsafe { core::slice::from_raw_parts(HEADER_ADDR as usize as *const u8, HEADER_BYTES) };
    let len = header.iter().position(|&b| b == 0)?;
    let text = core::str::from_utf8(header.get(..len)?).ok()?;
    if lines(text).next()? != MAGIC_LINE {
        return None;
    }
    let size: usize = field(text, "size")?.parse().ok()?;
    if size as u64 > RESERVED_END - IMAGE_ADDR {
        return None;
    }
    // SAFETY: as above; `size` fits in the reserved window.
    let image: &'static [u8] =
        unsafe { core::slice::from_raw_parts(IMAGE_ADDR as usize as *const u8, size) };
    Some(Payload {
        name: field(text, "name")?,
        file: field(text, "file").unwrap_or("?"),
        smp: field(text, "smp").and_then(|s| s.parse().ok()).unwrap_or(1),
        args: field(text, "args").unwrap_or(""),
        mode: field(text, "mode").unwrap_or("smoke"),
        max_insns: field(text, "max_insns")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        x2apic: field(text, "x2apic") == Some("1"),
        profile: field(text, "profile")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        image,
    })
}

/// Wrapping sum of the image as little-endian u32 words (the tail padded
/// with zeros): the runner computes the same with `od` to check that the
/// image arrived intact.
pub fn sum32(image: &[u8]) -> u32 {
    let mut chunks = image.chunks_exact(4);
    let mut sum = (&mut chunks).fold(0u32, |acc, w| {
        acc.wrapping_add(u32::from_le_bytes([
            w.first().copied().unwrap_or(0),
            w.get(1).copied().unwrap_or(0),
            w.get(2).copied().unwrap_or(0),
            w.get(3).copied().unwrap_or(0),
        ]))
    });
    let mut tail = [0u8; 4];
    for (dst, src) in tail.iter_mut().zip(chunks.remainder()) {
        *dst = *src;
    }
    sum = sum.wrapping_add(u32::from_le_bytes(tail));
    sum
}
