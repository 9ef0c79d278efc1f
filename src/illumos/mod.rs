//! The illumos kernel side of the platform traits: raw declarations of the
//! DDI/kernel functions the driver calls (`sys`), and their safe wrappers.
//! Compiled only into the kernel module (feature `kernel`).

pub mod cpu;
pub mod kmem;
pub mod log;
pub mod panic;
pub mod platform;
pub mod services;
pub mod sync;
pub mod sys;
pub mod vmx_host;
