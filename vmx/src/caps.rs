//! VMX capability MSRs → the control settings the driver runs with.
//!
//! Port of `adjust_vmx_controls` and `setup_vmcs_config` (kvm_vmx.c) with the
//! SDM vol. 3 appendix A rules:
//! - every VM-execution, VM-exit and VM-entry control MSR holds the
//!   allowed-0 settings in bits 31:0 (a 1 there: the control must be 1) and
//!   the allowed-1 settings in bits 63:32 (a 0 there: the control must be 0)
//!   (A.3–A.5);
//! - when IA32_VMX_BASIC bit 55 is set, the `IA32_VMX_TRUE_*` MSRs report
//!   which "default1" controls may in fact be 0 and are the ones to use
//!   (A.2); the C driver read the legacy MSRs only, which forced CR3-load/
//!   store exiting to stay on under EPT on paper while it wrote them off;
//! - the secondary controls MSR exists only when the primary controls allow
//!   "activate secondary controls" (A.3.3), IA32_VMX_EPT_VPID_CAP only when
//!   the secondary controls allow EPT or VPID (A.10).

use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};

use crate::cpu::CpuFeatures;

/// IA32_VMX_* MSR numbers (SDM vol. 4, table 2-2), from the `x86` crate.
pub use x86::msr::{
    IA32_VMX_BASIC, IA32_VMX_ENTRY_CTLS, IA32_VMX_EPT_VPID_CAP, IA32_VMX_EXIT_CTLS,
    IA32_VMX_PINBASED_CTLS, IA32_VMX_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS2,
    IA32_VMX_TRUE_ENTRY_CTLS, IA32_VMX_TRUE_EXIT_CTLS, IA32_VMX_TRUE_PINBASED_CTLS,
    IA32_VMX_TRUE_PROCBASED_CTLS,
};

/// IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist.
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;

/// One VMX control capability MSR value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlCapability(pub u64);

impl ControlCapability {
    /// Controls that must be 1 (allowed-0 settings, bits 31:0).
    pub const fn must_be_one(self) -> u32 {
        self.0 as u32
    }
    /// Controls that may be 1 (allowed-1 settings, bits 63:32).
    pub const fn may_be_one(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// Whether every control in `bits` may be 1.
    pub const fn allows(self, bits: u32) -> bool {
        bits & !self.may_be_one() == 0
    }

    /// `adjust_vmx_controls`: the controls in `min` (required) and those of
    /// `opt` the CPU allows, plus the ones it requires. `Err` carries the
    /// required controls the CPU cannot set.
    pub const fn adjust(self, min: u32, opt: u32) -> Result<u32, u32> {
        let ctl = ((min | opt) & self.may_be_one()) | self.must_be_one();
        let missing = min & !ctl;
        if missing != 0 { Err(missing) } else { Ok(ctl) }
    }

    /// `ctl` without `drop`, except controls the CPU requires.
    pub const fn without(self, ctl: u32, drop: u32) -> u32 {
        (ctl & !drop) | self.must_be_one()
    }
}

/// The raw capability MSRs that decide the controls, read once per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapabilityMsrs {
    pub basic: u64,
    /// The TRUE MSR when IA32_VMX_BASIC bit 55 is set, else the legacy one.
    pub pinbased: ControlCapability,
    pub procbased: ControlCapability,
    /// Absent when "activate secondary controls" may not be 1.
    pub procbased2: Option<ControlCapability>,
    pub exit: ControlCapability,
    pub entry: ControlCapability,
    /// IA32_VMX_EPT_VPID_CAP, 0 when the MSR does not exist.
    pub ept_vpid: u64,
}

impl CapabilityMsrs {
    /// Read the capability MSRs of the current CPU, never an MSR the
    /// others say is absent. Callers have checked CPUID.1:ECX.VMX
    /// ([`crate::check_support`]).
    pub fn read(cpu: &impl CpuFeatures) -> CapabilityMsrs {
        let basic = cpu.read_msr(IA32_VMX_BASIC);
        let true_ctls = basic & BASIC_TRUE_CONTROLS != 0;
        let pick = |legacy: u32, tru: u32| {
            ControlCapability(cpu.read_msr(if true_ctls { tru } else { legacy }))
        };
        let pinbased = pick(IA32_VMX_PINBASED_CTLS, IA32_VMX_TRUE_PINBASED_CTLS);
        let procbased = pick(IA32_VMX_PROCBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS);
        let exit = pick(IA32_VMX_EXIT_CTLS, IA32_VMX_TRUE_EXIT_CTLS);
        let entry = pick(IA32_VMX_ENTRY_CTLS, IA32_VMX_TRUE_ENTRY_CTLS);
        let procbased2 = procbased
            .allows(PrimaryControls::SECONDARY_CONTROLS.bits())
            .then(|| ControlCapability(cpu.read_msr(IA32_VMX_PROCBASED_CTLS2)));
        let ept_or_vpid =
            SecondaryControls::ENABLE_EPT.bits() | SecondaryControls::ENABLE_VPID.bits();
        let ept_vpid = match procbased2 {
            Some(c) if c.may_be_one() & ept_or_vpid != 0 => cpu.read_msr(IA32_VMX_EPT_VPID_CAP),
            _ => 0,
        };
        CapabilityMsrs {
            basic,
            pinbased,
            procbased,
            procbased2,
            exit,
            entry,
            ept_vpid,
        }
    }
}

/// The original's required (`min`) and optional (`opt`) controls.
pub mod policy {
    use super::*;

    /// Pin-based: external-interrupt and NMI exiting.
    pub const PIN_MIN: u32 =
        PinbasedControls::EXTERNAL_INTERRUPT_EXITING.bits() | PinbasedControls::NMI_EXITING.bits();
    /// Pin-based: virtual NMIs when available.
    pub const PIN_OPT: u32 = PinbasedControls::VIRTUAL_NMIS.bits();
    /// Primary: HLT, CR8/CR3 load+store, I/O bitmaps, MOV-DR, TSC offsetting,
    /// MWAIT, MONITOR and INVLPG exiting.
    pub const PROC_MIN: u32 = PrimaryControls::HLT_EXITING.bits()
        | PrimaryControls::CR8_LOAD_EXITING.bits()
        | PrimaryControls::CR8_STORE_EXITING.bits()
        | PrimaryControls::CR3_LOAD_EXITING.bits()
        | PrimaryControls::CR3_STORE_EXITING.bits()
        | PrimaryControls::USE_IO_BITMAPS.bits()
        | PrimaryControls::MOV_DR_EXITING.bits()
        | PrimaryControls::USE_TSC_OFFSETTING.bits()
        | PrimaryControls::MWAIT_EXITING.bits()
        | PrimaryControls::MONITOR_EXITING.bits()
        | PrimaryControls::INVLPG_EXITING.bits();
    /// Primary: TPR shadow, MSR bitmaps, secondary controls.
    pub const PROC_OPT: u32 = PrimaryControls::USE_TPR_SHADOW.bits()
        | PrimaryControls::USE_MSR_BITMAPS.bits()
        | PrimaryControls::SECONDARY_CONTROLS.bits();
    /// Secondary: all optional.
    pub const PROC2_OPT: u32 = SecondaryControls::VIRTUALIZE_APIC.bits()
        | SecondaryControls::WBINVD_EXITING.bits()
        | SecondaryControls::ENABLE_VPID.bits()
        | SecondaryControls::ENABLE_EPT.bits()
        | SecondaryControls::UNRESTRICTED_GUEST.bits()
        | SecondaryControls::PAUSE_LOOP_EXITING.bits()
        | SecondaryControls::ENABLE_RDTSCP.bits();
    /// Exit: 64-bit host; save the guest's DR7 (and IA32_DEBUGCTL).
    ///
    /// "Save debug controls" is a default-1 control: the C read the legacy
    /// capability MSRs, which force it to 1. Reading the TRUE MSRs (as
    /// here, when IA32_VMX_BASIC[55] says they exist) lets it be 0, and the
    /// guest's DR7 would then be lost at every exit: so it is required.
    pub const EXIT_MIN: u32 =
        ExitControls::HOST_ADDRESS_SPACE_SIZE.bits() | ExitControls::SAVE_DEBUG_CONTROLS.bits();
    /// Exit: save and load IA32_PAT.
    pub const EXIT_OPT: u32 =
        ExitControls::SAVE_IA32_PAT.bits() | ExitControls::LOAD_IA32_PAT.bits();
    /// Entry: load the guest's DR7 and IA32_DEBUGCTL (default-1, forced by
    /// the legacy MSRs the C read; see [`EXIT_MIN`]). Without it a guest's
    /// breakpoints are never armed.
    pub const ENTRY_MIN: u32 = EntryControls::LOAD_DEBUG_CONTROLS.bits();
    /// Entry: load IA32_PAT.
    pub const ENTRY_OPT: u32 = EntryControls::LOAD_IA32_PAT.bits();
    /// Dropped when the TPR shadow is on.
    pub const CR8_EXITING: u32 =
        PrimaryControls::CR8_LOAD_EXITING.bits() | PrimaryControls::CR8_STORE_EXITING.bits();
    /// Dropped when EPT is on.
    pub const CR3_AND_INVLPG_EXITING: u32 = PrimaryControls::CR3_LOAD_EXITING.bits()
        | PrimaryControls::CR3_STORE_EXITING.bits()
        | PrimaryControls::INVLPG_EXITING.bits();
}

/// Which control field a required control was missing from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlField {
    Pinbased,
    Primary,
    Secondary,
    Exit,
    Entry,
}

/// Why the CPU cannot run the original's VMCS layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapsError {
    /// Required controls (the bits) may not be 1.
    MissingControls(ControlField, u32),
    /// EPT could not be enabled (the driver requires it).
    NoEpt,
}

// IA32_VMX_EPT_VPID_CAP bits (SDM vol. 3 appendix A.10).
/// Execute-only EPT translations.
pub const EPT_CAP_EXECUTE_ONLY: u64 = 1 << 0;
/// INVEPT single-context.
pub const EPT_CAP_INVEPT_SINGLE: u64 = 1 << 25;
/// INVEPT all-context.
pub const EPT_CAP_INVEPT_GLOBAL: u64 = 1 << 26;
/// INVVPID supported.
pub const VPID_CAP_INVVPID: u64 = 1 << 32;
/// INVVPID single-context.
pub const VPID_CAP_SINGLE: u64 = 1 << 41;
/// INVVPID all-context.
pub const VPID_CAP_GLOBAL: u64 = 1 << 42;

/// The controls every VMCS of this driver starts from (`vmcs_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmcsConfig {
    /// VMCS revision identifier (IA32_VMX_BASIC bits 30:0).
    pub revision: u32,
    /// VMCS region size in bytes.
    pub size: u32,
    pub pin: u32,
    pub proc: u32,
    pub proc2: u32,
    pub exit: u32,
    pub entry: u32,
    /// The capability MSRs the controls came from, for run-time toggles
    /// (interrupt/NMI windows, CR3 exiting while the guest does not page).
    pub caps: CapabilityMsrs,
}

impl VmcsConfig {
    /// `setup_vmcs_config` with the TRUE-MSR rules (module documentation).
    pub fn from_caps(caps: CapabilityMsrs) -> Result<VmcsConfig, CapsError> {
        use policy::*;
        let pin = caps
            .pinbased
            .adjust(PIN_MIN, PIN_OPT)
            .map_err(|m| CapsError::MissingControls(ControlField::Pinbased, m))?;
        let mut proc = caps
            .procbased
            .adjust(PROC_MIN, PROC_OPT)
            .map_err(|m| CapsError::MissingControls(ControlField::Primary, m))?;
        if proc & PrimaryControls::USE_TPR_SHADOW.bits() != 0 {
            proc = caps.procbased.without(proc, CR8_EXITING);
        }
        let mut proc2 = 0;
        if proc & PrimaryControls::SECONDARY_CONTROLS.bits() != 0 {
            if let Some(c2) = caps.procbased2 {
                proc2 = c2
                    .adjust(0, PROC2_OPT)
                    .map_err(|m| CapsError::MissingControls(ControlField::Secondary, m))?;
            } else {
                proc = caps
                    .procbased
                    .without(proc, PrimaryControls::SECONDARY_CONTROLS.bits());
            }
        }
        if proc2 & SecondaryControls::ENABLE_EPT.bits() == 0 {
            return Err(CapsError::NoEpt);
        }
        proc = caps.procbased.without(proc, CR3_AND_INVLPG_EXITING);
        let exit = caps
            .exit
            .adjust(EXIT_MIN, EXIT_OPT)
            .map_err(|m| CapsError::MissingControls(ControlField::Exit, m))?;
        let entry = caps
            .entry
            .adjust(ENTRY_MIN, ENTRY_OPT)
            .map_err(|m| CapsError::MissingControls(ControlField::Entry, m))?;
        Ok(VmcsConfig {
            revision: (caps.basic & 0x7fff_ffff) as u32,
            size: ((caps.basic >> 32) & 0x1fff) as u32,
            pin,
            proc,
            proc2,
            exit,
            entry,
            caps,
        })
    }

    /// Read the MSRs of `cpu` and adjust.
    pub fn probe(cpu: &impl CpuFeatures) -> Result<VmcsConfig, CapsError> {
        VmcsConfig::from_caps(CapabilityMsrs::read(cpu))
    }

    pub fn pin_controls(&self) -> PinbasedControls {
        PinbasedControls::from_bits_truncate(self.pin)
    }
    pub fn primary_controls(&self) -> PrimaryControls {
        PrimaryControls::from_bits_truncate(self.proc)
    }
    pub fn secondary_controls(&self) -> SecondaryControls {
        SecondaryControls::from_bits_truncate(self.proc2)
    }

    /// `cpu_has_virtual_nmis`.
    pub fn virtual_nmis(&self) -> bool {
        self.pin & PinbasedControls::VIRTUAL_NMIS.bits() != 0
    }
    /// NMI-window exiting may be turned on (it needs virtual NMIs, SDM
    /// §26.2.1.1).
    pub fn nmi_window_exiting(&self) -> bool {
        self.virtual_nmis()
            && self
                .caps
                .procbased
                .allows(PrimaryControls::NMI_WINDOW_EXITING.bits())
    }
    /// `cpu_has_vmx_tpr_shadow`.
    /// The VMX-preemption timer may be activated (SDM §25.5.1; the
    /// control is toggled per entry, not part of the fixed setup).
    pub fn preemption_timer(&self) -> bool {
        self.caps
            .pinbased
            .allows(PinbasedControls::VMX_PREEMPTION_TIMER.bits())
    }
    pub fn tpr_shadow(&self) -> bool {
        self.proc & PrimaryControls::USE_TPR_SHADOW.bits() != 0
    }
    /// `cpu_has_vmx_msr_bitmap`.
    pub fn msr_bitmaps(&self) -> bool {
        self.proc & PrimaryControls::USE_MSR_BITMAPS.bits() != 0
    }
    /// `cpu_has_secondary_exec_ctrls`.
    pub fn secondary(&self) -> bool {
        self.proc & PrimaryControls::SECONDARY_CONTROLS.bits() != 0
    }
    fn has2(&self, c: SecondaryControls) -> bool {
        self.secondary() && self.proc2 & c.bits() != 0
    }
    /// `cpu_has_vmx_ept`.
    pub fn ept(&self) -> bool {
        self.has2(SecondaryControls::ENABLE_EPT)
    }
    /// `cpu_has_vmx_vpid`.
    pub fn vpid(&self) -> bool {
        self.has2(SecondaryControls::ENABLE_VPID)
    }
    /// `cpu_has_vmx_unrestricted_guest`.
    pub fn unrestricted_guest(&self) -> bool {
        self.has2(SecondaryControls::UNRESTRICTED_GUEST)
    }
    /// `cpu_has_vmx_virtualize_apic_accesses`.
    pub fn virtualize_apic_accesses(&self) -> bool {
        self.has2(SecondaryControls::VIRTUALIZE_APIC)
    }
    /// `cpu_has_vmx_ple`.
    pub fn pause_loop_exiting(&self) -> bool {
        self.has2(SecondaryControls::PAUSE_LOOP_EXITING)
    }
    /// `cpu_has_vmx_rdtscp`.
    pub fn rdtscp(&self) -> bool {
        self.has2(SecondaryControls::ENABLE_RDTSCP)
    }
    /// VM-exit saves/loads PAT and VM-entry loads it.
    pub fn load_pat(&self) -> bool {
        self.exit & ExitControls::LOAD_IA32_PAT.bits() != 0
            && self.entry & EntryControls::LOAD_IA32_PAT.bits() != 0
    }
    /// `cpu_has_vmx_ept_execute_only`.
    pub fn ept_execute_only(&self) -> bool {
        self.caps.ept_vpid & EPT_CAP_EXECUTE_ONLY != 0
    }
    /// The INVEPT the driver uses to flush one guest: single-context when
    /// offered, else all-context (`ept_sync_context`).
    pub fn invept_kind(&self) -> Option<crate::vmcs::InveptType> {
        if self.caps.ept_vpid & EPT_CAP_INVEPT_SINGLE != 0 {
            Some(crate::vmcs::InveptType::SingleContext)
        } else if self.caps.ept_vpid & EPT_CAP_INVEPT_GLOBAL != 0 {
            Some(crate::vmcs::InveptType::Global)
        } else {
            None
        }
    }
    /// The INVVPID for one VCPU (`vpid_sync_vcpu_all`).
    pub fn invvpid_kind(&self) -> Option<crate::vmcs::InvvpidType> {
        let c = self.caps.ept_vpid;
        if c & VPID_CAP_INVVPID == 0 {
            None
        } else if c & VPID_CAP_SINGLE != 0 {
            Some(crate::vmcs::InvvpidType::SingleContext)
        } else if c & VPID_CAP_GLOBAL != 0 {
            Some(crate::vmcs::InvvpidType::AllContexts)
        } else {
            None
        }
    }
}

/// `vmx_check_processor_compat`: every CPU must yield the same controls as
/// the one the module configured from (run on each CPU by cross-call).
pub fn processor_compatible(global: &VmcsConfig, cpu: &impl CpuFeatures) -> bool {
    VmcsConfig::probe(cpu).is_ok_and(|c| c == *global)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Capability MSRs of real CPUs. The expected controls are spelled out
    //! from appendix A: default1 bits stay 1 where the (TRUE) MSR's low half
    //! says so, optional bits appear iff the high half allows them.
    use super::*;
    use crate::cpu::CpuidResult;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    pub struct MsrCpu(pub BTreeMap<u32, u64>);
    impl CpuFeatures for MsrCpu {
        fn cpuid(&self, _: u32, _: u32) -> CpuidResult {
            CpuidResult {
                ecx: 1 << 5,
                ..CpuidResult::default()
            }
        }
        fn read_msr(&self, msr: u32) -> u64 {
            *self
                .0
                .get(&msr)
                .unwrap_or_else(|| panic!("rdmsr {msr:#x} would #GP"))
        }
    }

    // Legacy default1 settings (SDM A.3.1, A.3.2, A.4, A.5).
    const PIN_DEFAULT1: u32 = 0x16; // bits 1, 2, 4
    const PROC_DEFAULT1: u32 = 0x0401_e172; // bits 1, 4-6, 8, 13-16, 26
    const EXIT_DEFAULT1: u32 = 0x0003_6dff; // bits 0-8, 10, 11, 13, 14, 16, 17
    const ENTRY_DEFAULT1: u32 = 0x11ff; // bits 0-8, 12
    // What the TRUE MSRs of these CPUs let go: CR3 load/store exiting
    // (bits 15, 16) and the save/load debug controls (bit 2).
    const PROC_TRUE1: u32 = PROC_DEFAULT1 & !(1 << 15 | 1 << 16);
    const EXIT_TRUE1: u32 = EXIT_DEFAULT1 & !(1 << 2);
    const ENTRY_TRUE1: u32 = ENTRY_DEFAULT1 & !(1 << 2);

    fn msr(allowed1: u32, allowed0: u32) -> u64 {
        (u64::from(allowed1) << 32) | u64::from(allowed0)
    }

    /// A CPU with TRUE controls; `proc2_allowed1` and `ept` differ by
    /// generation.
    pub fn cpu(
        revision: u32,
        pin1: u32,
        proc2_allowed1: u32,
        exit1: u32,
        entry1: u32,
        ept: u64,
    ) -> MsrCpu {
        MsrCpu(BTreeMap::from([
            (IA32_VMX_BASIC, 0x00da_0400_0000_0000 | u64::from(revision)),
            (IA32_VMX_PINBASED_CTLS, msr(pin1, PIN_DEFAULT1)),
            (IA32_VMX_TRUE_PINBASED_CTLS, msr(pin1, PIN_DEFAULT1)),
            (IA32_VMX_PROCBASED_CTLS, msr(0xfff9_fffe, PROC_DEFAULT1)),
            (IA32_VMX_TRUE_PROCBASED_CTLS, msr(0xfff9_fffe, PROC_TRUE1)),
            (IA32_VMX_PROCBASED_CTLS2, msr(proc2_allowed1, 0)),
            (IA32_VMX_EXIT_CTLS, msr(exit1, EXIT_DEFAULT1)),
            (IA32_VMX_TRUE_EXIT_CTLS, msr(exit1, EXIT_TRUE1)),
            (IA32_VMX_ENTRY_CTLS, msr(entry1, ENTRY_DEFAULT1)),
            (IA32_VMX_TRUE_ENTRY_CTLS, msr(entry1, ENTRY_TRUE1)),
            (IA32_VMX_EPT_VPID_CAP, ept),
        ]))
    }

    /// Xeon X5570 (Nehalem-EP): EPT and VPID, no unrestricted guest, no
    /// pause-loop exiting (both came with Westmere).
    pub fn nehalem() -> MsrCpu {
        cpu(
            0xe,
            0x3f,
            0x0000_007f,
            0x003f_ffff,
            0x0000_ffff,
            0x0000_0f01_0611_4141,
        )
    }
    /// Xeon E5-2670 (Sandy Bridge-EP): adds unrestricted guest, PLE, the
    /// preemption timer.
    pub fn sandy_bridge() -> MsrCpu {
        cpu(
            0x10,
            0x7f,
            0x0000_04ff,
            0x007f_ffff,
            0x0000_ffff,
            0x0000_0f01_0611_4141,
        )
    }
    /// Xeon Gold 6140 (Skylake-SP): posted interrupts, PML, XSAVES...
    pub fn skylake() -> MsrCpu {
        cpu(
            0x4,
            0xff,
            0x0053_7fff,
            0x01ff_ffff,
            0x0003_ffff,
            0x0000_0f01_0673_4141,
        )
    }
    /// Xeon Platinum 8380 (Ice Lake-SP): adds mode-based EPT, TSC scaling...
    pub fn ice_lake() -> MsrCpu {
        cpu(
            0x4,
            0xff,
            0x02d7_7fff,
            0x03ff_ffff,
            0x0007_ffff,
            0x0000_0f01_0673_4141,
        )
    }

    fn expected_proc(cpu_proc_true1: u32) -> u32 {
        // HLT, I/O bitmaps, MOV-DR, TSC offsetting, MWAIT, MONITOR (min);
        // TPR shadow, MSR bitmaps, secondary (opt, all allowed); CR8 exits
        // dropped for the TPR shadow, CR3/INVLPG exits for EPT.
        (1 << 7)
            | (1 << 25)
            | (1 << 23)
            | (1 << 3)
            | (1 << 10)
            | (1 << 29)
            | (1 << 21)
            | (1 << 28)
            | (1 << 31)
            | cpu_proc_true1
    }

    #[test]
    fn nehalem_controls() {
        let c = VmcsConfig::probe(&nehalem()).unwrap();
        assert_eq!(c.revision, 0xe);
        assert_eq!(c.size, 0x400);
        // ext-int (0), NMI (3), virtual NMIs (5) + default1.
        assert_eq!(c.pin, 1 | 1 << 3 | 1 << 5 | PIN_DEFAULT1);
        assert_eq!(c.proc, expected_proc(PROC_TRUE1));
        // APIC accesses (0), EPT (1), RDTSCP (3), VPID (5), WBINVD (6);
        // no UG (7), no PLE (10).
        assert_eq!(c.proc2, 1 | 1 << 1 | 1 << 3 | 1 << 5 | 1 << 6);
        assert!(!c.unrestricted_guest() && !c.pause_loop_exiting());
        // Save debug controls (2), host 64-bit (9), save PAT (18), load
        // PAT (19); load debug controls (2), load PAT (14): the TRUE MSRs
        // allow the debug controls to be 0, and they must not be.
        assert_eq!(c.exit, 1 << 2 | 1 << 9 | 1 << 18 | 1 << 19 | EXIT_TRUE1);
        assert_eq!(c.entry, 1 << 2 | 1 << 14 | ENTRY_TRUE1);
        assert!(c.virtual_nmis() && c.nmi_window_exiting());
    }

    #[test]
    fn sandy_bridge_skylake_ice_lake_controls() {
        for (name, cpu) in [
            ("snb", sandy_bridge()),
            ("skx", skylake()),
            ("icx", ice_lake()),
        ] {
            let c = VmcsConfig::probe(&cpu).unwrap();
            assert_eq!(c.pin, 0x3f, "{name}");
            assert_eq!(c.proc, expected_proc(PROC_TRUE1), "{name}");
            // Everything the original asks for: 0, 1, 3, 5, 6, 7, 10.
            assert_eq!(
                c.proc2,
                1 | 1 << 1 | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 10,
                "{name}"
            );
            assert!(c.unrestricted_guest() && c.pause_loop_exiting() && c.vpid());
            assert_eq!(
                c.exit,
                1 << 2 | 1 << 9 | 1 << 18 | 1 << 19 | EXIT_TRUE1,
                "{name}"
            );
            assert_eq!(c.entry, 1 << 2 | 1 << 14 | ENTRY_TRUE1, "{name}");
            assert!(c.load_pat() && c.tpr_shadow() && c.msr_bitmaps());
            assert_eq!(
                c.invept_kind(),
                Some(crate::vmcs::InveptType::SingleContext)
            );
            assert_eq!(
                c.invvpid_kind(),
                Some(crate::vmcs::InvvpidType::SingleContext)
            );
        }
    }

    #[test]
    fn without_true_controls_default1_bits_stay_set() {
        // Bit 55 clear (as some nested hypervisors report): the legacy
        // MSRs rule, CR3 load/store exiting are default1 and stay on even
        // with EPT; the TRUE MSRs must not be read.
        let mut cpu = skylake();
        cpu.0.insert(IA32_VMX_BASIC, 0x005a_0400_0000_0004);
        for m in [
            IA32_VMX_TRUE_PINBASED_CTLS,
            IA32_VMX_TRUE_PROCBASED_CTLS,
            IA32_VMX_TRUE_EXIT_CTLS,
            IA32_VMX_TRUE_ENTRY_CTLS,
        ] {
            cpu.0.remove(&m);
        }
        let c = VmcsConfig::probe(&cpu).unwrap();
        assert_eq!(c.proc, expected_proc(PROC_DEFAULT1));
        assert_ne!(c.proc & (1 << 15 | 1 << 16), 0);
        assert_eq!(c.proc & (1 << 9), 0, "INVLPG exiting is not default1");
        assert_eq!(c.exit, 1 << 9 | 1 << 18 | 1 << 19 | EXIT_DEFAULT1);
        assert_eq!(c.entry, 1 << 14 | ENTRY_DEFAULT1);
    }

    #[test]
    fn missing_required_control_is_reported() {
        // No HLT exiting allowed (bit 7 of allowed-1 clear).
        let mut cpu = skylake();
        cpu.0
            .insert(IA32_VMX_TRUE_PROCBASED_CTLS, msr(0xfff9_ff7e, PROC_TRUE1));
        assert_eq!(
            VmcsConfig::probe(&cpu),
            Err(CapsError::MissingControls(ControlField::Primary, 1 << 7))
        );
        // No 64-bit host.
        let mut cpu = skylake();
        cpu.0
            .insert(IA32_VMX_TRUE_EXIT_CTLS, msr(0x01ff_fdff, EXIT_TRUE1));
        assert_eq!(
            VmcsConfig::probe(&cpu),
            Err(CapsError::MissingControls(ControlField::Exit, 1 << 9))
        );
    }

    #[test]
    fn no_secondary_controls_means_no_ept_and_no_read_of_msr_48b() {
        let mut cpu = skylake();
        cpu.0
            .insert(IA32_VMX_TRUE_PROCBASED_CTLS, msr(0x7ff9_fffe, PROC_TRUE1));
        cpu.0.remove(&IA32_VMX_PROCBASED_CTLS2);
        cpu.0.remove(&IA32_VMX_EPT_VPID_CAP);
        assert_eq!(VmcsConfig::probe(&cpu), Err(CapsError::NoEpt));
    }

    #[test]
    fn cpu_without_tpr_shadow_keeps_cr8_exiting() {
        let mut cpu = skylake();
        cpu.0
            .insert(IA32_VMX_TRUE_PROCBASED_CTLS, msr(0xffd9_fffe, PROC_TRUE1));
        let c = VmcsConfig::probe(&cpu).unwrap();
        assert!(!c.tpr_shadow());
        assert_eq!(c.proc & (1 << 19 | 1 << 20), 1 << 19 | 1 << 20);
    }

    #[test]
    fn processor_compat_requires_identical_controls() {
        let global = VmcsConfig::probe(&skylake()).unwrap();
        assert!(processor_compatible(&global, &skylake()));
        assert!(
            !processor_compatible(&global, &ice_lake()),
            "different MSRs"
        );
        let mut odd = skylake();
        odd.0.insert(IA32_VMX_PROCBASED_CTLS2, msr(0x0053_7ffd, 0));
        assert!(!processor_compatible(&global, &odd), "one CPU without EPT");
    }

    proptest! {
        /// The appendix A invariants for any consistent capability MSR
        /// (allowed-0 ⊆ allowed-1).
        #[test]
        fn adjust_obeys_allowed_settings(a1 in any::<u32>(), a0 in any::<u32>(), min in any::<u32>(), opt in any::<u32>()) {
            let a0 = a0 & a1;
            let cap = ControlCapability(msr(a1, a0));
            match cap.adjust(min, opt) {
                Err(missing) => {
                    prop_assert_ne!(min & !a1, 0);
                    prop_assert_eq!(missing, min & !a1);
                }
                Ok(ctl) => {
                    prop_assert_eq!(min & !a1, 0);
                    prop_assert_eq!(ctl & a0, a0, "must-be-one bits set");
                    prop_assert_eq!(ctl & !a1, 0, "must-be-zero bits clear");
                    prop_assert_eq!(ctl & min, min);
                    prop_assert_eq!(ctl & opt & a1, opt & a1);
                    prop_assert_eq!(ctl & !(min | opt | a0), 0, "nothing unasked");
                }
            }
        }
    }
}
