//! Port of the C driver's `sys/kvm_x86.h`: the x86 register, interrupt
//! controller, PIT, MSR, CPUID and event structures.

use super::{assert_layout, impl_pod};

/// `KVM_NR_INTERRUPTS`: number of interrupt vectors.
pub const KVM_NR_INTERRUPTS: usize = 256;
/// `KVM_IOAPIC_NUM_PINS`.
pub const KVM_IOAPIC_NUM_PINS: usize = 24;
/// `KVM_IRQCHIP_PIC_MASTER`.
pub const KVM_IRQCHIP_PIC_MASTER: u32 = 0;
/// `KVM_IRQCHIP_PIC_SLAVE`.
pub const KVM_IRQCHIP_PIC_SLAVE: u32 = 1;
/// `KVM_IRQCHIP_IOAPIC`.
pub const KVM_IRQCHIP_IOAPIC: u32 = 2;
/// `KVM_NR_IRQCHIPS`.
pub const KVM_NR_IRQCHIPS: u32 = 3;
/// `KVM_APIC_REG_SIZE`: bytes of the local APIC register page image.
pub const KVM_APIC_REG_SIZE: usize = 0x400;
/// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (sic).
pub const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1;
/// `KVM_CPUID_FLAG_STATEFUL_FUNC`.
pub const KVM_CPUID_FLAG_STATEFUL_FUNC: u32 = 2;
/// `KVM_CPUID_FLAG_STATE_READ_NEXT`.
pub const KVM_CPUID_FLAG_STATE_READ_NEXT: u32 = 4;
/// `KVM_GUESTDBG_USE_SW_BP`.
pub const KVM_GUESTDBG_USE_SW_BP: u32 = 0x0001_0000;
/// `KVM_GUESTDBG_USE_HW_BP`.
pub const KVM_GUESTDBG_USE_HW_BP: u32 = 0x0002_0000;
/// `KVM_GUESTDBG_INJECT_DB`.
pub const KVM_GUESTDBG_INJECT_DB: u32 = 0x0004_0000;
/// `KVM_GUESTDBG_INJECT_BP`.
pub const KVM_GUESTDBG_INJECT_BP: u32 = 0x0008_0000;
/// `KVM_PIT_FLAGS_HPET_LEGACY`.
pub const KVM_PIT_FLAGS_HPET_LEGACY: u32 = 0x0000_0001;
/// `KVM_VCPUEVENT_VALID_NMI_PENDING`.
pub const KVM_VCPUEVENT_VALID_NMI_PENDING: u32 = 0x0000_0001;
/// `KVM_VCPUEVENT_VALID_SIPI_VECTOR`.
pub const KVM_VCPUEVENT_VALID_SIPI_VECTOR: u32 = 0x0000_0002;

/// The interrupt controller a `kvm_irqchip` or routing entry names
/// (`KVM_IRQCHIP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum IrqchipId {
    /// `KVM_IRQCHIP_PIC_MASTER`.
    PicMaster = KVM_IRQCHIP_PIC_MASTER,
    /// `KVM_IRQCHIP_PIC_SLAVE`.
    PicSlave = KVM_IRQCHIP_PIC_SLAVE,
    /// `KVM_IRQCHIP_IOAPIC`.
    Ioapic = KVM_IRQCHIP_IOAPIC,
}

impl TryFrom<u32> for IrqchipId {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            KVM_IRQCHIP_PIC_MASTER => Ok(IrqchipId::PicMaster),
            KVM_IRQCHIP_PIC_SLAVE => Ok(IrqchipId::PicSlave),
            KVM_IRQCHIP_IOAPIC => Ok(IrqchipId::Ioapic),
            other => Err(other),
        }
    }
}

/// `struct kvm_pic_state` (for KVM_GET_IRQCHIP / KVM_SET_IRQCHIP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_pic_state {
    pub last_irr: u8,
    pub irr: u8,
    pub imr: u8,
    pub isr: u8,
    pub priority_add: u8,
    pub irq_base: u8,
    pub read_reg_select: u8,
    pub poll: u8,
    pub special_mask: u8,
    pub init_state: u8,
    pub auto_eoi: u8,
    pub rotate_on_auto_eoi: u8,
    pub special_fully_nested_mode: u8,
    pub init4: u8,
    pub elcr: u8,
    pub elcr_mask: u8,
}
assert_layout!(
    kvm_pic_state,
    size = 16,
    align = 1,
    last_irr = 0,
    irr = 1,
    imr = 2,
    isr = 3,
    priority_add = 4,
    irq_base = 5,
    read_reg_select = 6,
    poll = 7,
    special_mask = 8,
    init_state = 9,
    auto_eoi = 10,
    rotate_on_auto_eoi = 11,
    special_fully_nested_mode = 12,
    init4 = 13,
    elcr = 14,
    elcr_mask = 15
);

/// The `fields` view of one `kvm_ioapic_state.redirtbl[]` entry. The C
/// bit-fields are kept as the two bytes that hold them (`bits1`: byte 1,
/// `bits2`: byte 2) with accessors, since Rust has no bit-fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_ioapic_redirtbl_fields {
    pub vector: u8,
    /// `delivery_mode:3, dest_mode:1, delivery_status:1, polarity:1,
    /// remote_irr:1, trig_mode:1` (LSB first, as gcc allocates them).
    pub bits1: u8,
    /// `mask:1, reserve:7`.
    pub bits2: u8,
    pub reserved: [u8; 4],
    pub dest_id: u8,
}
assert_layout!(
    kvm_ioapic_redirtbl_fields,
    size = 8,
    align = 1,
    vector = 0,
    bits1 = 1,
    bits2 = 2,
    reserved = 3,
    dest_id = 7
);

impl kvm_ioapic_redirtbl_fields {
    /// `delivery_mode:3`.
    pub const fn delivery_mode(&self) -> u8 {
        self.bits1 & 0x7
    }
    /// `dest_mode:1`.
    pub const fn dest_mode(&self) -> u8 {
        (self.bits1 >> 3) & 1
    }
    /// `delivery_status:1`.
    pub const fn delivery_status(&self) -> u8 {
        (self.bits1 >> 4) & 1
    }
    /// `polarity:1`.
    pub const fn polarity(&self) -> u8 {
        (self.bits1 >> 5) & 1
    }
    /// `remote_irr:1`.
    pub const fn remote_irr(&self) -> u8 {
        (self.bits1 >> 6) & 1
    }
    /// `trig_mode:1`.
    pub const fn trig_mode(&self) -> u8 {
        (self.bits1 >> 7) & 1
    }
    /// `mask:1`.
    pub const fn mask(&self) -> u8 {
        self.bits2 & 1
    }
}

/// One `kvm_ioapic_state.redirtbl[]` entry (anonymous union in C).
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_ioapic_redirtbl {
    pub bits: u64,
    pub fields: kvm_ioapic_redirtbl_fields,
}
assert_layout!(
    kvm_ioapic_redirtbl,
    size = 8,
    align = 8,
    bits = 0,
    fields = 0
);

/// `struct kvm_ioapic_state`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_ioapic_state {
    pub base_address: u64,
    pub ioregsel: u32,
    pub id: u32,
    pub irr: u32,
    pub pad: u32,
    pub redirtbl: [kvm_ioapic_redirtbl; KVM_IOAPIC_NUM_PINS],
}
assert_layout!(
    kvm_ioapic_state,
    size = 216,
    align = 8,
    base_address = 0,
    ioregsel = 8,
    id = 12,
    irr = 16,
    pad = 20,
    redirtbl = 24
);

/// `struct kvm_regs` (KVM_GET_REGS / KVM_SET_REGS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_regs {
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
assert_layout!(
    kvm_regs,
    size = 144,
    align = 8,
    rax = 0,
    rbx = 8,
    rcx = 16,
    rdx = 24,
    rsi = 32,
    rdi = 40,
    rsp = 48,
    rbp = 56,
    r8 = 64,
    r9 = 72,
    r10 = 80,
    r11 = 88,
    r12 = 96,
    r13 = 104,
    r14 = 112,
    r15 = 120,
    rip = 128,
    rflags = 136
);

/// `struct kvm_lapic_state` (KVM_GET_LAPIC / KVM_SET_LAPIC). C `char regs[]`
/// is kept as bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kvm_lapic_state {
    pub regs: [u8; KVM_APIC_REG_SIZE],
}
assert_layout!(kvm_lapic_state, size = 1024, align = 1, regs = 0);

/// `struct kvm_segment`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub r#type: u8,
    pub present: u8,
    pub dpl: u8,
    pub db: u8,
    pub s: u8,
    pub l: u8,
    pub g: u8,
    pub avl: u8,
    pub unusable: u8,
    pub padding: u8,
}
assert_layout!(
    kvm_segment,
    size = 24,
    align = 8,
    base = 0,
    limit = 8,
    selector = 12,
    r#type = 14,
    present = 15,
    dpl = 16,
    db = 17,
    s = 18,
    l = 19,
    g = 20,
    avl = 21,
    unusable = 22,
    padding = 23
);

/// `struct kvm_dtable`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_dtable {
    pub base: u64,
    pub limit: u16,
    pub padding: [u16; 3],
}
assert_layout!(
    kvm_dtable,
    size = 16,
    align = 8,
    base = 0,
    limit = 8,
    padding = 10
);

/// `struct kvm_sregs` (KVM_GET_SREGS / KVM_SET_SREGS). C `unsigned long` is
/// 64 bits (LP64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_sregs {
    pub cs: kvm_segment,
    pub ds: kvm_segment,
    pub es: kvm_segment,
    pub fs: kvm_segment,
    pub gs: kvm_segment,
    pub ss: kvm_segment,
    pub tr: kvm_segment,
    pub ldt: kvm_segment,
    pub gdt: kvm_dtable,
    pub idt: kvm_dtable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub apic_base: u64,
    pub interrupt_bitmap: [u64; KVM_NR_INTERRUPTS.div_ceil(64)],
}
assert_layout!(
    kvm_sregs,
    size = 312,
    align = 8,
    cs = 0,
    ds = 24,
    es = 48,
    fs = 72,
    gs = 96,
    ss = 120,
    tr = 144,
    ldt = 168,
    gdt = 192,
    idt = 208,
    cr0 = 224,
    cr2 = 232,
    cr3 = 240,
    cr4 = 248,
    cr8 = 256,
    efer = 264,
    apic_base = 272,
    interrupt_bitmap = 280
);

/// `struct kvm_fpu` (KVM_GET_FPU / KVM_SET_FPU), fxsave format.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_fpu {
    pub fpr: [[u8; 16]; 8],
    pub fcw: u16,
    pub fsw: u16,
    pub ftwx: u8,
    pub pad1: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    pub xmm: [[u8; 16]; 16],
    pub mxcsr: u32,
    pub pad2: u32,
}
assert_layout!(
    kvm_fpu,
    size = 416,
    align = 8,
    fpr = 0,
    fcw = 128,
    fsw = 130,
    ftwx = 132,
    pad1 = 133,
    last_opcode = 134,
    last_ip = 136,
    last_dp = 144,
    xmm = 152,
    mxcsr = 408,
    pad2 = 412
);

/// `struct kvm_msr_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_msr_entry {
    pub index: u32,
    pub reserved: u32,
    pub data: u64,
}
assert_layout!(
    kvm_msr_entry,
    size = 16,
    align = 8,
    index = 0,
    reserved = 4,
    data = 8
);

/// Number of entries in illumos-kvm's fixed-size `kvm_msrs.entries`.
pub const KVM_MSRS_ENTRIES: usize = 100;

/// `struct kvm_msrs` (KVM_GET_MSRS / KVM_SET_MSRS). Unlike Linux, illumos-kvm
/// fixes `entries[100]` (1608 bytes) and copies the whole struct in.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kvm_msrs {
    pub nmsrs: u32,
    pub pad: u32,
    pub entries: [kvm_msr_entry; KVM_MSRS_ENTRIES],
}
assert_layout!(
    kvm_msrs,
    size = 1608,
    align = 8,
    nmsrs = 0,
    pad = 4,
    entries = 8
);

/// `struct kvm_msr_list` (KVM_GET_MSR_INDEX_LIST); `indices` continues in
/// user memory past the header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_msr_list {
    pub nmsrs: u32,
    pub indices: [u32; 1],
}
assert_layout!(kvm_msr_list, size = 8, align = 4, nmsrs = 0, indices = 4);

/// `struct kvm_cpuid_entry` (KVM_SET_CPUID, v1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_cpuid_entry {
    pub function: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub padding: u32,
}
assert_layout!(
    kvm_cpuid_entry,
    size = 24,
    align = 4,
    function = 0,
    eax = 4,
    ebx = 8,
    ecx = 12,
    edx = 16,
    padding = 20
);

/// `struct kvm_cpuid` (KVM_SET_CPUID, v1; fixed `entries[100]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kvm_cpuid {
    pub nent: u32,
    pub padding: u32,
    pub entries: [kvm_cpuid_entry; 100],
}
assert_layout!(
    kvm_cpuid,
    size = 2408,
    align = 4,
    nent = 0,
    padding = 4,
    entries = 8
);

/// `struct kvm_cpuid_entry2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_cpuid_entry2 {
    pub function: u32,
    pub index: u32,
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub padding: [u32; 3],
}
assert_layout!(
    kvm_cpuid_entry2,
    size = 40,
    align = 4,
    function = 0,
    index = 4,
    flags = 8,
    eax = 12,
    ebx = 16,
    ecx = 20,
    edx = 24,
    padding = 28
);

/// `struct kvm_cpuid2` header (KVM_SET_CPUID2 / KVM_GET_CPUID2 /
/// KVM_GET_SUPPORTED_CPUID); the `entries[0]` flexible array follows it in
/// user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_cpuid2 {
    pub nent: u32,
    pub padding: u32,
    pub entries: [kvm_cpuid_entry2; 0],
}
assert_layout!(
    kvm_cpuid2,
    size = 8,
    align = 4,
    nent = 0,
    padding = 4,
    entries = 8
);

/// `struct kvm_pit_channel_state`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_pit_channel_state {
    pub count: u32,
    pub latched_count: u16,
    pub count_latched: u8,
    pub status_latched: u8,
    pub status: u8,
    pub read_state: u8,
    pub write_state: u8,
    pub write_latch: u8,
    pub rw_mode: u8,
    pub mode: u8,
    pub bcd: u8,
    pub gate: u8,
    pub count_load_time: i64,
}
assert_layout!(
    kvm_pit_channel_state,
    size = 24,
    align = 8,
    count = 0,
    latched_count = 4,
    count_latched = 6,
    status_latched = 7,
    status = 8,
    read_state = 9,
    write_state = 10,
    write_latch = 11,
    rw_mode = 12,
    mode = 13,
    bcd = 14,
    gate = 15,
    count_load_time = 16
);

/// `struct kvm_debug_exit_arch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_debug_exit_arch {
    pub exception: u32,
    pub pad: u32,
    pub pc: u64,
    pub dr6: u64,
    pub dr7: u64,
}
assert_layout!(
    kvm_debug_exit_arch,
    size = 32,
    align = 8,
    exception = 0,
    pad = 4,
    pc = 8,
    dr6 = 16,
    dr7 = 24
);

/// `struct kvm_guest_debug_arch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_guest_debug_arch {
    pub debugreg: [u64; 8],
}
assert_layout!(kvm_guest_debug_arch, size = 64, align = 8, debugreg = 0);

/// `struct kvm_pit_state` (KVM_GET_PIT / KVM_SET_PIT, not implemented).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_pit_state {
    pub channels: [kvm_pit_channel_state; 3],
}
assert_layout!(kvm_pit_state, size = 72, align = 8, channels = 0);

/// `struct kvm_pit_state2` (KVM_GET_PIT2 / KVM_SET_PIT2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_pit_state2 {
    pub channels: [kvm_pit_channel_state; 3],
    pub flags: u32,
    pub reserved: [u32; 9],
}
assert_layout!(
    kvm_pit_state2,
    size = 112,
    align = 8,
    channels = 0,
    flags = 72,
    reserved = 76
);

/// `struct kvm_reinject_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_reinject_control {
    pub pit_reinject: u8,
    pub reserved: [u8; 31],
}
assert_layout!(
    kvm_reinject_control,
    size = 32,
    align = 1,
    pit_reinject = 0,
    reserved = 1
);

/// `kvm_vcpu_events.exception` (anonymous struct in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_vcpu_events_exception {
    pub injected: u8,
    pub nr: u8,
    pub has_error_code: u8,
    pub pad: u8,
    pub error_code: u32,
}
assert_layout!(
    kvm_vcpu_events_exception,
    size = 8,
    align = 4,
    injected = 0,
    nr = 1,
    has_error_code = 2,
    pad = 3,
    error_code = 4
);

/// `kvm_vcpu_events.interrupt` (anonymous struct in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_vcpu_events_interrupt {
    pub injected: u8,
    pub nr: u8,
    pub soft: u8,
    pub pad: u8,
}
assert_layout!(
    kvm_vcpu_events_interrupt,
    size = 4,
    align = 1,
    injected = 0,
    nr = 1,
    soft = 2,
    pad = 3
);

/// `kvm_vcpu_events.nmi` (anonymous struct in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_vcpu_events_nmi {
    pub injected: u8,
    pub pending: u8,
    pub masked: u8,
    pub pad: u8,
}
assert_layout!(
    kvm_vcpu_events_nmi,
    size = 4,
    align = 1,
    injected = 0,
    pending = 1,
    masked = 2,
    pad = 3
);

/// `struct kvm_vcpu_events` (KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_vcpu_events {
    pub exception: kvm_vcpu_events_exception,
    pub interrupt: kvm_vcpu_events_interrupt,
    pub nmi: kvm_vcpu_events_nmi,
    pub sipi_vector: u32,
    pub flags: u32,
    pub reserved: [u32; 10],
}
assert_layout!(
    kvm_vcpu_events,
    size = 64,
    align = 4,
    exception = 0,
    interrupt = 8,
    nmi = 12,
    sipi_vector = 16,
    flags = 20,
    reserved = 24
);

impl_pod!(
    kvm_pic_state,
    kvm_ioapic_redirtbl_fields,
    kvm_ioapic_redirtbl,
    kvm_ioapic_state,
    kvm_regs,
    kvm_lapic_state,
    kvm_segment,
    kvm_dtable,
    kvm_sregs,
    kvm_fpu,
    kvm_msr_entry,
    kvm_msrs,
    kvm_msr_list,
    kvm_cpuid_entry,
    kvm_cpuid,
    kvm_cpuid_entry2,
    kvm_cpuid2,
    kvm_pit_channel_state,
    kvm_debug_exit_arch,
    kvm_guest_debug_arch,
    kvm_pit_state,
    kvm_pit_state2,
    kvm_reinject_control,
    kvm_vcpu_events_exception,
    kvm_vcpu_events_interrupt,
    kvm_vcpu_events_nmi,
    kvm_vcpu_events,
);
