//! Test doubles for the ioctl layer: std locks, a fake platform (minor
//! allocator, probe log), a fake user address space (a map of byte ranges;
//! anything unmapped is EFAULT) and a fake backend that keeps every VM's and
//! VCPU's state in one comparable `World`.
#![allow(dead_code)]

use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{Fault, Lock, LockFamily, Minor, Platform, UserMemory};
use kvm_ioctl::{Backend, Dev, Driver, Errno, VcpuRequest, VmId, VmRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

pub const KVM_MAJOR: u32 = 77;

// ---------------------------------------------------------------- locks

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

// ---------------------------------------------------------------- platform

#[derive(Default)]
pub struct FakePlatform {
    minors: Mutex<(u32, BTreeSet<u32>)>,
    pub bad_ioctls: Mutex<Vec<u32>>,
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
    fn probe_bad_ioctl(&self, cmd: u32) {
        self.bad_ioctls.lock().unwrap().push(cmd);
    }
}

// ---------------------------------------------------------------- user memory

/// A fake user address space: disjoint mapped ranges; copies must fall
/// inside one range (and a writable one for copyout).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeUser {
    regions: BTreeMap<u64, (Vec<u8>, bool)>,
}

impl FakeUser {
    pub fn new() -> Self {
        Self::default()
    }
    /// Maps `len` zero bytes at `addr`, writable.
    pub fn map(&mut self, addr: u64, len: usize) {
        self.regions.insert(addr, (vec![0; len], true));
    }
    /// Maps `len` zero bytes at `addr`, read-only.
    pub fn map_ro(&mut self, addr: u64, len: usize) {
        self.regions.insert(addr, (vec![0; len], false));
    }
    fn find(&self, addr: u64, len: usize) -> Option<(u64, usize)> {
        let (&base, (bytes, _)) = self.regions.range(..=addr).next_back()?;
        let off = usize::try_from(addr - base).ok()?;
        (off.checked_add(len)? <= bytes.len()).then_some((base, off))
    }
    /// Test helper: writes bytes (ignores protection), panics if unmapped.
    pub fn write(&mut self, addr: u64, src: &[u8]) {
        let (base, off) = self.find(addr, src.len()).expect("unmapped");
        self.regions.get_mut(&base).unwrap().0[off..off + src.len()].copy_from_slice(src);
    }
    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let (base, off) = self.find(addr, len).expect("unmapped");
        self.regions[&base].0[off..off + len].to_vec()
    }
    pub fn put<T: Pod>(&mut self, addr: u64, v: &T) {
        self.write(addr, v.as_bytes());
    }
    pub fn get<T: Pod>(&self, addr: u64) -> T {
        T::from_bytes(&self.read(addr, std::mem::size_of::<T>())).unwrap()
    }
}

impl UserMemory for FakeUser {
    fn copyin(&mut self, uaddr: u64, dst: &mut [u8]) -> Result<(), Fault> {
        if dst.is_empty() {
            return Ok(());
        }
        let (base, off) = self.find(uaddr, dst.len()).ok_or(Fault)?;
        dst.copy_from_slice(&self.regions[&base].0[off..off + dst.len()]);
        Ok(())
    }
    fn copyout(&mut self, src: &[u8], uaddr: u64) -> Result<(), Fault> {
        if src.is_empty() {
            return Ok(());
        }
        let (base, off) = self.find(uaddr, src.len()).ok_or(Fault)?;
        let (bytes, writable) = self.regions.get_mut(&base).unwrap();
        if !*writable {
            return Err(Fault);
        }
        bytes[off..off + src.len()].copy_from_slice(src);
        Ok(())
    }
}

// ---------------------------------------------------------------- backend

#[derive(Clone, Debug, PartialEq)]
pub struct FakeVcpu {
    pub index: u32,
    pub id: u32,
    pub bsp: bool,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: kvm_fpu,
    pub lapic: Vec<u8>,
    pub msrs: BTreeMap<u32, u64>,
    pub cpuid: Vec<kvm_cpuid_entry2>,
    pub mp_state: u32,
    pub mce_cap: u64,
    pub vapic: u64,
    pub events: kvm_vcpu_events,
    pub nmis: u32,
    pub irqs: Vec<u32>,
    pub runs: u32,
    pub last_sigmask: Option<[u8; 16]>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeVm {
    pub tss: Option<u64>,
    pub identity: Option<u64>,
    pub irqchip: bool,
    pub pit_flags: Option<u32>,
    pub slots: BTreeMap<u32, kvm_userspace_memory_region>,
    pub zones: Vec<kvm_coalesced_mmio_zone>,
    pub routes: Vec<Vec<u8>>,
    pub lines: Vec<(u32, u32)>,
    pub chips: [Vec<u8>; 3],
    pub pit: kvm_pit_state2,
    pub dirty_reads: u32,
    pub vcpus: Vec<FakeVcpu>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    pub vms: BTreeMap<VmId, FakeVm>,
    pub destroyed: Vec<VmId>,
    pub hardware_on: bool,
    pub enables: u32,
}

/// A backend that keeps all state in `world`, checks before it changes
/// anything, and supports every capability.
#[derive(Default)]
pub struct FakeBackend {
    pub world: Arc<Mutex<World>>,
    pub msrs: Vec<u32>,
    /// Leaves KVM_GET_SUPPORTED_CPUID produces.
    pub cpuid_leaves: usize,
}

pub struct VmHandle {
    pub id: VmId,
    world: Arc<Mutex<World>>,
}
impl Drop for VmHandle {
    fn drop(&mut self) {
        let mut w = self.world.lock().unwrap();
        w.vms.remove(&self.id);
        w.destroyed.push(self.id);
    }
}
pub struct VcpuHandle {
    vm: VmId,
    index: u32,
    world: Arc<Mutex<World>>,
}

impl FakeBackend {
    pub fn new() -> Self {
        FakeBackend {
            world: Arc::default(),
            msrs: vec![
                0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000102,
                0x10, 0x11, 0x12, 0x4b564d00, 0x4b564d01, 0x17a, 0x17b,
            ],
            cpuid_leaves: 12,
        }
    }
    pub fn world(&self) -> World {
        self.world.lock().unwrap().clone()
    }
}

impl Backend for FakeBackend {
    type Vm = VmHandle;
    type Vcpu = VcpuHandle;
    type MapCookie = (char, VmId, u32);

    fn hardware_enable(&self) -> Result<(), Errno> {
        let mut w = self.world.lock().unwrap();
        w.hardware_on = true;
        w.enables += 1;
        Ok(())
    }
    fn hardware_disable(&self) {
        self.world.lock().unwrap().hardware_on = false;
    }
    fn supports(&self, _cap: Capability) -> bool {
        true
    }
    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        Ok(&self.msrs)
    }
    fn supported_cpuid(&self, out: &mut [kvm_cpuid_entry2]) -> Result<usize, Errno> {
        let n = self.cpuid_leaves.min(out.len());
        for (i, e) in out.iter_mut().take(n).enumerate() {
            e.function = i as u32;
            e.eax = 0x1000 + i as u32;
        }
        Ok(n)
    }
    fn create_vm(&self, id: VmId) -> Result<VmHandle, Errno> {
        let mut w = self.world.lock().unwrap();
        let vm = FakeVm {
            chips: [vec![0; 512], vec![0; 512], vec![0; 512]],
            ..Default::default()
        };
        w.vms.insert(id, vm);
        Ok(VmHandle {
            id,
            world: self.world.clone(),
        })
    }
    fn create_vcpu(
        &self,
        vm: &mut VmHandle,
        index: u32,
        id: u32,
        is_bsp: bool,
    ) -> Result<VcpuHandle, Errno> {
        let mut w = self.world.lock().unwrap();
        let v = w.vms.get_mut(&vm.id).unwrap();
        assert_eq!(v.vcpus.len(), index as usize, "index is online_vcpus");
        v.vcpus.push(FakeVcpu {
            index,
            id,
            bsp: is_bsp,
            regs: kvm_regs::default(),
            sregs: kvm_sregs::default(),
            fpu: kvm_fpu::default(),
            lapic: vec![0; 1024],
            msrs: BTreeMap::new(),
            cpuid: Vec::new(),
            mp_state: if is_bsp {
                KVM_MP_STATE_RUNNABLE
            } else {
                KVM_MP_STATE_UNINITIALIZED
            },
            mce_cap: 0,
            vapic: 0,
            events: kvm_vcpu_events::default(),
            nmis: 0,
            irqs: Vec::new(),
            runs: 0,
            last_sigmask: None,
        });
        Ok(VcpuHandle {
            vm: vm.id,
            index,
            world: self.world.clone(),
        })
    }
    fn vm_request(&self, vm: &mut VmHandle, req: VmRequest<'_>) -> Result<i32, Errno> {
        let mut w = self.world.lock().unwrap();
        let v = w.vms.get_mut(&vm.id).unwrap();
        match req {
            VmRequest::SetUserMemoryRegion(m) => {
                if m.memory_size == 0 {
                    v.slots.remove(&m.slot);
                } else {
                    v.slots.insert(m.slot, *m);
                }
                Ok(0)
            }
            VmRequest::GetDirtyLog { slot, bitmap } => {
                assert!(v.slots.contains_key(&slot));
                if let Some(b) = bitmap.first_mut() {
                    *b = 0x5a;
                }
                v.dirty_reads += 1;
                Ok(0)
            }
            VmRequest::SetTssAddr(a) => {
                v.tss = Some(a);
                Ok(0)
            }
            VmRequest::SetIdentityMapAddr(a) => {
                v.identity = Some(a);
                Ok(0)
            }
            VmRequest::CreateIrqchip => {
                assert!(!v.irqchip, "dispatcher checks EEXIST");
                v.irqchip = true;
                Ok(0)
            }
            VmRequest::IrqLine { irq, level } => {
                assert!(v.irqchip);
                v.lines.push((irq, level));
                Ok(if irq == 99 { -1 } else { 1 })
            }
            VmRequest::GetIrqchip(id, chip) => {
                let src = &v.chips[id as u32 as usize];
                // SAFETY (test): plain bytes.
                unsafe {
                    chip.chip.dummy.copy_from_slice(src);
                    chip.chip.dummy[0] = 0xc0 | id as u8;
                }
                Ok(0)
            }
            VmRequest::SetIrqchip(id, chip) => {
                // SAFETY (test): plain bytes.
                v.chips[id as u32 as usize] = unsafe { chip.chip.dummy.to_vec() };
                Ok(0)
            }
            VmRequest::CreatePit { flags } => {
                assert!(v.pit_flags.is_none());
                v.pit_flags = Some(flags);
                Ok(0)
            }
            VmRequest::RegisterCoalescedMmio(z) => {
                if v.zones.len() >= 100 {
                    return Err(Errno::ENOBUFS);
                }
                v.zones.push(*z);
                Ok(0)
            }
            VmRequest::UnregisterCoalescedMmio(z) => {
                // Saturating: the fuzzer sends any address (the real zone
                // code, kvm_devices::coalesced_mmio, checks its own).
                let end = z.addr.saturating_add(u64::from(z.size));
                v.zones.retain(|x| {
                    !(x.addr >= z.addr && x.addr.saturating_add(u64::from(x.size)) <= end)
                });
                Ok(0)
            }
            VmRequest::SetGsiRouting(entries) => {
                v.routes = entries.iter().map(|e| e.as_bytes().to_vec()).collect();
                Ok(0)
            }
            VmRequest::GetPit2(p) => {
                *p = v.pit;
                Ok(0)
            }
            VmRequest::SetPit2(p) => {
                v.pit = *p;
                Ok(0)
            }
        }
    }
    fn vcpu_request(&self, vcpu: &mut VcpuHandle, req: VcpuRequest<'_>) -> Result<i32, Errno> {
        let mut w = vcpu.world.lock().unwrap();
        let c = &mut w.vms.get_mut(&vcpu.vm).unwrap().vcpus[vcpu.index as usize];
        match req {
            VcpuRequest::Run { sigmask } => {
                if c.mp_state == KVM_MP_STATE_UNINITIALIZED {
                    return Err(Errno::EAGAIN);
                }
                c.runs += 1;
                c.last_sigmask = sigmask.copied();
                Ok(0)
            }
            VcpuRequest::GetRegs(r) => {
                *r = c.regs;
                Ok(0)
            }
            VcpuRequest::SetRegs(r) => {
                c.regs = *r;
                Ok(0)
            }
            VcpuRequest::GetSregs(r) => {
                *r = c.sregs;
                Ok(0)
            }
            VcpuRequest::SetSregs(r) => {
                c.sregs = *r;
                Ok(0)
            }
            VcpuRequest::Interrupt(irq) => {
                c.irqs.push(irq);
                Ok(0)
            }
            VcpuRequest::GetMsrs(entries) => {
                let mut n = 0;
                for e in entries.iter_mut() {
                    let Some(v) = c.msrs.get(&e.index) else { break };
                    e.data = *v;
                    n += 1;
                }
                Ok(n)
            }
            VcpuRequest::SetMsrs(entries) => {
                for e in entries {
                    c.msrs.insert(e.index, e.data);
                }
                Ok(entries.len() as i32)
            }
            VcpuRequest::SetCpuid2(entries) => {
                assert!(entries.len() <= 40);
                c.cpuid = entries.to_vec();
                Ok(0)
            }
            VcpuRequest::GetCpuid2(table) => {
                table[..c.cpuid.len()].copy_from_slice(&c.cpuid);
                Ok(c.cpuid.len() as i32)
            }
            VcpuRequest::GetFpu(f) => {
                *f = c.fpu;
                Ok(0)
            }
            VcpuRequest::SetFpu(f) => {
                c.fpu = *f;
                Ok(0)
            }
            VcpuRequest::GetLapic(l) => {
                l.regs.copy_from_slice(&c.lapic);
                Ok(0)
            }
            VcpuRequest::SetLapic(l) => {
                c.lapic = l.regs.to_vec();
                Ok(0)
            }
            VcpuRequest::SetVapicAddr(a) => {
                c.vapic = a;
                Ok(0)
            }
            VcpuRequest::GetMpState(m) => {
                m.mp_state = c.mp_state;
                Ok(0)
            }
            VcpuRequest::SetMpState(s) => {
                c.mp_state = s as u32;
                Ok(0)
            }
            VcpuRequest::Nmi => {
                c.nmis += 1;
                Ok(0)
            }
            VcpuRequest::X86SetupMce(cap) => {
                c.mce_cap = cap;
                Ok(0)
            }
            VcpuRequest::GetVcpuEvents(e) => {
                *e = c.events;
                Ok(0)
            }
            VcpuRequest::SetVcpuEvents(e) => {
                c.events = *e;
                Ok(0)
            }
        }
    }
    fn vcpu_map_cookie(&self, vcpu: &VcpuHandle) -> (char, VmId, u32) {
        ('r', vcpu.vm, vcpu.index)
    }
    fn ring_map_cookie(&self, vm: &VmHandle) -> (char, VmId, u32) {
        ('m', vm.id, 0)
    }
}

// ---------------------------------------------------------------- helpers

pub type TestDriver = Driver<FakePlatform, FakeBackend>;

pub fn driver() -> TestDriver {
    Driver::new(FakePlatform::default(), FakeBackend::new())
}

/// `mode` of a 64-bit caller.
pub const LP64: i32 = kvm_ioctl::platform::DATAMODEL_LP64;
/// `mode` of a 32-bit caller.
pub const ILP32: i32 = kvm_ioctl::platform::DATAMODEL_ILP32;
/// FREAD | FWRITE.
pub const RDWR: i32 = kvm_ioctl::platform::FREAD | kvm_ioctl::platform::FWRITE;

/// `open("/dev/kvm", O_RDWR)`.
pub fn open<P: Platform, B: Backend>(d: &Driver<P, B>) -> Dev {
    let mut dev = Dev::new(KVM_MAJOR, 0);
    d.open(&mut dev, RDWR, kvm_ioctl::platform::OTYP_CHR)
        .expect("open");
    dev
}

/// `ioctl(fd, cmd, arg)` from a 64-bit process.
pub fn ioctl<P: Platform, B: Backend>(
    d: &Driver<P, B>,
    dev: Dev,
    cmd: Ioctl,
    arg: u64,
    um: &mut FakeUser,
) -> Result<i32, Errno> {
    d.ioctl(dev, cmd.cmd() as i32, arg, LP64, um)
}
