//! The run loop's environment: `kvm_vmx::RunEnv`/`ExitEnv` over the
//! backend's VCPU ([`VcpuCore`]: LAPIC, CPUID table), the VM's shared state
//! (MMU, devices) and the platform ([`VmxHost`]). Port of the generic parts
//! of `vcpu_enter_guest`/`__vcpu_run` (kvm_x86.c) that are not VMX.

use kvm_mmu::fault::{EptViolation, FaultOutcome};
use kvm_mmu::walker::{
    self, Access as WalkAccess, AccessKind, CpuFeatures as WalkFeatures, PagingContext, Privilege,
};
use kvm_vmx::cpu::CpuidResult;
use kvm_vmx::cr;
use kvm_vmx::entry::{EntryResult, GuestEntry};
use kvm_vmx::env::Probe;
use kvm_vmx::env::{
    ControlRegister, Emulation, EmulationReason, ExitEnv, Fault, InterruptSource, ProbeSink,
    TaskSwitchOutcome, TaskSwitchRequest,
};
use kvm_vmx::qualification::IoDirection;
use kvm_vmx::run::{Request, RunEnv, SmtAcquire, flush_tlb};
use kvm_vmx::setup::{CR0_PE, CR0_PG, CR4_PAE, construct_eptp, load_host_cpu_state};
use kvm_vmx::vcpu::{MmioExit, MpState, VmxVcpu};
use kvm_vmx::vmcs::{InveptType, InvvpidType, VmFail, Vmcs};
use kvm_x86_emulate::{Context, Exception, InterruptShadow, Mode, Outcome, Registers};
use x86::vmx::vmcs::{control, guest};

use super::super::irqchip::PioDev;
use super::super::kvmclock;
use super::super::services::Services;
use super::super::vcpu::VcpuCore;
use super::super::vm::VmShared;
use super::emul::{CrWrites, MmioAnswer, Ops};
use super::host::{HostPage, VmxHost};
use super::msr::{
    MSR_KVM_SYSTEM_TIME, MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK, MSR_KVM_WALL_CLOCK_NEW,
    MsrState,
};

/// `&mut dyn Vmcs` as a `Vmcs` (kvm-vmx's helpers take `impl Vmcs`).
pub struct DynVmcs<'a>(pub &'a mut dyn Vmcs);

impl Vmcs for DynVmcs<'_> {
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        self.0.vmread(field)
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        self.0.vmwrite(field, value)
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.vmptrld(pa)
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        self.0.vmclear(pa)
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        self.0.invept(kind, eptp)
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        self.0.invvpid(kind, vpid, gva)
    }
}

/// The default EPT identity map (`VMX_EPT_IDENTITY_PAGETABLE_ADDR`).
pub const IDENTITY_MAP_DEFAULT: u64 = 0xfffb_c000;

const EFER_LMA: u64 = 1 << 10;
const RFLAGS_VM: u64 = 1 << 17;

/// Per-VCPU state the environment keeps across `KVM_RUN`s.
pub struct EnvState<H: VmxHost> {
    /// A second handle on the VCPU's VMCS (for the entry path).
    pub vmcs: H::Vmcs,
    pub fpu: H::Fpu,
    pub msrs: MsrState,
    /// The MMIO read that went to user space, answered by the next
    /// `KVM_RUN` (`complete_mmio_read`).
    pub mmio_pending: Option<MmioAnswer>,
    /// The second fragment of a 16-byte MMIO store, for user space at the
    /// next `KVM_RUN` before the guest runs again.
    pub mmio_write_more: Option<MmioExit>,
    /// Answered MMIO reads of the instruction being emulated.
    pub mmio_answers: [Option<MmioAnswer>; super::emul::MMIO_ANSWERS],
    /// The guest FPU is loaded on this CPU (`hma_fpu_start_guest` done).
    pub fpu_loaded: bool,
    /// The VMCS layout of `vmx_vcpu_setup` (pages, VPID), for resets.
    pub layout: kvm_vmx::setup::VcpuLayout,
    /// The virtual-APIC page (TPR shadow): the CPU reads and writes the
    /// guest's TPR at offset 0x80 while the guest runs.
    pub virtual_apic: H::Page,
    /// The string I/O the last emulation left for user space.
    pub string_pio: Option<StringPio>,
    /// User space's answer to an INS element (port, size, data).
    pub pio_in_answer: Option<(u16, u8, [u8; 4])>,
    /// The INS element that went to user space (port, size); its data is
    /// in the PIO page at the next `KVM_RUN`.
    pub pio_in_asked: Option<(u16, u8)>,
    /// The TPR last written to (or taken from) the virtual-APIC page: when
    /// the page still holds it after an exit, the guest did not change its
    /// TPR and the LAPIC need not be touched.
    pub vapic_tpr: u32,
}

/// What the entry path reads from the LAPIC, taken under one lock by
/// `lapic_enabled` and used by the TPR-threshold and vAPIC steps that
/// follow it in `vcpu_enter_guest` (interrupts are off in between).
#[derive(Clone, Copy, Debug)]
pub struct ApicSnapshot {
    enabled: bool,
    tpr: u32,
    irr_class: Option<u8>,
}

/// The guest's XMM registers as bytes of its FXSAVE image, fetched on the
/// first SSE access of an emulation: the guest FPU, if loaded on this
/// CPU, is saved first (`hma_fpu_stop_guest`), and the next entry loads
/// it back (`load_guest_fpu` sees it unloaded). A changed image is
/// written back by [`FpuXmm::finish`].
struct FpuXmm<'a, H: VmxHost> {
    host: &'a H,
    fpu: &'a mut H::Fpu,
    loaded: &'a mut bool,
    image: Option<alloc::boxed::Box<[u8; 512]>>,
    dirty: bool,
}

impl<H: VmxHost> FpuXmm<'_, H> {
    fn image(&mut self) -> &mut [u8; 512] {
        let (host, fpu, loaded) = (self.host, &mut *self.fpu, &mut *self.loaded);
        self.image.get_or_insert_with(|| {
            if *loaded {
                host.preempt_disable();
                host.fpu_stop_guest(fpu);
                host.preempt_enable();
                *loaded = false;
            }
            let mut img = alloc::boxed::Box::new([0u8; 512]);
            host.fpu_get(fpu, &mut img);
            img
        })
    }

    fn slot(reg: u8) -> Option<core::ops::Range<usize>> {
        let at = super::emul::FXSAVE_XMM0 + 16 * usize::from(reg);
        (reg < 16).then_some(at..at + 16)
    }

    fn finish(self) {
        if let (true, Some(img)) = (self.dirty, self.image) {
            let _ = self.host.fpu_set(self.fpu, &img);
        }
    }
}

impl<H: VmxHost> super::emul::XmmAccess for FpuXmm<'_, H> {
    fn read(&mut self, reg: u8) -> Option<[u8; 16]> {
        let r = Self::slot(reg)?;
        let mut v = [0u8; 16];
        v.copy_from_slice(self.image().get(r)?);
        Some(v)
    }

    fn read_image(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        let n = buf.len();
        let Some(src) = self.image().get(offset..).and_then(|s| s.get(..n)) else {
            return false;
        };
        for (d, s) in buf.iter_mut().zip(src) {
            *d = *s;
        }
        true
    }

    fn write_image(&mut self, offset: usize, data: &[u8]) -> bool {
        let n = data.len();
        let Some(dst) = self.image().get_mut(offset..).and_then(|d| d.get_mut(..n)) else {
            return false;
        };
        for (d, s) in dst.iter_mut().zip(data) {
            *d = *s;
        }
        self.dirty = true;
        true
    }

    fn write(&mut self, reg: u8, value: [u8; 16]) -> bool {
        let Some(r) = Self::slot(reg) else {
            return false;
        };
        let ok = match self.image().get_mut(r) {
            Some(d) => {
                d.copy_from_slice(&value);
                true
            }
            None => false,
        };
        self.dirty |= ok;
        ok
    }
}

/// Offset of the TPR in the APIC page.
const APIC_TASKPRI: usize = 0x80;

/// One `KVM_RUN`'s environment.
/// Guest RAM through the VM's memslots, for kvmclock's structures
/// (`kvm_read_guest`/`kvm_write_guest`).
struct GuestRamOf<'a, S: Services>(&'a VmShared<S>);

impl<S: Services> kvmclock::GuestRam for GuestRamOf<'_, S> {
    fn read(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.mmu().lock().read_guest(gpa, buf).is_ok()
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> bool {
        self.0.mmu().lock().write_guest(gpa, data).is_ok()
    }
}

pub struct RunCtx<'a, S: Services, H: VmxHost> {
    pub host: &'a H,
    pub core: &'a mut VcpuCore<S>,
    pub st: &'a mut EnvState<H>,
    pub pio: &'a mut [u8],
    /// This entry's LAPIC snapshot (see [`ApicSnapshot`]).
    pub apic: Option<ApicSnapshot>,
}

/// The x2APIC MSR range (SDM vol. 3 §11.12.1), handled by the LAPIC model.
const X2APIC_MSR_FIRST: u32 = 0x800;
const X2APIC_MSR_LAST: u32 = 0x8ff;

/// CR4 bits that change the guest's paging mode.
const CR4_PSE: u64 = 1 << 4;
const CR4_PGE: u64 = 1 << 7;

impl<S: Services, H: VmxHost> RunCtx<'_, S, H> {
    /// `vmx_set_cr3(vcpu->arch.cr3)` after a paging-mode change: GUEST_CR3
    /// back to the guest's CR3 when it pages, the EPT identity map when it
    /// does not; then a TLB flush.
    fn reload_cr3(&mut self, vcpu: &mut VmxVcpu, v: &mut DynVmcs<'_>) {
        let cr3 = vcpu.cr3;
        self.load_cr3(vcpu, v, cr3, None);
    }

    /// `vmx_set_cr3(cr3)` with the PAE PDPTEs the caller loaded (a task
    /// switch; MOV to CR3 leaves them to the CPU), then a TLB flush.
    pub(super) fn load_cr3(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut DynVmcs<'_>,
        cr3: u64,
        pdptes: Option<[u64; 4]>,
    ) {
        let map = self.core.shared().arch().ept_identity_map_addr;
        let map = if map == 0 { IDENTITY_MAP_DEFAULT } else { map };
        cr::set_cr3(vcpu, v, cr3, map, pdptes);
        vcpu.requests.set(Request::TlbFlush);
    }

    /// Apply the control registers an emulation wrote (`kvm_set_cr0`: only
    /// TS changes, which cannot fault; `kvm_set_cr3`).
    pub(super) fn commit_crs(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs, w: &CrWrites) {
        if let Some(cr0) = w.cr0 {
            let _ = self.set_cr(vcpu, v, ControlRegister::Cr0, cr0);
        }
        if let Some((cr3, pdptes)) = w.cr3 {
            self.load_cr3(vcpu, &mut DynVmcs(v), cr3, pdptes);
        }
    }

    fn in_kernel(&self) -> bool {
        self.core.has_lapic()
    }

    pub(super) fn paging_context(vcpu: &VmxVcpu, v: &dyn Vmcs) -> PagingContext {
        let cr0 = v.read(control::CR0_READ_SHADOW);
        let cr4 = cr::guest_cr4(v, vcpu.config.ept());
        let pdptes = [
            v.read(guest::PDPTE0_FULL),
            v.read(guest::PDPTE1_FULL),
            v.read(guest::PDPTE2_FULL),
            v.read(guest::PDPTE3_FULL),
        ];
        PagingContext::from_registers(
            cr0,
            vcpu.cr3,
            cr4,
            vcpu.efer,
            pdptes,
            WalkFeatures {
                maxphyaddr: 46,
                pse36: true,
                gbpages: false,
            },
        )
    }

    /// The emulator's view of the guest: its mode (CR0.PE, RFLAGS.VM,
    /// EFER.LMA with CS.L, CS.D) and registers.
    pub(super) fn guest_context(vcpu: &VmxVcpu, v: &dyn Vmcs) -> Context {
        let cr0 = v.read(control::CR0_READ_SHADOW);
        let rflags = v.read(guest::RFLAGS);
        let cs_ar = v.read(guest::CS_ACCESS_RIGHTS);
        let mode = if cr0 & CR0_PE == 0 {
            Mode::Real
        } else if rflags & RFLAGS_VM != 0 {
            Mode::Vm86
        } else if vcpu.efer & EFER_LMA != 0 && cs_ar & (1 << 13) != 0 {
            Mode::Prot64
        } else if cs_ar & (1 << 14) != 0 {
            Mode::Prot32
        } else {
            Mode::Prot16
        };
        let r = &vcpu.regs;
        let regs = Registers {
            gpr: [
                r.rax,
                r.rcx,
                r.rdx,
                r.rbx,
                v.read(guest::RSP),
                r.rbp,
                r.rsi,
                r.rdi,
                r.r8,
                r.r9,
                r.r10,
                r.r11,
                r.r12,
                r.r13,
                r.r14,
                r.r15,
            ],
            rip: v.read(guest::RIP),
            rflags,
        };
        Context::new(mode, regs)
    }

    /// Write the emulator's registers back: the GPRs, RSP, RIP, RFLAGS.
    pub(super) fn commit_registers(vcpu: &mut VmxVcpu, v: &mut dyn Vmcs, regs: &Registers) {
        let g = &regs.gpr;
        let r = &mut vcpu.regs;
        [
            r.rax,
            r.rcx,
            r.rdx,
            r.rbx,
            _,
            r.rbp,
            r.rsi,
            r.rdi,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15,
        ] = *g;
        v.write(guest::RSP, g[4]);
        v.write(guest::RIP, regs.rip);
        v.write(guest::RFLAGS, regs.rflags);
    }

    /// `emulate_instruction`: the emulator at guest RIP.
    fn run_emulator(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs) -> Emulation {
        let cr0 = v.read(control::CR0_READ_SHADOW);
        let mut ctx = Self::guest_context(vcpu, v);
        let cr4 = cr::guest_cr4(v, vcpu.config.ept());
        let paging = Self::paging_context(vcpu, v);
        let shared = self.core.shared().clone();
        let mut xmm = FpuXmm {
            host: self.host,
            fpu: &mut self.st.fpu,
            loaded: &mut self.st.fpu_loaded,
            image: None,
            dirty: false,
        };
        let tr_load;
        let cr_writes;
        let mut seg_loads = super::emul::SegLoads::default();
        let (outcome, mmio) = {
            let mut ops = Ops {
                shared: &shared,
                vcpu_index: self.core.index(),
                vcpu: self.core as *const VcpuCore<S> as usize,
                v: &*v,
                paging,
                cpl: ((v.read(guest::SS_ACCESS_RIGHTS) >> 5) & 3) as u8,
                cr: [cr0, 0, vcpu.regs.cr2, vcpu.cr3, cr4],
                mmio: None,
                answers: self.st.mmio_answers,
                pio_page: &mut *self.pio,
                pio_out: None,
                pio_in: self.st.pio_in_answer.take(),
                pio_in_needed: None,
                xmm: Some(&mut xmm),
                mmio_more: None,
                tr_load: None,
                ldtr_load: None,
                cr_writes: CrWrites::default(),
                seg_loads: &mut seg_loads,
                ring: Some(super::emul::RingStamp {
                    debug: &self.core.debug,
                    cpu: self.host.cpu_id(),
                    thread: self.host.thread_id(),
                    tsc: self.host.host_tsc(),
                }),
                efer: vcpu.efer,
            };
            let o = kvm_x86_emulate::emulate(&mut ctx, &mut ops);
            let pio = match (ops.pio_out, ops.pio_in_needed) {
                (Some((port, size, count)), _) => Some(StringPio {
                    port,
                    size,
                    input: false,
                    count,
                }),
                (None, Some((port, size))) => Some(StringPio {
                    port,
                    size,
                    input: true,
                    count: 1,
                }),
                (None, None) => None,
            };
            self.st.pio_in_answer = ops.pio_in;
            self.st.string_pio = pio;
            self.st.mmio_write_more = ops.mmio_more;
            tr_load = ops.tr_load;
            cr_writes = ops.cr_writes;
            (o, ops.mmio)
        };
        xmm.finish();
        // Segment loads take effect only with the instruction (a fault or
        // a pending access leaves them unapplied, guest state untouched).
        if !matches!(outcome, Ok(Outcome::Done | Outcome::Halt)) {
            seg_loads.clear();
        }
        // The answers serve this instruction until it completes: kept
        // while it waits for another MMIO read, dropped otherwise.
        if !matches!(mmio, Some(m) if !m.is_write) || !matches!(outcome, Ok(Outcome::IoNeeded)) {
            self.st.mmio_answers = [None; super::emul::MMIO_ANSWERS];
        }
        // The carrier of a string-I/O exit: kvm-vmx's `Emulation` has no PIO
        // variant, so an MMIO "write" of nothing goes up and `RealVmx::run`
        // turns it into the `KVM_EXIT_IO` (see `finish_string_pio`).
        let pio_exit = Emulation::Mmio(MmioExit {
            phys_addr: 0,
            data: [0; 8],
            len: 0,
            is_write: true,
        });
        let commit = |vcpu: &mut VmxVcpu, v: &mut dyn Vmcs, ctx: &Context| {
            Self::commit_registers(vcpu, v, &ctx.regs);
            if let Some((sel, base, limit, ar)) = tr_load {
                // LTR: the task register the emulator checked and loaded.
                v.write(guest::TR_SELECTOR, u64::from(sel));
                v.write(guest::TR_BASE, base);
                v.write(guest::TR_LIMIT, u64::from(limit));
                v.write(guest::TR_ACCESS_RIGHTS, u64::from(ar));
            }
            // MOV/POP Sreg, LDS ..., far JMP/CALL/RET, IRET.
            seg_loads.commit(v);
            let shadow = match ctx.shadow {
                InterruptShadow::None => 0,
                InterruptShadow::MovSs => 2,
                InterruptShadow::Sti => 1,
            };
            let mut dv = DynVmcs(v);
            kvm_vmx::inject::set_interrupt_shadow(&mut dv, shadow);
        };
        match outcome {
            Ok(Outcome::Done) => {
                commit(vcpu, v, &ctx);
                self.commit_crs(vcpu, v, &cr_writes);
                match mmio {
                    _ if self.st.string_pio.is_some() => pio_exit,
                    Some(m) => Emulation::Mmio(m),
                    None => Emulation::Done,
                }
            }
            Ok(Outcome::Halt) => {
                commit(vcpu, v, &ctx);
                self.commit_crs(vcpu, v, &cr_writes);
                if self.in_kernel() {
                    vcpu.mp_state = MpState::Halted;
                }
                Emulation::Done
            }
            Ok(Outcome::IoNeeded) => {
                // Finished REP iterations are kept (RIP stays on the
                // instruction): commit what the emulator committed.
                commit(vcpu, v, &ctx);
                match mmio {
                    _ if self.st.string_pio.is_some() => pio_exit,
                    Some(m) => Emulation::Mmio(m),
                    None => self.emulation_failed(vcpu, v, c"pio/mmio"),
                }
            }
            Ok(Outcome::Exception(e)) => {
                // RIP stays on the instruction; finished REP iterations
                // (and their queued OUTS data) are kept.
                commit(vcpu, v, &ctx);
                if matches!(e, Exception::PageFault { .. }) {
                    // `kvm_inject_page_fault`.
                    bump(&self.core.stats().pf_guest);
                }
                queue_exception(vcpu, e);
                if self.st.string_pio.is_some() {
                    pio_exit
                } else {
                    Emulation::Done
                }
            }
            Err(_) => self.emulation_failed(vcpu, v, c"emulate"),
        }
    }

    /// `kvm_report_emulation_failure`: what failed, the guest RIP and the
    /// instruction bytes go to the VCPU's event ring (`::kvm_ringbuf_entry`)
    /// before the exit reports the failure.
    pub(super) fn emulation_failed(
        &mut self,
        vcpu: &VmxVcpu,
        v: &dyn Vmcs,
        context: &'static core::ffi::CStr,
    ) -> Emulation {
        let rip = v.read(guest::RIP);
        let linear = v.read(guest::CS_BASE).wrapping_add(rip);
        let paging = Self::paging_context(vcpu, v);
        let access = WalkAccess {
            kind: AccessKind::Fetch,
            privilege: Privilege::Supervisor {
                smap_override: false,
            },
        };
        let mut insn = [0u8; 8];
        {
            let mut mmu = self.core.shared().mmu().lock();
            if let Ok(t) = walker::translate(&mut *mmu, &paging, linear, access) {
                let _ = mmu.read_guest(t.gpa, &mut insn);
            }
        }
        let (cpu, thread, tsc) = (
            self.host.cpu_id(),
            self.host.thread_id(),
            self.host.host_tsc(),
        );
        self.core
            .debug
            .record_emulation_failure(cpu, thread, tsc, context, rip, insn);
        Emulation::Failed
    }

    fn lapic<R>(
        &self,
        f: impl FnOnce(&mut kvm_devices::lapic::Lapic<S::Clock, S::Timer>) -> R,
    ) -> Option<R> {
        self.core.with_lapic(f).ok()
    }
}

/// The CR4 bits the guest may set given its CPUID table: the architectural
/// ones every CPU with VMX has, plus those whose feature bit CPUID offers.
fn cr4_allowed_by_cpuid<S: Services>(core: &VcpuCore<S>) -> u64 {
    let bit = |on: bool, b: u32| if on { 1u64 << b } else { 0 };
    let l1 = super::cpuid_lookup(core, 1, 0).unwrap_or_default();
    let l7 = super::cpuid_lookup(core, 7, 0).unwrap_or_default();
    // VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT.
    0x7ff
        | bit(l7.ecx & (1 << 2) != 0, 11) // UMIP
        | bit(l7.ecx & (1 << 16) != 0, 12) // LA57
        | bit(l1.ecx & (1 << 6) != 0, 14) // SMXE
        | bit(l7.ebx & 1 != 0, 16) // FSGSBASE
        | bit(l1.ecx & (1 << 17) != 0, 17) // PCIDE
        | bit(l1.ecx & (1 << 26) != 0, 18) // OSXSAVE
        | bit(l7.ebx & (1 << 7) != 0, 20) // SMEP
        | bit(l7.ebx & (1 << 20) != 0, 21) // SMAP
}

/// `kernel_pio`: an access to an in-kernel device on the PIO bus (PIC
/// pair, ELCR, PIT, speaker port); `false` if none claims `port`.
pub fn kernel_pio<S: Services>(
    shared: &super::super::vm::VmShared<S>,
    out: bool,
    port: u16,
    data: &mut [u8],
) -> bool {
    let mut d = shared.devices().lock();
    let Some(range) = d.pio.find(u64::from(port), data.len() as u64) else {
        return false;
    };
    match range.dev {
        PioDev::PicMaster | PioDev::PicSlave | PioDev::Elcr => {
            let Some(chip) = d.irqchip.as_mut() else {
                return false;
            };
            for (i, b) in data.iter_mut().enumerate() {
                let p = port.wrapping_add(i as u16);
                if out {
                    chip.pic.write(p, *b);
                } else {
                    *b = chip.pic.read(p);
                }
            }
            d.process_pic_acks();
            true
        }
        PioDev::Pit | PioDev::Speaker => {
            let Some(p) = d.pit.as_mut() else {
                return false;
            };
            for b in data.iter_mut() {
                if out {
                    p.pit.write(port, *b);
                } else {
                    *b = p.pit.read(port);
                }
            }
            true
        }
    }
}

/// A string I/O (INS/OUTS) user space must complete: `KVM_EXIT_IO` with
/// `count` elements in the PIO page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StringPio {
    pub port: u16,
    pub size: u8,
    pub input: bool,
    pub count: u32,
}

fn bump(c: &kvm_kstat::named::KstatNamed) {
    c.inc();
}

/// Queue the emulator's exception (`kvm_queue_exception[_e]`,
/// `kvm_inject_page_fault`).
pub(super) fn queue_exception(vcpu: &mut VmxVcpu, e: Exception) {
    let (vector, ec) = match e {
        Exception::DivideError => (0, None),
        Exception::Debug => (1, None),
        Exception::Breakpoint => (3, None),
        Exception::InvalidOpcode => (6, None),
        Exception::DeviceNotAvailable => (7, None),
        Exception::FloatingPoint => (16, None),
        Exception::InvalidTss(ec) => (10, Some(u32::from(ec))),
        Exception::SegmentNotPresent(ec) => (11, Some(u32::from(ec))),
        Exception::StackFault(ec) => (12, Some(u32::from(ec))),
        Exception::GeneralProtection(ec) => (13, Some(u32::from(ec))),
        Exception::PageFault { addr, error_code } => {
            vcpu.regs.cr2 = addr;
            (14, Some(error_code))
        }
        Exception::AlignmentCheck => (17, Some(0)),
    };
    vcpu.events.queue_exception(vector, ec);
}

/// The VMX crate's probes, fired as the C driver's SDT probes (`kvm-vexit`,
/// `kvm-vrun`, `kvm-cr*`, `kvm-msr-*`, `kvm-pio`, `kvm-vmx-*`, ...); in a
/// build without the `kernel` feature they cost nothing.
impl<S: Services, H: VmxHost> ProbeSink for RunCtx<'_, S, H> {
    fn probe(&mut self, p: Probe) {
        use kvm_kstat::sdt;
        let u = |v: u64| v as usize;
        match p {
            Probe::Vexit { rip, exit_reason } => sdt::vexit(u(rip), exit_reason as usize),
            Probe::Vrun { rip } => sdt::vrun(u(rip)),
            Probe::VmLaunch => sdt::vmx_vmlaunch(0),
            Probe::VmResume => sdt::vmx_vmresume(0),
            Probe::Cr { cr, gpr, access } => {
                sdt::cr(usize::from(cr), usize::from(gpr), usize::from(access))
            }
            Probe::CrWrite { cr, value } => sdt::cr_write(usize::from(cr), u(value)),
            Probe::CrRead { cr, value } => sdt::cr_read(usize::from(cr), u(value)),
            Probe::MsrRead { msr, data } => sdt::msr_read(msr as usize, u(data)),
            Probe::MsrReadEx { msr } => sdt::msr_read_ex(msr as usize),
            Probe::MsrWrite { msr, data } => sdt::msr_write(msr as usize, u(data)),
            Probe::MsrWriteEx { msr, data } => sdt::msr_write_ex(msr as usize, u(data)),
            Probe::InjVirq { irq } => sdt::inj_virq(usize::from(irq)),
            Probe::PageFault { addr, code } => sdt::page_fault(u(addr), u(code)),
            Probe::Hypercall { nr, args } => {
                let [a0, a1, a2, a3] = args;
                sdt::hypercall(u(nr), u(a0), u(a1), u(a2), u(a3))
            }
            Probe::HvHypercall {
                code,
                fast,
                rep_cnt,
                rep_idx,
                ingpa,
                outgpa,
            } => sdt::hv_hypercall(
                usize::from(code),
                usize::from(fast),
                usize::from(rep_cnt),
                usize::from(rep_idx),
                u(ingpa),
                u(outgpa),
            ),
            Probe::Pio {
                out,
                port,
                size,
                count,
            } => sdt::pio(
                usize::from(out),
                usize::from(port),
                usize::from(size),
                u(count),
            ),
            Probe::VmxVmread { field, value } => sdt::vmx_vmread(field as usize, u(value)),
            Probe::VmxVmwrite { field, value, err } => {
                sdt::vmx_vmwrite(field as usize, u(value), usize::from(err))
            }
            Probe::VmxVmptrld { pa } => sdt::vmx_vmptrld(u(pa)),
            Probe::VmxVmclear { pa } => sdt::vmx_vmclear(u(pa)),
            Probe::VmxInvept { eptp, gpa } => sdt::vmx_invept(u(eptp), u(gpa)),
            Probe::VmxInvvpid { vpid, gva } => sdt::vmx_invvpid(usize::from(vpid), u(gva)),
            Probe::VcpuRun { line, r } => {
                let arg = match r {
                    Some(r) => r as isize as usize,
                    None => self.core as *const VcpuCore<S> as usize,
                };
                sdt::vcpu_run(c"vmx/src/run.rs", line, arg)
            }
        }
    }
}

impl<S: Services, H: VmxHost> InterruptSource for RunCtx<'_, S, H> {
    /// `kvm_cpu_has_interrupt`: the LAPIC, else the PIC's ExtINT when the
    /// LAPIC accepts it.
    fn has_interrupt(&mut self) -> bool {
        if !self.in_kernel() {
            return false;
        }
        let mut d = self.core.shared().devices().lock();
        let pic = d.irqchip.as_ref().is_some_and(|c| c.pic.output());
        match d.lapic(self.core.index()) {
            Some(l) => l.has_interrupt().is_some() || (pic && l.accept_pic_intr()),
            None => pic,
        }
    }

    /// `kvm_cpu_get_interrupt`.
    fn get_interrupt(&mut self) -> Option<u8> {
        if !self.in_kernel() {
            return None;
        }
        let index = self.core.index();
        let mut d = self.core.shared().devices().lock();
        let pic = d.irqchip.as_ref().is_some_and(|c| c.pic.output());
        let (vector, accept_pic) = match d.lapic(index) {
            Some(l) => (l.get_interrupt(), l.accept_pic_intr()),
            None => (None, true),
        };
        if vector.is_some() {
            return vector;
        }
        if pic && accept_pic {
            let v = d.irqchip.as_mut().map(|c| c.pic.read_irq());
            d.process_pic_acks();
            return v;
        }
        None
    }
}

impl<S: Services, H: VmxHost> ExitEnv for RunCtx<'_, S, H> {
    /// `kvm_emulate_cpuid` from the VCPU's table, with the bits that follow
    /// the VCPU's state (`kvm_update_cpuid_runtime`): CPUID.1:EDX.APIC
    /// reads as IA32_APIC_BASE.EN (SDM vol. 3 §11.4.3: a disabled APIC
    /// is absent from CPUID).
    fn cpuid(&mut self, function: u32, index: u32) -> Option<CpuidResult> {
        const EDX_APIC: u32 = 1 << 9;
        let mut r = super::cpuid_lookup(self.core, function, index)?;
        if function == 1 && r.edx & EDX_APIC != 0 && self.lapic(|l| l.hw_enabled()) == Some(false) {
            r.edx &= !EDX_APIC;
        }
        Some(r)
    }

    fn get_msr(&mut self, vcpu: &mut VmxVcpu, msr: u32) -> Result<u64, Fault> {
        if (X2APIC_MSR_FIRST..=X2APIC_MSR_LAST).contains(&msr) {
            // `kvm_x2apic_msr_read`: the LAPIC decides (#GP in xAPIC mode).
            let index = self.core.index();
            let r = self
                .core
                .shared()
                .devices()
                .lock()
                .x2apic_msr_read(index, msr);
            return match r {
                Some(Ok(v)) => Ok(v),
                _ => Err(Fault::Gp(0)),
            };
        }
        let apic_base = self.apic_base();
        self.st.msrs.get(self.core, vcpu, msr, apic_base)
    }

    fn set_msr(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        msr: u32,
        data: u64,
    ) -> Result<(), Fault> {
        if (X2APIC_MSR_FIRST..=X2APIC_MSR_LAST).contains(&msr) {
            let index = self.core.index();
            let r = self
                .core
                .shared()
                .devices()
                .lock()
                .x2apic_msr_write(index, msr, data);
            return match r {
                Some(Ok(())) => Ok(()),
                _ => Err(Fault::Gp(0)),
            };
        }
        match msr {
            MSR_KVM_SYSTEM_TIME | MSR_KVM_SYSTEM_TIME_NEW => {
                // `kvm_set_msr_common` + the forced
                // `kvm_request_guest_time_update`.
                if self.st.msrs.kvmclock.set_msr(data, self.host.now_ns()) {
                    vcpu.requests.set(Request::KvmclockUpdate);
                }
                return Ok(());
            }
            MSR_KVM_WALL_CLOCK | MSR_KVM_WALL_CLOCK_NEW => {
                let shared = self.core.shared();
                let boot = shared.set_wall_clock_msr(data);
                kvmclock::write_wall_clock(
                    &mut GuestRamOf(shared),
                    data,
                    boot.wall_sec,
                    boot.wall_nsec,
                );
                return Ok(());
            }
            _ => {}
        }
        self.st
            .msrs
            .set(self.core, vcpu, &mut DynVmcs(v), msr, data)
    }

    /// `kvm_set_cr0/3/4/8` with the architectural checks.
    fn set_cr(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        which: ControlRegister,
        value: u64,
    ) -> Result<(), Fault> {
        let mut v = DynVmcs(v);
        match which {
            ControlRegister::Cr0 => {
                // `kvm_set_cr0`: reserved bits, NW without CD, PG without PE.
                const CR0_NW: u64 = 1 << 29;
                const CR0_CD: u64 = 1 << 30;
                if value >> 32 != 0
                    || (value & CR0_NW != 0 && value & CR0_CD == 0)
                    || (value & CR0_PG != 0 && value & CR0_PE == 0)
                {
                    return Err(Fault::Gp(0));
                }
                let cr4 = cr::guest_cr4(&v, vcpu.config.ept());
                if value & CR0_PG != 0 && vcpu.efer & (1 << 8) != 0 && cr4 & CR4_PAE == 0 {
                    return Err(Fault::Gp(0));
                }
                let tss = self.core.shared().arch().tss_addr.unwrap_or(0);
                let fx = cr::set_cr0(vcpu, &mut v, value, tss);
                if fx.entered_rmode {
                    let _ = self.core.shared().init_rmode_tss();
                    let _ = self.core.shared().init_rmode_identity_map();
                }
                if fx.paging_changed || fx.entered_rmode {
                    // `kvm_mmu_reset_context` → `vmx_set_cr3(vcpu->arch.cr3)`:
                    // GUEST_CR3 is the identity map only while the guest
                    // does not page; now it must be the guest's own again
                    // (or the identity map again). Found by the Bochs harness.
                    self.reload_cr3(vcpu, &mut v);
                }
                Ok(())
            }
            ControlRegister::Cr3 => {
                vcpu.cr3 = value;
                self.reload_cr3(vcpu, &mut v);
                Ok(())
            }
            ControlRegister::Cr4 => {
                // Reserved bits, and VMXE (no nested VMX).
                if value & !0x003f_57ff != 0 {
                    return Err(Fault::Gp(0));
                }
                // Bits of features the guest's CPUID does not offer are
                // reserved for it (SDM vol. 3 §2.5; Linux's
                // `kvm_is_valid_cr4`): kvm-unit-tests' pcid-*, xsave, la57.
                if value & !cr4_allowed_by_cpuid(self.core) != 0 {
                    return Err(Fault::Gp(0));
                }
                let old = cr::guest_cr4(&v, vcpu.config.ept());
                cr::set_cr4(vcpu, &mut v, value);
                if (old ^ value) & (CR4_PAE | CR4_PSE | CR4_PGE) != 0 {
                    // A paging-mode change (`kvm_mmu_reset_context`).
                    self.reload_cr3(vcpu, &mut v);
                }
                Ok(())
            }
            ControlRegister::Cr8 => {
                if value & !0xf != 0 {
                    return Err(Fault::Gp(0));
                }
                if self.lapic(|l| l.set_cr8(value)).is_none() {
                    self.st.msrs.cr8 = value;
                }
                Ok(())
            }
        }
    }

    fn cr8(&mut self) -> u64 {
        self.lapic(|l| l.cr8()).unwrap_or(self.st.msrs.cr8)
    }

    fn lmsw(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs, value: u16) {
        let cr0 = v.read(control::CR0_READ_SHADOW);
        let new = (cr0 & !0x0e) | u64::from(value & 0x0f);
        let _ = self.set_cr(vcpu, v, ControlRegister::Cr0, new);
    }

    /// `kernel_pio`: the PIC pair, ELCR, PIT and speaker port.
    fn pio(&mut self, direction: IoDirection, port: u16, data: &mut [u8]) -> bool {
        kernel_pio(
            self.core.shared(),
            direction == IoDirection::Out,
            port,
            data,
        )
    }

    fn pio_page(&mut self) -> &mut [u8] {
        self.pio
    }

    fn emulate(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        _reason: EmulationReason,
    ) -> Emulation {
        self.run_emulator(vcpu, v)
    }

    /// `kvm_mmu_page_fault` under EPT (`tdp_page_fault`).
    fn page_fault(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        gpa: u64,
        error_code: u32,
    ) -> Emulation {
        let write = error_code & 2 != 0;
        let fetch = error_code & 0x10 != 0;
        let access = EptViolation {
            read: !write && !fetch,
            write,
            fetch,
        };
        let shared = self.core.shared().clone();
        let r = {
            let mut mmu = shared.mmu().lock();
            let r = mmu.handle_ept_violation(gpa, access);
            // `lpages`, `ept-table-pages`, `remote-tlb-flush` stay current.
            shared.sync_stats(&mmu);
            r
        };
        match r {
            Ok(FaultOutcome::Mapped { invept, .. }) => {
                bump(&self.core.stats().pf_fixed);
                if invept == kvm_mmu::ept::Invept::Needed {
                    let eptp = construct_eptp(vcpu.ept_root);
                    self.host.invept_all_cpus(InveptType::SingleContext, eptp);
                    shared.mmu().lock().invept_done();
                }
                Emulation::Done
            }
            Ok(_) => {
                // `emulate_instruction` from `kvm_mmu_page_fault` (kvm-vmx
                // counts only the string-I/O emulations itself).
                bump(&self.core.stats().insn_emulation);
                self.run_emulator(vcpu, v)
            }
            Err(_) => Emulation::Failed,
        }
    }

    fn invlpg(&mut self, _gva: u64) {
        bump(&self.core.stats().invlpg);
    }

    fn task_switch(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        request: TaskSwitchRequest,
    ) -> TaskSwitchOutcome {
        self.run_task_switch(vcpu, v, request)
    }

    fn irqchip_in_kernel(&self) -> bool {
        self.in_kernel()
    }

    /// `kvm_hv_hypercall_enabled`: the guest enabled the Hyper-V hypercall
    /// page (HV_X64_MSR_HYPERCALL).
    fn hyperv_hypercalls(&self) -> bool {
        self.core.shared().hv_hypercall_enabled()
    }

    fn host_wants_cpu(&self) -> bool {
        self.host.host_wants_cpu()
    }

    fn load_host_state(&mut self, vcpu: &mut VmxVcpu) {
        let mut cpu = self.host.host_cpu();
        let gs = self.host.host_cpu_state().gs_base;
        if vcpu.host_switch.load(&mut cpu, gs, true) {
            vcpu.stats.host_state_reload = vcpu.stats.host_state_reload.wrapping_add(1);
        }
    }

    fn host_tsc(&self) -> u64 {
        self.host.host_tsc()
    }

    fn tsc_tick_delta(&self) -> u64 {
        self.host.host_cpu_state().tsc_tick_delta
    }

    fn on_spin(&mut self) {
        self.host.vcpu_on_spin();
    }
}

impl<S: Services, H: VmxHost> GuestEntry for RunCtx<'_, S, H> {
    fn enter(&mut self, regs: &mut kvm_vmx::vcpu::GuestRegs, launched: bool) -> EntryResult {
        self.host.enter(&mut self.st.vmcs, regs, launched)
    }
}

impl<S: Services, H: VmxHost> RunEnv for RunCtx<'_, S, H> {
    /// `kvm-vm-entry` (VCPU id) and `kvm-guest-entry` (the VCPU), with the
    /// VMCS current and interrupts off, as `vcpu_enter_guest` and
    /// `kvm_guest_enter` fired them.
    fn guest_enter(&mut self) {
        kvm_kstat::sdt::vm_entry(self.core.id() as usize);
        kvm_kstat::sdt::guest_entry(self.core as *const VcpuCore<S> as usize);
    }
    /// `set_debugreg` of `vcpu_enter_guest`: the guest's breakpoints.
    fn load_debug_regs(&mut self, db: &[u64; 4]) {
        self.host.load_debug_regs(db);
    }
    /// `kvm-guest-exit`: back from the guest, VMCS still current.
    fn guest_exit(&mut self) {
        kvm_kstat::sdt::guest_exit(self.core as *const VcpuCore<S> as usize);
    }
    fn preempt_disable(&mut self) {
        self.host.preempt_disable();
    }
    fn preempt_enable(&mut self) {
        self.host.preempt_enable();
    }
    fn interrupts_disable(&mut self) {
        self.host.interrupts_disable();
    }
    fn interrupts_enable(&mut self) {
        self.host.interrupts_enable();
    }
    fn signal_pending(&mut self) -> bool {
        self.host.signal_pending()
    }

    /// `kvm_vcpu_block`: until an interrupt, a timer, a kick or a signal.
    fn block(&mut self, vcpu: &VmxVcpu) {
        let vm = self.core.shared().id();
        let index = self.core.index();
        let host = self.host;
        let mut woke = false;
        {
            let core = &*self.core;
            let mut wake = || {
                let mut d = core.shared().devices().lock();
                d.poll_timers(index);
                let pit = d.pit.as_ref().is_some_and(|p| p.pit.has_pending_timer());
                let pic = d.irqchip.as_ref().is_some_and(|c| c.pic.output());
                let lapic = d.lapic(index).is_some_and(|l| {
                    l.has_interrupt().is_some() || (pic && l.accept_pic_intr()) || l.nmi_pending()
                });
                woke = lapic || pit || vcpu.events.nmi_pending;
                woke
            };
            host.block(vm, index, &mut wake);
        }
        if woke || vcpu.requests.test(Request::PendingTimer) {
            vcpu.requests.set(Request::Unhalt);
            bump(&self.core.stats().halt_wakeup);
        }
    }

    fn smt_mark_as_vcpu(&mut self) {
        self.host.smt_mark_as_vcpu();
    }
    fn smt_acquire(&mut self) -> SmtAcquire {
        self.host.smt_acquire()
    }
    fn smt_release(&mut self) {
        self.host.smt_release();
    }
    fn migrate(&mut self) {
        self.host.migrate();
    }

    fn mmu_unload(&mut self, vcpu: &mut VmxVcpu) {
        vcpu.ept_root = 0;
    }

    /// `kvm_mmu_reload`: the EPT root into EPTP (the MMU builds its root
    /// with the VM).
    fn mmu_reload(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs) -> Result<(), i32> {
        let root = self.core.shared().mmu().lock().eptp() & !0xfff;
        if root == 0 {
            return Err(kvm_ioctl::Errno::ENOMEM.code());
        }
        if vcpu.ept_root != root {
            vcpu.ept_root = root;
            v.write(control::EPTP_FULL, construct_eptp(root));
        }
        Ok(())
    }

    fn mmu_sync_roots(&mut self, _vcpu: &mut VmxVcpu) {}

    /// `kvm_write_guest_time` (KVM_REQ_KVMCLOCK_UPDATE).
    fn kvmclock_update(&mut self, vcpu: &mut VmxVcpu) {
        let params = self.host.clock_params();
        let shared = self.core.shared();
        let boot = shared.arch().kvmclock_boot.hrtime;
        self.st
            .msrs
            .kvmclock
            .write_time(&mut GuestRamOf(shared), &params, vcpu.tsc_offset, boot);
    }

    /// `vmx_save_host_state` plus, when the VCPU thread moved, the per-CPU
    /// host fields of `vmx_vcpu_load`.
    fn prepare_guest_switch(&mut self, vcpu: &mut VmxVcpu) {
        let host = self.host;
        let where_ = host.loaded(&mut self.st.vmcs);
        // A VMCLEAR keeps every field (it writes the VMCS back to memory and
        // resets the launch state): on the same CPU only VMLAUNCH is due.
        // A new CPU also needs its per-CPU host fields and a TLB flush
        // (`vmx_vcpu_load` when `vcpu->cpu != cpu`).
        vcpu.launched = vcpu.launched && !where_.cleared;
        if vcpu.last_cpu != Some(where_.cpu) {
            let cpu_state = host.host_cpu_state();
            // The CPU-neutral offset: the VMCS's holds the last CPU's
            // tick delta, which `load_host_cpu_state` replaces.
            load_host_cpu_state(&mut self.st.vmcs, &cpu_state, vcpu.tsc_offset);
            flush_tlb(&mut self.st.vmcs, vcpu);
            vcpu.last_cpu = Some(where_.cpu);
        }
        let mut cpu = host.host_cpu();
        let long_mode = true;
        let mut result = (None, false);
        // Borrows, not a copy of `guest_msrs`: this runs before every entry.
        let (switch, msrs) = (&mut vcpu.host_switch, &vcpu.guest_msrs);
        host.with_shared_msrs(&mut |shared| {
            result = switch.save(&mut cpu, shared, msrs, long_mode);
        });
        if let Some(sel) = result.0 {
            let v = &mut self.st.vmcs;
            v.write(x86::vmx::vmcs::host::FS_SELECTOR, u64::from(sel.fs));
            v.write(x86::vmx::vmcs::host::GS_SELECTOR, u64::from(sel.gs));
            v.write(x86::vmx::vmcs::host::FS_BASE, sel.fs_base);
            v.write(x86::vmx::vmcs::host::GS_BASE, sel.gs_base);
        }
        if result.1 {
            host.register_user_return();
        }
    }

    fn load_guest_fpu(&mut self) {
        if !self.st.fpu_loaded {
            self.host.fpu_start_guest(&mut self.st.fpu);
            self.st.fpu_loaded = true;
            bump(&self.core.stats().fpu_reload);
            // `kvm_load_guest_fpu`'s probe.
            kvm_kstat::sdt::fpu(1);
        }
    }

    fn host_cr0(&self) -> u64 {
        self.host.host_cr0()
    }

    /// `kvm_lapic_enabled`; also takes this entry's [`ApicSnapshot`].
    fn lapic_enabled(&mut self) -> bool {
        self.apic = self.lapic(|l| ApicSnapshot {
            enabled: l.enabled(),
            tpr: l.read(APIC_TASKPRI as u32),
            irr_class: l.has_interrupt().map(|v| v >> 4),
        });
        self.apic.is_some_and(|a| a.enabled)
    }
    /// `kvm_lapic_get_cr8`.
    fn lapic_tpr_class(&mut self) -> u8 {
        match self.apic {
            Some(a) => ((a.tpr & 0xf0) >> 4) as u8,
            None => self.lapic(|l| l.cr8() as u8).unwrap_or(0),
        }
    }
    fn lapic_highest_irr_class(&mut self) -> Option<u8> {
        match self.apic {
            Some(a) => a.irr_class,
            None => self.lapic(|l| l.has_interrupt().map(|v| v >> 4)).flatten(),
        }
    }

    /// `kvm_lapic_sync_to_vapic` (here: the LAPIC's TPR into the
    /// virtual-APIC page the TPR shadow reads).
    fn sync_to_vapic(&mut self) {
        let tpr = match self.apic.take() {
            Some(a) => a.tpr,
            None => match self.lapic(|l| l.read(APIC_TASKPRI as u32)) {
                Some(t) => t,
                None => return,
            },
        };
        let page = self.st.virtual_apic.page_mut();
        if let Some(d) = page.get_mut(APIC_TASKPRI..APIC_TASKPRI + 4) {
            d.copy_from_slice(&tpr.to_le_bytes());
        }
        self.st.vapic_tpr = tpr;
    }

    /// `kvm_lapic_sync_from_vapic`: a TPR the guest wrote through CR8
    /// without an exit goes back to the LAPIC. The page still holding what
    /// the entry path wrote means no change: no LAPIC access.
    fn sync_from_vapic(&mut self) {
        self.apic = None;
        if !self.core.has_lapic() {
            return;
        }
        let mut b = [0u8; 4];
        if let Some(s) = self
            .st
            .virtual_apic
            .page()
            .get(APIC_TASKPRI..APIC_TASKPRI + 4)
        {
            b.copy_from_slice(s);
        }
        let tpr = u32::from_le_bytes(b) & 0xff;
        if tpr == self.st.vapic_tpr {
            return;
        }
        self.st.vapic_tpr = tpr;
        let _ = self.lapic(|l| {
            if l.read(APIC_TASKPRI as u32) != tpr {
                let _ = l.write(APIC_TASKPRI as u32, tpr);
            }
        });
    }

    fn host_nmi(&mut self) {
        self.host.host_nmi();
    }

    fn has_pending_timer(&mut self) -> bool {
        let index = self.core.index();
        let mut d = self.core.shared().devices().lock();
        d.poll_timers(index);
        d.pit.as_ref().is_some_and(|p| p.pit.has_pending_timer())
    }

    fn inject_pending_timer_irqs(&mut self) {
        let mut d = self.core.shared().devices().lock();
        d.inject_pit_timer_irqs();
    }

    /// `kvm_lapic_reset` + `kvm_arch_vcpu_reset` for an AP that got its
    /// SIPI: the VMCS guest state at the SIPI vector, GPRs cleared.
    fn reset_vcpu(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs) -> Result<(), i32> {
        let sipi = self
            .lapic(|l| match l.mp_state() {
                kvm_devices::lapic::MpState::SipiReceived(v) => v,
                _ => 0,
            })
            .unwrap_or(vcpu.sipi_vector);
        vcpu.sipi_vector = sipi;
        // `kvm_lapic_reset` (kvm_x86.c `__vcpu_run`): the AP starts with a
        // power-up LAPIC, whatever the guest left in it before INIT.
        let _ = self.lapic(|l| l.reset());
        let layout = kvm_vmx::setup::VcpuLayout {
            is_bsp: false,
            sipi_vector: sipi,
            ept_root: vcpu.ept_root,
            ..self.st.layout
        };
        let mut dv = DynVmcs(v);
        kvm_vmx::setup::reset_guest_state(&mut dv, &vcpu.config, &layout);
        vcpu.regs = kvm_vmx::vcpu::GuestRegs::default();
        vcpu.events = kvm_vmx::inject::EventQueue::default();
        vcpu.cr3 = 0;
        vcpu.efer = 0;
        kvm_vmx::state::setup_msrs(vcpu);
        Ok(())
    }

    fn complete_mmio_read(&mut self, data: &[u8; 8]) {
        if let Some(mut a) = self.st.mmio_pending.take() {
            a.data = *data;
            super::emul::keep_answer(&mut self.st.mmio_answers, a);
        }
    }

    /// `complete_pio` of a string I/O: an INS element's data waits for the
    /// re-executed instruction (the guest's RIP is still on it); OUTS data
    /// was consumed.
    fn complete_string_pio(&mut self, _vcpu: &mut VmxVcpu, _v: &mut dyn Vmcs) {
        if let Some((port, size)) = self.st.pio_in_asked.take() {
            let mut data = [0u8; 4];
            let n = usize::from(size.min(4));
            if let (Some(d), Some(s)) = (data.get_mut(..n), self.pio.get(..n)) {
                d.copy_from_slice(s);
            }
            self.st.pio_in_answer = Some((port, size, data));
        }
    }

    fn apic_base(&mut self) -> u64 {
        self.lapic(|l| l.apic_base())
            .unwrap_or(self.st.msrs.apic_base)
    }

    fn now_ns(&self) -> u64 {
        self.host.now_ns()
    }

    fn preemption_timer(&mut self) -> Option<u32> {
        self.host.preemption_timer()
    }

    fn take_nmi(&mut self) -> bool {
        self.lapic(|l| l.take_nmi()).unwrap_or(false)
    }

    fn deliver_kicks(&mut self) {
        let shared = self.core.shared();
        let vcpus = {
            let mut d = shared.devices().lock();
            if !d.take_kicks() {
                return;
            }
            d.lapic_of.len()
        };
        let me = self.core.index();
        for i in (0..vcpus as u32).filter(|i| *i != me) {
            self.host.kick(shared.id(), i);
        }
    }
}

/// Record the MMIO read going to user space so its answer can complete the
/// instruction (`vcpu->mmio_phys_addr`, `mmio_size`).
pub fn remember_mmio_read<H: VmxHost>(st: &mut EnvState<H>, m: &MmioExit) {
    if !m.is_write {
        st.mmio_pending = Some(MmioAnswer {
            gpa: m.phys_addr,
            len: m.len,
            data: [0; 8],
        });
    }
}
