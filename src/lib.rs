//! `kvm`: the Rust half of the illumos kvm driver.
//!
//! The module object `build/kvm` is this crate as a staticlib, built with
//! kernel codegen flags by the Makefile (feature `kernel`), linked with the
//! DDI glue in `src/glue/` and audited by `tools/kmodfix`. The subsystem
//! crates (`vmx`, `mmu`, `x86_emulate`, `ioctl`, `kstat`, `src/devices`) hold
//! the logic; this crate implements their platform traits for the illumos
//! kernel (`illumos/`) and exports the `kvm_rs_*` entry points the glue calls
//! (`entry.rs`).
//!
//! Without the `kernel` feature the crate is an ordinary `no_std` library, so
//! `cargo test` runs its platform-independent parts with std.
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

pub mod cstr_buf;
pub mod ddi;
pub mod kmem;
pub mod vm;

#[cfg(feature = "kernel")]
mod entry;
#[cfg(feature = "kernel")]
mod illumos;
