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
vmx_mem_operand!(vmclear, "vmclear", "VMCLEAR: flush and deactivate a VMCS.");
vmx_mem_operand!(vmptrld, "vmptrld", "VMPTRLD: make a VMCS current.");

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

/// VMREAD of `field` from the current VMCS.
pub fn vmread(field: u32) -> VmResult<u64> {
    let (value, cf, zf): (u64, u8, u8);
    // SAFETY: VMREAD only reads the current VMCS; without one it fails with
    // VMfailInvalid, and outside VMX operation the host never calls it.
    unsafe {
        asm!(
            "vmread {value}, {field}",
            "setc {cf}",
            "setz {zf}",
            field = in(reg) u64::from(field),
            value = out(reg) value,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf).map(|()| value)
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// The value must describe state the host is prepared for (host-state
/// fields decide where VM exits land).
pub unsafe fn vmwrite(field: u32, value: u64) -> VmResult<()> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the field's meaning is respected.
    unsafe {
        asm!(
            "vmwrite {field}, {value}",
            "setc {cf}",
            "setz {zf}",
            field = in(reg) u64::from(field),
            value = in(reg) value,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf)
}

/// INVEPT type 2: all contexts.
pub fn invept_all() -> VmResult<()> {
    let descriptor = [0u64; 2];
    let (cf, zf): (u8, u8);
    // SAFETY: all-context invalidation only drops cached translations.
    unsafe {
        asm!(
            "invept {kind}, [{desc}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) 2u64,
            desc = in(reg) &descriptor,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf)
}

/// INVVPID type 2: all contexts except VPID 0.
pub fn invvpid_all() -> VmResult<()> {
    let descriptor = [0u64; 2];
    let (cf, zf): (u8, u8);
    // SAFETY: all-context invalidation only drops cached translations.
    unsafe {
        asm!(
            "invvpid {kind}, [{desc}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) 2u64,
            desc = in(reg) &descriptor,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf)
}
