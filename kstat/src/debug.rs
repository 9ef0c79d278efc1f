//! The driver's debugger view (issue 9; inventory §5): `#[repr(C)]` records
//! the `kvm` mdb module (`mdb/kvm_mdb.c`) walks.
//!
//! The C dmod read `struct kvm`, `struct kvm_memslots`, the IRQ routing table
//! and `kvm_ringbuf_t` straight out of the driver, through CTF and the C
//! headers. Rust's own VM structures have no stable layout, so the driver
//! keeps these small records current beside them instead, and the dmod
//! reads nothing else. Their offsets reach C through a generated header
//! (`mdb-offsets`, [`write_c_header`]), never by hand.
//!
//! ```text
//! kvm_vm_list (KvmVmList, a #[unsafe(no_mangle)] static of the driver)
//!   .head ──▶ KvmDebugVm ──next──▶ KvmDebugVm ──next──▶ null
//!               .memslots ──▶ KvmDebugMemslots { nmemslots, slots[36] }
//!               .vcpus    ──▶ [*const KvmDebugVcpu; 64] (nvcpus used)
//!               .gsi[3][24]          │
//!                                    └──▶ KvmDebugVcpu { ringbuf (offset 0), .. }
//! ```
//!
//! [`DebugVm`] owns one VM's records (the VM record at offset 0, its
//! memslot table and VCPU pointer table) and has the safe setters the driver
//! calls as memslots, routes and VCPUs change; [`KvmVmList`] links it into
//! `kvm_vm_list`. The driver embeds a [`KvmDebugVcpu`] in each VCPU and
//! records ring events through it.

use core::ffi::CStr;
use core::mem::{offset_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::ringbuf::{RINGBUF_NENTRIES, Ringbuf, RingbufSlot, TAG_MAX, Tag};

/// The symbol the driver exports its VM list as (`#[unsafe(no_mangle)]
/// static kvm_vm_list: KvmVmList = KvmVmList::new();`). The C driver's was
/// `vm_list`, a `list_t`.
pub const VM_LIST_SYMBOL: &CStr = c"kvm_vm_list";

/// `KVM_MEMORY_SLOTS`: user memory slots (kvm_x86host.h:48).
pub const KVM_MEMORY_SLOTS: usize = 32;
/// `KVM_PRIVATE_MEM_SLOTS`: the driver's own slots after the user ones
/// (TSS, APIC access page, identity page table; kvm_x86host.h:50).
pub const KVM_PRIVATE_MEM_SLOTS: usize = 4;
/// Slots in a memslot table.
pub const KVM_MEMSLOTS_TOTAL: usize = KVM_MEMORY_SLOTS + KVM_PRIVATE_MEM_SLOTS;
/// `KVM_NR_IRQCHIPS`: PIC master, PIC slave, IOAPIC.
pub const KVM_NR_IRQCHIPS: usize = 3;
/// `KVM_IOAPIC_NUM_PINS`: pins per irqchip in the routing chip map.
pub const KVM_IOAPIC_NUM_PINS: usize = 24;
/// `KVM_MAX_VCPUS` (kvm_x86host.h:47).
pub const KVM_MAX_VCPUS: usize = 64;
/// Guest page size shift (`PAGESHIFT`).
pub const PAGESHIFT: u32 = 12;
/// A chip map entry for a pin no route uses (C: `chip[i][j] = -1`).
pub const GSI_NONE: u32 = u32::MAX;

/// `magic` of the list head, "KVML".
pub const MAGIC_VM_LIST: u32 = 0x4b56_4d4c;
/// `magic` of a VM record, "KVMV".
pub const MAGIC_VM: u32 = 0x4b56_4d56;
/// `magic` of a VCPU record, "KVMC".
pub const MAGIC_VCPU: u32 = 0x4b56_4d43;
/// Bumped whenever a record's layout changes; the list head carries it so a
/// dmod built for another layout refuses to walk.
pub const LAYOUT_VERSION: u32 = 1;

/// An index past the end of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange;

/// One memory slot (C: `struct kvm_memory_slot`, the fields the debugger
/// uses). `npages == 0` is an empty slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KvmDebugMemslot {
    /// First guest frame number.
    pub base_gfn: u64,
    /// Pages in the slot.
    pub npages: u64,
    /// Where QEMU mapped the slot (`userspace_addr`).
    pub userspace_addr: u64,
    /// `KVM_MEM_*` flags.
    pub flags: u32,
    /// The slot's id (its index; private slots from 32).
    pub id: u32,
}

/// A VM's memslot table (C: `struct kvm_memslots`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KvmDebugMemslots {
    /// Slots in use: one past the highest slot ever set.
    nmemslots: u32,
    _pad: u32,
    slots: [KvmDebugMemslot; KVM_MEMSLOTS_TOTAL],
}

/// One VCPU's record: its event ring (at offset 0, so the record's address
/// is the ring's, which the `kvm_ringbuf_entry` walker takes), magic and id.
/// The driver embeds it in its VCPU and records through
/// [`KvmDebugVcpu::record`], which takes `&self` (the ring is atomics), so
/// the VCPU thread and the illumos context ops record through shared
/// references to the same record.
#[derive(Debug)]
#[repr(C)]
pub struct KvmDebugVcpu {
    ringbuf: Ringbuf,
    magic: u32,
    id: u32,
}

/// One VM's record: what `kvm_vm_list` links and `::walk kvm` yields.
#[derive(Debug)]
#[repr(C)]
pub struct KvmDebugVm {
    /// The next VM on `kvm_vm_list`, null at the end.
    next: *mut KvmDebugVm,
    magic: u32,
    /// The VM id (`kvmid`, the `vm` kstat's instance).
    id: u32,
    /// The process that created the VM.
    pid: i32,
    /// Entries of `*vcpus` in use (highest VCPU index + 1).
    nvcpus: u32,
    /// The memslot table (C: `kvm->memslots`); null until linked.
    memslots: *const KvmDebugMemslots,
    /// `KVM_MAX_VCPUS` VCPU record pointers (C: `kvm->vcpus`); null until
    /// linked, null entries for absent VCPUs.
    vcpus: *const *const KvmDebugVcpu,
    /// The GSI routed from each irqchip pin (C: `irq_routing->chip`),
    /// [`GSI_NONE`] where no route uses the pin.
    gsi: [[u32; KVM_IOAPIC_NUM_PINS]; KVM_NR_IRQCHIPS],
}

/// Everything the debugger sees of one VM, in one block the driver keeps
/// inside its own VM: the VM record at offset 0, the memslot table and the
/// VCPU pointer table it points at. Its address must not change while it is
/// on a [`KvmVmList`] (the VM lives in one heap allocation until destroyed).
#[derive(Debug)]
#[repr(C)]
pub struct DebugVm {
    vm: KvmDebugVm,
    memslots: KvmDebugMemslots,
    vcpus: [*const KvmDebugVcpu; KVM_MAX_VCPUS],
}

/// The head of the VM list, the type of the driver's `kvm_vm_list` static.
/// It carries the magic, the layout version and the VM record size, which
/// the dmod checks before walking.
#[derive(Debug)]
#[repr(C)]
pub struct KvmVmList {
    head: AtomicPtr<KvmDebugVm>,
    magic: u32,
    version: u32,
    nvms: AtomicU32,
    vm_size: u32,
}

// SAFETY: the raw pointers in the records are written by the driver under
// its own locks (see `KvmVmList::link`) and dereferenced only by the
// debugger; holding or sharing a record gives Rust code no access through
// them.
unsafe impl Send for KvmDebugVm {}
// SAFETY: as above; `&KvmDebugVm` exposes no interior mutability.
unsafe impl Sync for KvmDebugVm {}
// SAFETY: as for `KvmDebugVm`.
unsafe impl Send for DebugVm {}
// SAFETY: as for `KvmDebugVm`.
unsafe impl Sync for DebugVm {}

const _: () = assert!(size_of::<KvmDebugMemslot>() == 32);
const _: () = assert!(offset_of!(KvmDebugMemslot, npages) == 8);
const _: () = assert!(offset_of!(KvmDebugMemslot, userspace_addr) == 16);
const _: () = assert!(offset_of!(KvmDebugMemslot, flags) == 24);
const _: () = assert!(offset_of!(KvmDebugMemslot, id) == 28);
const _: () = assert!(size_of::<KvmDebugMemslots>() == 8 + 32 * KVM_MEMSLOTS_TOTAL);
const _: () = assert!(offset_of!(KvmDebugMemslots, slots) == 8);
const _: () = assert!(offset_of!(KvmDebugVcpu, ringbuf) == 0);
const _: () = assert!(offset_of!(KvmDebugVcpu, magic) == size_of::<Ringbuf>());
const _: () = assert!(size_of::<KvmDebugVcpu>() == size_of::<Ringbuf>() + 8);
const _: () = assert!(offset_of!(KvmDebugVm, next) == 0);
const _: () = assert!(offset_of!(KvmDebugVm, magic) == 8);
const _: () = assert!(offset_of!(KvmDebugVm, id) == 12);
const _: () = assert!(offset_of!(KvmDebugVm, pid) == 16);
const _: () = assert!(offset_of!(KvmDebugVm, nvcpus) == 20);
const _: () = assert!(offset_of!(KvmDebugVm, memslots) == 24);
const _: () = assert!(offset_of!(KvmDebugVm, vcpus) == 32);
const _: () = assert!(offset_of!(KvmDebugVm, gsi) == 40);
const _: () = assert!(size_of::<KvmDebugVm>() == 40 + 4 * 3 * 24);
const _: () = assert!(offset_of!(DebugVm, vm) == 0);
const _: () = assert!(size_of::<KvmVmList>() == 24);
const _: () = assert!(offset_of!(KvmVmList, magic) == 8);
const _: () = assert!(offset_of!(KvmVmList, nvms) == 16);
// No padding anywhere: every byte of a record is a field, so the records
// can be copied byte for byte (the dmod test's memory image does).
const _: () = assert!(size_of::<DebugVm>() == 328 + 1160 + 8 * KVM_MAX_VCPUS);

impl KvmDebugMemslots {
    /// An empty table; slot `i` has id `i`.
    pub const fn new() -> Self {
        let mut slots = [KvmDebugMemslot {
            base_gfn: 0,
            npages: 0,
            userspace_addr: 0,
            flags: 0,
            id: 0,
        }; KVM_MEMSLOTS_TOTAL];
        let mut i = 0;
        while i < KVM_MEMSLOTS_TOTAL {
            // Indexing in a const fn; the loop bounds it.
            #[allow(clippy::indexing_slicing)]
            {
                slots[i].id = i as u32;
            }
            i += 1;
        }
        Self {
            nmemslots: 0,
            _pad: 0,
            slots,
        }
    }

    /// Slots in use (one past the highest ever set).
    pub fn nmemslots(&self) -> u32 {
        self.nmemslots
    }

    /// Slot `slot`.
    pub fn get(&self, slot: usize) -> Option<&KvmDebugMemslot> {
        self.slots.get(slot)
    }

    /// Set slot `slot` (id stays the index).
    pub fn set(
        &mut self,
        slot: usize,
        base_gfn: u64,
        npages: u64,
        flags: u32,
        userspace_addr: u64,
    ) -> Result<(), OutOfRange> {
        let s = self.slots.get_mut(slot).ok_or(OutOfRange)?;
        *s = KvmDebugMemslot {
            base_gfn,
            npages,
            userspace_addr,
            flags,
            id: slot as u32,
        };
        self.nmemslots = self.nmemslots.max(slot as u32 + 1);
        Ok(())
    }

    /// Empty slot `slot` (a deleted memory region).
    pub fn clear(&mut self, slot: usize) -> Result<(), OutOfRange> {
        self.set(slot, 0, 0, 0, 0)
    }
}

impl Default for KvmDebugMemslots {
    fn default() -> Self {
        Self::new()
    }
}

impl KvmDebugVcpu {
    /// [`Self::new`] built directly in kmem (the ring is 16 KB: never on
    /// the 20 KiB kernel stack).
    pub fn new_boxed(id: u32) -> alloc::boxed::Box<Self> {
        // SAFETY: the ring and the header are integers: all-zero is an
        // empty ring; magic and id are set next.
        let mut b = unsafe { alloc::boxed::Box::<Self>::new_zeroed().assume_init() };
        b.magic = MAGIC_VCPU;
        b.id = id;
        b
    }

    /// VCPU `id`'s record with an empty ring.
    pub const fn new(id: u32) -> Self {
        Self {
            ringbuf: Ringbuf::new(),
            magic: MAGIC_VCPU,
            id,
        }
    }

    /// The VCPU id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `kvm_ringbuf_record(&vcpu->kvcpu_ringbuf, tag, payload)`; see
    /// [`Ringbuf::record`] for the other arguments and for recording from
    /// several places at once.
    pub fn record(&self, tag: Tag, cpu: u32, thread: u64, tsc: u64, payload: u64) {
        self.ringbuf.record(tag, cpu, thread, tsc, payload);
    }

    /// Port of kvm_x86.c:kvm_report_emulation_failure's ring records: three
    /// events stamped alike, `EMUFAIL0` with the address of the `context`
    /// string (what failed, e.g. "mmio"), `EMUFAIL1` with the guest RIP,
    /// `EMUFAIL2` with the first 8 instruction bytes at RIP (little endian,
    /// as the C's `uint64_t ops` read from guest memory). The other
    /// arguments as [`Ringbuf::record`].
    pub fn record_emulation_failure(
        &self,
        cpu: u32,
        thread: u64,
        tsc: u64,
        context: &'static CStr,
        rip: u64,
        insn: [u8; 8],
    ) {
        let ctx = context.as_ptr() as usize as u64;
        self.ringbuf.record(Tag::EmuFail0, cpu, thread, tsc, ctx);
        self.ringbuf.record(Tag::EmuFail1, cpu, thread, tsc, rip);
        self.ringbuf
            .record(Tag::EmuFail2, cpu, thread, tsc, u64::from_le_bytes(insn));
    }

    /// The event ring (recording also goes through `&`).
    pub fn ringbuf(&self) -> &Ringbuf {
        &self.ringbuf
    }
}

impl KvmDebugVm {
    /// The VM id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The creator's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The next VM on the list (null at the end or when unlinked).
    pub fn next(&self) -> *const KvmDebugVm {
        self.next
    }

    /// Whether the magic is intact.
    pub fn is_valid(&self) -> bool {
        self.magic == MAGIC_VM
    }
}

impl DebugVm {
    /// The records of VM `id` created by process `pid`: no memslots, no
    /// routes ([`GSI_NONE`] everywhere), no VCPUs, not linked.
    pub const fn new(id: u32, pid: i32) -> Self {
        Self {
            vm: KvmDebugVm {
                next: ptr::null_mut(),
                magic: MAGIC_VM,
                id,
                pid,
                nvcpus: 0,
                memslots: ptr::null(),
                vcpus: ptr::null(),
                gsi: [[GSI_NONE; KVM_IOAPIC_NUM_PINS]; KVM_NR_IRQCHIPS],
            },
            memslots: KvmDebugMemslots::new(),
            vcpus: [ptr::null(); KVM_MAX_VCPUS],
        }
    }

    /// [`Self::new`] built directly in kmem: the records are ~2.3 KB, too
    /// big to build on the kernel stack and move.
    pub fn new_boxed(id: u32, pid: i32) -> alloc::boxed::Box<Self> {
        // SAFETY: every field is an integer, an array of integers or a raw
        // pointer: all-zero is a valid (empty, unlinked) value, then the
        // non-zero fields of `new` are set.
        let mut b = unsafe { alloc::boxed::Box::<Self>::new_zeroed().assume_init() };
        b.vm.magic = MAGIC_VM;
        b.vm.id = id;
        b.vm.pid = pid;
        b.vm.gsi = [[GSI_NONE; KVM_IOAPIC_NUM_PINS]; KVM_NR_IRQCHIPS];
        b
    }

    /// The VM record (what the list links; its address is this block's).
    pub fn record(&self) -> &KvmDebugVm {
        &self.vm
    }

    /// The memslot table.
    pub fn memslots(&self) -> &KvmDebugMemslots {
        &self.memslots
    }

    /// Set memory slot `slot` (`KVM_SET_USER_MEMORY_REGION`, or a private
    /// slot from [`KVM_MEMORY_SLOTS`] on).
    pub fn set_memslot(
        &mut self,
        slot: usize,
        base_gfn: u64,
        npages: u64,
        flags: u32,
        userspace_addr: u64,
    ) -> Result<(), OutOfRange> {
        self.memslots
            .set(slot, base_gfn, npages, flags, userspace_addr)
    }

    /// Empty memory slot `slot`.
    pub fn clear_memslot(&mut self, slot: usize) -> Result<(), OutOfRange> {
        self.memslots.clear(slot)
    }

    /// Route irqchip `chip`'s pin `pin` to `gsi` in the chip map (what
    /// `setup_routing_entry` does for an irqchip route).
    pub fn set_gsi(&mut self, chip: usize, pin: usize, gsi: u32) -> Result<(), OutOfRange> {
        let e = self
            .vm
            .gsi
            .get_mut(chip)
            .and_then(|c| c.get_mut(pin))
            .ok_or(OutOfRange)?;
        *e = gsi;
        Ok(())
    }

    /// Forget every route (before installing a new routing table).
    pub fn clear_gsi_routes(&mut self) {
        self.vm.gsi = [[GSI_NONE; KVM_IOAPIC_NUM_PINS]; KVM_NR_IRQCHIPS];
    }

    /// The GSI of `chip`'s pin `pin` ([`GSI_NONE`] if unrouted).
    pub fn gsi(&self, chip: usize, pin: usize) -> Option<u32> {
        self.vm.gsi.get(chip).and_then(|c| c.get(pin)).copied()
    }

    /// Record VCPU `index`'s record. The record must stay at its address
    /// (inside the heap-allocated VCPU) until [`DebugVm::clear_vcpu`], which
    /// the driver calls before the VCPU is freed; Rust never reads through
    /// the stored pointer, only the debugger does.
    pub fn set_vcpu(&mut self, index: usize, vcpu: &KvmDebugVcpu) -> Result<(), OutOfRange> {
        let e = self.vcpus.get_mut(index).ok_or(OutOfRange)?;
        *e = vcpu;
        self.vm.nvcpus = self.vm.nvcpus.max(index as u32 + 1);
        Ok(())
    }

    /// Forget VCPU `index`.
    pub fn clear_vcpu(&mut self, index: usize) -> Result<(), OutOfRange> {
        let e = self.vcpus.get_mut(index).ok_or(OutOfRange)?;
        *e = ptr::null();
        Ok(())
    }

    /// VCPU records in use.
    pub fn nvcpus(&self) -> u32 {
        self.vm.nvcpus
    }

    /// Point the VM record at this block's own tables. Done by
    /// [`KvmVmList::link`], once the block's address is final.
    fn fix_pointers(&mut self) {
        self.vm.memslots = &self.memslots;
        self.vm.vcpus = self.vcpus.as_ptr();
    }
}

impl KvmVmList {
    /// An empty list, as the driver's `kvm_vm_list` static starts.
    pub const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            magic: MAGIC_VM_LIST,
            version: LAYOUT_VERSION,
            nvms: AtomicU32::new(0),
            vm_size: size_of::<KvmDebugVm>() as u32,
        }
    }

    /// VMs on the list.
    pub fn len(&self) -> u32 {
        self.nvms.load(Ordering::Relaxed)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).is_null()
    }

    /// The first VM record (null if none).
    pub fn head(&self) -> *const KvmDebugVm {
        self.head.load(Ordering::Acquire)
    }

    /// Append `vm` (creation order, as the C `list_insert_tail`), pointing
    /// its record at its own tables first.
    ///
    /// # Safety
    /// `vm` is valid for writes and not on any list; the caller serializes
    /// every `link`/`unlink` of this list (the driver's VM list lock) and
    /// keeps `vm` at this address, alive, until it has been unlinked.
    pub unsafe fn link(&self, vm: *mut DebugVm) {
        // SAFETY: `vm` is valid for writes (contract).
        let dvm = unsafe { &mut *vm };
        dvm.fix_pointers();
        dvm.vm.next = ptr::null_mut();
        let rec: *mut KvmDebugVm = &mut dvm.vm;
        let mut cur = self.head.load(Ordering::Acquire);
        if cur.is_null() {
            self.head.store(rec, Ordering::Release);
        } else {
            // SAFETY: linked records stay valid until unlinked, and the
            // caller excludes concurrent link/unlink.
            unsafe {
                while !(*cur).next.is_null() {
                    cur = (*cur).next;
                }
                (*cur).next = rec;
            }
        }
        self.nvms.fetch_add(1, Ordering::Relaxed);
    }

    /// Remove `vm` from the list; false if it was not on it.
    ///
    /// # Safety
    /// As for [`KvmVmList::link`]: the caller serializes list updates and
    /// every record on the list is valid.
    pub unsafe fn unlink(&self, vm: *mut DebugVm) -> bool {
        // `vm` is at offset 0 of `DebugVm`: the same address.
        let rec = vm.cast::<KvmDebugVm>();
        let mut cur = self.head.load(Ordering::Acquire);
        if cur.is_null() {
            return false;
        }
        // SAFETY: linked records are valid (contract); `rec` is one of them
        // when found.
        unsafe {
            if cur == rec {
                self.head.store((*rec).next, Ordering::Release);
                (*rec).next = ptr::null_mut();
                self.nvms.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
            while !(*cur).next.is_null() {
                if (*cur).next == rec {
                    (*cur).next = (*rec).next;
                    (*rec).next = ptr::null_mut();
                    self.nvms.fetch_sub(1, Ordering::Relaxed);
                    return true;
                }
                cur = (*cur).next;
            }
        }
        false
    }
}

impl Default for KvmVmList {
    fn default() -> Self {
        Self::new()
    }
}

/// One field of a record, for the C header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// The record's name in the header (`KVM_MDB_OFF_<record>_<field>`).
    pub record: &'static str,
    /// The field's name in the header.
    pub field: &'static str,
    /// Byte offset in the record.
    pub offset: usize,
    /// Byte size of the field.
    pub size: usize,
}

const fn pointee_size<T>(_: *const T) -> usize {
    size_of::<T>()
}

macro_rules! field {
    ($ty:ty, $rec:literal, $field:ident, $name:literal) => {
        FieldLayout {
            record: $rec,
            field: $name,
            offset: offset_of!($ty, $field),
            size: {
                let u = core::mem::MaybeUninit::<$ty>::uninit();
                // SAFETY: only the field's address is formed (in bounds of
                // `u`), nothing is read.
                pointee_size(unsafe { &raw const (*u.as_ptr()).$field })
            },
        }
    };
}

/// The records and their sizes (`KVM_MDB_SIZEOF_<record>`).
pub const RECORDS: &[(&str, usize)] = &[
    ("VMLIST", size_of::<KvmVmList>()),
    ("VM", size_of::<KvmDebugVm>()),
    ("MEMSLOTS", size_of::<KvmDebugMemslots>()),
    ("MEMSLOT", size_of::<KvmDebugMemslot>()),
    ("VCPU", size_of::<KvmDebugVcpu>()),
    ("RINGBUF", size_of::<Ringbuf>()),
    ("RINGBUF_ENTRY", size_of::<RingbufSlot>()),
];

/// Every field the dmod reads (`KVM_MDB_OFF_*`, `KVM_MDB_FSIZE_*`).
pub const FIELDS: &[FieldLayout] = &[
    field!(KvmVmList, "VMLIST", head, "HEAD"),
    field!(KvmVmList, "VMLIST", magic, "MAGIC"),
    field!(KvmVmList, "VMLIST", version, "VERSION"),
    field!(KvmVmList, "VMLIST", nvms, "NVMS"),
    field!(KvmVmList, "VMLIST", vm_size, "VM_SIZE"),
    field!(KvmDebugVm, "VM", next, "NEXT"),
    field!(KvmDebugVm, "VM", magic, "MAGIC"),
    field!(KvmDebugVm, "VM", id, "ID"),
    field!(KvmDebugVm, "VM", pid, "PID"),
    field!(KvmDebugVm, "VM", nvcpus, "NVCPUS"),
    field!(KvmDebugVm, "VM", memslots, "MEMSLOTS"),
    field!(KvmDebugVm, "VM", vcpus, "VCPUS"),
    field!(KvmDebugVm, "VM", gsi, "GSI"),
    field!(KvmDebugMemslots, "MEMSLOTS", nmemslots, "NMEMSLOTS"),
    field!(KvmDebugMemslots, "MEMSLOTS", slots, "SLOTS"),
    field!(KvmDebugMemslot, "MEMSLOT", base_gfn, "BASE_GFN"),
    field!(KvmDebugMemslot, "MEMSLOT", npages, "NPAGES"),
    field!(KvmDebugMemslot, "MEMSLOT", userspace_addr, "USERSPACE_ADDR"),
    field!(KvmDebugMemslot, "MEMSLOT", flags, "FLAGS"),
    field!(KvmDebugMemslot, "MEMSLOT", id, "ID"),
    field!(KvmDebugVcpu, "VCPU", ringbuf, "RINGBUF"),
    field!(KvmDebugVcpu, "VCPU", magic, "MAGIC"),
    field!(KvmDebugVcpu, "VCPU", id, "ID"),
    field!(Ringbuf, "RINGBUF", buf, "BUF"),
    field!(Ringbuf, "RINGBUF", taglast, "TAGLAST"),
    field!(Ringbuf, "RINGBUF", tagcount, "TAGCOUNT"),
    field!(Ringbuf, "RINGBUF", ent, "ENT"),
    field!(RingbufSlot, "RINGBUF_ENTRY", tag, "TAG"),
    field!(RingbufSlot, "RINGBUF_ENTRY", cpuid, "CPUID"),
    field!(RingbufSlot, "RINGBUF_ENTRY", thread, "THREAD"),
    field!(RingbufSlot, "RINGBUF_ENTRY", tsc, "TSC"),
    field!(RingbufSlot, "RINGBUF_ENTRY", payload, "PAYLOAD"),
];

/// Numeric constants (`KVM_MDB_<name>`); the tags come from [`Tag::ALL`].
pub const CONSTANTS: &[(&str, u64)] = &[
    ("LAYOUT_VERSION", LAYOUT_VERSION as u64),
    ("MAGIC_VM_LIST", MAGIC_VM_LIST as u64),
    ("MAGIC_VM", MAGIC_VM as u64),
    ("MAGIC_VCPU", MAGIC_VCPU as u64),
    ("RINGBUF_NENTRIES", RINGBUF_NENTRIES as u64),
    ("TAG_MAX", TAG_MAX as u64),
    ("MEMORY_SLOTS", KVM_MEMORY_SLOTS as u64),
    ("PRIVATE_MEM_SLOTS", KVM_PRIVATE_MEM_SLOTS as u64),
    ("MEMSLOTS_TOTAL", KVM_MEMSLOTS_TOTAL as u64),
    ("NR_IRQCHIPS", KVM_NR_IRQCHIPS as u64),
    ("IOAPIC_NUM_PINS", KVM_IOAPIC_NUM_PINS as u64),
    ("MAX_VCPUS", KVM_MAX_VCPUS as u64),
    ("PAGESHIFT", PAGESHIFT as u64),
    ("GSI_NONE", GSI_NONE as u64),
];

/// Write the dmod's offsets header (`build/kvm_mdb_offsets.h`): the list
/// symbol, every record size, field offset and size, and the constants.
pub fn write_c_header(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    writeln!(
        out,
        "/*\n * Generated by `cargo run -p kvm-kstat --bin mdb-offsets` from the\n \
         * #[repr(C)] records of kstat/src/debug.rs and kstat/src/ringbuf.rs.\n \
         * Do not edit.\n */\n"
    )?;
    writeln!(
        out,
        "#ifndef\tKVM_MDB_OFFSETS_H\n#define\tKVM_MDB_OFFSETS_H\n"
    )?;
    let sym = VM_LIST_SYMBOL.to_str().unwrap_or("kvm_vm_list");
    writeln!(out, "#define\tKVM_MDB_SYM_VM_LIST\t\"{sym}\"\n")?;
    for (name, value) in CONSTANTS {
        writeln!(out, "#define\tKVM_MDB_{name}\t{value:#x}")?;
    }
    writeln!(out)?;
    for tag in Tag::ALL {
        writeln!(out, "#define\tKVM_MDB_TAG_{}\t{}", tag.c_name(), tag as u32)?;
    }
    writeln!(out)?;
    for (name, size) in RECORDS {
        writeln!(out, "#define\tKVM_MDB_SIZEOF_{name}\t{size}")?;
    }
    for f in FIELDS {
        writeln!(out)?;
        writeln!(
            out,
            "#define\tKVM_MDB_OFF_{}_{}\t{}",
            f.record, f.field, f.offset
        )?;
        writeln!(
            out,
            "#define\tKVM_MDB_FSIZE_{}_{}\t{}",
            f.record, f.field, f.size
        )?;
    }
    writeln!(out, "\n#endif\t/* KVM_MDB_OFFSETS_H */")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ringbuf::RingbufEntry;
    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn field_table_matches_offset_of_and_covers_each_record() {
        let vm = FIELDS.iter().find(|f| f.record == "VM" && f.field == "GSI");
        assert_eq!(
            vm,
            Some(&FieldLayout {
                record: "VM",
                field: "GSI",
                offset: 40,
                size: 288
            })
        );
        // Fields of each record do not overlap and stay inside it.
        for (rec, size) in RECORDS {
            let mut fs: Vec<_> = FIELDS.iter().filter(|f| f.record == *rec).collect();
            assert!(!fs.is_empty(), "{rec} has fields");
            fs.sort_by_key(|f| f.offset);
            let mut end = 0;
            for f in &fs {
                assert!(f.offset >= end, "{rec}.{} overlaps", f.field);
                end = f.offset + f.size;
            }
            // Every byte is a field (no implicit padding; MEMSLOTS has an
            // explicit `_pad` the dmod does not read).
            let total: usize = fs.iter().map(|f| f.size).sum();
            let pad = if *rec == "MEMSLOTS" { 4 } else { 0 };
            assert_eq!(total + pad, *size, "{rec} has padding");
        }
    }

    #[test]
    fn header_has_every_define() {
        let mut h = String::new();
        write_c_header(&mut h).unwrap();
        assert!(h.contains("#define\tKVM_MDB_SYM_VM_LIST\t\"kvm_vm_list\"\n"));
        assert!(h.contains("#define\tKVM_MDB_RINGBUF_NENTRIES\t0x200\n"));
        assert!(h.contains("#define\tKVM_MDB_TAG_EMUXADD\t12\n"));
        assert!(h.contains("#define\tKVM_MDB_SIZEOF_RINGBUF\t16856\n"));
        assert!(h.contains("#define\tKVM_MDB_OFF_RINGBUF_ENT\t16852\n"));
        assert!(h.contains("#define\tKVM_MDB_OFF_MEMSLOT_USERSPACE_ADDR\t16\n"));
        let defines = h.lines().filter(|l| l.starts_with("#define")).count();
        assert_eq!(
            defines,
            2 + CONSTANTS.len() + TAG_MAX + RECORDS.len() + 2 * FIELDS.len()
        );
    }

    #[test]
    fn setters_update_the_records_and_reject_bad_indices() {
        let mut vm = Box::new(DebugVm::new(3, 4242));
        assert_eq!(vm.gsi(0, 0), Some(GSI_NONE));
        vm.set_gsi(2, 9, 9).unwrap();
        assert_eq!(vm.gsi(2, 9), Some(9));
        assert_eq!(vm.set_gsi(3, 0, 1), Err(OutOfRange));
        assert_eq!(vm.set_gsi(0, 24, 1), Err(OutOfRange));
        vm.set_memslot(1, 0x100, 0x20, 0, 0x7fff_0000_0000).unwrap();
        assert_eq!(vm.memslots().nmemslots(), 2);
        assert_eq!(vm.memslots().get(1).map(|s| s.id), Some(1));
        assert_eq!(vm.memslots().get(0).map(|s| s.npages), Some(0));
        vm.set_memslot(KVM_MEMORY_SLOTS + 1, 0xfee00, 1, 0, 0x1000)
            .unwrap();
        assert_eq!(vm.memslots().nmemslots(), 34);
        assert_eq!(
            vm.set_memslot(KVM_MEMSLOTS_TOTAL, 0, 1, 0, 0),
            Err(OutOfRange)
        );
        vm.clear_memslot(1).unwrap();
        assert_eq!(vm.memslots().get(1).map(|s| s.npages), Some(0));
        vm.clear_gsi_routes();
        assert_eq!(vm.gsi(2, 9), Some(GSI_NONE));
        let vcpu = Box::new(KvmDebugVcpu::new(5));
        vm.set_vcpu(5, &vcpu).unwrap();
        assert_eq!(vm.nvcpus(), 6);
        assert_eq!(vm.set_vcpu(KVM_MAX_VCPUS, &vcpu), Err(OutOfRange));
        vm.clear_vcpu(5).unwrap();
    }

    #[test]
    fn list_links_in_creation_order_and_unlinks() {
        // The driver's `kvm_vm_list` is a static like this one.
        static LIST: KvmVmList = KvmVmList::new();
        let list = &LIST;
        let mut a = Box::new(DebugVm::new(1, 10));
        let mut b = Box::new(DebugVm::new(2, 20));
        let mut c = Box::new(DebugVm::new(3, 30));
        let (pa, pb, pc): (*mut DebugVm, *mut DebugVm, *mut DebugVm) = (&mut *a, &mut *b, &mut *c);
        let ids = |l: &KvmVmList| {
            let mut v = Vec::new();
            let mut p = l.head();
            while !p.is_null() {
                // SAFETY: the boxes outlive the walk.
                let r = unsafe { &*p };
                assert!(r.is_valid());
                v.push(r.id());
                p = r.next();
            }
            v
        };
        assert!(list.is_empty());
        // SAFETY: boxes stay put and alive until unlinked; one thread.
        unsafe {
            list.link(pa);
            list.link(pb);
            list.link(pc);
        }
        assert_eq!(ids(list), [1, 2, 3]);
        assert_eq!(list.len(), 3);
        // The record points at the block's own tables.
        // SAFETY: as above.
        let r = unsafe { &*pb };
        assert_eq!(r.vm.memslots, &r.memslots as *const _);
        assert_eq!(r.vm.vcpus, r.vcpus.as_ptr());
        // SAFETY: as above.
        unsafe {
            assert!(list.unlink(pb));
            assert!(!list.unlink(pb));
            assert_eq!(ids(list), [1, 3]);
            assert!(list.unlink(pa));
            assert_eq!(ids(list), [3]);
            assert!(list.unlink(pc));
        }
        assert!(list.is_empty());
        assert_eq!(list.len(), 0);
    }

    /// kvm_x86.c:kvm_report_emulation_failure: EMUFAIL0 (context string),
    /// EMUFAIL1 (RIP), EMUFAIL2 (`uint64_t ops`, the 8 bytes at RIP read
    /// as a little-endian word), in that order, last in the ring.
    #[test]
    fn emulation_failure_records_context_rip_and_opcode_bytes() {
        static WHAT: &CStr = c"mmio";
        let v = KvmDebugVcpu::new_boxed(3);
        v.record(Tag::VcpuLoad, 2, 0x77, 10, 0);
        v.record_emulation_failure(
            2,
            0x77,
            11,
            WHAT,
            0xfff0,
            [0x0f, 0xae, 0x03, 0, 0, 0, 0, 0x90],
        );
        let tail: Vec<RingbufEntry> = v.ringbuf().entries().collect();
        assert_eq!(tail.len(), 4);
        let want = |tag: u32, payload: u64| RingbufEntry {
            tag,
            cpuid: 2,
            thread: 0x77,
            tsc: 11,
            payload,
        };
        assert_eq!(tail[1], want(9, WHAT.as_ptr() as usize as u64));
        assert_eq!(tail[2], want(10, 0xfff0));
        assert_eq!(tail[3], want(11, 0x9000_0000_0003_ae0f));
        assert_eq!(v.ringbuf().count(Tag::EmuFail2), 1);
    }
}
