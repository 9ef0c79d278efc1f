//! The VMX smoke test: proof that the harness can run a guest.
//!
//! One VMCS with EPT and unrestricted guest, a 16-bit real-mode guest
//! (`guest.rs`) in 1 MiB of guest RAM that is mapped on first touch, and an
//! exit loop that plays the device model for a serial port and a POST port.
//! The guest prints over COM1, executes CPUID, touches an unmapped page,
//! runs two exit micro-benchmarks and halts. A second, misbehaving guest
//! triple-faults: the host must see the shutdown exit and carry on, as a
//! hypervisor does when a guest dies.
//!
//! All of this is temporary: the driver core (issue 7) takes over the VMCS,
//! the EPT MMU and the run loop, and the host will then drive it through the
//! ioctl dispatcher exactly as QEMU does. Only `vmxon.rs` and `vmx_insn.rs`
//! outside this module stay.

mod controls;
mod entry;
mod ept;
mod exits;
mod guest;
mod vmcs;

use crate::pages::{self, Page};
use crate::vmx_insn::{self, VmFail};
use crate::vmxon::VmxOn;
use ept::Ept;
use exits::{Action, ExitLoop};
use kvm_vmx::VmxSupport;
use x86::vmx::vmcs::ro;

pub use exits::Report;
pub use guest::Program;

/// How a guest run ended.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// The guest halted; what it did is in the report.
    Halted(Report),
    /// The guest triple-faulted (hardware would shut down).
    TripleFault { rip: u64, exits: u64 },
}

/// Guest-physical layout.
pub const GUEST_RAM_BYTES: u64 = 1 << 20;
/// Where the guest program is loaded and starts (CS:IP = 0000:8000).
pub const GUEST_ENTRY: u64 = 0x8000;
/// The guest's initial stack pointer (its page is mapped on first touch).
pub const GUEST_STACK_TOP: u64 = 0x7000;
/// The page the guest writes without it being preloaded.
pub const GUEST_PROBE_GPA: u64 = 0x20000;

/// Why the smoke test stopped.
#[derive(Clone, Copy, Debug)]
pub struct SmokeError {
    pub what: &'static str,
    pub detail: u64,
}

impl SmokeError {
    pub const fn new(what: &'static str, detail: u64) -> Self {
        Self { what, detail }
    }
}

pub type SmokeResult<T> = Result<T, SmokeError>;

fn vm_fail(what: &'static str) -> impl Fn(VmFail) -> SmokeError {
    move |e| {
        let detail = match e {
            VmFail::Invalid => u64::MAX,
            VmFail::Valid => vmx_insn::vmread(ro::VM_INSTRUCTION_ERROR).unwrap_or(u64::MAX),
        };
        SmokeError::new(what, detail)
    }
}

/// Runs `program` in a fresh VM until it halts or dies. On return the VMCS
/// is cleared and every page the run allocated is freed, on success or
/// failure.
pub fn run(vmx: &VmxOn, support: &VmxSupport, program: Program) -> SmokeResult<Outcome> {
    crate::println!("-- guest program {program:?} --");
    let vmcs = pages::alloc().ok_or(SmokeError::new("no page for the VMCS", 0))?;
    // SAFETY: our zeroed page; the revision identifier is its first dword.
    unsafe { vmcs.ptr::<u32>().write(vmx.revision) };
    let mut ept = Ept::new().ok_or(SmokeError::new("no page for the EPT root", 0))?;
    let result = run_on(&vmcs, &mut ept, support, program);
    // SAFETY: the VMCS region is ours; clearing it makes it inactive.
    let cleared = unsafe { vmx_insn::vmclear(vmcs.phys()) };
    ept.destroy();
    pages::free(vmcs);
    let report = result?;
    cleared.map_err(vm_fail("VMCLEAR at the end"))?;
    Ok(report)
}

fn run_on(
    vmcs: &Page,
    ept: &mut Ept,
    support: &VmxSupport,
    program: Program,
) -> SmokeResult<Outcome> {
    // SAFETY: a fresh region with the right revision.
    unsafe { vmx_insn::vmclear(vmcs.phys()) }.map_err(vm_fail("VMCLEAR"))?;
    // SAFETY: as above, now clear.
    unsafe { vmx_insn::vmptrld(vmcs.phys()) }.map_err(vm_fail("VMPTRLD"))?;

    guest::load(ept, GUEST_ENTRY, program)?;
    let ctl = controls::choose(support)?;
    vmcs::write_controls(&ctl, ept.eptp())?;
    vmcs::write_host_state(&ctl)?;
    vmcs::write_real_mode_guest(&ctl, GUEST_ENTRY, GUEST_STACK_TOP)?;
    if ctl.vpid {
        vmx_insn::invvpid_all().map_err(vm_fail("INVVPID"))?;
    }
    crate::println!(
        "vmcs: pin={:#x} proc={:#x} proc2={:#x} exit={:#x} entry={:#x} eptp={:#x}",
        ctl.pin,
        ctl.proc,
        ctl.proc2,
        ctl.exit,
        ctl.entry,
        ept.eptp()
    );

    let mut exits = ExitLoop::new();
    let mut regs = entry::GuestRegs::default();
    let mut launched = false;
    loop {
        // SAFETY: the current VMCS is fully set up; `regs` outlives the call.
        let status = unsafe { entry::vm_enter(&mut regs, u64::from(launched)) };
        if status != 0 {
            let error = vmx_insn::vmread(ro::VM_INSTRUCTION_ERROR).unwrap_or(u64::MAX);
            crate::println!(
                "{} failed: {} (VM-instruction error {error})",
                if launched { "VMRESUME" } else { "VMLAUNCH" },
                if status == 1 {
                    "VMfailInvalid"
                } else {
                    "VMfailValid"
                }
            );
            return Err(SmokeError::new("VM entry", error));
        }
        if !launched {
            crate::println!("VMLAUNCH ok");
        }
        launched = true;
        match exits.handle(&mut regs, ept)? {
            Action::Resume => {}
            Action::Halted => return exits.finish(ept).map(Outcome::Halted),
            Action::TripleFault { rip } => {
                return Ok(Outcome::TripleFault {
                    rip,
                    exits: exits.total_exits(),
                });
            }
        }
    }
}
