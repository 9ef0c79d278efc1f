//! May this CPU run the driver? The attach-time decision.
//!
//! The design center is Intel VMX with EPT: the C driver refuses to start
//! without VMX (`vmx_has_kvm_support`), with VMX locked off by firmware
//! (`vmx_disabled_by_bios`) or without EPT (`vmx_hardware_setup`, "insufficient
//! hardware support (lacking EPT)"), and it requires a write-back VMCS no
//! larger than a page (`setup_vmcs_config`). The C driver found out at the
//! first open; we decide at attach so `add_drv kvm` fails with one clear line.
//!
//! On illumos HMA owns VMXON. When IA32_FEATURE_CONTROL is still unlocked HMA
//! sets and locks it itself, so only "locked without VMXON outside SMX" is a
//! refusal.

use crate::cpu::CpuFeatures;
use crate::msr::{
    FEATURE_CONTROL_LOCKED, FEATURE_CONTROL_VMXON_OUTSIDE_SMX, IA32_FEATURE_CONTROL,
    IA32_VMX_BASIC, IA32_VMX_EPT_VPID_CAP, IA32_VMX_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS2,
    IA32_VMX_TRUE_PROCBASED_CTLS,
};

/// Why the driver will not attach on this CPU. Each has one log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// CPUID.1:ECX.VMX[bit 5] is clear (not Intel, VMX hidden by a
    /// hypervisor, or an AMD CPU: SVM is not supported).
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with VMXON outside SMX disabled.
    DisabledByFirmware,
    /// IA32_VMX_BASIC reports a VMCS region larger than 4 KiB.
    VmcsTooLarge,
    /// IA32_VMX_BASIC bit 48: VMX structures limited to 32-bit addresses.
    VmcsAddressWidth32,
    /// IA32_VMX_BASIC bits 53:50 are not 6 (write-back).
    VmcsNotWriteBack,
    /// The secondary processor-based controls cannot be activated, so EPT
    /// cannot be either.
    NoSecondaryControls,
    /// IA32_VMX_PROCBASED_CTLS2 does not allow "enable EPT".
    NoEpt,
    /// EPT lacks a 4-level page walk, write-back paging structures or INVEPT.
    EptIncomplete,
}

impl Refusal {
    /// The one line attach logs (`cmn_err(CE_WARN, ...)`).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoVmx => "kvm: no hardware support: the CPU does not offer Intel VMX",
            Refusal::DisabledByFirmware => {
                "kvm: VMX is disabled by the firmware (IA32_FEATURE_CONTROL locked without VMXON); enable virtualization in the BIOS setup"
            }
            Refusal::VmcsTooLarge => "kvm: insufficient hardware support (VMCS larger than 4 KiB)",
            Refusal::VmcsAddressWidth32 => {
                "kvm: insufficient hardware support (VMX limited to 32-bit physical addresses)"
            }
            Refusal::VmcsNotWriteBack => {
                "kvm: insufficient hardware support (VMCS memory type is not write-back)"
            }
            Refusal::NoSecondaryControls => {
                "kvm: insufficient hardware support (lacking EPT: no secondary VMX controls)"
            }
            Refusal::NoEpt => "kvm: insufficient hardware support (lacking EPT)",
            Refusal::EptIncomplete => {
                "kvm: insufficient hardware support (EPT without 4-level walk, write-back tables or INVEPT)"
            }
        }
    }
}

/// What the CPU offers beyond the required minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxSupport {
    /// VMCS revision identifier (IA32_VMX_BASIC bits 30:0).
    pub vmcs_revision: u32,
    /// Bytes the CPU uses of a VMCS region (IA32_VMX_BASIC bits 44:32).
    pub vmcs_size: u32,
    /// The TRUE_* control MSRs exist (IA32_VMX_BASIC bit 55).
    pub true_controls: bool,
    /// Secondary control "enable VPID".
    pub vpid: bool,
    /// Secondary control "unrestricted guest": real mode runs without vm86.
    pub unrestricted_guest: bool,
    /// EPT may map 2 MiB pages (IA32_VMX_EPT_VPID_CAP bit 16).
    pub ept_2m_pages: bool,
    /// EPT may map 1 GiB pages (bit 17).
    pub ept_1g_pages: bool,
    /// EPT accessed and dirty flags (bit 21).
    pub ept_accessed_dirty: bool,
}

// IA32_VMX_BASIC fields (SDM vol. 3 appendix A.1).
const BASIC_REVISION_MASK: u64 = 0x7fff_ffff;
const BASIC_SIZE_SHIFT: u32 = 32;
const BASIC_SIZE_MASK: u64 = 0x1fff;
const BASIC_ADDR_WIDTH_32: u64 = 1 << 48;
const BASIC_MEMTYPE_SHIFT: u32 = 50;
const BASIC_MEMTYPE_MASK: u64 = 0xf;
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;
const MEMTYPE_WRITE_BACK: u64 = 6;
const PAGE_SIZE: u32 = 4096;

// Control MSRs: bits 63:32 are the allowed-1 settings (appendix A.3).
const PROCBASED_ACTIVATE_SECONDARY: u32 = 1 << 31;
const SECONDARY_ENABLE_EPT: u32 = 1 << 1;
const SECONDARY_ENABLE_VPID: u32 = 1 << 5;
const SECONDARY_UNRESTRICTED_GUEST: u32 = 1 << 7;

// IA32_VMX_EPT_VPID_CAP (appendix A.10).
const EPT_WALK_LENGTH_4: u64 = 1 << 6;
const EPT_WRITE_BACK: u64 = 1 << 14;
const EPT_2M_PAGES: u64 = 1 << 16;
const EPT_1G_PAGES: u64 = 1 << 17;
const EPT_INVEPT: u64 = 1 << 20;
const EPT_ACCESSED_DIRTY: u64 = 1 << 21;

const CPUID_LEAF_FEATURES: u32 = 1;
const CPUID_1_ECX_VMX: u32 = 1 << 5;

/// The allowed-1 half of a VMX control capability MSR.
fn allowed_1(msr: u64) -> u32 {
    (msr >> 32) as u32
}

/// Decide whether the driver can run on `cpu`, reading only what CPUID has
/// said exists.
pub fn check_support(cpu: &impl CpuFeatures) -> Result<VmxSupport, Refusal> {
    if cpu.cpuid(CPUID_LEAF_FEATURES, 0).ecx & CPUID_1_ECX_VMX == 0 {
        return Err(Refusal::NoVmx);
    }

    let feature_control = cpu.read_msr(IA32_FEATURE_CONTROL);
    let locked = feature_control & FEATURE_CONTROL_LOCKED != 0;
    if locked && feature_control & FEATURE_CONTROL_VMXON_OUTSIDE_SMX == 0 {
        return Err(Refusal::DisabledByFirmware);
    }

    let basic = cpu.read_msr(IA32_VMX_BASIC);
    let vmcs_size = ((basic >> BASIC_SIZE_SHIFT) & BASIC_SIZE_MASK) as u32;
    if vmcs_size > PAGE_SIZE {
        return Err(Refusal::VmcsTooLarge);
    }
    if basic & BASIC_ADDR_WIDTH_32 != 0 {
        return Err(Refusal::VmcsAddressWidth32);
    }
    if (basic >> BASIC_MEMTYPE_SHIFT) & BASIC_MEMTYPE_MASK != MEMTYPE_WRITE_BACK {
        return Err(Refusal::VmcsNotWriteBack);
    }
    let true_controls = basic & BASIC_TRUE_CONTROLS != 0;

    // "Activate secondary controls" is a default-0 control, so its allowed-1
    // bit reads the same in the TRUE and the legacy MSR; read the one the SDM
    // says to use (appendix A.3.2).
    let procbased_msr = if true_controls {
        IA32_VMX_TRUE_PROCBASED_CTLS
    } else {
        IA32_VMX_PROCBASED_CTLS
    };
    if allowed_1(cpu.read_msr(procbased_msr)) & PROCBASED_ACTIVATE_SECONDARY == 0 {
        return Err(Refusal::NoSecondaryControls);
    }

    let secondary = allowed_1(cpu.read_msr(IA32_VMX_PROCBASED_CTLS2));
    if secondary & SECONDARY_ENABLE_EPT == 0 {
        return Err(Refusal::NoEpt);
    }

    let ept = cpu.read_msr(IA32_VMX_EPT_VPID_CAP);
    let required = EPT_WALK_LENGTH_4 | EPT_WRITE_BACK | EPT_INVEPT;
    if ept & required != required {
        return Err(Refusal::EptIncomplete);
    }

    Ok(VmxSupport {
        vmcs_revision: (basic & BASIC_REVISION_MASK) as u32,
        vmcs_size,
        true_controls,
        vpid: secondary & SECONDARY_ENABLE_VPID != 0,
        unrestricted_guest: secondary & SECONDARY_UNRESTRICTED_GUEST != 0,
        ept_2m_pages: ept & EPT_2M_PAGES != 0,
        ept_1g_pages: ept & EPT_1G_PAGES != 0,
        ept_accessed_dirty: ept & EPT_ACCESSED_DIRTY != 0,
    })
}

#[cfg(test)]
mod tests {
    //! Each case is a CPU described by the raw values its CPUID and MSRs
    //! return; the expected decision follows from the SDM bit definitions
    //! quoted in the test, not from the code above.
    use super::*;
    use crate::cpu::CpuidResult;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// A CPU whose MSRs are a map; reading an MSR it lacks is recorded, as
    /// hardware would #GP there.
    struct FakeCpu {
        leaf1_ecx: u32,
        msrs: BTreeMap<u32, u64>,
        faults: RefCell<Vec<u32>>,
    }

    impl CpuFeatures for FakeCpu {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
            match leaf {
                1 => CpuidResult {
                    ecx: self.leaf1_ecx,
                    ..CpuidResult::default()
                },
                _ => CpuidResult::default(),
            }
        }
        fn read_msr(&self, msr: u32) -> u64 {
            match self.msrs.get(&msr) {
                Some(v) => *v,
                None => {
                    self.faults.borrow_mut().push(msr);
                    0
                }
            }
        }
    }

    /// A Skylake server as `rdmsr` reports it: VMCS revision 4, 1 KiB,
    /// write-back, TRUE controls; secondary controls with EPT, VPID and
    /// unrestricted guest; EPT with 4-level walk, WB, 2M/1G pages, INVEPT, A/D.
    fn skylake() -> FakeCpu {
        FakeCpu {
            // CPUID.1:ECX of a Xeon Gold 6140 (VMX = bit 5 set).
            leaf1_ecx: 0x7ffe_fbff,
            msrs: BTreeMap::from([
                (0x3a, 0x5),
                (0x480, 0x00da_0400_0000_0004),
                (0x482, 0xfff9_fffe_0401_e172),
                (0x48e, 0xfff9_fffe_0400_6172),
                (0x48b, 0x00ff_bfff_0000_0000),
                (0x48c, 0x0000_0f01_0673_4141),
            ]),
            faults: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn skylake_is_supported_with_its_optional_features() {
        let cpu = skylake();
        let s = check_support(&cpu).expect("Skylake has VMX, EPT and a WB VMCS");
        assert_eq!(s.vmcs_revision, 4);
        assert_eq!(s.vmcs_size, 0x400);
        assert!(s.true_controls);
        assert!(s.vpid && s.unrestricted_guest);
        assert!(s.ept_2m_pages && s.ept_1g_pages && s.ept_accessed_dirty);
        assert!(cpu.faults.borrow().is_empty());
    }

    #[test]
    fn cpuid_without_vmx_bit_refuses_and_reads_no_msr() {
        // An AMD EPYC: CPUID.1:ECX bit 5 is reserved (0); its VMX MSRs would #GP.
        let mut cpu = skylake();
        cpu.leaf1_ecx = 0x7ed8_320b;
        cpu.msrs.clear();
        assert_eq!(check_support(&cpu), Err(Refusal::NoVmx));
        assert!(cpu.faults.borrow().is_empty(), "no MSR may be read");
    }

    #[test]
    fn feature_control_locked_without_vmxon_is_firmware_disabled() {
        // Bit 0 lock set, bit 2 (VMXON outside SMX) clear: VMXON would #GP.
        let mut cpu = skylake();
        cpu.msrs.insert(0x3a, 0x1);
        assert_eq!(check_support(&cpu), Err(Refusal::DisabledByFirmware));
        // Locked with only SMX-VMXON (bit 1) is still unusable outside SMX.
        cpu.msrs.insert(0x3a, 0x3);
        assert_eq!(check_support(&cpu), Err(Refusal::DisabledByFirmware));
    }

    #[test]
    fn feature_control_unlocked_is_left_to_hma() {
        // Unlocked: software (HMA) may still set bit 2 and lock.
        let mut cpu = skylake();
        cpu.msrs.insert(0x3a, 0x0);
        assert!(check_support(&cpu).is_ok());
    }

    #[test]
    fn core2_without_secondary_controls_lacks_ept() {
        // Merom: allowed-1 bit 31 of the processor-based controls is 0.
        let mut cpu = skylake();
        cpu.msrs.insert(0x480, 0x005a_0400_0000_000d);
        cpu.msrs.insert(0x482, 0x7ff9_fffe_0401_e172);
        assert_eq!(check_support(&cpu), Err(Refusal::NoSecondaryControls));
        assert!(cpu.faults.borrow().is_empty());
    }

    #[test]
    fn penryn_with_secondary_controls_but_no_ept_is_refused() {
        // Penryn: secondary controls exist (virtualize APIC accesses,
        // WBINVD exiting) but allowed-1 bit 1 "enable EPT" is 0.
        let mut cpu = skylake();
        cpu.msrs.insert(0x480, 0x005a_0400_0000_000d);
        cpu.msrs.insert(0x482, 0xf7f9_fffe_0401_e172);
        cpu.msrs.insert(0x48b, 0x0000_0041_0000_0000);
        cpu.msrs.remove(&0x48c);
        assert_eq!(check_support(&cpu), Err(Refusal::NoEpt));
        assert!(
            cpu.faults.borrow().is_empty(),
            "EPT cap MSR must not be read"
        );
    }

    #[test]
    fn vmcs_must_be_write_back_and_at_most_a_page() {
        let mut cpu = skylake();
        // Memory type 0 (uncacheable) in bits 53:50.
        cpu.msrs.insert(0x480, 0x0080_0400_0000_0004);
        assert_eq!(check_support(&cpu), Err(Refusal::VmcsNotWriteBack));
        // Size 0x1001 bytes in bits 44:32.
        cpu.msrs.insert(0x480, 0x00d8_1001_0000_0004);
        assert_eq!(check_support(&cpu), Err(Refusal::VmcsTooLarge));
        // Bit 48: physical addresses limited to 32 bits.
        cpu.msrs.insert(0x480, 0x00d9_0400_0000_0004);
        assert_eq!(check_support(&cpu), Err(Refusal::VmcsAddressWidth32));
    }

    #[test]
    fn legacy_procbased_msr_is_read_without_true_controls() {
        // Bit 55 clear: TRUE_PROCBASED_CTLS (0x48e) does not exist.
        let mut cpu = skylake();
        cpu.msrs.insert(0x480, 0x0058_0400_0000_0004);
        cpu.msrs.remove(&0x48e);
        let s = check_support(&cpu).expect("legacy controls allow secondary");
        assert!(!s.true_controls);
        assert!(cpu.faults.borrow().is_empty());
    }

    #[test]
    fn ept_needs_four_level_walk_write_back_and_invept() {
        for missing in [1u64 << 6, 1 << 14, 1 << 20] {
            let mut cpu = skylake();
            cpu.msrs.insert(0x48c, 0x0000_0f01_0673_4141 & !missing);
            assert_eq!(
                check_support(&cpu),
                Err(Refusal::EptIncomplete),
                "without EPT cap bit {:#x}",
                missing
            );
        }
    }

    #[test]
    fn every_refusal_has_a_distinct_single_line_message() {
        let all = [
            Refusal::NoVmx,
            Refusal::DisabledByFirmware,
            Refusal::VmcsTooLarge,
            Refusal::VmcsAddressWidth32,
            Refusal::VmcsNotWriteBack,
            Refusal::NoSecondaryControls,
            Refusal::NoEpt,
            Refusal::EptIncomplete,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for r in all {
            let m = r.message();
            assert!(m.starts_with("kvm: "), "{m}");
            assert!(!m.contains('\n') && !m.contains('%'), "{m}");
            assert!(seen.insert(m), "duplicate message {m}");
        }
    }
}
