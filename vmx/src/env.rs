//! What the exit handlers and the run loop need from the rest of the
//! driver, as traits. The driver implements them by calling the MMU
//! (`kvm-mmu`), the emulator (`kvm-x86-emulate`), the devices
//! (`kvm-devices`), the VCPU's CPUID table and the generic MSR/CR code of
//! `kvm_x86.c` (§9.8); tests implement them with fakes. No dependency on
//! those crates here.

use crate::cpu::CpuidResult;
use crate::qualification::{IoDirection, TaskSwitchSource};
use crate::vcpu::{MmioExit, VmxVcpu};
use crate::vmcs::Vmcs;

/// The SDT probes fired from VMX code (inventory §4). The driver turns
/// each into its `__dtrace_probe_kvm__*` call; arguments as in the C
/// driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `kvm-vexit`: guest RIP, raw exit reason.
    Vexit {
        rip: u64,
        exit_reason: u32,
    },
    /// `kvm-vrun`: guest RIP.
    Vrun {
        rip: u64,
    },
    /// `kvm-vmx-vmlaunch` / `kvm-vmx-vmresume`.
    VmLaunch,
    VmResume,
    /// `kvm-cr`: cr, gpr, access type (0 mov-to, 1 mov-from, 2 clts, 3 lmsw).
    Cr {
        cr: u8,
        gpr: u8,
        access: u8,
    },
    /// `kvm-cr-write`, `kvm-cr-read`.
    CrWrite {
        cr: u8,
        value: u64,
    },
    CrRead {
        cr: u8,
        value: u64,
    },
    /// `kvm-msr-read`, `kvm-msr-read-ex` (#GP), `kvm-msr-write`,
    /// `kvm-msr-write-ex`.
    MsrRead {
        msr: u32,
        data: u64,
    },
    MsrReadEx {
        msr: u32,
    },
    MsrWrite {
        msr: u32,
        data: u64,
    },
    MsrWriteEx {
        msr: u32,
        data: u64,
    },
    /// `kvm-inj-virq`.
    InjVirq {
        irq: u8,
    },
    /// `kvm-page-fault`: GPA and exit qualification for EPT violations.
    PageFault {
        addr: u64,
        code: u64,
    },
    /// `kvm-hypercall`: nr, a0–a3.
    Hypercall {
        nr: u64,
        args: [u64; 4],
    },
    /// `kvm-hv-hypercall`: call code, fast flag, rep count, rep start
    /// index (from the hypercall input value), input and output parameter
    /// GPAs (`kvm_hv_hypercall`).
    HvHypercall {
        code: u16,
        fast: bool,
        rep_cnt: u16,
        rep_idx: u16,
        ingpa: u64,
        outgpa: u64,
    },
    /// `kvm-pio`: out, port, size, count.
    Pio {
        out: bool,
        port: u16,
        size: u8,
        count: u64,
    },
    /// `kvm-vmx-vmread`: field, value.
    VmxVmread {
        field: u32,
        value: u64,
    },
    /// `kvm-vmx-vmwrite`: field, value, error (0 ok, 1 VMfailInvalid,
    /// 2 VMfailValid).
    VmxVmwrite {
        field: u32,
        value: u64,
        err: u8,
    },
    /// `kvm-vmx-vmptrld`, `kvm-vmx-vmclear`: VMCS physical address.
    VmxVmptrld {
        pa: u64,
    },
    VmxVmclear {
        pa: u64,
    },
    /// `kvm-vmx-invept`: EPTP, GPA (0: whole context).
    VmxInvept {
        eptp: u64,
        gpa: u64,
    },
    /// `kvm-vmx-invvpid`: VPID, GVA.
    VmxInvvpid {
        vpid: u16,
        gva: u64,
    },
    /// `kvm-vcpu-run`: a decision point of `__vcpu_run`, told apart by
    /// `line` (of vmx/src/run.rs); `r` is the loop's result there, `None`
    /// where the C passed the VCPU instead.
    VcpuRun {
        line: u32,
        r: Option<i32>,
    },
}

/// Where probes go; the default drops them.
pub trait ProbeSink {
    fn probe(&mut self, _p: Probe) {}
}

/// The interrupt controllers' view (`kvm_cpu_has_interrupt`,
/// `kvm_cpu_get_interrupt`: LAPIC first, then the PIC's ExtINT).
pub trait InterruptSource {
    /// An interrupt is deliverable to this VCPU.
    fn has_interrupt(&mut self) -> bool;
    /// Acknowledge and return the highest-priority one.
    fn get_interrupt(&mut self) -> Option<u8>;
}

/// A fault the generic code wants raised in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// #GP(error code).
    Gp(u32),
    /// #UD.
    Ud,
}

/// A control register write the generic code decides (`kvm_set_cr0/3/4/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRegister {
    Cr0,
    Cr3,
    Cr4,
    Cr8,
}

/// The outcome of instruction emulation or of the MMU's fault handler
/// (`emulate_instruction`, `kvm_mmu_page_fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// Done; the guest state is updated (RIP included).
    Done,
    /// An MMIO access userspace must complete (`EMULATE_DO_MMIO`).
    Mmio(MmioExit),
    /// The emulator could not handle the instruction (`EMULATE_FAIL`).
    Failed,
}

/// A task switch the CPU left to the VMM (`kvm_task_switch`'s arguments,
/// with Linux's error code): the new TSS selector and the source from the
/// exit qualification (SDM Vol. 3 Table 28-2), and for a switch through a
/// task gate in the IDT the event it delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSwitchRequest {
    pub selector: u16,
    pub source: TaskSwitchSource,
    /// The error code of the hardware exception that went through the
    /// gate (IDT-vectoring error code): the new task finds it on its
    /// stack.
    pub error_code: Option<u32>,
    /// The gate delivers a hardware exception, an external interrupt or an
    /// NMI: faults of the switch carry the EXT bit.
    pub external: bool,
}

/// How a task switch went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskSwitchOutcome {
    /// The new task runs (an exception raised while loading it may be
    /// queued, to be delivered in its context).
    #[default]
    Switched,
    /// An exception is queued in the old task, which is unchanged.
    Faulted,
    /// It cannot be emulated (a TSS outside guest RAM): userspace gets
    /// an internal error.
    Failed,
}

/// Why the emulator is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulationReason {
    /// INS/OUTS.
    StringIo,
    /// An access to the APIC-access page.
    ApicAccess { offset: u16 },
    /// #UD intercepted: the emulator may know the instruction
    /// (`EMULTYPE_TRAP_UD`, e.g. VMMCALL patched to VMCALL).
    InvalidOpcode,
    /// Re-execute after userspace answered an MMIO read
    /// (`EMULTYPE_NO_DECODE`).
    CompleteMmio,
    /// #GP/#SS with error code 0 in vm86 real mode (e.g. an address-size
    /// prefix; `handle_rmode_exception`).
    RealModeFault,
}

/// Everything an exit handler may ask of the rest of the driver.
pub trait ExitEnv: InterruptSource + ProbeSink {
    /// CPUID leaf `function`/`index` from the VCPU's table (`KVM_SET_CPUID2`);
    /// `None`: all zero (`kvm_emulate_cpuid`).
    fn cpuid(&mut self, function: u32, index: u32) -> Option<CpuidResult>;
    /// RDMSR of an MSR not kept in the VMCS (`kvm_get_msr_common` and the
    /// shared MSRs); `Err` → #GP (the original's default for unknown MSRs).
    fn get_msr(&mut self, vcpu: &mut VmxVcpu, msr: u32) -> Result<u64, Fault>;
    /// WRMSR likewise.
    fn set_msr(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        msr: u32,
        data: u64,
    ) -> Result<(), Fault>;
    /// MOV to CR0/3/4/8 with the architectural checks; updates the VMCS
    /// through `setup::set_cr0_bits`/`set_cr4_bits` and resets the MMU
    /// context as needed.
    fn set_cr(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        cr: ControlRegister,
        value: u64,
    ) -> Result<(), Fault>;
    /// CR8 (the LAPIC TPR >> 4).
    fn cr8(&mut self) -> u64;
    /// LMSW of the low 4 bits of `value` (`kvm_lmsw`).
    fn lmsw(&mut self, vcpu: &mut VmxVcpu, v: &mut dyn Vmcs, value: u16);
    /// An in-kernel device on the PIO bus took the access (`kernel_pio`);
    /// for IN it filled `data`.
    fn pio(&mut self, direction: IoDirection, port: u16, data: &mut [u8]) -> bool;
    /// The PIO data page shared with userspace (`vcpu->arch.pio_data`).
    fn pio_page(&mut self) -> &mut [u8];
    /// Run the emulator on the instruction at guest RIP.
    fn emulate(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        reason: EmulationReason,
    ) -> Emulation;
    /// EPT violation at `gpa` (`kvm_mmu_page_fault`): map it, or emulate
    /// the access as MMIO.
    fn page_fault(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        gpa: u64,
        error_code: u32,
    ) -> Emulation;
    /// INVLPG of `gva` (`kvm_mmu_invlpg`).
    fn invlpg(&mut self, gva: u64);
    /// Emulate a task switch (`kvm_task_switch`).
    fn task_switch(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        request: TaskSwitchRequest,
    ) -> TaskSwitchOutcome;
    /// The LAPIC, IOAPIC and PIC live in the kernel (`irqchip_in_kernel`).
    fn irqchip_in_kernel(&self) -> bool;
    /// The Hyper-V hypercall page is enabled (`kvm_hv_hypercall_enabled`).
    fn hyperv_hypercalls(&self) -> bool {
        false
    }
    /// The host scheduler wants this CPU (`CPU->cpu_runrun ||
    /// CPU->cpu_kprunrun`).
    fn host_wants_cpu(&self) -> bool;
    /// `vmx_load_host_state`: put the host's selectors, LDT, TSS and
    /// KERNEL_GS_BASE back now ([`crate::host::HostSwitch::load`] on this
    /// CPU), so the guest's KERNEL_GS_BASE is in `vcpu.host_switch` and the
    /// shared MSRs are re-applied on the next entry.
    fn load_host_state(&mut self, vcpu: &mut VmxVcpu);
    /// Host TSC (for the guest's IA32_TIME_STAMP_COUNTER).
    fn host_tsc(&self) -> u64 {
        0
    }
    /// The guest spins in a PAUSE loop (`kvm_vcpu_on_spin`): a host that
    /// shares its CPU between VCPUs may let another one run. Default:
    /// nothing (the C's `kvm_vcpu_on_spin` was unported).
    fn on_spin(&mut self) {}
    /// This CPU's TSC tick delta (`tsc_gethrtime_tick_delta`): what makes
    /// [`Self::host_tsc`] CPU-neutral. 0 where the TSCs agree.
    fn tsc_tick_delta(&self) -> u64 {
        0
    }
}
