//! A std fake of `kvm::vm::Services` (one fake process address space that
//! is both the ioctl caller's user memory and the guest RAM the MMU
//! reaches, fake EPT table pages, a frozen clock, recording timers, shared
//! pages, kstats and private mappings), a test VMX seam that records every
//! VM's shared state, and helpers to drive `kvm_ioctl::Driver` over
//! `kvm::vm::VmBackend`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use kvm::vm::{
    Caller, NoVmx, Services, SharedPages, TimerOwner, VcpuCore, VmBackend, VmShared, VmxSeam,
};
use kvm_devices::clock::{Clock, Timer};
use kvm_ioctl::abi::{Ioctl, Pod};
use kvm_ioctl::platform::{Fault, Lock, LockFamily, Minor, Platform, UserMemory};
use kvm_ioctl::{Dev, Driver, Errno, VcpuRequest};
use kvm_kstat::KstatSink;
use kvm_mmu::MmuError;
use kvm_mmu::platform::{GuestMemory, HostMemKind, HostPage, PteSize, TablePages};
use kvm_vmx::{CpuFeatures, CpuidResult};

pub const KVM_MAJOR: u32 = 77;

/// Every `arm` of every fake timer: (owner, deadline).
pub type TimerLog = Arc<Mutex<Vec<(TimerOwner, Option<u64>)>>>;
pub const LP64: i32 = kvm_ioctl::platform::DATAMODEL_LP64;
pub const PAGE: u64 = 4096;

// ------------------------------------------------------------ locks/platform

pub struct StdLocks;
impl LockFamily for StdLocks {
    type Lock<T: Send> = StdLock<T>;
}
pub struct StdLock<T>(Mutex<T>);
impl<T: Send> Lock<T> for StdLock<T> {
    fn new(value: T) -> Self {
        StdLock(Mutex::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[derive(Default)]
pub struct FakePlatform {
    minors: Mutex<(u32, BTreeSet<u32>)>,
}
impl Platform for FakePlatform {
    type Locks = StdLocks;
    fn alloc_minor(&self) -> Option<Minor> {
        let mut m = self.minors.lock().unwrap();
        if let Some(&f) = m.1.iter().next() {
            m.1.remove(&f);
            return Some(f);
        }
        m.0 += 1;
        Some(m.0)
    }
    fn free_minor(&self, minor: Minor) {
        self.minors.lock().unwrap().1.insert(minor);
    }
}

// ------------------------------------------------------------ the process

/// The VMM process's address space: disjoint mapped ranges.
#[derive(Default)]
pub struct Space {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl Space {
    fn find(&self, addr: u64, len: usize) -> Option<(u64, usize)> {
        let (&base, bytes) = self.regions.range(..=addr).next_back()?;
        let off = usize::try_from(addr - base).ok()?;
        (off.checked_add(len)? <= bytes.len()).then_some((base, off))
    }
}

/// A handle on the process (cheap to clone; all clones share it).
#[derive(Clone, Default)]
pub struct Proc(pub Arc<Mutex<Space>>);

impl Proc {
    pub fn map(&self, addr: u64, len: usize) {
        self.0.lock().unwrap().regions.insert(addr, vec![0; len]);
    }
    pub fn unmap(&self, addr: u64) {
        self.0.lock().unwrap().regions.remove(&addr);
    }
    pub fn is_mapped(&self, addr: u64) -> bool {
        self.0.lock().unwrap().find(addr, 1).is_some()
    }
    pub fn write(&self, addr: u64, src: &[u8]) {
        let mut s = self.0.lock().unwrap();
        let (base, off) = s.find(addr, src.len()).expect("unmapped");
        s.regions.get_mut(&base).unwrap()[off..off + src.len()].copy_from_slice(src);
    }
    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let s = self.0.lock().unwrap();
        let (base, off) = s.find(addr, len).expect("unmapped");
        s.regions[&base][off..off + len].to_vec()
    }
    pub fn put<T: Pod>(&self, addr: u64, v: &T) {
        self.write(addr, v.as_bytes());
    }
    pub fn get<T: Pod>(&self, addr: u64) -> T {
        T::from_bytes(&self.read(addr, std::mem::size_of::<T>())).unwrap()
    }
}

impl UserMemory for Proc {
    fn copyin(&mut self, uaddr: u64, dst: &mut [u8]) -> Result<(), Fault> {
        if dst.is_empty() {
            return Ok(());
        }
        let s = self.0.lock().unwrap();
        let (base, off) = s.find(uaddr, dst.len()).ok_or(Fault)?;
        dst.copy_from_slice(&s.regions[&base][off..off + dst.len()]);
        Ok(())
    }
    fn copyout(&mut self, src: &[u8], uaddr: u64) -> Result<(), Fault> {
        if src.is_empty() {
            return Ok(());
        }
        let mut s = self.0.lock().unwrap();
        let (base, off) = s.find(uaddr, src.len()).ok_or(Fault)?;
        s.regions.get_mut(&base).unwrap()[off..off + src.len()].copy_from_slice(src);
        Ok(())
    }
}

/// Guest RAM as the MMU sees it: "host physical" = the user address.
impl GuestMemory for Proc {
    fn resolve(&self, hva: u64) -> Option<HostPage> {
        let s = self.0.lock().unwrap();
        s.find(hva, PAGE as usize).map(|_| HostPage {
            pa: hva & !(PAGE - 1),
            kind: HostMemKind::Ram,
        })
    }
    fn read(&self, hva: u64, buf: &mut [u8]) -> Result<(), MmuError> {
        let s = self.0.lock().unwrap();
        let (base, off) = s.find(hva, buf.len()).ok_or(MmuError::HostFault)?;
        buf.copy_from_slice(&s.regions[&base][off..off + buf.len()]);
        Ok(())
    }
    fn write(&self, hva: u64, data: &[u8]) -> Result<(), MmuError> {
        let mut s = self.0.lock().unwrap();
        let (base, off) = s.find(hva, data.len()).ok_or(MmuError::HostFault)?;
        s.regions.get_mut(&base).unwrap()[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn cmpxchg(&self, hva: u64, size: PteSize, old: u64, new: u64) -> Result<bool, MmuError> {
        let n = size.bytes() as usize;
        let mut s = self.0.lock().unwrap();
        let (base, off) = s.find(hva, n).ok_or(MmuError::HostFault)?;
        let bytes = &mut s.regions.get_mut(&base).unwrap()[off..off + n];
        let mut cur = [0u8; 8];
        cur[..n].copy_from_slice(bytes);
        if u64::from_le_bytes(cur) != old {
            return Ok(false);
        }
        bytes.copy_from_slice(&new.to_le_bytes()[..n]);
        Ok(true)
    }
}

// ------------------------------------------------------------ EPT tables

#[derive(Default)]
pub struct Arena {
    pages: HashMap<u64, Box<[u64; 512]>>,
    next: u64,
}

#[derive(Clone, Default)]
pub struct Tables(pub Arc<Mutex<Arena>>);

impl Tables {
    pub fn live(&self) -> usize {
        self.0.lock().unwrap().pages.len()
    }
}

impl TablePages for Tables {
    fn alloc_table(&mut self) -> Option<u64> {
        let mut a = self.0.lock().unwrap();
        a.next += 1;
        let pa = 0x10_0000_0000 + a.next * PAGE;
        a.pages.insert(pa, Box::new([0; 512]));
        Some(pa)
    }
    fn free_table(&mut self, pa: u64) {
        assert!(self.0.lock().unwrap().pages.remove(&pa).is_some());
    }
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        self.0.lock().unwrap().pages[&table][index]
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        self.0.lock().unwrap().pages.get_mut(&table).unwrap()[index] = value;
    }
}

// ------------------------------------------------------------ time

#[derive(Clone, Default)]
pub struct FakeClock(pub Arc<AtomicU64>);
impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct FakeTimer {
    pub owner: TimerOwner,
    pub armed: TimerLog,
}
impl Timer for FakeTimer {
    fn arm(&mut self, deadline_ns: u64) {
        self.armed
            .lock()
            .unwrap()
            .push((self.owner, Some(deadline_ns)));
    }
    fn cancel(&mut self) {}
}

// ------------------------------------------------------------ shared pages

pub struct FakeShared {
    ptr: *mut u8,
    len: usize,
    cookie: u64,
    live: Arc<AtomicUsize>,
}
// SAFETY: the buffer is owned by this value and freed only in Drop.
unsafe impl Send for FakeShared {}
// SAFETY: as above; the fake hands out a raw pointer only.
unsafe impl Sync for FakeShared {}

impl SharedPages for FakeShared {
    type Cookie = u64;
    fn cookie(&self) -> u64 {
        self.cookie
    }
    fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for FakeShared {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from `Box::into_raw` of a boxed slice.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------ kstats

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KstatRecord {
    pub instance: i32,
    pub name: String,
    pub ndata: u32,
    pub data: usize,
    pub size: usize,
}

#[derive(Default)]
pub struct FakeKstats {
    pub live: Mutex<BTreeMap<u64, KstatRecord>>,
    pub next: AtomicU64,
    pub fail: AtomicBool,
}

impl KstatSink for FakeKstats {
    type Handle = u64;
    fn install(
        &self,
        instance: i32,
        name: &std::ffi::CStr,
        ndata: u32,
        data: *mut std::ffi::c_void,
        data_size: usize,
    ) -> Option<u64> {
        if self.fail.load(Ordering::Relaxed) {
            return None;
        }
        let h = self.next.fetch_add(1, Ordering::Relaxed);
        self.live.lock().unwrap().insert(
            h,
            KstatRecord {
                instance,
                name: name.to_str().unwrap().to_string(),
                ndata,
                data: data as usize,
                size: data_size,
            },
        );
        Some(h)
    }
    fn delete(&self, handle: u64) {
        assert!(self.live.lock().unwrap().remove(&handle).is_some());
    }
}

// ------------------------------------------------------------ CPU

#[derive(Clone, Default)]
pub struct FakeCpu {
    pub leaves: BTreeMap<(u32, u32), CpuidResult>,
    pub msrs: BTreeMap<u32, u64>,
}
impl CpuFeatures for FakeCpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        self.leaves
            .get(&(leaf, subleaf))
            .copied()
            .unwrap_or_default()
    }
    fn read_msr(&self, msr: u32) -> u64 {
        self.msrs.get(&msr).copied().unwrap_or(0)
    }
}

/// A small Intel-like CPU: basic leaves to 0xd, extended to 0x80000008,
/// VMX with EPT 1G pages and RDTSCP, EFER.NX set.
pub fn intel_cpu() -> FakeCpu {
    let r = |eax, ebx, ecx, edx| CpuidResult { eax, ebx, ecx, edx };
    let mut c = FakeCpu::default();
    c.leaves
        .insert((0, 0), r(0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69));
    c.leaves
        .insert((1, 0), r(0x306a9, 0x0010_0800, 0x7fba_e3ff, 0xbfeb_fbff));
    c.leaves
        .insert((2, 0), r(0x7603_6301, 0x00f0_b2ff, 0, 0x00ca_0000));
    c.leaves
        .insert((4, 0), r(0x1c00_4121, 0x01c0_003f, 0x3f, 0));
    c.leaves
        .insert((4, 1), r(0x1c00_4122, 0x01c0_003f, 0x3f, 0));
    c.leaves
        .insert((4, 2), r(0x1c00_4143, 0x01c0_003f, 0x1ff, 0));
    c.leaves.insert((0xb, 0), r(1, 2, 0x100, 0));
    c.leaves.insert((0xb, 1), r(4, 8, 0x201, 0));
    c.leaves.insert((0x8000_0000, 0), r(0x8000_0008, 0, 0, 0));
    c.leaves.insert((0x8000_0001, 0), r(0, 0, 1, 0x2c10_0800));
    c.msrs.insert(0xc000_0080, 1 << 11);
    c.msrs.insert(0x482, 0xfff9_fffe_0401_e172);
    c.msrs.insert(0x48b, 0x0000_00ff_0000_0000);
    c.msrs.insert(0x48c, 0x0000_0f01_0633_4141);
    c
}

// ------------------------------------------------------------ services

pub const PRIVATE_BASE: u64 = 0x6000_0000_0000;

pub struct FakeServices {
    pub proc: Proc,
    pub tables: Tables,
    pub clock: FakeClock,
    pub timers: TimerLog,
    pub shared_live: Arc<AtomicUsize>,
    pub shared_next: AtomicU64,
    pub shared_fail: AtomicBool,
    pub kstats: FakeKstats,
    pub cpu: FakeCpu,
    pub pid: u64,
    pub private: Mutex<BTreeMap<u64, u64>>,
    pub private_next: AtomicU64,
    pub private_fail: AtomicBool,
    /// Every shared allocation: cookie → (address, length). Entries stay
    /// after the free; read only the pages of live VCPUs/VMs.
    pub shared_map: Mutex<BTreeMap<u64, (usize, usize)>>,
}

impl FakeServices {
    pub fn new(proc: Proc) -> Self {
        FakeServices {
            proc,
            tables: Tables::default(),
            clock: FakeClock(Arc::new(AtomicU64::new(1_000_000_000))),
            timers: Arc::default(),
            shared_live: Arc::default(),
            shared_next: AtomicU64::new(1),
            shared_fail: AtomicBool::new(false),
            kstats: FakeKstats::default(),
            cpu: intel_cpu(),
            pid: 4242,
            private: Mutex::default(),
            private_next: AtomicU64::new(0),
            private_fail: AtomicBool::new(false),
            shared_map: Mutex::default(),
        }
    }
}

impl Services for FakeServices {
    type Tables = Tables;
    type GuestMem = Proc;
    type Clock = FakeClock;
    type Timer = FakeTimer;
    type MapCookie = u64;
    type Shared = FakeShared;
    type Cpu = FakeCpu;
    type Kstats = FakeKstats;

    fn mmu_tables(&self) -> Tables {
        self.tables.clone()
    }
    fn guest_memory(&self) -> Proc {
        self.proc.clone()
    }
    fn clock(&self) -> FakeClock {
        self.clock.clone()
    }
    fn timer(&self, owner: TimerOwner) -> FakeTimer {
        FakeTimer {
            owner,
            armed: self.timers.clone(),
        }
    }
    fn alloc_shared(&self, pages: usize) -> Result<FakeShared, Errno> {
        if self.shared_fail.load(Ordering::Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let len = pages * PAGE as usize;
        let ptr = Box::into_raw(vec![0u8; len].into_boxed_slice()) as *mut u8;
        self.shared_live.fetch_add(1, Ordering::Relaxed);
        let cookie = self.shared_next.fetch_add(1, Ordering::Relaxed);
        self.shared_map
            .lock()
            .unwrap()
            .insert(cookie, (ptr as usize, len));
        Ok(FakeShared {
            ptr,
            len,
            cookie,
            live: self.shared_live.clone(),
        })
    }
    fn cpu(&self) -> &FakeCpu {
        &self.cpu
    }
    fn caller(&self) -> Caller {
        Caller::new(self.pid, b"global")
    }
    fn kstats(&self) -> &FakeKstats {
        &self.kstats
    }
    fn map_private(&self, len: u64) -> Result<u64, Errno> {
        if self.private_fail.load(Ordering::Relaxed) {
            return Err(Errno::ENOMEM);
        }
        let n = self.private_next.fetch_add(1, Ordering::Relaxed);
        let hva = PRIVATE_BASE + n * 0x10_0000;
        self.proc.map(hva, len as usize);
        self.private.lock().unwrap().insert(hva, len);
        Ok(hva)
    }
    fn unmap_private(&self, hva: u64, len: u64) {
        assert_eq!(self.private.lock().unwrap().remove(&hva), Some(len));
        self.proc.unmap(hva);
    }
}

// ------------------------------------------------------------ VMX seam

/// A VMX seam that answers like [`NoVmx`] but records every VM's shared
/// state, so tests can reach the MMU (as the run loop will).
#[derive(Default)]
pub struct RecordingVmx {
    pub vms: Mutex<Vec<Weak<VmShared<FakeServices>>>>,
    pub flushes: AtomicUsize,
    /// What `virtualize_apic_accesses` answers (flexpriority).
    pub apic_access: AtomicBool,
}

impl VmxSeam<FakeServices> for RecordingVmx {
    type Vm = ();
    type Vcpu = ();
    fn create_vm(&self, shared: &Arc<VmShared<FakeServices>>) -> Result<(), Errno> {
        self.vms.lock().unwrap().push(Arc::downgrade(shared));
        Ok(())
    }
    fn create_vcpu(&self, _vm: &mut (), _core: &VcpuCore<FakeServices>) -> Result<(), Errno> {
        Ok(())
    }
    fn virtualize_apic_accesses(&self) -> bool {
        self.apic_access.load(Ordering::Relaxed)
    }
    fn flush_ept(&self, _vm: &(), _shared: &VmShared<FakeServices>) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }
    fn vcpu_request(
        &self,
        core: &mut VcpuCore<FakeServices>,
        vmx: &mut (),
        req: VcpuRequest<'_>,
    ) -> Result<i32, Errno> {
        <NoVmx as VmxSeam<FakeServices>>::vcpu_request(&NoVmx, core, vmx, req)
    }
}

// ------------------------------------------------------------ driver

pub type Backend = VmBackend<FakeServices, RecordingVmx>;
pub type TestDriver = Driver<FakePlatform, Backend>;

pub fn driver(proc: &Proc) -> TestDriver {
    Driver::new(
        FakePlatform::default(),
        VmBackend::with_vmx(FakeServices::new(proc.clone()), RecordingVmx::default()),
    )
}

pub fn services(d: &TestDriver) -> &FakeServices {
    d.backend().services()
}

/// The shared state of VM `id` (while it lives).
pub fn vm_shared(d: &TestDriver, id: usize) -> Arc<VmShared<FakeServices>> {
    d.backend().vmx().vms.lock().unwrap()[id]
        .upgrade()
        .expect("VM alive")
}

/// `open("/dev/kvm", O_RDWR)`.
pub fn open(d: &TestDriver) -> Dev {
    let mut dev = Dev::new(KVM_MAJOR, 0);
    d.open(
        &mut dev,
        kvm_ioctl::platform::FREAD | kvm_ioctl::platform::FWRITE,
        kvm_ioctl::platform::OTYP_CHR,
    )
    .expect("open");
    dev
}

/// `ioctl(fd, cmd, arg)` from the 64-bit process `proc`.
pub fn ioctl(d: &TestDriver, dev: Dev, cmd: Ioctl, arg: u64, proc: &Proc) -> Result<i32, Errno> {
    d.ioctl(dev, cmd.cmd() as i32, arg, LP64, &mut proc.clone())
}
