//! Every exit reason of issue 7 over the fake VMCS and a fake driver. The
//! expected guest state follows the SDM (RIP advanced by the VM-exit
//! instruction length for trap-like emulation, unchanged for faults).

use super::*;
use crate::caps::VmcsConfig;
use crate::caps::tests::skylake;
use crate::cpu::CpuidResult;
use crate::env::{InterruptSource, ProbeSink};
use crate::fake::FakeVmcs;
use crate::inject::PendingException;
use crate::setup::{CR0_ET, CR0_NE, CR0_PE, CR0_PG};
use crate::vcpu::MmioExit;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

/// The rest of the driver, scripted (shared with the run-loop tests).
#[derive(Default)]
pub(crate) struct FakeEnv {
    pub(crate) cpuid: BTreeMap<(u32, u32), CpuidResult>,
    pub(crate) msrs: BTreeMap<u32, u64>,
    pub(crate) cr_writes: Vec<(ControlRegister, u64)>,
    pub(crate) cr_fault: Option<Fault>,
    pub(crate) cr8: u64,
    pub(crate) lmsw: Vec<u16>,
    /// Ports an in-kernel device answers, with the value for IN.
    pub(crate) devices: BTreeMap<u16, u32>,
    pub(crate) pio_out: Vec<(u16, Vec<u8>)>,
    pub(crate) pio_page: Vec<u8>,
    pub(crate) emulation: Option<Emulation>,
    pub(crate) emulated: Vec<EmulationReason>,
    pub(crate) page_fault: Option<Emulation>,
    pub(crate) faults: Vec<(u64, u32)>,
    pub(crate) invlpg: Vec<u64>,
    pub(crate) task_switches: Vec<TaskSwitchRequest>,
    pub(crate) task_switch_outcome: TaskSwitchOutcome,
    pub(crate) irqchip: bool,
    pub(crate) hyperv: bool,
    pub(crate) host_wants_cpu: bool,
    pub(crate) pending_irq: Option<u8>,
    pub(crate) probes: Vec<Probe>,
    pub(crate) tsc: u64,
    pub(crate) host_state_loads: u32,
    /// `on_spin` calls (PAUSE-loop exits).
    pub(crate) spins: u32,
    pub(crate) run: crate::run::tests::RunScript,
}

impl InterruptSource for FakeEnv {
    fn has_interrupt(&mut self) -> bool {
        self.pending_irq.is_some()
    }
    fn get_interrupt(&mut self) -> Option<u8> {
        self.pending_irq.take()
    }
}
impl ProbeSink for FakeEnv {
    fn probe(&mut self, p: Probe) {
        self.probes.push(p);
    }
}

impl ExitEnv for FakeEnv {
    fn cpuid(&mut self, function: u32, index: u32) -> Option<CpuidResult> {
        self.cpuid.get(&(function, index)).copied()
    }
    fn get_msr(&mut self, _vcpu: &mut VmxVcpu, msr: u32) -> Result<u64, Fault> {
        self.msrs.get(&msr).copied().ok_or(Fault::Gp(0))
    }
    fn set_msr(
        &mut self,
        _: &mut VmxVcpu,
        _: &mut dyn Vmcs,
        msr: u32,
        data: u64,
    ) -> Result<(), Fault> {
        match self.msrs.get_mut(&msr) {
            Some(m) => {
                *m = data;
                Ok(())
            }
            None => Err(Fault::Gp(0)),
        }
    }
    fn set_cr(
        &mut self,
        _: &mut VmxVcpu,
        _: &mut dyn Vmcs,
        cr: ControlRegister,
        value: u64,
    ) -> Result<(), Fault> {
        if let Some(f) = self.cr_fault {
            return Err(f);
        }
        if cr == ControlRegister::Cr8 {
            self.cr8 = value & 0xf;
        }
        self.cr_writes.push((cr, value));
        Ok(())
    }
    fn cr8(&mut self) -> u64 {
        self.cr8
    }
    fn lmsw(&mut self, _: &mut VmxVcpu, _: &mut dyn Vmcs, value: u16) {
        self.lmsw.push(value);
    }
    fn pio(&mut self, direction: IoDirection, port: u16, data: &mut [u8]) -> bool {
        let Some(val) = self.devices.get(&port) else {
            return false;
        };
        match direction {
            IoDirection::In => {
                let b = val.to_le_bytes();
                let n = data.len();
                data.copy_from_slice(&b[..n]);
            }
            IoDirection::Out => self.pio_out.push((port, data.to_vec())),
        }
        true
    }
    fn pio_page(&mut self) -> &mut [u8] {
        &mut self.pio_page
    }
    fn emulate(&mut self, _: &mut VmxVcpu, _: &mut dyn Vmcs, reason: EmulationReason) -> Emulation {
        self.emulated.push(reason);
        self.emulation.unwrap_or(Emulation::Done)
    }
    fn page_fault(
        &mut self,
        _: &mut VmxVcpu,
        _: &mut dyn Vmcs,
        gpa: u64,
        error_code: u32,
    ) -> Emulation {
        self.faults.push((gpa, error_code));
        self.page_fault.unwrap_or(Emulation::Done)
    }
    fn invlpg(&mut self, gva: u64) {
        self.invlpg.push(gva);
    }
    fn task_switch(
        &mut self,
        _: &mut VmxVcpu,
        _: &mut dyn Vmcs,
        request: TaskSwitchRequest,
    ) -> TaskSwitchOutcome {
        self.task_switches.push(request);
        self.task_switch_outcome
    }
    fn irqchip_in_kernel(&self) -> bool {
        self.irqchip
    }
    fn hyperv_hypercalls(&self) -> bool {
        self.hyperv
    }
    fn host_wants_cpu(&self) -> bool {
        self.host_wants_cpu
    }
    fn host_tsc(&self) -> u64 {
        self.tsc
    }
    fn load_host_state(&mut self, vcpu: &mut VmxVcpu) {
        self.host_state_loads += 1;
        vcpu.host_switch.loaded = false;
    }
    fn on_spin(&mut self) {
        self.spins += 1;
    }
}

struct T {
    vcpu: VmxVcpu,
    v: FakeVmcs,
    env: FakeEnv,
}

const RIP: u64 = 0x1000;

/// A 64-bit guest at CPL 0 with paging, RIP 0x1000, an exit of `reason`
/// with instruction length `len` and qualification `qual`.
fn exit(reason: ExitReason, len: u64, qual: u64) -> T {
    let (vcpu, v, env) = parts(reason, len, qual);
    T { vcpu, v, env }
}

/// The VCPU, VMCS and driver of [`exit`].
pub(crate) fn parts(reason: ExitReason, len: u64, qual: u64) -> (VmxVcpu, FakeVmcs, FakeEnv) {
    let mut vcpu = VmxVcpu::new(VmcsConfig::probe(&skylake()).unwrap());
    vcpu.exit_reason = reason as u32;
    let mut v = FakeVmcs::new();
    v.write(guest::RIP, RIP);
    v.write(guest::RFLAGS, 0x202);
    v.write(control::CR0_READ_SHADOW, CR0_PE | CR0_PG | CR0_ET | CR0_NE);
    v.write(guest::CS_SELECTOR, 0x8);
    v.write(guest::CS_ACCESS_RIGHTS, 0xa09b);
    v.write(
        control::VMENTRY_CONTROLS,
        u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
    );
    v.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        u64::from(vcpu.config.proc),
    );
    v.set_exit_info(ro::EXIT_REASON, reason as u64);
    v.set_exit_info(ro::VMEXIT_INSTRUCTION_LEN, len);
    v.set_exit_info(ro::EXIT_QUALIFICATION, qual);
    (
        vcpu,
        v,
        FakeEnv {
            pio_page: vec![0; 4096],
            task_switch_outcome: TaskSwitchOutcome::Switched,
            irqchip: true,
            ..FakeEnv::default()
        },
    )
}

impl T {
    fn run(&mut self) -> ExitOutcome {
        handle_exit(&mut self.vcpu, &mut self.v, &mut self.env)
    }
    fn rip(&self) -> u64 {
        self.v.get(guest::RIP).unwrap()
    }
    fn exception(&self) -> Option<PendingException> {
        self.vcpu.events.exception
    }
}

fn gp0() -> Option<PendingException> {
    Some(PendingException {
        vector: GP_VECTOR,
        error_code: Some(0),
    })
}
fn ud() -> Option<PendingException> {
    Some(PendingException {
        vector: UD_VECTOR,
        error_code: None,
    })
}

#[test]
fn cpuid_from_the_vcpu_table() {
    let mut t = exit(ExitReason::Cpuid, 2, 0);
    t.env.cpuid.insert(
        (0xd, 1),
        CpuidResult {
            eax: 1,
            ebx: 2,
            ecx: 3,
            edx: 4,
        },
    );
    t.vcpu.regs.rax = 0xffff_ffff_0000_000d;
    t.vcpu.regs.rcx = 1;
    t.vcpu.regs.rbx = 99;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        (
            t.vcpu.regs.rax,
            t.vcpu.regs.rbx,
            t.vcpu.regs.rcx,
            t.vcpu.regs.rdx
        ),
        (1, 2, 3, 4)
    );
    assert_eq!(t.rip(), RIP + 2);
    // Unknown leaf: all zero.
    let mut t = exit(ExitReason::Cpuid, 2, 0);
    t.vcpu.regs.rax = 0x4000_0100;
    t.vcpu.regs.rbx = 5;
    t.run();
    assert_eq!((t.vcpu.regs.rax, t.vcpu.regs.rbx), (0, 0));
    assert_eq!(t.vcpu.stats.exits, 1);
    assert_eq!(
        t.env.probes[0],
        Probe::Vexit {
            rip: RIP,
            exit_reason: 10
        }
    );
}

#[test]
fn hlt_blocks_in_kernel_or_exits() {
    let mut t = exit(ExitReason::Hlt, 1, 0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.vcpu.mp_state, MpState::Halted);
    assert_eq!(t.rip(), RIP + 1);
    assert_eq!(t.vcpu.stats.halt_exits, 1);
    let mut t = exit(ExitReason::Hlt, 1, 0);
    t.env.irqchip = false;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::Hlt));
    assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 5);
    assert_eq!(t.rip(), RIP + 1);
}

#[test]
fn out_to_userspace_fills_kvm_run_and_the_pio_page() {
    // out %ax,$0x3f8 ... size 2, out, port 0x3f8, immediate.
    let mut t = exit(ExitReason::IoInstruction, 2, 0x03f8_0041);
    t.vcpu.regs.rax = 0x1234_5678_9abc;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::Io {
            direction: IoDirection::Out,
            size: 2,
            port: 0x3f8,
            count: 1,
            data_offset: 4096
        })
    );
    assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 2);
    assert_eq!(&t.env.pio_page[..2], &[0xbc, 0x9a]);
    assert_eq!(t.rip(), RIP + 2);
    assert_eq!(t.vcpu.stats.io_exits, 1);
    assert_eq!(t.vcpu.pio.unwrap().port, 0x3f8);
    assert!(t.env.probes.contains(&Probe::Pio {
        out: true,
        port: 0x3f8,
        size: 2,
        count: 1
    }));
}

#[test]
fn in_from_an_in_kernel_device_stays_in_the_kernel() {
    // in $0x40,%al: size 1, in.
    let mut t = exit(ExitReason::IoInstruction, 2, 0x0040_0048);
    t.env.devices.insert(0x40, 0x77);
    t.vcpu.regs.rax = 0xffff_ffff_ffff_ff00;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.vcpu.regs.rax, 0xffff_ffff_ffff_ff77);
    // in %dx,%eax: size 4 zero-extends into RAX.
    let mut t = exit(ExitReason::IoInstruction, 1, 0x0cfc_000b);
    t.env.devices.insert(0xcfc, 0x8086_1237);
    t.vcpu.regs.rax = u64::MAX;
    t.run();
    assert_eq!(t.vcpu.regs.rax, 0x8086_1237);
    assert_eq!(t.rip(), RIP + 1);
    // out to an in-kernel device.
    let mut t = exit(ExitReason::IoInstruction, 1, 0x0020_0000);
    t.env.devices.insert(0x20, 0);
    t.vcpu.regs.rax = 0x20;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.env.pio_out, vec![(0x20, vec![0x20])]);
    assert!(t.vcpu.pio.is_none());
}

#[test]
fn string_io_goes_to_the_emulator() {
    // rep outsb to 0x3f8.
    let mut t = exit(ExitReason::IoInstruction, 2, 0x03f8_0030);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.env.emulated, vec![EmulationReason::StringIo]);
    assert_eq!(t.rip(), RIP, "the emulator moves RIP");
    let mut t = exit(ExitReason::IoInstruction, 2, 0x03f8_0030);
    t.env.emulation = Some(Emulation::Failed);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert!(matches!(
        t.vcpu.exit,
        Some(UserExit::InternalError { suberror: 1, .. })
    ));
    assert_eq!(t.vcpu.stats.insn_emulation_fail, 1);
}

#[test]
fn mov_to_cr_goes_through_the_generic_checks() {
    // mov %rbx,%cr4.
    let mut t = exit(ExitReason::CrAccess, 3, 0x0304);
    t.vcpu.regs.rbx = 0x6f0;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.env.cr_writes, vec![(ControlRegister::Cr4, 0x6f0)]);
    assert_eq!(t.rip(), RIP + 3);
    assert!(t.env.probes.contains(&Probe::Cr {
        cr: 4,
        gpr: 3,
        access: 0
    }));
    assert!(t.env.probes.contains(&Probe::CrWrite {
        cr: 4,
        value: 0x6f0
    }));
    // A reserved bit: #GP(0), RIP stays on the MOV.
    let mut t = exit(ExitReason::CrAccess, 3, 0x0300);
    t.env.cr_fault = Some(Fault::Gp(0));
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.exception(), gp0());
    assert_eq!(t.rip(), RIP);
    // mov %rsp,%cr3 reads RSP from the VMCS.
    let mut t = exit(ExitReason::CrAccess, 3, 0x0403);
    t.v.write(guest::RSP, 0x5000);
    t.run();
    assert_eq!(t.env.cr_writes, vec![(ControlRegister::Cr3, 0x5000)]);
}

#[test]
fn cr8_lowered_with_userspace_irqchip_exits_set_tpr() {
    let mut t = exit(ExitReason::CrAccess, 4, 0x0108);
    t.env.irqchip = false;
    t.env.cr8 = 5;
    t.vcpu.regs.rcx = 2;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::SetTpr));
    assert_eq!(t.rip(), RIP + 4);
    // Raised: no exit.
    let mut t = exit(ExitReason::CrAccess, 4, 0x0108);
    t.env.irqchip = false;
    t.env.cr8 = 1;
    t.vcpu.regs.rcx = 2;
    assert_eq!(t.run(), ExitOutcome::Resume);
}

#[test]
fn mov_from_cr3_and_cr8() {
    let mut t = exit(ExitReason::CrAccess, 3, 0x0a13);
    t.vcpu.config.proc2 &= !(1 << 1); // no EPT: CR3 comes from vcpu.cr3
    t.vcpu.cr3 = 0x7000;
    t.run();
    assert_eq!(t.vcpu.regs.r10, 0x7000);
    assert_eq!(t.rip(), RIP + 3);
    let mut t = exit(ExitReason::CrAccess, 4, 0x0018);
    t.env.cr8 = 9;
    t.run();
    assert_eq!(t.vcpu.regs.rax, 9);
    assert!(t.env.probes.contains(&Probe::CrRead { cr: 8, value: 9 }));
}

#[test]
fn clts_and_lmsw() {
    let mut t = exit(ExitReason::CrAccess, 2, 0x20);
    t.v.write(
        control::CR0_READ_SHADOW,
        CR0_PE | CR0_PG | CR0_TS | CR0_NE | CR0_ET,
    );
    t.vcpu.fpu_active = false;
    t.run();
    assert_eq!(t.v.get(control::CR0_READ_SHADOW).unwrap() & CR0_TS, 0);
    assert_eq!(t.v.get(guest::CR0).unwrap() & CR0_TS, 0);
    assert!(t.vcpu.fpu_active);
    assert_eq!(t.rip(), RIP + 2);
    // lmsw %ax with AX = 0x000f.
    let mut t = exit(ExitReason::CrAccess, 3, 0x000f_0030);
    t.run();
    assert_eq!(t.env.lmsw, vec![0xf]);
    assert_eq!(t.rip(), RIP + 3);
}

#[test]
fn dr_access() {
    // mov %rax,%dr0 then mov %dr0,%rbx.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0000);
    t.vcpu.regs.rax = 0xdead_b000;
    t.run();
    assert_eq!(t.vcpu.debug.db[0], 0xdead_b000);
    assert_eq!(t.vcpu.debug.eff_db[0], 0xdead_b000);
    assert_eq!(t.rip(), RIP + 3);
    t.v.set_exit_info(ro::EXIT_QUALIFICATION, 0x0310);
    t.run();
    assert_eq!(t.vcpu.regs.rbx, 0xdead_b000);
    // mov %rax,%dr7 enables a breakpoint and lands in the VMCS.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0007);
    t.vcpu.regs.rax = 0x1;
    t.run();
    assert_eq!(t.v.get(guest::DR7), Some(0x401));
    assert!(t.vcpu.debug.switch_db_regs);
    // Upper half set in DR7: #GP, RIP unchanged.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0007);
    t.vcpu.regs.rax = 1 << 32;
    t.run();
    assert_eq!(t.exception(), gp0());
    assert_eq!(t.rip(), RIP);
    // DR4 with CR4.DE: #UD. DE is a guest-owned bit: the guest's MOV to
    // CR4 sets it in GUEST_CR4 without an exit, so the read shadow does
    // not have it (kvm-unit-tests' debug.flat).
    let mut t = exit(ExitReason::DrAccess, 3, 0x0014);
    t.v.write(guest::CR4, CR4_DE);
    t.v.write(control::CR4_READ_SHADOW, 0);
    t.run();
    assert_eq!(t.exception(), ud());
    // DR5 likewise; without DE, DR4 reads DR6.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0015);
    t.v.write(guest::CR4, CR4_DE);
    t.run();
    assert_eq!(t.exception(), ud());
    let mut t = exit(ExitReason::DrAccess, 3, 0x0014);
    t.v.write(guest::CR4, 0);
    t.run();
    assert_eq!(t.exception(), None);
    assert_eq!(t.vcpu.regs.rax, DR6_FIXED_1);
    // CPL 3: #GP.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0000);
    t.v.write(guest::CS_SELECTOR, 0x2b);
    t.run();
    assert_eq!(t.exception(), gp0());
    assert_eq!(t.rip(), RIP);
    // DR7.GD: #DB with DR6.BD, GD cleared.
    let mut t = exit(ExitReason::DrAccess, 3, 0x0000);
    t.v.write(guest::DR7, 0x2400);
    t.vcpu.debug.dr7 = 0x2400;
    t.run();
    assert_eq!(t.exception().unwrap().vector, DB_VECTOR);
    assert_eq!(t.vcpu.debug.dr6 & DR6_BD, DR6_BD);
    assert_eq!(t.v.get(guest::DR7), Some(0x400));
}

#[test]
fn rdmsr_wrmsr() {
    // RDMSR of an MSR the driver knows.
    let mut t = exit(ExitReason::MsrRead, 2, 0);
    t.env.msrs.insert(0x1b, 0x1_fee0_0900);
    t.vcpu.regs.rcx = 0x1b;
    t.run();
    assert_eq!((t.vcpu.regs.rax, t.vcpu.regs.rdx), (0xfee0_0900, 1));
    assert_eq!(t.rip(), RIP + 2);
    assert!(t.env.probes.contains(&Probe::MsrRead {
        msr: 0x1b,
        data: 0x1_fee0_0900
    }));
    // Unknown MSR: #GP(0), RIP stays.
    let mut t = exit(ExitReason::MsrRead, 2, 0);
    t.vcpu.regs.rcx = 0x48; // SPEC_CTRL: not emulated
    t.run();
    assert_eq!(t.exception(), gp0());
    assert_eq!(t.rip(), RIP);
    assert!(t.env.probes.contains(&Probe::MsrReadEx { msr: 0x48 }));
    // WRMSR GS_BASE lands in the VMCS.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.regs.rcx = 0xc000_0101;
    t.vcpu.regs.rax = 0x0000_1000;
    t.vcpu.regs.rdx = 0xffff_8000;
    t.run();
    assert_eq!(t.v.get(guest::GS_BASE), Some(0xffff_8000_0000_1000));
    assert_eq!(t.rip(), RIP + 2);
    // Non-canonical FS_BASE: #GP, not a failed entry later.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.regs.rcx = 0xc000_0100;
    t.vcpu.regs.rdx = 0x0000_8000;
    t.run();
    assert_eq!(t.exception(), gp0());
    assert!(t.env.probes.contains(&Probe::MsrWriteEx {
        msr: 0xc000_0100,
        data: 0x8000_0000_0000
    }));
    // Unknown MSR write: #GP.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.regs.rcx = 0x49;
    t.run();
    assert_eq!(t.exception(), gp0());
    // TSC write sets the offset; read gives it back.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.env.tsc = 1000;
    t.vcpu.regs.rcx = 0x10;
    t.vcpu.regs.rax = 5000;
    t.run();
    assert_eq!(t.v.get(control::TSC_OFFSET_FULL), Some(4000));
    // Invalid PAT memory type (2): #GP.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.regs.rcx = 0x277;
    t.vcpu.regs.rax = 0x0000_0002;
    t.run();
    assert_eq!(t.exception(), gp0());
}

#[test]
fn invlpg_wbinvd_pause_skip() {
    let mut t = exit(ExitReason::Invlpg, 3, 0xffff_8000_1234_5000);
    t.run();
    assert_eq!(t.env.invlpg, vec![0xffff_8000_1234_5000]);
    assert_eq!(t.rip(), RIP + 3);
    for (r, spins) in [(ExitReason::Wbinvd, 0), (ExitReason::PauseInstruction, 1)] {
        let mut t = exit(r, 2, 0);
        assert_eq!(t.run(), ExitOutcome::Resume);
        assert_eq!(t.rip(), RIP + 2);
        assert_eq!(t.env.spins, spins, "PAUSE-loop exits tell the host");
    }
}

#[test]
fn kvm_hypercalls() {
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.vcpu.regs.rax = KVM_HC_VAPIC_POLL_IRQ;
    t.run();
    assert_eq!(t.vcpu.regs.rax, 0);
    assert_eq!(t.rip(), RIP + 3);
    assert_eq!(t.vcpu.stats.hypercalls, 1);
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.vcpu.regs.rax = 77;
    t.vcpu.regs.rbx = 1;
    t.run();
    assert_eq!(t.vcpu.regs.rax as i64, -1000);
    assert!(t.env.probes.contains(&Probe::Hypercall {
        nr: 77,
        args: [1, 0, 0, 0]
    }));
    // From CPL 3: -EPERM.
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.v.write(guest::CS_SELECTOR, 0x33);
    t.vcpu.regs.rax = KVM_HC_VAPIC_POLL_IRQ;
    t.run();
    assert_eq!(t.vcpu.regs.rax as i64, -1);
    // 32-bit guest: the number is truncated.
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.v.write(control::VMENTRY_CONTROLS, 0);
    t.vcpu.regs.rax = 0xffff_ffff_0000_0001;
    t.run();
    assert_eq!(t.vcpu.regs.rax, 0);
}

/// The probes of a VMCALL exit after `kvm-vexit`.
fn hypercall_probes(t: &T) -> Vec<Probe> {
    t.env
        .probes
        .iter()
        .filter(|p| !matches!(p, Probe::Vexit { .. }))
        .copied()
        .collect()
}

/// A Hyper-V hypercall (`kvm_hv_hypercall`) from a 64-bit guest: the input
/// value in RCX (call code 15:0, fast 16, rep count 43:32, rep start index
/// 59:48; the other bits are reserved and ignored here, as in the C), the
/// parameter GPAs in RDX and R8; the result in RAX.
#[test]
fn hyperv_hypercall_in_64_bit_mode() {
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.env.hyperv = true;
    // Reserved bits 31:17, 47:44 and 63:60 all set.
    t.vcpu.regs.rcx = 0xf456_f123_fffe_0000 | 1 << 16 | u64::from(HV_NOTIFY_LONG_SPIN_WAIT);
    t.vcpu.regs.rdx = 0x1234_5000;
    t.vcpu.regs.r8 = 0x8_6789_a000;
    t.vcpu.regs.rax = 0xffff_ffff_ffff_ffff;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.vcpu.regs.rax, HV_STATUS_SUCCESS, "RAX: the whole result");
    assert_eq!(t.rip(), RIP + 3);
    assert_eq!(t.exception(), None);
    assert_eq!(
        hypercall_probes(&t),
        vec![Probe::HvHypercall {
            code: 8,
            fast: true,
            rep_cnt: 0x123,
            rep_idx: 0x456,
            ingpa: 0x1234_5000,
            outgpa: 0x8_6789_a000,
        }]
    );
    // `kvm_emulate_hypercall` returns before its count.
    assert_eq!(t.vcpu.stats.hypercalls, 0);

    // Any other call code: HV_STATUS_INVALID_HYPERCALL_CODE (2), no rep
    // done (bits 43:32 of the result 0).
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.env.hyperv = true;
    t.vcpu.regs.rcx = 0x0000_0005_0000_0099;
    t.run();
    assert_eq!(t.vcpu.regs.rax, 2);
    assert_eq!(t.vcpu.regs.rax, HV_STATUS_INVALID_HYPERCALL_CODE);
    assert_eq!(t.rip(), RIP + 3);
    assert!(matches!(
        hypercall_probes(&t)[..],
        [Probe::HvHypercall {
            code: 0x99,
            fast: false,
            rep_cnt: 5,
            rep_idx: 0,
            ..
        }]
    ));
}

/// Outside 64-bit mode (a 32-bit guest, or a 64-bit one in compatibility
/// mode, CS.L = 0): input value EDX:EAX, input GPA EBX:ECX, output GPA
/// EDI:ESI, the result in EDX:EAX; the upper halves of the 64-bit
/// registers are not part of any of them.
#[test]
fn hyperv_hypercall_outside_64_bit_mode() {
    let ia32e = u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    for entry in [0, ia32e] {
        let mut t = exit(ExitReason::Vmcall, 3, 0);
        t.env.hyperv = true;
        t.v.write(control::VMENTRY_CONTROLS, entry);
        t.v.write(guest::CS_ACCESS_RIGHTS, 0xc09b); // D = 1, L = 0
        t.vcpu.regs.rdx = 0xaaaa_aaaa_0456_0123;
        t.vcpu.regs.rax = 0xbbbb_bbbb_0001_0099;
        t.vcpu.regs.rbx = 0xcccc_cccc_0000_0001;
        t.vcpu.regs.rcx = 0xdddd_dddd_8000_0000;
        t.vcpu.regs.rdi = 0x2;
        t.vcpu.regs.rsi = 0xeeee_eeee_0000_1234;
        assert_eq!(t.run(), ExitOutcome::Resume);
        assert_eq!(
            hypercall_probes(&t),
            vec![Probe::HvHypercall {
                code: 0x99,
                fast: true,
                rep_cnt: 0x123,
                rep_idx: 0x456,
                ingpa: 0x1_8000_0000,
                outgpa: 0x2_0000_1234,
            }],
            "entry controls {entry:#x}"
        );
        // HV_STATUS_INVALID_HYPERCALL_CODE in EDX:EAX.
        assert_eq!((t.vcpu.regs.rdx, t.vcpu.regs.rax), (0, 2));
        assert_eq!(t.rip(), RIP + 3);
    }
}

/// "Hypercall generates #UD from non-zero CPL and real mode" (the Hyper-V
/// specification, `kvm_hv_hypercall`): no probe, registers untouched; a
/// fault, so RIP stays on the VMCALL (the C advanced it first).
#[test]
fn hyperv_hypercall_is_ud_at_cpl_3_and_in_real_mode() {
    let real = |t: &mut T| t.v.write(control::CR0_READ_SHADOW, CR0_ET);
    let cpl3 = |t: &mut T| t.v.write(guest::CS_SELECTOR, 0x33);
    let vm86 = |t: &mut T| {
        t.v.write(guest::RFLAGS, 0x2_0202);
    };
    for (what, set) in [
        ("real mode", &real as &dyn Fn(&mut T)),
        ("CPL 3", &cpl3),
        ("virtual-8086 mode", &vm86),
    ] {
        let mut t = exit(ExitReason::Vmcall, 3, 0);
        t.env.hyperv = true;
        set(&mut t);
        t.vcpu.regs.rcx = u64::from(HV_NOTIFY_LONG_SPIN_WAIT);
        t.vcpu.regs.rax = 0x77;
        assert_eq!(t.run(), ExitOutcome::Resume, "{what}");
        assert_eq!(t.exception(), ud(), "{what}");
        assert_eq!(t.rip(), RIP, "{what}");
        assert_eq!(t.vcpu.regs.rax, 0x77, "{what}");
        assert!(hypercall_probes(&t).is_empty(), "{what}");
    }
}

/// Without the hypercall page (`kvm_hv_hypercall_enabled` false) VMCALL is
/// a KVM hypercall, whatever RCX holds.
#[test]
fn without_the_hypercall_page_vmcall_is_a_kvm_hypercall() {
    let mut t = exit(ExitReason::Vmcall, 3, 0);
    t.vcpu.regs.rcx = u64::from(HV_NOTIFY_LONG_SPIN_WAIT);
    t.vcpu.regs.rax = KVM_HC_VAPIC_POLL_IRQ;
    t.run();
    assert!(matches!(
        hypercall_probes(&t)[..],
        [Probe::Hypercall { nr: 1, .. }]
    ));
    assert_eq!(t.vcpu.stats.hypercalls, 1);
}

/// The hypercall page's instruction (`vmx_patch_hypercall`) is VMCALL:
/// SDM vol. 2 "VMCALL—Call to VM Monitor", opcode `0F 01 C1`.
#[test]
fn the_vmx_hypercall_instruction_is_vmcall() {
    assert_eq!(VMX_HYPERCALL, [0x0f, 0x01, 0xc1]);
}

#[test]
fn vmx_instructions_mwait_monitor_are_ud() {
    for r in [
        ExitReason::Vmclear,
        ExitReason::Vmlaunch,
        ExitReason::Vmptrld,
        ExitReason::Vmptrst,
        ExitReason::Vmread,
        ExitReason::Vmresume,
        ExitReason::Vmwrite,
        ExitReason::Vmxoff,
        ExitReason::Vmxon,
        ExitReason::Invept,
        ExitReason::Invvpid,
        ExitReason::MwaitInstruction,
        ExitReason::MonitorInstruction,
    ] {
        let mut t = exit(r, 3, 0);
        assert_eq!(t.run(), ExitOutcome::Resume, "{r:?}");
        assert_eq!(t.exception(), ud(), "{r:?}");
        assert_eq!(t.rip(), RIP, "{r:?}: #UD is a fault");
    }
}

#[test]
fn triple_fault_shuts_down() {
    let mut t = exit(ExitReason::TripleFault, 0, 0);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::Shutdown));
    assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 8);
}

#[test]
fn external_interrupt_returns_to_host_only_when_asked() {
    let mut t = exit(ExitReason::ExternalInterrupt, 0, 0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.vcpu.stats.irq_exits, 1);
    let mut t = exit(ExitReason::ExternalInterrupt, 0, 0);
    t.env.host_wants_cpu = true;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::Intr));
}

#[test]
fn nmi_and_interrupt_windows() {
    let mut t = exit(ExitReason::NmiWindow, 0, 0);
    t.v.set_bits(control::PRIMARY_PROCBASED_EXEC_CONTROLS, 1 << 22 | 1 << 2);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        t.v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 22 | 1 << 2),
        1 << 2
    );
    assert_eq!(t.vcpu.stats.nmi_window_exits, 1);
    let mut t = exit(ExitReason::PendingInterrupt, 0, 0);
    t.v.set_bits(control::PRIMARY_PROCBASED_EXEC_CONTROLS, 1 << 2);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        t.v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 2),
        0
    );
    assert_eq!(t.vcpu.stats.irq_window_exits, 1);
    // Userspace irqchip waiting to inject: exit as soon as the window opens.
    let mut t = exit(ExitReason::PendingInterrupt, 0, 0);
    t.env.irqchip = false;
    t.vcpu.request_interrupt_window = true;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::IrqWindowOpen));
}

#[test]
fn tpr_below_threshold_resumes() {
    let mut t = exit(ExitReason::TprBelowThreshold, 0, 0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.rip(), RIP);
}

/// A switch request as the handler builds it.
fn ts_request(selector: u16, source: TaskSwitchSource) -> TaskSwitchRequest {
    TaskSwitchRequest {
        selector,
        source,
        error_code: None,
        external: false,
    }
}

#[test]
fn task_switch_through_a_gate_drops_the_reinjection() {
    // JMP to a TSS: instruction-caused, RIP advanced; DR7's L0-L3 and LE
    // cleared (SDM vol. 3 §18.2.4), G0-G3 kept.
    let mut t = exit(ExitReason::TaskSwitch, 5, 0x8000_0030);
    t.v.write(guest::DR7, 0x5ff);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        t.env.task_switches,
        vec![ts_request(0x30, TaskSwitchSource::Jmp)]
    );
    assert_eq!(t.rip(), RIP + 5);
    assert_eq!(t.v.get(guest::DR7), Some(0x4aa));
    // #DF through a task gate: not re-injected, RIP not moved, its error
    // code (IDT-vectoring error code) goes to the new task's stack; the
    // event is external.
    let mut t = exit(ExitReason::TaskSwitch, 0, 0xc000_0040);
    t.vcpu.idt_vectoring_info = 0x8000_0b08;
    t.v.set_exit_info(ro::IDT_VECTORING_ERR_CODE, 0);
    t.vcpu.events.exception = Some(PendingException {
        vector: 8,
        error_code: Some(0),
    });
    t.run();
    assert_eq!(t.exception(), None);
    assert_eq!(t.rip(), RIP);
    assert_eq!(
        t.env.task_switches,
        vec![TaskSwitchRequest {
            error_code: Some(0),
            external: true,
            ..ts_request(0x40, TaskSwitchSource::Gate)
        }]
    );
    // #PF (error code 2) through the gate.
    let mut t = exit(ExitReason::TaskSwitch, 0, 0xc000_0040);
    t.vcpu.idt_vectoring_info = 0x8000_0b0e;
    t.v.set_exit_info(ro::IDT_VECTORING_ERR_CODE, 2);
    t.run();
    assert_eq!(t.env.task_switches[0].error_code, Some(2));
    // INT 3 through the gate: a software exception, no error code, not
    // external, RIP past the instruction.
    let mut t = exit(ExitReason::TaskSwitch, 1, 0xc000_0040);
    t.vcpu.idt_vectoring_info = 0x8000_0603;
    t.run();
    assert_eq!(
        t.env.task_switches,
        vec![ts_request(0x40, TaskSwitchSource::Gate)]
    );
    assert_eq!(t.rip(), RIP + 1);
    // The switch fails: internal error.
    let mut t = exit(ExitReason::TaskSwitch, 5, 0x8000_0030);
    t.env.task_switch_outcome = TaskSwitchOutcome::Failed;
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert!(matches!(t.vcpu.exit, Some(UserExit::InternalError { .. })));
    // A fault before the switch: the old task keeps DR7, RIP and its STI
    // shadow (the JMP faulted).
    let mut t = exit(ExitReason::TaskSwitch, 5, 0x8000_0030);
    t.v.write(guest::DR7, 0x455);
    t.v.write(
        guest::INTERRUPTIBILITY_STATE,
        u64::from(interruptibility::STI),
    );
    t.env.task_switch_outcome = TaskSwitchOutcome::Faulted;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.v.get(guest::DR7), Some(0x455));
    assert_eq!(t.rip(), RIP);
    assert_eq!(
        t.v.get(guest::INTERRUPTIBILITY_STATE),
        Some(u64::from(interruptibility::STI))
    );
}

#[test]
fn task_switch_nmi_blocking() {
    // An NMI through a task gate blocks NMIs (virtual NMIs) ...
    let mut t = exit(ExitReason::TaskSwitch, 0, 0xc000_0040);
    t.vcpu.idt_vectoring_info = 0x8000_0202;
    t.vcpu.events.nmi_injected = true;
    t.run();
    assert!(!t.vcpu.events.nmi_injected);
    assert_eq!(
        t.v.get(guest::INTERRUPTIBILITY_STATE).unwrap_or(0) & u64::from(interruptibility::NMI),
        u64::from(interruptibility::NMI)
    );
    assert!(t.env.task_switches[0].external);
    // ... and the IRET that switches back ends the blocking.
    let mut t = exit(ExitReason::TaskSwitch, 1, 0x4000_0020);
    t.v.write(
        guest::INTERRUPTIBILITY_STATE,
        u64::from(interruptibility::NMI),
    );
    t.run();
    assert_eq!(
        t.v.get(guest::INTERRUPTIBILITY_STATE).unwrap_or(0) & u64::from(interruptibility::NMI),
        0
    );
}

#[test]
fn ept_violation_goes_to_the_mmu_then_mmio() {
    let mut t = exit(ExitReason::EptViolation, 0, 0x181);
    t.v.set_exit_info(ro::GUEST_PHYSICAL_ADDR_FULL, 0x1234_5678);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.env.faults, vec![(0x1234_5678, 0)]);
    assert!(t.env.probes.contains(&Probe::PageFault {
        addr: 0x1234_5678,
        code: 0x181
    }));
    // MMIO write userspace must do.
    let m = MmioExit {
        phys_addr: 0xfebf_0000,
        data: [1, 0, 0, 0, 0, 0, 0, 0],
        len: 4,
        is_write: true,
    };
    let mut t = exit(ExitReason::EptViolation, 0, 0x182);
    t.v.set_exit_info(ro::GUEST_PHYSICAL_ADDR_FULL, 0xfebf_0000);
    t.env.page_fault = Some(Emulation::Mmio(m));
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(t.vcpu.exit, Some(UserExit::Mmio(m)));
    assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 6);
    assert_eq!(t.vcpu.stats.mmio_exits, 1);
    assert_eq!(t.env.faults, vec![(0xfebf_0000, 2)]);
    // Emulation failure: internal error rather than a host panic.
    let mut t = exit(ExitReason::EptViolation, 0, 0x184);
    t.env.page_fault = Some(Emulation::Failed);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    // IRET unblocking NMIs: re-block.
    let mut t = exit(ExitReason::EptViolation, 0, 0x1181);
    t.run();
    assert_eq!(
        t.v.get(guest::INTERRUPTIBILITY_STATE),
        Some(u64::from(interruptibility::NMI))
    );
}

#[test]
fn ept_misconfig_and_unknown_reasons() {
    let mut t = exit(ExitReason::EptMisconfig, 0, 0);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::Unknown {
            hardware_exit_reason: 49
        })
    );
    for r in [
        ExitReason::Rdpmc,
        ExitReason::Xsetbv,
        ExitReason::GdtrIdtrAccess,
    ] {
        let mut t = exit(r, 0, 0);
        assert_eq!(t.run(), ExitOutcome::Userspace);
        assert_eq!(
            t.vcpu.exit,
            Some(UserExit::Unknown {
                hardware_exit_reason: r as u64
            })
        );
        assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 0);
    }
    // A number the SDM does not define.
    let mut t = exit(ExitReason::Rdpmc, 0, 0);
    t.vcpu.exit_reason = 42;
    t.run();
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::Unknown {
            hardware_exit_reason: 42
        })
    );
}

#[test]
fn apic_access_is_emulated() {
    let mut t = exit(ExitReason::ApicAccess, 0, 0x10b0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        t.env.emulated,
        vec![EmulationReason::ApicAccess { offset: 0xb0 }]
    );
    let mut t = exit(ExitReason::ApicAccess, 0, 0x1300);
    t.env.emulation = Some(Emulation::Failed);
    assert_eq!(t.run(), ExitOutcome::Userspace);
}

#[test]
fn entry_failures_report_fail_entry() {
    // VMfail valid: the VM-instruction error.
    let mut t = exit(ExitReason::Cpuid, 0, 0);
    t.vcpu.fail = true;
    t.v.set_exit_info(ro::VM_INSTRUCTION_ERROR, 7);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::FailEntry {
            hardware_entry_failure_reason: 7
        })
    );
    assert_eq!(t.vcpu.exit.unwrap().abi_exit_reason(), 9);
    // Invalid guest state (exit reason 33 with bit 31).
    let mut t = exit(ExitReason::InvalidGuestState, 0, 0);
    t.vcpu.exit_reason = 0x8000_0021;
    t.run();
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::FailEntry {
            hardware_entry_failure_reason: 0x8000_0021
        })
    );
    assert_eq!(t.rip(), RIP);
}

#[test]
fn exceptions() {
    // #UD the emulator cannot handle: reflected.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0306);
    t.env.emulation = Some(Emulation::Failed);
    t.run();
    assert_eq!(t.exception(), ud());
    // #NM: FPU activated, nothing injected.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.vcpu.fpu_active = false;
    t.v.write(guest::CR0, CR0_TS);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0307);
    t.run();
    assert!(t.vcpu.fpu_active);
    assert_eq!(t.v.get(guest::CR0).unwrap() & CR0_TS, 0);
    assert_eq!(t.v.get(control::EXCEPTION_BITMAP).unwrap() & (1 << 7), 0);
    assert_eq!(t.exception(), None);
    // #DB without host debugging: reflected with DR6.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0x4000);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0301);
    t.run();
    assert_eq!(t.exception().unwrap().vector, DB_VECTOR);
    assert_eq!(t.vcpu.debug.dr6, 0x4000 | DR6_FIXED_1);
    // A DR2 match after software set BS and B1 (kvm-unit-tests'
    // debug.flat hw_bp2): B0–B3 are this #DB's, BS stays (SDM vol. 3
    // §18.2.3: the CPU never clears it); RIP stays (a fault-like #DB).
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0x4);
    t.vcpu.debug.dr6 = 0xffff_4ff2;
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0301);
    t.run();
    assert_eq!(t.exception().unwrap().vector, DB_VECTOR);
    assert_eq!(t.vcpu.debug.dr6, 0xffff_4ff4);
    assert_eq!(t.rip(), RIP);
    // ICEBP: a privileged software exception (type 5) with its length;
    // the #DB goes to the guest after the instruction.
    let mut t = exit(ExitReason::ExceptionNmi, 1, 0);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0501);
    t.run();
    assert_eq!(t.exception().unwrap().vector, DB_VECTOR);
    assert_eq!(t.rip(), RIP + 1);
    // #BP with userspace software breakpoints: KVM_EXIT_DEBUG.
    let mut t = exit(ExitReason::ExceptionNmi, 1, 0);
    t.v.write(guest::CS_BASE, 0x10_0000);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0603);
    assert_eq!(t.run(), ExitOutcome::Userspace);
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::Debug(DebugExit {
            exception: 3,
            pc: 0x10_1000,
            dr6: 0,
            dr7: 0
        }))
    );
    assert_eq!(t.vcpu.events.event_exit_inst_len, 1);
    // #AC: reflected with its error code.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b11);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_ERR_CODE, 0);
    t.run();
    assert_eq!(
        t.exception(),
        Some(PendingException {
            vector: AC_VECTOR,
            error_code: Some(0)
        })
    );
    // Something else intercepted (#GP in vm86): KVM_EXIT_EXCEPTION.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0d);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_ERR_CODE, 0x10);
    t.run();
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::Exception {
            exception: 13,
            error_code: 0x10
        })
    );
    // A host NMI, a machine check: resume.
    for info in [0x8000_0202u64, 0x8000_0312] {
        let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
        t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, info);
        assert_eq!(t.run(), ExitOutcome::Resume);
    }
    // An exception while delivering another (not #PF): SIMUL_EX.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.vcpu.idt_vectoring_info = 0x8000_0030;
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0d);
    t.run();
    assert_eq!(
        t.vcpu.exit,
        Some(UserExit::InternalError {
            suberror: 2,
            ndata: 2,
            data: [0x8000_0030, 0x8000_0b0d]
        })
    );
}

#[test]
fn counters_carry_the_kstat_names() {
    let s = crate::vcpu::VcpuStats::default();
    let names: Vec<&str> = s.named().iter().map(|(n, _)| *n).collect();
    for n in [
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
    ] {
        assert!(names.contains(&n), "{n}");
    }
}

#[test]
fn vm86_exceptions_are_reflected_or_emulated() {
    // #GP(0) in vm86 (address-size prefix): the emulator handles it.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.vcpu.rmode.vm86_active = true;
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0d);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_ERR_CODE, 0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.env.emulated, vec![EmulationReason::RealModeFault]);
    assert_eq!(t.exception(), None);
    // The emulator fails: the #GP goes to the real-mode IVT.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.vcpu.rmode.vm86_active = true;
    t.env.emulation = Some(Emulation::Failed);
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0d);
    t.run();
    assert_eq!(
        t.exception(),
        Some(PendingException {
            vector: GP_VECTOR,
            error_code: None
        })
    );
    // #DE: reflected, no userspace exit.
    let mut t = exit(ExitReason::ExceptionNmi, 0, 0);
    t.vcpu.rmode.vm86_active = true;
    t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0300);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.exception().unwrap().vector, 0);
}

#[test]
fn vm86_injection_goes_through_the_ivt() {
    let mut t = exit(ExitReason::Cpuid, 0, 0);
    t.vcpu.rmode.vm86_active = true;
    t.vcpu.events.exception = Some(PendingException {
        vector: 6,
        error_code: None,
    });
    crate::inject::inject_pending_event(&mut t.v, &mut t.vcpu, &mut t.env);
    // Software interrupt 6, length 1, RIP one back.
    assert_eq!(
        t.v.get(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        Some(0x8000_0406)
    );
    assert_eq!(t.rip(), RIP - 1);
    assert!(t.vcpu.rmode.irq.pending);
}

#[test]
fn shared_msrs_and_kernel_gs_base_stay_in_vmx() {
    // WRMSR LSTAR: kept as the guest's value, host state reloaded first.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.guest_msrs = crate::host::GuestMsrs::new(|_| true);
    t.vcpu.regs.rcx = 0xc000_0082;
    t.vcpu.regs.rax = 0x1000;
    t.vcpu.regs.rdx = 0xffff_ffff;
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(
        t.vcpu.guest_msrs.get(0xc000_0082),
        Some(0xffff_ffff_0000_1000)
    );
    assert_eq!(t.env.host_state_loads, 1);
    assert_eq!(t.rip(), RIP + 2);
    // RDMSR gives it back.
    t.v.set_exit_info(ro::EXIT_REASON, 31);
    t.vcpu.exit_reason = 31;
    t.vcpu.regs.rax = 0;
    t.vcpu.regs.rdx = 0;
    t.run();
    assert_eq!((t.vcpu.regs.rax, t.vcpu.regs.rdx), (0x1000, 0xffff_ffff));
    // Non-canonical LSTAR: #GP.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.guest_msrs = crate::host::GuestMsrs::new(|_| true);
    t.vcpu.regs.rcx = 0xc000_0082;
    t.vcpu.regs.rdx = 0x8000;
    t.run();
    assert_eq!(t.exception(), gp0());
    // KERNEL_GS_BASE.
    let mut t = exit(ExitReason::MsrWrite, 2, 0);
    t.vcpu.regs.rcx = 0xc000_0102;
    t.vcpu.regs.rax = 0x5000;
    t.run();
    assert_eq!(t.vcpu.host_switch.guest_kernel_gs_base, 0x5000);
    // TSC_AUX without RDTSCP for the guest: #GP.
    let mut t = exit(ExitReason::MsrRead, 2, 0);
    t.vcpu.guest_msrs = crate::host::GuestMsrs::new(|_| true);
    t.vcpu.regs.rcx = 0xc000_0103;
    t.run();
    assert_eq!(t.exception(), gp0());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Whatever the guest makes the CPU report, the handlers return an
        /// outcome without panicking, and a resumed guest never has RIP
        /// moved by more than the instruction length.
        #[test]
        fn any_exit_is_handled_without_panic(
            reason in prop_oneof![0u32..70, any::<u32>()],
            len in 0u64..16,
            qual in any::<u64>(),
            intr in any::<u32>(),
            idt in any::<u32>(),
            regs in proptest::array::uniform16(any::<u64>()),
            cs in any::<u16>(),
            cr0 in any::<u64>(),
            irqchip in any::<bool>(),
            fail in any::<bool>(),
            vm86 in any::<bool>(),
        ) {
            let mut t = exit(ExitReason::Cpuid, len, qual);
            t.vcpu.exit_reason = reason;
            t.vcpu.idt_vectoring_info = idt;
            t.vcpu.fail = fail;
            t.vcpu.rmode.vm86_active = vm86;
            t.env.irqchip = irqchip;
            t.v.set_exit_info(ro::VMEXIT_INTERRUPTION_INFO, u64::from(intr));
            t.v.write(guest::CS_SELECTOR, u64::from(cs));
            t.v.write(control::CR0_READ_SHADOW, cr0);
            for (i, r) in regs.iter().enumerate() {
                if i != 4 {
                    t.vcpu.regs.set(&mut t.v, crate::qualification::Gpr::from_bits(i as u64), *r);
                }
            }
            let out = t.run();
            match out {
                ExitOutcome::Userspace => prop_assert!(t.vcpu.exit.is_some()),
                ExitOutcome::Resume => {
                    let rip = t.rip();
                    prop_assert!(rip == RIP || rip == RIP + len, "rip {rip:#x}");
                }
            }
        }
    }
}

#[test]
fn counter_values_sit_under_their_own_names() {
    let s = crate::vcpu::VcpuStats {
        exits: 1,
        halt_exits: 2,
        io_exits: 3,
        mmio_exits: 4,
        irq_exits: 5,
        irq_window_exits: 6,
        nmi_window_exits: 7,
        irq_injections: 8,
        nmi_injections: 9,
        hypercalls: 10,
        signal_exits: 11,
        insn_emulation: 12,
        insn_emulation_fail: 13,
        host_state_reload: 14,
        request_irq_exits: 15,
    };
    let got = |name: &str| s.named().iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(got("exits"), Some(1));
    assert_eq!(got("halt-exits"), Some(2));
    assert_eq!(got("io-exits"), Some(3));
    assert_eq!(got("mmio-exits"), Some(4));
    assert_eq!(got("irq-exits"), Some(5));
    assert_eq!(got("irq-window-exits"), Some(6));
    assert_eq!(got("nmi-window-exits"), Some(7));
    assert_eq!(got("irq-injections"), Some(8));
    assert_eq!(got("nmi-injections"), Some(9));
    assert_eq!(got("hypercalls"), Some(10));
    assert_eq!(got("signal-exits"), Some(11));
    assert_eq!(got("insn-emulation"), Some(12));
    assert_eq!(got("inst-emulation-fail"), Some(13));
    assert_eq!(got("host-state-reload"), Some(14));
    assert_eq!(got("request-irq-exits"), Some(15));
}

/// A machine check during VM entry (exit reason 41, SDM vol. 3 §27.8):
/// the host handled it at the exit (`complete_interrupts` →
/// `kvm_machine_check`); `handle_machine_check` has nothing left to do,
/// and nothing reaches the guest.
#[test]
fn mce_during_vmentry_resumes_without_injecting() {
    let mut t = exit(ExitReason::MceDuringVmentry, 0, 0);
    assert_eq!(t.run(), ExitOutcome::Resume);
    assert_eq!(t.exception(), None);
    assert_eq!(t.rip(), RIP);
}
