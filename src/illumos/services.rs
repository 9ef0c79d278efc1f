//! `kvm::vm::Services` for the illumos kernel: what the VM backend needs
//! from the platform, each piece over the interface the C driver used for
//! the same job.
//!
//! | service | illumos |
//! |---|---|
//! | EPT table pages | `kmem_zalloc(PAGESIZE)` + `hat_getpfnum(kas.a_hat)` (kvm_mmu.c `alloc_page`) |
//! | guest memory | `hat_getpfnum(curproc->p_as->a_hat)` (kvm.c `hva_to_pfn`), `copyin`/`copyout`, compare-exchange through segkpm |
//! | clock | `gethrtime()` |
//! | device timers | one-shot cyclics at `CY_LOW_LEVEL` (kvm_lapic.c, kvm_i8254.c) |
//! | `kvm_run`/PIO pages, coalesced ring | `ddi_umem_alloc`/`ddi_umem_free` (kvm.c `kvm_vcpu_init`) |
//! | kstats | `kstat_create_zone(..., KSTAT_FLAG_VIRTUAL, GLOBAL_ZONEID)` |
//! | private memslots | `smmap64` + `memcntl(MC_LOCK)`; `as_unmap` on teardown |
//!
//! Everything that touches kernel structures (`curproc`, `kas`, `kstat_t`,
//! cyclics) is in `src/glue/kvm_services.c`.

use alloc::collections::BTreeMap;
use core::ffi::{CStr, c_char, c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kvm_devices::clock::{Clock, Timer};
use kvm_ioctl::Errno;
use kvm_kstat::KstatSink;
use kvm_mmu::MmuError;
use kvm_mmu::platform::{GuestMemory, HostMemKind, HostPage, PteSize, TablePages};

use super::cpu::HostCpu;
use super::sys;
use crate::vm::services::{Caller, Services, SharedPages, TimerOwner, ZONENAME_MAX};

const PAGE_SIZE: usize = 4096;
const PAGE_SHIFT: u32 = 12;
const ENTRIES_PER_TABLE: usize = 512;

/// The kernel services of one driver instance.
pub struct IllumosServices {
    cpu: HostCpu,
    kstats: Kstats,
}

impl IllumosServices {
    pub const fn new() -> Self {
        Self {
            cpu: HostCpu,
            kstats: Kstats,
        }
    }
}

impl Services for IllumosServices {
    type Tables = KmemTables;
    type GuestMem = ProcessMemory;
    type Clock = HrClock;
    type Timer = CyclicTimer;
    type MapCookie = UmemCookie;
    type Shared = UmemPages;
    type Cpu = HostCpu;
    type Kstats = Kstats;

    fn mmu_tables(&self) -> KmemTables {
        KmemTables {
            pages: BTreeMap::new(),
        }
    }

    fn guest_memory(&self) -> ProcessMemory {
        ProcessMemory
    }

    fn clock(&self) -> HrClock {
        HrClock
    }

    fn timer(&self, owner: TimerOwner) -> CyclicTimer {
        // The PIT wakes the boot VCPU (index 0), as `kvm_timer_fire` kicked
        // the PIT's `vcpu`, VCPU 0.
        let (vm, vcpu) = match owner {
            TimerOwner::Pit { vm } => (vm, 0),
            TimerOwner::Lapic { vm, vcpu } => (vm, vcpu),
        };
        // SAFETY: plain kernel allocation (KM_SLEEP); freed in Drop.
        let raw = unsafe { sys::kvm_glue_timer_create(vm, vcpu) };
        CyclicTimer { raw }
    }

    fn alloc_shared(&self, pages: usize) -> Result<UmemPages, Errno> {
        let len = pages.checked_mul(PAGE_SIZE).ok_or(Errno::EINVAL)?;
        let mut cookie: *mut c_void = core::ptr::null_mut();
        // SAFETY: DDI_UMEM_SLEEP never fails; the memory is zeroed,
        // page-aligned kernel memory that devmap can export.
        let va = unsafe { sys::ddi_umem_alloc(len, sys::DDI_UMEM_SLEEP, &mut cookie) };
        if va.is_null() || cookie.is_null() {
            return Err(Errno::ENOMEM);
        }
        Ok(UmemPages {
            va: va.cast(),
            len,
            cookie: UmemCookie(cookie),
        })
    }

    fn cpu(&self) -> &HostCpu {
        &self.cpu
    }

    fn caller(&self) -> Caller {
        let mut pid = 0u64;
        let mut zone = [0u8; ZONENAME_MAX];
        // SAFETY: both pointers are valid for the sizes given.
        unsafe { sys::kvm_glue_caller(&mut pid, zone.as_mut_ptr().cast(), zone.len()) };
        Caller::new(pid, &zone)
    }

    fn kstats(&self) -> &Kstats {
        &self.kstats
    }

    fn map_private(&self, len: u64) -> Result<u64, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
        let mut err: c_int = 0;
        // SAFETY: maps into the calling process (ioctl context).
        let addr = unsafe { sys::kvm_glue_map_private(len, &mut err) };
        if addr == 0 {
            return Err(match err {
                12 => Errno::ENOMEM,
                _ => Errno::EAGAIN,
            });
        }
        Ok(addr)
    }

    fn unmap_private(&self, hva: u64, len: u64) {
        if let Ok(len) = usize::try_from(len) {
            // SAFETY: `hva`/`len` came from `map_private` in this process.
            unsafe { sys::kvm_glue_unmap_private(hva, len) }
        }
    }
}

/// EPT paging-structure pages from kmem. The kmem address of each page is
/// kept by physical address, so entries are read and written through the
/// address kmem gave (and the page is freed with it).
pub struct KmemTables {
    pages: BTreeMap<u64, usize>,
}

impl KmemTables {
    /// The entry `index` of the table at `table` (physical), if it is ours.
    fn entry(&self, table: u64, index: usize) -> Option<&AtomicU64> {
        let va = *self.pages.get(&table)?;
        if index >= ENTRIES_PER_TABLE {
            return None;
        }
        // SAFETY: `va` is a live, page-aligned kmem page of 512 entries
        // owned by this allocator; entries are written with single 8-byte
        // stores (the CPU's EPT walker may read concurrently).
        Some(unsafe { &*(va as *const AtomicU64).add(index) })
    }
}

impl TablePages for KmemTables {
    fn alloc_table(&mut self) -> Option<u64> {
        // SAFETY: a zeroed page from kmem; kmem_alloc of PAGESIZE is
        // page-aligned (the C driver relies on the same).
        let va = unsafe { sys::kmem_zalloc(PAGE_SIZE, crate::ddi::KM_SLEEP) };
        if va.is_null() {
            return None;
        }
        // SAFETY: `va` is a mapped kernel address.
        let pa = unsafe { sys::kvm_glue_kva2pa(va) };
        if !(va as usize).is_multiple_of(PAGE_SIZE) || !pa.is_multiple_of(PAGE_SIZE as u64) {
            // SAFETY: just allocated with this size.
            unsafe { sys::kmem_free(va, PAGE_SIZE) };
            return None;
        }
        self.pages.insert(pa, va as usize);
        // `kvm-mmu-get-page`: the C fired it in `kvm_mmu_get_page` for every
        // new EPT table page too (`__direct_map`); the argument is the
        // table's kernel address (the C's `struct kvm_mmu_page *`).
        kvm_kstat::sdt::mmu_get_page(va as usize);
        Some(pa)
    }

    fn free_table(&mut self, pa: u64) {
        if let Some(va) = self.pages.remove(&pa) {
            // SAFETY: allocated by `alloc_table` with this size.
            unsafe { sys::kmem_free(va as *mut c_void, PAGE_SIZE) }
        }
    }

    fn read_entry(&self, table: u64, index: usize) -> u64 {
        self.entry(table, index)
            .map_or(0, |e| e.load(Ordering::Relaxed))
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        if let Some(e) = self.entry(table, index) {
            e.store(value, Ordering::Release);
        }
    }
}

impl Drop for KmemTables {
    fn drop(&mut self) {
        for (_, va) in core::mem::take(&mut self.pages) {
            // SAFETY: allocated by `alloc_table` with this size.
            unsafe { sys::kmem_free(va as *mut c_void, PAGE_SIZE) }
        }
    }
}

/// The VMM process's memory, as the VCPU thread (in that process) sees it.
/// QEMU mlocks and pre-touches guest RAM, so a HAT lookup finds every page.
pub struct ProcessMemory;

impl ProcessMemory {
    /// A kernel alias of the naturally aligned `size` bytes at `hva`.
    fn kernel_alias(&self, hva: u64, size: u64) -> Option<usize> {
        if !hva.is_multiple_of(size) {
            return None;
        }
        let page = self.resolve(hva)?;
        if page.kind != HostMemKind::Ram {
            return None;
        }
        // SAFETY: segkpm maps every page frame of RAM.
        let base = unsafe { sys::kvm_glue_pfn2kva(page.pa >> PAGE_SHIFT) };
        (!base.is_null()).then(|| base as usize + (hva % PAGE_SIZE as u64) as usize)
    }
}

impl GuestMemory for ProcessMemory {
    fn resolve(&self, hva: u64) -> Option<HostPage> {
        let mut pfn = 0u64;
        let mut is_ram: c_int = 0;
        // SAFETY: a HAT lookup in the current process; both out-pointers valid.
        let r = unsafe { sys::kvm_glue_user_page(hva, &mut pfn, &mut is_ram) };
        (r == 0).then_some(HostPage {
            pa: pfn << PAGE_SHIFT,
            kind: if is_ram != 0 {
                HostMemKind::Ram
            } else {
                HostMemKind::Device
            },
        })
    }

    fn read(&self, hva: u64, buf: &mut [u8]) -> Result<(), MmuError> {
        // SAFETY: `buf` is a kernel buffer; copyin checks the user address.
        let r = unsafe {
            sys::copyin(
                hva as usize as *const c_void,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(MmuError::HostFault)
        }
    }

    fn write(&self, hva: u64, data: &[u8]) -> Result<(), MmuError> {
        // SAFETY: as `read`, the other way.
        let r = unsafe {
            sys::copyout(
                data.as_ptr().cast(),
                hva as usize as *mut c_void,
                data.len(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(MmuError::HostFault)
        }
    }

    fn cmpxchg(&self, hva: u64, size: PteSize, old: u64, new: u64) -> Result<bool, MmuError> {
        let addr = self
            .kernel_alias(hva, size.bytes())
            .ok_or(MmuError::HostFault)?;
        // SAFETY: `addr` is a naturally aligned kpm alias of a locked RAM
        // page of the guest; the guest may write it concurrently, hence the
        // atomic compare-exchange (the C driver's atomic_cas_32/64).
        let swapped = unsafe {
            match size {
                PteSize::Four => (*(addr as *const AtomicU32))
                    .compare_exchange(old as u32, new as u32, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok(),
                PteSize::Eight => (*(addr as *const AtomicU64))
                    .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok(),
            }
        };
        Ok(swapped)
    }
}

/// `gethrtime()`: nanoseconds, monotonic.
pub struct HrClock;

impl Clock for HrClock {
    fn now_ns(&self) -> u64 {
        // SAFETY: callable from any context.
        u64::try_from(unsafe { sys::gethrtime() }).unwrap_or(0)
    }
}

/// A one-shot cyclic. Firing wakes the owning VCPU
/// (`kvm_rs_timer_fired`); its thread then polls the device models
/// (`Devices::poll_timers`), as the C driver's `kvm_timer_fire` left the
/// device work to the VCPU thread.
pub struct CyclicTimer {
    raw: *mut c_void,
}

// SAFETY: the C timer object is used under cpu_lock / atomics only.
unsafe impl Send for CyclicTimer {}

impl Timer for CyclicTimer {
    fn arm(&mut self, deadline_ns: u64) {
        if !self.raw.is_null() {
            let when = i64::try_from(deadline_ns).unwrap_or(i64::MAX);
            // SAFETY: `raw` is live; takes cpu_lock (ioctl/VCPU context).
            unsafe { sys::kvm_glue_timer_arm(self.raw, when) }
        }
    }

    fn cancel(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: as `arm`.
            unsafe { sys::kvm_glue_timer_cancel(self.raw) }
        }
    }
}

impl Drop for CyclicTimer {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: removes the cyclic, then frees the object.
            unsafe { sys::kvm_glue_timer_destroy(self.raw) }
        }
    }
}

/// A `ddi_umem_cookie_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UmemCookie(pub *mut c_void);

// SAFETY: a cookie is an opaque handle the DDI accepts from any thread.
unsafe impl Send for UmemCookie {}
// SAFETY: as above.
unsafe impl Sync for UmemCookie {}

/// Pages from `ddi_umem_alloc`, freed on drop.
pub struct UmemPages {
    va: *mut u8,
    len: usize,
    cookie: UmemCookie,
}

// SAFETY: the pages are shared kernel memory; the backend serialises its
// own writes and user space writes concurrently by design (kvm_run).
unsafe impl Send for UmemPages {}
// SAFETY: as above.
unsafe impl Sync for UmemPages {}

impl SharedPages for UmemPages {
    type Cookie = UmemCookie;
    fn cookie(&self) -> UmemCookie {
        self.cookie
    }
    fn as_ptr(&self) -> *mut u8 {
        self.va
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for UmemPages {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_shared`; the VM/VCPU is gone, so no
        // mapping can be set up from it any more.
        unsafe { sys::ddi_umem_free(self.cookie.0) }
    }
}

/// kstats through `kstat_create_zone`/`kstat_install`/`kstat_delete`.
pub struct Kstats;

/// A `kstat_t *`.
pub struct KstatHandle(*mut c_void);

// SAFETY: kstat_delete may be called from any thread.
unsafe impl Send for KstatHandle {}

impl KstatSink for Kstats {
    type Handle = KstatHandle;

    fn install(
        &self,
        instance: i32,
        name: &CStr,
        ndata: u32,
        data: *mut c_void,
        data_size: usize,
    ) -> Option<KstatHandle> {
        // SAFETY: `data` stays valid until `delete` (the kstat owner keeps
        // the boxed stats alive); the name is NUL-terminated.
        let ksp = unsafe {
            sys::kvm_glue_kstat_install(
                instance,
                name.as_ptr() as *const c_char,
                ndata,
                data,
                data_size,
            )
        };
        (!ksp.is_null()).then_some(KstatHandle(ksp))
    }

    fn delete(&self, handle: KstatHandle) {
        // SAFETY: installed by `install`, deleted once.
        unsafe { sys::kvm_glue_kstat_delete(handle.0) }
    }
}
