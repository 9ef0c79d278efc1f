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
//! (kvm_report_emulation_failure); `EMUXADD` the emulator's XADD through
//! `EmulatorOps::note_xadd` (src/vm/vmx/emul.rs). `RELOAD` the C declared
//! and never recorded, nor does the port.
//!
//! The layout is the C one (`#[repr(C)]`, no padding), so a debugger reads it
//! with the offsets `mdb-offsets` prints. Every field is an atomic of the C
//! field's size (same layout), so recording takes `&self`: the VCPU thread
//! and the illumos context ops that interrupt it record into the same ring
//! through shared references. Recording never allocates, never panics and
//! costs one atomic read-modify-write and a handful of stores.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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
    /// `EMUXADD`: the emulator executed `xadd` (payload: the destination's
    /// address; the C recorded `c->dst.ptr`, the port the linear address,
    /// 0 for a register).
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

/// One event as read (`kvm_ringbuf_entry_t`, 32 bytes): a snapshot of a
/// [`RingbufSlot`], the type the ring stores.
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

/// One stored event (`kvm_ringbuf_entry_t`): [`RingbufEntry`]'s layout
/// with every field atomic (an `AtomicU32`/`AtomicU64` has the size,
/// alignment and bit validity of its integer), so the ring can be written
/// through a shared reference: by the VCPU thread and by the context ops
/// that run on it, with no `&mut` to alias. The debugger reads the same
/// bytes as the C struct.
#[derive(Debug)]
#[repr(C)]
pub struct RingbufSlot {
    /// `kvmre_tag`.
    pub(crate) tag: AtomicU32,
    /// `kvmre_cpuid`.
    pub(crate) cpuid: AtomicU32,
    /// `kvmre_thread`.
    pub(crate) thread: AtomicU64,
    /// `kvmre_tsc`.
    pub(crate) tsc: AtomicU64,
    /// `kvmre_payload`.
    pub(crate) payload: AtomicU64,
}

impl RingbufSlot {
    /// A never-written slot (all zero).
    pub const fn new() -> Self {
        Self {
            tag: AtomicU32::new(0),
            cpuid: AtomicU32::new(0),
            thread: AtomicU64::new(0),
            tsc: AtomicU64::new(0),
            payload: AtomicU64::new(0),
        }
    }

    /// The slot's fields now. A read racing a write of the same slot may
    /// mix old and new fields, as a debugger reading the C ring could.
    pub fn load(&self) -> RingbufEntry {
        RingbufEntry {
            tag: self.tag.load(Ordering::Relaxed),
            cpuid: self.cpuid.load(Ordering::Relaxed),
            thread: self.thread.load(Ordering::Relaxed),
            tsc: self.tsc.load(Ordering::Relaxed),
            payload: self.payload.load(Ordering::Relaxed),
        }
    }

    fn store(&self, e: &RingbufEntry) {
        self.tag.store(e.tag, Ordering::Relaxed);
        self.cpuid.store(e.cpuid, Ordering::Relaxed);
        self.thread.store(e.thread, Ordering::Relaxed);
        self.tsc.store(e.tsc, Ordering::Relaxed);
        self.payload.store(e.payload, Ordering::Relaxed);
    }
}

impl Default for RingbufSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// The ring (`kvm_ringbuf_t`): 16856 bytes, embedded in each VCPU's debug
/// record ([`crate::debug::KvmDebugVcpu`]). Every field is atomic:
/// [`Ringbuf::record`] takes `&self`.
#[derive(Debug)]
#[repr(C)]
pub struct Ringbuf {
    /// `kvmr_buf`: entry `ent % 512` is the next one written.
    pub(crate) buf: [RingbufSlot; RINGBUF_NENTRIES],
    /// `kvmr_taglast`: the last event of each tag (index 0 unused).
    pub(crate) taglast: [RingbufSlot; TAG_MAX + 1],
    /// `kvmr_tagcount`: events recorded per tag (wrapping; index 0 unused).
    pub(crate) tagcount: [AtomicU32; TAG_MAX + 1],
    /// `kvmr_ent`: events recorded so far; see [`Ringbuf::record`] for what
    /// happens past `u32::MAX`.
    pub(crate) ent: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<RingbufEntry>() == 32);
const _: () = assert!(core::mem::align_of::<RingbufEntry>() == 8);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, cpuid) == 4);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, thread) == 8);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, tsc) == 16);
const _: () = assert!(core::mem::offset_of!(RingbufEntry, payload) == 24);
// The stored slot is laid out exactly as the entry the C declared.
const _: () = assert!(core::mem::size_of::<RingbufSlot>() == 32);
const _: () = assert!(core::mem::align_of::<RingbufSlot>() == 8);
const _: () = assert!(core::mem::offset_of!(RingbufSlot, tag) == 0);
const _: () = assert!(core::mem::offset_of!(RingbufSlot, cpuid) == 4);
const _: () = assert!(core::mem::offset_of!(RingbufSlot, thread) == 8);
const _: () = assert!(core::mem::offset_of!(RingbufSlot, tsc) == 16);
const _: () = assert!(core::mem::offset_of!(RingbufSlot, payload) == 24);
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
            buf: [const { RingbufSlot::new() }; RINGBUF_NENTRIES],
            taglast: [const { RingbufSlot::new() }; TAG_MAX + 1],
            tagcount: [const { AtomicU32::new(0) }; TAG_MAX + 1],
            ent: AtomicU32::new(0),
        }
    }

    /// `kvm_ringbuf_record`: write the event into the next slot, as the
    /// last event of its tag, and count it. `cpu` is the current CPU id,
    /// `thread` the current `kthread_t *`, `tsc` `gethrtime_unscaled()`:
    /// the caller (the driver, preemption disabled) supplies them, which
    /// keeps this crate free of platform calls.
    ///
    /// Takes `&self`: the slot is claimed with one atomic read-modify-write
    /// of the event count, so two recorders (the VCPU thread and a context
    /// op interrupting it, or two CPUs) never get the same slot unless 512
    /// other events come between; each field is an atomic store. What the
    /// C never promised either: a `taglast` entry written by two recorders
    /// of the same tag at once may mix their fields.
    ///
    /// One divergence from C: when the 32-bit event count would wrap to 0
    /// it continues at 512 instead, which is the same slot (512 ≡ 0 mod
    /// 512) but keeps the debugger's "count > 512, so the ring is full" test
    /// true, so a walk still shows 512 entries after 2³² events.
    pub fn record(&self, tag: Tag, cpu: u32, thread: u64, tsc: u64, payload: u64) {
        let entry = RingbufEntry {
            tag: tag as u32,
            cpuid: cpu,
            thread,
            tsc,
            payload,
        };
        let next = |e: u32| Some(e.checked_add(1).unwrap_or(RINGBUF_NENTRIES as u32));
        // The closure never refuses, so both arms are the previous count.
        let (Ok(ent) | Err(ent)) =
            self.ent
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, next);
        let slot = ent as usize & (RINGBUF_NENTRIES - 1);
        if let Some(e) = self.buf.get(slot) {
            e.store(&entry);
        }
        let t = tag as usize;
        if let Some(e) = self.taglast.get(t) {
            e.store(&entry);
        }
        if let Some(c) = self.tagcount.get(t) {
            // Wrapping, as the C's `kvmr_tagcount[tag]++`.
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `kvmr_ent`: events recorded (see [`Ringbuf::record`] past 2³²).
    pub fn recorded(&self) -> u32 {
        self.ent.load(Ordering::Relaxed)
    }

    /// Entries still in the ring, oldest first (at most 512), as the
    /// `kvm_ringbuf_entry` walker visits them.
    pub fn entries(&self) -> impl Iterator<Item = RingbufEntry> + '_ {
        let ent = self.recorded() as usize;
        let n = ent.min(RINGBUF_NENTRIES);
        let first = ent.wrapping_sub(n);
        (0..n).filter_map(move |i| self.slot(first.wrapping_add(i) & (RINGBUF_NENTRIES - 1)))
    }

    /// Raw slot `i` (entry `i mod 512`), `None` past 511.
    pub fn slot(&self, i: usize) -> Option<RingbufEntry> {
        self.buf.get(i).map(RingbufSlot::load)
    }

    /// The last event of `tag` (`kvmr_taglast[tag]`), `None` if none yet.
    pub fn last(&self, tag: Tag) -> Option<RingbufEntry> {
        self.taglast
            .get(tag as usize)
            .map(RingbufSlot::load)
            .filter(|e| e.tag == tag as u32)
    }

    /// Events of `tag` recorded (`kvmr_tagcount[tag]`, wrapping).
    pub fn count(&self, tag: Tag) -> u32 {
        self.tagcount
            .get(tag as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Test support: pretend `n` events were recorded already.
    #[cfg(test)]
    fn set_recorded(&self, n: u32) {
        self.ent.store(n, Ordering::Relaxed);
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

    fn slot(r: &Ringbuf, i: usize) -> RingbufEntry {
        r.slot(i).unwrap()
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

    /// The stored slot must be the C `kvm_ringbuf_entry_t` byte for byte:
    /// the debugger reads the raw memory. Checked on the bytes of a
    /// recorded slot, decoded with the C field offsets (kvm_host.h:
    /// uint32_t tag, uint32_t cpuid, uint64_t thread, tsc, payload).
    #[test]
    fn slot_bytes_are_the_c_entry() {
        let r = ring();
        r.record(
            Tag::VcpuMigrate,
            0x0a0b_0c0d,
            0x1111_2222_3333_4444,
            0x55,
            0x66,
        );
        let s: &RingbufSlot = &r.buf[0];
        // SAFETY: 32 initialised bytes (asserted no padding), single thread.
        let b: &[u8] =
            unsafe { std::slice::from_raw_parts((s as *const RingbufSlot).cast::<u8>(), 32) };
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u32_at(0), 4);
        assert_eq!(u32_at(4), 0x0a0b_0c0d);
        assert_eq!(u64_at(8), 0x1111_2222_3333_4444);
        assert_eq!(u64_at(16), 0x55);
        assert_eq!(u64_at(24), 0x66);
    }

    #[test]
    fn records_in_order_before_wrapping() {
        let r = ring();
        assert_eq!(r.entries().count(), 0);
        r.record(Tag::VcpuLoad, 3, 0xffff_fe00_1000, 100, 3);
        r.record(Tag::Vmptrld, 3, 0xffff_fe00_1000, 101, 0x1234_5000);
        r.record(Tag::VcpuPut, 3, 0xffff_fe00_1000, 102, 3);
        assert_eq!(r.recorded(), 3);
        let e: Vec<_> = r.entries().collect();
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
        assert_eq!(slot(&r, 3), RingbufEntry::EMPTY);
        assert_eq!(r.slot(512), None);
    }

    #[test]
    fn wraparound_keeps_the_last_512_in_order() {
        let r = ring();
        for i in 0..1300u64 {
            r.record(Tag::CtxSave, (i % 4) as u32, 0xabc, i, i);
        }
        assert_eq!(r.recorded(), 1300);
        let tscs: Vec<u64> = r.entries().map(|e| e.tsc).collect();
        assert_eq!(tscs, (1300 - 512..1300).collect::<Vec<u64>>());
        // Slot i holds the newest event with number ≡ i (mod 512).
        assert_eq!(slot(&r, 1300 % 512).tsc, 1300 - 512);
        assert_eq!(slot(&r, 1299 % 512).tsc, 1299);
    }

    /// Exactly at the 512 boundary: event 512 (the 513th) overwrites slot
    /// 0, and the walk starts at event 1 (slot 1).
    #[test]
    fn the_513th_event_overwrites_the_first() {
        let r = ring();
        for i in 0..512u64 {
            r.record(Tag::VcpuLoad, 0, 0, i, 1000 + i);
        }
        assert_eq!(r.entries().count(), 512);
        assert_eq!(r.entries().next().map(|e| e.payload), Some(1000));
        assert_eq!(slot(&r, 0).payload, 1000);
        r.record(Tag::VcpuPut, 0, 0, 512, 7);
        assert_eq!(
            slot(&r, 0),
            RingbufEntry {
                tag: 7,
                cpuid: 0,
                thread: 0,
                tsc: 512,
                payload: 7
            }
        );
        assert_eq!(slot(&r, 1).payload, 1001);
        let e: Vec<RingbufEntry> = r.entries().collect();
        assert_eq!(e.len(), 512);
        assert_eq!(e[0].payload, 1001);
        assert_eq!(e[511].payload, 7);
    }

    /// Recording needs only `&Ringbuf`: two shared references (the VCPU
    /// thread's and a context op's, in the driver) recording interleaved
    /// land in consecutive slots in call order, each counted once.
    #[test]
    fn two_shared_references_record_interleaved() {
        let r = ring();
        let vcpu_thread: &Ringbuf = &r;
        let ctx_op: &Ringbuf = &r;
        for i in 0..300u64 {
            vcpu_thread.record(Tag::VcpuLoad, 1, 0xa, 2 * i, 2 * i);
            ctx_op.record(Tag::CtxSave, 2, 0xb, 2 * i + 1, 2 * i + 1);
        }
        assert_eq!(r.recorded(), 600);
        assert_eq!(r.count(Tag::VcpuLoad), 300);
        assert_eq!(r.count(Tag::CtxSave), 300);
        let e: Vec<RingbufEntry> = r.entries().collect();
        assert_eq!(e.len(), 512);
        for (k, x) in e.iter().enumerate() {
            let n = 600 - 512 + k as u64;
            let (tag, cpu, thread) = if n.is_multiple_of(2) {
                (6, 1, 0xa)
            } else {
                (1, 2, 0xb)
            };
            assert_eq!(
                *x,
                RingbufEntry {
                    tag,
                    cpuid: cpu,
                    thread,
                    tsc: n,
                    payload: n
                },
                "entry {k}"
            );
        }
        assert_eq!(r.last(Tag::CtxSave).map(|e| e.tsc), Some(599));
        assert_eq!(r.last(Tag::VcpuLoad).map(|e| e.tsc), Some(598));
    }

    /// Two threads recording at once through `&Ringbuf`: no event is lost
    /// or written twice (each claims its own slot), and no slot mixes two
    /// events. 2 × 256 events fill the ring exactly once, so no slot is
    /// legitimately reused.
    #[test]
    fn concurrent_recorders_claim_distinct_slots() {
        let r = ring();
        let per_thread = RINGBUF_NENTRIES as u64 / 2;
        std::thread::scope(|s| {
            for who in 0..2u64 {
                let r: &Ringbuf = &r;
                s.spawn(move || {
                    let tag = if who == 0 {
                        Tag::CtxSave
                    } else {
                        Tag::CtxRestore
                    };
                    for i in 0..per_thread {
                        // Every field derived from one number, so a mixed
                        // slot shows.
                        let n = who * 1000 + i;
                        r.record(tag, n as u32, n, n, n);
                    }
                });
            }
        });
        assert_eq!(r.recorded() as usize, RINGBUF_NENTRIES);
        assert_eq!(u64::from(r.count(Tag::CtxSave)), per_thread);
        assert_eq!(u64::from(r.count(Tag::CtxRestore)), per_thread);
        let mut seen: Vec<u64> = Vec::new();
        for e in r.entries() {
            assert_eq!(u64::from(e.cpuid), e.payload, "{e:?}");
            assert_eq!(e.thread, e.payload, "{e:?}");
            assert_eq!(e.tsc, e.payload, "{e:?}");
            let want_tag = if e.payload < 1000 { 1 } else { 2 };
            assert_eq!(e.tag, want_tag, "{e:?}");
            seen.push(e.payload);
        }
        seen.sort_unstable();
        let mut want: Vec<u64> = (0..per_thread).chain(1000..1000 + per_thread).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn per_tag_last_and_count() {
        let r = ring();
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
            Some(RingbufEntry {
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
        let r = ring();
        r.set_recorded(u32::MAX - 1);
        r.record(Tag::Reload, 0, 0, 1, 0); // slot 510
        r.record(Tag::Reload, 0, 0, 2, 0); // slot 511, count wraps to 512
        assert_eq!(r.recorded(), 512);
        r.record(Tag::Reload, 0, 0, 3, 0); // slot 0
        assert_eq!(r.recorded(), 513);
        assert_eq!(slot(&r, 510).tsc, 1);
        assert_eq!(slot(&r, 511).tsc, 2);
        assert_eq!(slot(&r, 0).tsc, 3);
        let tail: Vec<u64> = r.entries().skip(509).map(|e| e.tsc).collect();
        assert_eq!(tail, [1, 2, 3]);
    }
}
