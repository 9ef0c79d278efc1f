//! 8259A tests, each named after the datasheet rule it checks.

use super::*;

/// The BIOS/Linux initialization: master base 0x08... here 0x20/0x28,
/// cascade on IR2, 8086 mode, optional AEOI.
fn init(p: &mut PicPair, aeoi: bool) {
    let icw4 = 0x01 | if aeoi { 0x02 } else { 0 };
    p.write(0x20, 0x11);
    p.write(0x21, 0x20);
    p.write(0x21, 0x04);
    p.write(0x21, icw4);
    p.write(0xa0, 0x11);
    p.write(0xa1, 0x28);
    p.write(0xa1, 0x02);
    p.write(0xa1, icw4);
}

fn pulse(p: &mut PicPair, irq: usize) {
    p.set_irq(irq, true);
    p.set_irq(irq, false);
}

#[test]
fn pic_icw2_sets_vector_base_with_low_three_bits_ignored() {
    let mut p = PicPair::new();
    p.write(0x20, 0x11);
    p.write(0x21, 0x27);
    p.write(0x21, 0x04);
    p.write(0x21, 0x01);
    pulse(&mut p, 3);
    assert!(p.output());
    assert_eq!(p.read_irq(), 0x23);
}

#[test]
fn pic_icw1_without_ic4_skips_icw4() {
    let mut p = PicPair::new();
    p.write(0x20, 0x10);
    p.write(0x21, 0x40);
    p.write(0x21, 0x04);
    // Next data write is OCW1, not ICW4.
    p.write(0x21, 0xfe);
    assert_eq!(p.read(0x21), 0xfe);
}

#[test]
fn pic_icw1_clears_imr_isr_irr_and_selects_irr_reads() {
    let mut p = PicPair::new();
    init(&mut p, false);
    p.write(0x21, 0xf0);
    pulse(&mut p, 1);
    p.read_irq();
    p.write(0x20, 0x0b); // OCW3: read ISR
    assert_eq!(p.read(0x20), 0x02);
    init(&mut p, false);
    assert_eq!(p.read(0x21), 0, "IMR cleared");
    assert_eq!(p.read(0x20), 0, "status read selects IRR (which is clear)");
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0, "ISR cleared");
}

#[test]
fn pic_edge_request_latches_in_irr_until_inta() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 4);
    assert_eq!(
        p.read(0x20),
        0x10,
        "IRR holds the edge after the line drops"
    );
    assert_eq!(p.read_irq(), 0x24);
    assert_eq!(p.read(0x20), 0);
}

#[test]
fn pic_edge_needs_a_new_rising_edge() {
    let mut p = PicPair::new();
    init(&mut p, true);
    p.set_irq(4, true);
    assert_eq!(p.read_irq(), 0x24);
    p.set_irq(4, true);
    assert!(!p.output(), "a held-high edge line does not request again");
}

#[test]
fn pic_level_mode_via_elcr_keeps_irr_while_line_high_and_clears_when_low() {
    let mut p = PicPair::new();
    init(&mut p, false);
    p.write(0x4d1, 0xff);
    assert_eq!(p.read(0x4d1), 0xde, "IRQ 8 and 13 are always edge");
    p.set_irq(10, true);
    assert_eq!(p.read_irq(), 0x2a);
    p.write(0xa0, 0x20);
    p.write(0x20, 0x20);
    assert!(p.output(), "level request still asserted after EOI");
    p.set_irq(10, false);
    assert!(!p.output());
}

#[test]
fn pic_elcr_master_mask_keeps_irq0_1_2_edge() {
    let mut p = PicPair::new();
    p.write(0x4d0, 0xff);
    assert_eq!(p.read(0x4d0), 0xf8);
}

#[test]
fn pic_imr_masks_request_but_irr_still_latches() {
    let mut p = PicPair::new();
    init(&mut p, false);
    p.write(0x21, 0x08);
    assert_eq!(p.set_irq(3, true), IrqStatus::Dropped);
    assert!(!p.output());
    assert_eq!(p.read(0x20), 0x08);
    p.write(0x21, 0x00);
    assert!(p.output());
    assert_eq!(p.read_irq(), 0x23);
}

#[test]
fn pic_fixed_priority_irq0_highest_irq7_lowest() {
    let mut p = PicPair::new();
    init(&mut p, true);
    pulse(&mut p, 6);
    pulse(&mut p, 5);
    pulse(&mut p, 1);
    assert_eq!(p.read_irq(), 0x21);
    assert_eq!(p.read_irq(), 0x25);
    assert_eq!(p.read_irq(), 0x26);
}

#[test]
fn pic_in_service_level_blocks_equal_and_lower_priority_until_eoi() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 3);
    assert_eq!(p.read_irq(), 0x23);
    pulse(&mut p, 5);
    assert!(!p.output(), "IRQ5 is lower than in-service IRQ3");
    pulse(&mut p, 1);
    assert!(p.output(), "IRQ1 is higher than in-service IRQ3");
    assert_eq!(p.read_irq(), 0x21);
    p.write(0x20, 0x20); // non-specific EOI clears the highest: IRQ1
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0x08);
    p.write(0x20, 0x20);
    assert_eq!(p.read_irq(), 0x25);
}

#[test]
fn pic_specific_eoi_clears_named_level() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 3);
    p.read_irq();
    pulse(&mut p, 1);
    p.read_irq();
    p.write(0x20, 0x63); // specific EOI IRQ3
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0x02);
    assert_eq!(p.take_acked(), 1 << 3);
}

#[test]
fn pic_auto_eoi_clears_isr_at_inta_and_notifies_ack() {
    let mut p = PicPair::new();
    init(&mut p, true);
    pulse(&mut p, 0);
    assert_eq!(p.read_irq(), 0x20);
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0);
    assert_eq!(p.take_acked(), 1);
    assert_eq!(p.take_acked(), 0);
}

#[test]
fn pic_rotate_on_nonspecific_eoi_makes_serviced_level_lowest() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 2 + 1);
    assert_eq!(p.read_irq(), 0x23);
    p.write(0x20, 0xa0); // rotate on non-specific EOI
    // Now IRQ3 is lowest, IRQ4 highest.
    pulse(&mut p, 3);
    pulse(&mut p, 5);
    pulse(&mut p, 4);
    assert_eq!(p.read_irq(), 0x24);
}

#[test]
fn pic_set_priority_command_makes_named_level_lowest() {
    let mut p = PicPair::new();
    init(&mut p, true);
    p.write(0x20, 0xc5); // IRQ5 lowest, IRQ6 highest
    pulse(&mut p, 0);
    pulse(&mut p, 6);
    pulse(&mut p, 5);
    assert_eq!(p.read_irq(), 0x26);
    assert_eq!(p.read_irq(), 0x20);
    assert_eq!(p.read_irq(), 0x25);
}

#[test]
fn pic_rotate_in_auto_eoi_mode_rotates_at_inta() {
    let mut p = PicPair::new();
    init(&mut p, true);
    p.write(0x20, 0x80); // set rotate in AEOI
    pulse(&mut p, 1);
    assert_eq!(p.read_irq(), 0x21);
    pulse(&mut p, 1);
    pulse(&mut p, 2 + 4);
    assert_eq!(p.read_irq(), 0x26, "IRQ1 became lowest after service");
}

#[test]
fn pic_rotate_on_specific_eoi() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 6);
    p.read_irq();
    p.write(0x20, 0xe6);
    pulse(&mut p, 7);
    pulse(&mut p, 0);
    assert_eq!(p.read_irq(), 0x27, "IRQ7 is now highest");
}

#[test]
fn pic_special_mask_mode_lets_lower_levels_interrupt_masked_in_service_level() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 3);
    p.read_irq();
    p.write(0x21, 0x08); // mask IRQ3 (in service)
    p.write(0x20, 0x68); // OCW3: set special mask
    pulse(&mut p, 5);
    assert!(p.output(), "IRQ5 allowed although IRQ3 is in service");
    assert_eq!(p.read_irq(), 0x25);
    p.write(0x20, 0x48); // reset special mask
    p.write(0x20, 0x65); // EOI IRQ5
    pulse(&mut p, 6);
    assert!(!p.output(), "normal mode: in-service IRQ3 blocks IRQ6");
}

#[test]
fn pic_poll_returns_i_bit_and_level_and_acknowledges() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 5);
    p.write(0x20, 0x0c); // OCW3 poll
    assert_eq!(p.read(0x20), 0x85);
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0x20, "poll acted as INTA: IRQ5 in service");
    p.write(0x20, 0x0c);
    assert_eq!(p.read(0x20), 0x00, "nothing pending: I bit clear");
    assert_eq!(
        p.read(0x20),
        0x20,
        "poll mode lasts for one read: ISR again"
    );
}

#[test]
fn pic_slave_cascades_through_master_ir2() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 12);
    assert!(p.output());
    assert_eq!(p.read_irq(), 0x2c);
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0x04, "master IR2 in service");
    p.write(0xa0, 0x0b);
    assert_eq!(p.read(0xa0), 0x10, "slave IR4 in service");
    p.write(0xa0, 0x20);
    p.write(0x20, 0x20);
    assert_eq!(p.take_acked(), (1 << 12) | (1 << 2));
}

#[test]
fn pic_masking_slave_cascade_on_master_blocks_slave_irqs() {
    let mut p = PicPair::new();
    init(&mut p, false);
    p.write(0x21, 0x04);
    pulse(&mut p, 9);
    assert!(!p.output());
}

#[test]
fn pic_inta_with_no_request_returns_spurious_irq7() {
    let mut p = PicPair::new();
    init(&mut p, false);
    assert_eq!(p.read_irq(), 0x27);
    p.write(0x20, 0x0b);
    assert_eq!(p.read(0x20), 0, "spurious IRQ7 sets no ISR bit");
}

#[test]
fn pic_special_fully_nested_mode_lets_slave_interrupt_while_slave_in_service() {
    let mut p = PicPair::new();
    p.write(0x20, 0x11);
    p.write(0x21, 0x20);
    p.write(0x21, 0x04);
    p.write(0x21, 0x11); // SFNM
    p.write(0xa0, 0x11);
    p.write(0xa1, 0x28);
    p.write(0xa1, 0x02);
    p.write(0xa1, 0x01);
    pulse(&mut p, 13);
    assert_eq!(p.read_irq(), 0x2d);
    pulse(&mut p, 9);
    assert!(p.output(), "higher slave IRQ passes master IR2 in service");
    assert_eq!(p.read_irq(), 0x29);
}

#[test]
fn pic_unknown_ports_and_lines_are_ignored() {
    let mut p = PicPair::new();
    p.write(0x22, 0xff);
    assert_eq!(p.read(0x22), 0);
    assert_eq!(p.set_irq(16, true), IrqStatus::Dropped);
}

#[test]
fn pic_state_is_16_bytes_and_save_restore_is_identity() {
    let mut p = PicPair::new();
    init(&mut p, false);
    p.write(0x4d1, 0x06);
    pulse(&mut p, 12);
    pulse(&mut p, 3);
    p.read_irq();
    let m = p.save(PicChip::Master);
    let s = p.save(PicChip::Slave);
    let mut q = PicPair::new();
    q.restore(PicChip::Master, &m);
    q.restore(PicChip::Slave, &s);
    assert_eq!(q.save(PicChip::Master), m);
    assert_eq!(q.save(PicChip::Slave), s);
    assert_eq!(q.output(), p.output());
    assert_eq!(q.read_irq(), p.read_irq());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Line(usize, bool),
        Inta,
        Eoi(bool),
        Imr(bool, u8),
        SaveRestore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..16usize, any::<bool>()).prop_map(|(i, l)| Op::Line(i, l)),
            2 => Just(Op::Inta),
            2 => any::<bool>().prop_map(Op::Eoi),
            1 => (any::<bool>(), any::<u8>()).prop_map(|(s, m)| Op::Imr(s, m)),
            1 => Just(Op::SaveRestore),
        ]
    }

    proptest! {
        /// Reference model: every rising edge on an edge-triggered line owes
        /// exactly one INTA for that line (edges while one is still owed merge).
        #[test]
        fn pic_never_loses_or_duplicates_edge_interrupts(ops in proptest::collection::vec(op(), 1..120), aeoi in any::<bool>()) {
            let mut p = PicPair::new();
            init(&mut p, aeoi);
            let mut line = [false; 16];
            let mut owed = [false; 16];
            let inta = |p: &mut PicPair, owed: &mut [bool; 16]| -> Result<(), TestCaseError> {
                let v = p.read_irq();
                let irq = usize::from(if v >= 0x28 { v - 0x28 + 8 } else { v - 0x20 });
                if owed[irq] {
                    owed[irq] = false;
                } else {
                    // Only a spurious IR7 (either chip) may appear unowed.
                    prop_assert!(irq == 7 || irq == 15, "duplicate INTA of IRQ {}", irq);
                }
                Ok(())
            };
            for o in ops {
                match o {
                    Op::Line(i, l) => {
                        if i == 2 { continue; }
                        if l && !line[i] { owed[i] = true; }
                        line[i] = l;
                        p.set_irq(i, l);
                    }
                    Op::Inta => if p.output() { inta(&mut p, &mut owed)?; },
                    Op::Eoi(slave) => {
                        if slave { p.write(0xa0, 0x20); }
                        p.write(0x20, 0x20);
                    }
                    Op::Imr(slave, m) => p.write(if slave { 0xa1 } else { 0x21 }, m & !0x04),
                    Op::SaveRestore => {
                        let (m, s) = (p.save(PicChip::Master), p.save(PicChip::Slave));
                        let mut q = PicPair::new();
                        q.restore(PicChip::Master, &m);
                        q.restore(PicChip::Slave, &s);
                        prop_assert_eq!(q.save(PicChip::Master), m);
                        prop_assert_eq!(q.save(PicChip::Slave), s);
                        p = q;
                    }
                }
            }
            // Drain: unmask everything, EOI and acknowledge until quiet.
            p.write(0x21, 0);
            p.write(0xa1, 0);
            for _ in 0..64 {
                p.write(0xa0, 0x20);
                p.write(0x20, 0x20);
                if p.output() { inta(&mut p, &mut owed)?; }
            }
            prop_assert!(!owed.iter().any(|&o| o), "lost interrupts: {:?}", owed);
        }
    }
}

#[test]
fn pic_reinitialization_acks_dropped_requests_so_notifiers_do_not_stall() {
    let mut p = PicPair::new();
    init(&mut p, false);
    pulse(&mut p, 0);
    pulse(&mut p, 3);
    p.read_irq();
    p.take_acked();
    init(&mut p, false);
    assert_eq!(p.take_acked() & 0x09, 0x09);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary port traffic, lines and INTAs never panic, and
        /// save/restore stays the identity.
        #[test]
        fn pic_random_port_traffic_never_panics(ops in proptest::collection::vec((0u8..6, any::<u8>(), any::<bool>()), 1..200)) {
            let mut p = PicPair::new();
            for (kind, v, b) in ops {
                let port = [0x20u16, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1][usize::from(v % 6)];
                match kind {
                    0 | 1 => p.write(port, v),
                    2 => { p.read(port); }
                    3 => { p.set_irq(usize::from(v % 20), b); }
                    4 => { p.read_irq(); p.take_acked(); }
                    _ => {
                        let (m, s) = (p.save(PicChip::Master), p.save(PicChip::Slave));
                        let mut q = PicPair::new();
                        q.restore(PicChip::Master, &m);
                        q.restore(PicChip::Slave, &s);
                        prop_assert_eq!(q.save(PicChip::Master), m);
                        prop_assert_eq!(q.save(PicChip::Slave), s);
                        p = q;
                    }
                }
            }
        }
    }
}
