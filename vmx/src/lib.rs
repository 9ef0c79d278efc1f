//! VMX for illumos-kvm: what the CPU offers and, as the VMX-core issue lands,
//! the VMCS policy, exit handling and the run loop (port of `kvm_vmx.c`).
//!
//! The crate never touches hardware itself: every CPUID, MSR or VMX
//! instruction goes through a trait the driver implements for the illumos
//! kernel (`src/illumos`) and tests implement with fakes.
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

#[cfg(test)]
extern crate std;

pub mod cpu;
pub mod exit_reason;
pub mod msr;
pub mod support;

pub use cpu::{CpuFeatures, CpuidResult};
pub use exit_reason::ExitReason;
pub use support::{Refusal, VmxSupport, check_support};
