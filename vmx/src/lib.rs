//! VMX for illumos-kvm: what the CPU offers, the VMCS policy, exit
//! handling, event injection and the run loop (port of `kvm_vmx.c` and the
//! VMX-local parts of `kvm_x86.c`; inventory §9.9–9.11).
//!
//! The crate never touches hardware itself: every CPUID, MSR or VMX
//! instruction goes through a trait the driver implements for the illumos
//! kernel (`src/illumos`) and tests implement with fakes. The one exception
//! is the entry/exit trampoline (`entry::hw`, kernel builds only).
//!
//! - [`support`]: attach-time decision; [`caps`]: capability MSRs →
//!   controls; [`setup`]: the VMCS layout, bitmaps, reset state;
//! - [`vmcs`]: the [`vmcs::Vmcs`] trait (VMREAD/VMWRITE/VMPTRLD/VMCLEAR/
//!   INVEPT/INVVPID), `fake` (feature `fake` or tests): a VMCS in memory;
//! - [`qualification`]: exit qualification and event-information codecs;
//! - [`exit`]: dispatch and handlers over [`env::ExitEnv`];
//! - [`inject`]: the event queue and injection rules;
//! - [`entry`]: the naked VMLAUNCH/VMRESUME trampoline;
//! - [`run`]: `KVM_RUN` decisions over [`run::RunEnv`];
//! - [`host`]: shared MSRs and host state a VM exit does not restore;
//! - [`cr`]: CR0/CR3/CR4 as the CPU runs them; [`rmode`]: real mode via
//!   vm86 without unrestricted guest;
//! - [`state`]: registers, segments, EFER, VCPU events for the ioctls;
//! - [`vcpu`]: the VMX VCPU state, counters and the `kvm_run` exit.
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

#[cfg(any(test, feature = "fake"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod caps;
pub mod cpu;
pub mod cr;
pub mod debugreg;
pub mod entry;
pub mod env;
pub mod exit;
pub mod exit_reason;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod host;
pub mod inject;
pub mod insn;
pub mod msr;
pub mod qualification;
pub mod rmode;
pub mod run;
pub mod setup;
pub mod state;
pub mod support;
pub mod vcpu;
pub mod vmcs;

pub use caps::VmcsConfig;
pub use cpu::{CpuFeatures, CpuidResult};
pub use env::{ExitEnv, InterruptSource, ProbeSink};
pub use exit::{ExitOutcome, handle_exit};
pub use exit_reason::ExitReason;
pub use run::{RunEnv, vcpu_run};
pub use support::{Refusal, VmxSupport, check_support};
pub use vcpu::{UserExit, VmxVcpu};
pub use vmcs::Vmcs;
