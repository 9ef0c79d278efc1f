//! The /dev/kvm contract (issue 3): ABI structs, illumos ioctl numbers,
//! the handle model and the dispatcher.
//!
//! * [`abi`]: every struct/constant of the C driver's `sys/kvm.h`,
//!   `sys/kvm_x86.h`, `sys/kvm_para.h`, and the ioctl numbers.
//! * [`Driver`]: the handle model (self-cloning open, KVM_CREATE_VM,
//!   KVM_CLONE, KVM_CREATE_VCPU, close, segmap/devmap) and the ioctl
//!   dispatcher; the driver crate owns one `Driver<P, B>`.
//! * [`platform::Platform`] / [`platform::UserMemory`]: what it needs from
//!   the kernel. [`backend::Backend`]: the subsystems behind the ioctls.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod backend;
mod dispatch;
pub mod driver;
pub mod errno;
pub mod platform;
pub mod validate;

pub use backend::{Backend, Unimplemented, VcpuRequest, VmId, VmRequest};
pub use driver::{DevmapChunk, Driver, MapKind, Snapshot};
pub use errno::Errno;
pub use platform::{Dev, Lock, LockFamily, Minor, Platform, UserMemory};

/// `KVM_MAX_VCPUS` (kvm_x86host.h:47).
pub const KVM_MAX_VCPUS: u32 = 64;
/// `KVM_MEMORY_SLOTS`: user memory slots (kvm_x86host.h:48).
pub const KVM_MEMORY_SLOTS: usize = 32;
/// `KVM_MAX_CPUID_ENTRIES` (kvm_x86host.h:101).
pub const KVM_MAX_CPUID_ENTRIES: usize = 40;
/// `KVM_MAX_IRQ_ROUTES` (kvm_host.h:100).
pub const KVM_MAX_IRQ_ROUTES: u32 = 1024;
/// `KVM_MAX_MCE_BANKS` (kvm_x86host.h:44).
pub const KVM_MAX_MCE_BANKS: u32 = 32;
/// `MCG_CTL_P` = `KVM_MCE_CAP_SUPPORTED` (kvm_x86host.h:43-45).
pub const MCG_CTL_P: u64 = 1 << 8;
/// `KVM_PIO_PAGE_OFFSET` (kvm_x86host.h:52).
pub const KVM_PIO_PAGE_OFFSET: u64 = 1;
/// `KVM_COALESCED_MMIO_PAGE_OFFSET` (kvm_x86host.h:53).
pub const KVM_COALESCED_MMIO_PAGE_OFFSET: u64 = 2;
/// `KVM_VCPU_MMAP_LENGTH` in pages (kvm_x86host.h:54).
pub const KVM_VCPU_MMAP_LENGTH: u64 = 3;
/// `ptob(KVM_VCPU_MMAP_LENGTH)`: the answer of KVM_GET_VCPU_MMAP_SIZE (12288).
pub const KVM_VCPU_MMAP_SIZE: u64 = KVM_VCPU_MMAP_LENGTH * abi::PAGESIZE as u64;
/// Entries of the fixed `kvm_msrs.entries` (illumos' `MAX_IO_MSRS` is 256,
/// but the buffer holds 100: more is E2BIG here).
pub const KVM_MAX_IO_MSRS: u32 = abi::KVM_MSRS_ENTRIES as u32;
