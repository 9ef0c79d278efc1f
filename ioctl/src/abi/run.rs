//! Port of `struct kvm_run` from the C driver's `sys/kvm.h` (the page user
//! space maps at offset 0 of a VCPU fd) and the `KVM_EXIT_*` reasons.
//! illumos-kvm's `kvm_run` is older than Linux's: `padding1[7]` (no
//! `immediate_exit`) and `padding2[2]` (no `flags`).

use super::x86::kvm_debug_exit_arch;
use super::{assert_layout, impl_pod};

/// `KVM_EXIT_IO_IN` (`kvm_run.io.direction`).
pub const KVM_EXIT_IO_IN: u8 = 0;
/// `KVM_EXIT_IO_OUT` (`kvm_run.io.direction`).
pub const KVM_EXIT_IO_OUT: u8 = 1;

/// `KVM_EXIT_*`: why KVM_RUN returned (`kvm_run.exit_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ExitReason {
    /// `KVM_EXIT_UNKNOWN`.
    Unknown = 0,
    /// `KVM_EXIT_EXCEPTION`.
    Exception = 1,
    /// `KVM_EXIT_IO`.
    Io = 2,
    /// `KVM_EXIT_HYPERCALL`.
    Hypercall = 3,
    /// `KVM_EXIT_DEBUG`.
    Debug = 4,
    /// `KVM_EXIT_HLT`.
    Hlt = 5,
    /// `KVM_EXIT_MMIO`.
    Mmio = 6,
    /// `KVM_EXIT_IRQ_WINDOW_OPEN`.
    IrqWindowOpen = 7,
    /// `KVM_EXIT_SHUTDOWN`.
    Shutdown = 8,
    /// `KVM_EXIT_FAIL_ENTRY`.
    FailEntry = 9,
    /// `KVM_EXIT_INTR`.
    Intr = 10,
    /// `KVM_EXIT_SET_TPR`.
    SetTpr = 11,
    /// `KVM_EXIT_TPR_ACCESS`.
    TprAccess = 12,
    /// `KVM_EXIT_S390_SIEIC`.
    S390Sieic = 13,
    /// `KVM_EXIT_S390_RESET`.
    S390Reset = 14,
    /// `KVM_EXIT_DCR`.
    Dcr = 15,
    /// `KVM_EXIT_NMI`.
    Nmi = 16,
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError = 17,
}

/// Every exit reason with its C name (for tables and the layout test).
pub const ALL_EXIT_REASONS: &[(&str, ExitReason)] = &[
    ("KVM_EXIT_UNKNOWN", ExitReason::Unknown),
    ("KVM_EXIT_EXCEPTION", ExitReason::Exception),
    ("KVM_EXIT_IO", ExitReason::Io),
    ("KVM_EXIT_HYPERCALL", ExitReason::Hypercall),
    ("KVM_EXIT_DEBUG", ExitReason::Debug),
    ("KVM_EXIT_HLT", ExitReason::Hlt),
    ("KVM_EXIT_MMIO", ExitReason::Mmio),
    ("KVM_EXIT_IRQ_WINDOW_OPEN", ExitReason::IrqWindowOpen),
    ("KVM_EXIT_SHUTDOWN", ExitReason::Shutdown),
    ("KVM_EXIT_FAIL_ENTRY", ExitReason::FailEntry),
    ("KVM_EXIT_INTR", ExitReason::Intr),
    ("KVM_EXIT_SET_TPR", ExitReason::SetTpr),
    ("KVM_EXIT_TPR_ACCESS", ExitReason::TprAccess),
    ("KVM_EXIT_S390_SIEIC", ExitReason::S390Sieic),
    ("KVM_EXIT_S390_RESET", ExitReason::S390Reset),
    ("KVM_EXIT_DCR", ExitReason::Dcr),
    ("KVM_EXIT_NMI", ExitReason::Nmi),
    ("KVM_EXIT_INTERNAL_ERROR", ExitReason::InternalError),
];

/// `kvm_run.hw` (KVM_EXIT_UNKNOWN).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_hw {
    pub hardware_exit_reason: u64,
}
assert_layout!(kvm_run_hw, size = 8, align = 8, hardware_exit_reason = 0);

/// `kvm_run.fail_entry` (KVM_EXIT_FAIL_ENTRY).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_fail_entry {
    pub hardware_entry_failure_reason: u64,
}
assert_layout!(
    kvm_run_fail_entry,
    size = 8,
    align = 8,
    hardware_entry_failure_reason = 0
);

/// `kvm_run.ex` (KVM_EXIT_EXCEPTION).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_ex {
    pub exception: u32,
    pub error_code: u32,
}
assert_layout!(
    kvm_run_ex,
    size = 8,
    align = 4,
    exception = 0,
    error_code = 4
);

/// `kvm_run.io` (KVM_EXIT_IO); the data is at `data_offset` from the start
/// of `kvm_run` (the PIO page).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_io {
    pub direction: u8,
    pub size: u8,
    pub port: u16,
    pub count: u32,
    pub data_offset: u64,
}
assert_layout!(
    kvm_run_io,
    size = 16,
    align = 8,
    direction = 0,
    size = 1,
    port = 2,
    count = 4,
    data_offset = 8
);

/// `kvm_run.debug` (KVM_EXIT_DEBUG).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_debug {
    pub arch: kvm_debug_exit_arch,
}
assert_layout!(kvm_run_debug, size = 32, align = 8, arch = 0);

/// `kvm_run.mmio` (KVM_EXIT_MMIO).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_mmio {
    pub phys_addr: u64,
    pub data: [u8; 8],
    pub len: u32,
    pub is_write: u8,
    /// Explicit form of C's implicit tail padding.
    pub _tail_pad: [u8; 3],
}
assert_layout!(
    kvm_run_mmio,
    size = 24,
    align = 8,
    phys_addr = 0,
    data = 8,
    len = 16,
    is_write = 20,
    _tail_pad = 21
);

/// `kvm_run.hypercall` (KVM_EXIT_HYPERCALL).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_hypercall {
    pub nr: u64,
    pub args: [u64; 6],
    pub ret: u64,
    pub longmode: u32,
    pub pad: u32,
}
assert_layout!(
    kvm_run_hypercall,
    size = 72,
    align = 8,
    nr = 0,
    args = 8,
    ret = 56,
    longmode = 64,
    pad = 68
);

/// `kvm_run.tpr_access` (KVM_EXIT_TPR_ACCESS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_tpr_access {
    pub rip: u64,
    pub is_write: u32,
    pub pad: u32,
}
assert_layout!(
    kvm_run_tpr_access,
    size = 16,
    align = 8,
    rip = 0,
    is_write = 8,
    pad = 12
);

/// `kvm_run.dcr` (KVM_EXIT_DCR).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_dcr {
    pub dcrn: u32,
    pub data: u32,
    pub is_write: u8,
    /// Explicit form of C's implicit tail padding.
    pub _tail_pad: [u8; 3],
}
assert_layout!(
    kvm_run_dcr,
    size = 12,
    align = 4,
    dcrn = 0,
    data = 4,
    is_write = 8,
    _tail_pad = 9
);

/// `kvm_run.internal` (KVM_EXIT_INTERNAL_ERROR).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvm_run_internal {
    pub suberror: u32,
    pub ndata: u32,
    pub data: [u64; 16],
}
assert_layout!(
    kvm_run_internal,
    size = 136,
    align = 8,
    suberror = 0,
    ndata = 4,
    data = 8
);

/// The anonymous exit-information union of `kvm_run` (256 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union kvm_run_u {
    pub hw: kvm_run_hw,
    pub fail_entry: kvm_run_fail_entry,
    pub ex: kvm_run_ex,
    pub io: kvm_run_io,
    pub debug: kvm_run_debug,
    pub mmio: kvm_run_mmio,
    pub hypercall: kvm_run_hypercall,
    pub tpr_access: kvm_run_tpr_access,
    pub dcr: kvm_run_dcr,
    pub internal: kvm_run_internal,
    pub padding: [u8; 256],
}
assert_layout!(
    kvm_run_u,
    size = 256,
    align = 8,
    hw = 0,
    fail_entry = 0,
    ex = 0,
    io = 0,
    debug = 0,
    mmio = 0,
    hypercall = 0,
    tpr_access = 0,
    dcr = 0,
    internal = 0,
    padding = 0
);

/// `struct kvm_run` (288 bytes): page 0 of a VCPU fd's mapping.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct kvm_run {
    pub request_interrupt_window: u8,
    pub padding1: [u8; 7],
    pub exit_reason: u32,
    pub ready_for_interrupt_injection: u8,
    pub if_flag: u8,
    pub padding2: [u8; 2],
    pub cr8: u64,
    pub apic_base: u64,
    pub u: kvm_run_u,
}
assert_layout!(
    kvm_run,
    size = 288,
    align = 8,
    request_interrupt_window = 0,
    padding1 = 1,
    exit_reason = 8,
    ready_for_interrupt_injection = 12,
    if_flag = 13,
    padding2 = 14,
    cr8 = 16,
    apic_base = 24,
    u = 32
);

impl_pod!(
    kvm_run_hw,
    kvm_run_fail_entry,
    kvm_run_ex,
    kvm_run_io,
    kvm_run_debug,
    kvm_run_mmio,
    kvm_run_hypercall,
    kvm_run_tpr_access,
    kvm_run_dcr,
    kvm_run_internal,
    kvm_run_u,
    kvm_run,
);
