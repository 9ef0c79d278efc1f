//! The 82093AA I/O APIC: 24 pins, indirect register window, redirection table.
//!
//! Port of `kvm_ioapic.c`. Datasheet rules (Intel 82093AA I/O APIC, §3):
//! * IOREGSEL at offset 0x00 selects a register, IOWIN at 0x10 accesses it.
//! * Registers: IOAPICID 0x00 (ID in bits 27:24), IOAPICVER 0x01 (version in
//!   7:0, maximum redirection entry in 23:16), IOAPICARB 0x02 (arbitration ID in
//!   27:24, read-only), IOREDTBL\[n\] at 0x10 + 2n (low) / 0x11 + 2n (high).
//! * Redirection entry: vector 7:0, delivery mode 10:8, destination mode 11,
//!   delivery status 12 (RO), polarity 13, remote IRR 14 (RO), trigger 15,
//!   mask 16, destination 63:56.
//! * Edge-triggered: an asserting edge sends one message; edges on a masked pin
//!   are lost. Level-triggered: a message is sent while the line is asserted and
//!   remote IRR is clear; remote IRR is set when a local APIC accepts it and is
//!   cleared by the EOI for its vector, after which a still-asserted line is
//!   delivered again.
//!
//! Differences from the C driver, on purpose:
//! * Remote IRR and delivery status are read-only as the datasheet says (the C
//!   code cleared remote IRR on every low-word write); switching an entry to
//!   edge trigger clears remote IRR (what modern KVM does, and what guests that
//!   toggle trigger mode to unstick a pin rely on).
//! * A redirection write services a pending level interrupt only if it is
//!   unmasked and remote IRR is clear (the C code could deliver twice).
//! * Pin 0 is not forced to the BSP (the C "PIT always to VCPU 0" hack); the
//!   caller may route it as it likes.

use crate::apic_bus::{
    ApicMessage, ApicSink, DeliveryMode, DestMode, IrqStatus, Shorthand, TriggerMode,
};

/// Number of input pins (`IOAPIC_NUM_PINS`).
pub const IOAPIC_NUM_PINS: usize = 24;
/// Version reported in IOAPICVER bits 7:0 (`IOAPIC_VERSION_ID`).
pub const IOAPIC_VERSION_ID: u32 = 0x11;
/// Default MMIO base (`IOAPIC_DEFAULT_BASE_ADDRESS`).
pub const IOAPIC_DEFAULT_BASE_ADDRESS: u64 = 0xfec0_0000;
/// Length of the MMIO window (`IOAPIC_MEM_LENGTH`).
pub const IOAPIC_MEM_LENGTH: u64 = 0x100;

/// The directly addressed MMIO registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoapicMmioReg {
    /// IOREGSEL, offset 0x00.
    RegSelect,
    /// IOWIN, offset 0x10.
    Window,
}

impl IoapicMmioReg {
    /// Decode an offset into the 256-byte window (low byte only, as the C).
    pub const fn from_offset(offset: u64) -> Option<Self> {
        match offset & 0xff {
            0x00 => Some(Self::RegSelect),
            0x10 => Some(Self::Window),
            _ => None,
        }
    }
}

/// The indirect registers selected by IOREGSEL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoapicReg {
    Id,
    Version,
    Arbitration,
    /// Redirection entry `pin`, `high` selects bits 63:32.
    Redirection {
        pin: usize,
        high: bool,
    },
    /// Anything else (reads as all ones for redirection indices past 23,
    /// zero otherwise).
    Unknown,
}

impl IoapicReg {
    /// Decode IOREGSEL.
    pub const fn from_select(sel: u32) -> Self {
        match sel {
            0 => Self::Id,
            1 => Self::Version,
            2 => Self::Arbitration,
            s if s >= 0x10 => {
                let pin = ((s - 0x10) >> 1) as usize;
                if pin < IOAPIC_NUM_PINS {
                    Self::Redirection {
                        pin,
                        high: s & 1 == 1,
                    }
                } else {
                    Self::Unknown
                }
            }
            _ => Self::Unknown,
        }
    }
}

/// One 64-bit redirection table entry (`union kvm_ioapic_redirect_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RedirEntry(pub u64);

impl RedirEntry {
    const DELIVERY_STATUS: u64 = 1 << 12;
    const POLARITY: u64 = 1 << 13;
    const REMOTE_IRR: u64 = 1 << 14;
    const TRIGGER: u64 = 1 << 15;
    const MASK: u64 = 1 << 16;
    /// Bits software cannot write.
    const READ_ONLY: u64 = Self::DELIVERY_STATUS | Self::REMOTE_IRR;

    /// The reset value: masked, everything else zero.
    pub const MASKED: Self = Self(Self::MASK);

    pub const fn vector(self) -> u8 {
        (self.0 & 0xff) as u8
    }
    pub const fn delivery_mode(self) -> DeliveryMode {
        DeliveryMode::from_bits((self.0 >> 8) as u32)
    }
    pub const fn dest_mode(self) -> DestMode {
        if self.0 & (1 << 11) != 0 {
            DestMode::Logical
        } else {
            DestMode::Physical
        }
    }
    /// Polarity: `true` = active low.
    pub const fn active_low(self) -> bool {
        self.0 & Self::POLARITY != 0
    }
    pub const fn remote_irr(self) -> bool {
        self.0 & Self::REMOTE_IRR != 0
    }
    pub const fn trigger(self) -> TriggerMode {
        if self.0 & Self::TRIGGER != 0 {
            TriggerMode::Level
        } else {
            TriggerMode::Edge
        }
    }
    pub const fn masked(self) -> bool {
        self.0 & Self::MASK != 0
    }
    pub const fn dest_id(self) -> u8 {
        (self.0 >> 56) as u8
    }
    fn set_remote_irr(&mut self, on: bool) {
        if on {
            self.0 |= Self::REMOTE_IRR;
        } else {
            self.0 &= !Self::REMOTE_IRR;
        }
    }

    /// The message this entry sends (port of `ioapic_deliver`).
    pub const fn message(self) -> ApicMessage {
        ApicMessage {
            vector: self.vector(),
            delivery_mode: self.delivery_mode(),
            dest_mode: self.dest_mode(),
            trigger: self.trigger(),
            level: true,
            shorthand: Shorthand::None,
            dest_id: self.dest_id() as u32,
        }
    }
}

/// Saved state in the layout of `struct kvm_ioapic_state` (216 bytes), for
/// KVM_GET/SET_IRQCHIP. Local mirror until `kvm-ioctl` owns the ABI struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoapicState {
    pub base_address: u64,
    pub ioregsel: u32,
    pub id: u32,
    pub irr: u32,
    pub pad: u32,
    pub redirtbl: [u64; IOAPIC_NUM_PINS],
}
static_assertions::const_assert_eq!(core::mem::size_of::<IoapicState>(), 216);

/// A mask-bit change of one pin (port of `kvm_fire_mask_notifiers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskChange {
    pub pin: usize,
    pub masked: bool,
}

/// The virtual I/O APIC (port of `struct kvm_ioapic`).
#[derive(Clone, Debug)]
pub struct Ioapic {
    base_address: u64,
    ioregsel: u32,
    id: u32,
    /// Current asserted state of each pin, after polarity.
    irr: u32,
    redirtbl: [RedirEntry; IOAPIC_NUM_PINS],
    /// Vectors used by any entry (fast EOI filter, `handled_vectors`).
    handled_vectors: [u64; 4],
}

impl Default for Ioapic {
    fn default() -> Self {
        Self::new()
    }
}

fn pin_bit(pin: usize) -> u32 {
    u32::try_from(pin)
        .ok()
        .and_then(|p| 1u32.checked_shl(p))
        .unwrap_or(0)
}

impl Ioapic {
    /// A reset I/O APIC (port of `kvm_ioapic_init` + `kvm_ioapic_reset`):
    /// every pin masked, ID 0, IOREGSEL 0.
    pub fn new() -> Self {
        let mut s = Self {
            base_address: IOAPIC_DEFAULT_BASE_ADDRESS,
            ioregsel: 0,
            id: 0,
            irr: 0,
            redirtbl: [RedirEntry::MASKED; IOAPIC_NUM_PINS],
            handled_vectors: [0; 4],
        };
        s.update_handled_vectors();
        s
    }

    /// Port of `kvm_ioapic_reset`: mask all pins, clear IRR, ID, IOREGSEL.
    pub fn reset(&mut self) {
        for e in &mut self.redirtbl {
            e.0 |= RedirEntry::MASK;
        }
        self.base_address = IOAPIC_DEFAULT_BASE_ADDRESS;
        self.ioregsel = 0;
        self.irr = 0;
        self.id = 0;
        self.update_handled_vectors();
    }

    /// The MMIO base address.
    pub fn base_address(&self) -> u64 {
        self.base_address
    }

    /// Whether `addr` falls in the MMIO window (`ioapic_in_range`).
    pub fn in_range(&self, addr: u64) -> bool {
        addr >= self.base_address && addr < self.base_address.saturating_add(IOAPIC_MEM_LENGTH)
    }

    /// Redirection entry of `pin` (None past pin 23).
    pub fn entry(&self, pin: usize) -> Option<RedirEntry> {
        self.redirtbl.get(pin).copied()
    }

    /// The pin IRR bitmap.
    pub fn irr(&self) -> u32 {
        self.irr
    }

    fn update_handled_vectors(&mut self) {
        let mut hv = [0u64; 4];
        for e in &self.redirtbl {
            let v = e.vector();
            if let Some(w) = hv.get_mut(usize::from(v >> 6)) {
                *w |= 1u64 << (v & 63);
            }
        }
        self.handled_vectors = hv;
    }

    fn handles_vector(&self, vector: u8) -> bool {
        self.handled_vectors
            .get(usize::from(vector >> 6))
            .is_some_and(|w| w & (1u64 << (vector & 63)) != 0)
    }

    /// MMIO read of `offset` within the window (port of `ioapic_mmio_read`).
    /// Returns the 32-bit register value; narrower reads take its low bytes.
    pub fn read(&self, offset: u64) -> u32 {
        match IoapicMmioReg::from_offset(offset) {
            Some(IoapicMmioReg::RegSelect) => self.ioregsel,
            Some(IoapicMmioReg::Window) => self.read_indirect(),
            None => 0,
        }
    }

    /// Port of `ioapic_read_indirect`.
    fn read_indirect(&self) -> u32 {
        match IoapicReg::from_select(self.ioregsel) {
            IoapicReg::Version => {
                (((IOAPIC_NUM_PINS as u32 - 1) & 0xff) << 16) | (IOAPIC_VERSION_ID & 0xff)
            }
            IoapicReg::Id | IoapicReg::Arbitration => (self.id & 0xf) << 24,
            IoapicReg::Redirection { pin, high } => {
                let bits = self.redirtbl.get(pin).map_or(u64::MAX, |e| e.0);
                if high {
                    (bits >> 32) as u32
                } else {
                    bits as u32
                }
            }
            IoapicReg::Unknown if self.ioregsel >= 0x10 => u32::MAX,
            IoapicReg::Unknown => 0,
        }
    }

    /// MMIO write of a 32-bit value (port of `ioapic_mmio_write`; the caller
    /// drops 1- and 2-byte writes as the C does). Returns a mask change for
    /// the mask notifiers, if any.
    pub fn write(&mut self, offset: u64, val: u32, sink: &mut dyn ApicSink) -> Option<MaskChange> {
        match IoapicMmioReg::from_offset(offset) {
            Some(IoapicMmioReg::RegSelect) => {
                self.ioregsel = val;
                None
            }
            Some(IoapicMmioReg::Window) => self.write_indirect(val, sink),
            None => None,
        }
    }

    /// Port of `ioapic_write_indirect`.
    fn write_indirect(&mut self, val: u32, sink: &mut dyn ApicSink) -> Option<MaskChange> {
        match IoapicReg::from_select(self.ioregsel) {
            IoapicReg::Id => {
                self.id = (val >> 24) & 0xf;
                None
            }
            IoapicReg::Version | IoapicReg::Arbitration | IoapicReg::Unknown => None,
            IoapicReg::Redirection { pin, high } => {
                let e = self.redirtbl.get_mut(pin)?;
                let before = *e;
                let new = if high {
                    (e.0 & 0xffff_ffff) | (u64::from(val) << 32)
                } else {
                    (e.0 & !0xffff_ffff) | u64::from(val)
                };
                e.0 = (new & !RedirEntry::READ_ONLY) | (before.0 & RedirEntry::READ_ONLY);
                if e.trigger() == TriggerMode::Edge {
                    e.set_remote_irr(false);
                }
                let after = *e;
                self.update_handled_vectors();
                if after.trigger() == TriggerMode::Level
                    && self.irr & pin_bit(pin) != 0
                    && !after.remote_irr()
                {
                    self.service(pin, sink);
                }
                (before.masked() != after.masked()).then_some(MaskChange {
                    pin,
                    masked: after.masked(),
                })
            }
        }
    }

    /// Send the message of `pin` if unmasked; set remote IRR for a level
    /// interrupt that reached an APIC (port of `ioapic_service`).
    fn service(&mut self, pin: usize, sink: &mut dyn ApicSink) -> IrqStatus {
        let Some(e) = self.redirtbl.get(pin).copied() else {
            return IrqStatus::Dropped;
        };
        if e.masked() {
            return IrqStatus::Dropped;
        }
        let outcome = sink.deliver(&e.message());
        if outcome.reached_an_apic()
            && e.trigger() == TriggerMode::Level
            && let Some(ent) = self.redirtbl.get_mut(pin)
        {
            ent.set_remote_irr(true);
        }
        match outcome {
            crate::apic_bus::DeliveryOutcome::Accepted(_) => IrqStatus::Delivered,
            crate::apic_bus::DeliveryOutcome::Coalesced => IrqStatus::Coalesced,
            crate::apic_bus::DeliveryOutcome::NoDestination => IrqStatus::Dropped,
        }
    }

    /// Drive input `pin` to `level` (port of `kvm_ioapic_set_irq`). Lowering a
    /// line reports `Delivered` as the C does (return 1).
    pub fn set_irq(&mut self, pin: usize, level: bool, sink: &mut dyn ApicSink) -> IrqStatus {
        let Some(e) = self.redirtbl.get(pin).copied() else {
            return IrqStatus::Dropped;
        };
        let mask = pin_bit(pin);
        let old_irr = self.irr;
        if level != e.active_low() {
            self.irr |= mask;
            let edge = e.trigger() == TriggerMode::Edge;
            if (edge && old_irr != self.irr) || (!edge && !e.remote_irr()) {
                self.service(pin, sink)
            } else {
                IrqStatus::Coalesced
            }
        } else {
            self.irr &= !mask;
            IrqStatus::Delivered
        }
    }

    /// A local APIC signalled EOI for `vector` (port of
    /// `kvm_ioapic_update_eoi`). Returns the bitmap of pins whose ack
    /// notifiers must run. For a level EOI, every level entry with that
    /// vector gets remote IRR cleared and is re-serviced if still asserted;
    /// entries with the vector but edge trigger are left alone (the
    /// FreeBSD vector-reuse fix, kvm_ioapic.c:~250).
    pub fn eoi(&mut self, vector: u8, trigger: TriggerMode, sink: &mut dyn ApicSink) -> u32 {
        if !self.handles_vector(vector) {
            return 0;
        }
        let mut acked = 0u32;
        for pin in 0..IOAPIC_NUM_PINS {
            let Some(e) = self.redirtbl.get(pin).copied() else {
                continue;
            };
            if e.vector() != vector {
                continue;
            }
            acked |= pin_bit(pin);
            if trigger != TriggerMode::Level || e.trigger() != TriggerMode::Level {
                continue;
            }
            if let Some(ent) = self.redirtbl.get_mut(pin) {
                ent.set_remote_irr(false);
            }
            if !e.masked() && self.irr & pin_bit(pin) != 0 {
                self.service(pin, sink);
            }
        }
        acked
    }

    /// KVM_GET_IRQCHIP (port of `kvm_get_ioapic`).
    pub fn save(&self) -> IoapicState {
        let mut redirtbl = [0u64; IOAPIC_NUM_PINS];
        for (d, s) in redirtbl.iter_mut().zip(self.redirtbl.iter()) {
            *d = s.0;
        }
        IoapicState {
            base_address: self.base_address,
            ioregsel: self.ioregsel,
            id: self.id,
            irr: self.irr,
            pad: 0,
            redirtbl,
        }
    }

    /// KVM_SET_IRQCHIP (port of `kvm_set_ioapic`): takes the state as is.
    pub fn restore(&mut self, st: &IoapicState) {
        self.base_address = st.base_address;
        self.ioregsel = st.ioregsel;
        self.id = st.id;
        self.irr = st.irr & (pin_bit(IOAPIC_NUM_PINS).wrapping_sub(1));
        for (d, s) in self.redirtbl.iter_mut().zip(st.redirtbl.iter()) {
            *d = RedirEntry(*s);
        }
        self.update_handled_vectors();
    }
}

#[cfg(test)]
mod tests;
