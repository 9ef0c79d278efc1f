//! The VMCS and the VMX instructions that touch it, behind one trait.
//!
//! Port of the `vmcs_readl`/`__vmwrite`/`vmcs_load`/`vmcs_clear`/`__invept`/
//! `__invvpid` wrappers of `kvm_vmx.c`. Field encodings are the `x86` crate's
//! `x86::vmx::vmcs::{control, guest, host, ro}` constants (SDM vol. 3
//! appendix B); their width follows from the encoding (SDM §24.11.2).
//!
//! The illumos implementation executes VMREAD/VMWRITE/VMPTRLD/VMCLEAR/
//! INVEPT/INVVPID on the current CPU (with preemption disabled, the VMCS
//! current); `crate::fake::FakeVmcs` is a map of field encodings for tests.

/// Width of a VMCS field, bits 14:13 of its encoding (SDM §24.11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldWidth {
    Bits16,
    Bits64,
    Bits32,
    /// Natural width: 64 bits on the 64-bit host.
    Natural,
}

impl FieldWidth {
    /// The width encoded in `field`.
    pub const fn of(field: u32) -> FieldWidth {
        match (field >> 13) & 3 {
            0 => FieldWidth::Bits16,
            1 => FieldWidth::Bits64,
            2 => FieldWidth::Bits32,
            _ => FieldWidth::Natural,
        }
    }

    /// The bits a field of this width keeps.
    pub const fn mask(self) -> u64 {
        match self {
            FieldWidth::Bits16 => 0xffff,
            FieldWidth::Bits32 => 0xffff_ffff,
            FieldWidth::Bits64 | FieldWidth::Natural => u64::MAX,
        }
    }
}

/// The type of a field, bits 11:10 of its encoding (SDM §24.11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Control,
    /// VM-exit information: read-only (unless the CPU allows writing all
    /// fields, IA32_VMX_MISC bit 29, which this driver never relies on).
    ExitInformation,
    GuestState,
    HostState,
}

impl FieldType {
    /// The type encoded in `field`.
    pub const fn of(field: u32) -> FieldType {
        match (field >> 10) & 3 {
            0 => FieldType::Control,
            1 => FieldType::ExitInformation,
            2 => FieldType::GuestState,
            _ => FieldType::HostState,
        }
    }
}

/// VM-instruction error numbers (SDM vol. 3 §31.4, table 31-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VmInstructionError {
    VmcallInRoot = 1,
    VmclearInvalidAddress = 2,
    VmclearVmxonPointer = 3,
    VmlaunchNonClearVmcs = 4,
    VmresumeNonLaunchedVmcs = 5,
    VmresumeAfterVmxoff = 6,
    EntryInvalidControlFields = 7,
    EntryInvalidHostState = 8,
    VmptrldInvalidAddress = 9,
    VmptrldVmxonPointer = 10,
    VmptrldWrongRevision = 11,
    UnsupportedComponent = 12,
    VmwriteReadOnlyComponent = 13,
    VmxonInRoot = 15,
    EntryInvalidExecutiveVmcs = 16,
    EntryNonLaunchedExecutiveVmcs = 17,
    EntryExecutiveNotVmxon = 18,
    VmcallNonClearVmcs = 19,
    VmcallInvalidExitControls = 20,
    VmcallWrongMsegRevision = 22,
    VmxoffUnderDualMonitor = 23,
    VmcallInvalidSmmFeatures = 24,
    EntryInvalidExecutiveControls = 25,
    EntryEventsBlockedByMovSs = 26,
    InvalidInveptInvvpidOperand = 28,
}

impl VmInstructionError {
    /// The error for the VM-instruction error field's value, if defined.
    pub const fn from_raw(raw: u32) -> Option<VmInstructionError> {
        use VmInstructionError::*;
        Some(match raw {
            1 => VmcallInRoot,
            2 => VmclearInvalidAddress,
            3 => VmclearVmxonPointer,
            4 => VmlaunchNonClearVmcs,
            5 => VmresumeNonLaunchedVmcs,
            6 => VmresumeAfterVmxoff,
            7 => EntryInvalidControlFields,
            8 => EntryInvalidHostState,
            9 => VmptrldInvalidAddress,
            10 => VmptrldVmxonPointer,
            11 => VmptrldWrongRevision,
            12 => UnsupportedComponent,
            13 => VmwriteReadOnlyComponent,
            15 => VmxonInRoot,
            16 => EntryInvalidExecutiveVmcs,
            17 => EntryNonLaunchedExecutiveVmcs,
            18 => EntryExecutiveNotVmxon,
            19 => VmcallNonClearVmcs,
            20 => VmcallInvalidExitControls,
            22 => VmcallWrongMsegRevision,
            23 => VmxoffUnderDualMonitor,
            24 => VmcallInvalidSmmFeatures,
            25 => EntryInvalidExecutiveControls,
            26 => EntryEventsBlockedByMovSs,
            28 => InvalidInveptInvvpidOperand,
            _ => return None,
        })
    }
}

/// How a VMX instruction failed (SDM vol. 3 §31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// CF=1: no current VMCS (or an invalid pointer).
    Invalid,
    /// ZF=1: the error number is in the VM-instruction error field
    /// (`None` if the CPU stored a number the SDM does not define).
    Valid(Option<VmInstructionError>),
}

/// INVEPT types (SDM vol. 3 §31.3, "INVEPT").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InveptType {
    SingleContext = 1,
    Global = 2,
}

/// INVVPID types (SDM vol. 3 §31.3, "INVVPID").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InvvpidType {
    IndividualAddress = 0,
    SingleContext = 1,
    AllContexts = 2,
    SingleContextRetainingGlobals = 3,
}

/// The current VMCS of this CPU and the VMX instructions on it.
///
/// The raw operations report VMfail; the helpers below are what the
/// handlers use. A failing VMREAD reads as 0 and a failing VMWRITE is
/// dropped, as in the C driver (which only logged them): neither can be
/// caused by the guest, only by a bug in the field set, which the fake
/// VMCS catches in tests.
pub trait Vmcs {
    /// VMREAD of `field` (an `x86::vmx::vmcs` encoding).
    fn vmread(&self, field: u32) -> Result<u64, VmFail>;
    /// VMWRITE of `value` to `field`.
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail>;
    /// VMPTRLD: make the VMCS at physical address `pa` current.
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail>;
    /// VMCLEAR the VMCS at `pa` (flush it to memory, state "clear").
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail>;
    /// INVEPT of `kind` for the EPT pointer `eptp`.
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail>;
    /// INVVPID of `kind` for `vpid` (and `gva` for individual-address).
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail>;

    /// Read a field, 0 if VMREAD failed.
    fn read(&self, field: u32) -> u64 {
        self.vmread(field).unwrap_or(0)
    }
    /// Read a 32-bit field.
    fn read32(&self, field: u32) -> u32 {
        self.read(field) as u32
    }
    /// Write a field, dropping a VMfail (see the trait documentation).
    fn write(&mut self, field: u32, value: u64) {
        let _ = self.vmwrite(field, value);
    }
    /// Set `bits` in a 32-bit field (`vmcs_set_bits`).
    fn set_bits(&mut self, field: u32, bits: u32) {
        let v = self.read32(field) | bits;
        self.write(field, u64::from(v));
    }
    /// Clear `bits` in a 32-bit field (`vmcs_clear_bits`).
    fn clear_bits(&mut self, field: u32, bits: u32) {
        let v = self.read32(field) & !bits;
        self.write(field, u64::from(v));
    }
}

/// A [`Vmcs`] that fires the `kvm-vmx-*` probes (inventory §4, probes
/// 15–20) around each instruction, as the C wrappers did.
pub struct Traced<'a, V: Vmcs, P: crate::env::ProbeSink> {
    pub vmcs: &'a mut V,
    pub probes: core::cell::RefCell<&'a mut P>,
}

impl<'a, V: Vmcs, P: crate::env::ProbeSink> Traced<'a, V, P> {
    pub fn new(vmcs: &'a mut V, probes: &'a mut P) -> Self {
        Traced {
            vmcs,
            probes: core::cell::RefCell::new(probes),
        }
    }
    fn fire(&self, p: crate::env::Probe) {
        if let Ok(mut s) = self.probes.try_borrow_mut() {
            s.probe(p);
        }
    }
}

impl<V: Vmcs, P: crate::env::ProbeSink> Vmcs for Traced<'_, V, P> {
    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        let r = self.vmcs.vmread(field);
        let value = *r.as_ref().unwrap_or(&0);
        self.fire(crate::env::Probe::VmxVmread { field, value });
        r
    }
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        let r = self.vmcs.vmwrite(field, value);
        let err = match r {
            Ok(()) => 0,
            Err(VmFail::Invalid) => 1,
            Err(VmFail::Valid(_)) => 2,
        };
        self.fire(crate::env::Probe::VmxVmwrite { field, value, err });
        r
    }
    fn vmptrld(&mut self, pa: u64) -> Result<(), VmFail> {
        self.fire(crate::env::Probe::VmxVmptrld { pa });
        self.vmcs.vmptrld(pa)
    }
    fn vmclear(&mut self, pa: u64) -> Result<(), VmFail> {
        self.fire(crate::env::Probe::VmxVmclear { pa });
        self.vmcs.vmclear(pa)
    }
    fn invept(&mut self, kind: InveptType, eptp: u64) -> Result<(), VmFail> {
        self.fire(crate::env::Probe::VmxInvept { eptp, gpa: 0 });
        self.vmcs.invept(kind, eptp)
    }
    fn invvpid(&mut self, kind: InvvpidType, vpid: u16, gva: u64) -> Result<(), VmFail> {
        self.fire(crate::env::Probe::VmxInvvpid { vpid, gva });
        self.vmcs.invvpid(kind, vpid, gva)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{control, guest, host, ro};

    #[test]
    fn traced_vmcs_fires_the_vmx_probes() {
        use crate::env::{Probe, ProbeSink};
        struct Rec(std::vec::Vec<Probe>);
        impl ProbeSink for Rec {
            fn probe(&mut self, p: Probe) {
                self.0.push(p);
            }
        }
        let mut f = crate::fake::FakeVmcs::new();
        let mut rec = Rec(std::vec::Vec::new());
        {
            let mut t = Traced::new(&mut f, &mut rec);
            t.write(guest::RIP, 0x10);
            assert_eq!(t.read(guest::RIP), 0x10);
            let _ = t.vmwrite(ro::EXIT_REASON, 1);
            let _ = t.vmclear(0x2000);
            let _ = t.invvpid(InvvpidType::SingleContext, 3, 0);
        }
        assert_eq!(
            rec.0,
            [
                Probe::VmxVmwrite {
                    field: guest::RIP,
                    value: 0x10,
                    err: 0
                },
                Probe::VmxVmread {
                    field: guest::RIP,
                    value: 0x10
                },
                Probe::VmxVmwrite {
                    field: ro::EXIT_REASON,
                    value: 1,
                    err: 2
                },
                Probe::VmxVmclear { pa: 0x2000 },
                Probe::VmxInvvpid { vpid: 3, gva: 0 },
            ]
        );
    }

    #[test]
    fn widths_and_types_follow_the_encoding() {
        // SDM appendix B: 16-bit guest selectors, 64-bit controls,
        // 32-bit exit information, natural-width host state.
        assert_eq!(FieldWidth::of(guest::CS_SELECTOR), FieldWidth::Bits16);
        assert_eq!(FieldWidth::of(control::EPTP_FULL), FieldWidth::Bits64);
        assert_eq!(FieldWidth::of(ro::EXIT_REASON), FieldWidth::Bits32);
        assert_eq!(FieldWidth::of(host::RIP), FieldWidth::Natural);
        assert_eq!(FieldType::of(control::VPID), FieldType::Control);
        assert_eq!(
            FieldType::of(ro::EXIT_QUALIFICATION),
            FieldType::ExitInformation
        );
        assert_eq!(FieldType::of(guest::RIP), FieldType::GuestState);
        assert_eq!(FieldType::of(host::CR3), FieldType::HostState);
    }

    #[test]
    fn instruction_errors_round_trip() {
        for n in 0..40u32 {
            if let Some(e) = VmInstructionError::from_raw(n) {
                assert_eq!(e as u32, n);
            }
        }
        assert_eq!(VmInstructionError::from_raw(14), None);
        assert_eq!(
            VmInstructionError::from_raw(7),
            Some(VmInstructionError::EntryInvalidControlFields)
        );
    }
}
