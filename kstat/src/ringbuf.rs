//! The per-VCPU event ring (C: `kvm_ringbuf_t`, kvm_host.h:102–131, written
//! by `kvm_ringbuf_record`, kvm.c:427): the last 512 context switches,
//! VMCS loads, VCPU migrations and emulation failures of one VCPU, plus the
//! last event and a count per tag, kept for post-mortem debugging with
//! `::walk kvm_ringbuf_entry | ::kvm_ringbuf_entry` (see `mdb/`).
//!
//! Who records what (the C driver's `kvm_ringbuf_record` call sites, and
//! the port's): `VCPULOAD`/`VCPUPUT` the VMX seam around every VCPU ioctl
//! that loads the VMCS (src/vm/vmx); `CTXSAVE`, `CTXRESTORE`,
//! `VCPUMIGRATE`, `VMPTRLD`, `VCPUCLEAR` the illumos host's context ops and
//! VMCS loads/clears once the VCPU's record is attached to its VMCS
//! (src/illumos/vmx_host.rs; the C recorded neither `VMPTRLD` nor
//! `VCPUCLEAR`); `EMUFAIL0-2` `KvmDebugVcpu::record_emulation_failure`
//! (kvm_report_emulation_failure). `RELOAD` the C declared and never
//! recorded, nor does the port; `EMUXADD` (the C emulator's `xadd`) the
//! port's emulator does not record.
//!
//! The layout is the C one (`#[repr(C)]`, no padding), so a debugger reads it
//! with the offsets `mdb-offsets` prints. Recording never allocates, never
//! panics and costs a handful of stores.

/// `KVM_RINGBUF_NENTRIES`: entries of the ring (a power of two).
pub const RINGBUF_NENTRIES: usize = 512;

/// `KVM_RINGBUF_TAG_MAX`: the highest tag value.
pub const TAG_MAX: usize = 12;

const _: () = assert!(RINGBUF_NENTRIES.is_power_of_two());

/// What an entry records (`KVM_RINGBUF_TAG_*`); the payload's meaning is
/// given per tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Tag {
    /// `CTXSAVE`: the VCPU thread is switched out (payload: `vcpu->cpu`).
    CtxSave = 1,
    /// `CTXRESTORE`: the VCPU thread is switched back in (payload:
    /// `vcpu->cpu`).
    CtxRestore = 2,
    /// `VMPTRLD`: the VCPU's VMCS was made current (payload: the VMCS
    /// physical address).
    Vmptrld = 3,
    /// `VCPUMIGRATE`: the VCPU's VMCS was loaded on another CPU than last
    /// time (payload: the new CPU, as kvm_vmx.c:vmx_vcpu_load recorded it).
    VcpuMigrate = 4,
    /// `VCPUCLEAR`: the VMCS was cleared off a CPU (payload: that CPU).
    VcpuClear = 5,
    /// `VCPULOAD`: `vcpu_load` (payload: `vcpu->cpu`).
    VcpuLoad = 6,
    /// `VCPUPUT`: `vcpu_put` (payload: the CPU it was on).
    VcpuPut = 7,
    /// `RELOAD`: the VMCS was reloaded (payload: the CPU).
    Reload = 8,
    /// `EMUFAIL0`: emulation failed (payload: the context string's address).
    EmuFail0 = 9,
    /// `EMUFAIL1`: emulation failed (payload: the guest RIP).
    EmuFail1 = 10,
    /// `EMUFAIL2`: emulation failed (payload: the first 8 opcode bytes).
    EmuFail2 = 11,
    /// `EMUXADD`: the emulator executed `xadd` (payload: the guest RIP).
    EmuXadd = 12,
}

impl Tag {
    /// Every tag, in value order.
    pub const ALL: [Tag; TAG_MAX] = [
        Tag::CtxSave,
        Tag::CtxRestore,
        Tag::Vmptrld,
        Tag::VcpuMigrate,
        Tag::VcpuClear,
        Tag::VcpuLoad,
        Tag::VcpuPut,
        Tag::Reload,
        Tag::EmuFail0,
        Tag::EmuFail1,
        Tag::EmuFail2,
        Tag::EmuXadd,
    ];

    /// The suffix of the C constant `KVM_RINGBUF_TAG_<name>`.
    pub const fn c_name(self) -> &'static str {
        match self {
            Tag::CtxSave => "CTXSAVE",
            Tag::CtxRestore => "CTXRESTORE",
            Tag::Vmptrld => "VMPTRLD",
            Tag::VcpuMigrate => "VCPUMIGRATE",
            Tag::VcpuClear => "VCPUCLEAR",
            Tag::VcpuLoad => "VCPULOAD",
            Tag::VcpuPut => "VCPUPUT",
            Tag::Reload => "RELOAD",
            Tag::EmuFail0 => "EMUFAIL0",
            Tag::EmuFail1 => "EMUFAIL1",
            Tag::EmuFail2 => "EMUFAIL2",
            Tag::EmuXadd => "EMUXADD",
        }
    }

    /// The tag with this value, if any.
    pub const fn from_u32(v: u32) -> Option<Tag> {
        match v {
            1 => Some(Tag::CtxSave),
            2 => Some(Tag::CtxRestore),
            3 => Some(Tag::Vmptrld),
            4 => Some(Tag::VcpuMigrate),
            5 => Some(Tag::VcpuClear),
            6 => Some(Tag::VcpuLoad),
            7 => Some(Tag::VcpuPut),
            8 => Some(Tag::Reload),
            9 => Some(Tag::EmuFail0),
            10 => Some(Tag::EmuFail1),
            11 => Some(Tag::EmuFail2),
            12 => Some(Tag::EmuXadd),
            _ => None,
        }
    }
}

/// One event (`kvm_ringbuf_entry_t`, 32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RingbufEntry {
    /// `kvmre_tag`: a [`Tag`] value; 0 in a never-written entry.
    pub tag: u32,
    /// `kvmre_cpuid`: the CPU the event happened on.
    pub cpuid: u32,
    /// `kvmre_thread`: the `kthread_t *` that recorded it.
    pub thread: u64,
    /// `kvmre_tsc`: `gethrtime_unscaled()` at the event.
    pub tsc: u64,
    /// `kvmre_payload`: per tag, see [`Tag`].
    pub payload: u64,
}

impl RingbufEntry {
    /// A never-written entry.
    pub const EMPTY: RingbufEntry = RingbufEntry {
        tag: 0,
        cpuid: 0,
        thread: 0,
        tsc: 0,
        payload: 0,
    };
}

/// The ring (`kvm_ringbuf_t`): 16856 bytes, embedded in each VCPU's debug
/// record ([`crate::debug::KvmDebugVcpu`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Ringbuf {
    /// `kvmr_buf`: entry `ent % 512` is the next one written.
    pub(crate) buf: [RingbufEntry; RINGBUF_NENTRIES],
    /// `kvmr_taglast`: the last event of each tag (index 0 unused).
    pub(crate) taglast: [RingbufEntry; TAG_MAX + 1],
    /// `kvmr_tagcount`: events recorded per tag (wrapping; index 0 unused).
    pub(crate) tagcount: [u32; TAG_MAX + 1],
    /// `kvmr_ent`: events recorded so far; see [`Ringbuf::record`] for what
    /// happens past `u32::MAX`.
    pub(crate) ent: u32,
}

const _: () = assert!(core::mem::size_of::<RingbufEntry>() == 32);
const _: () = assert!(core::mem::align_of::<RingbufEntry>() == 8);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, cpuid) == 4);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, thread) == 8);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, tsc) == 16);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, payload) == 24);
const _: () = assert!(core::mem::size_of::<Ringbuf>() == 16856);
const _: () = assert!(core::mem::offset_of!(Ringbuf, buf) == 0);
const _: () = assert!(core::mem::offset_of!(Ringbuf, taglast) == 16384);
const _: () = assert!(core::mem::offset_of!(Ringbuf, tagcount) == 16800);
const _: () = assert!(core::mem::offset_of!(Ringbuf, ent) == 16852);

impl Ringbuf {
    /// `offsetof(kvm_ringbuf_t, kvmr_buf)` and the others, for the
    /// debugger's offsets header.
    pub const OFFSET_BUF: usize = core::mem::offset_of!(Ringbuf, buf);
    /// `offsetof(kvm_ringbuf_t, kvmr_taglast)`.
    pub const OFFSET_TAGLAST: usize = core::mem::offset_of!(Ringbuf, taglast);
    /// `offsetof(kvm_ringbuf_t, kvmr_tagcount)`.
    pub const OFFSET_TAGCOUNT: usize = core::mem::offset_of!(Ringbuf, tagcount);
    /// `offsetof(kvm_ringbuf_t, kvmr_ent)`.
    pub const OFFSET_ENT: usize = core::mem::offset_of!(Ringbuf, ent);

    /// An empty ring (all zero, as `kmem_zalloc` leaves the C one).
    pub const fn new() -> Self {
        Self {
            buf: [RingbufEntry::EMPTY; RINGBUF_NENTRIES],
            taglast: [RingbufEntry::EMPTY; TAG_MAX + 1],
            tagcount: [0; TAG_MAX + 1],
            ent: 0,
        }
    }

    /// `kvm_ringbuf_record`: write the event into the next slot, as the
    /// last event of its tag, and count it. `cpu` is the current CPU id,
    /// `thread` the current `kthread_t *`, `tsc` `gethrtime_unscaled()`:
    /// the caller (the driver, preemption disabled) supplies them, which
    /// keeps this crate free of platform calls.
    ///
    /// One divergence from C: when the 32-bit event count would wrap to 0
    /// it continues at 512 instead, which is the same slot (512 ≡ 0 mod
    /// 512) but keeps the debugger's "count > 512, so the ring is full" test
    /// true, so a walk still shows 512 entries after 2³² events.
    pub fn record(&mut self, tag: Tag, cpu: u32, thread: u64, tsc: u64, payload: u64) {
        let entry = RingbufEntry {
            tag: tag as u32,
            cpuid: cpu,
            thread,
            tsc,
            payload,
        };
        let slot = self.ent as usize & (RINGBUF_NENTRIES - 1);
        if let Some(e) = self.buf.get_mut(slot) {
            *e = entry;
        }
        self.ent = self.ent.checked_add(1).unwrap_or(RINGBUF_NENTRIES as u32);
        let t = tag as usize;
        if let Some(e) = self.taglast.get_mut(t) {
            *e = entry;
        }
        if let Some(c) = self.tagcount.get_mut(t) {
            *c = c.wrapping_add(1);
        }
    }

    /// `kvmr_ent`: events recorded (see [`Ringbuf::record`] past 2³²).
    pub fn recorded(&self) -> u32 {
        self.ent
    }

    /// Entries still in the ring, oldest first (at most 512), as the
    /// `kvm_ringbuf_entry` walker visits them.
    pub fn entries(&self) -> impl Iterator<Item = &RingbufEntry> {
        let n = (self.ent as usize).min(RINGBUF_NENTRIES);
        let first = (self.ent as usize).wrapping_sub(n);
        (0..n).filter_map(move |i| self.buf.get(first.wrapping_add(i) & (RINGBUF_NENTRIES - 1)))
    }

    /// The raw slots (slot `i` is entry `i mod 512`).
    pub fn slots(&self) -> &[RingbufEntry; RINGBUF_NENTRIES] {
        &self.buf
    }

    /// The last event of `tag` (`kvmr_taglast[tag]`), `None` if none yet.
    pub fn last(&self, tag: Tag) -> Option<&RingbufEntry> {
        self.taglast
            .get(tag as usize)
            .filter(|e| e.tag == tag as u32)
    }

    /// Events of `tag` recorded (`kvmr_tagcount[tag]`, wrapping).
    pub fn count(&self, tag: Tag) -> u32 {
        self.tagcount.get(tag as usize).copied().unwrap_or(0)
    }

    /// Test support: pretend `n` events were recorded already.
    #[cfg(test)]
    fn set_recorded(&mut self, n: u32) {
        self.ent = n;
    }
}

impl Default for Ringbuf {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn ring() -> Box<Ringbuf> {
        Box::new(Ringbuf::new())
    }

    #[test]
    fn tags_have_the_c_values() {
        let values: Vec<u32> = Tag::ALL.iter().map(|&t| t as u32).collect();
        assert_eq!(values, (1..=12).collect::<Vec<u32>>());
        assert_eq!(Tag::EmuXadd as usize, TAG_MAX);
        for t in Tag::ALL {
            assert_eq!(Tag::from_u32(t as u32), Some(t));
        }
        assert_eq!(Tag::from_u32(0), None);
        assert_eq!(Tag::from_u32(13), None);
    }

    #[test]
    fn records_in_order_before_wrapping() {
        let mut r = ring();
        assert_eq!(r.entries().count(), 0);
        r.record(Tag::VcpuLoad, 3, 0xffff_fe00_1000, 100, 3);
        r.record(Tag::Vmptrld, 3, 0xffff_fe00_1000, 101, 0x1234_5000);
        r.record(Tag::VcpuPut, 3, 0xffff_fe00_1000, 102, 3);
        assert_eq!(r.recorded(), 3);
        let e: Vec<_> = r.entries().copied().collect();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            RingbufEntry {
                tag: 3,
                cpuid: 3,
                thread: 0xffff_fe00_1000,
                tsc: 101,
                payload: 0x1234_5000
            }
        );
        assert_eq!(e[0].tag, 6);
        assert_eq!(e[2].tag, 7);
        assert_eq!(r.slots()[3], RingbufEntry::EMPTY);
    }

    #[test]
    fn wraparound_keeps_the_last_512_in_order() {
        let mut r = ring();
        for i in 0..1300u64 {
            r.record(Tag::CtxSave, (i % 4) as u32, 0xabc, i, i);
        }
        assert_eq!(r.recorded(), 1300);
        let tscs: Vec<u64> = r.entries().map(|e| e.tsc).collect();
        assert_eq!(tscs, (1300 - 512..1300).collect::<Vec<u64>>());
        // Slot i holds the newest event with number ≡ i (mod 512).
        assert_eq!(r.slots()[1300 % 512].tsc, 1300 - 512);
        assert_eq!(r.slots()[1299 % 512].tsc, 1299);
    }

    #[test]
    fn per_tag_last_and_count() {
        let mut r = ring();
        assert_eq!(r.last(Tag::EmuFail1), None);
        for i in 0..600u64 {
            let tag = if i % 3 == 0 {
                Tag::CtxSave
            } else {
                Tag::CtxRestore
            };
            r.record(tag, 1, 2, i, i * 10);
        }
        r.record(Tag::EmuFail0, 7, 8, 1000, 0xdead);
        r.record(Tag::EmuFail1, 7, 8, 1001, 0xfff0);
        r.record(Tag::EmuFail2, 7, 8, 1002, 0x0f01_d900);
        assert_eq!(r.count(Tag::CtxSave), 200);
        assert_eq!(r.count(Tag::CtxRestore), 400);
        assert_eq!(r.count(Tag::EmuFail1), 1);
        assert_eq!(r.count(Tag::Reload), 0);
        assert_eq!(r.last(Tag::CtxSave).map(|e| e.tsc), Some(597));
        assert_eq!(r.last(Tag::CtxRestore).map(|e| e.payload), Some(5990));
        assert_eq!(
            r.last(Tag::EmuFail1),
            Some(&RingbufEntry {
                tag: 10,
                cpuid: 7,
                thread: 8,
                tsc: 1001,
                payload: 0xfff0
            })
        );
        assert_eq!(r.last(Tag::Reload), None);
        // The last three entries of the ring are the emulation failure.
        let tail: Vec<u32> = r.entries().skip(509).map(|e| e.tag).collect();
        assert_eq!(tail, [9, 10, 11]);
    }

    #[test]
    fn count_past_u32_max_stays_full() {
        let mut r = ring();
        r.set_recorded(u32::MAX - 1);
        r.record(Tag::Reload, 0, 0, 1, 0); // slot 510
        r.record(Tag::Reload, 0, 0, 2, 0); // slot 511, count wraps to 512
        assert_eq!(r.recorded(), 512);
        r.record(Tag::Reload, 0, 0, 3, 0); // slot 0
        assert_eq!(r.recorded(), 513);
        assert_eq!(r.slots()[510].tsc, 1);
        assert_eq!(r.slots()[511].tsc, 2);
        assert_eq!(r.slots()[0].tsc, 3);
        let tail: Vec<u64> = r.entries().skip(509).map(|e| e.tsc).collect();
        assert_eq!(tail, [1, 2, 3]);
    }
}
