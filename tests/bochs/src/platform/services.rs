//! `kvm::vm::Services` on bare metal: what `src/illumos/services.rs` does
//! with kmem, the HAT, cyclics and umem, done here with the page
//! allocator, the heap, the identity map and the TSC.
//!
//! | service | illumos | here |
//! |---|---|---|
//! | EPT table pages | `kmem_zalloc` + `hat_getpfnum` | `pages::alloc` (PA = VA) |
//! | guest memory | `hat_getpfnum(curproc)`, copyin/out, `atomic_cas` | registered identity-mapped ranges (`user`) |
//! | clock | `gethrtime` | TSC → ns |
//! | timers | one-shot cyclic, fired counted | a polled deadline table (`take_fired`) |
//! | shared `kvm_run` pages | `ddi_umem_alloc` | page-aligned zeroed heap block; cookie = address |
//! | CPUID/MSR | `cpuid`/`rdmsr` | the same instructions (`BareMetalCpu`) |
//! | caller | `curproc` | pid 1 in zone "global" |
//! | kstats | `kstat_create_zone` | counted, not published |
//! | private memslots | `smmap64` + `MC_LOCK` | page-aligned zeroed heap block, registered as mappable |

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kvm::vm::{Caller, Services, SharedPages, TimerOwner};
use kvm_devices::clock::{Clock, Timer};
use kvm_ioctl::Errno;
use kvm_kstat::KstatSink;
use kvm_mmu::MmuError;
use kvm_mmu::platform::{GuestMemory, HostMemKind, HostPage, PteSize, TablePages};

use super::user;
use crate::clock;
use crate::cpu::BareMetalCpu;
use crate::pages::{self, PAGE_SIZE, Page};
use crate::sync::SpinLock;

/// EPT table pages handed out and not freed (leak check).
static TABLES_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Shared/private heap blocks live (leak check).
static BLOCKS_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Kstats installed and not deleted.
static KSTATS_LIVE: AtomicUsize = AtomicUsize::new(0);
static KSTATS_NEXT: AtomicU64 = AtomicU64::new(1);

/// What is still allocated through the services: (EPT table pages, shared
/// or private blocks, kstats, armed timers).
pub fn live() -> (usize, usize, usize, usize) {
    let timers = TIMERS.lock().iter().filter(|t| t.used).count();
    (
        TABLES_LIVE.load(Ordering::Relaxed),
        BLOCKS_LIVE.load(Ordering::Relaxed),
        KSTATS_LIVE.load(Ordering::Relaxed),
        timers,
    )
}

/// The bare-metal services.
pub struct BareServices {
    cpu: BareMetalCpu,
    kstats: NullKstats,
}

impl BareServices {
    pub const fn new() -> Self {
        BareServices {
            cpu: BareMetalCpu,
            kstats: NullKstats,
        }
    }
}

impl Services for BareServices {
    type Tables = PageTables;
    type GuestMem = HostMemory;
    type Clock = TscClock;
    type Timer = PolledTimer;
    type MapCookie = u64;
    type Shared = HeapPages;
    type Cpu = BareMetalCpu;
    type Kstats = NullKstats;

    fn mmu_tables(&self) -> PageTables {
        PageTables
    }
    fn guest_memory(&self) -> HostMemory {
        HostMemory
    }
    fn clock(&self) -> TscClock {
        TscClock
    }
    fn timer(&self, owner: TimerOwner) -> PolledTimer {
        PolledTimer::new(owner)
    }
    fn alloc_shared(&self, pages: usize) -> Result<HeapPages, Errno> {
        let len = pages.checked_mul(PAGE_SIZE as usize).ok_or(Errno::EINVAL)?;
        let ptr = page_block(len).ok_or(Errno::ENOMEM)?;
        Ok(HeapPages { ptr, len })
    }
    fn cpu(&self) -> &BareMetalCpu {
        &self.cpu
    }
    fn caller(&self) -> Caller {
        Caller::new(1, b"global")
    }
    fn kstats(&self) -> &NullKstats {
        &self.kstats
    }
    fn map_private(&self, len: u64) -> Result<u64, Errno> {
        let n = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
        let ptr = page_block(n).ok_or(Errno::ENOMEM)?;
        let hva = ptr as u64;
        if !user::register(hva, len) {
            free_block(ptr, n);
            return Err(Errno::ENOMEM);
        }
        Ok(hva)
    }
    fn unmap_private(&self, hva: u64, len: u64) {
        user::unregister(hva);
        if let Ok(n) = usize::try_from(len) {
            free_block(hva as usize as *mut u8, n);
        }
    }
}

/// A zeroed, page-aligned heap block of `len` bytes.
fn page_block(len: usize) -> Option<*mut u8> {
    let layout = Layout::from_size_align(len.max(1), PAGE_SIZE as usize).ok()?;
    // SAFETY: non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    BLOCKS_LIVE.fetch_add(1, Ordering::Relaxed);
    Some(ptr)
}

fn free_block(ptr: *mut u8, len: usize) {
    if let Ok(layout) = Layout::from_size_align(len.max(1), PAGE_SIZE as usize) {
        // SAFETY: `ptr` came from `page_block(len)`.
        unsafe { dealloc(ptr, layout) };
        BLOCKS_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------ EPT tables

/// EPT paging-structure pages from the page allocator; a table's physical
/// address is also its pointer.
pub struct PageTables;

fn entry_ptr(table: u64, index: usize) -> *mut u64 {
    let index = index.min(511) as u64;
    (table + index * 8) as usize as *mut u64
}

impl TablePages for PageTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let page = pages::alloc()?;
        TABLES_LIVE.fetch_add(1, Ordering::Relaxed);
        Some(page.into_phys())
    }
    fn free_table(&mut self, pa: u64) {
        // SAFETY: the MMU frees only pages from `alloc_table`, once.
        pages::free(unsafe { Page::from_phys(pa) });
        TABLES_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a live table page (the MMU's contract); one
        // aligned 64-bit load.
        unsafe { entry_ptr(table, index).read_volatile() }
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as `read_entry`; one aligned 64-bit store.
        unsafe { entry_ptr(table, index).write_volatile(value) }
    }
}

// ------------------------------------------------------------ guest memory

/// The VMM's memory as the MMU reaches it: identity-mapped, only the
/// registered ranges.
pub struct HostMemory;

impl GuestMemory for HostMemory {
    fn resolve(&self, hva: u64) -> Option<HostPage> {
        let page = hva & !(PAGE_SIZE - 1);
        user::mappable(page, PAGE_SIZE).then_some(HostPage {
            pa: page,
            kind: HostMemKind::Ram,
        })
    }
    fn resolve_2m(&self, hva: u64) -> Option<HostPage> {
        const TWO_MIB: u64 = 2 << 20;
        (hva.is_multiple_of(TWO_MIB) && user::mappable(hva, TWO_MIB)).then_some(HostPage {
            pa: hva,
            kind: HostMemKind::Ram,
        })
    }
    fn read(&self, hva: u64, buf: &mut [u8]) -> Result<(), MmuError> {
        if !user::mappable(hva, buf.len() as u64) {
            return Err(MmuError::HostFault);
        }
        // SAFETY: registered identity-mapped memory.
        unsafe {
            core::ptr::copy_nonoverlapping(hva as usize as *const u8, buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }
    fn write(&self, hva: u64, data: &[u8]) -> Result<(), MmuError> {
        if !user::mappable(hva, data.len() as u64) {
            return Err(MmuError::HostFault);
        }
        // SAFETY: as `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), hva as usize as *mut u8, data.len())
        };
        Ok(())
    }
    fn cmpxchg(&self, hva: u64, size: PteSize, old: u64, new: u64) -> Result<bool, MmuError> {
        let n = size.bytes();
        if !hva.is_multiple_of(n) || !user::mappable(hva, n) {
            return Err(MmuError::HostFault);
        }
        let p = hva as usize;
        // SAFETY: aligned, registered memory; atomics over plain RAM.
        let ok = unsafe {
            if n == 8 {
                core::sync::atomic::AtomicU64::from_ptr(p as *mut u64)
                    .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            } else {
                core::sync::atomic::AtomicU32::from_ptr(p as *mut u32)
                    .compare_exchange(old as u32, new as u32, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            }
        };
        Ok(ok)
    }
}

// ------------------------------------------------------------ time

/// `gethrtime()`: the TSC in nanoseconds.
pub struct TscClock;

impl Clock for TscClock {
    fn now_ns(&self) -> u64 {
        clock::ticks_to_ns(clock::now())
    }
}

const MAX_TIMERS: usize = 64;

#[derive(Clone, Copy)]
struct TimerSlot {
    used: bool,
    owner: Option<TimerOwner>,
    deadline: Option<u64>,
}

static TIMERS: SpinLock<[TimerSlot; MAX_TIMERS]> = SpinLock::new(
    [TimerSlot {
        used: false,
        owner: None,
        deadline: None,
    }; MAX_TIMERS],
);

/// A device timer: its deadline sits in a table the run loop polls
/// (`take_fired`), as the illumos cyclic only counts firings for the VCPU
/// thread to collect.
pub struct PolledTimer {
    slot: Option<usize>,
}

impl PolledTimer {
    fn new(owner: TimerOwner) -> Self {
        let mut t = TIMERS.lock();
        let slot = t.iter().position(|s| !s.used);
        if let Some(s) = slot.and_then(|i| t.get_mut(i)) {
            *s = TimerSlot {
                used: true,
                owner: Some(owner),
                deadline: None,
            };
        }
        PolledTimer { slot }
    }

    fn set(&self, deadline: Option<u64>) {
        if let Some(i) = self.slot
            && let Some(s) = TIMERS.lock().get_mut(i)
        {
            s.deadline = deadline;
        }
    }
}

impl Timer for PolledTimer {
    fn arm(&mut self, deadline_ns: u64) {
        self.set(Some(deadline_ns));
    }
    fn cancel(&mut self) {
        self.set(None);
    }
}

impl Drop for PolledTimer {
    fn drop(&mut self) {
        if let Some(i) = self.slot
            && let Some(s) = TIMERS.lock().get_mut(i)
        {
            s.used = false;
            s.deadline = None;
        }
    }
}

/// The earliest armed deadline, if any.
#[allow(dead_code)]
pub fn next_deadline() -> Option<u64> {
    TIMERS
        .lock()
        .iter()
        .filter(|s| s.used)
        .filter_map(|s| s.deadline)
        .min()
}

/// Disarms every timer whose deadline is at or before `now_ns` and calls
/// `f` with its owner (the run loop's collector).
#[allow(dead_code)]
pub fn take_fired(now_ns: u64, mut f: impl FnMut(TimerOwner)) {
    let mut fired: [Option<TimerOwner>; MAX_TIMERS] = [None; MAX_TIMERS];
    {
        let mut t = TIMERS.lock();
        for (s, out) in t.iter_mut().zip(fired.iter_mut()) {
            if s.used && s.deadline.is_some_and(|d| d <= now_ns) {
                s.deadline = None;
                *out = s.owner;
            }
        }
    }
    fired.iter().flatten().for_each(|o| f(*o));
}

// ------------------------------------------------------------ shared pages

/// The `kvm_run` + PIO pages of a VCPU, or a VM's coalesced-MMIO ring: a
/// zeroed page-aligned heap block. The devmap cookie is its address, which
/// is what the VMM "maps" (identity).
pub struct HeapPages {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the block is owned by this value and freed only in Drop.
unsafe impl Send for HeapPages {}
// SAFETY: as above; only a raw pointer is handed out.
unsafe impl Sync for HeapPages {}

impl SharedPages for HeapPages {
    type Cookie = u64;
    fn cookie(&self) -> u64 {
        self.ptr as u64
    }
    fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for HeapPages {
    fn drop(&mut self) {
        free_block(self.ptr, self.len);
    }
}

// ------------------------------------------------------------ kstats

/// Kstats are counted, not published (no kstat framework here).
pub struct NullKstats;

impl KstatSink for NullKstats {
    type Handle = u64;
    fn install(
        &self,
        _instance: i32,
        _name: &core::ffi::CStr,
        _ndata: u32,
        _data: *mut core::ffi::c_void,
        _data_size: usize,
    ) -> Option<u64> {
        KSTATS_LIVE.fetch_add(1, Ordering::Relaxed);
        Some(KSTATS_NEXT.fetch_add(1, Ordering::Relaxed))
    }
    fn delete(&self, _handle: u64) {
        KSTATS_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Fires every device timer due at `now_ns`: the platform's timer
/// callback (see `TimerOwner`), run from the VMX host's `block`.
pub fn fire_due(now_ns: u64) {
    take_fired(now_ns, |owner| super::timers::fire(owner, now_ns));
}
