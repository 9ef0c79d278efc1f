//! MSRs and bits the VMX support check reads. MSR numbers come from the `x86`
//! crate; the bit layouts follow the SDM (vol. 3 §23.7 and appendix A).

pub use x86::msr::{
    IA32_FEATURE_CONTROL, IA32_VMX_BASIC, IA32_VMX_EPT_VPID_CAP, IA32_VMX_PROCBASED_CTLS,
    IA32_VMX_PROCBASED_CTLS2, IA32_VMX_TRUE_PROCBASED_CTLS,
};

/// IA32_FEATURE_CONTROL bit 0: locked; writes #GP until reset (SDM vol. 3 §23.7).
pub const FEATURE_CONTROL_LOCKED: u64 = 1 << 0;
/// IA32_FEATURE_CONTROL bit 2: VMXON allowed outside SMX operation.
pub const FEATURE_CONTROL_VMXON_OUTSIDE_SMX: u64 = 1 << 2;
