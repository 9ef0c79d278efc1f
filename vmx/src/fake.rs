//! A VMCS in memory for tests: a map of field encodings.
//!
//! Writes are truncated to the field's width; VMWRITE of a VM-exit
//! information field fails with "VMWRITE to read-only component", as on a
//! CPU without IA32_VMX_MISC bit 29, so a handler that writes one is caught.
//! Tests set exit information with [`FakeVmcs::set_exit_info`]. Fields never
//! written read as 0.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::vmcs::{
    FieldType, FieldWidth, InveptType, InvvpidType, VmFail, VmInstructionError, Vmcs,
};

/// One VMX instruction other than VMREAD/VMWRITE, as the fake saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeOp {
    Vmptrld(u64),
    Vmclear(u64),
    Invept(InveptType, u64),
    Invvpid(InvvpidType, u16, u64),
}

/// The fake VMCS.
#[derive(Clone, Debug, Default)]
pub struct FakeVmcs {
    fields: BTreeMap<u32, u64>,
    /// Physical address of the current VMCS, `None` before VMPTRLD.
    pub current: Option<u64>,
    /// VMPTRLD/VMCLEAR/INVEPT/INVVPID in order.
    pub ops: Vec<FakeOp>,
    /// Every successful VMWRITE, in order.
    pub writes: Vec<(u32, u64)>,
}

impl FakeVmcs {
    /// An empty, current VMCS.
    pub fn new() -> FakeVmcs {
        FakeVmcs {
            current: Some(0x1000),
            ..FakeVmcs::default()
        }
    }

    /// Set a field as the CPU would (exit information included).
    pub fn set_exit_info(&mut self, field: u32, value: u64) {
        self.fields
            .insert(field, value & FieldWidth::of(field).mask());
    }

    /// The field's value, `None` if never written.
    pub fn get(&self, field: u32) -> Option<u64> {
        self.fields.get(&field).copied()
    }

    /// Whether `field` has been written.
    pub fn has(&self, field: u32) -> bool {
        self.fields.contains_key(&field)
    }

    /// Number of fields that hold a value.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no field holds a value.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl Vmcs for FakeVmcs {
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        if self.current.is_none() {
            return Err(VmFail::Invalid);
        }
        Ok(self.fields.get(&field).copied().unwrap_or(0))
    }

    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        if self.current.is_none() {
            return Err(VmFail::Invalid);
        }
        if FieldType::of(field) == FieldType::ExitInformation {
            return Err(VmFail::Valid(Some(
                VmInstructionError::VmwriteReadOnlyComponent,
            )));
        }
        let v = value & FieldWidth::of(field).mask();
        self.fields.insert(field, v);
        self.writes.push((field, v));
        Ok(())
    }

    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        if pa & 0xfff != 0 {
            return Err(VmFail::Valid(Some(
                VmInstructionError::VmptrldInvalidAddress,
            )));
        }
        self.current = Some(pa);
        self.ops.push(FakeOp::Vmptrld(pa));
        Ok(())
    }

    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        if pa & 0xfff != 0 {
            return Err(VmFail::Valid(Some(
                VmInstructionError::VmclearInvalidAddress,
            )));
        }
        if self.current == Some(pa) {
            self.current = None;
        }
        self.ops.push(FakeOp::Vmclear(pa));
        Ok(())
    }

    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        self.ops.push(FakeOp::Invept(kind, eptp));
        Ok(())
    }

    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        self.ops.push(FakeOp::Invvpid(kind, vpid, gva));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{guest, ro};

    #[test]
    fn writes_truncate_to_the_field_width() {
        let mut v = FakeVmcs::new();
        v.write(guest::CS_SELECTOR, 0x1_f000);
        assert_eq!(v.read(guest::CS_SELECTOR), 0xf000);
        v.write(guest::CS_LIMIT, 0x1_0000_ffff);
        assert_eq!(v.read(guest::CS_LIMIT), 0xffff);
        v.write(guest::RIP, u64::MAX);
        assert_eq!(v.read(guest::RIP), u64::MAX);
    }

    #[test]
    fn exit_information_is_read_only() {
        let mut v = FakeVmcs::new();
        assert_eq!(
            v.vmwrite(ro::EXIT_QUALIFICATION, 1),
            Err(VmFail::Valid(Some(
                VmInstructionError::VmwriteReadOnlyComponent
            )))
        );
        v.set_exit_info(ro::EXIT_QUALIFICATION, 5);
        assert_eq!(v.read(ro::EXIT_QUALIFICATION), 5);
    }

    #[test]
    fn no_current_vmcs_fails_invalid() {
        let mut v = FakeVmcs::new();
        v.vmclear(0x1000).unwrap();
        assert_eq!(v.vmread(guest::RIP), Err(VmFail::Invalid));
        assert_eq!(v.read(guest::RIP), 0);
        v.vmptrld(0x2000).unwrap();
        assert_eq!(v.vmread(guest::RIP), Ok(0));
        assert_eq!(v.ops, [FakeOp::Vmclear(0x1000), FakeOp::Vmptrld(0x2000)]);
    }
}
