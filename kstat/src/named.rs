//! `kstat_named_t` (`<sys/kstat.h>`) as Rust lays it out.
//!
//! A virtual kstat's data is an array of these living in the driver's own
//! VM/VCPU structures; the kstat framework copies them out when `kstat(1M)`
//! or `kvmstat` read. So the layout must be the C one exactly (48 bytes:
//! `char name[31]`, `uchar_t data_type`, a 16-byte value union), checked at
//! compile time here and against gcc in `kstat/tests/layout.rs`.

use core::ffi::CStr;
use core::sync::atomic::{AtomicU64, Ordering};

/// `KSTAT_STRLEN`: name buffer size including the NUL.
pub const KSTAT_STRLEN: usize = 31;

/// `data_type` values of `<sys/kstat.h>` used by the kvm kstats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DataType {
    /// `KSTAT_DATA_UINT64`.
    Uint64 = 4,
    /// `KSTAT_DATA_STRING`: a pointer and length in the value union.
    String = 9,
}

/// One named statistic. Counters are written by one VCPU thread (or under
/// the VM's lock) while the kstat framework may read concurrently, hence
/// atomics with relaxed ordering: an aligned 8-byte `mov`, as the C `++`.
#[repr(C)]
pub struct KstatNamed {
    name: [u8; KSTAT_STRLEN],
    data_type: u8,
    /// `value.ui64`, or `value.str.addr.ptr` for a string.
    value: AtomicU64,
    /// `value.str.len` (strlen + 1) in the low 32 bits for a string.
    value_len: u64,
}

const _: () = assert!(core::mem::size_of::<KstatNamed>() == 48);
const _: () = assert!(core::mem::align_of::<KstatNamed>() == 8);
const _: () = assert!(KstatNamed::OFFSET_DATA_TYPE == 31);
const _: () = assert!(KstatNamed::OFFSET_VALUE == 32);
const _: () = assert!(KstatNamed::OFFSET_STR_LEN == 40);

impl KstatNamed {
    /// `offsetof(kstat_named_t, data_type)`.
    pub const OFFSET_DATA_TYPE: usize = core::mem::offset_of!(KstatNamed, data_type);
    /// `offsetof(kstat_named_t, value)` (`value.ui64`, `value.str.addr.ptr`).
    pub const OFFSET_VALUE: usize = core::mem::offset_of!(KstatNamed, value);
    /// `offsetof(kstat_named_t, value.str.len)`: the low half of `value_len`
    /// on little-endian amd64.
    pub const OFFSET_STR_LEN: usize = core::mem::offset_of!(KstatNamed, value_len);

    /// `kstat_named_init(knp, name, type)`: the name is cut to 30 bytes
    /// plus NUL, as `strncpy` into `name[KSTAT_STRLEN]` with a forced NUL.
    // Indexing in a const fn (no iterators there); the loop condition
    // bounds both indices.
    #[allow(clippy::indexing_slicing)]
    pub const fn new(name: &str, data_type: DataType) -> Self {
        let mut buf = [0u8; KSTAT_STRLEN];
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() && i < KSTAT_STRLEN - 1 {
            buf[i] = bytes[i];
            i += 1;
        }
        Self {
            name: buf,
            data_type: data_type as u8,
            value: AtomicU64::new(0),
            value_len: 0,
        }
    }

    /// The name as stored (without the NUL).
    pub fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(KSTAT_STRLEN);
        core::str::from_utf8(self.name.get(..end).unwrap_or(&[])).unwrap_or("")
    }

    /// The declared type; `None` for a byte this crate never writes.
    pub fn data_type(&self) -> Option<DataType> {
        match self.data_type {
            4 => Some(DataType::Uint64),
            9 => Some(DataType::String),
            _ => None,
        }
    }

    /// `value.ui64`.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Set `value.ui64`.
    pub fn set(&self, v: u64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// `KVM_*KSTAT_INC` for a counter with one writer (the VCPU thread).
    pub fn inc(&self) {
        self.set(self.get().wrapping_add(1));
    }

    /// Increment for a counter several threads bump (VM-wide MMU counters).
    pub fn inc_shared(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Decrement for a shared gauge (`lpages`, `mmu-unsync-page`).
    pub fn dec_shared(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    /// `kstat_named_setstr(knp, s)`: point the string stat at `s`, which
    /// must stay put for as long as the kstat is installed.
    pub fn set_str(&mut self, s: &CStr) {
        self.value
            .store(s.as_ptr() as usize as u64, Ordering::Relaxed);
        self.value_len = s.to_bytes_with_nul().len() as u64;
    }

    /// `KSTAT_NAMED_STR_BUFLEN`: bytes the string occupies with its NUL.
    pub fn str_buflen(&self) -> u64 {
        self.value_len & 0xffff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_to_thirty_bytes_and_nul_terminated() {
        let k = KstatNamed::new("abcdefghijklmnopqrstuvwxyz0123456789", DataType::Uint64);
        assert_eq!(k.name(), "abcdefghijklmnopqrstuvwxyz0123");
        assert_eq!(k.name[30], 0);
    }

    #[test]
    fn counters_count_and_wrap_like_the_c_increment() {
        let k = KstatNamed::new("exits", DataType::Uint64);
        k.inc();
        k.inc_shared();
        assert_eq!(k.get(), 2);
        k.set(u64::MAX);
        k.inc();
        assert_eq!(k.get(), 0);
        k.dec_shared();
        assert_eq!(k.get(), u64::MAX);
    }

    #[test]
    fn string_stat_records_pointer_and_length_with_nul() {
        let zone = c"global";
        let mut k = KstatNamed::new("zonename", DataType::String);
        k.set_str(zone);
        assert_eq!(k.get(), zone.as_ptr() as usize as u64);
        assert_eq!(k.str_buflen(), 7);
        assert_eq!(k.data_type(), Some(DataType::String));
    }
}
