//! Delivery of APIC messages to the LAPICs of a VM.
//!
//! Port of `kvm_irq_delivery_to_apic` (kvm_irq_comm.c): every present
//! (hardware-enabled) LAPIC whose destination matches accepts a fixed, NMI,
//! INIT or SIPI message; a lowest-priority message goes to exactly one of
//! the matching LAPICs. Arbitration (SDM vol. 3 §11.6.2.4): a focus
//! processor (one already servicing or holding the vector, focus checking
//! enabled) wins; otherwise the lowest arbitration priority (APR) wins;
//! ties go to the LAPIC that won least recently (the C's `apic_arb_prio`
//! counter), then to the lowest index.

use crate::apic_bus::{ApicMessage, ApicSink, DeliveryMode, DeliveryOutcome};
use crate::clock::{Clock, Timer};
use crate::lapic::Lapic;

/// Deliver `msg` sent by LAPIC index `src` (None for the IOAPIC and MSIs).
pub fn deliver<C: Clock, T: Timer>(
    lapics: &mut [Lapic<C, T>],
    src: Option<usize>,
    msg: &ApicMessage,
) -> DeliveryOutcome {
    let mut outcome = DeliveryOutcome::NoDestination;
    if msg.delivery_mode == DeliveryMode::LowestPriority {
        let mut best: Option<(usize, (u8, u8, u32))> = None;
        for (i, l) in lapics.iter().enumerate() {
            if !l.hw_enabled() || !l.match_dest(msg, src == Some(i)) {
                continue;
            }
            // Sort key: focus first, then APR, then arbitration counter.
            let key = (u8::from(!l.is_focus_for(msg.vector)), l.apr(), l.arb_prio());
            if best.is_none_or(|(_, k)| key < k) {
                best = Some((i, key));
            }
        }
        if let Some((i, _)) = best
            && let Some(l) = lapics.get_mut(i)
        {
            outcome = if l.accept(msg) {
                DeliveryOutcome::Accepted(1)
            } else {
                DeliveryOutcome::Coalesced
            };
        }
        return outcome;
    }
    for (i, l) in lapics.iter_mut().enumerate() {
        if !l.hw_enabled() || !l.match_dest(msg, src == Some(i)) {
            continue;
        }
        let one = if l.accept(msg) {
            DeliveryOutcome::Accepted(1)
        } else {
            DeliveryOutcome::Coalesced
        };
        outcome = outcome.merge(one);
    }
    outcome
}

/// The LAPICs of a VM as an [`ApicSink`] for the IOAPIC and MSI routing.
pub struct LapicSet<'a, C: Clock, T: Timer>(pub &'a mut [Lapic<C, T>]);

impl<C: Clock, T: Timer> ApicSink for LapicSet<'_, C, T> {
    fn deliver(&mut self, msg: &ApicMessage) -> DeliveryOutcome {
        deliver(self.0, None, msg)
    }
}
