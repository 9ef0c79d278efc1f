//! VMX operation for the host CPU. Unlike illumos (where HMA owns VMXON),
//! the test host owns VMX: it sets IA32_FEATURE_CONTROL if firmware left it
//! unlocked, applies the CR0/CR4 fixed bits, and executes VMXON on a page
//! from the page allocator.

use crate::cpu::{rdmsr, read_cr0, read_cr4, write_cr0, write_cr4, wrmsr};
use crate::pages::{self, Page};
use crate::vmx_insn::{self, VmFail};
use kvm_vmx::VmxSupport;
use kvm_vmx::msr::{
    FEATURE_CONTROL_LOCKED, FEATURE_CONTROL_VMXON_OUTSIDE_SMX, IA32_FEATURE_CONTROL,
};
use x86::msr::{
    IA32_VMX_CR0_FIXED0, IA32_VMX_CR0_FIXED1, IA32_VMX_CR4_FIXED0, IA32_VMX_CR4_FIXED1,
};

const CR4_VMXE: u64 = 1 << 13;

/// Why VMX operation could not start.
#[derive(Clone, Copy, Debug)]
pub enum VmxOnError {
    /// IA32_FEATURE_CONTROL is locked without VMXON outside SMX.
    LockedOff,
    /// No page for the VMXON region.
    OutOfMemory,
    /// VMXON itself failed.
    Vmxon(VmFail),
}

impl VmxOnError {
    /// One line for the log.
    pub fn message(self) -> &'static str {
        match self {
            VmxOnError::LockedOff => "IA32_FEATURE_CONTROL is locked without VMXON outside SMX",
            VmxOnError::OutOfMemory => "no page for the VMXON region",
            VmxOnError::Vmxon(VmFail::Invalid) => "VMXON: VMfailInvalid",
            VmxOnError::Vmxon(VmFail::Valid) => "VMXON: VMfailValid",
        }
    }
}

/// The CPU is in VMX root operation; dropping this does not leave it (call
/// `disable`).
pub struct VmxOn {
    region: Page,
    /// VMCS revision identifier every VMCS region must start with.
    pub revision: u32,
    /// IA32_FEATURE_CONTROL before and after we touched it.
    pub feature_control: (u64, u64),
}

/// Enters VMX root operation on this CPU. `support` is the decision of
/// `kvm_vmx::check_support`, which already read what CPUID allows.
pub fn enable(support: &VmxSupport) -> Result<VmxOn, VmxOnError> {
    // SAFETY: check_support saw CPUID.1:ECX.VMX, so these MSRs exist.
    let before = unsafe { rdmsr(IA32_FEATURE_CONTROL) };
    let mut after = before;
    if before & FEATURE_CONTROL_LOCKED == 0 {
        after = before | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON_OUTSIDE_SMX;
        // SAFETY: unlocked, so the write is allowed; it only enables VMXON.
        unsafe { wrmsr(IA32_FEATURE_CONTROL, after) };
    }
    if after & FEATURE_CONTROL_VMXON_OUTSIDE_SMX == 0 {
        return Err(VmxOnError::LockedOff);
    }

    // SAFETY: the VMX fixed-bit MSRs exist when VMX does.
    let (cr0_0, cr0_1, cr4_0, cr4_1) = unsafe {
        (
            rdmsr(IA32_VMX_CR0_FIXED0),
            rdmsr(IA32_VMX_CR0_FIXED1),
            rdmsr(IA32_VMX_CR4_FIXED0),
            rdmsr(IA32_VMX_CR4_FIXED1),
        )
    };
    // SAFETY: the fixed bits the host already runs with (PE, PG, NE, PAE)
    // stay set; VMXE only permits VMXON.
    unsafe {
        write_cr0((read_cr0() | cr0_0) & cr0_1);
        write_cr4((read_cr4() | cr4_0 | CR4_VMXE) & cr4_1);
    }

    let region = pages::alloc().ok_or(VmxOnError::OutOfMemory)?;
    // SAFETY: the page is ours; the revision goes in its first dword.
    unsafe { region.ptr::<u32>().write(support.vmcs_revision) };
    // SAFETY: the region is a zeroed 4 KiB page with the revision.
    if let Err(e) = unsafe { vmx_insn::vmxon(region.phys()) } {
        pages::free(region);
        return Err(VmxOnError::Vmxon(e));
    }
    Ok(VmxOn {
        region,
        revision: support.vmcs_revision,
        feature_control: (before, after),
    })
}

impl VmxOn {
    /// Physical address of the VMXON region.
    pub fn region(&self) -> u64 {
        self.region.phys()
    }

    /// Leaves VMX operation, clears CR4.VMXE and frees the region.
    pub fn disable(self) -> Result<(), VmFail> {
        // SAFETY: `self` proves VMX root operation; nobody uses VMX after.
        unsafe { vmx_insn::vmxoff()? };
        // SAFETY: outside VMX operation VMXE may be cleared.
        unsafe { write_cr4(read_cr4() & !CR4_VMXE) };
        pages::free(self.region);
        Ok(())
    }
}
