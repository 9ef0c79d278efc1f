//! A VM: port of `kvm_create_vm`/`kvm_arch_create_vm`, the memory ioctls
//! (`kvm_vm_ioctl_set_memory_region`, `kvm_vm_ioctl_get_dirty_log`), the
//! private memslots (`vmx_set_tss_addr`, `kvm_vm_ioctl_set_identity_map_addr`,
//! `alloc_identity_pagetable`, `alloc_apic_access_page`,
//! `init_rmode_tss`, `init_rmode_identity_map`) and coalesced MMIO
//! (`kvm_vm_ioctl_(un)register_coalesced_mmio`); the device ioctls are in
//! [`super::irqchip`] and [`super::pit`].
//!
//! Differences from the C driver:
//! * The memory of a private slot is given back ([`Services::unmap_private`])
//!   when the VM goes, or at once when the slot cannot be created (the C
//!   `kmem_free`d a user address on teardown and leaked it on failure).
//! * Register/unregister coalesced MMIO return a positive ENOBUFS (the C
//!   returned `-ENOBUFS` as the ioctl's errno).
//! * The identity-map page table slot is created with the first VCPU
//!   (as in the C) at `ept_identity_map_addr`, or at the C's default
//!   0xfffbc000 if KVM_SET_IDENTITY_MAP_ADDR never ran; a later
//!   KVM_SET_IDENTITY_MAP_ADDR only records the address, as in the C.

use alloc::sync::Arc;
use alloc::vec::Vec;

use kvm_devices::coalesced_mmio::{CoalescedMmio, CoalescedMmioZone, ZoneError};
use kvm_ioctl::abi::hyperv::{
    HV_X64_MSR_GUEST_OS_ID, HV_X64_MSR_HYPERCALL, HV_X64_MSR_HYPERCALL_ENABLE,
    HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_MASK,
};
use kvm_ioctl::abi::kvm_userspace_memory_region;
use kvm_ioctl::{Errno, VmId, VmRequest};
use kvm_kstat::{Published, VmStats};
use kvm_mmu::memslot::PAGE_SIZE;
use kvm_mmu::{Invept, MemoryRegion, Mmu, MmuError, SlotId};

use super::VmxSeam;
use super::irqchip::{self, Devices};
use super::kstat::Installed;
use super::pit;
use super::services::Services;

/// `VMX_EPT_IDENTITY_PAGETABLE_ADDR`: where the identity-map page table
/// goes if KVM_SET_IDENTITY_MAP_ADDR never ran.
pub const VMX_EPT_IDENTITY_PAGETABLE_ADDR: u64 = 0xfffb_c000;
/// The APIC-access page's guest-physical address (`alloc_apic_access_page`).
pub const APIC_ACCESS_PAGE_ADDR: u64 = 0xfee0_0000;
/// Pages of the real-mode TSS slot (`PAGESIZE * 3` in `vmx_set_tss_addr`).
pub const RMODE_TSS_PAGES: u64 = 3;
/// `TSS_BASE_SIZE` (0x68) + `TSS_REDIRECTION_SIZE` (256 / 8).
const TSS_IOPB_BASE: u16 = 0x68 + 32;
/// `TSS_IOPB_BASE_OFFSET`.
const TSS_IOPB_BASE_OFFSET: u64 = 0x66;
/// `RMODE_TSS_SIZE`: base + redirection map + 65536-bit IOPB + 1.
const RMODE_TSS_SIZE: u64 = 0x68 + 32 + 65536 / 8 + 1;

/// The errno of an MMU error (`MmuError::errno`).
pub fn mmu_errno(e: MmuError) -> Errno {
    match e.errno() {
        kvm_mmu::Errno::Inval => Errno::EINVAL,
        kvm_mmu::Errno::Exist => Errno::EEXIST,
        kvm_mmu::Errno::NoMem => Errno::ENOMEM,
        kvm_mmu::Errno::NoEnt => Errno::ENOENT,
        kvm_mmu::Errno::Fault => Errno::EFAULT,
    }
}

/// State of `struct kvm_arch`: the addresses the VMX reset path reads and
/// the partition-wide Hyper-V MSRs (kept under `kvm->lock` in the C).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchState {
    /// `tss_addr` (KVM_SET_TSS_ADDR succeeded).
    pub tss_addr: Option<u64>,
    /// `ept_identity_map_addr` (0: not set).
    pub ept_identity_map_addr: u64,
    /// `ept_identity_pagetable_done`.
    pub identity_pagetable_done: bool,
    /// `hv_guest_os_id`: HV_X64_MSR_GUEST_OS_ID.
    pub hv_guest_os_id: u64,
    /// `hv_hypercall`: HV_X64_MSR_HYPERCALL.
    pub hv_hypercall: u64,
    /// kvmclock's epoch (`boot_hrtime`, `boot_wallclock`): the host's
    /// monotonic time and the wall-clock time at VM creation.
    pub kvmclock_boot: KvmclockBoot,
    /// `wall_clock`: MSR_KVM_WALL_CLOCK(_NEW) as last written.
    pub wall_clock_msr: u64,
}

/// When the VM was created, for kvmclock (see [`crate::vm::kvmclock`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmclockBoot {
    /// Host monotonic ns (the VMX host's `now_ns`).
    pub hrtime: u64,
    /// Wall clock: seconds since the epoch.
    pub wall_sec: u64,
    /// Wall clock: nanoseconds.
    pub wall_nsec: u32,
}

/// A private memslot and the process memory behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateSlot {
    /// Guest-physical base.
    pub gpa: u64,
    /// User address from [`Services::map_private`].
    pub hva: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The part of a VM its VCPUs (and later the run loop and the timer
/// callbacks) reach too. Lock order: `arch` → `mmu`; `devices` and
/// `coalesced` are leaves.
pub struct VmShared<S: Services> {
    id: VmId,
    mmu: spin::Mutex<Mmu<S::Tables, S::GuestMem>>,
    devices: spin::Mutex<Devices<S>>,
    coalesced: spin::Mutex<CoalescedMmio>,
    ring: S::Shared,
    arch: spin::Mutex<ArchState>,
    stats: Installed<S, VmStats>,
    /// The debugger's records (`::walk kvm`); a leaf lock.
    debug: spin::Mutex<crate::vm::debug::Linked>,
}

impl<S: Services> VmShared<S> {
    /// The VM id (`kvmid`).
    pub fn id(&self) -> VmId {
        self.id
    }
    /// The debugger's records of this VM.
    pub fn debug(&self) -> &spin::Mutex<crate::vm::debug::Linked> {
        &self.debug
    }
    /// The MMU (slots, EPT, dirty logs).
    pub fn mmu(&self) -> &spin::Mutex<Mmu<S::Tables, S::GuestMem>> {
        &self.mmu
    }
    /// The in-kernel devices and routing.
    pub fn devices(&self) -> &spin::Mutex<Devices<S>> {
        &self.devices
    }
    /// The coalesced-MMIO zones.
    pub fn coalesced(&self) -> &spin::Mutex<CoalescedMmio> {
        &self.coalesced
    }
    /// The coalesced-MMIO ring page (`kvm->coalesced_mmio_ring`).
    pub fn ring(&self) -> &S::Shared {
        &self.ring
    }
    /// TSS / identity-map addresses.
    pub fn arch(&self) -> ArchState {
        *self.arch.lock()
    }
    /// Record the VM's kvmclock epoch (the backend, at creation).
    pub fn set_kvmclock_boot(&self, boot: KvmclockBoot) {
        self.arch.lock().kvmclock_boot = boot;
    }
    /// MSR_KVM_WALL_CLOCK(_NEW) written: remember it (VM-wide, as the C's
    /// `kvm->arch.wall_clock`) and return the epoch to write there.
    pub fn set_wall_clock_msr(&self, data: u64) -> KvmclockBoot {
        let mut arch = self.arch.lock();
        arch.wall_clock_msr = data;
        arch.kvmclock_boot
    }
    /// The `vm` kstat's counters.
    pub fn stats(&self) -> &VmStats {
        self.stats.stats()
    }

    /// Copy the MMU's gauges into the kstat (`lpages`, `remote-tlb-flush`);
    /// the backend does it after every slot change and dirty-log read, the
    /// EPT-violation path should after each fault it handles.
    pub fn sync_stats(&self, mmu: &Mmu<S::Tables, S::GuestMem>) {
        let st = mmu.stats();
        self.stats().lpages.set(st.lpages);
        self.stats().remote_tlb_flush.set(st.invept_requests);
        self.stats().ept_table_pages.set(st.table_pages);
    }

    /// Port of kvm_mmu.c:`kvm_mmu_pte_write` under EPT, which
    /// `emulator_write_phys` (kvm_x86.c) called after every emulated write
    /// to guest RAM: count `mmu-pte-write` and fire
    /// `kvm-mmu-audit-post-pte(vcpu)`. The rest of the C function updated
    /// or zapped the shadow pages of the written frame; the EPT pages it
    /// found are direct ones, which it skipped, so under EPT this is all
    /// it did. `vcpu` is the VCPU's address, as the other VCPU probes pass.
    pub fn mmu_pte_write(&self, vcpu: usize) {
        self.stats().mmu_pte_write.inc();
        kvm_kstat::sdt::mmu_audit_post_pte(vcpu);
    }

    /// Port of kvm_x86.c:`kvm_hv_hypercall_enabled`.
    pub fn hv_hypercall_enabled(&self) -> bool {
        self.arch.lock().hv_hypercall & u64::from(HV_X64_MSR_HYPERCALL_ENABLE) != 0
    }

    /// Port of kvm_x86.c:`get_msr_hyperv_pw`: HV_X64_MSR_GUEST_OS_ID and
    /// HV_X64_MSR_HYPERCALL; `None` for another MSR.
    pub fn get_msr_hyperv_pw(&self, msr: u32) -> Option<u64> {
        let arch = self.arch.lock();
        match msr {
            HV_X64_MSR_GUEST_OS_ID => Some(arch.hv_guest_os_id),
            HV_X64_MSR_HYPERCALL => Some(arch.hv_hypercall),
            _ => None,
        }
    }

    /// Port of kvm_x86.c:`set_msr_hyperv_pw`. A zero guest OS id disables
    /// the hypercall page; the hypercall MSR is ignored while the guest OS
    /// id is zero (the write succeeds, nothing changes); enabling it writes
    /// the hypercall page: `hypercall` (`kvm_x86_ops->patch_hypercall`)
    /// then RET, at the page the MSR names (dirty-logged, where the C's
    /// `copyout` was not). EFAULT (the WRMSR #GPs) when that page is not
    /// guest RAM, EINVAL for another MSR.
    pub fn set_msr_hyperv_pw(&self, msr: u32, data: u64, hypercall: [u8; 3]) -> Result<(), Errno> {
        let enable = u64::from(HV_X64_MSR_HYPERCALL_ENABLE);
        let mut arch = self.arch.lock();
        match msr {
            HV_X64_MSR_GUEST_OS_ID => {
                arch.hv_guest_os_id = data;
                if data == 0 {
                    arch.hv_hypercall &= !enable;
                }
            }
            HV_X64_MSR_HYPERCALL => {
                if arch.hv_guest_os_id == 0 {
                    return Ok(());
                }
                if data & enable != 0 {
                    let [a, b, c] = hypercall;
                    let gpa = data & HV_X64_MSR_HYPERCALL_PAGE_ADDRESS_MASK;
                    self.mmu
                        .lock()
                        .write_guest(gpa, &[a, b, c, 0xc3])
                        .map_err(|_| Errno::EFAULT)?;
                }
                arch.hv_hypercall = data;
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// Port of `init_rmode_tss` (for the VMX VCPU reset): zero the three
    /// TSS pages, set the I/O map base and the final 0xff byte.
    pub fn init_rmode_tss(&self) -> Result<(), Errno> {
        let base = self.arch().tss_addr.ok_or(Errno::EINVAL)?;
        let mut mmu = self.mmu.lock();
        // In 256-byte pieces: a page-sized buffer would be 4 KiB of the
        // 20 KiB kernel stack.
        let zero = [0u8; 256];
        let mut off = 0;
        while off < RMODE_TSS_PAGES * PAGE_SIZE {
            mmu.write_guest(base + off, &zero).map_err(mmu_errno)?;
            off += zero.len() as u64;
        }
        mmu.write_guest(base + TSS_IOPB_BASE_OFFSET, &TSS_IOPB_BASE.to_le_bytes())
            .map_err(mmu_errno)?;
        mmu.write_guest(base + RMODE_TSS_SIZE - 1, &[0xff])
            .map_err(mmu_errno)?;
        Ok(())
    }

    /// Port of `init_rmode_identity_map`: 1024 4-MiB PSE entries mapping
    /// the first 4 GiB 1:1, written once.
    pub fn init_rmode_identity_map(&self) -> Result<(), Errno> {
        let mut arch = self.arch.lock();
        if arch.identity_pagetable_done {
            return Ok(());
        }
        let base = match arch.ept_identity_map_addr {
            0 => VMX_EPT_IDENTITY_PAGETABLE_ADDR,
            a => a,
        };
        // 64 entries (256 bytes) at a time, not a 4 KiB stack buffer.
        let mut mmu = self.mmu.lock();
        let mut chunk = [0u8; 256];
        for first in (0u32..1024).step_by(64) {
            for (i, e) in (first..).zip(chunk.chunks_exact_mut(4)) {
                // PT_VALID | PT_WRITABLE | PT_USER | PT_REF | PT_MOD | PT_PAGESIZE
                let pte = (i << 22) | 0x1 | 0x2 | 0x4 | 0x20 | 0x40 | 0x80;
                e.copy_from_slice(&pte.to_le_bytes());
            }
            mmu.write_guest(base + u64::from(first) * 4, &chunk)
                .map_err(mmu_errno)?;
        }
        drop(mmu);
        arch.identity_pagetable_done = true;
        Ok(())
    }
}

/// Which private slot (index into [`Vm`]'s table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Private {
    Tss = 0,
    ApicAccess = 1,
    IdentityPagetable = 2,
}

impl Private {
    fn slot(self) -> SlotId {
        match self {
            Private::Tss => SlotId::TSS,
            Private::ApicAccess => SlotId::APIC_ACCESS,
            Private::IdentityPagetable => SlotId::IDENTITY_PAGETABLE,
        }
    }
}

/// A VM (`struct kvm` minus the handle model, which the driver keeps).
pub struct Vm<S: Services, X: VmxSeam<S>> {
    shared: Arc<VmShared<S>>,
    services: Arc<S>,
    pub(crate) vmx: X::Vm,
    private: [Option<PrivateSlot>; 3],
}

impl<S: Services, X: VmxSeam<S>> Vm<S, X> {
    /// Port of `kvm_create_vm`: the MMU, the coalesced-MMIO ring page
    /// (`kvm_coalesced_mmio_init`), the IRQ source bitmap and the `vm`
    /// kstat (pid and zone of the caller).
    pub(crate) fn create(services: &Arc<S>, vmx: &X, id: VmId) -> Result<Self, Errno> {
        let instance = i32::try_from(id).map_err(|_| Errno::ENOMEM)?;
        let mmu = Mmu::new(services.mmu_tables(), services.guest_memory()).map_err(mmu_errno)?;
        let ring = services.alloc_shared(1)?;
        let caller = services.caller();
        let stats = Installed::install(
            services,
            instance,
            kvm_kstat::VM_KSTAT_NAME,
            VmStats::NDATA,
            Published::vm(caller.pid, caller.zone()),
        )?;
        let shared = Arc::new(VmShared {
            id,
            mmu: spin::Mutex::new(mmu),
            devices: spin::Mutex::new(Devices::new()),
            coalesced: spin::Mutex::new(CoalescedMmio::new()),
            ring,
            arch: spin::Mutex::new(ArchState::default()),
            stats,
            debug: spin::Mutex::new(crate::vm::debug::Linked::new(id, caller.pid)),
        });
        let vmx_vm = vmx.create_vm(&shared)?;
        Ok(Vm {
            shared,
            services: services.clone(),
            vmx: vmx_vm,
            private: [None; 3],
        })
    }

    /// The shared part.
    pub fn shared(&self) -> &Arc<VmShared<S>> {
        &self.shared
    }

    /// The TSS private slot, if KVM_SET_TSS_ADDR succeeded.
    pub fn tss_slot(&self) -> Option<PrivateSlot> {
        self.private_slot(Private::Tss)
    }

    fn private_slot(&self, which: Private) -> Option<PrivateSlot> {
        self.private.get(which as usize).copied().flatten()
    }

    /// A VM-wide request.
    pub(crate) fn request(&mut self, vmx: &X, req: VmRequest<'_>) -> Result<i32, Errno> {
        match req {
            VmRequest::SetUserMemoryRegion(r) => self.set_user_memory_region(vmx, r),
            VmRequest::GetDirtyLog { slot, bitmap } => self.get_dirty_log(vmx, slot, bitmap),
            VmRequest::SetTssAddr(addr) => self.set_tss_addr(vmx, addr),
            VmRequest::SetIdentityMapAddr(addr) => {
                self.shared.arch.lock().ept_identity_map_addr = addr;
                Ok(0)
            }
            VmRequest::CreateIrqchip => irqchip::create(&self.shared),
            VmRequest::IrqLine { irq, level } => {
                let r = irqchip::irq_line(&self.shared, irq, level);
                vmx.kick_vm(&self.vmx, &self.shared);
                r
            }
            VmRequest::GetIrqchip(id, chip) => irqchip::get(&self.shared, id, chip),
            VmRequest::SetIrqchip(id, chip) => {
                let r = irqchip::set(&self.shared, id, chip);
                vmx.kick_vm(&self.vmx, &self.shared);
                r
            }
            VmRequest::SetGsiRouting(entries) => irqchip::set_gsi_routing(&self.shared, entries),
            VmRequest::CreatePit { flags } => pit::create(&self.services, &self.shared, flags),
            VmRequest::GetPit2(out) => pit::get(&self.shared, out),
            VmRequest::SetPit2(st) => pit::set(&self.shared, st),
            VmRequest::RegisterCoalescedMmio(z) => {
                let zone = CoalescedMmioZone {
                    addr: z.addr,
                    size: z.size,
                    pad: z.pad,
                };
                self.shared
                    .coalesced
                    .lock()
                    .register(zone)
                    .map_err(|e| match e {
                        ZoneError::NoSpace => Errno::ENOBUFS,
                    })?;
                Ok(0)
            }
            VmRequest::UnregisterCoalescedMmio(z) => {
                let zone = CoalescedMmioZone {
                    addr: z.addr,
                    size: z.size,
                    pad: z.pad,
                };
                self.shared.coalesced.lock().unregister(zone);
                Ok(0)
            }
        }
    }

    /// Runs the INVEPT the MMU asked for, then lets it free unlinked tables.
    fn flush(&self, vmx: &X, inv: Invept) {
        if inv == Invept::Needed {
            vmx.flush_ept(&self.vmx, &self.shared);
            self.shared.mmu.lock().invept_done();
        }
        let mmu = self.shared.mmu.lock();
        self.shared.sync_stats(&mmu);
    }

    /// Port of `kvm_vm_ioctl_set_memory_region` (the dispatcher did the
    /// checks on its copy of the slots; the MMU repeats them).
    fn set_user_memory_region(
        &mut self,
        vmx: &X,
        r: &kvm_userspace_memory_region,
    ) -> Result<i32, Errno> {
        let region = MemoryRegion {
            flags: r.flags,
            guest_phys_addr: r.guest_phys_addr,
            memory_size: r.memory_size,
            userspace_addr: r.userspace_addr,
        };
        let inv = self
            .shared
            .mmu
            .lock()
            .set_user_memory_region(r.slot, &region)
            .map_err(mmu_errno)?;
        self.flush(vmx, inv);
        let slot = r.slot as usize;
        let mut dbg = self.shared.debug.lock();
        let _ = if r.memory_size == 0 {
            dbg.get_mut().clear_memslot(slot)
        } else {
            dbg.get_mut().set_memslot(
                slot,
                r.guest_phys_addr >> 12,
                r.memory_size >> 12,
                r.flags,
                r.userspace_addr,
            )
        };
        Ok(0)
    }

    /// Port of `kvm_vm_ioctl_get_dirty_log`: the slot's bitmap into
    /// `bitmap` (little-endian 64-bit words), log reset, pages reported
    /// write-protected again, INVEPT before the caller copies out.
    fn get_dirty_log(&mut self, vmx: &X, slot: u32, bitmap: &mut [u8]) -> Result<i32, Errno> {
        let inv = {
            let mut mmu = self.shared.mmu.lock();
            let words = mmu.dirty_log_words(slot).map_err(mmu_errno)?;
            if bitmap.len() < words.saturating_mul(8) {
                return Err(Errno::EINVAL);
            }
            let mut buf: Vec<u64> = Vec::new();
            buf.try_reserve_exact(words).map_err(|_| Errno::ENOMEM)?;
            buf.resize(words, 0);
            let inv = mmu.get_dirty_log(slot, &mut buf).map_err(mmu_errno)?;
            for (dst, w) in bitmap.chunks_exact_mut(8).zip(buf.iter()) {
                dst.copy_from_slice(&w.to_le_bytes());
            }
            inv
        };
        self.flush(vmx, inv);
        Ok(0)
    }

    /// Port of `vmx_set_tss_addr`: the 3-page TSS private slot at `addr`
    /// (moved if it exists; its memory is allocated the first time).
    fn set_tss_addr(&mut self, vmx: &X, addr: u64) -> Result<i32, Errno> {
        self.set_private_slot(vmx, Private::Tss, addr, RMODE_TSS_PAGES)?;
        self.shared.arch.lock().tss_addr = Some(addr);
        Ok(0)
    }

    /// Creates the private slot `which` at `gpa` (or moves it there), with
    /// process memory from [`Services::map_private`] the first time. On
    /// error nothing changed (fresh memory is unmapped again).
    fn set_private_slot(
        &mut self,
        vmx: &X,
        which: Private,
        gpa: u64,
        pages: u64,
    ) -> Result<(), Errno> {
        let len = pages.checked_mul(PAGE_SIZE).ok_or(Errno::EINVAL)?;
        let existing = self.private_slot(which);
        let hva = match existing {
            Some(s) => s.hva,
            None => self.services.map_private(len)?,
        };
        let region = MemoryRegion {
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: hva,
        };
        let r = self
            .shared
            .mmu
            .lock()
            .set_memory_region(which.slot(), &region);
        match r {
            Ok(inv) => {
                if let Some(s) = self.private.get_mut(which as usize) {
                    *s = Some(PrivateSlot { gpa, hva, len });
                }
                self.flush(vmx, inv);
                Ok(())
            }
            Err(e) => {
                if existing.is_none() {
                    self.services.unmap_private(hva, len);
                }
                Err(mmu_errno(e))
            }
        }
    }

    /// What KVM_CREATE_VCPU needs of the VM before the VCPU exists (port of
    /// the slot part of `vmx_create_vcpu`): the identity-map page table
    /// slot (EPT is mandatory) and, if VMX virtualises APIC accesses and the
    /// irqchip exists, the APIC-access page slot. Each is created once.
    /// Returns which slots were created, for [`Self::undo_vcpu_slots`].
    // Out of line: the private-slot setup keeps its buffers out of
    // VCPU creation's frame (kernel stack budget).
    #[inline(never)]
    pub(crate) fn prepare_vcpu_slots(&mut self, vmx: &X) -> Result<[bool; 2], Errno> {
        let mut made = [false; 2];
        if self.private_slot(Private::IdentityPagetable).is_none() {
            let gpa = match self.shared.arch().ept_identity_map_addr {
                0 => VMX_EPT_IDENTITY_PAGETABLE_ADDR,
                a => a,
            };
            self.set_private_slot(vmx, Private::IdentityPagetable, gpa, 1)?;
            made[0] = true;
        }
        let irqchip = self.shared.devices.lock().has_irqchip();
        if vmx.virtualize_apic_accesses()
            && irqchip
            && self.private_slot(Private::ApicAccess).is_none()
        {
            if let Err(e) =
                self.set_private_slot(vmx, Private::ApicAccess, APIC_ACCESS_PAGE_ADDR, 1)
            {
                self.undo_vcpu_slots(vmx, made);
                return Err(e);
            }
            made[1] = true;
        }
        Ok(made)
    }

    /// Removes the slots [`Self::prepare_vcpu_slots`] created (a later step
    /// of KVM_CREATE_VCPU failed).
    pub(crate) fn undo_vcpu_slots(&mut self, vmx: &X, made: [bool; 2]) {
        for (m, which) in made
            .iter()
            .zip([Private::IdentityPagetable, Private::ApicAccess])
        {
            if !*m {
                continue;
            }
            let Some(s) = self.private.get_mut(which as usize).and_then(Option::take) else {
                continue;
            };
            let del = MemoryRegion {
                flags: 0,
                guest_phys_addr: s.gpa,
                memory_size: 0,
                userspace_addr: s.hva,
            };
            let r = self.shared.mmu.lock().set_memory_region(which.slot(), &del);
            if let Ok(inv) = r {
                self.flush(vmx, inv);
            }
            self.services.unmap_private(s.hva, s.len);
        }
    }
}

impl<S: Services, X: VmxSeam<S>> Drop for Vm<S, X> {
    fn drop(&mut self) {
        for s in self.private.iter_mut().filter_map(Option::take) {
            self.services.unmap_private(s.hva, s.len);
        }
    }
}
