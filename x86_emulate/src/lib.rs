//! The x86 instruction emulator of illumos-kvm: a port of `kvm_emulate.c`
//! (itself Linux 2.6.34 `x86_emulate.c`).
//!
//! [`decode::decode`] turns instruction bytes into an [`Insn`]; [`emulate`]
//! fetches, decodes and executes one instruction against a [`Context`]
//! (mode and register file) and an [`EmulatorOps`] implementation that owns
//! guest memory, port I/O, segments, control registers and MSRs. Every
//! outcome is a value: [`Outcome`] for the cases the caller acts on
//! (done, pending I/O, exception to inject, halt) and [`Unhandleable`] for
//! instructions this emulator does not do. [`task_switch`] performs a
//! hardware task switch (a VMX task-switch exit) against the same ops.
//! Nothing on a path guest bytes reach can panic.
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

pub mod decode;
pub mod exec;
pub mod flags;
pub mod mode;
pub mod ops;
pub mod regs;

pub use decode::{DecodeError, Insn, decode};
pub use exec::{
    Context, InterruptShadow, Outcome, TaskSwitch, TaskSwitchOutcome, TaskSwitchReason,
    Unhandleable, emulate, execute, task_switch,
};
pub use flags::Rflags;
pub use mode::{Mode, Size};
pub use ops::{
    Access, EmulatorOps, Exception, FlatSegment, OpError, Seg, SegmentCache, SegmentLimits,
};
pub use regs::{Gpr, Registers};
