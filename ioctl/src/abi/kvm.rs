//! Port of the C driver's `sys/kvm.h` (all but `kvm_run`, see `run.rs`, and
//! the ioctl numbers, see `ioctls.rs`): memory regions, interrupt lines,
//! irqchip, PIT config, coalesced MMIO, dirty log, signal mask, routing, MCE
//! and clock structures, with their constants.

use super::x86::{kvm_guest_debug_arch, kvm_ioapic_state, kvm_pic_state};
use super::{PAGESIZE, assert_layout, impl_pod};

/// `KVM_API_VERSION`: the answer of KVM_GET_API_VERSION (same as Linux).
pub const KVM_API_VERSION: i32 = 12;

/// `KVM_MEM_LOG_DIRTY_PAGES` (`kvm_userspace_memory_region.flags`).
pub const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1;
/// `KVM_MEMSLOT_INVALID` (kernel-internal memslot flag).
pub const KVM_MEMSLOT_INVALID: u32 = 1 << 1;
/// `KVM_PIT_SPEAKER_DUMMY` (`kvm_pit_config.flags`).
pub const KVM_PIT_SPEAKER_DUMMY: u32 = 1;
/// `KVM_INTERNAL_ERROR_EMULATION`.
pub const KVM_INTERNAL_ERROR_EMULATION: u32 = 1;
/// `KVM_INTERNAL_ERROR_SIMUL_EX`.
pub const KVM_INTERNAL_ERROR_SIMUL_EX: u32 = 2;
/// `KVM_MP_STATE_RUNNABLE`.
pub const KVM_MP_STATE_RUNNABLE: u32 = 0;
/// `KVM_MP_STATE_UNINITIALIZED`.
pub const KVM_MP_STATE_UNINITIALIZED: u32 = 1;
/// `KVM_MP_STATE_INIT_RECEIVED`.
pub const KVM_MP_STATE_INIT_RECEIVED: u32 = 2;
/// `KVM_MP_STATE_HALTED`.
pub const KVM_MP_STATE_HALTED: u32 = 3;
/// `KVM_MP_STATE_SIPI_RECEIVED`.
pub const KVM_MP_STATE_SIPI_RECEIVED: u32 = 4;
/// `KVM_GUESTDBG_ENABLE`.
pub const KVM_GUESTDBG_ENABLE: u32 = 0x0000_0001;
/// `KVM_GUESTDBG_SINGLESTEP`.
pub const KVM_GUESTDBG_SINGLESTEP: u32 = 0x0000_0002;
/// `KVM_IRQ_ROUTING_IRQCHIP` (gsi routing entry type).
pub const KVM_IRQ_ROUTING_IRQCHIP: u32 = 1;
/// `KVM_IRQ_ROUTING_MSI` (gsi routing entry type).
pub const KVM_IRQ_ROUTING_MSI: u32 = 2;

/// `KVM_MP_STATE_*` as a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MpState {
    /// `KVM_MP_STATE_RUNNABLE`.
    Runnable = KVM_MP_STATE_RUNNABLE,
    /// `KVM_MP_STATE_UNINITIALIZED`.
    Uninitialized = KVM_MP_STATE_UNINITIALIZED,
    /// `KVM_MP_STATE_INIT_RECEIVED`.
    InitReceived = KVM_MP_STATE_INIT_RECEIVED,
    /// `KVM_MP_STATE_HALTED`.
    Halted = KVM_MP_STATE_HALTED,
    /// `KVM_MP_STATE_SIPI_RECEIVED`.
    SipiReceived = KVM_MP_STATE_SIPI_RECEIVED,
}

impl TryFrom<u32> for MpState {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            KVM_MP_STATE_RUNNABLE => Ok(MpState::Runnable),
            KVM_MP_STATE_UNINITIALIZED => Ok(MpState::Uninitialized),
            KVM_MP_STATE_INIT_RECEIVED => Ok(MpState::InitReceived),
            KVM_MP_STATE_HALTED => Ok(MpState::Halted),
            KVM_MP_STATE_SIPI_RECEIVED => Ok(MpState::SipiReceived),
            other => Err(other),
        }
    }
}

/// Type of a GSI routing entry (`KVM_IRQ_ROUTING_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum IrqRoutingType {
    /// `KVM_IRQ_ROUTING_IRQCHIP`.
    Irqchip = KVM_IRQ_ROUTING_IRQCHIP,
    /// `KVM_IRQ_ROUTING_MSI`.
    Msi = KVM_IRQ_ROUTING_MSI,
}

impl TryFrom<u32> for IrqRoutingType {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        match v {
            KVM_IRQ_ROUTING_IRQCHIP => Ok(IrqRoutingType::Irqchip),
            KVM_IRQ_ROUTING_MSI => Ok(IrqRoutingType::Msi),
            other => Err(other),
        }
    }
}

/// `struct kvm_memory_region` (for the obsolete KVM_CREATE_MEMORY_REGION).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_memory_region {
    pub slot: u32,
    pub flags: u32,
    pub guest_phys_addr: u64,
    pub memory_size: u64,
}
assert_layout!(
    kvm_memory_region,
    size = 24,
    align = 8,
    slot = 0,
    flags = 4,
    guest_phys_addr = 8,
    memory_size = 16
);

/// `struct kvm_userspace_memory_region` (KVM_SET_USER_MEMORY_REGION).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_userspace_memory_region {
    pub slot: u32,
    pub flags: u32,
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
}
assert_layout!(
    kvm_userspace_memory_region,
    size = 32,
    align = 8,
    slot = 0,
    flags = 4,
    guest_phys_addr = 8,
    memory_size = 16,
    userspace_addr = 24
);

/// The anonymous `{ irq; status; }` union of `kvm_irq_level`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_irq_level_u {
    pub irq: u32,
    pub status: i32,
}
assert_layout!(kvm_irq_level_u, size = 4, align = 4, irq = 0, status = 0);

/// `struct kvm_irq_level` (KVM_IRQ_LINE / KVM_IRQ_LINE_STATUS).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_irq_level {
    pub u: kvm_irq_level_u,
    pub level: u32,
}
assert_layout!(kvm_irq_level, size = 8, align = 4, u = 0, level = 4);

impl kvm_irq_level {
    /// The `irq` member (input).
    pub const fn irq(&self) -> u32 {
        // SAFETY: both members are 4-byte integers; any bits are valid.
        unsafe { self.u.irq }
    }
    /// The `status` member (output of KVM_IRQ_LINE_STATUS).
    pub const fn status(&self) -> i32 {
        // SAFETY: as above.
        unsafe { self.u.status }
    }
}

/// `kvm_irqchip.chip` (anonymous union in C).
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_irqchip_chip {
    pub dummy: [u8; 512],
    pub pic: kvm_pic_state,
    pub ioapic: kvm_ioapic_state,
}
assert_layout!(
    kvm_irqchip_chip,
    size = 512,
    align = 8,
    dummy = 0,
    pic = 0,
    ioapic = 0
);

/// `struct kvm_irqchip` (KVM_GET_IRQCHIP / KVM_SET_IRQCHIP).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_irqchip {
    pub chip_id: u32,
    pub pad: u32,
    pub chip: kvm_irqchip_chip,
}
assert_layout!(
    kvm_irqchip,
    size = 520,
    align = 8,
    chip_id = 0,
    pad = 4,
    chip = 8
);

/// `struct kvm_pit_config` (KVM_CREATE_PIT2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_pit_config {
    pub flags: u32,
    pub pad: [u32; 15],
}
assert_layout!(kvm_pit_config, size = 64, align = 4, flags = 0, pad = 4);

/// `struct kvm_coalesced_mmio_zone` (KVM_(UN)REGISTER_COALESCED_MMIO).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_coalesced_mmio_zone {
    pub addr: u64,
    pub size: u32,
    pub pad: u32,
}
assert_layout!(
    kvm_coalesced_mmio_zone,
    size = 16,
    align = 8,
    addr = 0,
    size = 8,
    pad = 12
);

/// `struct kvm_coalesced_mmio`: one entry of the coalesced-MMIO ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_coalesced_mmio {
    pub phys_addr: u64,
    pub len: u32,
    pub pad: u32,
    pub data: [u8; 8],
}
assert_layout!(
    kvm_coalesced_mmio,
    size = 24,
    align = 8,
    phys_addr = 0,
    len = 8,
    pad = 12,
    data = 16
);

/// `struct kvm_coalesced_mmio_ring` header; the entries continue to the end
/// of the ring page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_coalesced_mmio_ring {
    pub first: u32,
    pub last: u32,
    pub coalesced_mmio: [kvm_coalesced_mmio; 1],
}
assert_layout!(
    kvm_coalesced_mmio_ring,
    size = 32,
    align = 8,
    first = 0,
    last = 4,
    coalesced_mmio = 8
);

/// `KVM_COALESCED_MMIO_MAX`: ring entries that fit in one page (169).
pub const KVM_COALESCED_MMIO_MAX: usize = (PAGESIZE
    - core::mem::size_of::<kvm_coalesced_mmio_ring>())
    / core::mem::size_of::<kvm_coalesced_mmio>();
const _: () = assert!(KVM_COALESCED_MMIO_MAX == 169);

/// `struct kvm_interrupt` (KVM_INTERRUPT).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_interrupt {
    pub irq: u32,
}
assert_layout!(kvm_interrupt, size = 4, align = 4, irq = 0);

/// The anonymous `{ dirty_bitmap; padding2; }` union of `kvm_dirty_log`.
/// `dirty_bitmap` is a user-space pointer, kept as its 64-bit address.
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_dirty_log_u {
    pub dirty_bitmap: u64,
    pub padding2: u64,
}
assert_layout!(
    kvm_dirty_log_u,
    size = 8,
    align = 8,
    dirty_bitmap = 0,
    padding2 = 0
);

/// `struct kvm_dirty_log` (KVM_GET_DIRTY_LOG).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_dirty_log {
    pub slot: u32,
    pub padding1: u32,
    pub u: kvm_dirty_log_u,
}
assert_layout!(
    kvm_dirty_log,
    size = 16,
    align = 8,
    slot = 0,
    padding1 = 4,
    u = 8
);

impl kvm_dirty_log {
    /// The user address of the bitmap (`dirty_bitmap`).
    pub const fn dirty_bitmap(&self) -> u64 {
        // SAFETY: both members are u64; any bits are valid.
        unsafe { self.u.dirty_bitmap }
    }
}

/// `struct kvm_signal_mask` header (KVM_SET_SIGNAL_MASK); `sigset` continues
/// for `len` bytes in user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_signal_mask {
    pub len: u32,
    pub sigset: [u8; 1],
    /// Explicit form of C's implicit tail padding.
    pub _tail_pad: [u8; 3],
}
assert_layout!(
    kvm_signal_mask,
    size = 8,
    align = 4,
    len = 0,
    sigset = 4,
    _tail_pad = 5
);

/// `struct kvm_tpr_access_ctl` (KVM_TPR_ACCESS_REPORTING, not implemented).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_tpr_access_ctl {
    pub enabled: u32,
    pub flags: u32,
    pub reserved: [u32; 8],
}
assert_layout!(
    kvm_tpr_access_ctl,
    size = 40,
    align = 4,
    enabled = 0,
    flags = 4,
    reserved = 8
);

/// `struct kvm_vapic_addr` (KVM_SET_VAPIC_ADDR).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_vapic_addr {
    pub vapic_addr: u64,
}
assert_layout!(kvm_vapic_addr, size = 8, align = 8, vapic_addr = 0);

/// `struct kvm_mp_state` (KVM_GET_MP_STATE / KVM_SET_MP_STATE).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_mp_state {
    pub mp_state: u32,
}
assert_layout!(kvm_mp_state, size = 4, align = 4, mp_state = 0);

/// `struct kvm_guest_debug` (KVM_SET_GUEST_DEBUG is not defined in illumos).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_guest_debug {
    pub control: u32,
    pub pad: u32,
    pub arch: kvm_guest_debug_arch,
}
assert_layout!(
    kvm_guest_debug,
    size = 72,
    align = 8,
    control = 0,
    pad = 4,
    arch = 8
);

/// `struct kvm_irq_routing_irqchip`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_irq_routing_irqchip {
    pub irqchip: u32,
    pub pin: u32,
}
assert_layout!(
    kvm_irq_routing_irqchip,
    size = 8,
    align = 4,
    irqchip = 0,
    pin = 4
);

/// `struct kvm_irq_routing_msi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_irq_routing_msi {
    pub address_lo: u32,
    pub address_hi: u32,
    pub data: u32,
    pub pad: u32,
}
assert_layout!(
    kvm_irq_routing_msi,
    size = 16,
    align = 4,
    address_lo = 0,
    address_hi = 4,
    data = 8,
    pad = 12
);

/// `kvm_irq_routing_entry.u` (union in C).
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_irq_routing_entry_u {
    pub irqchip: kvm_irq_routing_irqchip,
    pub msi: kvm_irq_routing_msi,
    pub pad: [u32; 8],
}
assert_layout!(
    kvm_irq_routing_entry_u,
    size = 32,
    align = 4,
    irqchip = 0,
    msi = 0,
    pad = 0
);

/// `struct kvm_irq_routing_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_irq_routing_entry {
    pub gsi: u32,
    pub r#type: u32,
    pub flags: u32,
    pub pad: u32,
    pub u: kvm_irq_routing_entry_u,
}
assert_layout!(
    kvm_irq_routing_entry,
    size = 48,
    align = 4,
    gsi = 0,
    r#type = 4,
    flags = 8,
    pad = 12,
    u = 16
);

/// `struct kvm_irq_routing` header (KVM_SET_GSI_ROUTING); `nr` entries
/// continue in user memory from `entries`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_irq_routing {
    pub nr: u32,
    pub flags: u32,
    pub entries: [kvm_irq_routing_entry; 1],
}
assert_layout!(
    kvm_irq_routing,
    size = 56,
    align = 4,
    nr = 0,
    flags = 4,
    entries = 8
);

/// `struct kvm_x86_mce` (KVM_X86_SET_MCE, not implemented).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_x86_mce {
    pub status: u64,
    pub addr: u64,
    pub misc: u64,
    pub mcg_status: u64,
    pub bank: u8,
    pub pad1: [u8; 7],
    pub pad2: [u64; 3],
}
assert_layout!(
    kvm_x86_mce,
    size = 64,
    align = 8,
    status = 0,
    addr = 8,
    misc = 16,
    mcg_status = 24,
    bank = 32,
    pad1 = 33,
    pad2 = 40
);

/// `struct kvm_clock_data` (KVM_GET_CLOCK / KVM_SET_CLOCK, not implemented).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_clock_data {
    pub clock: u64,
    pub flags: u32,
    pub pad: [u32; 9],
}
assert_layout!(
    kvm_clock_data,
    size = 48,
    align = 8,
    clock = 0,
    flags = 8,
    pad = 12
);

impl_pod!(
    kvm_memory_region,
    kvm_userspace_memory_region,
    kvm_irq_level_u,
    kvm_irq_level,
    kvm_irqchip_chip,
    kvm_irqchip,
    kvm_pit_config,
    kvm_coalesced_mmio_zone,
    kvm_coalesced_mmio,
    kvm_coalesced_mmio_ring,
    kvm_interrupt,
    kvm_dirty_log_u,
    kvm_dirty_log,
    kvm_signal_mask,
    kvm_tpr_access_ctl,
    kvm_vapic_addr,
    kvm_mp_state,
    kvm_guest_debug,
    kvm_irq_routing_irqchip,
    kvm_irq_routing_msi,
    kvm_irq_routing_entry_u,
    kvm_irq_routing_entry,
    kvm_irq_routing,
    kvm_x86_mce,
    kvm_clock_data,
);
