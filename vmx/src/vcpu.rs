//! The VMX half of a VCPU: guest registers the VMCS does not hold, the
//! event queue, pending I/O, debug registers, counters and what goes back
//! to userspace in `kvm_run`. Port of the `vcpu_vmx`/`kvm_vcpu_arch` fields
//! the exit handlers and the run loop use (kvm_vmx.c, kvm_x86host.h).
//!
//! The driver keeps one per VCPU inside its (heap-allocated) VCPU; nothing
//! here is large.

use x86::vmx::vmcs::guest;

use crate::caps::VmcsConfig;
use crate::inject::EventQueue;
use crate::qualification::{Gpr, IoDirection};
use crate::vmcs::Vmcs;

/// Guest GPRs and CR2 as the trampoline saves and loads them. The RSP slot
/// is unused (guest RSP lives in the VMCS). `#[repr(C)]`: `entry` addresses
/// the fields by offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GuestRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    /// Not used: guest RSP is in the VMCS.
    pub rsp_unused: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub cr2: u64,
}

impl GuestRegs {
    /// The register `r` (RSP: the VMCS field).
    pub fn get(&self, v: &impl Vmcs, r: Gpr) -> u64 {
        match r {
            Gpr::Rax => self.rax,
            Gpr::Rcx => self.rcx,
            Gpr::Rdx => self.rdx,
            Gpr::Rbx => self.rbx,
            Gpr::Rsp => v.read(guest::RSP),
            Gpr::Rbp => self.rbp,
            Gpr::Rsi => self.rsi,
            Gpr::Rdi => self.rdi,
            Gpr::R8 => self.r8,
            Gpr::R9 => self.r9,
            Gpr::R10 => self.r10,
            Gpr::R11 => self.r11,
            Gpr::R12 => self.r12,
            Gpr::R13 => self.r13,
            Gpr::R14 => self.r14,
            Gpr::R15 => self.r15,
        }
    }

    /// Set register `r`.
    pub fn set(&mut self, v: &mut impl Vmcs, r: Gpr, value: u64) {
        let slot = match r {
            Gpr::Rax => &mut self.rax,
            Gpr::Rcx => &mut self.rcx,
            Gpr::Rdx => &mut self.rdx,
            Gpr::Rbx => &mut self.rbx,
            Gpr::Rsp => {
                v.write(guest::RSP, value);
                return;
            }
            Gpr::Rbp => &mut self.rbp,
            Gpr::Rsi => &mut self.rsi,
            Gpr::Rdi => &mut self.rdi,
            Gpr::R8 => &mut self.r8,
            Gpr::R9 => &mut self.r9,
            Gpr::R10 => &mut self.r10,
            Gpr::R11 => &mut self.r11,
            Gpr::R12 => &mut self.r12,
            Gpr::R13 => &mut self.r13,
            Gpr::R14 => &mut self.r14,
            Gpr::R15 => &mut self.r15,
        };
        *slot = value;
    }
}

/// The per-VCPU counters the exit path bumps; names are the kstat names
/// of inventory §3.2 (`kvm_vcpu_stats_t`). The driver copies them into its
/// kstat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// `exits`
    pub exits: u64,
    /// `halt-exits`
    pub halt_exits: u64,
    /// `io-exits`
    pub io_exits: u64,
    /// `mmio-exits`
    pub mmio_exits: u64,
    /// `irq-exits`
    pub irq_exits: u64,
    /// `irq-window-exits`
    pub irq_window_exits: u64,
    /// `nmi-window-exits`
    pub nmi_window_exits: u64,
    /// `irq-injections`
    pub irq_injections: u64,
    /// `nmi-injections`
    pub nmi_injections: u64,
    /// `hypercalls`
    pub hypercalls: u64,
    /// `signal-exits`
    pub signal_exits: u64,
    /// `insn-emulation`
    pub insn_emulation: u64,
    /// `inst-emulation-fail`
    pub insn_emulation_fail: u64,
    /// `host-state-reload`
    pub host_state_reload: u64,
    /// `request-irq-exits`: KVM_RUN ended because user space asked for
    /// an interrupt window and it is open (the C counted these as
    /// `irq-exits` and never moved this one).
    pub request_irq_exits: u64,
}

impl VcpuStats {
    /// The kstat names of the counters, in [`VcpuStats::values`] order.
    pub const NAMES: [&'static str; 15] = [
        "exits",
        "halt-exits",
        "io-exits",
        "mmio-exits",
        "irq-exits",
        "irq-window-exits",
        "nmi-window-exits",
        "irq-injections",
        "nmi-injections",
        "hypercalls",
        "signal-exits",
        "insn-emulation",
        "inst-emulation-fail",
        "host-state-reload",
        "request-irq-exits",
    ];

    /// Every counter, in [`VcpuStats::NAMES`] order (what the driver adds
    /// to the VCPU's kstat after each `KVM_RUN`: plain numbers, no copy of
    /// names on that path).
    pub fn values(&self) -> [u64; 15] {
        [
            self.exits,
            self.halt_exits,
            self.io_exits,
            self.mmio_exits,
            self.irq_exits,
            self.irq_window_exits,
            self.nmi_window_exits,
            self.irq_injections,
            self.nmi_injections,
            self.hypercalls,
            self.signal_exits,
            self.insn_emulation,
            self.insn_emulation_fail,
            self.host_state_reload,
            self.request_irq_exits,
        ]
    }

    /// `(kstat name, value)` for every counter.
    pub fn named(&self) -> [(&'static str, u64); 15] {
        let v = self.values();
        core::array::from_fn(|i| {
            (
                Self::NAMES.get(i).copied().unwrap_or(""),
                v.get(i).copied().unwrap_or(0),
            )
        })
    }
}

/// `KVM_EXIT_*` numbers of the ABI (kvm.h).
pub mod kvm_exit {
    pub const UNKNOWN: u32 = 0;
    pub const EXCEPTION: u32 = 1;
    pub const IO: u32 = 2;
    pub const HYPERCALL: u32 = 3;
    pub const DEBUG: u32 = 4;
    pub const HLT: u32 = 5;
    pub const MMIO: u32 = 6;
    pub const IRQ_WINDOW_OPEN: u32 = 7;
    pub const SHUTDOWN: u32 = 8;
    pub const FAIL_ENTRY: u32 = 9;
    pub const INTR: u32 = 10;
    pub const SET_TPR: u32 = 11;
    pub const TPR_ACCESS: u32 = 12;
    pub const INTERNAL_ERROR: u32 = 17;
    /// `KVM_INTERNAL_ERROR_EMULATION`.
    pub const INTERNAL_ERROR_EMULATION: u32 = 1;
    /// `KVM_INTERNAL_ERROR_SIMUL_EX`.
    pub const INTERNAL_ERROR_SIMUL_EX: u32 = 2;
}

/// `kvm_run.mmio`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmioExit {
    pub phys_addr: u64,
    pub data: [u8; 8],
    pub len: u32,
    pub is_write: bool,
}

/// `kvm_run.debug.arch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugExit {
    pub exception: u32,
    pub pc: u64,
    pub dr6: u64,
    pub dr7: u64,
}

/// What a VCPU hands userspace: the exit reason and its union member of
/// `kvm_run` (Linux/illumos ABI). The ioctl crate converts it into its
/// `kvm_run` when the driver is assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserExit {
    /// `KVM_EXIT_UNKNOWN` with `hw.hardware_exit_reason`.
    Unknown { hardware_exit_reason: u64 },
    /// `KVM_EXIT_EXCEPTION` (`ex`).
    Exception { exception: u32, error_code: u32 },
    /// `KVM_EXIT_IO` (`io`): data at `data_offset` in the mmap'd run area.
    Io {
        direction: IoDirection,
        size: u8,
        port: u16,
        count: u32,
        data_offset: u64,
    },
    /// `KVM_EXIT_DEBUG`.
    Debug(DebugExit),
    /// `KVM_EXIT_HLT` (no in-kernel irqchip).
    Hlt,
    /// `KVM_EXIT_MMIO`.
    Mmio(MmioExit),
    /// `KVM_EXIT_IRQ_WINDOW_OPEN`.
    IrqWindowOpen,
    /// `KVM_EXIT_SHUTDOWN` (triple fault).
    Shutdown,
    /// `KVM_EXIT_FAIL_ENTRY` with `fail_entry.hardware_entry_failure_reason`.
    FailEntry { hardware_entry_failure_reason: u64 },
    /// `KVM_EXIT_INTR` (signal, host wants the CPU, userspace irq window).
    Intr,
    /// `KVM_EXIT_SET_TPR`.
    SetTpr,
    /// `KVM_EXIT_TPR_ACCESS`.
    TprAccess,
    /// `KVM_EXIT_INTERNAL_ERROR` (`internal`: suberror, ndata ≤ 2 here).
    InternalError {
        suberror: u32,
        ndata: u32,
        data: [u64; 2],
    },
}

impl UserExit {
    /// `kvm_run.exit_reason`.
    pub const fn abi_exit_reason(&self) -> u32 {
        match self {
            UserExit::Unknown { .. } => kvm_exit::UNKNOWN,
            UserExit::Exception { .. } => kvm_exit::EXCEPTION,
            UserExit::Io { .. } => kvm_exit::IO,
            UserExit::Debug(_) => kvm_exit::DEBUG,
            UserExit::Hlt => kvm_exit::HLT,
            UserExit::Mmio(_) => kvm_exit::MMIO,
            UserExit::IrqWindowOpen => kvm_exit::IRQ_WINDOW_OPEN,
            UserExit::Shutdown => kvm_exit::SHUTDOWN,
            UserExit::FailEntry { .. } => kvm_exit::FAIL_ENTRY,
            UserExit::Intr => kvm_exit::INTR,
            UserExit::SetTpr => kvm_exit::SET_TPR,
            UserExit::TprAccess => kvm_exit::TPR_ACCESS,
            UserExit::InternalError { .. } => kvm_exit::INTERNAL_ERROR,
        }
    }
}

/// Page offset of the PIO data page in the VCPU mmap (`KVM_PIO_PAGE_OFFSET`).
pub const KVM_PIO_PAGE_OFFSET: u64 = 1;

/// An I/O instruction waiting for its data (`kvm_pio_request`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PioRequest {
    pub port: u16,
    pub size: u8,
    pub input: bool,
    /// Iterations outstanding (`count`) and in this exit (`cur_count`).
    pub count: u32,
    pub cur_count: u32,
    pub string: bool,
    pub rep: bool,
    pub down: bool,
}

/// `KVM_GUESTDBG_*` flags userspace set with `KVM_SET_GUEST_DEBUG`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestDebug(pub u32);

impl GuestDebug {
    pub const ENABLE: u32 = 1;
    pub const SINGLESTEP: u32 = 2;
    pub const USE_SW_BP: u32 = 0x1_0000;
    pub const USE_HW_BP: u32 = 0x2_0000;
    pub const fn has(self, f: u32) -> bool {
        self.0 & f != 0
    }
}

/// Guest debug registers the VMCS does not hold (DR7 is in the VMCS too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugRegs {
    pub db: [u64; 4],
    pub eff_db: [u64; 4],
    pub dr6: u64,
    pub dr7: u64,
    /// Breakpoints enabled: the run loop loads DR0–3 before entry.
    pub switch_db_regs: bool,
}

impl Default for DebugRegs {
    fn default() -> DebugRegs {
        DebugRegs {
            db: [0; 4],
            eff_db: [0; 4],
            dr6: DR6_FIXED_1,
            dr7: DR7_FIXED_1,
            switch_db_regs: false,
        }
    }
}

/// DR6 bits that read as 1 (SDM vol. 3 §18.2.3).
pub const DR6_FIXED_1: u64 = 0xffff_0ff0;
/// DR6 bits software may change.
pub const DR6_VOLATILE: u64 = 0x0000_e00f;
/// DR6.B0–B3: which breakpoint conditions the last #DB matched (the CPU
/// rewrites them on every #DB).
pub const DR6_TRAP_BITS: u64 = 0xf;
/// DR6.BD: debug-register access detected.
pub const DR6_BD: u64 = 1 << 13;
/// DR7 bit 10 reads as 1.
pub const DR7_FIXED_1: u64 = 0x400;
/// DR7 bits software may change.
pub const DR7_VOLATILE: u64 = 0xffff_23ff;
/// DR7.GD: general detect.
pub const DR7_GD: u64 = 1 << 13;
/// DR7 L0–L3/G0–G3.
pub const DR7_BP_EN_MASK: u64 = 0xff;

/// `KVM_MP_STATE_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u32)]
pub enum MpState {
    #[default]
    Runnable = 0,
    Uninitialized = 1,
    InitReceived = 2,
    Halted = 3,
    SipiReceived = 4,
}

/// The VMX state of one VCPU.
#[derive(Clone, Debug)]
pub struct VmxVcpu {
    /// The controls in force (copied from the module-wide config).
    pub config: VmcsConfig,
    pub regs: GuestRegs,
    /// VMLAUNCH done since the last VMCLEAR: the next entry is VMRESUME.
    pub launched: bool,
    /// The last VM entry failed (VMfail) rather than exited.
    pub fail: bool,
    /// Raw exit-reason field of the last exit.
    pub exit_reason: u32,
    /// IDT-vectoring information of the last exit.
    pub idt_vectoring_info: u32,
    pub events: EventQueue,
    /// Software NMI blocking when the CPU has no virtual NMIs.
    pub soft_vnmi_blocked: bool,
    /// Nanoseconds spent with `soft_vnmi_blocked`.
    pub vnmi_blocked_time: u64,
    /// The guest FPU is loaded (#NM not intercepted, CR0.TS the guest's).
    pub fpu_active: bool,
    pub guest_debug: GuestDebug,
    pub debug: DebugRegs,
    /// Guest CR3 as last seen (`vcpu.arch.cr3`).
    pub cr3: u64,
    /// Guest EFER (`vcpu.arch.efer`), for long-mode checks.
    pub efer: u64,
    pub pio: Option<PioRequest>,
    pub mp_state: MpState,
    pub stats: VcpuStats,
    /// What the last return to userspace reported.
    pub exit: Option<UserExit>,
    /// `kvm_run.request_interrupt_window` as userspace last set it.
    pub request_interrupt_window: bool,
    /// An MMIO read went to userspace; its data completes the instruction
    /// on the next `KVM_RUN` (`vcpu->mmio_needed`).
    pub mmio_read_pending: bool,
    /// Requests from other threads (`vcpu->requests`).
    pub requests: crate::run::Requests,
    /// Vector of the last SIPI (`vcpu->arch.sipi_vector`).
    pub sipi_vector: u8,
    /// Physical address of this VCPU's VMCS region.
    pub vmcs_pa: u64,
    /// CPU the VMCS was last loaded on (`cpu_lastrun`).
    pub last_cpu: Option<u32>,
    /// The VPID from HMA (0: none).
    pub vpid: u16,
    /// PML4 of the VM's EPT (`vcpu->arch.mmu.root_hpa`).
    pub ept_root: u64,
    /// `smt_mark_as_vcpu()` done for the current thread.
    pub smt_marked: bool,
    /// Time of the last entry, for software NMI blocking (ns).
    pub entry_time: u64,
    /// Real mode through vm86 (CPUs without unrestricted guest).
    pub rmode: crate::rmode::RmodeState,
    /// The shared syscall MSRs (`guest_msrs`, `nmsrs`, `save_nmsrs`).
    pub guest_msrs: crate::host::GuestMsrs,
    /// Host selectors, LDT and KERNEL_GS_BASE while the guest's are live.
    pub host_switch: crate::host::HostSwitch,
    /// RDTSCP exposed to the guest (`rdtscp_enabled`): TSC_AUX exists.
    pub rdtscp_enabled: bool,
    /// "Activate VMX-preemption timer" is set in this VMCS's pin-based
    /// controls (see `RunEnv::preemption_timer`).
    pub preemption_timer_on: bool,
    /// The host's IA32_EFER (`host_efer`, read at VCPU creation): the bits
    /// of the guest's EFER that need not switch keep the host's values.
    pub host_efer: u64,
    /// The guest's TSC offset from the CPU-neutral host TSC
    /// (`vcpu->arch.tsc_offset`): the VMCS's TSC_OFFSET is this plus the
    /// current CPU's `tsc_gethrtime_tick_delta` (kvm_vmx.c
    /// `guest_write_tsc`, `vmx_vcpu_load`); kvmclock's `tsc_timestamp` adds
    /// it to the host's CPU-neutral TSC.
    pub tsc_offset: u64,
}

impl VmxVcpu {
    /// A VCPU in the reset state.
    pub fn new(config: VmcsConfig) -> VmxVcpu {
        VmxVcpu {
            config,
            regs: GuestRegs::default(),
            launched: false,
            fail: false,
            exit_reason: 0,
            idt_vectoring_info: 0,
            events: EventQueue::default(),
            soft_vnmi_blocked: false,
            vnmi_blocked_time: 0,
            fpu_active: true,
            guest_debug: GuestDebug::default(),
            debug: DebugRegs::default(),
            cr3: 0,
            efer: 0,
            pio: None,
            mp_state: MpState::Runnable,
            stats: VcpuStats::default(),
            exit: None,
            request_interrupt_window: false,
            mmio_read_pending: false,
            requests: crate::run::Requests::default(),
            sipi_vector: 0,
            vmcs_pa: 0,
            last_cpu: None,
            vpid: 0,
            ept_root: 0,
            smt_marked: false,
            entry_time: 0,
            rmode: crate::rmode::RmodeState::default(),
            guest_msrs: crate::host::GuestMsrs::default(),
            host_switch: crate::host::HostSwitch::default(),
            rdtscp_enabled: false,
            preemption_timer_on: false,
            host_efer: 0,
            tsc_offset: 0,
        }
    }
}
