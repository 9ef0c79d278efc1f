//! The illumos kernel side of the platform traits: raw declarations of the
//! DDI/kernel functions the driver calls (`sys`), and their safe wrappers.
//! Compiled only into the kernel module (feature `kernel`).

pub mod cpu;
pub mod kmem;
pub mod log;
pub mod panic;
// Used by the ioctl layer once it is wired to the driver (issue 3).
#[allow(dead_code)]
pub mod sync;
pub mod sys;
