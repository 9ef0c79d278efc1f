//! Exit qualifications and event-information fields.
//!
//! Decoders for the exit qualification of control-register, debug-register,
//! I/O, EPT-violation, task-switch and APIC-access exits (SDM vol. 3
//! §28.2.1, tables 28-1 to 28-7), the VM-exit interruption information and
//! IDT-vectoring information (§25.9.2, §25.9.3) and the VM-entry
//! interruption-information encoder (§25.8.3). Replaces the C driver's
//! shifts and masks in `handle_cr`, `handle_dr`, `handle_io`,
//! `handle_ept_violation`, `handle_task_switch`, `vmx_complete_interrupts`.

/// A general-purpose register by its instruction encoding (SDM vol. 2
/// table 2-2; the order of the GPR fields in exit qualifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Gpr {
    /// All sixteen, in encoding order.
    pub const ALL: [Gpr; 16] = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
    ];

    /// The register numbered by the low four bits of `n`.
    pub const fn from_bits(n: u64) -> Gpr {
        match n & 0xf {
            0 => Gpr::Rax,
            1 => Gpr::Rcx,
            2 => Gpr::Rdx,
            3 => Gpr::Rbx,
            4 => Gpr::Rsp,
            5 => Gpr::Rbp,
            6 => Gpr::Rsi,
            7 => Gpr::Rdi,
            8 => Gpr::R8,
            9 => Gpr::R9,
            10 => Gpr::R10,
            11 => Gpr::R11,
            12 => Gpr::R12,
            13 => Gpr::R13,
            14 => Gpr::R14,
            _ => Gpr::R15,
        }
    }
}

/// Access type of a control-register exit (table 28-3, bits 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CrAccessType {
    MovToCr = 0,
    MovFromCr = 1,
    Clts = 2,
    Lmsw = 3,
}

/// Exit qualification of a control-register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAccess {
    /// Control register number (bits 3:0); 0 for CLTS and LMSW.
    pub cr: u8,
    pub access: CrAccessType,
    /// LMSW with a memory operand (bit 6).
    pub lmsw_memory: bool,
    /// The GPR of a MOV (bits 11:8).
    pub gpr: Gpr,
    /// LMSW source data (bits 31:16).
    pub lmsw_data: u16,
}

impl CrAccess {
    pub const fn decode(q: u64) -> CrAccess {
        CrAccess {
            cr: (q & 0xf) as u8,
            access: match (q >> 4) & 3 {
                0 => CrAccessType::MovToCr,
                1 => CrAccessType::MovFromCr,
                2 => CrAccessType::Clts,
                _ => CrAccessType::Lmsw,
            },
            lmsw_memory: q & (1 << 6) != 0,
            gpr: Gpr::from_bits(q >> 8),
            lmsw_data: (q >> 16) as u16,
        }
    }
}

/// Exit qualification of a MOV DR (table 28-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrAccess {
    /// Debug register number (bits 2:0).
    pub dr: u8,
    /// MOV from DR (bit 4 set) or to DR.
    pub from_dr: bool,
    pub gpr: Gpr,
}

impl DrAccess {
    pub const fn decode(q: u64) -> DrAccess {
        DrAccess {
            dr: (q & 7) as u8,
            from_dr: q & (1 << 4) != 0,
            gpr: Gpr::from_bits(q >> 8),
        }
    }
}

/// Direction of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IoDirection {
    /// `KVM_EXIT_IO_IN` = 0.
    In = 0,
    /// `KVM_EXIT_IO_OUT` = 1.
    Out = 1,
}

/// Exit qualification of an I/O instruction (table 28-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoQualification {
    /// Access size in bytes: 1, 2 or 4 (bits 2:0 hold size − 1).
    pub size: u8,
    pub direction: IoDirection,
    /// INS/OUTS (bit 4).
    pub string: bool,
    /// REP prefixed (bit 5).
    pub rep: bool,
    /// Port from an immediate (bit 6) rather than DX.
    pub immediate: bool,
    pub port: u16,
}

impl IoQualification {
    pub const fn decode(q: u64) -> IoQualification {
        IoQualification {
            size: ((q & 7) + 1) as u8,
            direction: if q & (1 << 3) != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: q & (1 << 4) != 0,
            rep: q & (1 << 5) != 0,
            immediate: q & (1 << 6) != 0,
            port: (q >> 16) as u16,
        }
    }
}

/// Exit qualification of an EPT violation (table 28-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolation {
    pub read: bool,
    pub write: bool,
    pub fetch: bool,
    /// What the EPT entries allowed (bits 5:3).
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    /// The guest linear address field is valid (bit 7).
    pub linear_valid: bool,
    /// The access was to the translated address, not a paging-structure
    /// entry (bit 8; meaningful only with bit 7).
    pub translated_access: bool,
    /// NMI unblocking due to IRET (bit 12).
    pub nmi_unblocking: bool,
}

impl EptViolation {
    pub const fn decode(q: u64) -> EptViolation {
        EptViolation {
            read: q & 1 != 0,
            write: q & 2 != 0,
            fetch: q & 4 != 0,
            readable: q & 8 != 0,
            writable: q & 0x10 != 0,
            executable: q & 0x20 != 0,
            linear_valid: q & 0x80 != 0,
            translated_access: q & 0x100 != 0,
            nmi_unblocking: q & 0x1000 != 0,
        }
    }

    /// The page-fault error code the MMU is handed (`kvm_mmu_page_fault`):
    /// the original passed 0; we pass what the guest did (bit 1 write,
    /// bit 4 fetch, bit 0 present when the entry allowed any access), which
    /// the MMU may ignore.
    pub const fn error_code(&self) -> u32 {
        let present = self.readable || self.writable || self.executable;
        (present as u32) | (self.write as u32) << 1 | (self.fetch as u32) << 4
    }
}

/// Source of a task switch (table 28-2, bits 31:30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskSwitchSource {
    Call = 0,
    Iret = 1,
    Jmp = 2,
    /// Task gate in the IDT (`TASK_SWITCH_GATE`).
    Gate = 3,
}

/// Exit qualification of a task switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSwitch {
    pub selector: u16,
    pub source: TaskSwitchSource,
}

impl TaskSwitch {
    pub const fn decode(q: u64) -> TaskSwitch {
        TaskSwitch {
            selector: q as u16,
            source: match (q >> 30) & 3 {
                0 => TaskSwitchSource::Call,
                1 => TaskSwitchSource::Iret,
                2 => TaskSwitchSource::Jmp,
                _ => TaskSwitchSource::Gate,
            },
        }
    }
}

/// Exit qualification of an APIC access (table 28-6): the page offset
/// (bits 11:0) and the access type (bits 15:12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicAccess {
    pub offset: u16,
    pub access_type: u8,
}

impl ApicAccess {
    pub const fn decode(q: u64) -> ApicAccess {
        ApicAccess {
            offset: (q & 0xfff) as u16,
            access_type: ((q >> 12) & 0xf) as u8,
        }
    }
}

/// Event type of interruption information (SDM §25.8.3, §25.9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventType {
    ExternalInterrupt = 0,
    Nmi = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
    Other = 7,
}

impl EventType {
    pub const fn from_bits(b: u32) -> Option<EventType> {
        Some(match b & 7 {
            0 => EventType::ExternalInterrupt,
            2 => EventType::Nmi,
            3 => EventType::HardwareException,
            4 => EventType::SoftwareInterrupt,
            5 => EventType::PrivilegedSoftwareException,
            6 => EventType::SoftwareException,
            7 => EventType::Other,
            _ => return None,
        })
    }
}

/// Interruption information: the VM-exit interruption-information and
/// IDT-vectoring fields, and the VM-entry interruption-information field
/// (bit 12 is "NMI unblocking due to IRET" on exit, reserved on entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptionInfo {
    pub vector: u8,
    pub kind: EventType,
    /// An error code is delivered (bit 11).
    pub has_error_code: bool,
    /// NMI unblocking due to IRET (bit 12, exit only).
    pub nmi_unblocking: bool,
}

/// Bit 31: the field is valid.
pub const INTR_INFO_VALID: u32 = 1 << 31;
const DELIVER_CODE: u32 = 1 << 11;
const NMI_UNBLOCKING: u32 = 1 << 12;

impl InterruptionInfo {
    /// Decode a raw field; `None` when the valid bit is clear (or the type
    /// is the reserved value 1).
    pub const fn decode(raw: u32) -> Option<InterruptionInfo> {
        if raw & INTR_INFO_VALID == 0 {
            return None;
        }
        match EventType::from_bits(raw >> 8) {
            Some(kind) => Some(InterruptionInfo {
                vector: raw as u8,
                kind,
                has_error_code: raw & DELIVER_CODE != 0,
                nmi_unblocking: raw & NMI_UNBLOCKING != 0,
            }),
            None => None,
        }
    }

    /// An event to inject.
    pub const fn new(vector: u8, kind: EventType, has_error_code: bool) -> InterruptionInfo {
        InterruptionInfo {
            vector,
            kind,
            has_error_code,
            nmi_unblocking: false,
        }
    }

    /// The VM-entry interruption-information encoding (valid bit set,
    /// bit 12 clear as entry requires).
    pub const fn encode(&self) -> u32 {
        INTR_INFO_VALID
            | (self.kind as u32) << 8
            | if self.has_error_code { DELIVER_CODE } else { 0 }
            | self.vector as u32
    }
}

/// Guest interruptibility state bits (SDM §25.4.2, table 25-3).
pub mod interruptibility {
    /// Blocking by STI.
    pub const STI: u32 = 1 << 0;
    /// Blocking by MOV SS / POP SS.
    pub const MOV_SS: u32 = 1 << 1;
    /// Blocking by SMI.
    pub const SMI: u32 = 1 << 2;
    /// Blocking by NMI.
    pub const NMI: u32 = 1 << 3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cr_access_examples() {
        // mov %rbx,%cr4: cr 4, type 0, gpr 3.
        let q = CrAccess::decode(0x0304);
        assert_eq!(
            (q.cr, q.access, q.gpr),
            (4, CrAccessType::MovToCr, Gpr::Rbx)
        );
        // mov %cr3,%r10: type 1, gpr 10.
        let q = CrAccess::decode(0x0a13);
        assert_eq!(
            (q.cr, q.access, q.gpr),
            (3, CrAccessType::MovFromCr, Gpr::R10)
        );
        // clts.
        assert_eq!(CrAccess::decode(0x20).access, CrAccessType::Clts);
        // lmsw %ax with source 0x0011.
        let q = CrAccess::decode(0x0011_0030);
        assert_eq!(q.access, CrAccessType::Lmsw);
        assert_eq!(q.lmsw_data, 0x11);
        assert!(!q.lmsw_memory);
        assert!(CrAccess::decode(0x70).lmsw_memory);
    }

    #[test]
    fn dr_and_io_examples() {
        let d = DrAccess::decode(0x0517);
        assert_eq!((d.dr, d.from_dr, d.gpr), (7, true, Gpr::Rbp));
        // out %al,$0x80: size 1, out, immediate.
        let io = IoQualification::decode(0x0080_0040);
        assert_eq!(io.size, 1);
        assert_eq!(io.direction, IoDirection::Out);
        assert!(io.immediate && !io.string && !io.rep);
        assert_eq!(io.port, 0x80);
        // rep insw from dx=0x1f0: size 2, in, string, rep.
        let io = IoQualification::decode(0x01f0_0039);
        assert_eq!(
            (io.size, io.direction, io.string, io.rep),
            (2, IoDirection::In, true, true)
        );
        assert_eq!(IoQualification::decode(3).size, 4);
    }

    #[test]
    fn ept_violation_and_task_switch_examples() {
        // Write to a read-only page, linear address valid and translated.
        let e = EptViolation::decode(0x18a);
        assert!(e.write && !e.read && !e.fetch && e.readable && !e.writable);
        assert!(e.linear_valid && e.translated_access);
        assert_eq!(e.error_code(), 0b11);
        // Fetch from a non-present page.
        assert_eq!(EptViolation::decode(0x84).error_code(), 1 << 4);
        let t = TaskSwitch::decode(0xc000_0028);
        assert_eq!((t.selector, t.source), (0x28, TaskSwitchSource::Gate));
        let a = ApicAccess::decode(0x10b0);
        assert_eq!((a.offset, a.access_type), (0xb0, 1));
    }

    #[test]
    fn interruption_info_examples() {
        // #GP with error code, hardware exception: 0x80000b0d.
        let gp = InterruptionInfo::new(13, EventType::HardwareException, true);
        assert_eq!(gp.encode(), 0x8000_0b0d);
        // NMI: 0x80000202.
        assert_eq!(
            InterruptionInfo::new(2, EventType::Nmi, false).encode(),
            0x8000_0202
        );
        // External interrupt 0x30: 0x80000030.
        assert_eq!(
            InterruptionInfo::new(0x30, EventType::ExternalInterrupt, false).encode(),
            0x8000_0030
        );
        assert_eq!(InterruptionInfo::decode(0x30), None, "valid bit clear");
        assert_eq!(
            InterruptionInfo::decode(0x8000_0130),
            None,
            "type 1 reserved"
        );
        let i = InterruptionInfo::decode(0x8000_130e).unwrap();
        assert_eq!(i.kind, EventType::HardwareException);
        assert!(i.nmi_unblocking);
    }

    proptest! {
        #[test]
        fn interruption_info_round_trips(vector in any::<u8>(), t in 0u32..8, ec in any::<bool>()) {
            prop_assume!(t != 1);
            let kind = EventType::from_bits(t).unwrap();
            let info = InterruptionInfo::new(vector, kind, ec);
            prop_assert_eq!(InterruptionInfo::decode(info.encode()), Some(info));
            prop_assert_eq!(info.encode() & (1 << 12), 0);
        }

        #[test]
        fn decoders_never_panic(q in any::<u64>()) {
            let _ = (CrAccess::decode(q), DrAccess::decode(q), IoQualification::decode(q));
            let _ = (EptViolation::decode(q), TaskSwitch::decode(q), ApicAccess::decode(q));
            let _ = InterruptionInfo::decode(q as u32);
            let io = IoQualification::decode(q);
            prop_assert!(matches!(io.size, 1..=8));
        }
    }
}
