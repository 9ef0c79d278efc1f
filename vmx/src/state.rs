//! The VMX side of the VCPU state ioctls: `KVM_GET/SET_REGS`, the segment
//! and descriptor-table parts of `KVM_GET/SET_SREGS`, EFER and long mode,
//! and `KVM_GET/SET_VCPU_EVENTS`, `KVM_GET/SET_MP_STATE`.
//!
//! Ports `vmx_get_segment`, `vmx_set_segment`, `vmx_segment_access_rights`,
//! `vmx_{get,set}_{idt,gdt}`, `vmx_get_rflags`/`vmx_set_rflags`,
//! `vmx_set_efer`, `enter_lmode`/`exit_lmode` (kvm_vmx.c) and
//! `kvm_arch_vcpu_ioctl_{get,set}_regs`, `kvm_vcpu_ioctl_x86_{get,set}_
//! vcpu_events` (kvm_x86.c) with unrestricted guest; the vm86 real-mode
//! variants are not ported. Local structs mirror the ABI (`kvm_regs`,
//! `kvm_segment`, `kvm_dtable`, `kvm_vcpu_events`); the ioctl crate converts.
//! SDM vol. 3 §25.4.1 (guest segment access rights), §3.4.5.

use x86::vmx::vmcs::control::{self, EntryControls};
use x86::vmx::vmcs::guest;

use crate::inject::{self, PendingException, PendingInterrupt};
use crate::qualification::interruptibility;
use crate::setup::SegmentFields;
use crate::vcpu::{MpState, VmxVcpu};
use crate::vmcs::Vmcs;

/// `kvm_regs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// RFLAGS bit 1 always reads 1.
const RFLAGS_FIXED: u64 = 1 << 1;

/// `KVM_GET_REGS`.
pub fn get_regs(vcpu: &VmxVcpu, v: &impl Vmcs) -> Regs {
    let g = &vcpu.regs;
    Regs {
        rax: g.rax,
        rbx: g.rbx,
        rcx: g.rcx,
        rdx: g.rdx,
        rsi: g.rsi,
        rdi: g.rdi,
        rsp: v.read(guest::RSP),
        rbp: g.rbp,
        r8: g.r8,
        r9: g.r9,
        r10: g.r10,
        r11: g.r11,
        r12: g.r12,
        r13: g.r13,
        r14: g.r14,
        r15: g.r15,
        rip: v.read(guest::RIP),
        rflags: v.read(guest::RFLAGS),
    }
}

/// `KVM_SET_REGS`: also drops a pending exception (re-execution
/// regenerates it), as `kvm_arch_vcpu_ioctl_set_regs` does. Reserved RFLAGS
/// bits are forced to their fixed values (a guest entry would fail).
pub fn set_regs(vcpu: &mut VmxVcpu, v: &mut impl Vmcs, r: &Regs) {
    let g = &mut vcpu.regs;
    g.rax = r.rax;
    g.rbx = r.rbx;
    g.rcx = r.rcx;
    g.rdx = r.rdx;
    g.rsi = r.rsi;
    g.rdi = r.rdi;
    g.rbp = r.rbp;
    g.r8 = r.r8;
    g.r9 = r.r9;
    g.r10 = r.r10;
    g.r11 = r.r11;
    g.r12 = r.r12;
    g.r13 = r.r13;
    g.r14 = r.r14;
    g.r15 = r.r15;
    v.write(guest::RSP, r.rsp);
    v.write(guest::RIP, r.rip);
    // Bits 1 (set), 3, 5, 15, 22–63 (clear) are reserved (SDM §26.3.1.4).
    let rflags = (r.rflags & 0x003f_7fd5) | RFLAGS_FIXED;
    v.write(guest::RFLAGS, rflags);
    vcpu.events.exception = None;
}

/// A segment register (`VCPU_SREG_*` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SegmentRegister {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
    Tr = 6,
    Ldtr = 7,
}

/// VMCS fields of a segment register.
fn fields(seg: SegmentRegister) -> SegmentFields {
    let (selector, base, limit, access_rights) = match seg {
        SegmentRegister::Es => return SEGMENTS_ES,
        SegmentRegister::Cs => (
            guest::CS_SELECTOR,
            guest::CS_BASE,
            guest::CS_LIMIT,
            guest::CS_ACCESS_RIGHTS,
        ),
        SegmentRegister::Ss => (
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        SegmentRegister::Ds => (
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        SegmentRegister::Fs => (
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        SegmentRegister::Gs => (
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
        SegmentRegister::Tr => (
            guest::TR_SELECTOR,
            guest::TR_BASE,
            guest::TR_LIMIT,
            guest::TR_ACCESS_RIGHTS,
        ),
        SegmentRegister::Ldtr => (
            guest::LDTR_SELECTOR,
            guest::LDTR_BASE,
            guest::LDTR_LIMIT,
            guest::LDTR_ACCESS_RIGHTS,
        ),
    };
    SegmentFields {
        selector,
        base,
        limit,
        access_rights,
    }
}

const SEGMENTS_ES: SegmentFields = SegmentFields {
    selector: guest::ES_SELECTOR,
    base: guest::ES_BASE,
    limit: guest::ES_LIMIT,
    access_rights: guest::ES_ACCESS_RIGHTS,
};

/// `kvm_segment`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: bool,
    pub dpl: u8,
    pub db: bool,
    pub s: bool,
    pub l: bool,
    pub g: bool,
    pub avl: bool,
    pub unusable: bool,
}

/// Access-rights bit 16: the segment is unusable.
pub const AR_UNUSABLE: u32 = 1 << 16;

impl Segment {
    /// `vmx_segment_access_rights`: the VMCS access-rights encoding
    /// (SDM table 25-2); an all-zero value means unusable.
    pub fn access_rights(&self) -> u32 {
        if self.unusable {
            return AR_UNUSABLE;
        }
        let ar = u32::from(self.type_ & 15)
            | u32::from(self.s) << 4
            | u32::from(self.dpl & 3) << 5
            | u32::from(self.present) << 7
            | u32::from(self.avl) << 12
            | u32::from(self.l) << 13
            | u32::from(self.db) << 14
            | u32::from(self.g) << 15;
        if ar == 0 { AR_UNUSABLE } else { ar }
    }

    /// Fill the attribute fields from access rights (an unusable segment
    /// reads as all-zero attributes, as `vmx_get_segment` reports it, and
    /// with `unusable` set: the C zeroed the rights before reading the bit,
    /// so it never reported one; Linux fixed that later).
    fn set_access_rights(&mut self, ar: u32) {
        let unusable = ar & AR_UNUSABLE != 0;
        let ar = if unusable { 0 } else { ar };
        self.type_ = (ar & 15) as u8;
        self.s = ar & (1 << 4) != 0;
        self.dpl = ((ar >> 5) & 3) as u8;
        self.present = ar & (1 << 7) != 0;
        self.avl = ar & (1 << 12) != 0;
        self.l = ar & (1 << 13) != 0;
        self.db = ar & (1 << 14) != 0;
        self.g = ar & (1 << 15) != 0;
        self.unusable = unusable;
    }
}

/// `vmx_get_segment`.
pub fn get_segment(v: &impl Vmcs, seg: SegmentRegister) -> Segment {
    let f = fields(seg);
    let mut s = Segment {
        base: v.read(f.base),
        limit: v.read32(f.limit),
        selector: v.read(f.selector) as u16,
        ..Segment::default()
    };
    s.set_access_rights(v.read32(f.access_rights));
    s
}

/// `vmx_set_segment` with unrestricted guest: sets the accessed bit of
/// usable segments other than LDTR (reset state per the SDM, which old
/// QEMUs did not set and entry would reject).
pub fn set_segment(v: &mut impl Vmcs, seg: SegmentRegister, s: &Segment) {
    let f = fields(seg);
    v.write(f.base, s.base);
    v.write(f.limit, u64::from(s.limit));
    v.write(f.selector, u64::from(s.selector));
    let mut ar = s.access_rights();
    if seg != SegmentRegister::Ldtr && ar & AR_UNUSABLE == 0 {
        ar |= 1;
    }
    v.write(f.access_rights, u64::from(ar));
}

/// `kvm_dtable`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableRegister {
    Gdtr,
    Idtr,
}

fn table_fields(t: TableRegister) -> (u32, u32) {
    match t {
        TableRegister::Gdtr => (guest::GDTR_BASE, guest::GDTR_LIMIT),
        TableRegister::Idtr => (guest::IDTR_BASE, guest::IDTR_LIMIT),
    }
}

/// `vmx_get_gdt` / `vmx_get_idt`.
pub fn get_table(v: &impl Vmcs, t: TableRegister) -> DescriptorTable {
    let (b, l) = table_fields(t);
    DescriptorTable {
        base: v.read(b),
        limit: v.read(l) as u16,
    }
}

/// `vmx_set_gdt` / `vmx_set_idt`.
pub fn set_table(v: &mut impl Vmcs, t: TableRegister, d: &DescriptorTable) {
    let (b, l) = table_fields(t);
    v.write(b, d.base);
    v.write(l, u64::from(d.limit));
}

/// EFER bits.
pub const EFER_SCE: u64 = 1 << 0;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;

/// TR type "busy 64-bit TSS" (SDM table 3-2): VM entry into IA-32e mode
/// requires it (§26.3.1.2).
const AR_TYPE_BUSY_64_TSS: u32 = 11;

/// `vmx_set_efer`: EFER.LMA selects the "IA-32e mode guest" entry control.
/// Returns the EFER value the guest runs with (the shared-MSR value the
/// driver loads: LME cleared outside long mode).
pub fn set_efer(vcpu: &mut VmxVcpu, v: &mut impl Vmcs, efer: u64) -> u64 {
    vcpu.efer = efer;
    setup_msrs(vcpu);
    let ia32e = EntryControls::IA32E_MODE_GUEST.bits();
    if efer & EFER_LMA != 0 {
        v.set_bits(control::VMENTRY_CONTROLS, ia32e);
        efer
    } else {
        v.clear_bits(control::VMENTRY_CONTROLS, ia32e);
        efer & !EFER_LME
    }
}

/// `setup_msrs`: which shared MSRs the guest's mode needs switched before
/// entry (EFER with the guest's SCE/NX as `update_transition_efer` wants,
/// the SYSCALL MSRs in long mode). Without it the guest ran on the host's
/// EFER and SYSCALL MSRs (kvm-unit-tests' syscall: #UD after EFER.SCE=1).
pub fn setup_msrs(vcpu: &mut VmxVcpu) {
    let long_mode = vcpu.efer & EFER_LMA != 0;
    let (rdtscp, efer, host_efer) = (vcpu.rdtscp_enabled, vcpu.efer, vcpu.host_efer);
    vcpu.guest_msrs.setup(long_mode, rdtscp, efer, host_efer);
}

/// `enter_lmode`: CR0.PG set with EFER.LME; TR must be a busy 64-bit TSS.
pub fn enter_long_mode(vcpu: &mut VmxVcpu, v: &mut impl Vmcs) -> u64 {
    let tr_ar = v.read32(guest::TR_ACCESS_RIGHTS);
    if tr_ar & 15 != AR_TYPE_BUSY_64_TSS {
        v.write(
            guest::TR_ACCESS_RIGHTS,
            u64::from((tr_ar & !15) | AR_TYPE_BUSY_64_TSS),
        );
    }
    let efer = vcpu.efer | EFER_LMA;
    set_efer(vcpu, v, efer)
}

/// `exit_lmode`: CR0.PG cleared.
pub fn exit_long_mode(vcpu: &mut VmxVcpu, v: &mut impl Vmcs) {
    vcpu.efer &= !EFER_LMA;
    setup_msrs(vcpu);
    v.clear_bits(
        control::VMENTRY_CONTROLS,
        EntryControls::IA32E_MODE_GUEST.bits(),
    );
}

/// `kvm_vcpu_events`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuEvents {
    pub exception_injected: bool,
    pub exception_nr: u8,
    pub exception_has_error_code: bool,
    pub exception_error_code: u32,
    pub interrupt_injected: bool,
    pub interrupt_nr: u8,
    pub interrupt_soft: bool,
    /// `KVM_X86_SHADOW_INT_MOV_SS` (1) / `KVM_X86_SHADOW_INT_STI` (2).
    pub interrupt_shadow: u8,
    pub nmi_injected: bool,
    pub nmi_pending: bool,
    pub nmi_masked: bool,
    pub sipi_vector: u32,
    /// `KVM_VCPUEVENT_VALID_NMI_PENDING` (1), `..._VALID_SIPI_VECTOR` (2),
    /// `..._VALID_SHADOW` (4) on set.
    pub flags: u32,
}

pub const KVM_X86_SHADOW_INT_MOV_SS: u8 = 1;
pub const KVM_X86_SHADOW_INT_STI: u8 = 2;
pub const KVM_VCPUEVENT_VALID_NMI_PENDING: u32 = 1;
pub const KVM_VCPUEVENT_VALID_SIPI_VECTOR: u32 = 2;
pub const KVM_VCPUEVENT_VALID_SHADOW: u32 = 4;

/// `KVM_GET_VCPU_EVENTS`.
pub fn get_events(vcpu: &VmxVcpu, v: &impl Vmcs) -> VcpuEvents {
    let e = &vcpu.events;
    let shadow = inject::interrupt_shadow(v);
    let mut ev = VcpuEvents {
        nmi_injected: e.nmi_injected,
        nmi_pending: e.nmi_pending,
        nmi_masked: inject::nmi_masked(v, vcpu),
        sipi_vector: u32::from(vcpu.sipi_vector),
        flags: KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW,
        ..VcpuEvents::default()
    };
    if shadow & interruptibility::MOV_SS != 0 {
        ev.interrupt_shadow |= KVM_X86_SHADOW_INT_MOV_SS;
    }
    if shadow & interruptibility::STI != 0 {
        ev.interrupt_shadow |= KVM_X86_SHADOW_INT_STI;
    }
    if let Some(x) = e.exception {
        ev.exception_injected = true;
        ev.exception_nr = x.vector;
        ev.exception_has_error_code = x.error_code.is_some();
        ev.exception_error_code = x.error_code.unwrap_or(0);
    }
    if let Some(i) = e.interrupt {
        ev.interrupt_injected = true;
        ev.interrupt_nr = i.vector;
        ev.interrupt_soft = i.soft;
    }
    ev
}

/// Why `KVM_SET_VCPU_EVENTS` was refused (EINVAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidEvents;

/// `KVM_SET_VCPU_EVENTS`.
pub fn set_events(
    vcpu: &mut VmxVcpu,
    v: &mut impl Vmcs,
    ev: &VcpuEvents,
) -> Result<(), InvalidEvents> {
    let known = KVM_VCPUEVENT_VALID_NMI_PENDING
        | KVM_VCPUEVENT_VALID_SIPI_VECTOR
        | KVM_VCPUEVENT_VALID_SHADOW;
    if ev.flags & !known != 0 || (ev.exception_injected && ev.exception_nr > 31) {
        return Err(InvalidEvents);
    }
    vcpu.events.exception = ev.exception_injected.then_some(PendingException {
        vector: ev.exception_nr,
        error_code: ev
            .exception_has_error_code
            .then_some(ev.exception_error_code),
    });
    vcpu.events.interrupt = ev.interrupt_injected.then_some(PendingInterrupt {
        vector: ev.interrupt_nr,
        soft: ev.interrupt_soft,
    });
    if ev.flags & KVM_VCPUEVENT_VALID_SHADOW != 0 {
        let mut mask = 0;
        if ev.interrupt_shadow & KVM_X86_SHADOW_INT_MOV_SS != 0 {
            mask |= interruptibility::MOV_SS;
        }
        if ev.interrupt_shadow & KVM_X86_SHADOW_INT_STI != 0 {
            mask |= interruptibility::STI;
        }
        inject::set_interrupt_shadow(v, mask);
    }
    vcpu.events.nmi_injected = ev.nmi_injected;
    if ev.flags & KVM_VCPUEVENT_VALID_NMI_PENDING != 0 {
        vcpu.events.nmi_pending = ev.nmi_pending;
    }
    inject::set_nmi_mask(v, vcpu, ev.nmi_masked);
    if ev.flags & KVM_VCPUEVENT_VALID_SIPI_VECTOR != 0 {
        vcpu.sipi_vector = ev.sipi_vector as u8;
    }
    Ok(())
}

/// `KVM_SET_MP_STATE`: the number userspace passes, if defined.
pub fn mp_state_from_abi(n: u32) -> Option<MpState> {
    Some(match n {
        0 => MpState::Runnable,
        1 => MpState::Uninitialized,
        2 => MpState::InitReceived,
        3 => MpState::Halted,
        4 => MpState::SipiReceived,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VmcsConfig;
    use crate::caps::tests::skylake;
    use crate::fake::FakeVmcs;
    use proptest::prelude::*;

    fn vcpu() -> VmxVcpu {
        VmxVcpu::new(VmcsConfig::probe(&skylake()).unwrap())
    }

    /// `setup_msrs` runs on every EFER change: a long-mode guest with
    /// SCE gets its EFER (SCE set, the host's NX kept) and its SYSCALL
    /// MSRs switched in; back out of long mode only EFER is.
    #[test]
    fn efer_changes_select_the_shared_msrs_to_switch() {
        use crate::host::{MSR_EFER, MSR_LSTAR, MSR_STAR, SHARED_MSRS};
        use std::vec;
        use std::vec::Vec;
        let mut c = vcpu();
        c.guest_msrs = crate::host::GuestMsrs::new(|_| true);
        c.host_efer = EFER_NXE | EFER_LMA | EFER_LME; // host: long mode, NX, no SCE
        let mut v = FakeVmcs::new();
        set_efer(&mut c, &mut v, EFER_SCE | EFER_LME | EFER_LMA);
        let active: Vec<u32> = c
            .guest_msrs
            .active()
            .iter()
            .map(|m| SHARED_MSRS[usize::from(m.slot)])
            .collect();
        assert!(active.contains(&MSR_EFER) && active.contains(&MSR_LSTAR));
        assert!(active.contains(&MSR_STAR), "SCE set: STAR switched");
        let efer = c
            .guest_msrs
            .active()
            .iter()
            .find(|m| SHARED_MSRS[usize::from(m.slot)] == MSR_EFER)
            .unwrap();
        assert_ne!(efer.data & EFER_SCE, 0, "the guest's SCE reaches the CPU");
        assert_ne!(efer.data & EFER_NXE, 0, "NX stays the host's");
        exit_long_mode(&mut c, &mut v);
        let active: Vec<u32> = c
            .guest_msrs
            .active()
            .iter()
            .map(|m| SHARED_MSRS[usize::from(m.slot)])
            .collect();
        assert_eq!(active, vec![MSR_EFER]);
    }

    #[test]
    fn regs_round_trip_through_vmcs_and_gprs() {
        let mut c = vcpu();
        let mut v = FakeVmcs::new();
        let r = Regs {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rsp: 7,
            rbp: 8,
            r8: 9,
            r15: 16,
            rip: 0xfff0,
            rflags: 0x202,
            ..Regs::default()
        };
        c.events.exception = Some(PendingException {
            vector: 13,
            error_code: Some(0),
        });
        set_regs(&mut c, &mut v, &r);
        assert_eq!(get_regs(&c, &v), r);
        assert_eq!(v.get(guest::RSP), Some(7));
        assert!(c.events.exception.is_none());
        // Reserved RFLAGS bits are fixed.
        set_regs(
            &mut c,
            &mut v,
            &Regs {
                rflags: u64::MAX,
                ..r
            },
        );
        assert_eq!(get_regs(&c, &v).rflags, 0x003f_7fd7);
    }

    #[test]
    fn segments_encode_access_rights_per_sdm() {
        let mut v = FakeVmcs::new();
        // 64-bit code segment, DPL 0: type 0xb, S, P, L, G → 0xa09b.
        let cs = Segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: 0x8,
            type_: 0xb,
            present: true,
            s: true,
            l: true,
            g: true,
            ..Segment::default()
        };
        assert_eq!(cs.access_rights(), 0xa09b);
        set_segment(&mut v, SegmentRegister::Cs, &cs);
        assert_eq!(v.get(guest::CS_ACCESS_RIGHTS), Some(0xa09b));
        assert_eq!(get_segment(&v, SegmentRegister::Cs), cs);
        // Data segment with the accessed bit clear gets it set.
        let ds = Segment {
            type_: 2,
            present: true,
            s: true,
            db: true,
            ..Segment::default()
        };
        set_segment(&mut v, SegmentRegister::Ds, &ds);
        assert_eq!(v.get(guest::DS_ACCESS_RIGHTS), Some(0x4093));
        // Unusable: bit 16, reads back as zero attributes.
        let null = Segment {
            unusable: true,
            ..Segment::default()
        };
        set_segment(&mut v, SegmentRegister::Fs, &null);
        assert_eq!(v.get(guest::FS_ACCESS_RIGHTS), Some(1 << 16));
        assert_eq!(get_segment(&v, SegmentRegister::Fs).type_, 0);
        assert!(
            get_segment(&v, SegmentRegister::Fs).unusable,
            "KVM_GET_SREGS says so"
        );
        assert!(!get_segment(&v, SegmentRegister::Ds).unusable);
        // LDTR is written as given; TR goes to the TR fields.
        let tr = Segment {
            type_: 11,
            present: true,
            limit: 0x67,
            base: 0x5000,
            ..Segment::default()
        };
        set_segment(&mut v, SegmentRegister::Tr, &tr);
        assert_eq!(v.get(guest::TR_BASE), Some(0x5000));
        assert_eq!(v.get(guest::TR_ACCESS_RIGHTS), Some(0x8b));
        let ldt = Segment {
            type_: 2,
            present: true,
            ..Segment::default()
        };
        set_segment(&mut v, SegmentRegister::Ldtr, &ldt);
        assert_eq!(v.get(guest::LDTR_ACCESS_RIGHTS), Some(0x82));
    }

    #[test]
    fn descriptor_tables() {
        let mut v = FakeVmcs::new();
        let d = DescriptorTable {
            base: 0xffff_8000_0000_1000,
            limit: 0xfff,
        };
        set_table(&mut v, TableRegister::Idtr, &d);
        assert_eq!(get_table(&v, TableRegister::Idtr), d);
        assert_eq!(
            get_table(&v, TableRegister::Gdtr),
            DescriptorTable::default()
        );
    }

    #[test]
    fn efer_and_long_mode() {
        let mut c = vcpu();
        let mut v = FakeVmcs::new();
        v.write(guest::TR_ACCESS_RIGHTS, 0x8b);
        assert_eq!(set_efer(&mut c, &mut v, EFER_LME | EFER_SCE), EFER_SCE);
        assert_eq!(v.get(control::VMENTRY_CONTROLS).unwrap() & (1 << 9), 0);
        v.write(guest::TR_ACCESS_RIGHTS, 0x83); // busy 16-bit TSS
        let e = enter_long_mode(&mut c, &mut v);
        assert_eq!(e, EFER_LME | EFER_LMA | EFER_SCE);
        assert_eq!(v.get(control::VMENTRY_CONTROLS).unwrap() & (1 << 9), 1 << 9);
        assert_eq!(v.get(guest::TR_ACCESS_RIGHTS), Some(0x8b));
        exit_long_mode(&mut c, &mut v);
        assert_eq!(c.efer & EFER_LMA, 0);
        assert_eq!(v.get(control::VMENTRY_CONTROLS).unwrap() & (1 << 9), 0);
    }

    #[test]
    fn vcpu_events_round_trip() {
        let mut c = vcpu();
        let mut v = FakeVmcs::new();
        let ev = VcpuEvents {
            exception_injected: true,
            exception_nr: 14,
            exception_has_error_code: true,
            exception_error_code: 6,
            interrupt_injected: true,
            interrupt_nr: 0x30,
            interrupt_shadow: KVM_X86_SHADOW_INT_STI,
            nmi_pending: true,
            nmi_masked: true,
            sipi_vector: 0x9a,
            flags: KVM_VCPUEVENT_VALID_NMI_PENDING
                | KVM_VCPUEVENT_VALID_SHADOW
                | KVM_VCPUEVENT_VALID_SIPI_VECTOR,
            ..VcpuEvents::default()
        };
        set_events(&mut c, &mut v, &ev).unwrap();
        let got = get_events(&c, &v);
        assert_eq!(got.exception_nr, 14);
        assert_eq!(got.exception_error_code, 6);
        assert_eq!(got.interrupt_nr, 0x30);
        assert_eq!(got.interrupt_shadow, KVM_X86_SHADOW_INT_STI);
        assert!(got.nmi_pending && got.nmi_masked);
        assert_eq!(got.sipi_vector, 0x9a);
        assert_eq!(
            v.get(guest::INTERRUPTIBILITY_STATE),
            Some(u64::from(interruptibility::STI | interruptibility::NMI))
        );
        assert_eq!(
            set_events(&mut c, &mut v, &VcpuEvents { flags: 8, ..ev }),
            Err(InvalidEvents)
        );
        assert_eq!(
            set_events(
                &mut c,
                &mut v,
                &VcpuEvents {
                    exception_nr: 32,
                    ..ev
                }
            ),
            Err(InvalidEvents)
        );
    }

    #[test]
    fn field_table_matches_setup() {
        use crate::setup::SEGMENTS;
        let order = [
            SegmentRegister::Es,
            SegmentRegister::Cs,
            SegmentRegister::Ss,
            SegmentRegister::Ds,
            SegmentRegister::Fs,
            SegmentRegister::Gs,
        ];
        for (i, s) in order.iter().enumerate() {
            assert_eq!(fields(*s), SEGMENTS[i]);
        }
    }

    #[test]
    fn mp_state_numbers() {
        for n in 0..5 {
            assert_eq!(mp_state_from_abi(n).map(|s| s as u32), Some(n));
        }
        assert_eq!(mp_state_from_abi(5), None);
    }

    proptest! {
        #[test]
        fn usable_segments_round_trip(base in any::<u64>(), limit in any::<u32>(), sel in any::<u16>(),
                                     t in 0u8..16, dpl in 0u8..4, flags in any::<u8>()) {
            let s = Segment {
                base, limit, selector: sel, type_: t | 1, dpl,
                present: flags & 1 != 0, s: flags & 2 != 0, l: flags & 4 != 0,
                db: flags & 8 != 0, g: flags & 16 != 0, avl: flags & 32 != 0, unusable: false,
            };
            let mut v = FakeVmcs::new();
            set_segment(&mut v, SegmentRegister::Gs, &s);
            prop_assert_eq!(get_segment(&v, SegmentRegister::Gs), s);
        }
    }
}
