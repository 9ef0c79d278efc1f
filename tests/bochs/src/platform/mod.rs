//! The bare-metal implementations of the driver crates' platform traits:
//! `kvm::vm::Services` (`services`), the ioctl layer's `Platform` and
//! `UserMemory` (`ioctl`), the VMX run loop's `VmxHost` (`vmx_host`), the
//! device timer callbacks and the seam wrapper that finds VMs for them
//! (`timers`), and the "user" address space they share (`user`): on this
//! host the VMM is the host itself, its "user" addresses are
//! identity-mapped physical addresses, and only the ranges the VMM
//! registered (guest RAM, private memslots) count as guest-mappable.

pub mod ioctl;
pub mod services;
pub mod timers;
pub mod user;
pub mod vmx_host;
