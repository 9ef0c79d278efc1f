//! What the loader tells us: the multiboot (v1) information structure.

/// EAX at entry from a multiboot loader.
pub const BOOT_MAGIC: u32 = 0x2bad_b002;
const INFO_FLAG_MEM: u32 = 1 << 0;

/// The memory the loader reported.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// KiB of RAM above 1 MiB (contiguous from 1 MiB).
    pub mem_upper_kib: u32,
}

/// Reads the information at physical address `info` (identity mapped).
/// `None` if the loader is not multiboot or did not report memory.
pub fn parse(magic: u32, info: u32) -> Option<BootInfo> {
    if magic != BOOT_MAGIC || info == 0 {
        return None;
    }
    let p = info as usize as *const u32;
    // SAFETY: a multiboot loader passes the address of a multiboot_info
    // whose first three words are flags, mem_lower, mem_upper; the first
    // 4 GiB are identity mapped.
    let (flags, upper) = unsafe { (p.read_volatile(), p.add(2).read_volatile()) };
    if flags & INFO_FLAG_MEM == 0 {
        return None;
    }
    Some(BootInfo {
        mem_upper_kib: upper,
    })
}
