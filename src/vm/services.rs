//! What the VM backend needs from the platform: one trait, [`Services`],
//! implemented for the illumos kernel by the driver (`src/illumos`, later)
//! and by a std fake in the tests (`tests/vm_support`).
//!
//! Every method names its kernel counterpart. None of them is called with
//! a backend lock held except [`Services::timer`] (device construction) and
//! the [`SharedPages`]/kstat drops, which must not sleep for long.

use kvm_devices::clock::{Clock, Timer};
use kvm_ioctl::{Errno, VmId};
use kvm_kstat::KstatSink;
use kvm_mmu::platform::{GuestMemory, TablePages};
use kvm_vmx::CpuFeatures;

/// `ZONENAME_MAX`: the zone-name buffer of [`Caller`].
pub const ZONENAME_MAX: usize = kvm_kstat::stats::ZONENAME_MAX;

/// Zeroed kernel pages shared with the VMM through devmap: the 2-page
/// `kvm_run` + PIO area of a VCPU, or the 1-page coalesced-MMIO ring of a
/// VM. On illumos: `ddi_umem_alloc(n * PAGESIZE, DDI_UMEM_SLEEP, &cookie)`;
/// dropping the value is `ddi_umem_free(cookie)` (the VM/VCPU is gone, so no
/// mapping can reach it any more: devmap holds no reference past close).
pub trait SharedPages: Send + Sync {
    /// The `ddi_umem_cookie_t` devmap maps from offset 0.
    type Cookie: Copy + Send + Sync;
    /// The umem cookie.
    fn cookie(&self) -> Self::Cookie;
    /// Kernel address of the first byte (page aligned, [`Self::len`] bytes,
    /// zeroed at allocation, valid until drop). The VMX run loop writes
    /// `struct kvm_run`/PIO data/ring entries through it; the VMM reads and
    /// writes the same bytes concurrently through its mapping.
    fn as_ptr(&self) -> *mut u8;
    /// Length in bytes (a multiple of the page size).
    fn len(&self) -> usize;
    /// Whether the allocation is empty (never, for the allocations made here).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The process issuing the ioctl (`curproc`), as the kstats record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `curproc->p_pid`.
    pub pid: u64,
    /// `curproc->p_zone->zone_name`, NUL-terminated (cut to 63 bytes).
    pub zonename: [u8; ZONENAME_MAX],
}

impl Caller {
    /// A caller with pid `pid` in zone `zone` (cut to 63 bytes).
    pub fn new(pid: u64, zone: &[u8]) -> Self {
        let mut zonename = [0u8; ZONENAME_MAX];
        for (d, s) in zonename
            .iter_mut()
            .take(ZONENAME_MAX - 1)
            .zip(zone.iter().take_while(|&&b| b != 0))
        {
            *d = *s;
        }
        Caller { pid, zonename }
    }

    /// The zone name bytes without the NUL.
    pub fn zone(&self) -> &[u8] {
        let n = self
            .zonename
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(ZONENAME_MAX);
        self.zonename.get(..n).unwrap_or(&[])
    }
}

/// Which device a timer belongs to, so the platform's timer callback (a
/// cyclic handler) can find the model to call `on_timer(now)` on and the
/// VCPU to kick (the C `kvm_timer_fire` sets `KVM_REQ_PENDING_TIMER` and
/// `cv_broadcast`s the VCPU's kick CV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerOwner {
    /// The i8254 of VM `vm` (counter 0 drives IRQ0; C: the BSP is kicked).
    Pit {
        /// The VM.
        vm: VmId,
    },
    /// The LAPIC timer of VCPU `vcpu` (creation index) of VM `vm`.
    Lapic {
        /// The VM.
        vm: VmId,
        /// The VCPU's index (the value KVM_CREATE_VCPU returned).
        vcpu: u32,
    },
}

/// The kernel services the VM backend is built on.
pub trait Services: Send + Sync + 'static {
    /// EPT table pages of one VM (`kmem_zalloc(PAGESIZE)` + `hat_getpfnum`
    /// + kpm; see `kvm_mmu::platform::TablePages`).
    type Tables: TablePages + Send;
    /// The VMM's memory as the MMU reaches it (`hat_getpfnum(curproc->p_as
    /// ->a_hat, hva)`, copyin/copyout, `atomic_cas_*`; see
    /// `kvm_mmu::platform::GuestMemory`). One per VM, bound to the creating
    /// process.
    type GuestMem: GuestMemory + Send;
    /// The device models' time base (`gethrtime()`).
    type Clock: Clock + Send;
    /// One one-shot host timer per device timer (an illumos cyclic at
    /// `CY_LOW_LEVEL`: `cyclic_add`/`cyclic_reprogram`). Dropping it must
    /// cancel it (`cyclic_remove`): the device it belongs to is gone. Its
    /// callback finds the device by [`TimerOwner`], takes
    /// [`super::VmShared::devices`], calls the model's `on_timer(now)` and
    /// kicks the VCPU (`KVM_REQ_PENDING_TIMER` + `cv_broadcast`).
    type Timer: Timer + Send;
    /// The devmap cookie (`ddi_umem_cookie_t`).
    type MapCookie: Copy + Send + Sync;
    /// A shared-page allocation ([`SharedPages`]).
    type Shared: SharedPages<Cookie = Self::MapCookie>;
    /// The host CPU's CPUID/RDMSR (`cpuid`, `rdmsr` on the current CPU with
    /// preemption disabled around each leaf).
    type Cpu: CpuFeatures;
    /// The kstat framework (`kstat_create_zone`/`kstat_install`/
    /// `kstat_delete`).
    type Kstats: KstatSink<Handle: Send>;

    /// EPT table pages for a new VM.
    fn mmu_tables(&self) -> Self::Tables;
    /// The calling process's address space for a new VM (`curproc->p_as`);
    /// the VM keeps it for its lifetime, as the C driver assumes every
    /// ioctl comes from the creating process.
    fn guest_memory(&self) -> Self::GuestMem;
    /// The clock (`gethrtime`).
    fn clock(&self) -> Self::Clock;
    /// A disarmed timer for `owner` (`cyclic_add` happens on first `arm`).
    fn timer(&self, owner: TimerOwner) -> Self::Timer;
    /// `pages` zeroed, page-aligned pages to share with the VMM
    /// (`ddi_umem_alloc(ptob(pages), DDI_UMEM_SLEEP, &cookie)`); ENOMEM if
    /// none.
    fn alloc_shared(&self, pages: usize) -> Result<Self::Shared, Errno>;
    /// The host CPU (CPUID for KVM_GET_SUPPORTED_CPUID).
    fn cpu(&self) -> &Self::Cpu;
    /// The process issuing the current ioctl (`curproc->p_pid`,
    /// `curproc->p_zone->zone_name`).
    fn caller(&self) -> Caller;
    /// The kstat framework.
    fn kstats(&self) -> &Self::Kstats;
    /// Memory for a private memslot in the calling process: `len` bytes of
    /// anonymous, locked, zeroed memory; returns its user address. Port of
    /// `kvm_arch_prepare_memory_region` with `user_alloc == 0`:
    /// `smmap64(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANON)`,
    /// `memcntl(MC_LOCK)`, zero-fill with `copyout`. ENOMEM on failure.
    fn map_private(&self, len: u64) -> Result<u64, Errno>;
    /// Give back a range from [`Self::map_private`] (`as_unmap` of the
    /// range; the C driver `kmem_free`d the user address instead, a bug).
    /// Called when the slot goes away: on VM destruction, or at once when
    /// the slot could not be created.
    fn unmap_private(&self, hva: u64, len: u64);
}
