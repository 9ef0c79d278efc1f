//! IOAPIC tests, each named after the 82093AA datasheet rule it checks.

use super::*;
use crate::apic_bus::DeliveryOutcome;
use std::vec::Vec;

/// Records every message; answers with a configurable outcome.
#[derive(Default)]
struct Rec {
    msgs: Vec<ApicMessage>,
    no_dest: bool,
}

impl ApicSink for Rec {
    fn deliver(&mut self, msg: &ApicMessage) -> DeliveryOutcome {
        self.msgs.push(*msg);
        if self.no_dest {
            DeliveryOutcome::NoDestination
        } else {
            DeliveryOutcome::Accepted(1)
        }
    }
}

fn wr(io: &mut Ioapic, sel: u32, val: u32, s: &mut Rec) -> Option<MaskChange> {
    io.write(0x00, sel, s);
    io.write(0x10, val, s)
}

fn rd(io: &mut Ioapic, sel: u32) -> u32 {
    let mut s = Rec::default();
    io.write(0x00, sel, &mut s);
    io.read(0x10)
}

/// Program pin as unmasked with vector, trigger, polarity.
fn program(
    io: &mut Ioapic,
    pin: u32,
    vector: u8,
    level: bool,
    active_low: bool,
    dest: u8,
    s: &mut Rec,
) {
    wr(io, 0x11 + 2 * pin, u32::from(dest) << 24, s);
    let lo = u32::from(vector) | (u32::from(level) << 15) | (u32::from(active_low) << 13);
    wr(io, 0x10 + 2 * pin, lo, s);
}

#[test]
fn ioapic_version_register_reports_0x11_and_23_max_redirection_entries() {
    let mut io = Ioapic::new();
    assert_eq!(rd(&mut io, 1), 0x0017_0011);
}

#[test]
fn ioapic_version_and_arbitration_registers_are_read_only() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    wr(&mut io, 1, 0xffff_ffff, &mut s);
    assert_eq!(rd(&mut io, 1), 0x0017_0011);
    wr(&mut io, 2, 0x0f00_0000, &mut s);
    assert_eq!(rd(&mut io, 2), 0);
}

#[test]
fn ioapic_id_register_holds_bits_27_to_24_only_and_arb_mirrors_it() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    wr(&mut io, 0, 0xffff_ffff, &mut s);
    assert_eq!(rd(&mut io, 0), 0x0f00_0000);
    assert_eq!(rd(&mut io, 2), 0x0f00_0000);
}

#[test]
fn ioapic_ioregsel_reads_back_what_was_written() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    io.write(0, 0x23, &mut s);
    assert_eq!(io.read(0), 0x23);
    assert_eq!(io.read(0x20), 0, "unknown MMIO offsets read zero");
}

#[test]
fn ioapic_reset_masks_every_redirection_entry() {
    let mut io = Ioapic::new();
    for pin in 0..24 {
        assert_eq!(rd(&mut io, 0x10 + 2 * pin) & (1 << 16), 1 << 16);
    }
    let mut s = Rec::default();
    assert_eq!(io.set_irq(3, true, &mut s), IrqStatus::Dropped);
    assert!(s.msgs.is_empty());
}

#[test]
fn ioapic_redirection_entry_low_and_high_words_are_independent() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    wr(&mut io, 0x10 + 2 * 5, 0x0001_a931, &mut s);
    wr(&mut io, 0x11 + 2 * 5, 0xab00_0000, &mut s);
    assert_eq!(
        rd(&mut io, 0x10 + 10),
        0x0001_a931 & !(1 << 14) & !(1 << 12)
    );
    assert_eq!(rd(&mut io, 0x11 + 10), 0xab00_0000);
    let e = io.entry(5).unwrap_or_default();
    assert_eq!(e.vector(), 0x31);
    assert_eq!(e.delivery_mode(), DeliveryMode::LowestPriority);
    assert_eq!(e.dest_mode(), DestMode::Logical);
    assert!(e.active_low());
    assert_eq!(e.trigger(), TriggerMode::Level);
    assert!(e.masked());
    assert_eq!(e.dest_id(), 0xab);
}

#[test]
fn ioapic_redirection_index_past_pin_23_reads_all_ones() {
    let mut io = Ioapic::new();
    assert_eq!(rd(&mut io, 0x10 + 2 * 24), u32::MAX);
    assert_eq!(rd(&mut io, 0x3f + 2), u32::MAX);
}

#[test]
fn ioapic_remote_irr_and_delivery_status_are_read_only() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    wr(&mut io, 0x10, (1 << 14) | (1 << 12) | (1 << 15), &mut s);
    assert_eq!(rd(&mut io, 0x10) & ((1 << 14) | (1 << 12)), 0);
}

#[test]
fn ioapic_edge_triggered_asserting_edge_sends_one_message() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 4, 0x44, false, false, 2, &mut s);
    assert_eq!(io.set_irq(4, true, &mut s), IrqStatus::Delivered);
    assert_eq!(
        io.set_irq(4, true, &mut s),
        IrqStatus::Coalesced,
        "no edge: no message"
    );
    assert_eq!(s.msgs.len(), 1);
    assert_eq!(
        s.msgs[0],
        ApicMessage {
            trigger: TriggerMode::Edge,
            ..ApicMessage::fixed(0x44, 2)
        }
    );
    io.set_irq(4, false, &mut s);
    io.set_irq(4, true, &mut s);
    assert_eq!(s.msgs.len(), 2, "a second edge sends a second message");
}

#[test]
fn ioapic_edge_on_masked_pin_is_lost() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 4, 0x44, false, false, 0, &mut s);
    wr(&mut io, 0x18, 0x44 | (1 << 16), &mut s);
    io.set_irq(4, true, &mut s);
    io.set_irq(4, false, &mut s);
    wr(&mut io, 0x18, 0x44, &mut s);
    assert!(s.msgs.is_empty());
}

#[test]
fn ioapic_active_low_polarity_inverts_the_input() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 9, 0x59, false, true, 0, &mut s);
    io.set_irq(9, true, &mut s);
    assert!(s.msgs.is_empty(), "high is inactive for an active-low pin");
    io.set_irq(9, false, &mut s);
    assert_eq!(s.msgs.len(), 1);
}

#[test]
fn ioapic_level_triggered_remote_irr_blocks_redelivery_until_eoi() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 10, 0x5a, true, false, 1, &mut s);
    assert_eq!(io.set_irq(10, true, &mut s), IrqStatus::Delivered);
    assert!(io.entry(10).unwrap_or_default().remote_irr());
    assert_eq!(io.set_irq(10, true, &mut s), IrqStatus::Coalesced);
    assert_eq!(s.msgs.len(), 1);
    assert_eq!(s.msgs[0].trigger, TriggerMode::Level);
    // EOI with the line still asserted: remote IRR clears and the pin is resent.
    assert_eq!(io.eoi(0x5a, TriggerMode::Level, &mut s), 1 << 10);
    assert_eq!(s.msgs.len(), 2);
    assert!(io.entry(10).unwrap_or_default().remote_irr());
    // Lower the line, EOI: no further message.
    io.set_irq(10, false, &mut s);
    io.eoi(0x5a, TriggerMode::Level, &mut s);
    assert_eq!(s.msgs.len(), 2);
    assert!(!io.entry(10).unwrap_or_default().remote_irr());
}

#[test]
fn ioapic_level_interrupt_pending_while_masked_is_sent_on_unmask() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    wr(&mut io, 0x10 + 2 * 7, 0x47 | (1 << 15) | (1 << 16), &mut s);
    io.set_irq(7, true, &mut s);
    assert!(s.msgs.is_empty());
    let ch = wr(&mut io, 0x10 + 2 * 7, 0x47 | (1 << 15), &mut s);
    assert_eq!(
        ch,
        Some(MaskChange {
            pin: 7,
            masked: false
        })
    );
    assert_eq!(s.msgs.len(), 1);
    // Rewriting the same unmasked entry must not resend while remote IRR is set.
    let ch = wr(&mut io, 0x10 + 2 * 7, 0x47 | (1 << 15), &mut s);
    assert_eq!(ch, None);
    assert_eq!(s.msgs.len(), 1);
}

#[test]
fn ioapic_level_without_destination_does_not_set_remote_irr() {
    let mut io = Ioapic::new();
    let mut s = Rec {
        no_dest: true,
        ..Rec::default()
    };
    program(&mut io, 1, 0x31, true, false, 9, &mut s);
    assert_eq!(io.set_irq(1, true, &mut s), IrqStatus::Dropped);
    assert!(!io.entry(1).unwrap_or_default().remote_irr());
}

#[test]
fn ioapic_eoi_for_vector_shared_with_an_edge_entry_leaves_it_alone() {
    // Vector-reuse fix: same vector on an edge pin and a level pin.
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 2, 0x60, false, false, 0, &mut s);
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    io.set_irq(2, true, &mut s);
    io.set_irq(3, true, &mut s);
    assert_eq!(s.msgs.len(), 2);
    let acked = io.eoi(0x60, TriggerMode::Level, &mut s);
    assert_eq!(
        acked,
        (1 << 2) | (1 << 3),
        "ack notifiers run for both pins"
    );
    assert_eq!(s.msgs.len(), 3, "only the asserted level pin is resent");
    assert_eq!(s.msgs[2].trigger, TriggerMode::Level);
}

#[test]
fn ioapic_edge_eoi_does_not_clear_remote_irr_of_level_entry() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    io.set_irq(3, true, &mut s);
    io.eoi(0x60, TriggerMode::Edge, &mut s);
    assert!(io.entry(3).unwrap_or_default().remote_irr());
    assert_eq!(s.msgs.len(), 1);
}

#[test]
fn ioapic_eoi_for_unhandled_vector_acks_nothing() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    assert_eq!(io.eoi(0x61, TriggerMode::Level, &mut s), 0);
}

#[test]
fn ioapic_switching_entry_to_edge_clears_remote_irr() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    io.set_irq(3, true, &mut s);
    wr(&mut io, 0x10 + 6, 0x60, &mut s);
    assert!(!io.entry(3).unwrap_or_default().remote_irr());
}

#[test]
fn ioapic_set_irq_on_pin_past_23_is_dropped() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    assert_eq!(io.set_irq(24, true, &mut s), IrqStatus::Dropped);
    assert_eq!(io.set_irq(usize::MAX, true, &mut s), IrqStatus::Dropped);
}

#[test]
fn ioapic_state_save_restore_is_identity_and_216_bytes() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    io.set_irq(3, true, &mut s);
    wr(&mut io, 0, 0x0500_0000, &mut s);
    let st = io.save();
    let mut io2 = Ioapic::new();
    io2.restore(&st);
    assert_eq!(io2.save(), st);
    // The restored chip continues: EOI resends the asserted level pin.
    io2.eoi(0x60, TriggerMode::Level, &mut s);
    assert_eq!(s.msgs.len(), 2);
}

#[test]
fn ioapic_reset_clears_irr_id_and_ioregsel() {
    let mut io = Ioapic::new();
    let mut s = Rec::default();
    program(&mut io, 3, 0x60, true, false, 0, &mut s);
    io.set_irq(3, true, &mut s);
    wr(&mut io, 0, 0x0500_0000, &mut s);
    io.reset();
    assert_eq!(io.irr(), 0);
    assert_eq!(io.read(0), 0);
    assert_eq!(rd(&mut io, 0), 0);
    assert!(io.entry(3).unwrap_or_default().masked());
    assert!(io.in_range(0xfec0_00ff) && !io.in_range(0xfec0_0100));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Program {
            pin: usize,
            vector: u8,
            level: bool,
            masked: bool,
        },
        Line {
            pin: usize,
            level: bool,
        },
        Eoi {
            vector: u8,
        },
        SaveRestore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize, 0x40..0x44u8, any::<bool>(), any::<bool>()).prop_map(
                |(pin, vector, level, masked)| Op::Program {
                    pin,
                    vector,
                    level,
                    masked
                }
            ),
            (0..4usize, any::<bool>()).prop_map(|(pin, level)| Op::Line { pin, level }),
            (0x40..0x44u8).prop_map(|vector| Op::Eoi { vector }),
            Just(Op::SaveRestore),
        ]
    }

    /// Reference model straight from the datasheet: per pin, line level,
    /// remote IRR; messages expected per the edge/level rules.
    #[derive(Clone, Copy, Default)]
    struct RefPin {
        vector: u8,
        level_trig: bool,
        masked: bool,
        line: bool,
        remote_irr: bool,
    }

    proptest! {
        #[test]
        fn ioapic_never_loses_or_duplicates_against_reference(ops in proptest::collection::vec(op(), 1..80)) {
            let mut io = Ioapic::new();
            let mut s = Rec::default();
            let mut model = [RefPin { masked: true, ..RefPin::default() }; 4];
            let mut expected = 0usize;
            for o in ops {
                match o {
                    Op::Program { pin, vector, level, masked } => {
                        let lo = u32::from(vector) | (u32::from(level) << 15) | (u32::from(masked) << 16);
                        wr(&mut io, 0x10 + 2 * pin as u32, lo, &mut s);
                        let m = &mut model[pin];
                        m.vector = vector;
                        m.level_trig = level;
                        m.masked = masked;
                        if !level { m.remote_irr = false; }
                        if level && m.line && !m.masked && !m.remote_irr {
                            expected += 1;
                            m.remote_irr = true;
                        }
                    }
                    Op::Line { pin, level } => {
                        io.set_irq(pin, level, &mut s);
                        let m = &mut model[pin];
                        let rising = level && !m.line;
                        m.line = level;
                        if level && !m.masked {
                            if m.level_trig {
                                if !m.remote_irr { expected += 1; m.remote_irr = true; }
                            } else if rising {
                                expected += 1;
                            }
                        }
                    }
                    Op::Eoi { vector } => {
                        io.eoi(vector, TriggerMode::Level, &mut s);
                        for m in model.iter_mut() {
                            if m.vector == vector && m.level_trig {
                                m.remote_irr = false;
                                if !m.masked && m.line { expected += 1; m.remote_irr = true; }
                            }
                        }
                    }
                    Op::SaveRestore => {
                        let st = io.save();
                        let mut n = Ioapic::new();
                        n.restore(&st);
                        prop_assert_eq!(n.save(), st);
                        io = n;
                    }
                }
                prop_assert_eq!(s.msgs.len(), expected);
            }
        }
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary MMIO traffic, lines and EOIs never panic.
        #[test]
        fn ioapic_random_mmio_never_panics(ops in proptest::collection::vec((0u8..4, any::<u32>(), any::<u64>()), 1..200)) {
            let mut io = Ioapic::new();
            let mut s = Rec::default();
            for (kind, a, b) in ops {
                match kind {
                    0 => { io.write(u64::from(a) & 0x1f0, b as u32, &mut s); }
                    1 => { io.read(b); }
                    2 => { io.set_irq((a % 40) as usize, b & 1 == 1, &mut s); }
                    _ => { io.eoi(a as u8, if b & 1 == 1 { TriggerMode::Level } else { TriggerMode::Edge }, &mut s); }
                }
            }
            let st = io.save();
            let mut n = Ioapic::new();
            n.restore(&st);
            prop_assert_eq!(n.save(), st);
        }
    }
}
