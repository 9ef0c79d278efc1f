//! The VMX instructions themselves, with their outcome decoded (SDM vol. 3
//! §31.2: CF = 1 is VMfailInvalid; ZF = 1 is VMfailValid, whose error
//! number is read from the current VMCS). One copy for every host that
//! runs VMX code: the illumos kernel (`src/illumos/vmx_host.rs`) and the
//! bare-metal Bochs host (`tests/bochs`). Tests never execute them (they
//! fault outside VMX root operation); they use `fake` instead.
//!
//! # Safety
//! Every function requires VMX root operation (on illumos HMA has run
//! VMXON; on bare metal the host did) and, where it names one, a VMCS or
//! descriptor the caller owns.

use core::arch::asm;

use crate::vmcs::{VmFail, VmInstructionError};

/// VMCS field "VM-instruction error" (SDM vol. 3 appendix B.3.3).
const VM_INSTRUCTION_ERROR: u32 = x86::vmx::vmcs::ro::VM_INSTRUCTION_ERROR;

/// The outcome in CF/ZF; VMfailValid reads the error number.
fn status(cf: u8, zf: u8) -> Result<(), VmFail> {
    if cf != 0 {
        Err(VmFail::Invalid)
    } else if zf != 0 {
        Err(VmFail::Valid(error_number()))
    } else {
        Ok(())
    }
}

/// The error number of the last VMfailValid (a VMCS is current, so the
/// VMREAD works; a number the SDM does not define is `None`).
fn error_number() -> Option<VmInstructionError> {
    // SAFETY: only called after VMfailValid: VMX root, a current VMCS.
    let (raw, cf, zf) = unsafe { vmread_flags(VM_INSTRUCTION_ERROR) };
    if cf != 0 || zf != 0 {
        return None;
    }
    VmInstructionError::from_raw(raw as u32)
}

/// VMREAD with the raw CF/ZF.
///
/// # Safety
/// VMX root operation.
unsafe fn vmread_flags(field: u32) -> (u64, u8, u8) {
    let (value, cf, zf): (u64, u8, u8);
    // SAFETY: VMREAD only reads the current VMCS (caller: VMX root).
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
    (value, cf, zf)
}

/// VMREAD of `field` from the current VMCS.
///
/// # Safety
/// VMX root operation.
pub unsafe fn vmread(field: u32) -> Result<u64, VmFail> {
    // SAFETY: caller's contract.
    let (value, cf, zf) = unsafe { vmread_flags(field) };
    status(cf, zf).map(|()| value)
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// VMX root operation; the value is state the host is prepared for (host
/// fields decide where VM exits land).
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
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

/// VMPTRLD: make the VMCS at physical address `pa` current.
///
/// # Safety
/// VMX root operation; `pa` is a VMCS region the caller owns, initialised
/// with the revision id.
pub unsafe fn vmptrld(pa: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: caller's contract; the operand is a live local.
    unsafe {
        asm!(
            "vmptrld qword ptr [{pa}]",
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

/// VMCLEAR: flush the VMCS at `pa` to memory and deactivate it.
///
/// # Safety
/// As [`vmptrld`].
pub unsafe fn vmclear(pa: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: caller's contract; the operand is a live local.
    unsafe {
        asm!(
            "vmclear qword ptr [{pa}]",
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

/// INVEPT of type `kind` (1 single context, 2 all contexts) for `eptp`.
///
/// # Safety
/// VMX root operation (it only drops cached translations).
pub unsafe fn invept(kind: u64, eptp: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: the descriptor is a live 16-byte local.
    unsafe {
        asm!(
            "invept {kind}, [{desc}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) kind,
            desc = in(reg) &desc,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf)
}

/// INVVPID of type `kind` for `vpid` (and `gva` for type 0).
///
/// # Safety
/// VMX root operation (it only drops cached translations).
pub unsafe fn invvpid(kind: u64, vpid: u16, gva: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [u64::from(vpid), gva];
    let (cf, zf): (u8, u8);
    // SAFETY: the descriptor is a live 16-byte local.
    unsafe {
        asm!(
            "invvpid {kind}, [{desc}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) kind,
            desc = in(reg) &desc,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        );
    }
    status(cf, zf)
}
