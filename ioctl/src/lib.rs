//! The /dev/kvm contract (issue 3): ABI structs, illumos ioctl numbers,
//! the handle model and the dispatcher.
#![no_std]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(test)]
extern crate std;

pub mod abi;
