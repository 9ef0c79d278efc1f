//! Delivery of APIC messages to the LAPICs of a VM.
//!
//! Port of `kvm_irq_delivery_to_apic` (kvm_irq_comm.c): every present
//! (hardware-enabled) LAPIC whose destination matches accepts a fixed, NMI,
//! INIT or SIPI message; a lowest-priority message goes to exactly one of
//! the matching LAPICs. Arbitration (SDM vol. 3 §11.6.2.4): software-enabled
//! APICs before disabled ones; then a focus
//! processor (one already servicing or holding the vector, focus checking
//! enabled) wins; otherwise the lowest arbitration priority (APR) wins;
//! ties go to the LAPIC that won least recently (the C's `apic_arb_prio`
//! counter), then to the lowest index.

use crate::apic_bus::{ApicMessage, ApicSink, DeliveryMode, DeliveryOutcome};
use crate::clock::{Clock, Timer};
use crate::i8259::PicPair;
use crate::lapic::Lapic;

/// Deliver `msg` sent by LAPIC index `src` (None for the IOAPIC and MSIs).
pub fn deliver<C: Clock, T: Timer>(
    lapics: &mut [Lapic<C, T>],
    src: Option<usize>,
    msg: &ApicMessage,
) -> DeliveryOutcome {
    let mut outcome = DeliveryOutcome::NoDestination;
    if msg.delivery_mode == DeliveryMode::LowestPriority {
        let mut best: Option<(usize, (u8, u8, u8, u32))> = None;
        for (i, l) in lapics.iter().enumerate() {
            if !l.hw_enabled() || !l.match_dest(msg, src == Some(i)) {
                continue;
            }
            // Sort key: software-enabled first (a disabled APIC would drop
            // a fixed vector), then focus, then APR, then the counter.
            let key = (
                u8::from(!l.enabled()),
                u8::from(!l.is_focus_for(msg.vector)),
                l.apr(),
                l.arb_prio(),
            );
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

/// Port of `kvm_cpu_has_interrupt` (kvm_irq.c): the LAPIC first, then the
/// 8259A through LINT0 (ExtINT) on the BSP.
pub fn cpu_has_interrupt<C: Clock, T: Timer>(lapic: &Lapic<C, T>, pic: &PicPair) -> bool {
    lapic.has_interrupt().is_some() || (lapic.accept_pic_intr() && pic.output())
}

/// Port of `kvm_cpu_get_interrupt`: acknowledge the vector to inject, from
/// the LAPIC if it has one, else by an INTA cycle at the 8259A.
pub fn cpu_get_interrupt<C: Clock, T: Timer>(
    lapic: &mut Lapic<C, T>,
    pic: &mut PicPair,
) -> Option<u8> {
    if let Some(v) = lapic.get_interrupt() {
        return Some(v);
    }
    (lapic.accept_pic_intr() && pic.output()).then(|| pic.read_irq())
}

/// Port of `kvm_cpu_has_pending_timer`: the PIT backlog (pass it only for
/// the BSP) or this LAPIC's timer backlog with the timer LVT usable
/// (`apic_has_pending_timer`).
pub fn cpu_has_pending_timer<C: Clock, T: Timer, C2: Clock, T2: Timer>(
    lapic: &Lapic<C, T>,
    bsp_pit: Option<&crate::i8254::Pit<C2, T2>>,
) -> bool {
    bsp_pit.is_some_and(|p| p.has_pending_timer()) || (lapic.enabled() && lapic.pending_timer() > 0)
}
