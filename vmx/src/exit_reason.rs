//! VM-exit reasons: the basic exit reason in bits 15:0 of the VMCS
//! "exit reason" field (SDM vol. 3 appendix C, "VMX basic exit reasons").
//!
//! Names follow the C driver's `EXIT_REASON_*` (kvm_vmx.h) where it had one,
//! because operators' D scripts (`tools/dlib/exitno.d`, `kvm-triple.d`) use
//! them; the rest take the SDM's wording.

macro_rules! exit_reasons {
    ($( $(#[$m:meta])* $variant:ident = $value:literal => $name:literal, )*) => {
        /// A basic VM-exit reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u16)]
        pub enum ExitReason {
            $( $(#[$m])* $variant = $value, )*
        }

        impl ExitReason {
            /// Every defined reason, ascending.
            pub const ALL: &'static [ExitReason] = &[ $( ExitReason::$variant, )* ];

            /// The reason for basic exit reason `basic`, if the SDM defines it.
            pub const fn from_basic(basic: u16) -> Option<ExitReason> {
                match basic {
                    $( $value => Some(ExitReason::$variant), )*
                    _ => None,
                }
            }

            /// `EXIT_REASON_...`, as exitno.d spells it.
            pub const fn name(self) -> &'static str {
                match self {
                    $( ExitReason::$variant => $name, )*
                }
            }
        }
    };
}

exit_reasons! {
    ExceptionNmi = 0 => "EXIT_REASON_EXCEPTION_NMI",
    ExternalInterrupt = 1 => "EXIT_REASON_EXTERNAL_INTERRUPT",
    TripleFault = 2 => "EXIT_REASON_TRIPLE_FAULT",
    InitSignal = 3 => "EXIT_REASON_INIT_SIGNAL",
    StartupIpi = 4 => "EXIT_REASON_STARTUP_IPI",
    IoSmi = 5 => "EXIT_REASON_IO_SMI",
    OtherSmi = 6 => "EXIT_REASON_OTHER_SMI",
    /// Interrupt window (the C driver's "pending interrupt").
    PendingInterrupt = 7 => "EXIT_REASON_PENDING_INTERRUPT",
    NmiWindow = 8 => "EXIT_REASON_NMI_WINDOW",
    TaskSwitch = 9 => "EXIT_REASON_TASK_SWITCH",
    Cpuid = 10 => "EXIT_REASON_CPUID",
    Getsec = 11 => "EXIT_REASON_GETSEC",
    Hlt = 12 => "EXIT_REASON_HLT",
    Invd = 13 => "EXIT_REASON_INVD",
    Invlpg = 14 => "EXIT_REASON_INVLPG",
    Rdpmc = 15 => "EXIT_REASON_RDPMC",
    Rdtsc = 16 => "EXIT_REASON_RDTSC",
    Rsm = 17 => "EXIT_REASON_RSM",
    Vmcall = 18 => "EXIT_REASON_VMCALL",
    Vmclear = 19 => "EXIT_REASON_VMCLEAR",
    Vmlaunch = 20 => "EXIT_REASON_VMLAUNCH",
    Vmptrld = 21 => "EXIT_REASON_VMPTRLD",
    Vmptrst = 22 => "EXIT_REASON_VMPTRST",
    Vmread = 23 => "EXIT_REASON_VMREAD",
    Vmresume = 24 => "EXIT_REASON_VMRESUME",
    Vmwrite = 25 => "EXIT_REASON_VMWRITE",
    /// VMXOFF (the C driver's "VMOFF").
    Vmxoff = 26 => "EXIT_REASON_VMOFF",
    /// VMXON (the C driver's "VMON").
    Vmxon = 27 => "EXIT_REASON_VMON",
    CrAccess = 28 => "EXIT_REASON_CR_ACCESS",
    DrAccess = 29 => "EXIT_REASON_DR_ACCESS",
    IoInstruction = 30 => "EXIT_REASON_IO_INSTRUCTION",
    MsrRead = 31 => "EXIT_REASON_MSR_READ",
    MsrWrite = 32 => "EXIT_REASON_MSR_WRITE",
    /// VM-entry failure: invalid guest state.
    InvalidGuestState = 33 => "EXIT_REASON_INVALID_STATE",
    /// VM-entry failure: MSR loading.
    MsrLoadFail = 34 => "EXIT_REASON_MSR_LOAD_FAIL",
    MwaitInstruction = 36 => "EXIT_REASON_MWAIT_INSTRUCTION",
    MonitorTrapFlag = 37 => "EXIT_REASON_MONITOR_TRAP_FLAG",
    MonitorInstruction = 39 => "EXIT_REASON_MONITOR_INSTRUCTION",
    PauseInstruction = 40 => "EXIT_REASON_PAUSE_INSTRUCTION",
    /// VM-entry failure: machine-check event.
    MceDuringVmentry = 41 => "EXIT_REASON_MCE_DURING_VMENTRY",
    TprBelowThreshold = 43 => "EXIT_REASON_TPR_BELOW_THRESHOLD",
    ApicAccess = 44 => "EXIT_REASON_APIC_ACCESS",
    VirtualizedEoi = 45 => "EXIT_REASON_EOI_INDUCED",
    GdtrIdtrAccess = 46 => "EXIT_REASON_GDTR_IDTR",
    LdtrTrAccess = 47 => "EXIT_REASON_LDTR_TR",
    EptViolation = 48 => "EXIT_REASON_EPT_VIOLATION",
    EptMisconfig = 49 => "EXIT_REASON_EPT_MISCONFIG",
    Invept = 50 => "EXIT_REASON_INVEPT",
    Rdtscp = 51 => "EXIT_REASON_RDTSCP",
    PreemptionTimer = 52 => "EXIT_REASON_PREEMPTION_TIMER",
    Invvpid = 53 => "EXIT_REASON_INVVPID",
    Wbinvd = 54 => "EXIT_REASON_WBINVD",
    Xsetbv = 55 => "EXIT_REASON_XSETBV",
    ApicWrite = 56 => "EXIT_REASON_APIC_WRITE",
    Rdrand = 57 => "EXIT_REASON_RDRAND",
    Invpcid = 58 => "EXIT_REASON_INVPCID",
    Vmfunc = 59 => "EXIT_REASON_VMFUNC",
    Encls = 60 => "EXIT_REASON_ENCLS",
    Rdseed = 61 => "EXIT_REASON_RDSEED",
    PmlFull = 62 => "EXIT_REASON_PML_FULL",
    Xsaves = 63 => "EXIT_REASON_XSAVES",
    Xrstors = 64 => "EXIT_REASON_XRSTORS",
}

/// Bit 31 of the exit-reason field: the exit is a VM-entry failure.
pub const EXIT_REASON_ENTRY_FAILURE: u32 = 1 << 31;

/// The basic reason (bits 15:0) of a raw exit-reason field.
pub const fn basic(raw: u32) -> u16 {
    (raw & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SDM vol. 3 appendix C, table C-1: number → what causes it, for the
    /// reasons the C driver handles (kvm_vmx.c `kvm_vmx_exit_handlers`).
    #[test]
    fn numbers_follow_the_sdm_table() {
        let sdm: &[(u16, ExitReason)] = &[
            (0, ExitReason::ExceptionNmi),
            (1, ExitReason::ExternalInterrupt),
            (2, ExitReason::TripleFault),
            (7, ExitReason::PendingInterrupt),
            (8, ExitReason::NmiWindow),
            (9, ExitReason::TaskSwitch),
            (10, ExitReason::Cpuid),
            (12, ExitReason::Hlt),
            (14, ExitReason::Invlpg),
            (18, ExitReason::Vmcall),
            (19, ExitReason::Vmclear),
            (27, ExitReason::Vmxon),
            (28, ExitReason::CrAccess),
            (29, ExitReason::DrAccess),
            (30, ExitReason::IoInstruction),
            (31, ExitReason::MsrRead),
            (32, ExitReason::MsrWrite),
            (33, ExitReason::InvalidGuestState),
            (36, ExitReason::MwaitInstruction),
            (39, ExitReason::MonitorInstruction),
            (40, ExitReason::PauseInstruction),
            (41, ExitReason::MceDuringVmentry),
            (43, ExitReason::TprBelowThreshold),
            (44, ExitReason::ApicAccess),
            (48, ExitReason::EptViolation),
            (49, ExitReason::EptMisconfig),
            (52, ExitReason::PreemptionTimer),
            (54, ExitReason::Wbinvd),
        ];
        for (n, r) in sdm {
            assert_eq!(ExitReason::from_basic(*n), Some(*r), "reason {n}");
            assert_eq!(*r as u16, *n);
        }
    }

    #[test]
    fn reserved_numbers_are_not_reasons() {
        // 35, 38 and 42 are not defined by the SDM.
        for n in [35u16, 38, 42, 65_535] {
            assert_eq!(ExitReason::from_basic(n), None);
        }
    }

    #[test]
    fn basic_reason_ignores_the_failure_and_flag_bits() {
        let raw = EXIT_REASON_ENTRY_FAILURE | 33;
        assert_eq!(
            ExitReason::from_basic(basic(raw)),
            Some(ExitReason::InvalidGuestState)
        );
    }

    #[test]
    fn all_is_ascending_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for w in ExitReason::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for r in ExitReason::ALL {
            assert!(r.name().starts_with("EXIT_REASON_"));
            assert!(names.insert(r.name()));
        }
    }
}
