//! Port of the C driver's `sys/kvm_para.h`: the paravirtual CPUID leaves,
//! feature bits, MSRs and the guest-shared structures.

use super::{assert_layout, impl_pod};

/// `KVM_CPUID_SIGNATURE`: leaf returning "KVMKVMKVM".
pub const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
/// `KVM_CPUID_FEATURES`: leaf returning the PV feature bitmap in EAX.
pub const KVM_CPUID_FEATURES: u32 = 0x4000_0001;
/// `KVM_FEATURE_CLOCKSOURCE` (bit number).
pub const KVM_FEATURE_CLOCKSOURCE: u32 = 0;
/// `KVM_FEATURE_NOP_IO_DELAY` (bit number).
pub const KVM_FEATURE_NOP_IO_DELAY: u32 = 1;
/// `KVM_FEATURE_MMU_OP` (bit number).
pub const KVM_FEATURE_MMU_OP: u32 = 2;
/// `KVM_FEATURE_CLOCKSOURCE2` (bit number).
pub const KVM_FEATURE_CLOCKSOURCE2: u32 = 3;
/// `KVM_FEATURE_ASYNC_PF` (bit number).
pub const KVM_FEATURE_ASYNC_PF: u32 = 4;
/// `KVM_FEATURE_STEAL_TIME` (bit number).
pub const KVM_FEATURE_STEAL_TIME: u32 = 5;
/// `KVM_FEATURE_CLOCKSOURCE_STABLE_BIT` (bit number).
pub const KVM_FEATURE_CLOCKSOURCE_STABLE_BIT: u32 = 24;
/// `MSR_KVM_WALL_CLOCK`.
pub const MSR_KVM_WALL_CLOCK: u32 = 0x11;
/// `MSR_KVM_SYSTEM_TIME`.
pub const MSR_KVM_SYSTEM_TIME: u32 = 0x12;
/// `KVM_MSR_ENABLED`.
pub const KVM_MSR_ENABLED: u64 = 1;
/// `MSR_KVM_WALL_CLOCK_NEW`.
pub const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
/// `MSR_KVM_SYSTEM_TIME_NEW`.
pub const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
/// `MSR_KVM_ASYNC_PF_EN`.
pub const MSR_KVM_ASYNC_PF_EN: u32 = 0x4b56_4d02;
/// `MSR_KVM_STEAL_TIME`.
pub const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
/// `KVM_STEAL_ALIGNMENT_BITS`.
pub const KVM_STEAL_ALIGNMENT_BITS: u32 = 5;
/// `KVM_STEAL_VALID_BITS`: `-1ULL << (KVM_STEAL_ALIGNMENT_BITS + 1)`.
pub const KVM_STEAL_VALID_BITS: u64 = u64::MAX << (KVM_STEAL_ALIGNMENT_BITS + 1);
/// `KVM_STEAL_RESERVED_MASK`: `((1 << KVM_STEAL_ALIGNMENT_BITS) - 1) << 1`.
pub const KVM_STEAL_RESERVED_MASK: u64 = ((1 << KVM_STEAL_ALIGNMENT_BITS) - 1) << 1;
/// `KVM_MAX_MMU_OP_BATCH`.
pub const KVM_MAX_MMU_OP_BATCH: u32 = 32;
/// `KVM_ASYNC_PF_ENABLED`.
pub const KVM_ASYNC_PF_ENABLED: u64 = 1 << 0;
/// `KVM_ASYNC_PF_SEND_ALWAYS`.
pub const KVM_ASYNC_PF_SEND_ALWAYS: u64 = 1 << 1;
/// `KVM_MMU_OP_WRITE_PTE`.
pub const KVM_MMU_OP_WRITE_PTE: u32 = 1;
/// `KVM_MMU_OP_FLUSH_TLB`.
pub const KVM_MMU_OP_FLUSH_TLB: u32 = 2;
/// `KVM_MMU_OP_RELEASE_PT`.
pub const KVM_MMU_OP_RELEASE_PT: u32 = 3;
/// `KVM_PV_REASON_PAGE_NOT_PRESENT`.
pub const KVM_PV_REASON_PAGE_NOT_PRESENT: u32 = 1;
/// `KVM_PV_REASON_PAGE_READY`.
pub const KVM_PV_REASON_PAGE_READY: u32 = 2;

/// `struct kvm_steal_time`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_steal_time {
    pub steal: u64,
    pub version: u32,
    pub flags: u32,
    pub pad: [u32; 12],
}
assert_layout!(
    kvm_steal_time,
    size = 64,
    align = 8,
    steal = 0,
    version = 8,
    flags = 12,
    pad = 16
);

/// `struct kvm_mmu_op_header`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_mmu_op_header {
    pub op: u32,
    pub pad: u32,
}
assert_layout!(kvm_mmu_op_header, size = 8, align = 4, op = 0, pad = 4);

/// `struct kvm_mmu_op_write_pte`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_mmu_op_write_pte {
    pub header: kvm_mmu_op_header,
    pub pte_phys: u64,
    pub pte_val: u64,
}
assert_layout!(
    kvm_mmu_op_write_pte,
    size = 24,
    align = 8,
    header = 0,
    pte_phys = 8,
    pte_val = 16
);

/// `struct kvm_mmu_op_flush_tlb`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_mmu_op_flush_tlb {
    pub header: kvm_mmu_op_header,
}
assert_layout!(kvm_mmu_op_flush_tlb, size = 8, align = 4, header = 0);

/// `struct kvm_mmu_op_release_pt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_mmu_op_release_pt {
    pub header: kvm_mmu_op_header,
    pub pt_phys: u64,
}
assert_layout!(
    kvm_mmu_op_release_pt,
    size = 16,
    align = 8,
    header = 0,
    pt_phys = 8
);

/// `struct kvm_vcpu_pv_apf_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kvm_vcpu_pv_apf_data {
    pub reason: u32,
    pub pad: [u8; 60],
    pub enabled: u32,
}
assert_layout!(
    kvm_vcpu_pv_apf_data,
    size = 68,
    align = 4,
    reason = 0,
    pad = 4,
    enabled = 64
);

impl_pod!(
    kvm_steal_time,
    kvm_mmu_op_header,
    kvm_mmu_op_write_pte,
    kvm_mmu_op_flush_tlb,
    kvm_mmu_op_release_pt,
    kvm_vcpu_pv_apf_data,
);
