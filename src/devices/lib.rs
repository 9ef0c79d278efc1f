//! In-kernel interrupt controllers and timers (issue 5).
//!
//! Pure, platform-free state machines ported from illumos-kvm:
//! [`ioapic`] (82093AA), [`i8259`] (8259A pair), [`i8254`] (PIT),
//! [`lapic`] (local APIC, xAPIC + x2APIC), [`irq_routing`] (GSI routing),
//! [`iobus`] (PIO/MMIO dispatch), [`coalesced_mmio`] (the ring), and
//! [`clock`] (the injected clock and the timer the platform arms).
//! Messages between them are the types of [`apic_bus`].
//!
//! Save/restore structs (`*State`) are local `#[repr(C)]` mirrors of the
//! illumos-kvm ABI structs; the `kvm-ioctl` crate will own the ABI types and
//! convert to and from these.
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

pub mod apic_bus;
pub mod clock;
pub mod coalesced_mmio;
pub mod i8254;
pub mod i8259;
pub mod ioapic;
pub mod iobus;
pub mod irq_routing;
pub mod lapic;
pub mod lapic_bus;
