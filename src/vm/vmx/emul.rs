//! The emulator's view of the guest (`emulate_instruction` with the C
//! `x86_emulate_ops`): linear addresses through the MMU's page-table
//! walker, guest RAM through the memslots, and MMIO through the in-kernel
//! devices (this VCPU's LAPIC, the IOAPIC) or, failing those, user space
//! (`KVM_EXIT_MMIO`).

use kvm_devices::coalesced_mmio::{CoalescedMmioRing, MmioWrite};
use kvm_kstat::debug::KvmDebugVcpu;
use kvm_kstat::ringbuf::Tag;
use kvm_kstat::sdt;
use kvm_mmu::walker::{
    self, Access as WalkAccess, AccessKind, PagingContext, PagingMode, Privilege, WalkError,
};
use kvm_vmx::vcpu::MmioExit;
use kvm_vmx::vmcs::Vmcs;
use kvm_x86_emulate::{EmulatorOps, Exception, OpError, Seg, SegmentCache};
use x86::vmx::vmcs::guest;

use super::super::irqchip::MmioDev;
use super::super::services::{Services, SharedPages};
use super::super::vm::VmShared;

/// An MMIO read user space answered (`vcpu->mmio_data`), served to the
/// re-executed instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmioAnswer {
    pub gpa: u64,
    pub len: u32,
    pub data: [u8; 8],
}

/// The guest's XMM registers for an SSE move the emulator runs (the
/// driver side of `EmulatorOps::xmm_read`/`xmm_write`), and the x87/MMX
/// bytes of the image for MMX moves (`fpu_read`/`fpu_write`): the kernel
/// has no SSE of its own, so the registers are bytes of the guest's saved
/// FXSAVE image.
pub trait XmmAccess {
    fn read(&mut self, reg: u8) -> Option<[u8; 16]>;
    fn write(&mut self, reg: u8, value: [u8; 16]) -> bool;
    /// `buf.len()` bytes at `offset` of the FXSAVE image; `false` beyond it.
    fn read_image(&mut self, offset: usize, buf: &mut [u8]) -> bool;
    /// Replace the bytes at `offset`; `false` beyond the image.
    fn write_image(&mut self, offset: usize, data: &[u8]) -> bool;
}

/// Where `EmulatorOps::note_xadd` records: the VCPU's event ring, stamped
/// with this emulation's CPU, thread and TSC.
pub struct RingStamp<'a> {
    pub debug: &'a KvmDebugVcpu,
    pub cpu: u32,
    pub thread: u64,
    pub tsc: u64,
}

/// Offset of XMM0 in the FXSAVE image (SDM vol. 1 table 10-2).
pub const FXSAVE_XMM0: usize = 160;

/// How many answered MMIO reads one instruction may need (CMPS: 2).
pub const MMIO_ANSWERS: usize = 4;

/// Keep `a` among `answers`, dropping the oldest when full.
pub fn keep_answer(answers: &mut [Option<MmioAnswer>; MMIO_ANSWERS], a: MmioAnswer) {
    if let Some(slot) = answers.iter_mut().find(|s| s.is_none()) {
        *slot = Some(a);
        return;
    }
    answers.rotate_left(1);
    if let Some(last) = answers.last_mut() {
        *last = Some(a);
    }
}

/// The ops of one emulation.
pub struct Ops<'a, S: Services> {
    pub shared: &'a VmShared<S>,
    pub vcpu_index: u32,
    /// The VCPU's address, for the probes that pass the VCPU.
    pub vcpu: usize,
    pub v: &'a dyn Vmcs,
    pub paging: PagingContext,
    pub cpl: u8,
    pub cr: [u64; 5],
    /// The access user space must complete (reads stop the instruction;
    /// one write is queued).
    pub mmio: Option<MmioExit>,
    /// A completed MMIO read.
    /// The MMIO reads user space answered for the instruction being
    /// emulated: an instruction that reads MMIO twice (CMPS with both
    /// operands in MMIO) goes to user space once per read, and each
    /// re-execution finds the earlier answers here (Linux's
    /// `read_emulated` cache; kvm-unit-tests' emulator.flat `repe cmpsb`).
    pub answers: [Option<MmioAnswer>; MMIO_ANSWERS],
    /// The PIO data page (OUTS data for user space).
    pub pio_page: &'a mut [u8],
    /// OUTS elements queued for user space: port, size, count.
    pub pio_out: Option<(u16, u8, u32)>,
    /// User space's answer to an INS element.
    pub pio_in: Option<(u16, u8, [u8; 4])>,
    /// The INS element user space must answer.
    pub pio_in_needed: Option<(u16, u8)>,
    /// The guest's XMM registers, for SSE moves to and from MMIO.
    pub xmm: Option<&'a mut dyn XmmAccess>,
    /// The second fragment of a 16-byte MMIO store for user space.
    pub mmio_more: Option<MmioExit>,
    /// A task register LTR loaded (selector, base, limit, access rights):
    /// written to the VMCS when the instruction commits.
    pub tr_load: Option<(u16, u64, u32, u32)>,
    /// The LDTR a task switch loaded: written to the VMCS when it
    /// commits.
    pub ldtr_load: Option<SegmentCache>,
    /// CR0 and CR3 as written (CLTS, a task switch): applied when the
    /// instruction or switch commits ([`CrWrites`]).
    pub cr_writes: CrWrites,
    /// The segment registers the instruction loaded: written to the VMCS
    /// when it commits ([`SegLoads::commit`]).
    pub seg_loads: &'a mut SegLoads,
    /// The event ring for `note_xadd` (`KVM_RINGBUF_TAG_EMUXADD`).
    pub ring: Option<RingStamp<'a>>,
    /// The guest's IA32_EFER.
    pub efer: u64,
}

/// CR0.TS.
const CR0_TS: u64 = 1 << 3;

/// The control registers an emulation wrote, applied with the rest of its
/// state (`kvm_set_cr0`, `kvm_set_cr3`). CR0 may change only in TS (CLTS,
/// the TS a task switch sets); CR3 comes with the PAE PDPTEs it loaded
/// when the guest uses PAE paging (SDM vol. 3 §4.4.1: the CPU loads them
/// with CR3; `load_pdptrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrWrites {
    pub cr0: Option<u64>,
    pub cr3: Option<(u64, Option<[u64; 4]>)>,
}

fn seg_fields(seg: Seg) -> (u32, u32) {
    let [sel, base, _, _] = seg_vmcs(seg);
    (base, sel)
}

/// A segment register's VMCS guest fields: selector, base, limit, access
/// rights.
fn seg_vmcs(seg: Seg) -> [u32; 4] {
    use guest::*;
    match seg {
        Seg::Es => [ES_SELECTOR, ES_BASE, ES_LIMIT, ES_ACCESS_RIGHTS],
        Seg::Cs => [CS_SELECTOR, CS_BASE, CS_LIMIT, CS_ACCESS_RIGHTS],
        Seg::Ss => [SS_SELECTOR, SS_BASE, SS_LIMIT, SS_ACCESS_RIGHTS],
        Seg::Ds => [DS_SELECTOR, DS_BASE, DS_LIMIT, DS_ACCESS_RIGHTS],
        Seg::Fs => [FS_SELECTOR, FS_BASE, FS_LIMIT, FS_ACCESS_RIGHTS],
        Seg::Gs => [GS_SELECTOR, GS_BASE, GS_LIMIT, GS_ACCESS_RIGHTS],
    }
}

/// The order of [`SegLoads`]' caches.
const SEGS: [Seg; 6] = [Seg::Es, Seg::Cs, Seg::Ss, Seg::Ds, Seg::Fs, Seg::Gs];

fn seg_index(seg: Seg) -> usize {
    match seg {
        Seg::Es => 0,
        Seg::Cs => 1,
        Seg::Ss => 2,
        Seg::Ds => 3,
        Seg::Fs => 4,
        Seg::Gs => 5,
    }
}

/// The segment registers an emulated instruction loaded
/// (`EmulatorOps::set_segment`), kept until it completes. Lives in
/// `run_emulator`'s frame (the kernel stack is small): a mask and six
/// caches.
#[derive(Clone, Copy, Debug, Default)]
pub struct SegLoads {
    loaded: u8,
    caches: [SegmentCache; 6],
}

impl SegLoads {
    fn get(&self, seg: Seg) -> Option<SegmentCache> {
        let i = seg_index(seg);
        if self.loaded & (1 << i) == 0 {
            return None;
        }
        self.caches.get(i).copied()
    }

    fn set(&mut self, seg: Seg, cache: SegmentCache) {
        let i = seg_index(seg);
        if let Some(c) = self.caches.get_mut(i) {
            *c = cache;
            self.loaded |= 1 << i;
        }
    }

    /// Forget them (the instruction did not complete).
    pub fn clear(&mut self) {
        self.loaded = 0;
    }

    /// `vmx_set_segment` for each of them, once the instruction
    /// completed. The CPL follows SS.DPL.
    pub fn commit(&self, v: &mut dyn Vmcs) {
        for seg in SEGS {
            if let Some(c) = self.get(seg) {
                let [sel, base, limit, ar] = seg_vmcs(seg);
                v.write(sel, u64::from(c.selector));
                v.write(base, c.base);
                v.write(limit, u64::from(c.limit));
                v.write(ar, u64::from(c.access_rights));
            }
        }
    }
}

fn read_cache(v: &dyn Vmcs, [sel, base, limit, ar]: [u32; 4]) -> SegmentCache {
    SegmentCache {
        selector: v.read(sel) as u16,
        base: v.read(base),
        limit: v.read(limit) as u32,
        access_rights: v.read(ar) as u32,
    }
}

impl<S: Services> Ops<'_, S> {
    fn translate(&mut self, addr: u64, kind: AccessKind) -> Result<u64, OpError> {
        let user = self.cpl == 3;
        self.translate_as(addr, kind, user)
    }

    /// Translate as a user (CPL 3) or supervisor access; descriptor-table
    /// accesses are supervisor ones whatever the CPL (SDM vol. 3 §4.6.1).
    fn translate_as(&mut self, addr: u64, kind: AccessKind, user: bool) -> Result<u64, OpError> {
        let access = WalkAccess {
            kind,
            privilege: if user {
                Privilege::User
            } else {
                Privilege::Supervisor {
                    smap_override: false,
                }
            },
        };
        let mut mmu = self.shared.mmu().lock();
        match walker::translate(&mut *mmu, &self.paging, addr, access) {
            Ok(t) => Ok(t.gpa),
            Err(WalkError::PageFault(ec)) => Err(OpError::Fault(Exception::PageFault {
                addr,
                error_code: ec.bits(),
            })),
            Err(WalkError::NonCanonical) => Err(OpError::Fault(Exception::GeneralProtection(0))),
            Err(WalkError::Contended) => Err(OpError::Unhandleable),
        }
    }

    /// An in-kernel MMIO read; `false` if no device claims it.
    fn kernel_mmio_read(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        let len = buf.len();
        let mut d = self.shared.devices().lock();
        if let Some(l) = d.lapic(self.vcpu_index)
            && l.mmio_in_range(gpa)
        {
            let off = gpa.wrapping_sub(l.base_address());
            let v = l.mmio_read(off, len);
            // `apic_reg_read`'s and `emulator_read_emulated`'s probes.
            sdt::apic_read(off as usize, v as usize);
            sdt::mmio_read(len, gpa as usize, v as usize);
            let val = v.to_le_bytes();
            for (dst, src) in buf.iter_mut().zip(val.iter().chain(core::iter::repeat(&0))) {
                *dst = *src;
            }
            return true;
        }
        if let Some(r) = d.mmio.find(gpa, len as u64)
            && r.dev == MmioDev::Ioapic
            && let Some(chip) = d.irqchip.as_ref()
        {
            let v = chip.ioapic.read(gpa.wrapping_sub(r.base));
            sdt::mmio_read(len, gpa as usize, v as usize);
            let val = v.to_le_bytes();
            for (dst, src) in buf.iter_mut().zip(val.iter().chain(core::iter::repeat(&0))) {
                *dst = *src;
            }
            return true;
        }
        false
    }

    /// An in-kernel MMIO write; `false` if no device claims it.
    fn kernel_mmio_write(&mut self, gpa: u64, data: &[u8]) -> bool {
        let len = data.len();
        let mut b = [0u8; 4];
        for (d, s) in b.iter_mut().zip(data.iter()) {
            *d = *s;
        }
        let val = u32::from_le_bytes(b);
        let mut d = self.shared.devices().lock();
        if let Some(l) = d.lapic(self.vcpu_index)
            && l.mmio_in_range(gpa)
        {
            let off = gpa.wrapping_sub(l.base_address());
            sdt::apic_write(off as usize, val as usize);
            sdt::mmio_write(len, gpa as usize, val as usize);
            let _ = d.lapic_mmio_write(self.vcpu_index, off, len, val);
            return true;
        }
        if let Some(r) = d.mmio.find(gpa, len as u64)
            && r.dev == MmioDev::Ioapic
        {
            sdt::mmio_write(len, gpa as usize, val as usize);
            if len >= 4 {
                d.ioapic_mmio_write(gpa.wrapping_sub(r.base), val);
            }
            return true;
        }
        false
    }

    /// `coalesced_mmio_write`: append the write to the VM's ring if it
    /// falls in a registered zone (and the ring has room).
    fn coalesce(&mut self, gpa: u64, data: &[u8]) -> bool {
        let zones = self.shared.coalesced().lock();
        if zones.zones().is_empty() {
            return false;
        }
        let ring = self.shared.ring();
        if ring.len() < core::mem::size_of::<CoalescedMmioRing>() {
            return false;
        }
        // SAFETY: the ring page is page aligned, at least as large as the
        // ring (checked) and lives as long as the VM; the `coalesced` lock
        // serialises the kernel's writers, and user space only advances
        // `first` (validated by `write`), as with the C driver's mapping.
        let r = unsafe { &mut *ring.as_ptr().cast::<CoalescedMmioRing>() };
        zones.write(r, gpa, data) == MmioWrite::Coalesced
    }

    fn phys_read(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), OpError> {
        if let Some(a) = self
            .answers
            .iter()
            .flatten()
            .find(|a| a.gpa == gpa && a.len as usize == buf.len())
        {
            for (d, s) in buf.iter_mut().zip(a.data.iter()) {
                *d = *s;
            }
            return Ok(());
        }
        if self.shared.mmu().lock().read_guest(gpa, buf).is_ok() {
            return Ok(());
        }
        if buf.len() > 8 {
            // An SSE load from MMIO: 8-byte fragments, each answered in
            // turn and kept among the answers (Linux's `mmio_fragments`).
            let mut at = gpa;
            for chunk in buf.chunks_mut(8) {
                self.phys_read(at, chunk)?;
                at = at.wrapping_add(chunk.len() as u64);
            }
            return Ok(());
        }
        if self.kernel_mmio_read(gpa, buf) {
            return Ok(());
        }
        if self.mmio.is_some() {
            return Err(OpError::Unhandleable);
        }
        // Going to user space for the value.
        sdt::mmio_read_unsatisfied(buf.len(), gpa as usize);
        self.mmio = Some(MmioExit {
            phys_addr: gpa,
            data: [0; 8],
            len: buf.len() as u32,
            is_write: false,
        });
        Err(OpError::IoNeeded)
    }

    fn phys_write(&mut self, gpa: u64, data: &[u8]) -> Result<(), OpError> {
        if self.shared.mmu().lock().write_guest(gpa, data).is_ok() {
            // `emulator_write_phys` → `kvm_mmu_pte_write`.
            self.shared.mmu_pte_write(self.vcpu);
            return Ok(());
        }
        self.mmio_write(gpa, data)
    }

    /// A write `gpa` is not guest RAM for: an in-kernel device, the
    /// coalesced ring, or user space (`KVM_EXIT_MMIO`).
    fn mmio_write(&mut self, gpa: u64, data: &[u8]) -> Result<(), OpError> {
        if data.len() > 8 {
            // An SSE store to MMIO: 8-byte fragments; the first goes to user
            // space with this exit, the second with the next `KVM_RUN`
            // before the guest runs again (Linux's `mmio_fragments`).
            let mut at = gpa;
            for chunk in data.chunks(8) {
                self.phys_write(at, chunk)?;
                at = at.wrapping_add(chunk.len() as u64);
            }
            return Ok(());
        }
        if self.kernel_mmio_write(gpa, data) {
            return Ok(());
        }
        if self.coalesce(gpa, data) {
            return Ok(());
        }
        if (self.mmio.is_some() && self.mmio_more.is_some()) || data.len() > 8 {
            return Err(OpError::Unhandleable);
        }
        let mut m = MmioExit {
            phys_addr: gpa,
            data: [0; 8],
            len: data.len() as u32,
            is_write: true,
        };
        for (d, s) in m.data.iter_mut().zip(data.iter()) {
            *d = *s;
        }
        sdt::mmio_write(
            data.len(),
            gpa as usize,
            u64::from_le_bytes(m.data) as usize,
        );
        // A second user-space fragment (the other half of a store that
        // crosses into another MMIO page, or of a 16-byte store) goes out
        // with the next KVM_RUN.
        if self.mmio.is_none() {
            self.mmio = Some(m);
        } else {
            self.mmio_more = Some(m);
        }
        Ok(())
    }
}

impl<S: Services> EmulatorOps for Ops<'_, S> {
    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        Ok((
            self.v.read(guest::GDTR_BASE),
            self.v.read(guest::GDTR_LIMIT) as u16,
        ))
    }

    fn load_tr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        self.tr_load = Some((selector, base, limit, access_rights));
        Ok(())
    }

    fn tr(&mut self) -> Result<SegmentCache, OpError> {
        use guest::*;
        Ok(match self.tr_load {
            Some((selector, base, limit, access_rights)) => SegmentCache {
                selector,
                base,
                limit,
                access_rights,
            },
            None => read_cache(self.v, [TR_SELECTOR, TR_BASE, TR_LIMIT, TR_ACCESS_RIGHTS]),
        })
    }

    /// Queued until the task switch commits.
    fn load_ldtr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        self.ldtr_load = Some(SegmentCache {
            selector,
            base,
            limit,
            access_rights,
        });
        Ok(())
    }

    fn get_segment(&mut self, seg: Seg) -> Result<SegmentCache, OpError> {
        match self.seg_loads.get(seg) {
            Some(c) => Ok(c),
            None => Ok(read_cache(self.v, seg_vmcs(seg))),
        }
    }

    /// Queued until the instruction commits (`SegLoads::commit`). A new
    /// SS is the new CPL (SS.DPL) for the accesses that follow (a task
    /// switch's push of an error code on the new task's stack).
    fn set_segment(&mut self, seg: Seg, cache: SegmentCache) -> Result<(), OpError> {
        self.seg_loads.set(seg, cache);
        if seg == Seg::Ss {
            self.cpl = cache.dpl();
        }
        Ok(())
    }

    fn ldtr(&mut self) -> Result<SegmentCache, OpError> {
        use guest::*;
        Ok(match self.ldtr_load {
            Some(c) => c,
            None => read_cache(
                self.v,
                [LDTR_SELECTOR, LDTR_BASE, LDTR_LIMIT, LDTR_ACCESS_RIGHTS],
            ),
        })
    }

    fn read_system(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        let gpa = self.translate_as(addr, AccessKind::Read, false)?;
        self.phys_read(gpa, buf)
    }

    /// Descriptor-table writes (accessed and busy bits): the C wrote them
    /// with `kvm_write_guest_virt`, not `emulator_write_phys`, so they do
    /// not count as `mmu-pte-write`.
    fn write_system(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError> {
        let gpa = self.translate_as(addr, AccessKind::Write, false)?;
        if self.shared.mmu().lock().write_guest(gpa, data).is_ok() {
            return Ok(());
        }
        self.mmio_write(gpa, data)
    }

    fn fpu_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), OpError> {
        if self.xmm.as_mut().is_some_and(|x| x.read_image(offset, buf)) {
            Ok(())
        } else {
            Err(OpError::Unhandleable)
        }
    }

    fn fpu_write(&mut self, offset: usize, data: &[u8]) -> Result<(), OpError> {
        if self
            .xmm
            .as_mut()
            .is_some_and(|x| x.write_image(offset, data))
        {
            Ok(())
        } else {
            Err(OpError::Unhandleable)
        }
    }

    /// kvm_emulate.c's XADD: `KVM_RINGBUF_TAG_EMUXADD` with the
    /// destination's address.
    fn note_xadd(&mut self, linear: u64) {
        if let Some(r) = &self.ring {
            r.debug.record(Tag::EmuXadd, r.cpu, r.thread, r.tsc, linear);
        }
    }

    fn xmm_read(&mut self, reg: u8) -> Result<[u8; 16], OpError> {
        self.xmm
            .as_mut()
            .and_then(|x| x.read(reg))
            .ok_or(OpError::Unhandleable)
    }

    fn xmm_write(&mut self, reg: u8, value: [u8; 16]) -> Result<(), OpError> {
        if self.xmm.as_mut().is_some_and(|x| x.write(reg, value)) {
            Ok(())
        } else {
            Err(OpError::Unhandleable)
        }
    }

    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        let gpa = self.translate(addr, AccessKind::Read)?;
        self.phys_read(gpa, buf)
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError> {
        let gpa = self.translate(addr, AccessKind::Write)?;
        self.phys_write(gpa, data)
    }

    fn cmpxchg(&mut self, addr: u64, expected: &mut [u8], new: &[u8]) -> Result<bool, OpError> {
        let gpa = self.translate(addr, AccessKind::Write)?;
        let mut cur = [0u8; 16];
        let n = expected.len().min(16);
        let cur = cur.get_mut(..n).ok_or(OpError::Unhandleable)?;
        self.phys_read(gpa, cur)?;
        if expected.get(..n) == Some(&*cur) {
            self.phys_write(gpa, new)?;
            Ok(true)
        } else {
            for (d, s) in expected.iter_mut().zip(cur.iter()) {
                *d = *s;
            }
            Ok(false)
        }
    }

    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, OpError> {
        let gpa = self.translate(addr, AccessKind::Fetch)?;
        let room = (0x1000 - (addr & 0xfff)) as usize;
        let n = buf.len().min(room);
        let part = buf.get_mut(..n).ok_or(OpError::Unhandleable)?;
        match self.shared.mmu().lock().read_guest(gpa, part) {
            Ok(()) => Ok(n),
            Err(_) => Err(OpError::Unhandleable),
        }
    }

    /// An IN/INS element: an in-kernel device, else user space's answer,
    /// else a `KVM_EXIT_IO` (the instruction is re-executed).
    fn io_in(&mut self, port: u16, size: u8) -> Result<u32, OpError> {
        let n = usize::from(size.min(4));
        let mut b = [0u8; 4];
        let buf = b.get_mut(..n).ok_or(OpError::Unhandleable)?;
        if super::env::kernel_pio(self.shared, false, port, buf) {
            return Ok(u32::from_le_bytes(b));
        }
        if let Some((p, s, data)) = self.pio_in
            && p == port
            && s == size
        {
            self.pio_in = None;
            return Ok(u32::from_le_bytes(data));
        }
        if self.pio_out.is_some() || self.pio_in_needed.is_some() {
            return Err(OpError::IoNeeded);
        }
        self.pio_in_needed = Some((port, size));
        Err(OpError::IoNeeded)
    }

    /// An OUT/OUTS element: an in-kernel device, else queued in the PIO
    /// page for one `KVM_EXIT_IO` with `count` elements.
    fn io_out(&mut self, port: u16, size: u8, value: u32) -> Result<(), OpError> {
        let n = usize::from(size.min(4));
        let mut b = value.to_le_bytes();
        let buf = b.get_mut(..n).ok_or(OpError::Unhandleable)?;
        if self.pio_out.is_none()
            && self.pio_in_needed.is_none()
            && super::env::kernel_pio(self.shared, true, port, buf)
        {
            return Ok(());
        }
        let count = match self.pio_out {
            None if self.pio_in_needed.is_none() => 0,
            Some((p, s, c)) if p == port && s == size => c,
            _ => return Err(OpError::IoNeeded),
        };
        let off = (count as usize).saturating_mul(n);
        let Some(dst) = self.pio_page.get_mut(off..off.saturating_add(n)) else {
            // The page is full: the rest after user space drained it.
            return Err(OpError::IoNeeded);
        };
        dst.copy_from_slice(buf);
        self.pio_out = Some((port, size, count.saturating_add(1)));
        Ok(())
    }

    fn cpl(&self) -> u8 {
        self.cpl
    }

    fn segment_base(&self, seg: Seg) -> u64 {
        self.v.read(seg_fields(seg).0)
    }

    fn segment_selector(&self, seg: Seg) -> u16 {
        self.v.read(seg_fields(seg).1) as u16
    }

    fn read_cr(&mut self, n: u8) -> Result<u64, OpError> {
        self.cr
            .get(usize::from(n))
            .copied()
            .ok_or(OpError::Fault(Exception::InvalidOpcode))
    }

    /// CR0 changing only TS, and CR3; the rest is left to the CR-access
    /// exit handlers. A new CR3 translates the accesses that follow (a
    /// task switch reads the new task's descriptor tables through it);
    /// with PAE paging its PDPTEs are loaded now, #GP(0) for reserved
    /// bits (as MOV to CR3).
    fn write_cr(&mut self, n: u8, value: u64) -> Result<(), OpError> {
        match n {
            0 => {
                let cur = self.cr.first().copied().unwrap_or(0);
                if (cur ^ value) & !CR0_TS != 0 {
                    return Err(OpError::Unhandleable);
                }
                self.cr_writes.cr0 = Some(value);
            }
            3 => {
                let pdptes = match self.paging.mode {
                    PagingMode::Pae { .. } => {
                        let mut mmu = self.shared.mmu().lock();
                        let maxphyaddr = self.paging.features.maxphyaddr;
                        let p = walker::load_pae_pdptes(&mut *mmu, value, maxphyaddr)
                            .map_err(|_| OpError::Fault(Exception::GeneralProtection(0)))?;
                        self.paging.mode = PagingMode::Pae { pdptes: p };
                        Some(p)
                    }
                    _ => None,
                };
                self.paging.cr3 = value;
                self.cr_writes.cr3 = Some((value, pdptes));
            }
            _ => return Err(OpError::Unhandleable),
        }
        if let Some(c) = self.cr.get_mut(usize::from(n)) {
            *c = value;
        }
        Ok(())
    }

    fn read_dr(&mut self, _n: u8) -> Result<u64, OpError> {
        Err(OpError::Unhandleable)
    }

    fn write_dr(&mut self, _n: u8, _value: u64) -> Result<(), OpError> {
        Err(OpError::Unhandleable)
    }

    /// IA32_EFER only (what LTR and SYSCALL consult for IA-32e mode).
    fn read_msr(&mut self, msr: u32) -> Result<u64, OpError> {
        match msr {
            0xc000_0080 => Ok(self.efer),
            _ => Err(OpError::Unhandleable),
        }
    }

    fn write_msr(&mut self, _msr: u32, _value: u64) -> Result<(), OpError> {
        Err(OpError::Unhandleable)
    }
}
