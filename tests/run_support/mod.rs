//! A std [`VmxHost`] for the run-loop tests: pages from the heap with fake
//! physical addresses, `kvm_vmx::fake::FakeVmcs` shared between the
//! handles of one region, and a scripted CPU: each VM entry pops one
//! [`Exit`], records what the entry saw (launch/resume, RIP, injected
//! event, registers) and writes the exit information into the VMCS as the
//! CPU would. Built on `tests/vm_support` (fake process and services).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kvm::vm::VmBackend;
use kvm::vm::vmx::{HostPage, LoadState, RealVmx, VmxHost};
use kvm_ioctl::abi::{Ioctl, kvm_segment, kvm_sregs};
use kvm_ioctl::{Dev, Driver, Errno, VmId};
use kvm_vmx::entry::EntryResult;
use kvm_vmx::exit_reason::ExitReason;
use kvm_vmx::fake::FakeVmcs;
use kvm_vmx::host::{CpuSharedMsrs, HostCpu, MsrHw};
use kvm_vmx::run::SmtAcquire;
use kvm_vmx::setup::{HostCpuState, HostState, Page};
use kvm_vmx::vcpu::GuestRegs;
use kvm_vmx::vmcs::{InveptType, InvvpidType, VmFail, Vmcs};
use x86::vmx::vmcs::{control, guest, ro};

use super::vm_support::{FakeCpu, FakePlatform, FakeServices, KVM_MAJOR, LP64, Proc};

// ------------------------------------------------------------ CPU

fn msr(allowed1: u32, allowed0: u32) -> u64 {
    (u64::from(allowed1) << 32) | u64::from(allowed0)
}

/// A Skylake-SP's VMX capability MSRs (as kvm-vmx's own tests use).
pub fn skylake_vmx() -> FakeCpu {
    const PIN_DEFAULT1: u32 = 0x16;
    const PROC_DEFAULT1: u32 = 0x0401_e172;
    const EXIT_DEFAULT1: u32 = 0x0003_6dff;
    const ENTRY_DEFAULT1: u32 = 0x11ff;
    const PROC_TRUE1: u32 = PROC_DEFAULT1 & !(1 << 15 | 1 << 16);
    const EXIT_TRUE1: u32 = EXIT_DEFAULT1 & !(1 << 2);
    const ENTRY_TRUE1: u32 = ENTRY_DEFAULT1 & !(1 << 2);
    let mut c = FakeCpu::default();
    c.leaves.insert(
        (1, 0),
        kvm_vmx::CpuidResult {
            ecx: 1 << 5,
            ..Default::default()
        },
    );
    for (m, v) in [
        (0x480, 0x00da_0400_0000_0000 | 0x4),
        (0x481, msr(0xff, PIN_DEFAULT1)),
        (0x48d, msr(0xff, PIN_DEFAULT1)),
        (0x482, msr(0xfff9_fffe, PROC_DEFAULT1)),
        (0x48e, msr(0xfff9_fffe, PROC_TRUE1)),
        (0x48b, msr(0x0053_7fff, 0)),
        (0x483, msr(0x01ff_ffff, EXIT_DEFAULT1)),
        (0x48f, msr(0x01ff_ffff, EXIT_TRUE1)),
        (0x484, msr(0x0003_ffff, ENTRY_DEFAULT1)),
        (0x490, msr(0x0003_ffff, ENTRY_TRUE1)),
        (0x48c, 0x0000_0f01_0673_4141),
    ] {
        c.msrs.insert(m, v);
    }
    c
}

// ------------------------------------------------------------ pages, VMCS

pub struct FakePage {
    pa: u64,
    data: Box<Page>,
}

impl HostPage for FakePage {
    fn pa(&self) -> u64 {
        self.pa
    }
    fn page(&self) -> &Page {
        &self.data
    }
    fn page_mut(&mut self) -> &mut Page {
        &mut self.data
    }
}

/// A handle on a VMCS region: all handles of one region share the fake.
#[derive(Clone)]
pub struct SharedVmcs(pub Arc<Mutex<FakeVmcs>>);

impl Vmcs for SharedVmcs {
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        self.0.lock().unwrap().vmread(field)
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        self.0.lock().unwrap().vmwrite(field, value)
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.lock().unwrap().vmptrld(pa)
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.lock().unwrap().vmclear(pa)
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        self.0.lock().unwrap().invept(kind, eptp)
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        self.0.lock().unwrap().invvpid(kind, vpid, gva)
    }
}

// ------------------------------------------------------------ the script

/// Flat 32-bit protected mode in `s`, paging off, CPL 0: 4 GiB code
/// (0x08) and data (0x10) segments, CR0 = PE|ET.
pub fn flat_protected_mode(s: &mut kvm_sregs) {
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x8,
        r#type: 0xb,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = kvm_segment {
        selector: 0x10,
        r#type: 0x3,
        ..code
    };
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.ss = data;
    s.fs = data;
    s.gs = data;
    s.cr0 = 0x11; // PE | ET
}

/// What the guest does before its next exit (registers, VMCS guest state).
pub type GuestAction = Box<dyn FnMut(&mut GuestRegs, &mut FakeVmcs) + Send>;

/// One scripted VM exit.
pub struct Exit {
    pub reason: ExitReason,
    pub len: u64,
    pub qual: u64,
    pub gpa: u64,
    pub intr_info: u64,
    /// IDT-vectoring information and error code: the exit interrupted the
    /// delivery of an event.
    pub idt: (u64, u64),
    pub guest: Option<GuestAction>,
}

impl Exit {
    pub fn new(reason: ExitReason, len: u64, qual: u64) -> Exit {
        Exit {
            reason,
            len,
            qual,
            gpa: 0,
            intr_info: 0,
            idt: (0, 0),
            guest: None,
        }
    }
    /// EPT violation at `gpa` (qualification bits: read 0, write 1, fetch 2).
    pub fn ept(gpa: u64, qual: u64) -> Exit {
        Exit {
            gpa,
            ..Exit::new(ExitReason::EptViolation, 0, qual)
        }
    }
    /// The exit came while delivering the event `info` (error code `ec`).
    pub fn during_delivery(mut self, info: u64, ec: u64) -> Exit {
        self.idt = (info, ec);
        self
    }
    /// Run `f` on the guest's registers and VMCS first.
    pub fn with(mut self, f: impl FnMut(&mut GuestRegs, &mut FakeVmcs) + Send + 'static) -> Exit {
        self.guest = Some(Box::new(f));
        self
    }
}

/// What one VM entry saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub launched: bool,
    pub rip: u64,
    /// VM-entry interruption information (the event injected), then
    /// cleared as the CPU does.
    pub injected: u64,
    pub error_code: u64,
    pub regs: GuestRegs,
}

#[derive(Default)]
pub struct Script {
    /// `kpreempt_disable` nesting, and the calls made while it was 0 that
    /// must run on one CPU (VMCS load/clear, guest FPU save).
    pub preempt_depth: i32,
    pub preemptible_calls: Vec<&'static str>,
    pub exits: VecDeque<Exit>,
    pub entries: Vec<Entry>,
    /// `block` calls and whether the VCPU was woken.
    pub blocks: Vec<bool>,
    /// Answers of `signal_pending` (empty: none).
    pub signals: VecDeque<bool>,
    pub invepts: Vec<(InveptType, u64)>,
    pub kicks: Vec<(u32, u32)>,
    pub fpu_starts: usize,
    pub fpu_stops: usize,
    /// `set_signal_mask`/`restore_signal_mask` calls: (set?, mask).
    pub sigmasks: Vec<(bool, [u8; 16])>,
}

// ------------------------------------------------------------ the host

pub struct FakeMsrs(BTreeMap<u32, u64>);
impl MsrHw for FakeMsrs {
    fn rdmsr(&mut self, msr: u32) -> u64 {
        self.0.get(&msr).copied().unwrap_or(0)
    }
    fn wrmsr(&mut self, msr: u32, value: u64) {
        self.0.insert(msr, value);
    }
}
impl HostCpu for FakeMsrs {
    fn ldt_selector(&mut self) -> u16 {
        0
    }
    fn fs_selector(&mut self) -> u16 {
        0
    }
    fn gs_selector(&mut self) -> u16 {
        0
    }
    fn load_fs(&mut self, _sel: u16) {}
    fn load_ldt(&mut self, _sel: u16) {}
    fn load_gs_keep_base(&mut self, _sel: u16, _gs_base: u64) {}
    fn reload_tss(&mut self) {}
    fn reset_gdtr_limit(&mut self) {}
}

pub struct FakeHost {
    pub cpu: FakeCpu,
    pub script: Arc<Mutex<Script>>,
    pub next_pa: AtomicU64,
    pub vmcs: Mutex<BTreeMap<u64, Arc<Mutex<FakeVmcs>>>>,
    pub next_vpid: AtomicUsize,
    pub freed_vpids: Mutex<Vec<u16>>,
    pub shared_msrs: Mutex<CpuSharedMsrs>,
    pub current_cpu: AtomicU64,
    /// The next `loaded` reports a VMCLEAR (the thread moved).
    pub moved: AtomicBool,
    /// Every page: physical address → address of its bytes (the "CPU"
    /// reaches the virtual-APIC page through it).
    pub pages: Arc<Mutex<BTreeMap<u64, usize>>>,
    /// The VCPU debug record `attach_debug` was given (its event ring),
    /// as an address; `None` once detached.
    pub debug_rec: Mutex<Option<usize>>,
    /// DR0–DR3 "in the CPU": what `load_debug_regs` loaded last.
    pub debug_regs: Mutex<Option<[u64; 4]>>,
    /// `vcpu_running` calls: (VM, VCPU index) per KVM_RUN.
    pub running: Mutex<Vec<(VmId, u32)>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            cpu: skylake_vmx(),
            script: Arc::default(),
            next_pa: AtomicU64::new(0x10_0000),
            vmcs: Mutex::default(),
            next_vpid: AtomicUsize::new(1),
            freed_vpids: Mutex::default(),
            shared_msrs: Mutex::default(),
            current_cpu: AtomicU64::new(0),
            moved: AtomicBool::new(false),
            pages: Arc::default(),
            debug_rec: Mutex::default(),
            debug_regs: Mutex::default(),
            running: Mutex::default(),
        }
    }
}

impl VmxHost for FakeHost {
    type Page = FakePage;
    type Vmcs = SharedVmcs;
    type Cpu = FakeCpu;
    type HostCpu = FakeMsrs;
    type Fpu = Box<[u8; 512]>;

    fn cpu(&self) -> &FakeCpu {
        &self.cpu
    }
    fn rdmsr_safe(&self, msr: u32) -> Option<u64> {
        // The host has the syscall MSRs, TSC, PAT and the rest of
        // `msrs_to_save` except VM_HSAVE_PA (AMD) and PERF_STATUS.
        match msr {
            0xc001_0117 | 0x198 => None,
            _ => Some(0),
        }
    }
    fn alloc_page(&self) -> Result<FakePage, Errno> {
        let mut p = FakePage {
            pa: self.next_pa.fetch_add(0x1000, Ordering::Relaxed),
            data: Box::new([0; 4096]),
        };
        self.pages
            .lock()
            .unwrap()
            .insert(p.pa, p.data.as_mut_ptr() as usize);
        Ok(p)
    }
    fn vmcs(&self, region: &FakePage) -> SharedVmcs {
        let mut m = self.vmcs.lock().unwrap();
        let v = m
            .entry(region.pa)
            .or_insert_with(|| {
                let mut f = FakeVmcs::new();
                f.current = None;
                Arc::new(Mutex::new(f))
            })
            .clone();
        SharedVmcs(v)
    }
    fn vpid_alloc(&self) -> u16 {
        self.next_vpid.fetch_add(1, Ordering::Relaxed) as u16
    }
    fn vpid_free(&self, vpid: u16) {
        self.freed_vpids.lock().unwrap().push(vpid);
    }
    fn host_state(&self) -> HostState {
        HostState {
            cr0: 0x8005_003b,
            cr4: 0x2606f0,
            cs: 0x30,
            ds: 0x4b,
            es: 0x4b,
            ss: 0x38,
            tr: 0x40,
            rip: 0xffff_ffff_fb80_1000,
            ..HostState::default()
        }
    }
    fn host_cpu_state(&self) -> HostCpuState {
        HostCpuState {
            cr3: 0x1000,
            gdtr_base: 0xffff_ff00_0000_0000 + self.current_cpu.load(Ordering::Relaxed) * 0x1000,
            ..HostCpuState::default()
        }
    }
    fn host_cpu(&self) -> FakeMsrs {
        FakeMsrs(BTreeMap::new())
    }
    fn with_shared_msrs(&self, f: &mut dyn FnMut(&mut CpuSharedMsrs)) {
        f(&mut self.shared_msrs.lock().unwrap());
    }
    fn register_user_return(&self) {}
    fn host_cr0(&self) -> u64 {
        0x8005_003b
    }
    fn vcpu_load(&self, vmcs: &mut SharedVmcs) {
        let pa = {
            let m = self.vmcs.lock().unwrap();
            m.iter()
                .find(|(_, v)| Arc::ptr_eq(v, &vmcs.0))
                .map(|(pa, _)| *pa)
                .unwrap()
        };
        vmcs.vmptrld(pa).unwrap();
    }
    fn vcpu_put(&self, vmcs: &mut SharedVmcs) {
        {
            let mut s = self.script.lock().unwrap();
            if s.preempt_depth <= 0 {
                s.preemptible_calls.push("vcpu_put");
            }
        }
        let pa = vmcs.0.lock().unwrap().current.unwrap();
        vmcs.vmclear(pa).unwrap();
        // Keep the fields readable for the next load (the fake's VMCLEAR
        // only forgets the current pointer).
    }
    fn loaded(&self, _vmcs: &mut SharedVmcs) -> LoadState {
        LoadState {
            cpu: self.current_cpu.load(Ordering::Relaxed) as u32,
            cleared: self.moved.swap(false, Ordering::Relaxed),
        }
    }
    fn enter(&self, vmcs: &mut SharedVmcs, regs: &mut GuestRegs, launched: bool) -> EntryResult {
        let mut s = self.script.lock().unwrap();
        let mut v = vmcs.0.lock().unwrap();
        let injected = v.get(control::VMENTRY_INTERRUPTION_INFO_FIELD).unwrap_or(0);
        let error_code = v.get(control::VMENTRY_EXCEPTION_ERR_CODE).unwrap_or(0);
        s.entries.push(Entry {
            launched,
            rip: v.get(guest::RIP).unwrap_or(0),
            injected,
            error_code,
            regs: *regs,
        });
        // The CPU consumes the event.
        v.vmwrite(
            control::VMENTRY_INTERRUPTION_INFO_FIELD,
            injected & !(1 << 31),
        )
        .unwrap();
        let Some(mut e) = s.exits.pop_front() else {
            panic!("script exhausted after {} entries", s.entries.len());
        };
        if let Some(g) = e.guest.as_mut() {
            g(regs, &mut v);
        }
        v.set_exit_info(ro::EXIT_REASON, e.reason as u64);
        v.set_exit_info(ro::VMEXIT_INSTRUCTION_LEN, e.len);
        v.set_exit_info(ro::EXIT_QUALIFICATION, e.qual);
        v.set_exit_info(ro::GUEST_PHYSICAL_ADDR_FULL, e.gpa);
        v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, e.intr_info);
        v.set_exit_info(ro::IDT_VECTORING_INFO, e.idt.0);
        v.set_exit_info(ro::IDT_VECTORING_ERR_CODE, e.idt.1);
        EntryResult::Exited
    }
    unsafe fn attach_debug(
        &self,
        _vmcs: &mut SharedVmcs,
        rec: Option<std::ptr::NonNull<kvm_kstat::debug::KvmDebugVcpu>>,
    ) {
        *self.debug_rec.lock().unwrap() = rec.map(|r| r.as_ptr() as usize);
    }
    fn invept_all_cpus(&self, kind: InveptType, eptp: u64) {
        self.script.lock().unwrap().invepts.push((kind, eptp));
    }
    fn preempt_disable(&self) {
        self.script.lock().unwrap().preempt_depth += 1;
    }
    fn preempt_enable(&self) {
        self.script.lock().unwrap().preempt_depth -= 1;
    }
    fn interrupts_disable(&self) {}
    fn interrupts_enable(&self) {}
    fn smt_mark_as_vcpu(&self) {}
    fn smt_acquire(&self) -> SmtAcquire {
        SmtAcquire::Acquired
    }
    fn smt_release(&self) {}
    fn migrate(&self) {}
    fn signal_pending(&self) -> bool {
        self.script
            .lock()
            .unwrap()
            .signals
            .pop_front()
            .unwrap_or(false)
    }
    fn host_wants_cpu(&self) -> bool {
        false
    }
    fn set_signal_mask(&self, mask: &[u8; 16]) -> Option<[u8; 16]> {
        self.script.lock().unwrap().sigmasks.push((true, *mask));
        Some([0xee; 16])
    }
    fn restore_signal_mask(&self, saved: &[u8; 16]) {
        self.script.lock().unwrap().sigmasks.push((false, *saved));
    }
    fn block(&self, _vm: kvm_ioctl::VmId, _vcpu: u32, wake: &mut dyn FnMut() -> bool) {
        let woke = wake();
        let mut s = self.script.lock().unwrap();
        s.blocks.push(woke);
        if !woke {
            // Nothing will wake this VCPU: deliver a signal so the loop ends.
            s.signals.push_back(true);
        }
    }
    fn kick(&self, vm: kvm_ioctl::VmId, vcpu: u32) {
        self.script.lock().unwrap().kicks.push((vm, vcpu));
    }
    fn host_nmi(&self) {}
    fn fpu_alloc(&self) -> Result<Box<[u8; 512]>, Errno> {
        let mut f = Box::new([0u8; 512]);
        f[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        f[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Ok(f)
    }
    fn fpu_start_guest(&self, _fpu: &mut Box<[u8; 512]>) {
        self.script.lock().unwrap().fpu_starts += 1;
    }
    fn fpu_stop_guest(&self, _fpu: &mut Box<[u8; 512]>) {
        let mut s = self.script.lock().unwrap();
        s.fpu_stops += 1;
        if s.preempt_depth <= 0 {
            s.preemptible_calls.push("fpu_stop_guest");
        }
    }
    fn fpu_get(&self, fpu: &Box<[u8; 512]>, fxsave: &mut [u8; 512]) {
        fxsave.copy_from_slice(&fpu[..]);
    }
    fn fpu_set(&self, fpu: &mut Box<[u8; 512]>, fxsave: &[u8; 512]) -> Result<(), Errno> {
        fpu.copy_from_slice(fxsave);
        Ok(())
    }
    fn now_ns(&self) -> u64 {
        1_000_000_000
    }
    fn host_tsc(&self) -> u64 {
        1_000_000
    }
    fn vcpu_running(&self, vm: VmId, vcpu: u32) {
        self.running.lock().unwrap().push((vm, vcpu));
    }
    /// Records the guest's breakpoints as the CPU would hold them.
    fn load_debug_regs(&self, db: &[u64; 4]) {
        *self.debug_regs.lock().unwrap() = Some(*db);
    }
    /// The clock of [`Self::now_ns`]/[`Self::host_tsc`] at a 1 GHz TSC
    /// (one tick per ns: mul 2^31, shift 1).
    fn clock_params(&self) -> kvm::vm::kvmclock::ClockParams {
        kvm::vm::kvmclock::ClockParams {
            hrtime: self.now_ns(),
            tsc: self.host_tsc(),
            mul: 0x8000_0000,
            shift: 1,
        }
    }
    fn wall_clock(&self) -> (u64, u32) {
        (FAKE_WALL_CLOCK_SEC, 250)
    }
}

/// The fake host's wall clock (seconds since the epoch).
pub const FAKE_WALL_CLOCK_SEC: u64 = 1_764_000_000;

// ------------------------------------------------------------ driver

pub type RunBackend = VmBackend<FakeServices, RealVmx<FakeHost>>;
pub type RunDriver = Driver<FakePlatform, RunBackend>;

pub fn driver(proc: &Proc) -> RunDriver {
    Driver::new(
        FakePlatform::default(),
        VmBackend::with_vmx(
            FakeServices::new(proc.clone()),
            RealVmx::new(FakeHost::default()),
        ),
    )
}

pub fn host(d: &RunDriver) -> &FakeHost {
    d.backend().vmx().host()
}

pub fn script(d: &RunDriver) -> std::sync::MutexGuard<'_, Script> {
    host(d).script.lock().unwrap()
}

pub fn open(d: &RunDriver) -> Dev {
    let mut dev = Dev::new(KVM_MAJOR, 0);
    d.open(
        &mut dev,
        kvm_ioctl::platform::FREAD | kvm_ioctl::platform::FWRITE,
        kvm_ioctl::platform::OTYP_CHR,
    )
    .expect("open");
    dev
}

pub fn ioctl(d: &RunDriver, dev: Dev, cmd: Ioctl, arg: u64, proc: &Proc) -> Result<i32, Errno> {
    d.ioctl(dev, cmd.cmd() as i32, arg, LP64, &mut proc.clone())
}

/// The VCPU's `kvm_run` + PIO pages as the VMM's mapping sees them.
pub fn run_pages(d: &RunDriver, fd: Dev) -> &'static mut [u8] {
    let m = d.devmap(fd, 0, 3 * 4096, LP64).unwrap();
    let (ptr, len) = d.backend().services().shared_map.lock().unwrap()[&m.cookie];
    assert_eq!(len, 2 * 4096);
    // SAFETY: the VCPU (and its pages) live until the driver is dropped at
    // the end of the test, after the last use of the slice.
    unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) }
}

/// The VM's coalesced-MMIO ring page as the VMM's mapping sees it.
pub fn ring_page(d: &RunDriver, fd: Dev) -> &'static mut [u8] {
    let m = d.devmap(fd, 2 * 4096, 4096, LP64).unwrap();
    let (ptr, len) = d.backend().services().shared_map.lock().unwrap()[&m.cookie];
    assert_eq!(len, 4096);
    // SAFETY: the VM (and its ring) lives until the driver is dropped at
    // the end of the test, after the last use of the slice.
    unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) }
}

/// The events in the (one) VCPU's ring, oldest first.
pub fn ring_entries(d: &RunDriver) -> Vec<kvm_kstat::ringbuf::RingbufEntry> {
    let rec = host(d)
        .debug_rec
        .lock()
        .unwrap()
        .expect("a VCPU's record attached");
    // SAFETY: `attach_debug`'s contract: the record lives, at this address,
    // until the VCPU detaches it when it is dropped (the caller still holds
    // the VM and its VCPU); it is only read through `&`.
    let rec = unsafe { &*(rec as *const kvm_kstat::debug::KvmDebugVcpu) };
    rec.ringbuf().entries().collect()
}
