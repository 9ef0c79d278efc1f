//! VM-exit dispatch and the exit handlers: `vmx_handle_exit` and the
//! `kvm_vmx_exit_handlers[]` table of kvm_vmx.c (inventory §9.9), with the
//! generic pieces they call (`kvm_emulate_pio`, `complete_pio`,
//! `kvm_emulate_cpuid`, `kvm_emulate_halt`, `kvm_emulate_hypercall`,
//! `kvm_hv_hypercall` from kvm_x86.c, §9.11). SDM vol. 3 chapter 27 (VM
//! exits), §28.2.1 (exit qualifications), appendix C (reasons).
//!
//! A handler either resumes the guest or fills [`VmxVcpu::exit`] for
//! userspace. Deviations from the C driver, each where hardware semantics
//! demand it: a fault raised by MOV to CR / WRMSR / hypercall leaves RIP on
//! the faulting instruction; `IN EAX` zero-extends into RAX; a failed
//! emulation reports `KVM_EXIT_INTERNAL_ERROR` instead of looping or
//! panicking the host; VM-entry failures (exit reason bit 31) report
//! `KVM_EXIT_FAIL_ENTRY`; non-canonical FS/GS/SYSENTER bases #GP instead of
//! failing the next entry.

use x86::vmx::vmcs::control::{self, EntryControls, PrimaryControls};
use x86::vmx::vmcs::{guest, ro};

use crate::env::{
    ControlRegister, Emulation, EmulationReason, ExitEnv, Fault, Probe, TaskSwitchOutcome,
    TaskSwitchRequest,
};
use crate::exit_reason::{EXIT_REASON_ENTRY_FAILURE, ExitReason, basic};
use crate::host;
use crate::inject::{interrupt_allowed, skip_instruction};
use crate::qualification::{
    ApicAccess, CrAccess, CrAccessType, DrAccess, EptViolation, EventType, InterruptionInfo,
    IoDirection, IoQualification, TaskSwitch, TaskSwitchSource, interruptibility,
};
use crate::rmode;
use crate::setup::{
    AC_VECTOR, BP_VECTOR, CR0_PE, CR0_PG, CR0_TS, CR4_DE, DB_VECTOR, GP_VECTOR, MC_VECTOR,
    NM_VECTOR, PF_VECTOR, UD_VECTOR, exception_bitmap,
};
use crate::vcpu::{
    DR6_BD, DR6_FIXED_1, DR6_TRAP_BITS, DR6_VOLATILE, DR7_BP_EN_MASK, DR7_FIXED_1, DR7_GD,
    DR7_VOLATILE, DebugExit, GuestDebug, KVM_PIO_PAGE_OFFSET, MpState, PioRequest, UserExit,
    VmxVcpu, kvm_exit,
};
use crate::vmcs::Vmcs;

/// What the run loop does after a handler (the C handlers' 1 / 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Re-enter the guest.
    Resume,
    /// Return to userspace with [`VmxVcpu::exit`].
    Userspace,
}

/// RFLAGS.VM.
const RFLAGS_VM: u64 = 1 << 17;
/// Hypercall numbers (kvm_para.h).
pub const KVM_HC_VAPIC_POLL_IRQ: u64 = 1;
pub const KVM_HC_MMU_OP: u64 = 2;
/// Hypercall errors of the KVM paravirt ABI (kvm_para.h): the C driver
/// returned illumos errno values (ENOSYS = 89), which guests do not know.
pub const KVM_ENOSYS: u64 = 1000;
pub const KVM_EPERM: u64 = 1;
/// Hyper-V (hyperv.h): `HvNotifyLongSpinWait`, `HV_STATUS_SUCCESS` and
/// `HV_STATUS_INVALID_HYPERCALL_CODE`.
pub const HV_NOTIFY_LONG_SPIN_WAIT: u16 = 0x0008;
pub const HV_STATUS_SUCCESS: u64 = 0;
pub const HV_STATUS_INVALID_HYPERCALL_CODE: u64 = 2;
/// Port of kvm_vmx.c:`vmx_patch_hypercall`: the hypercall instruction the
/// hypercall page holds, VMCALL (`0F 01 C1`).
pub const VMX_HYPERCALL: [u8; 3] = [0x0f, 0x01, 0xc1];

fn bump(c: &mut u64) {
    *c = c.wrapping_add(1);
}

/// The guest's CR0 as it sees it (the read shadow; CR0 is fully masked).
pub fn guest_cr0(v: &impl Vmcs) -> u64 {
    v.read(control::CR0_READ_SHADOW)
}

/// `vmx_get_cpl`: 0 in real mode, 3 in virtual-8086 mode, else CS.RPL.
pub fn guest_cpl(v: &impl Vmcs) -> u8 {
    if guest_cr0(v) & CR0_PE == 0 {
        0
    } else if v.read(guest::RFLAGS) & RFLAGS_VM != 0 {
        3
    } else {
        (v.read(guest::CS_SELECTOR) & 3) as u8
    }
}

/// `is_long_mode`: IA-32e mode guest (EFER.LMA, mirrored by the entry
/// control `vmx_set_efer` keeps).
pub fn guest_long_mode(v: &impl Vmcs) -> bool {
    v.read32(control::VMENTRY_CONTROLS) & EntryControls::IA32E_MODE_GUEST.bits() != 0
}

/// CS.L (access rights bit 13).
fn guest_cs_l(v: &impl Vmcs) -> bool {
    v.read32(guest::CS_ACCESS_RIGHTS) & (1 << 13) != 0
}

/// Canonical for 48-bit linear addresses.
const fn is_canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

fn user_exit(vcpu: &mut VmxVcpu, e: UserExit) -> ExitOutcome {
    vcpu.exit = Some(e);
    ExitOutcome::Userspace
}

fn internal_emulation_error(vcpu: &mut VmxVcpu) -> ExitOutcome {
    bump(&mut vcpu.stats.insn_emulation_fail);
    user_exit(
        vcpu,
        UserExit::InternalError {
            suberror: kvm_exit::INTERNAL_ERROR_EMULATION,
            ndata: 0,
            data: [0; 2],
        },
    )
}

fn queue_ud(vcpu: &mut VmxVcpu) -> ExitOutcome {
    vcpu.events.queue_exception(UD_VECTOR, None);
    ExitOutcome::Resume
}

fn queue_gp(vcpu: &mut VmxVcpu) -> ExitOutcome {
    vcpu.events.queue_exception(GP_VECTOR, Some(0));
    ExitOutcome::Resume
}

fn queue_fault(vcpu: &mut VmxVcpu, f: Fault) -> ExitOutcome {
    match f {
        Fault::Gp(ec) => vcpu.events.queue_exception(GP_VECTOR, Some(ec)),
        Fault::Ud => vcpu.events.queue_exception(UD_VECTOR, None),
    }
    ExitOutcome::Resume
}

/// `vmx_fpu_activate`: stop intercepting #NM, give the guest its CR0.TS.
pub fn fpu_activate(v: &mut impl Vmcs, vcpu: &mut VmxVcpu) {
    if vcpu.fpu_active {
        return;
    }
    vcpu.fpu_active = true;
    v.clear_bits(guest::CR0, CR0_TS as u32);
    if guest_cr0(v) & CR0_TS != 0 {
        v.set_bits(guest::CR0, CR0_TS as u32);
    }
    update_exception_bitmap(v, vcpu);
}

/// `update_exception_bitmap` for this VCPU.
pub fn update_exception_bitmap(v: &mut impl Vmcs, vcpu: &VmxVcpu) {
    let sw_bp =
        vcpu.guest_debug.has(GuestDebug::ENABLE) && vcpu.guest_debug.has(GuestDebug::USE_SW_BP);
    let eb = exception_bitmap(
        vcpu.config.ept(),
        vcpu.fpu_active,
        sw_bp,
        vcpu.rmode.vm86_active,
    );
    v.write(control::EXCEPTION_BITMAP, u64::from(eb));
}

/// `vmx_handle_exit`: the guest has exited (after
/// [`crate::inject::complete_interrupts`]); handle it or prepare the
/// userspace exit. Counts the exit.
pub fn handle_exit<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    bump(&mut vcpu.stats.exits);
    let rip = v.read(guest::RIP);
    env.probe(Probe::Vexit {
        rip,
        exit_reason: vcpu.exit_reason,
    });

    // CR3 accesses do not exit while the guest pages under EPT.
    if vcpu.config.ept() && guest_cr0(v) & CR0_PG != 0 {
        vcpu.cr3 = v.read(guest::CR3);
    }

    if vcpu.fail {
        let err = v.read32(ro::VM_INSTRUCTION_ERROR);
        return user_exit(
            vcpu,
            UserExit::FailEntry {
                hardware_entry_failure_reason: u64::from(err),
            },
        );
    }
    if vcpu.exit_reason & EXIT_REASON_ENTRY_FAILURE != 0 {
        return user_exit(
            vcpu,
            UserExit::FailEntry {
                hardware_entry_failure_reason: u64::from(vcpu.exit_reason),
            },
        );
    }

    if !vcpu.config.virtual_nmis() && vcpu.soft_vnmi_blocked {
        if interrupt_allowed(v) {
            vcpu.soft_vnmi_blocked = false;
        } else if vcpu.vnmi_blocked_time > 1_000_000_000 && vcpu.events.nmi_pending {
            // No way to find the end of the NMI handler while the guest
            // keeps IF clear: give up after a second.
            vcpu.soft_vnmi_blocked = false;
        }
    }

    let Some(reason) = ExitReason::from_basic(basic(vcpu.exit_reason)) else {
        return unknown(vcpu);
    };
    match reason {
        ExitReason::ExceptionNmi => handle_exception(vcpu, v, env),
        ExitReason::ExternalInterrupt => {
            bump(&mut vcpu.stats.irq_exits);
            if env.host_wants_cpu() {
                user_exit(vcpu, UserExit::Intr)
            } else {
                ExitOutcome::Resume
            }
        }
        // The host's time slice (`RunEnv::preemption_timer`): like a host
        // timer interrupt, minus the interrupt (not an `irq-exits` event).
        ExitReason::PreemptionTimer => {
            if env.host_wants_cpu() {
                user_exit(vcpu, UserExit::Intr)
            } else {
                ExitOutcome::Resume
            }
        }
        ExitReason::TripleFault => user_exit(vcpu, UserExit::Shutdown),
        ExitReason::NmiWindow => {
            v.clear_bits(
                control::PRIMARY_PROCBASED_EXEC_CONTROLS,
                PrimaryControls::NMI_WINDOW_EXITING.bits(),
            );
            bump(&mut vcpu.stats.nmi_window_exits);
            ExitOutcome::Resume
        }
        ExitReason::PendingInterrupt => {
            v.clear_bits(
                control::PRIMARY_PROCBASED_EXEC_CONTROLS,
                PrimaryControls::INTERRUPT_WINDOW_EXITING.bits(),
            );
            bump(&mut vcpu.stats.irq_window_exits);
            if !env.irqchip_in_kernel() && vcpu.request_interrupt_window && !env.has_interrupt() {
                user_exit(vcpu, UserExit::IrqWindowOpen)
            } else {
                ExitOutcome::Resume
            }
        }
        ExitReason::IoInstruction => handle_io(vcpu, v, env),
        ExitReason::CrAccess => handle_cr(vcpu, v, env),
        ExitReason::DrAccess => handle_dr(vcpu, v),
        ExitReason::Cpuid => {
            let function = vcpu.regs.rax as u32;
            let index = vcpu.regs.rcx as u32;
            let r = env.cpuid(function, index).unwrap_or_default();
            vcpu.regs.rax = u64::from(r.eax);
            vcpu.regs.rbx = u64::from(r.ebx);
            vcpu.regs.rcx = u64::from(r.ecx);
            vcpu.regs.rdx = u64::from(r.edx);
            skip_instruction(v);
            ExitOutcome::Resume
        }
        ExitReason::MsrRead => handle_rdmsr(vcpu, v, env),
        ExitReason::MsrWrite => handle_wrmsr(vcpu, v, env),
        ExitReason::Hlt => {
            skip_instruction(v);
            bump(&mut vcpu.stats.halt_exits);
            if env.irqchip_in_kernel() {
                vcpu.mp_state = MpState::Halted;
                ExitOutcome::Resume
            } else {
                user_exit(vcpu, UserExit::Hlt)
            }
        }
        ExitReason::Invlpg => {
            env.invlpg(v.read(ro::EXIT_QUALIFICATION));
            skip_instruction(v);
            ExitOutcome::Resume
        }
        ExitReason::Vmcall => handle_vmcall(vcpu, v, env),
        ExitReason::Vmclear
        | ExitReason::Vmlaunch
        | ExitReason::Vmptrld
        | ExitReason::Vmptrst
        | ExitReason::Vmread
        | ExitReason::Vmresume
        | ExitReason::Vmwrite
        | ExitReason::Vmxoff
        | ExitReason::Vmxon
        | ExitReason::Invept
        | ExitReason::Invvpid => queue_ud(vcpu),
        ExitReason::TprBelowThreshold => ExitOutcome::Resume,
        ExitReason::ApicAccess => {
            let a = ApicAccess::decode(v.read(ro::EXIT_QUALIFICATION));
            emulated(
                vcpu,
                v,
                env,
                EmulationReason::ApicAccess { offset: a.offset },
            )
        }
        ExitReason::Wbinvd => {
            skip_instruction(v);
            ExitOutcome::Resume
        }
        ExitReason::PauseInstruction => {
            // `handle_pause`: a PAUSE loop ran long (PAUSE-loop exiting):
            // `kvm_vcpu_on_spin`, which the C left unported.
            skip_instruction(v);
            env.on_spin();
            ExitOutcome::Resume
        }
        ExitReason::TaskSwitch => handle_task_switch(vcpu, v, env),
        ExitReason::MceDuringVmentry => ExitOutcome::Resume,
        ExitReason::EptViolation => handle_ept_violation(vcpu, v, env),
        ExitReason::EptMisconfig => unknown(vcpu),
        ExitReason::MwaitInstruction | ExitReason::MonitorInstruction => queue_ud(vcpu),
        _ => unknown(vcpu),
    }
}

fn unknown(vcpu: &mut VmxVcpu) -> ExitOutcome {
    let r = u64::from(vcpu.exit_reason);
    user_exit(
        vcpu,
        UserExit::Unknown {
            hardware_exit_reason: r,
        },
    )
}

/// Emulate, counting, and turn the result into an outcome.
fn emulated<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
    reason: EmulationReason,
) -> ExitOutcome {
    bump(&mut vcpu.stats.insn_emulation);
    match env.emulate(vcpu, v, reason) {
        Emulation::Done => ExitOutcome::Resume,
        Emulation::Mmio(m) => mmio_exit(vcpu, m),
        Emulation::Failed => internal_emulation_error(vcpu),
    }
}

/// `KVM_EXIT_MMIO`; a read is completed on the next `KVM_RUN`.
fn mmio_exit(vcpu: &mut VmxVcpu, m: crate::vcpu::MmioExit) -> ExitOutcome {
    vcpu.mmio_read_pending = !m.is_write;
    user_exit(vcpu, UserExit::Mmio(m))
}

/// `handle_exception`.
fn handle_exception<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
) -> ExitOutcome {
    let raw = v.read32(ro::VMEXIT_INTERRUPTION_INFO);
    let Some(info) = InterruptionInfo::decode(raw) else {
        return unknown(vcpu);
    };
    if info.kind == EventType::HardwareException && info.vector == MC_VECTOR {
        // Already handled on the host side (complete_interrupts).
        return ExitOutcome::Resume;
    }
    let idt_valid = InterruptionInfo::decode(vcpu.idt_vectoring_info).is_some();
    if idt_valid && info.vector != PF_VECTOR {
        // An exception while delivering an event we cannot re-inject
        // together: let userspace see both.
        return user_exit(
            vcpu,
            UserExit::InternalError {
                suberror: kvm_exit::INTERNAL_ERROR_SIMUL_EX,
                ndata: 2,
                data: [u64::from(vcpu.idt_vectoring_info), u64::from(raw)],
            },
        );
    }
    if info.kind == EventType::Nmi {
        // A host NMI, delivered by the run loop.
        return ExitOutcome::Resume;
    }
    if info.vector == NM_VECTOR {
        fpu_activate(v, vcpu);
        return ExitOutcome::Resume;
    }
    if info.vector == UD_VECTOR {
        bump(&mut vcpu.stats.insn_emulation);
        if env.emulate(vcpu, v, EmulationReason::InvalidOpcode) != Emulation::Done {
            vcpu.events.queue_exception(UD_VECTOR, None);
        }
        return ExitOutcome::Resume;
    }
    let error_code = if info.has_error_code {
        v.read32(ro::VMEXIT_INTERRUPTION_ERR_CODE)
    } else {
        0
    };
    if vcpu.rmode.vm86_active {
        let host_debug = vcpu.guest_debug.0 & (GuestDebug::SINGLESTEP | GuestDebug::USE_HW_BP) != 0;
        let sw_bp = vcpu.guest_debug.has(GuestDebug::USE_SW_BP);
        let mut class = rmode::classify_exception(info.vector, error_code, host_debug, sw_bp);
        if class == rmode::RmodeException::Emulate {
            bump(&mut vcpu.stats.insn_emulation);
            match env.emulate(vcpu, v, EmulationReason::RealModeFault) {
                Emulation::Done => return ExitOutcome::Resume,
                Emulation::Mmio(m) => return mmio_exit(vcpu, m),
                Emulation::Failed => class = rmode::RmodeException::Reflect,
            }
        }
        if class == rmode::RmodeException::Reflect {
            if info.vector == BP_VECTOR {
                vcpu.events.event_exit_inst_len = v.read32(ro::VMEXIT_INSTRUCTION_LEN);
            }
            vcpu.events.queue_exception(info.vector, None);
            return ExitOutcome::Resume;
        }
    }
    let rip = v.read(guest::RIP);
    match info.vector {
        PF_VECTOR => {
            // #PF is not intercepted under EPT; should the bitmap ever say
            // otherwise, give the guest its fault back (the C driver
            // panicked the host).
            let cr2 = v.read(ro::EXIT_QUALIFICATION);
            env.probe(Probe::PageFault {
                addr: cr2,
                code: u64::from(error_code),
            });
            vcpu.regs.cr2 = cr2;
            vcpu.events.queue_exception(PF_VECTOR, Some(error_code));
            ExitOutcome::Resume
        }
        DB_VECTOR | BP_VECTOR => {
            let mut d = DebugExit {
                exception: u32::from(info.vector),
                pc: v.read(guest::CS_BASE).wrapping_add(rip),
                ..DebugExit::default()
            };
            if info.vector == DB_VECTOR {
                let dr6 = v.read(ro::EXIT_QUALIFICATION);
                let host_debug = GuestDebug::SINGLESTEP | GuestDebug::USE_HW_BP;
                if vcpu.guest_debug.0 & host_debug == 0 {
                    // SDM vol. 3 §18.2.3 and §28.2.1 (the exit
                    // qualification of a #DB): B0–B3 say which
                    // breakpoints this #DB matched; BD, BS and BT are set
                    // by their condition and never cleared by the CPU (the
                    // C replaced DR6 and lost a BS software had set).
                    vcpu.debug.dr6 =
                        (vcpu.debug.dr6 & !DR6_TRAP_BITS) | (dr6 & DR6_VOLATILE) | DR6_FIXED_1;
                    // ICEBP (INT1) is trap-like: its #DB exits on the
                    // instruction itself, as a privileged software
                    // exception; deliver it after the instruction, or the
                    // guest would run the ICEBP again forever.
                    if info.kind == EventType::PrivilegedSoftwareException {
                        skip_instruction(v);
                    }
                    vcpu.events.queue_exception(DB_VECTOR, None);
                    return ExitOutcome::Resume;
                }
                d.dr6 = dr6 | DR6_FIXED_1;
                d.dr7 = v.read(guest::DR7);
            }
            // Userspace may re-inject #BP: keep its length.
            vcpu.events.event_exit_inst_len = v.read32(ro::VMEXIT_INSTRUCTION_LEN);
            user_exit(vcpu, UserExit::Debug(d))
        }
        AC_VECTOR => {
            vcpu.events.queue_exception(AC_VECTOR, Some(error_code));
            ExitOutcome::Resume
        }
        n => user_exit(
            vcpu,
            UserExit::Exception {
                exception: u32::from(n),
                error_code,
            },
        ),
    }
}

/// `handle_io` + `kvm_emulate_pio`: in-kernel devices first, else
/// `KVM_EXIT_IO` with the data in the PIO page.
fn handle_io<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    bump(&mut vcpu.stats.io_exits);
    let q = IoQualification::decode(v.read(ro::EXIT_QUALIFICATION));
    if q.string {
        bump(&mut vcpu.stats.insn_emulation);
        return match env.emulate(vcpu, v, EmulationReason::StringIo) {
            Emulation::Done => ExitOutcome::Resume,
            Emulation::Mmio(m) => mmio_exit(vcpu, m),
            Emulation::Failed => internal_emulation_error(vcpu),
        };
    }
    skip_instruction(v);
    let out = q.direction == IoDirection::Out;
    env.probe(Probe::Pio {
        out,
        port: q.port,
        size: q.size,
        count: 1,
    });
    let size = usize::from(q.size.min(4));
    let mut data = [0u8; 4];
    if out {
        data = (vcpu.regs.rax as u32).to_le_bytes();
    }
    let req = PioRequest {
        port: q.port,
        size: q.size,
        input: !out,
        count: 1,
        cur_count: 1,
        string: false,
        rep: false,
        down: false,
    };
    let buf = data.get_mut(..size).unwrap_or(&mut []);
    if env.pio(q.direction, q.port, buf) {
        if !out {
            complete_pio_in(vcpu, &data, q.size);
        }
        return ExitOutcome::Resume;
    }
    if out {
        let page = env.pio_page();
        if let (Some(dst), Some(src)) = (page.get_mut(..size), data.get(..size)) {
            dst.copy_from_slice(src);
        }
    }
    vcpu.pio = Some(req);
    user_exit(
        vcpu,
        UserExit::Io {
            direction: q.direction,
            size: q.size,
            port: q.port,
            count: 1,
            data_offset: KVM_PIO_PAGE_OFFSET * crate::setup::PAGE_SIZE as u64,
        },
    )
}

/// Store the result of a non-string IN into RAX: AL/AX merge, EAX
/// zero-extends (SDM vol. 1 §3.4.1.1).
pub fn complete_pio_in(vcpu: &mut VmxVcpu, data: &[u8], size: u8) {
    let mut b = [0u8; 4];
    let n = usize::from(size.min(4));
    if let (Some(dst), Some(src)) = (b.get_mut(..n), data.get(..n)) {
        dst.copy_from_slice(src);
    }
    let val = u64::from(u32::from_le_bytes(b));
    vcpu.regs.rax = match size {
        1 => (vcpu.regs.rax & !0xff) | val,
        2 => (vcpu.regs.rax & !0xffff) | val,
        _ => val,
    };
}

/// `handle_cr`.
fn handle_cr<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    let q = CrAccess::decode(v.read(ro::EXIT_QUALIFICATION));
    env.probe(Probe::Cr {
        cr: q.cr,
        gpr: q.gpr as u8,
        access: q.access as u8,
    });
    match q.access {
        CrAccessType::MovToCr => {
            let val = vcpu.regs.get(v, q.gpr);
            env.probe(Probe::CrWrite {
                cr: q.cr,
                value: val,
            });
            let cr = match q.cr {
                0 => ControlRegister::Cr0,
                3 => ControlRegister::Cr3,
                4 => ControlRegister::Cr4,
                8 => ControlRegister::Cr8,
                _ => return unknown(vcpu),
            };
            let prev_cr8 = env.cr8();
            if let Err(f) = env.set_cr(vcpu, v, cr, val) {
                return queue_fault(vcpu, f);
            }
            skip_instruction(v);
            if cr == ControlRegister::Cr8 && !env.irqchip_in_kernel() && (val & 0xf) < prev_cr8 {
                // Userspace's irqchip must learn about a lowered TPR.
                return user_exit(vcpu, UserExit::SetTpr);
            }
            ExitOutcome::Resume
        }
        CrAccessType::MovFromCr => {
            let val = match q.cr {
                3 => vcpu.cr3,
                8 => env.cr8(),
                _ => return unknown(vcpu),
            };
            vcpu.regs.set(v, q.gpr, val);
            env.probe(Probe::CrRead {
                cr: q.cr,
                value: val,
            });
            skip_instruction(v);
            ExitOutcome::Resume
        }
        CrAccessType::Clts => {
            let cr0 = guest_cr0(v) & !CR0_TS;
            // PE is unchanged: no vm86 transition, the TSS base is unused.
            crate::cr::set_cr0(vcpu, v, cr0, 0);
            env.probe(Probe::CrWrite { cr: 0, value: cr0 });
            skip_instruction(v);
            fpu_activate(v, vcpu);
            ExitOutcome::Resume
        }
        CrAccessType::Lmsw => {
            let val = q.lmsw_data & 0xf;
            env.probe(Probe::CrWrite {
                cr: 0,
                value: (guest_cr0(v) & !0xf) | u64::from(val),
            });
            env.lmsw(vcpu, v, val);
            skip_instruction(v);
            ExitOutcome::Resume
        }
    }
}

/// `handle_dr`.
fn handle_dr(vcpu: &mut VmxVcpu, v: &mut impl Vmcs) -> ExitOutcome {
    // MOV DR at CPL > 0 is #GP (SDM vol. 3 §18.2); the exit comes first.
    if guest_cpl(v) > 0 {
        return queue_gp(vcpu);
    }
    let dr7 = v.read(guest::DR7);
    if dr7 & DR7_GD != 0 {
        // General detect: the exit took precedence over the #DB.
        if vcpu.guest_debug.has(GuestDebug::USE_HW_BP) {
            let d = DebugExit {
                exception: u32::from(DB_VECTOR),
                pc: v.read(guest::CS_BASE).wrapping_add(v.read(guest::RIP)),
                dr6: vcpu.debug.dr6,
                dr7,
            };
            return user_exit(vcpu, UserExit::Debug(d));
        }
        vcpu.debug.dr7 &= !DR7_GD;
        vcpu.debug.dr6 |= DR6_BD;
        v.write(guest::DR7, vcpu.debug.dr7);
        vcpu.events.queue_exception(DB_VECTOR, None);
        return ExitOutcome::Resume;
    }
    let q = DrAccess::decode(v.read(ro::EXIT_QUALIFICATION));
    // DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD.
    if matches!(q.dr, 4 | 5) && crate::cr::guest_cr4(v, vcpu.config.ept()) & CR4_DE != 0 {
        return queue_ud(vcpu);
    }
    let d = &mut vcpu.debug;
    if q.from_dr {
        let val = match q.dr {
            0 => d.db[0],
            1 => d.db[1],
            2 => d.db[2],
            3 => d.db[3],
            4 | 6 => d.dr6,
            _ => d.dr7,
        };
        vcpu.regs.set(v, q.gpr, val);
    } else {
        let val = vcpu.regs.get(v, q.gpr);
        let host_bp = vcpu.guest_debug.has(GuestDebug::USE_HW_BP);
        let d = &mut vcpu.debug;
        match q.dr {
            0..=3 => {
                let i = usize::from(q.dr);
                if let Some(slot) = d.db.get_mut(i) {
                    *slot = val;
                }
                if !host_bp && let Some(slot) = d.eff_db.get_mut(i) {
                    *slot = val;
                }
            }
            4 | 6 => {
                if val >> 32 != 0 {
                    return queue_gp(vcpu);
                }
                d.dr6 = (val & DR6_VOLATILE) | DR6_FIXED_1;
            }
            _ => {
                if val >> 32 != 0 {
                    return queue_gp(vcpu);
                }
                d.dr7 = (val & DR7_VOLATILE) | DR7_FIXED_1;
                if !host_bp {
                    v.write(guest::DR7, d.dr7);
                    d.switch_db_regs = val & DR7_BP_EN_MASK != 0;
                }
            }
        }
    }
    skip_instruction(v);
    ExitOutcome::Resume
}

/// The MSRs `vmx_get_msr` keeps in the VMCS; `None`: not one of them.
fn vmcs_msr(msr: u32) -> Option<u32> {
    Some(match msr {
        x86::msr::IA32_FS_BASE => guest::FS_BASE,
        x86::msr::IA32_GS_BASE => guest::GS_BASE,
        x86::msr::IA32_SYSENTER_CS => guest::IA32_SYSENTER_CS,
        x86::msr::IA32_SYSENTER_ESP => guest::IA32_SYSENTER_ESP,
        x86::msr::IA32_SYSENTER_EIP => guest::IA32_SYSENTER_EIP,
        _ => return None,
    })
}

/// `vmx_get_msr`: VMCS-held MSRs and the TSC here, the rest from the
/// driver (§9.8).
pub fn get_msr<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &V,
    env: &mut E,
    msr: u32,
) -> Result<u64, Fault> {
    if let Some(field) = vmcs_msr(msr) {
        return Ok(v.read(field));
    }
    match msr {
        x86::msr::IA32_TIME_STAMP_COUNTER => Ok(env
            .host_tsc()
            .wrapping_add(v.read(control::TSC_OFFSET_FULL))),
        x86::msr::IA32_PAT if vcpu.config.load_pat() => Ok(v.read(guest::IA32_PAT_FULL)),
        host::MSR_KERNEL_GS_BASE => {
            env.load_host_state(vcpu);
            Ok(vcpu.host_switch.guest_kernel_gs_base)
        }
        host::MSR_EFER => env.get_msr(vcpu, msr),
        host::MSR_TSC_AUX if !vcpu.rdtscp_enabled => Err(Fault::Gp(0)),
        _ => match vcpu.guest_msrs.get(msr) {
            Some(data) => Ok(data),
            None => env.get_msr(vcpu, msr),
        },
    }
}

/// `vmx_set_msr`.
pub fn set_msr<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
    msr: u32,
    data: u64,
) -> Result<(), Fault> {
    if let Some(field) = vmcs_msr(msr) {
        if msr != x86::msr::IA32_SYSENTER_CS && !is_canonical(data) {
            return Err(Fault::Gp(0));
        }
        v.write(field, data);
        return Ok(());
    }
    match msr {
        x86::msr::IA32_TIME_STAMP_COUNTER => {
            // `guest_write_tsc`: the offset is kept CPU-neutral (from the
            // host TSC trued up by this CPU's tick delta); the VMCS gets
            // it plus the delta, and `vmx_vcpu_load` recomputes that on
            // another CPU.
            let delta = env.tsc_tick_delta();
            vcpu.tsc_offset = data.wrapping_sub(env.host_tsc().wrapping_add(delta));
            v.write(
                control::TSC_OFFSET_FULL,
                delta.wrapping_add(vcpu.tsc_offset),
            );
            Ok(())
        }
        x86::msr::IA32_PAT if vcpu.config.load_pat() => {
            // Each byte must be a valid memory type: 0, 1, 4, 5, 6, 7.
            let valid = data
                .to_le_bytes()
                .iter()
                .all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7));
            if !valid {
                return Err(Fault::Gp(0));
            }
            v.write(guest::IA32_PAT_FULL, data);
            Ok(())
        }
        host::MSR_KERNEL_GS_BASE => {
            if !is_canonical(data) {
                return Err(Fault::Gp(0));
            }
            env.load_host_state(vcpu);
            vcpu.host_switch.guest_kernel_gs_base = data;
            Ok(())
        }
        host::MSR_EFER => {
            env.load_host_state(vcpu);
            env.set_msr(vcpu, v, msr, data)
        }
        host::MSR_TSC_AUX if !vcpu.rdtscp_enabled || data >> 32 != 0 => Err(Fault::Gp(0)),
        _ => {
            if vcpu.guest_msrs.find(msr).is_some() {
                if matches!(msr, host::MSR_LSTAR | host::MSR_CSTAR) && !is_canonical(data) {
                    return Err(Fault::Gp(0));
                }
                env.load_host_state(vcpu);
                vcpu.guest_msrs.set(msr, data);
                Ok(())
            } else {
                env.set_msr(vcpu, v, msr, data)
            }
        }
    }
}

/// `handle_rdmsr`: #GP for what nobody handles.
fn handle_rdmsr<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    let msr = vcpu.regs.rcx as u32;
    match get_msr(vcpu, v, env, msr) {
        Err(_) => {
            env.probe(Probe::MsrReadEx { msr });
            queue_gp(vcpu)
        }
        Ok(data) => {
            env.probe(Probe::MsrRead { msr, data });
            vcpu.regs.rax = data & 0xffff_ffff;
            vcpu.regs.rdx = data >> 32;
            skip_instruction(v);
            ExitOutcome::Resume
        }
    }
}

/// `handle_wrmsr`.
fn handle_wrmsr<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    let msr = vcpu.regs.rcx as u32;
    let data = (vcpu.regs.rax & 0xffff_ffff) | (vcpu.regs.rdx << 32);
    match set_msr(vcpu, v, env, msr, data) {
        Err(_) => {
            env.probe(Probe::MsrWriteEx { msr, data });
            queue_gp(vcpu)
        }
        Ok(()) => {
            env.probe(Probe::MsrWrite { msr, data });
            skip_instruction(v);
            ExitOutcome::Resume
        }
    }
}

/// `handle_vmcall` → `kvm_emulate_hypercall` / `kvm_hv_hypercall` (§9.11).
fn handle_vmcall<V: Vmcs, E: ExitEnv>(vcpu: &mut VmxVcpu, v: &mut V, env: &mut E) -> ExitOutcome {
    if env.hyperv_hypercalls() {
        // `kvm_emulate_hypercall` hands over before counting: a Hyper-V
        // hypercall is not in `hypercalls`.
        return kvm_hv_hypercall(vcpu, v, env);
    }
    bump(&mut vcpu.stats.hypercalls);
    let cpl = guest_cpl(v);
    let r = vcpu.regs;
    let mut nr = r.rax;
    let mut args = [r.rbx, r.rcx, r.rdx, r.rsi];
    env.probe(Probe::Hypercall { nr, args });
    if !guest_long_mode(v) {
        nr &= 0xffff_ffff;
        for a in &mut args {
            *a &= 0xffff_ffff;
        }
    }
    let ret = if cpl != 0 {
        KVM_EPERM.wrapping_neg()
    } else if nr == KVM_HC_VAPIC_POLL_IRQ {
        0
    } else {
        KVM_ENOSYS.wrapping_neg()
    };
    vcpu.regs.rax = ret;
    skip_instruction(v);
    ExitOutcome::Resume
}

/// Port of kvm_x86.c:`kvm_hv_hypercall`: the Hyper-V hypercall interface,
/// once the guest enabled the hypercall page (`kvm_hv_hypercall_enabled`).
/// The input value is RCX, the parameter GPAs RDX and R8 in 64-bit mode;
/// EDX:EAX, EBX:ECX and EDI:ESI otherwise. `HvNotifyLongSpinWait` succeeds
/// (a no-op in the C too); every other call code is
/// `HV_STATUS_INVALID_HYPERCALL_CODE`, with no rep done. The result goes
/// to RAX (EDX:EAX outside 64-bit mode).
fn kvm_hv_hypercall<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
) -> ExitOutcome {
    // #UD from CPL > 0 or real mode, per the Hyper-V spec; a fault, so
    // RIP stays on the VMCALL.
    if guest_cpl(v) != 0 || guest_cr0(v) & CR0_PE == 0 {
        return queue_ud(vcpu);
    }
    let long = guest_long_mode(v) && guest_cs_l(v);
    let r = &vcpu.regs;
    let pair = |hi: u64, lo: u64| (hi << 32) | (lo & 0xffff_ffff);
    let (param, ingpa, outgpa) = if long {
        (r.rcx, r.rdx, r.r8)
    } else {
        (pair(r.rdx, r.rax), pair(r.rbx, r.rcx), pair(r.rdi, r.rsi))
    };
    let code = param as u16;
    env.probe(Probe::HvHypercall {
        code,
        fast: (param >> 16) & 1 != 0,
        rep_cnt: ((param >> 32) & 0xfff) as u16,
        rep_idx: ((param >> 48) & 0xfff) as u16,
        ingpa,
        outgpa,
    });
    let status = if code == HV_NOTIFY_LONG_SPIN_WAIT {
        HV_STATUS_SUCCESS
    } else {
        HV_STATUS_INVALID_HYPERCALL_CODE
    };
    // No rep is ever done: bits 43:32 (reps completed) stay 0.
    if long {
        vcpu.regs.rax = status;
    } else {
        vcpu.regs.rdx = status >> 32;
        vcpu.regs.rax = status & 0xffff_ffff;
    }
    skip_instruction(v);
    ExitOutcome::Resume
}

/// DR7's local breakpoint enables L0-L3 and LE (bits 0, 2, 4, 6, 8): a
/// task switch clears them (SDM Vol. 3 §18.2.4; Linux's
/// `DR_LOCAL_ENABLE_MASK | DR_LOCAL_SLOWDOWN`, Bochs).
const DR7_LOCAL_ENABLES: u64 = 0x155;

/// `handle_task_switch` (kvm_vmx.c:3514): drop the re-injection of the
/// event that went through a task gate (the switch delivers it), step over
/// the instruction that caused the switch, emulate it, then clear DR7's
/// local enables. Beyond the C (as Linux): the error code of a hardware
/// exception through the gate goes with the request, to be pushed on the
/// new task's stack; the C's mask `~55` was decimal (bits 0-2, 4, 5); DR7
/// is cleared only when the switch happened; a fault before the switch
/// leaves RIP on the instruction (the C and Linux left it past); an IRET
/// that switched tasks ends NMI blocking as any IRET does (SDM Vol. 3
/// §6.7.1).
fn handle_task_switch<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
) -> ExitOutcome {
    let q = TaskSwitch::decode(v.read(ro::EXIT_QUALIFICATION));
    let idt = InterruptionInfo::decode(vcpu.idt_vectoring_info);
    let mut error_code = None;
    let mut external = false;
    if q.source == TaskSwitchSource::Gate
        && let Some(i) = idt
    {
        // The event that went through the task gate is delivered by the
        // switch itself: do not re-inject it.
        match i.kind {
            EventType::Nmi => {
                vcpu.events.nmi_injected = false;
                if vcpu.config.virtual_nmis() {
                    v.set_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
                }
            }
            EventType::ExternalInterrupt | EventType::SoftwareInterrupt => {
                vcpu.events.interrupt = None;
            }
            EventType::HardwareException | EventType::SoftwareException => {
                if i.kind == EventType::HardwareException && i.has_error_code {
                    error_code = Some(v.read32(ro::IDT_VECTORING_ERR_CODE));
                }
                vcpu.events.exception = None;
            }
            _ => {}
        }
        external = matches!(
            i.kind,
            EventType::HardwareException | EventType::ExternalInterrupt | EventType::Nmi
        );
    }
    // An instruction (CALL, JMP, IRET, INT n...) caused it: step over it.
    let by_instruction = match idt {
        None => true,
        Some(i) => !matches!(
            i.kind,
            EventType::HardwareException | EventType::ExternalInterrupt | EventType::Nmi
        ),
    };
    let (rip, shadow) = (v.read(guest::RIP), crate::inject::interrupt_shadow(v));
    if by_instruction {
        skip_instruction(v);
    }
    let request = TaskSwitchRequest {
        selector: q.selector,
        source: q.source,
        error_code,
        external,
    };
    match env.task_switch(vcpu, v, request) {
        TaskSwitchOutcome::Failed => internal_emulation_error(vcpu),
        TaskSwitchOutcome::Faulted => {
            // A fault: the instruction did not complete (its CS:EIP is
            // the one the exception reports).
            v.write(guest::RIP, rip);
            crate::inject::set_interrupt_shadow(v, shadow);
            ExitOutcome::Resume
        }
        TaskSwitchOutcome::Switched => {
            let dr7 = v.read(guest::DR7) & !DR7_LOCAL_ENABLES;
            v.write(guest::DR7, dr7);
            if q.source == TaskSwitchSource::Iret {
                crate::inject::set_nmi_mask(v, vcpu, false);
            }
            ExitOutcome::Resume
        }
    }
}

/// `handle_ept_violation`: the MMU maps the page, or the access is MMIO
/// and is emulated, in the kernel or by userspace.
fn handle_ept_violation<V: Vmcs, E: ExitEnv>(
    vcpu: &mut VmxVcpu,
    v: &mut V,
    env: &mut E,
) -> ExitOutcome {
    let qual = v.read(ro::EXIT_QUALIFICATION);
    let q = EptViolation::decode(qual);
    if !q.linear_valid && q.translated_access {
        // Reserved combination (bit 8 without bit 7).
        return unknown(vcpu);
    }
    if q.nmi_unblocking
        && vcpu.config.virtual_nmis()
        && InterruptionInfo::decode(vcpu.idt_vectoring_info).is_none()
    {
        // SDM §27.2.3: the faulting IRET unblocked NMIs; re-block.
        v.set_bits(guest::INTERRUPTIBILITY_STATE, interruptibility::NMI);
    }
    let gpa = v.read(ro::GUEST_PHYSICAL_ADDR_FULL);
    env.probe(Probe::PageFault {
        addr: gpa,
        code: qual,
    });
    match env.page_fault(vcpu, v, gpa, q.error_code()) {
        Emulation::Done => ExitOutcome::Resume,
        Emulation::Mmio(m) => {
            bump(&mut vcpu.stats.mmio_exits);
            mmio_exit(vcpu, m)
        }
        Emulation::Failed => internal_emulation_error(vcpu),
    }
}

/// Queue a #GP(0) — for callers outside the handlers (ioctls).
pub fn inject_gp(vcpu: &mut VmxVcpu) {
    vcpu.events.queue_exception(GP_VECTOR, Some(0));
}

#[cfg(test)]
pub(crate) mod tests;
