//! Filling the current VMCS: controls, host state (where VM exits land) and
//! a real-mode guest at reset-like state (SDM vol. 3 chapter 25 and §27.3
//! for what VM entry checks).

use super::controls::Controls;
use super::{SmokeError, SmokeResult};
use crate::cpu::{rdmsr, read_cr0, read_cr3, read_cr4};
use crate::descriptors::{
    CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR, gdt_base, idt_base, tss_base,
};
use crate::vmx_insn::vmwrite;
use x86::msr::{IA32_EFER, IA32_VMX_CR0_FIXED0, IA32_VMX_CR0_FIXED1, IA32_VMX_CR4_FIXED0};
use x86::vmx::vmcs::{control, guest, host};

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_VMXE: u64 = 1 << 13;
/// VPID for the smoke guest (0 is the host's).
const VPID: u64 = 1;

fn write_all(fields: &[(u32, u64)]) -> SmokeResult<()> {
    for &(field, value) in fields {
        // SAFETY: the values below describe this host and the smoke guest.
        unsafe { vmwrite(field, value) }
            .map_err(|_| SmokeError::new("VMWRITE", u64::from(field)))?;
    }
    Ok(())
}

/// Execution, exit and entry controls, the EPT pointer and the masks.
pub fn write_controls(ctl: &Controls, eptp: u64) -> SmokeResult<()> {
    write_all(&[
        (control::PINBASED_EXEC_CONTROLS, u64::from(ctl.pin)),
        (
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            u64::from(ctl.proc),
        ),
        (
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            u64::from(ctl.proc2),
        ),
        (control::VMEXIT_CONTROLS, u64::from(ctl.exit)),
        (control::VMENTRY_CONTROLS, u64::from(ctl.entry)),
        (control::EXCEPTION_BITMAP, 0),
        (control::CR3_TARGET_COUNT, 0),
        (control::VMEXIT_MSR_STORE_COUNT, 0),
        (control::VMEXIT_MSR_LOAD_COUNT, 0),
        (control::VMENTRY_MSR_LOAD_COUNT, 0),
        (control::VMENTRY_INTERRUPTION_INFO_FIELD, 0),
        (control::EPTP_FULL, eptp),
        // The guest owns CR0 except NE (forced on by VMX, shown as clear)
        // and CR4 except VMXE.
        (control::CR0_GUEST_HOST_MASK, CR0_NE),
        (control::CR0_READ_SHADOW, CR0_ET),
        (control::CR4_GUEST_HOST_MASK, CR4_VMXE),
        (control::CR4_READ_SHADOW, 0),
    ])?;
    if ctl.vpid {
        write_all(&[(control::VPID, VPID)])?;
    }
    Ok(())
}

/// The host state a VM exit loads (HOST_RSP/HOST_RIP are written by
/// `entry::vm_enter` on every entry).
pub fn write_host_state(ctl: &Controls) -> SmokeResult<()> {
    write_all(&[
        (host::CR0, read_cr0()),
        (host::CR3, read_cr3()),
        (host::CR4, read_cr4()),
        (host::CS_SELECTOR, u64::from(CODE_SELECTOR)),
        (host::SS_SELECTOR, u64::from(DATA_SELECTOR)),
        (host::DS_SELECTOR, u64::from(DATA_SELECTOR)),
        (host::ES_SELECTOR, u64::from(DATA_SELECTOR)),
        (host::FS_SELECTOR, 0),
        (host::GS_SELECTOR, 0),
        (host::TR_SELECTOR, u64::from(TSS_SELECTOR)),
        (host::FS_BASE, 0),
        (host::GS_BASE, 0),
        (host::TR_BASE, tss_base()),
        (host::GDTR_BASE, gdt_base()),
        (host::IDTR_BASE, idt_base()),
        (host::IA32_SYSENTER_CS, 0),
        (host::IA32_SYSENTER_ESP, 0),
        (host::IA32_SYSENTER_EIP, 0),
    ])?;
    if ctl.efer_switch {
        // SAFETY: EFER exists on every long-mode CPU.
        write_all(&[(host::IA32_EFER_FULL, unsafe { rdmsr(IA32_EFER) })])?;
    }
    Ok(())
}

/// A real-mode guest: CS:IP = 0000:`rip`, SS:SP = 0000:`rsp`, flat 64 KiB
/// segments, CR0.PE = CR0.PG = 0 (allowed by unrestricted guest).
pub fn write_real_mode_guest(ctl: &Controls, rip: u64, rsp: u64) -> SmokeResult<()> {
    // SAFETY: the VMX fixed-bit MSRs exist when VMX does.
    let (cr0_0, cr0_1, cr4_0) = unsafe {
        (
            rdmsr(IA32_VMX_CR0_FIXED0),
            rdmsr(IA32_VMX_CR0_FIXED1),
            rdmsr(IA32_VMX_CR4_FIXED0),
        )
    };
    let cr0 = ((CR0_ET | CR0_NE | cr0_0) & cr0_1) & !(CR0_PE | CR0_PG);
    const CODE_AR: u64 = 0x9b; // present, S, code, readable, accessed
    const DATA_AR: u64 = 0x93; // present, S, data, writable, accessed
    const LIMIT_64K: u64 = 0xffff;
    write_all(&[
        (guest::CR0, cr0),
        (guest::CR3, 0),
        (guest::CR4, cr4_0),
        (guest::CS_SELECTOR, 0),
        (guest::CS_BASE, 0),
        (guest::CS_LIMIT, LIMIT_64K),
        (guest::CS_ACCESS_RIGHTS, CODE_AR),
        (guest::SS_SELECTOR, 0),
        (guest::SS_BASE, 0),
        (guest::SS_LIMIT, LIMIT_64K),
        (guest::SS_ACCESS_RIGHTS, DATA_AR),
        (guest::DS_SELECTOR, 0),
        (guest::DS_BASE, 0),
        (guest::DS_LIMIT, LIMIT_64K),
        (guest::DS_ACCESS_RIGHTS, DATA_AR),
        (guest::ES_SELECTOR, 0),
        (guest::ES_BASE, 0),
        (guest::ES_LIMIT, LIMIT_64K),
        (guest::ES_ACCESS_RIGHTS, DATA_AR),
        (guest::FS_SELECTOR, 0),
        (guest::FS_BASE, 0),
        (guest::FS_LIMIT, LIMIT_64K),
        (guest::FS_ACCESS_RIGHTS, DATA_AR),
        (guest::GS_SELECTOR, 0),
        (guest::GS_BASE, 0),
        (guest::GS_LIMIT, LIMIT_64K),
        (guest::GS_ACCESS_RIGHTS, DATA_AR),
        (guest::LDTR_SELECTOR, 0),
        (guest::LDTR_BASE, 0),
        (guest::LDTR_LIMIT, 0),
        (guest::LDTR_ACCESS_RIGHTS, 1 << 16), // unusable
        (guest::TR_SELECTOR, 0),
        (guest::TR_BASE, 0),
        (guest::TR_LIMIT, LIMIT_64K),
        (guest::TR_ACCESS_RIGHTS, 0x8b), // present, busy 32-bit TSS
        (guest::GDTR_BASE, 0),
        (guest::GDTR_LIMIT, LIMIT_64K),
        (guest::IDTR_BASE, 0),
        (guest::IDTR_LIMIT, 0x3ff), // the real-mode IVT
        (guest::DR7, 0x400),
        (guest::RSP, rsp),
        (guest::RIP, rip),
        (guest::RFLAGS, 0x2),
        (guest::PENDING_DBG_EXCEPTIONS, 0),
        (guest::INTERRUPTIBILITY_STATE, 0),
        (guest::ACTIVITY_STATE, 0),
        (guest::IA32_SYSENTER_CS, 0),
        (guest::IA32_SYSENTER_ESP, 0),
        (guest::IA32_SYSENTER_EIP, 0),
        (guest::IA32_DEBUGCTL_FULL, 0),
        (guest::LINK_PTR_FULL, u64::MAX),
    ])?;
    if ctl.efer_switch {
        write_all(&[(guest::IA32_EFER_FULL, 0)])?;
    }
    Ok(())
}
