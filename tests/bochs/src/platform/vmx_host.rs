//! `kvm::vm::vmx::VmxHost` on bare metal: what the illumos kernel (HMA,
//! kmem, context ops, cyclics) does for the VMX run loop, done here on the
//! one CPU the host owns. VMX operation itself (VMXON) is the host's
//! (`vmxon.rs`), as HMA's is on illumos.
//!
//! | need | here |
//! |---|---|
//! | pages with PA | `pages::alloc` (identity mapped) |
//! | VMCS instructions | VMREAD/VMWRITE/VMPTRLD/VMCLEAR/INVEPT/INVVPID (`HwVmcs`) |
//! | entry/exit | `kvm_vmx::entry::hw` (the module's own trampoline) |
//! | host state | this CPU's GDT/IDT/TSS, CR0/CR3/CR4, MSRs |
//! | context ops | VMPTRLD at load, VMCLEAR at put (every KVM_RUN) |
//! | scheduling, SMT, signals | one CPU, no threads: no-ops |
//! | block | polls the wake condition, waits for the next device deadline |
//! | FPU | FXSAVE/FXRSTOR of a 512-byte area (the host never uses the FPU) |

extern crate alloc;

use alloc::boxed::Box;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use ::kvm::vm::vmx::{HostPage, LoadState, VmxHost};
use kvm_ioctl::{Errno, VmId};
use kvm_vmx::entry::EntryResult;
use kvm_vmx::host::{CpuSharedMsrs, HostCpu, MsrHw};
use kvm_vmx::insn;
use kvm_vmx::run::SmtAcquire;
use kvm_vmx::setup::{HostCpuState, HostState, Page};
use kvm_vmx::vcpu::GuestRegs;
use kvm_vmx::vmcs::{InveptType, InvvpidType, VmFail, Vmcs};

use crate::clock;
use crate::cpu::{self, BareMetalCpu};
use crate::descriptors;
use crate::pages;
use crate::sync::SpinLock;

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const MSR_PAT: u32 = 0x277;
/// GDT limit of the boot GDT (5 entries: null, code, data, TSS low/high).
const GDT_LIMIT: u16 = 5 * 8 - 1;

/// MSRs `rdmsr_safe` reads (the rest report absent): what Bochs'
/// `corei7_skylake_x` implements of KVM's `msrs_to_save` list.
const KNOWN_MSRS: &[u32] = &[
    0x10,        // TSC
    0x1b,        // APIC_BASE
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0x277,       // PAT
    0xc000_0080, // EFER
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // FMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
];

/// A page from the allocator, freed on drop.
pub struct VmxPage(u64);

impl HostPage for VmxPage {
    fn pa(&self) -> u64 {
        self.0
    }
    fn page(&self) -> &Page {
        // SAFETY: a live, identity-mapped 4 KiB page we own.
        unsafe { &*(self.0 as usize as *const Page) }
    }
    fn page_mut(&mut self) -> &mut Page {
        // SAFETY: as `page`, exclusively borrowed.
        unsafe { &mut *(self.0 as usize as *mut Page) }
    }
}

impl Drop for VmxPage {
    fn drop(&mut self) {
        take_cleared(self.0);
        // SAFETY: the page came from `pages::alloc` and is dropped once.
        pages::free(unsafe { pages::Page::from_phys(self.0) });
    }
}

/// TSC at which the current KVM_RUN should return to the VMM (0: never):
/// the VMM's time slice, reported to the run loop as a pending signal, as
/// QEMU's SIG_IPI/SIGALRM would interrupt a VCPU thread.
static SLICE_END: AtomicU64 = AtomicU64::new(0);

/// Whether a blocking VCPU gives up its slice (several VCPUs share the CPU).
static YIELD_ON_BLOCK: AtomicBool = AtomicBool::new(false);
/// ... unless a device deadline is due within this many ns (200 us).
const YIELD_UNLESS_DUE_NS: u64 = 200_000;

/// VCPUs kicked since the VMM last looked (bit per index).
static KICKED: AtomicU32 = AtomicU32::new(0);

/// The lowest kicked VCPU index, cleared (the VMM runs it next).
pub fn take_kicked() -> Option<u32> {
    let k = KICKED.load(Ordering::Relaxed);
    if k == 0 {
        return None;
    }
    let i = k.trailing_zeros();
    KICKED.fetch_and(!(1 << i), Ordering::Relaxed);
    Some(i)
}

/// The VCPU index whose KVM_RUN is running (for `kick`).
static CURRENT_VCPU: AtomicU32 = AtomicU32::new(0);

/// The VMM is about to run VCPU `index`.
pub fn set_current_vcpu(index: u32) {
    CURRENT_VCPU.store(index, Ordering::Relaxed);
}

/// Several VCPUs take turns on this CPU: a halted one yields.
pub fn set_yield_on_block(on: bool) {
    YIELD_ON_BLOCK.store(on, Ordering::Relaxed);
}

/// A slice that starts at the next VM entry: its length in TSC ticks
/// (0: none pending). See [`set_slice_from_entry`].
static SLICE_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Makes `signal_pending` true from TSC `tsc` on (0: never).
pub fn set_slice_end(tsc: u64) {
    SLICE_AT_ENTRY.store(0, Ordering::Relaxed);
    SLICE_END.store(tsc, Ordering::Relaxed);
}

/// A slice of `ticks` that starts when the guest is entered, not now: a
/// kicked VCPU's short slice must not be spent on KVM_RUN's way in
/// (loading the VCPU, injecting the event it was kicked for).
pub fn set_slice_from_entry(ticks: u64) {
    SLICE_END.store(0, Ordering::Relaxed);
    SLICE_AT_ENTRY.store(ticks.max(1), Ordering::Relaxed);
}

/// Whether a kick is waiting (the VMM runs that VCPU next).
pub fn kick_pending() -> bool {
    KICKED.load(Ordering::Relaxed) != 0
}

/// Ends the current slice: `signal_pending` is true from now on.
fn end_slice_now() {
    SLICE_AT_ENTRY.store(0, Ordering::Relaxed);
    SLICE_END.store(cpu::rdtsc().max(1), Ordering::Relaxed);
}

fn slice_over() -> bool {
    let end = SLICE_END.load(Ordering::Relaxed);
    end != 0 && cpu::rdtsc() >= end
}

/// A handle on one VCPU's VMCS (the region's PA). Handles are stateless
/// like the hardware; "VMCLEARed since the last `loaded`" is kept per
/// region in [`CLEARED`], since several handles of a region exist.
pub struct HwVmcs {
    pa: u64,
}

const MAX_VMCS: usize = 64;
/// Regions VMCLEARed since their last `loaded` (0: free slot).
static CLEARED: SpinLock<[u64; MAX_VMCS]> = SpinLock::new([0; MAX_VMCS]);

/// Entries in use in [`CLEARED`]: `loaded` runs before every VM entry,
/// and the table is empty but after a `KVM_RUN`'s first entry.
static CLEARED_COUNT: AtomicUsize = AtomicUsize::new(0);

fn mark_cleared(pa: u64) {
    let mut c = CLEARED.lock();
    if CLEARED_COUNT.load(Ordering::Relaxed) != 0 && c.contains(&pa) {
        return;
    }
    if let Some(slot) = c.iter_mut().find(|e| **e == 0) {
        *slot = pa;
        CLEARED_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

fn take_cleared(pa: u64) -> bool {
    if CLEARED_COUNT.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let mut c = CLEARED.lock();
    match c.iter_mut().find(|e| **e == pa) {
        Some(slot) => {
            *slot = 0;
            CLEARED_COUNT.fetch_sub(1, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

impl Vmcs for HwVmcs {
    // The instructions are the driver's own (`kvm_vmx::insn`); the host
    // did VMXON at boot, so every call below runs in VMX root operation.
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        // SAFETY: VMX root (see above).
        unsafe { insn::vmread(field) }
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        // SAFETY: the run loop writes fields of the current VMCS; host
        // fields come from `host_state`/`host_cpu_state`.
        unsafe { insn::vmwrite(field, value) }
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        // SAFETY: `pa` is a VMCS region with the revision id.
        unsafe { insn::vmptrld(pa) }
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        // SAFETY: as `vmptrld`.
        let r = unsafe { insn::vmclear(pa) };
        mark_cleared(pa);
        r
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        // SAFETY: VMX root; it only drops cached translations.
        unsafe { insn::invept(kind as u64, eptp) }
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        // SAFETY: as `invept`.
        unsafe { insn::invvpid(kind as u64, vpid, gva) }
    }
}

/// This CPU for `kvm_vmx::host::HostCpu`.
pub struct BareHostCpu;

impl MsrHw for BareHostCpu {
    fn rdmsr(&mut self, msr: u32) -> u64 {
        // SAFETY: the run loop reads MSRs the CPU has (EFER, STAR, ...).
        unsafe { cpu::rdmsr(msr) }
    }
    fn wrmsr(&mut self, msr: u32, value: u64) {
        // SAFETY: the run loop writes back host or guest values of MSRs
        // the CPU has; the host uses none of the switched ones.
        unsafe { cpu::wrmsr(msr, value) }
    }
}

macro_rules! read_sel {
    ($insn:literal) => {{
        let v: u16;
        // SAFETY: reading a selector register has no side effects.
        unsafe { asm!($insn, out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

impl HostCpu for BareHostCpu {
    fn ldt_selector(&mut self) -> u16 {
        read_sel!("sldt {0:x}")
    }
    fn fs_selector(&mut self) -> u16 {
        read_sel!("mov {0:x}, fs")
    }
    fn gs_selector(&mut self) -> u16 {
        read_sel!("mov {0:x}, gs")
    }
    fn load_fs(&mut self, sel: u16) {
        // SAFETY: a selector the host had before the entry.
        unsafe { asm!("mov fs, {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
    }
    fn load_ldt(&mut self, sel: u16) {
        // SAFETY: as `load_fs` (0: no LDT).
        unsafe { asm!("lldt {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
    }
    fn load_gs_keep_base(&mut self, sel: u16, gs_base: u64) {
        // SAFETY: as `load_fs`; the base is written back after.
        unsafe {
            asm!("mov gs, {0:x}", in(reg) sel, options(nostack, preserves_flags));
            cpu::wrmsr(MSR_GS_BASE, gs_base);
        }
    }
    fn reload_tss(&mut self) {
        let gdt = descriptors::gdt_base() as usize as *mut u64;
        let index = usize::from(descriptors::TSS_SELECTOR >> 3);
        // SAFETY: the boot GDT's TSS entry; mark it available (type 9)
        // and load TR again.
        unsafe {
            let e = gdt.add(index);
            e.write_volatile(e.read_volatile() & !(1u64 << 41));
            asm!("ltr {0:x}", in(reg) descriptors::TSS_SELECTOR, options(nostack, preserves_flags));
        }
    }
    fn reset_gdtr_limit(&mut self) {
        #[repr(C, packed)]
        struct Gdtr {
            limit: u16,
            base: u64,
        }
        let gdtr = Gdtr {
            limit: GDT_LIMIT,
            base: descriptors::gdt_base(),
        };
        // SAFETY: the boot GDT with its real limit.
        unsafe { asm!("lgdt [{}]", in(reg) &gdtr, options(readonly, nostack, preserves_flags)) };
    }
}

/// A guest FPU area (FXSAVE format, 16-aligned).
#[repr(C, align(16))]
pub struct FxArea([u8; 512]);

fn fxsave(area: &mut FxArea) {
    // SAFETY: a 512-byte, 16-aligned area; CR4.OSFXSR is set at init.
    unsafe {
        asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

fn fxrstor(area: &FxArea) {
    // SAFETY: as `fxsave`; the image was validated on the way in.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags)) };
}

/// The bare-metal VMX host.
pub struct BareVmxHost {
    cpu: BareMetalCpu,
    shared: SpinLock<CpuSharedMsrs>,
    next_vpid: SpinLock<u16>,
    /// IA32_VMX_MISC\[4:0\]: the preemption timer's rate shift.
    preemption_shift: u32,
}

impl BareVmxHost {
    /// Sets CR4.OSFXSR/OSXMMEXCPT (FXSAVE of the guest's SSE state).
    pub fn new() -> Self {
        // SAFETY: enabling FXSAVE/SSE state handling has no effect on the
        // host, which never uses the FPU.
        unsafe { cpu::write_cr4(cpu::read_cr4() | (1 << 9) | (1 << 10)) };
        BareVmxHost {
            cpu: BareMetalCpu,
            shared: SpinLock::new(CpuSharedMsrs::default()),
            next_vpid: SpinLock::new(1),
            // SAFETY: VMX is supported (checked before the host is built),
            // so IA32_VMX_MISC (0x485) exists.
            preemption_shift: (unsafe { cpu::rdmsr(0x485) } & 0x1f) as u32,
        }
    }
}

impl VmxHost for BareVmxHost {
    type Page = VmxPage;
    type Vmcs = HwVmcs;
    type Cpu = BareMetalCpu;
    type HostCpu = BareHostCpu;
    type Fpu = Box<FxArea>;

    fn cpu(&self) -> &BareMetalCpu {
        &self.cpu
    }
    fn rdmsr_safe(&self, msr: u32) -> Option<u64> {
        // SAFETY: only MSRs the CPU model implements.
        KNOWN_MSRS
            .contains(&msr)
            .then(|| unsafe { cpu::rdmsr(msr) })
    }

    fn alloc_page(&self) -> Result<VmxPage, Errno> {
        pages::alloc()
            .map(|p| VmxPage(p.into_phys()))
            .ok_or(Errno::ENOMEM)
    }
    fn vmcs(&self, region: &VmxPage) -> HwVmcs {
        // A fresh region counts as cleared (the caller VMCLEARs it too).
        mark_cleared(region.0);
        HwVmcs { pa: region.0 }
    }

    fn vpid_alloc(&self) -> u16 {
        let mut n = self.next_vpid.lock();
        let v = *n;
        *n = n.wrapping_add(1).max(1);
        v
    }
    fn vpid_free(&self, _vpid: u16) {}

    fn host_state(&self) -> HostState {
        let mut c = BareHostCpu;
        HostState {
            cr0: cpu::read_cr0(),
            cr4: cpu::read_cr4(),
            cs: read_sel!("mov {0:x}, cs"),
            ds: read_sel!("mov {0:x}, ds"),
            es: read_sel!("mov {0:x}, es"),
            ss: read_sel!("mov {0:x}, ss"),
            fs: c.fs_selector(),
            gs: c.gs_selector(),
            tr: descriptors::TSS_SELECTOR,
            fs_base: c.rdmsr(MSR_FS_BASE),
            sysenter_cs: c.rdmsr(MSR_SYSENTER_CS) as u32,
            sysenter_eip: c.rdmsr(MSR_SYSENTER_EIP),
            pat: c.rdmsr(MSR_PAT),
            rip: kvm_vmx::entry::hw::exit_address(),
        }
    }
    fn host_cpu_state(&self) -> HostCpuState {
        let mut c = BareHostCpu;
        HostCpuState {
            cr3: cpu::read_cr3(),
            tr_base: descriptors::tss_base(),
            gdtr_base: descriptors::gdt_base(),
            idtr_base: descriptors::idt_base(),
            gs_base: c.rdmsr(MSR_GS_BASE),
            sysenter_esp: c.rdmsr(MSR_SYSENTER_ESP),
            tsc_tick_delta: 0,
        }
    }
    fn host_cpu(&self) -> BareHostCpu {
        BareHostCpu
    }
    fn with_shared_msrs(&self, f: &mut dyn FnMut(&mut CpuSharedMsrs)) {
        f(&mut self.shared.lock());
    }
    fn register_user_return(&self) {}
    fn host_cr0(&self) -> u64 {
        cpu::read_cr0()
    }

    fn vcpu_load(&self, vmcs: &mut HwVmcs) {
        let pa = vmcs.pa;
        let _ = vmcs.vmptrld(pa);
    }
    fn vcpu_put(&self, vmcs: &mut HwVmcs) {
        let pa = vmcs.pa;
        let _ = vmcs.vmclear(pa);
        // The "return to user mode": the host's values of the switched
        // MSRs go back.
        self.shared.lock().on_user_return(&mut BareHostCpu);
    }
    fn loaded(&self, vmcs: &mut HwVmcs) -> LoadState {
        LoadState {
            cpu: 0,
            cleared: take_cleared(vmcs.pa),
        }
    }
    fn enter(&self, _vmcs: &mut HwVmcs, regs: &mut GuestRegs, launched: bool) -> EntryResult {
        // SAFETY: the run loop calls this in VMX root operation with the
        // VMCS current, interrupts off (always, on this host) and HOST_RIP
        // = `exit_address()`.
        if crate::profile::active() {
            crate::vmm::interrupts_close();
        }
        let raw = unsafe { kvm_vmx::entry::hw::vmx_enter(regs, u64::from(launched)) };
        crate::profile::guest_exited();
        EntryResult::from_raw(raw)
    }
    fn invept_all_cpus(&self, kind: InveptType, eptp: u64) {
        // SAFETY: VMX root; one CPU.
        let _ = unsafe { insn::invept(kind as u64, eptp) };
    }

    fn preempt_disable(&self) {}
    fn preempt_enable(&self) {}
    // The host runs with interrupts off throughout, except while the
    // profiler samples the driver (`profile.rs`): then they are open in
    // KVM_RUN but closed from just before VM entry (`enter`) to the run
    // loop's `interrupts_enable` after the exit.
    fn interrupts_disable(&self) {
        // Profiling: `enter` closes them right before VM entry instead, so
        // the samples of the entry path are the host's, not the guest's.
    }
    fn interrupts_enable(&self) {
        if crate::profile::active() {
            crate::vmm::interrupts_open();
            crate::profile::window_done();
        }
    }
    fn smt_mark_as_vcpu(&self) {}
    fn smt_acquire(&self) -> SmtAcquire {
        SmtAcquire::Acquired
    }
    fn smt_release(&self) {}
    fn migrate(&self) {}
    fn signal_pending(&self) -> bool {
        slice_over()
    }
    fn host_wants_cpu(&self) -> bool {
        // The slice timer's external-interrupt exit: back to the VMM.
        slice_over()
    }
    fn block(&self, _vm: VmId, _vcpu: u32, wake: &mut dyn FnMut() -> bool) {
        // Wait for the wake condition or the next device deadline, firing
        // due device timers; give the CPU back to the VMM (other VCPUs)
        // when nothing here can wake us or the time slice is over.
        // With several VCPUs on this one CPU, a VCPU with nothing due soon
        // ends its slice, as a halted VCPU thread would sleep and let the
        // others run (one that spins would delay the IPI that wakes it).
        loop {
            if wake() || slice_over() {
                return;
            }
            let deadline = super::services::next_deadline();
            let now = clock::ticks_to_ns(clock::now());
            if let Some(d) = deadline
                && now >= d
            {
                super::services::fire_due(now);
                if wake() {
                    return;
                }
                continue;
            }
            let far = deadline.is_none_or(|d| d - now > YIELD_UNLESS_DUE_NS);
            if far && YIELD_ON_BLOCK.load(Ordering::Relaxed) {
                end_slice_now();
                return;
            }
            if deadline.is_none() {
                return;
            }
            core::hint::spin_loop();
        }
    }
    /// `kvm_vcpu_kick`: the kicked VCPU runs on this same CPU only when
    /// the current one gives it back, so a kick of another VCPU (an IPI,
    /// an NMI, an interrupt routed to it) ends the current slice, as the
    /// target would run at once on a CPU of its own.
    fn kick(&self, _vm: VmId, vcpu: u32) {
        if YIELD_ON_BLOCK.load(Ordering::Relaxed) && CURRENT_VCPU.load(Ordering::Relaxed) != vcpu {
            end_slice_now();
            if let Some(bit) = 1u32.checked_shl(vcpu) {
                KICKED.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }
    /// A PAUSE-loop exit: with several VCPUs on this CPU, the one it
    /// waits for can only run if this one gives the CPU back.
    fn vcpu_on_spin(&self) {
        if YIELD_ON_BLOCK.load(Ordering::Relaxed) {
            end_slice_now();
        }
    }
    fn host_nmi(&self) {}

    fn fpu_alloc(&self) -> Result<Box<FxArea>, Errno> {
        let mut a = Box::new(FxArea([0; 512]));
        // FCW 0x37f, MXCSR 0x1f80: the reset state.
        a.0[0] = 0x7f;
        a.0[1] = 0x03;
        a.0[24] = 0x80;
        a.0[25] = 0x1f;
        Ok(a)
    }
    fn fpu_start_guest(&self, fpu: &mut Box<FxArea>) {
        fxrstor(fpu);
    }
    fn fpu_stop_guest(&self, fpu: &mut Box<FxArea>) {
        fxsave(fpu);
    }
    fn fpu_get(&self, fpu: &Box<FxArea>, fxsave: &mut [u8; 512]) {
        *fxsave = fpu.0;
    }
    fn fpu_set(&self, fpu: &mut Box<FxArea>, fxsave: &[u8; 512]) -> Result<(), Errno> {
        // MXCSR reserved bits must be clear or FXRSTOR faults.
        let mxcsr = u32::from_le_bytes([fxsave[24], fxsave[25], fxsave[26], fxsave[27]]);
        if mxcsr & !0xffff != 0 {
            return Err(Errno::EINVAL);
        }
        fpu.0 = *fxsave;
        Ok(())
    }

    fn now_ns(&self) -> u64 {
        clock::ticks_to_ns(clock::now())
    }
    fn host_tsc(&self) -> u64 {
        cpu::rdtsc()
    }
    fn load_debug_regs(&self, db: &[u64; 4]) {
        // SAFETY: CPL 0, interrupts off (the run loop's entry path).
        unsafe { kvm_vmx::debugreg::load_guest_breakpoints(db) }
    }
    /// The TSC-based clock in pvclock form (`clock::pvclock_scale`).
    fn clock_params(&self) -> ::kvm::vm::kvmclock::ClockParams {
        let tsc = clock::now();
        let (mul, shift) = clock::pvclock_scale();
        ::kvm::vm::kvmclock::ClockParams {
            hrtime: clock::ticks_to_ns(tsc),
            tsc,
            mul,
            shift,
        }
    }
    /// Wall-clock time: the CMOS RTC read at boot plus the time since.
    fn wall_clock(&self) -> (u64, u32) {
        let ns = clock::ticks_to_ns(clock::now());
        let boot = crate::rtc::boot_epoch_seconds();
        (
            boot.saturating_add(ns / 1_000_000_000),
            (ns % 1_000_000_000) as u32,
        )
    }
    /// The rest of the VMM's time slice: VCPUs share this CPU, and a guest
    /// spinning with nothing to exit for (an AP waiting for a lock the
    /// other VCPU holds) must still give the CPU back. (The LAPIC timer's
    /// external-interrupt exit alone did not end such a slice under Bochs.)
    fn preemption_timer(&self) -> Option<u32> {
        let at_entry = SLICE_AT_ENTRY.swap(0, Ordering::Relaxed);
        if at_entry != 0 {
            SLICE_END.store(cpu::rdtsc().saturating_add(at_entry), Ordering::Relaxed);
        }
        let end = SLICE_END.load(Ordering::Relaxed);
        if end == 0 {
            return None;
        }
        let left = end.saturating_sub(cpu::rdtsc());
        // IA32_VMX_MISC[4:0]: the timer counts every 2^n TSC ticks.
        let shift = self.preemption_shift;
        Some(u32::try_from(left >> shift).unwrap_or(u32::MAX))
    }
}
