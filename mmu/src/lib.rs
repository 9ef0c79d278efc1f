//! Guest memory for illumos-kvm: memslots, EPT tables, the guest page-table
//! walker and dirty logging (port of `kvm_mmu.c` and `kvm_paging_tmpl.h`,
//! EPT path only; shadow paging is out of scope: the driver refuses CPUs
//! without EPT).
//!
//! The crate has no `unsafe`: it reaches memory only through the traits in
//! [`platform`], which the driver implements for the illumos kernel and the
//! tests implement over a fake arena.
//!
//! # What the driver implements
//! * [`platform::TablePages`]: zeroed 4 KiB pages for EPT tables, named by
//!   physical address, with atomic 64-bit entry reads/writes (kmem + kpm).
//! * [`platform::GuestMemory`]: the VMM process's memory by host virtual
//!   address: `resolve` (`hat_getpfnum`), optionally `resolve_2m`, and
//!   `read`/`write`/`cmpxchg` (copyin/copyout/atomic CAS).
//!
//! # What it calls
//! * [`Mmu::new`] per VM; [`Mmu::eptp`] into the VMCS; drop frees all tables.
//! * `KVM_SET_USER_MEMORY_REGION` → [`Mmu::set_user_memory_region`];
//!   private slots → [`Mmu::set_memory_region`] with [`SlotId::TSS`] etc.
//! * EPT-violation exit → [`Mmu::handle_ept_violation`] with
//!   [`EptViolation::from_qualification`]; [`FaultOutcome::Mmio`] means
//!   "emulate".
//! * `KVM_GET_DIRTY_LOG` → [`Mmu::dirty_log_words`] + [`Mmu::get_dirty_log`].
//! * Kernel accesses to guest RAM → [`Mmu::read_guest`] / [`Mmu::write_guest`]
//!   (the latter marks pages dirty), or [`Mmu::mark_page_dirty`].
//! * Linear → guest-physical (emulator, `kvm_read_guest_virt`) →
//!   [`walker::translate`] with the `Mmu` as [`platform::GuestPhys`].
//! * Any [`Invept::Needed`] → INVEPT single-context on every CPU that ran
//!   the VM, then [`Mmu::invept_done`] (frees unlinked tables).
//! * kstats → [`Mmu::stats`].
//!
//! # Errors → errno (the ioctl layer maps them; see [`MmuError::errno`])
//! | error | errno |
//! |---|---|
//! | `Misaligned`, `BadSlot`, `AddressOverflow`, `Resize`, `UnsupportedFlags`, `BufferTooSmall` | `EINVAL` |
//! | `Overlap` | `EEXIST` |
//! | `NoMemory` | `ENOMEM` |
//! | `NotLogging` | `ENOENT` |
//! | `HostFault`, `NoSlot` | `EFAULT` |
#![no_std]
#![forbid(unsafe_code)]
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

pub mod dirty;
pub mod ept;
mod error;
pub mod fault;
pub mod memslot;
pub mod platform;
mod vm;
pub mod walker;

pub use ept::Invept;
pub use error::{Errno, MmuError};
pub use fault::{EptViolation, FaultOutcome};
pub use memslot::{GpaRange, MemFlags, MemoryRegion, Memslot, Memslots, SlotChange, SlotId};
pub use vm::{Mmu, MmuStats};
