//! The VMX instructions with their status decoded (SDM vol. 3 §31.2):
//! CF = 1 is VMfailInvalid, ZF = 1 is VMfailValid (the error number is in
//! the VM-instruction error field of the current VMCS).
//!
//! This is platform code the host keeps: the driver crates will reach these
//! through the platform trait the bare-metal host implements.

use core::arch::asm;

/// A VMX instruction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// CF = 1: no current VMCS, or a bad operand.
    Invalid,
    /// ZF = 1: the current VMCS holds the error number.
    Valid,
}

/// Result of a VMX instruction.
pub type VmResult<T> = Result<T, VmFail>;

fn status(cf: u8, zf: u8) -> VmResult<()> {
    if cf != 0 {
        Err(VmFail::Invalid)
    } else if zf != 0 {
        Err(VmFail::Valid)
    } else {
        Ok(())
    }
}

macro_rules! vmx_mem_operand {
    ($name:ident, $mnemonic:literal, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// `pa` must be the physical address of a 4 KiB-aligned region set
        /// up as the SDM requires; the CPU must be in the right VMX state.
        pub unsafe fn $name(pa: u64) -> VmResult<()> {
            let (cf, zf): (u8, u8);
            // SAFETY: the caller guarantees the operand and the VMX state.
            unsafe {
                asm!(
                    concat!($mnemonic, " qword ptr [{pa}]"),
                    "setc {cf}",
                    "setz {zf}",
                    pa = in(reg) &pa,
                    cf = out(reg_byte) cf,
                    zf = out(reg_byte) zf,
                    options(nostack)
                );
            }
            status(cf, zf)
        }
    };
}

vmx_mem_operand!(vmxon, "vmxon", "VMXON: enter VMX root operation.");

/// The driver's status type to the smoke code's (which only needs
/// Invalid/Valid).
fn smoke<T>(r: Result<T, kvm_vmx::vmcs::VmFail>) -> VmResult<T> {
    r.map_err(|e| match e {
        kvm_vmx::vmcs::VmFail::Invalid => VmFail::Invalid,
        kvm_vmx::vmcs::VmFail::Valid(_) => VmFail::Valid,
    })
}

/// VMCLEAR: flush and deactivate a VMCS (`kvm_vmx::insn::vmclear`).
///
/// # Safety
/// VMX root operation; `pa` is a VMCS region the host owns.
pub unsafe fn vmclear(pa: u64) -> VmResult<()> {
    // SAFETY: the caller's contract.
    smoke(unsafe { kvm_vmx::insn::vmclear(pa) })
}

/// VMPTRLD: make a VMCS current (`kvm_vmx::insn::vmptrld`).
///
/// # Safety
/// As [`vmclear`].
pub unsafe fn vmptrld(pa: u64) -> VmResult<()> {
    // SAFETY: the caller's contract.
    smoke(unsafe { kvm_vmx::insn::vmptrld(pa) })
}

/// VMXOFF: leave VMX operation.
///
/// # Safety
/// The CPU must be in VMX root operation; nothing may use VMX afterwards.
pub unsafe fn vmxoff() -> VmResult<()> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation.
    unsafe {
        asm!("vmxoff", "setc {cf}", "setz {zf}", cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    status(cf, zf)
}

/// VMREAD of `field` from the current VMCS (`kvm_vmx::insn::vmread`).
pub fn vmread(field: u32) -> VmResult<u64> {
    // SAFETY: VMREAD only reads the current VMCS; without one it fails with
    // VMfailInvalid, and outside VMX operation the host never calls it.
    smoke(unsafe { kvm_vmx::insn::vmread(field) })
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// The value must describe state the host is prepared for (host-state
/// fields decide where VM exits land).
pub unsafe fn vmwrite(field: u32, value: u64) -> VmResult<()> {
    // SAFETY: the caller guarantees the field's meaning is respected.
    smoke(unsafe { kvm_vmx::insn::vmwrite(field, value) })
}

/// INVEPT type 2: all contexts.
pub fn invept_all() -> VmResult<()> {
    // SAFETY: all-context invalidation only drops cached translations.
    smoke(unsafe { kvm_vmx::insn::invept(2, 0) })
}

/// INVVPID type 2: all contexts except VPID 0.
pub fn invvpid_all() -> VmResult<()> {
    // SAFETY: all-context invalidation only drops cached translations.
    smoke(unsafe { kvm_vmx::insn::invvpid(2, 0, 0) })
}
