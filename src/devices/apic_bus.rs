//! Interrupt messages exchanged between the interrupt controllers.
//!
//! Port of `struct kvm_lapic_irq` (kvm_host.h) and of the result convention of
//! `kvm_irq_delivery_to_apic` (kvm_irq_comm.c). The IOAPIC, MSI routing and the
//! LAPIC ICR all produce an [`ApicMessage`]; the caller routes it to the LAPICs
//! (see `lapic::deliver`), which report a [`DeliveryOutcome`] back.

/// APIC delivery mode (SDM vol. 3 §11.6.1, ICR bits 10:8; 82093AA redirection
/// entry bits 10:8; MSI data bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Deliver `vector` to every destination.
    Fixed,
    /// Deliver `vector` to the destination with the lowest priority.
    LowestPriority,
    /// System management interrupt (ignored by the model, like the original).
    Smi,
    /// Remote read (obsolete; ignored).
    RemoteRead,
    /// Non-maskable interrupt.
    Nmi,
    /// INIT (or INIT level de-assert when level is low and trigger is level).
    Init,
    /// Start-up IPI carrying the start page in `vector`.
    StartUp,
    /// External interrupt: the vector comes from the 8259A INTA cycle.
    ExtInt,
}

impl DeliveryMode {
    /// Decode the 3-bit field.
    pub const fn from_bits(bits: u32) -> Self {
        match bits & 7 {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            3 => Self::RemoteRead,
            4 => Self::Nmi,
            5 => Self::Init,
            6 => Self::StartUp,
            _ => Self::ExtInt,
        }
    }

    /// Encode as the 3-bit field.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Fixed => 0,
            Self::LowestPriority => 1,
            Self::Smi => 2,
            Self::RemoteRead => 3,
            Self::Nmi => 4,
            Self::Init => 5,
            Self::StartUp => 6,
            Self::ExtInt => 7,
        }
    }
}

/// Destination mode (SDM §11.6.2): physical APIC ID or logical (LDR/DFR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestMode {
    Physical,
    Logical,
}

/// Trigger mode of an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerMode {
    Edge,
    Level,
}

/// Destination shorthand (SDM §11.6.1, ICR bits 19:18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shorthand {
    /// Use the destination field.
    None,
    /// Only the sending APIC.
    SelfOnly,
    /// Every APIC including the sender.
    AllIncludingSelf,
    /// Every APIC but the sender.
    AllExcludingSelf,
}

impl Shorthand {
    /// Decode ICR bits 19:18 (already shifted down).
    pub const fn from_bits(bits: u32) -> Self {
        match bits & 3 {
            0 => Self::None,
            1 => Self::SelfOnly,
            2 => Self::AllIncludingSelf,
            _ => Self::AllExcludingSelf,
        }
    }
}

/// One interrupt message on the (virtual) APIC bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ApicMessage {
    pub vector: u8,
    pub delivery_mode: DeliveryMode,
    pub dest_mode: DestMode,
    pub trigger: TriggerMode,
    /// Level: asserted (`true`) or de-asserted (only meaningful for INIT).
    pub level: bool,
    pub shorthand: Shorthand,
    /// Destination: 8 bits in xAPIC mode, 32 bits in x2APIC mode;
    /// `0xff` / `0xffff_ffff` is the broadcast destination.
    pub dest_id: u32,
}

impl ApicMessage {
    /// A fixed, edge-triggered, physical-destination message.
    pub const fn fixed(vector: u8, dest_id: u32) -> Self {
        Self {
            vector,
            delivery_mode: DeliveryMode::Fixed,
            dest_mode: DestMode::Physical,
            trigger: TriggerMode::Edge,
            level: true,
            shorthand: Shorthand::None,
            dest_id,
        }
    }
}

/// What happened to a message (port of the `int` convention of
/// `kvm_irq_delivery_to_apic`: -1 / 0 / >0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// No APIC matched the destination (C: -1).
    NoDestination,
    /// Every destination already had the vector pending in IRR (C: 0).
    Coalesced,
    /// This many APICs newly accepted the interrupt (C: > 0).
    Accepted(u32),
}

impl DeliveryOutcome {
    /// Whether at least one APIC holds the interrupt now (newly or already),
    /// so an EOI can be expected.
    pub const fn reached_an_apic(self) -> bool {
        !matches!(self, Self::NoDestination)
    }

    /// Combine the outcomes of two deliveries of the same message.
    pub const fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Accepted(a), Self::Accepted(b)) => Self::Accepted(a.saturating_add(b)),
            (Self::Accepted(a), _) | (_, Self::Accepted(a)) => Self::Accepted(a),
            (Self::Coalesced, _) | (_, Self::Coalesced) => Self::Coalesced,
            _ => Self::NoDestination,
        }
    }
}

/// Where a device sends its APIC messages (the LAPICs of the VM, via the
/// caller). Implementations must not allocate.
pub trait ApicSink {
    /// Deliver `msg` and report the outcome.
    fn deliver(&mut self, msg: &ApicMessage) -> DeliveryOutcome;
}

/// Result of raising a line at an interrupt controller (port of the return
/// value of `kvm_ioapic_set_irq` / `kvm_pic_set_irq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqStatus {
    /// The interrupt was delivered (or the line was lowered).
    Delivered,
    /// The interrupt merged with one already pending (C: 0).
    Coalesced,
    /// The pin is masked or nothing accepted it (C: -1).
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_mode_field_round_trips_all_eight_encodings() {
        for b in 0..8 {
            assert_eq!(DeliveryMode::from_bits(b).bits(), b);
        }
    }

    #[test]
    fn outcome_merge_prefers_acceptance_then_coalescing() {
        use DeliveryOutcome::*;
        assert_eq!(Accepted(1).merge(Accepted(2)), Accepted(3));
        assert_eq!(NoDestination.merge(Coalesced), Coalesced);
        assert_eq!(Coalesced.merge(Accepted(1)), Accepted(1));
        assert_eq!(NoDestination.merge(NoDestination), NoDestination);
        assert!(!NoDestination.reached_an_apic());
    }
}
