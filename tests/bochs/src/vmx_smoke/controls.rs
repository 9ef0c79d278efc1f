//! The VM-execution, VM-exit and VM-entry controls the smoke guest needs,
//! reconciled with what the CPU allows (SDM vol. 3 appendix A.3-A.5: bits
//! 31:0 of a capability MSR are the allowed-0 settings, bits 63:32 the
//! allowed-1 settings).

use super::{SmokeError, SmokeResult};
use crate::cpu::rdmsr;
use kvm_vmx::VmxSupport;
use x86::msr::{
    IA32_VMX_ENTRY_CTLS, IA32_VMX_EXIT_CTLS, IA32_VMX_PINBASED_CTLS, IA32_VMX_PROCBASED_CTLS,
    IA32_VMX_PROCBASED_CTLS2, IA32_VMX_TRUE_ENTRY_CTLS, IA32_VMX_TRUE_EXIT_CTLS,
    IA32_VMX_TRUE_PINBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS,
};

// Primary processor-based controls.
const PROC_HLT_EXITING: u32 = 1 << 7;
const PROC_UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
const PROC_ACTIVATE_SECONDARY: u32 = 1 << 31;
// Secondary processor-based controls.
const PROC2_ENABLE_EPT: u32 = 1 << 1;
const PROC2_ENABLE_VPID: u32 = 1 << 5;
const PROC2_UNRESTRICTED_GUEST: u32 = 1 << 7;
// VM-exit controls.
const EXIT_HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
const EXIT_SAVE_EFER: u32 = 1 << 20;
const EXIT_LOAD_EFER: u32 = 1 << 21;
// VM-entry controls.
const ENTRY_LOAD_EFER: u32 = 1 << 15;

/// The chosen control values.
#[derive(Clone, Copy, Debug)]
pub struct Controls {
    pub pin: u32,
    pub proc: u32,
    pub proc2: u32,
    pub exit: u32,
    pub entry: u32,
    /// VPID 1 is in use.
    pub vpid: bool,
    /// EFER is switched by the CPU on entry and exit.
    pub efer_switch: bool,
}

/// `want` plus the bits the CPU forces on, minus the ones it cannot set;
/// `None` if a wanted bit is not allowed.
fn adjust(cap: u64, want: u32) -> Option<u32> {
    let allowed0 = cap as u32;
    let allowed1 = (cap >> 32) as u32;
    let value = (want | allowed0) & allowed1;
    (value & want == want).then_some(value)
}

/// Allowed-1 settings of a capability MSR.
fn allowed1(cap: u64) -> u32 {
    (cap >> 32) as u32
}

fn read(msr: u32) -> u64 {
    // SAFETY: the caller only reads VMX capability MSRs, which exist once
    // check_support accepted the CPU (TRUE_* only with IA32_VMX_BASIC[55]).
    unsafe { rdmsr(msr) }
}

/// Picks the controls for a real-mode guest under EPT.
pub fn choose(support: &VmxSupport) -> SmokeResult<Controls> {
    if !support.unrestricted_guest {
        return Err(SmokeError::new("the CPU lacks unrestricted guest", 0));
    }
    let (pin_msr, proc_msr, exit_msr, entry_msr) = if support.true_controls {
        (
            IA32_VMX_TRUE_PINBASED_CTLS,
            IA32_VMX_TRUE_PROCBASED_CTLS,
            IA32_VMX_TRUE_EXIT_CTLS,
            IA32_VMX_TRUE_ENTRY_CTLS,
        )
    } else {
        (
            IA32_VMX_PINBASED_CTLS,
            IA32_VMX_PROCBASED_CTLS,
            IA32_VMX_EXIT_CTLS,
            IA32_VMX_ENTRY_CTLS,
        )
    };
    let exit_cap = read(exit_msr);
    let entry_cap = read(entry_msr);
    let efer_switch = allowed1(exit_cap) & (EXIT_SAVE_EFER | EXIT_LOAD_EFER)
        == EXIT_SAVE_EFER | EXIT_LOAD_EFER
        && allowed1(entry_cap) & ENTRY_LOAD_EFER != 0;
    let (exit_efer, entry_efer) = if efer_switch {
        (EXIT_SAVE_EFER | EXIT_LOAD_EFER, ENTRY_LOAD_EFER)
    } else {
        (0, 0)
    };
    let proc2_want = PROC2_ENABLE_EPT
        | PROC2_UNRESTRICTED_GUEST
        | if support.vpid { PROC2_ENABLE_VPID } else { 0 };

    let missing = |what: &'static str| SmokeError::new(what, 0);
    Ok(Controls {
        pin: adjust(read(pin_msr), 0).ok_or(missing("pin-based controls"))?,
        proc: adjust(
            read(proc_msr),
            PROC_HLT_EXITING | PROC_UNCONDITIONAL_IO_EXITING | PROC_ACTIVATE_SECONDARY,
        )
        .ok_or(missing("processor-based controls"))?,
        proc2: adjust(read(IA32_VMX_PROCBASED_CTLS2), proc2_want)
            .ok_or(missing("secondary controls (EPT, unrestricted guest)"))?,
        exit: adjust(exit_cap, EXIT_HOST_ADDRESS_SPACE_SIZE | exit_efer)
            .ok_or(missing("VM-exit controls"))?,
        entry: adjust(entry_cap, entry_efer).ok_or(missing("VM-entry controls"))?,
        vpid: support.vpid,
        efer_switch,
    })
}
