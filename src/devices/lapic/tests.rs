//! LAPIC tests, each named after the SDM vol. 3 ch. 11 rule it checks.

use super::*;
use crate::apic_bus::DeliveryOutcome;
use crate::clock::fake::{FakeClock, FakeTimer};
use crate::lapic_bus::deliver;
use std::vec::Vec;

type L = Lapic<FakeClock, FakeTimer>;

const T0: u64 = 1_000_000_000;

fn cfg(id: u32) -> LapicConfig {
    LapicConfig {
        min_periodic_ns: 0,
        ..LapicConfig::new(id)
    }
}

fn lapic(id: u32) -> (L, FakeClock) {
    let clk = FakeClock::new(T0);
    let mut l = Lapic::new(cfg(id), clk.clone(), FakeTimer::default());
    l.write(0xf0, 0x1ff);
    (l, clk)
}

fn lapics(n: u32) -> (Vec<L>, FakeClock) {
    let clk = FakeClock::new(T0);
    let v = (0..n)
        .map(|i| {
            let mut l = Lapic::new(cfg(i), clk.clone(), FakeTimer::default());
            l.write(0xf0, 0x1ff);
            l
        })
        .collect();
    (v, clk)
}

fn fixed(v: u8) -> ApicMessage {
    ApicMessage::fixed(v, 0)
}

fn level(v: u8) -> ApicMessage {
    ApicMessage {
        trigger: TriggerMode::Level,
        ..ApicMessage::fixed(v, 0)
    }
}

#[test]
fn lapic_reset_state_matches_power_up_values() {
    let clk = FakeClock::new(0);
    let mut l: L = Lapic::new(LapicConfig::new(3), clk, FakeTimer::default());
    assert_eq!(l.read(0x20), 3 << 24);
    assert_eq!(l.read(0x30), 0x0005_0014, "version 0x14, max LVT entry 5");
    assert_eq!(l.read(0xe0), 0xffff_ffff, "DFR flat model");
    assert_eq!(l.read(0xf0), 0xff, "SVR: software-disabled, vector 0xff");
    assert_eq!(l.read(0x80), 0);
    for off in [0x320, 0x330, 0x340, 0x360, 0x370] {
        assert_eq!(l.read(off), 1 << 16, "LVT {off:#x} masked");
    }
    assert_eq!(
        l.read(0x350),
        0x700,
        "LINT0 ExtINT (port keeps the C's virtual wire)"
    );
    assert_eq!(l.apic_base(), APIC_DEFAULT_PHYS_BASE | APIC_BASE_ENABLE);
    assert_eq!(
        l.mp_state(),
        MpState::Uninitialized,
        "an AP waits for INIT/SIPI"
    );
}

#[test]
fn lapic_bsp_flag_in_apic_base_only_on_bsp() {
    let clk = FakeClock::new(0);
    let l: L = Lapic::new(LapicConfig::new(0), clk, FakeTimer::default());
    assert_eq!(l.apic_base() & APIC_BASE_BSP, APIC_BASE_BSP);
    assert_eq!(l.mp_state(), MpState::Runnable);
}

#[test]
fn lapic_xapic_id_register_writable_bits_31_24() {
    let (mut l, _) = lapic(1);
    l.write(0x20, 0xab12_3456);
    assert_eq!(l.read(0x20), 0xab00_0000);
    assert_eq!(l.id(), 0xab);
}

#[test]
fn lapic_version_ppr_isr_irr_tmr_are_read_only() {
    let (mut l, _) = lapic(0);
    l.write(0x30, 0);
    l.write(0xa0, 0xff);
    l.write(0x100, 0xffff_ffff);
    l.write(0x200, 0xffff_ffff);
    assert_eq!(l.read(0x30), 0x0005_0014);
    assert_eq!(l.read(0xa0), 0);
    assert_eq!(l.read(0x100), 0);
    assert_eq!(l.read(0x200), 0);
}

#[test]
fn lapic_ppr_is_tpr_when_tpr_class_at_least_isr_class() {
    let (mut l, _) = lapic(0);
    l.write(0x80, 0x45);
    assert_eq!(l.read(0xa0), 0x45);
    l.write(0x80, 0x20);
    l.accept(&fixed(0x61));
    assert_eq!(l.get_interrupt(), Some(0x61));
    assert_eq!(
        l.read(0xa0),
        0x60,
        "ISR class 6 above TPR class 2: PPR = 0x60"
    );
    l.write(0x80, 0x73);
    assert_eq!(l.read(0xa0), 0x73);
}

#[test]
fn lapic_interrupt_dispatched_only_if_class_above_ppr_class() {
    let (mut l, _) = lapic(0);
    l.write(0x80, 0x50);
    l.accept(&fixed(0x5f));
    assert_eq!(l.has_interrupt(), None, "class 5 is not above PPR class 5");
    l.accept(&fixed(0x60));
    assert_eq!(l.has_interrupt(), Some(0x60));
    l.write(0x80, 0);
    assert_eq!(l.get_interrupt(), Some(0x60));
    assert_eq!(l.get_interrupt(), None, "0x5f blocked by 0x60 in service");
}

#[test]
fn lapic_highest_vector_first_and_irr_moves_to_isr_on_ack() {
    let (mut l, _) = lapic(0);
    for v in [0x31, 0x91, 0x45] {
        assert!(l.accept(&fixed(v)));
    }
    assert!(!l.accept(&fixed(0x45)), "already in IRR: coalesced");
    assert_eq!(l.read(0x200 + 0x10 * (0x91 >> 5)), 1 << (0x91 & 31));
    assert_eq!(l.get_interrupt(), Some(0x91));
    assert!(!l.irr_has(0x91) && l.isr_has(0x91));
    assert_eq!(l.read(0x100 + 0x10 * 4), 1 << (0x91 & 31));
}

#[test]
fn lapic_eoi_clears_highest_isr_and_broadcasts_only_level() {
    let (mut l, _) = lapic(0);
    l.accept(&level(0x40));
    l.get_interrupt();
    l.accept(&fixed(0x50));
    l.get_interrupt();
    assert!(l.tmr_has(0x40) && !l.tmr_has(0x50));
    assert_eq!(
        l.write(0xb0, 0),
        LapicAction::None,
        "0x50 is edge: no broadcast"
    );
    assert!(!l.isr_has(0x50) && l.isr_has(0x40));
    assert_eq!(l.write(0xb0, 0), LapicAction::IoapicEoi(0x40));
    assert!(l.tmr_has(0x40), "TMR changes only on acceptance");
    assert_eq!(
        l.write(0xb0, 0),
        LapicAction::None,
        "EOI with nothing in service"
    );
}

#[test]
fn lapic_eoi_broadcast_suppression_needs_version_bit_24_and_svr_bit_12() {
    let clk = FakeClock::new(0);
    let mut l: L = Lapic::new(
        LapicConfig {
            directed_eoi: true,
            ..cfg(0)
        },
        clk,
        FakeTimer::default(),
    );
    assert_eq!(l.read(0x30) & (1 << 24), 1 << 24);
    l.write(0xf0, 0x11ff);
    assert_eq!(l.read(0xf0), 0x11ff);
    l.accept(&level(0x40));
    l.get_interrupt();
    assert_eq!(l.write(0xb0, 0), LapicAction::None);
    let (mut plain, _) = lapic(0);
    plain.write(0xf0, 0x11ff);
    assert_eq!(
        plain.read(0xf0),
        0x1ff,
        "SVR bit 12 reserved without support"
    );
}

#[test]
fn lapic_software_disable_masks_all_lvts_and_they_stay_masked() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x20);
    l.write(0x370, 0x21);
    l.write(0xf0, 0xff);
    for off in [0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
        assert_eq!(l.read(off) & (1 << 16), 1 << 16, "{off:#x}");
    }
    l.write(0x320, 0x20);
    assert_eq!(
        l.read(0x320) & (1 << 16),
        1 << 16,
        "cannot unmask while disabled"
    );
}

#[test]
fn lapic_software_disabled_rejects_fixed_but_takes_nmi_init_sipi() {
    let (mut l, _) = lapic(1);
    l.write(0xf0, 0xff);
    assert!(!l.accept(&fixed(0x40)));
    assert!(l.accept(&ApicMessage {
        delivery_mode: DeliveryMode::Nmi,
        ..fixed(0)
    }));
    assert!(l.take_nmi());
    assert!(!l.take_nmi());
    assert!(l.accept(&ApicMessage {
        delivery_mode: DeliveryMode::Init,
        ..fixed(0)
    }));
    assert!(l.accept(&ApicMessage {
        delivery_mode: DeliveryMode::StartUp,
        ..fixed(0x9a)
    }));
    assert_eq!(l.mp_state(), MpState::SipiReceived(0x9a));
}

#[test]
fn lapic_software_disable_keeps_irr_and_isr() {
    let (mut l, _) = lapic(0);
    l.accept(&fixed(0x40));
    l.accept(&fixed(0x50));
    l.get_interrupt();
    l.write(0xf0, 0xff);
    assert!(l.irr_has(0x40) && l.isr_has(0x50));
}

#[test]
fn lapic_sipi_ignored_unless_init_received_and_init_deassert_ignored() {
    let (mut l, _) = lapic(1);
    assert!(!l.accept(&ApicMessage {
        delivery_mode: DeliveryMode::StartUp,
        ..fixed(0x10)
    }));
    let deassert = ApicMessage {
        delivery_mode: DeliveryMode::Init,
        trigger: TriggerMode::Level,
        level: false,
        ..fixed(0)
    };
    assert!(!l.accept(&deassert));
    assert_eq!(l.mp_state(), MpState::Uninitialized);
}

#[test]
fn lapic_esr_reports_errors_only_after_a_write_and_write_clears() {
    let (mut l, _) = lapic(0);
    l.write(0x310, 0);
    assert_eq!(
        l.write(0x300, 0x0000_0005),
        LapicAction::None,
        "illegal vector not sent"
    );
    assert_eq!(l.read(0x280), 0, "not visible before an ESR write");
    l.write(0x280, 0);
    assert_eq!(l.read(0x280), esr::SEND_ILLEGAL_VECTOR);
    l.write(0x280, 0);
    assert_eq!(l.read(0x280), 0);
}

#[test]
fn lapic_receive_illegal_vector_sets_esr_and_drops() {
    let (mut l, _) = lapic(0);
    assert!(!l.accept(&fixed(0x0f)));
    assert!(!l.irr_has(0x0f));
    l.write(0x280, 0);
    assert_eq!(l.read(0x280), esr::RECEIVE_ILLEGAL_VECTOR);
}

#[test]
fn lapic_error_raises_lvt_error_interrupt() {
    let (mut l, _) = lapic(0);
    l.write(0x370, 0xee);
    l.read(0x40); // reserved register
    assert_eq!(l.has_interrupt(), Some(0xee));
    l.write(0x280, 0);
    assert_eq!(l.read(0x280), esr::ILLEGAL_REGISTER);
}

#[test]
fn lapic_mmio_accepts_only_aligned_32_bit_writes() {
    let (mut l, _) = lapic(0);
    l.mmio_write(0x80, 1, 0x40);
    l.mmio_write(0x84, 4, 0x40);
    assert_eq!(l.read(0x80), 0);
    l.mmio_write(0x80, 4, 0x40);
    assert_eq!(l.read(0x80), 0x40);
}

#[test]
fn lapic_mmio_narrow_reads_return_bytes_of_the_register() {
    let (mut l, _) = lapic(0);
    assert_eq!(l.mmio_read(0x32, 1), 0x05);
    assert_eq!(l.mmio_read(0x30, 2), 0x0014);
    assert_eq!(l.mmio_read(0x33, 2), 0, "crossing the 32-bit register");
}

#[test]
fn lapic_eoi_register_is_write_only() {
    let (mut l, _) = lapic(0);
    l.read(0xb0);
    l.write(0x280, 0);
    assert_eq!(l.read(0x280), esr::ILLEGAL_REGISTER);
}

#[test]
fn lapic_icr_decodes_vector_mode_destination_and_never_shows_pending() {
    let (mut l, _) = lapic(0);
    l.write(0x310, 0x0312_3456);
    assert_eq!(l.read(0x310), 0x0300_0000, "ICR high: only 31:24");
    let a = l.write(0x300, 0x0000_c9f1 | (1 << 12));
    assert_eq!(
        a,
        LapicAction::SendIpi(ApicMessage {
            vector: 0xf1,
            delivery_mode: DeliveryMode::LowestPriority,
            dest_mode: DestMode::Logical,
            trigger: TriggerMode::Level,
            level: true,
            shorthand: Shorthand::None,
            dest_id: 3,
        })
    );
    assert_eq!(l.read(0x300) & (1 << 12), 0, "delivery status idle");
}

#[test]
fn lapic_icr_shorthands_self_all_and_all_but_self() {
    let (mut v, _) = lapics(3);
    for (sh, expect) in [
        (1u32, [false, true, false]),
        (2, [true, true, true]),
        (3, [true, false, true]),
    ] {
        let a = v[1].write(0x300, (0x40 + sh) | (sh << 18));
        let LapicAction::SendIpi(msg) = a else {
            panic!("no IPI")
        };
        deliver(&mut v, Some(1), &msg);
        let vec = msg.vector;
        for (i, e) in expect.iter().enumerate() {
            assert_eq!(v[i].irr_has(vec), *e, "shorthand {sh} apic {i}");
        }
    }
}

#[test]
fn lapic_physical_destination_and_xapic_broadcast_0xff() {
    let (mut v, _) = lapics(3);
    assert_eq!(
        deliver(&mut v, None, &ApicMessage::fixed(0x40, 2)),
        DeliveryOutcome::Accepted(1)
    );
    assert!(v[2].irr_has(0x40) && !v[0].irr_has(0x40));
    assert_eq!(
        deliver(&mut v, None, &ApicMessage::fixed(0x41, 0xff)),
        DeliveryOutcome::Accepted(3)
    );
    assert_eq!(
        deliver(&mut v, None, &ApicMessage::fixed(0x42, 7)),
        DeliveryOutcome::NoDestination
    );
    assert_eq!(
        deliver(&mut v, None, &ApicMessage::fixed(0x40, 2)),
        DeliveryOutcome::Coalesced
    );
}

#[test]
fn lapic_logical_flat_model_matches_ldr_bitmap() {
    let (mut v, _) = lapics(3);
    v[0].write(0xd0, 0x0100_0000);
    v[1].write(0xd0, 0x0200_0000);
    v[2].write(0xd0, 0x0400_0000);
    let m = ApicMessage {
        dest_mode: DestMode::Logical,
        ..ApicMessage::fixed(0x50, 0x05)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(2));
    assert!(v[0].irr_has(0x50) && !v[1].irr_has(0x50) && v[2].irr_has(0x50));
}

#[test]
fn lapic_logical_cluster_model_matches_cluster_and_member_bits() {
    let (mut v, _) = lapics(3);
    for l in v.iter_mut() {
        l.write(0xe0, 0x0fff_ffff);
    }
    assert_eq!(v[0].read(0xe0), 0x0fff_ffff);
    v[0].write(0xd0, 0x1100_0000); // cluster 1, member 1
    v[1].write(0xd0, 0x1200_0000); // cluster 1, member 2
    v[2].write(0xd0, 0x2100_0000); // cluster 2, member 1
    let m = ApicMessage {
        dest_mode: DestMode::Logical,
        ..ApicMessage::fixed(0x50, 0x13)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(2));
    assert!(!v[2].irr_has(0x50));
    let all = ApicMessage {
        dest_mode: DestMode::Logical,
        ..ApicMessage::fixed(0x51, 0xf1)
    };
    assert_eq!(
        deliver(&mut v, None, &all),
        DeliveryOutcome::Accepted(2),
        "cluster 0xf: all clusters"
    );
}

#[test]
fn lapic_lowest_priority_goes_to_one_apic_with_lowest_arbitration_priority() {
    let (mut v, _) = lapics(3);
    v[0].write(0x80, 0x30);
    v[1].write(0x80, 0x10);
    v[2].write(0x80, 0x20);
    let m = ApicMessage {
        delivery_mode: DeliveryMode::LowestPriority,
        ..ApicMessage::fixed(0x60, 0xff)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(1));
    assert!(v[1].irr_has(0x60) && !v[0].irr_has(0x60) && !v[2].irr_has(0x60));
}

#[test]
fn lapic_lowest_priority_prefers_focus_processor() {
    let (mut v, _) = lapics(2);
    v[1].write(0x80, 0xe0);
    v[1].accept(&fixed(0x60));
    v[1].get_interrupt();
    let m = ApicMessage {
        delivery_mode: DeliveryMode::LowestPriority,
        ..ApicMessage::fixed(0x60, 0xff)
    };
    deliver(&mut v, None, &m);
    assert!(
        v[1].irr_has(0x60) && !v[0].irr_has(0x60),
        "APIC 1 is servicing 0x60"
    );
}

#[test]
fn lapic_lowest_priority_ties_rotate() {
    let (mut v, _) = lapics(2);
    let mut winners = Vec::new();
    for vec in [0x60u8, 0x61, 0x62, 0x63] {
        let m = ApicMessage {
            delivery_mode: DeliveryMode::LowestPriority,
            ..ApicMessage::fixed(vec, 0xff)
        };
        deliver(&mut v, None, &m);
        winners.push(usize::from(v[1].irr_has(vec)));
        // Keep APRs equal: service and retire on the winner.
        for l in v.iter_mut() {
            if l.get_interrupt().is_some() {
                l.write(0xb0, 0);
            }
        }
    }
    assert_eq!(winners, [0, 1, 0, 1]);
}

#[test]
fn lapic_hardware_disabled_apic_receives_nothing() {
    let (mut v, _) = lapics(2);
    assert_eq!(v[1].set_apic_base(APIC_DEFAULT_PHYS_BASE), Ok(()));
    assert_eq!(
        deliver(&mut v, None, &ApicMessage::fixed(0x40, 0xff)),
        DeliveryOutcome::Accepted(1)
    );
    assert!(!v[1].mmio_in_range(APIC_DEFAULT_PHYS_BASE));
    assert!(!v[1].accept_pic_intr(), "not the BSP");
    assert!(v[0].mmio_in_range(APIC_DEFAULT_PHYS_BASE + 0xfff));
}

#[test]
fn lapic_pic_reaches_bsp_only_through_unmasked_extint_lint0() {
    let (mut l, _) = lapic(0);
    assert!(l.accept_pic_intr());
    l.write(0x350, 0x1_0700);
    assert!(!l.accept_pic_intr());
    l.write(0x350, 0x0000);
    assert!(!l.accept_pic_intr(), "LINT0 in fixed mode");
    let (ap, _) = lapic(1);
    assert!(!ap.accept_pic_intr());
}

#[test]
fn lapic_cr8_is_tpr_bits_7_4() {
    let (mut l, _) = lapic(0);
    l.set_cr8(0xa);
    assert_eq!(l.read(0x80), 0xa0);
    l.write(0x80, 0x5c);
    assert_eq!(l.cr8(), 5);
}

#[test]
fn lapic_divide_configuration_encodings() {
    let (mut l, _) = lapic(0);
    for (tdcr, div) in [
        (0x0, 2),
        (0x1, 4),
        (0x2, 8),
        (0x3, 16),
        (0x8, 32),
        (0x9, 64),
        (0xa, 128),
        (0xb, 1),
    ] {
        l.write(0x3e0, tdcr);
        assert_eq!(l.divide_count(), div, "tdcr {tdcr:#x}");
    }
    l.write(0x3e0, 0xffff_ffff);
    assert_eq!(l.read(0x3e0), 0xb, "only bits 0, 1, 3 are writable");
}

#[test]
fn lapic_one_shot_timer_fires_once_and_current_count_counts_down_to_zero() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0x0); // divide by 2
    l.write(0x320, 0x30);
    l.write(0x380, 1000);
    assert_eq!(l.timer().deadline, Some(T0 + 2000));
    assert_eq!(l.read(0x390), 1000);
    clk.set(T0 + 2 * 250);
    assert_eq!(l.read(0x390), 750);
    clk.set(T0 + 1999);
    assert_eq!(l.read(0x390), 1);
    assert!(!l.on_timer(clk.get()), "early callback: nothing");
    clk.set(T0 + 2000);
    assert!(l.on_timer(clk.get()));
    assert_eq!(l.has_interrupt(), Some(0x30));
    assert_eq!(l.read(0x390), 0, "one-shot stays at zero");
    assert_eq!(l.timer().deadline, None);
    clk.set(T0 + 10_000);
    l.on_timer(clk.get());
    assert_eq!(l.pending_timer(), 0);
}

#[test]
fn lapic_poll_timer_delivers_only_once_the_deadline_has_passed() {
    // The VCPU thread polls; the model's own clock decides (SDM §11.5.4:
    // the interrupt comes when the count reaches zero, not before).
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0x0); // divide by 2
    l.write(0x320, 0x31);
    l.write(0x380, 1000); // deadline T0 + 2000
    clk.set(T0 + 1999);
    assert!(!l.poll_timer());
    assert_eq!(l.has_interrupt(), None);
    assert_eq!(l.timer().deadline, Some(T0 + 2000), "not re-armed early");
    clk.set(T0 + 2000);
    assert!(l.poll_timer());
    assert_eq!(l.has_interrupt(), Some(0x31));
    assert!(!l.poll_timer(), "one-shot: nothing more");
}

#[test]
fn lapic_periodic_timer_reloads_and_fires_every_period() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0xb);
    l.write(0x320, 0x2_0031);
    l.write(0x380, 5000);
    for k in 1..=4u64 {
        assert_eq!(l.timer().deadline, Some(T0 + 5000 * k));
        clk.set(T0 + 5000 * k);
        assert!(l.on_timer(clk.get()));
        assert_eq!(l.get_interrupt(), Some(0x31));
        l.write(0xb0, 0);
    }
    clk.set(T0 + 4 * 5000 + 1200);
    assert_eq!(l.read(0x390), 3800, "count reloaded for the fifth period");
}

#[test]
fn lapic_periodic_timer_clamped_to_minimum_period() {
    let clk = FakeClock::new(T0);
    let mut l: L = Lapic::new(LapicConfig::new(0), clk, FakeTimer::default());
    l.write(0xf0, 0x1ff);
    l.write(0x3e0, 0xb);
    l.write(0x320, 0x2_0031);
    l.write(0x380, 10);
    assert_eq!(l.timer().deadline, Some(T0 + 500_000));
}

#[test]
fn lapic_writing_zero_initial_count_stops_the_timer() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x2_0031);
    l.write(0x380, 100_000);
    l.write(0x380, 0);
    assert_eq!(l.timer().deadline, None);
    assert_eq!(l.read(0x390), 0);
}

#[test]
fn lapic_masked_timer_expiry_is_discarded_not_replayed_on_unmask() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0xb);
    l.write(0x320, 0x3_0040); // periodic, masked
    l.write(0x380, 100);
    clk.set(T0 + 350);
    assert!(!l.on_timer(clk.get()));
    assert_eq!(l.pending_timer(), 0);
    assert!(l.read(0x390) > 0, "the counter keeps running while masked");
    l.write(0x320, 0x2_0040);
    assert!(!l.inject_timer_irqs());
    assert_eq!(l.has_interrupt(), None);
    clk.set(T0 + 400);
    assert!(
        l.on_timer(clk.get()),
        "the next expiry after unmask interrupts"
    );
    assert_eq!(l.has_interrupt(), Some(0x40));
}

#[test]
fn lapic_periodic_timer_has_no_drift_over_one_million_periods() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0x3); // divide by 16
    l.write(0x320, 0x2_0031);
    l.write(0x380, 62_500); // 1 ms
    let period = 62_500u64 * 16;
    let k = 1_000_000u64;
    clk.set(T0 + k * period - 1);
    l.on_timer(clk.get());
    assert_eq!(
        l.pending_timer() + 1,
        k - 1,
        "one delivered to IRR, the rest pending"
    );
    assert_eq!(l.timer().deadline, Some(T0 + k * period));
    assert_eq!(l.read(0x390), 1);
}

#[test]
fn lapic_tsc_deadline_mode_fires_at_deadline_and_clears_msr() {
    let (mut l, clk) = lapic(0);
    assert_eq!(
        l.cpuid_1_ecx() & CPUID_1_ECX_TSC_DEADLINE,
        CPUID_1_ECX_TSC_DEADLINE
    );
    l.write(0x320, 0x4_0050);
    assert_eq!(l.timer_mode(), TimerMode::TscDeadline);
    l.write(0x380, 1234);
    assert_eq!(l.read(0x380), 0, "TMICT ignored in TSC-deadline mode");
    // 1 GHz guest TSC: one tick per ns, guest TSC = now.
    let dl = l.guest_tsc(clk.get()) + 10_000;
    assert_eq!(l.set_tsc_deadline(dl), Ok(()));
    assert_eq!(l.tsc_deadline(), Ok(dl));
    assert_eq!(l.timer().deadline, Some(T0 + 10_000));
    assert_eq!(l.read(0x390), 0, "TMCCT reads 0 in TSC-deadline mode");
    clk.set(T0 + 10_000);
    assert!(l.on_timer(clk.get()));
    assert_eq!(l.has_interrupt(), Some(0x50));
    assert_eq!(l.tsc_deadline(), Ok(0), "MSR cleared when the timer fires");
    assert_eq!(l.timer().deadline, None);
}

#[test]
fn lapic_tsc_deadline_with_tsc_frequency_and_offset() {
    let clk = FakeClock::new(T0);
    let mut l: L = Lapic::new(
        LapicConfig {
            tsc_khz: 2_500_000,
            ..cfg(0)
        },
        clk.clone(),
        FakeTimer::default(),
    );
    l.write(0xf0, 0x1ff);
    l.set_tsc_offset(7_000);
    l.write(0x320, 0x4_0050);
    let now_tsc = l.guest_tsc(T0);
    assert_eq!(now_tsc, T0 * 5 / 2 + 7_000);
    l.set_tsc_deadline(now_tsc + 25_000).ok();
    assert_eq!(
        l.timer().deadline,
        Some(T0 + 10_000),
        "25,000 cycles at 2.5 GHz = 10 µs"
    );
}

#[test]
fn lapic_tsc_deadline_in_the_past_fires_immediately() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x4_0050);
    l.set_tsc_deadline(1).ok();
    assert_eq!(l.has_interrupt(), Some(0x50));
    assert_eq!(l.tsc_deadline(), Ok(0));
}

#[test]
fn lapic_tsc_deadline_writing_zero_disarms() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x4_0050);
    l.set_tsc_deadline(T0 + 500).ok();
    l.set_tsc_deadline(0).ok();
    assert_eq!(l.timer().deadline, None);
}

#[test]
fn lapic_tsc_deadline_msr_reads_zero_and_ignores_writes_in_other_modes() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x2_0050);
    assert_eq!(l.set_tsc_deadline(T0 + 100), Ok(()));
    assert_eq!(l.tsc_deadline(), Ok(0));
    assert_eq!(l.timer().deadline, None);
}

#[test]
fn lapic_mode_change_to_or_from_tsc_deadline_disarms() {
    let (mut l, _) = lapic(0);
    l.write(0x320, 0x2_0050);
    l.write(0x380, 100_000);
    l.write(0x320, 0x4_0050);
    assert_eq!(l.timer().deadline, None);
    assert_eq!(l.read(0x380), 0);
    l.set_tsc_deadline(T0 + 500).ok();
    l.write(0x320, 0x0_0050);
    assert_eq!(l.timer().deadline, None);
    l.write(0x320, 0x4_0050);
    assert_eq!(l.tsc_deadline(), Ok(0));
}

#[test]
fn lapic_without_tsc_deadline_support_bit_18_is_reserved_and_msr_faults() {
    let clk = FakeClock::new(T0);
    let mut l: L = Lapic::new(
        LapicConfig {
            tsc_deadline: false,
            ..cfg(0)
        },
        clk,
        FakeTimer::default(),
    );
    l.write(0xf0, 0x1ff);
    l.write(0x320, 0x4_0050);
    assert_eq!(l.timer_mode(), TimerMode::OneShot);
    assert_eq!(l.cpuid_1_ecx() & CPUID_1_ECX_TSC_DEADLINE, 0);
    assert_eq!(l.tsc_deadline(), Err(GeneralProtection));
    assert_eq!(l.set_tsc_deadline(5), Err(GeneralProtection));
}

fn x2(l: &mut L) {
    let base = l.apic_base();
    assert_eq!(l.set_apic_base(base | APIC_BASE_EXTD), Ok(()));
}

#[test]
fn lapic_apic_base_transitions_that_fault() {
    let (mut l, _) = lapic(0);
    let base = APIC_DEFAULT_PHYS_BASE;
    assert_eq!(
        l.set_apic_base(base | APIC_BASE_EXTD),
        Err(GeneralProtection),
        "EXTD without EN"
    );
    assert_eq!(
        l.set_apic_base(base | (1 << 9)),
        Err(GeneralProtection),
        "reserved bit"
    );
    x2(&mut l);
    assert_eq!(
        l.set_apic_base(base | APIC_BASE_ENABLE),
        Err(GeneralProtection),
        "x2APIC → xAPIC"
    );
    assert_eq!(l.set_apic_base(base), Ok(()), "x2APIC → disabled");
    assert_eq!(
        l.set_apic_base(base | APIC_BASE_ENABLE | APIC_BASE_EXTD),
        Err(GeneralProtection),
        "disabled → x2APIC"
    );
    assert_eq!(l.set_apic_base(base | APIC_BASE_ENABLE), Ok(()));
}

#[test]
fn lapic_x2apic_id_is_32_bit_read_only_and_ldr_derived() {
    let clk = FakeClock::new(T0);
    let mut l: L = Lapic::new(cfg(0x123), clk, FakeTimer::default());
    x2(&mut l);
    assert_eq!(l.x2apic_msr_read(0x802), Ok(0x123));
    assert_eq!(l.x2apic_msr_read(0x80d), Ok((0x12 << 16) | (1 << 3)));
    assert_eq!(l.x2apic_msr_write(0x802, 5), Err(GeneralProtection));
    assert_eq!(l.x2apic_msr_write(0x80d, 5), Err(GeneralProtection));
}

#[test]
fn lapic_x2apic_msrs_fault_in_xapic_mode_and_mmio_is_off_in_x2apic_mode() {
    let (mut l, _) = lapic(0);
    assert_eq!(l.x2apic_msr_read(0x808), Err(GeneralProtection));
    x2(&mut l);
    assert!(!l.mmio_in_range(APIC_DEFAULT_PHYS_BASE));
    l.mmio_write(0x80, 4, 0x40);
    assert_eq!(l.x2apic_msr_read(0x808), Ok(0));
}

#[test]
fn lapic_x2apic_reserved_and_removed_registers_fault() {
    let (mut l, _) = lapic(0);
    x2(&mut l);
    for msr in [0x800, 0x801, 0x804, 0x80e, 0x831, 0x809, 0x8ff, 0x83a] {
        assert_eq!(l.x2apic_msr_read(msr), Err(GeneralProtection), "{msr:#x}");
    }
    assert_eq!(
        l.x2apic_msr_read(0x80b),
        Err(GeneralProtection),
        "EOI is write-only"
    );
    assert_eq!(
        l.x2apic_msr_read(0x83f),
        Err(GeneralProtection),
        "SELF IPI is write-only"
    );
    assert_eq!(
        l.x2apic_msr_write(0x80b, 1),
        Err(GeneralProtection),
        "non-zero EOI"
    );
    assert_eq!(
        l.x2apic_msr_write(0x828, 1),
        Err(GeneralProtection),
        "non-zero ESR"
    );
    assert_eq!(
        l.x2apic_msr_write(0x80a, 0),
        Err(GeneralProtection),
        "PPR read-only"
    );
    assert_eq!(
        l.x2apic_msr_write(0x839, 0),
        Err(GeneralProtection),
        "TMCCT read-only"
    );
    assert_eq!(
        l.x2apic_msr_write(0x808, 1 << 32),
        Err(GeneralProtection),
        "upper half reserved"
    );
}

#[test]
fn lapic_x2apic_icr_is_one_64_bit_register_with_32_bit_destination() {
    let (mut l, _) = lapic(0);
    x2(&mut l);
    let a = l.x2apic_msr_write(0x830, (0x1234_5678u64 << 32) | 0x4041);
    assert_eq!(
        a,
        Ok(LapicAction::SendIpi(ApicMessage {
            level: true,
            ..ApicMessage::fixed(0x41, 0x1234_5678)
        }))
    );
    assert_eq!(
        l.x2apic_msr_read(0x830),
        Ok((0x1234_5678u64 << 32) | 0x4041)
    );
}

#[test]
fn lapic_x2apic_self_ipi_sends_vector_to_self() {
    let (mut v, _) = lapics(2);
    x2(&mut v[0]);
    // Bits 31:8 are reserved: #GP, nothing sent.
    for bad in [0x1_0077u64, 0x100, 0xff00_0000] {
        assert_eq!(v[0].x2apic_msr_write(0x83f, bad), Err(GeneralProtection));
    }
    let a = v[0].x2apic_msr_write(0x83f, 0x77);
    let Ok(LapicAction::SendIpi(m)) = a else {
        panic!("no IPI")
    };
    assert_eq!(m.shorthand, Shorthand::SelfOnly);
    assert_eq!(m.vector, 0x77);
    deliver(&mut v, Some(0), &m);
    assert!(v[0].irr_has(0x77) && !v[1].irr_has(0x77));
}

#[test]
fn lapic_x2apic_logical_cluster_destination() {
    let clk = FakeClock::new(T0);
    let mut v: Vec<L> = [0x0u32, 0x1, 0x10]
        .iter()
        .map(|&id| {
            let mut l = Lapic::new(cfg(id), clk.clone(), FakeTimer::default());
            l.write(0xf0, 0x1ff);
            x2(&mut l);
            l
        })
        .collect();
    let m = ApicMessage {
        dest_mode: DestMode::Logical,
        ..ApicMessage::fixed(0x44, 0x0000_0003)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(2));
    let m = ApicMessage {
        dest_mode: DestMode::Logical,
        ..ApicMessage::fixed(0x45, 0x0001_0001)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(1));
    assert!(v[2].irr_has(0x45));
    let m = ApicMessage::fixed(0x46, u32::MAX);
    assert_eq!(
        deliver(&mut v, None, &m),
        DeliveryOutcome::Accepted(3),
        "x2APIC broadcast"
    );
}

#[test]
fn lapic_save_restore_is_identity_and_timer_continues() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0x1); // divide by 4
    l.write(0x320, 0x2_0031);
    l.write(0x380, 10_000);
    l.write(0x80, 0x20);
    l.accept(&level(0x55));
    l.accept(&fixed(0x66));
    l.get_interrupt();
    clk.set(T0 + 4 * 2_500 + 3);
    let st = l.save();
    assert_eq!(
        u32::from_le_bytes([
            st.regs[0x390],
            st.regs[0x391],
            st.regs[0x392],
            st.regs[0x393]
        ]),
        7_500
    );
    let mut m: L = Lapic::new(cfg(0), clk.clone(), FakeTimer::default());
    m.restore(&st);
    assert_eq!(m.save(), st);
    clk.set(T0 + 4 * 6_000 + 3);
    assert_eq!(m.read(0x390), l.read(0x390));
    assert_eq!(m.has_interrupt(), l.has_interrupt());
}

#[test]
fn lapic_restore_of_expired_one_shot_does_not_fire_again() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0xb);
    l.write(0x380, 100);
    clk.set(T0 + 500);
    l.on_timer(clk.get());
    let st = l.save();
    let mut m: L = Lapic::new(cfg(0), clk.clone(), FakeTimer::default());
    m.restore(&st);
    assert_eq!(m.timer().deadline, None);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Accept(u8, bool),
        Ack,
        Eoi,
        Tpr(u8),
        SaveRestore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (16u8..=255, any::<bool>()).prop_map(|(v, l)| Op::Accept(v, l)),
            3 => Just(Op::Ack),
            3 => Just(Op::Eoi),
            1 => any::<u8>().prop_map(Op::Tpr),
            1 => Just(Op::SaveRestore),
        ]
    }

    #[derive(Clone, Debug)]
    enum TOp {
        Advance(u64),
        Fire,
        Ack,
        SaveRestore,
    }

    fn top() -> impl Strategy<Value = TOp> {
        prop_oneof![
            3 => (0..400_000u64).prop_map(TOp::Advance),
            2 => Just(TOp::Fire),
            2 => Just(TOp::Ack),
            1 => Just(TOp::SaveRestore),
        ]
    }

    proptest! {
        /// Reference: a periodic timer with period P started at T0 has
        /// expired floor((now − T0) / P) times; every expiration is either
        /// acknowledged, still pending in IRR or the backlog, or explicitly
        /// handed back at a save — never lost, never doubled.
        #[test]
        fn lapic_periodic_timer_counts_match_reference(initial in 1_000u32..100_000, ops in proptest::collection::vec(top(), 1..80)) {
            let (mut l, clk) = lapic(0);
            l.write(0x3e0, 0xb);
            l.write(0x320, 0x2_0031);
            l.write(0x380, initial);
            let mut seen = 0u64;
            for o in ops {
                match o {
                    TOp::Advance(d) => clk.advance(d),
                    TOp::Fire => { l.on_timer(clk.get()); }
                    TOp::Ack => {
                        l.inject_timer_irqs();
                        if l.get_interrupt().is_some() { seen += 1; l.write(0xb0, 0); }
                    }
                    TOp::SaveRestore => {
                        let st = l.save();
                        seen += l.pending_timer();
                        let mut m: L = Lapic::new(cfg(0), clk.clone(), FakeTimer::default());
                        m.restore(&st);
                        prop_assert_eq!(m.save(), st);
                        l = m;
                    }
                }
            }
            l.on_timer(clk.get());
            let outstanding = l.pending_timer() + u64::from(l.irr_has(0x31));
            prop_assert_eq!(seen + outstanding, (clk.get() - T0) / u64::from(initial));
        }
    }

    /// Reference model: IRR and ISR as sets of vectors, SDM priority rules.
    struct Ref {
        irr: [bool; 256],
        isr: [bool; 256],
        level: [bool; 256],
        tpr: u8,
    }

    impl Ref {
        fn highest(set: &[bool; 256]) -> Option<u8> {
            (0..=255u8).rev().find(|&v| set[usize::from(v)])
        }
        fn ppr_class(&self) -> u8 {
            (self.tpr & 0xf0).max(Self::highest(&self.isr).unwrap_or(0) & 0xf0)
        }
        fn deliverable(&self) -> Option<u8> {
            Self::highest(&self.irr).filter(|v| v & 0xf0 > self.ppr_class())
        }
    }

    proptest! {
        #[test]
        fn lapic_never_loses_or_duplicates_against_reference(ops in proptest::collection::vec(op(), 1..150)) {
            let (mut l, clk) = lapic(0);
            let mut r = Ref { irr: [false; 256], isr: [false; 256], level: [false; 256], tpr: 0 };
            let (mut accepted, mut acked) = (0u32, 0u32);
            for o in ops {
                match o {
                    Op::Accept(v, lvl) => {
                        let m = if lvl { level(v) } else { fixed(v) };
                        let fresh = !r.irr[usize::from(v)];
                        prop_assert_eq!(l.accept(&m), fresh);
                        r.irr[usize::from(v)] = true;
                        r.level[usize::from(v)] = lvl;
                        if fresh { accepted += 1; }
                    }
                    Op::Ack => {
                        let want = r.deliverable();
                        prop_assert_eq!(l.get_interrupt(), want);
                        if let Some(v) = want {
                            r.irr[usize::from(v)] = false;
                            r.isr[usize::from(v)] = true;
                            acked += 1;
                        }
                    }
                    Op::Eoi => {
                        let a = l.write(0xb0, 0);
                        match Ref::highest(&r.isr) {
                            Some(v) => {
                                r.isr[usize::from(v)] = false;
                                let want = if r.level[usize::from(v)] { LapicAction::IoapicEoi(v) } else { LapicAction::None };
                                prop_assert_eq!(a, want);
                            }
                            None => prop_assert_eq!(a, LapicAction::None),
                        }
                    }
                    Op::Tpr(t) => {
                        l.write(0x80, u32::from(t));
                        r.tpr = t;
                    }
                    Op::SaveRestore => {
                        let st = l.save();
                        let mut m: L = Lapic::new(cfg(0), clk.clone(), FakeTimer::default());
                        m.restore(&st);
                        prop_assert_eq!(m.save(), st);
                        l = m;
                    }
                }
                prop_assert_eq!(l.has_interrupt(), r.deliverable());
            }
            // Drain: everything accepted is acknowledged exactly once.
            l.write(0x80, 0);
            for _ in 0..600 {
                if l.get_interrupt().is_some() { acked += 1; continue; }
                if !(0..=255u8).any(|v| l.isr_has(v)) {
                    break;
                }
                l.write(0xb0, 0);
            }
            prop_assert_eq!(acked, accepted);
        }
    }
}

#[test]
fn lapic_hyperv_synthetic_msrs_alias_eoi_icr_tpr() {
    let (mut l, _) = lapic(0);
    assert_eq!(
        l.hv_vapic_msr_write(HV_X64_MSR_TPR, 0x30),
        Ok(LapicAction::None)
    );
    assert_eq!(l.read(0x80), 0x30);
    assert_eq!(l.hv_vapic_msr_read(HV_X64_MSR_TPR), Ok(0x30));
    let a = l.hv_vapic_msr_write(HV_X64_MSR_ICR, (0x0200_0000u64 << 32) | 0x4041);
    assert_eq!(
        a,
        Ok(LapicAction::SendIpi(ApicMessage {
            level: true,
            ..ApicMessage::fixed(0x41, 2)
        }))
    );
    assert_eq!(
        l.hv_vapic_msr_read(HV_X64_MSR_ICR),
        Ok((0x0200_0000u64 << 32) | 0x4041)
    );
    l.accept(&level(0x70));
    l.write(0x80, 0);
    l.get_interrupt();
    assert_eq!(
        l.hv_vapic_msr_write(HV_X64_MSR_EOI, 0),
        Ok(LapicAction::IoapicEoi(0x70))
    );
    assert_eq!(l.hv_vapic_msr_read(HV_X64_MSR_EOI), Err(GeneralProtection));
}

#[test]
fn lapic_vapic_word_packs_tpr_isr_class_and_highest_irr() {
    let (mut l, _) = lapic(0);
    l.accept(&fixed(0x85));
    l.get_interrupt();
    l.accept(&fixed(0x42));
    l.write(0x80, 0x21);
    assert_eq!(l.vapic_word(), 0x21 | (0x80 << 8) | (0x42 << 24));
    l.sync_from_vapic(0xdead_be90);
    assert_eq!(l.read(0x80), 0x90);
}

#[test]
fn lapic_lint0_nmi_mode_takes_watchdog_nmis() {
    let (mut l, _) = lapic(0);
    assert!(!l.lint0_nmi_mode());
    l.write(0x350, 0x400);
    assert!(l.lint0_nmi_mode());
    assert!(l.nmi_wd_deliver());
    assert!(l.take_nmi());
    l.write(0x350, 0x1_0400);
    assert!(!l.lint0_nmi_mode());
    assert!(!l.nmi_wd_deliver());
}

#[test]
fn cpu_interrupt_prefers_lapic_then_pic_extint() {
    use crate::lapic_bus::{cpu_get_interrupt, cpu_has_interrupt};
    let (mut l, _) = lapic(0);
    let mut pic = crate::i8259::PicPair::new();
    for (port, v) in [(0x20u16, 0x11u8), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01)] {
        pic.write(port, v);
    }
    pic.set_irq(1, true);
    l.accept(&fixed(0x99));
    assert!(cpu_has_interrupt(&l, &pic));
    assert_eq!(cpu_get_interrupt(&mut l, &mut pic), Some(0x99));
    assert_eq!(
        cpu_get_interrupt(&mut l, &mut pic),
        Some(0x31),
        "then the PIC via ExtINT"
    );
    assert!(!cpu_has_interrupt(&l, &pic));
    pic.set_irq(1, false);
    pic.set_irq(1, true);
    l.write(0x350, 0x1_0700);
    assert!(
        !cpu_has_interrupt(&l, &pic),
        "LINT0 masked: PIC cannot interrupt"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    #[derive(Clone, Debug)]
    enum Op {
        MmioWrite(u64, usize, u32),
        MmioRead(u64, usize),
        MsrWrite(u32, u64),
        MsrRead(u32),
        Base(u64),
        Deadline(u64),
        Accept(u8, u8, bool),
        Advance(u64),
        Fire,
        Ack,
        SaveRestore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..0x1010u64, 0..9usize, any::<u32>()).prop_map(|(o, l, v)| Op::MmioWrite(o, l, v)),
            (0..0x1010u64, 0..9usize).prop_map(|(o, l)| Op::MmioRead(o, l)),
            (0x7f0..0x910u32, any::<u64>()).prop_map(|(m, v)| Op::MsrWrite(m, v)),
            (0x7f0..0x910u32).prop_map(Op::MsrRead),
            prop_oneof![
                Just(APIC_DEFAULT_PHYS_BASE | APIC_BASE_ENABLE),
                Just(APIC_DEFAULT_PHYS_BASE | APIC_BASE_ENABLE | APIC_BASE_EXTD),
                Just(APIC_DEFAULT_PHYS_BASE),
                any::<u64>()
            ]
            .prop_map(Op::Base),
            any::<u64>().prop_map(Op::Deadline),
            (any::<u8>(), 0..8u8, any::<bool>()).prop_map(|(v, m, l)| Op::Accept(v, m, l)),
            (0..u64::MAX / 4).prop_map(Op::Advance),
            Just(Op::Fire),
            Just(Op::Ack),
            Just(Op::SaveRestore),
        ]
    }

    proptest! {
        /// Whatever a guest or ioctl does, the model neither panics nor
        /// overflows, and save/restore stays the identity.
        #[test]
        fn lapic_random_guest_traffic_never_panics(ops in proptest::collection::vec(op(), 1..120)) {
            let (mut l, clk) = lapic(0);
            for o in ops {
                match o {
                    Op::MmioWrite(off, len, v) => { l.mmio_write(off, len, v); }
                    Op::MmioRead(off, len) => { l.mmio_read(off, len); }
                    Op::MsrWrite(m, v) => {
                        let _ = l.x2apic_msr_write(m, v);
                        let _ = l.hv_vapic_msr_write(m + 0x3fff_f870, v);
                    }
                    Op::MsrRead(m) => {
                        let _ = l.x2apic_msr_read(m);
                    }
                    Op::Base(b) => { let _ = l.set_apic_base(b); }
                    Op::Deadline(d) => { let _ = l.set_tsc_deadline(d); let _ = l.tsc_deadline(); }
                    Op::Accept(v, m, lvl) => {
                        let msg = ApicMessage {
                            delivery_mode: DeliveryMode::from_bits(u32::from(m)),
                            trigger: if lvl { TriggerMode::Level } else { TriggerMode::Edge },
                            ..ApicMessage::fixed(v, 0)
                        };
                        l.accept(&msg);
                    }
                    Op::Advance(d) => clk.set(clk.get().saturating_add(d)),
                    Op::Fire => { l.on_timer(clk.get()); }
                    Op::Ack => { l.get_interrupt(); }
                    Op::SaveRestore => {
                        let st = l.save();
                        // KVM_SET_MSRS (APIC base) precedes KVM_SET_LAPIC.
                        let mut m: L = Lapic::new(cfg(0), clk.clone(), FakeTimer::default());
                        let base = l.apic_base();
                        let _ = m.set_apic_base(base & !APIC_BASE_EXTD);
                        let _ = m.set_apic_base(base);
                        m.restore(&st);
                        prop_assert_eq!(m.apic_base(), base);
                        prop_assert_eq!(m.save(), st);
                        l = m;
                    }
                }
            }
        }
    }
}

#[test]
fn lapic_lowest_priority_skips_software_disabled_apic() {
    let (mut v, _) = lapics(2);
    v[0].write(0xf0, 0xff);
    v[1].write(0x80, 0xf0);
    let m = ApicMessage {
        delivery_mode: DeliveryMode::LowestPriority,
        ..ApicMessage::fixed(0x60, 0xff)
    };
    assert_eq!(deliver(&mut v, None, &m), DeliveryOutcome::Accepted(1));
    assert!(v[1].irr_has(0x60));
}

#[test]
fn cpu_pending_timer_is_pit_backlog_on_bsp_or_lapic_backlog() {
    use crate::i8254::Pit;
    use crate::lapic_bus::cpu_has_pending_timer;
    let (mut l, clk) = lapic(0);
    let mut pit = Pit::new(clk.clone(), FakeTimer::default());
    assert!(!cpu_has_pending_timer(&l, Some(&pit)));
    pit.write(0x43, 0x34);
    pit.write(0x40, 10);
    pit.write(0x40, 0);
    clk.advance(1_000_000);
    pit.on_timer(clk.get());
    assert!(cpu_has_pending_timer(&l, Some(&pit)));
    assert!(!cpu_has_pending_timer::<_, _, FakeClock, FakeTimer>(
        &l, None
    ));
    l.write(0x3e0, 0xb);
    l.write(0x320, 0x2_0040);
    l.write(0x380, 100);
    clk.advance(1_000);
    l.on_timer(clk.get());
    assert!(
        cpu_has_pending_timer::<_, _, FakeClock, FakeTimer>(&l, None),
        "backlog behind the IRR bit"
    );
}

/// SDM vol. 3 §11.5.4 as kvm-unit-tests' apic.flat `test_apic_change_mode`
/// checks it: a mode change (one-shot ↔ periodic) does not restart the
/// count; a one-shot count that reached zero stays at zero in periodic
/// mode until TMICT is written again.
#[test]
fn lapic_timer_mode_change_keeps_the_count() {
    let (mut l, clk) = lapic(0);
    l.write(0x3e0, 0xb); // divide by 1
    l.write(0x320, 0x30); // one-shot
    l.write(0x380, 1000);
    clk.set(T0 + 600);
    let before = l.read(0x390);
    assert!(before < 500, "{before}");
    l.write(0x320, 0x30 | (1 << 17)); // periodic
    assert_eq!(l.read(0x390), before, "not reset to TMICT");
    clk.set(T0 + 1000);
    let _ = l.on_timer(clk.get());
    clk.set(T0 + 1100);
    assert!(l.read(0x390) > 500, "reloaded from TMICT in periodic mode");
    // Back to one-shot mid-count: counts down to zero and stays there.
    l.write(0x320, 0x30);
    clk.set(T0 + 2000);
    let _ = l.on_timer(clk.get());
    clk.set(T0 + 2500);
    assert_eq!(l.read(0x390), 0, "one-shot reached zero");
    // Now periodic with the count at zero: it stays at zero.
    l.write(0x320, 0x30 | (1 << 17));
    assert_eq!(l.read(0x390), 0, "stays at zero");
    clk.set(T0 + 3100);
    assert_eq!(l.read(0x390), 0, "still zero: no TMICT write");
    l.write(0x380, 1000);
    assert_eq!(l.read(0x390), 1000, "a TMICT write restarts it");
}

/// apic.flat's test_apic_change_mode step by step, with the driver's
/// default configuration and a large TMICT.
#[test]
fn lapic_change_mode_as_apic_flat_does() {
    let clk = FakeClock::new(T0);
    let mut l = Lapic::new(LapicConfig::new(0), clk.clone(), FakeTimer::default());
    l.write(0xf0, 0x1ff);
    let tmict = 0x99_9999u32;
    l.write(0x3e0, 0xb);
    l.write(0x320, 0x30); // one-shot
    l.write(0x380, tmict);
    let tick = u64::from(tmict) - u64::from(l.read(0x390));
    assert_eq!(tick, 0);
    // To zero.
    let mut t = T0;
    while l.read(0x390) != 0 {
        t += 100_000;
        clk.set(t);
        let _ = l.poll_timer();
    }
    // Again, stop at half.
    l.write(0x380, tmict);
    while l.read(0x390) > tmict / 2 {
        t += 100_000;
        clk.set(t);
        let _ = l.poll_timer();
    }
    let half = l.read(0x390);
    l.write(0x320, 0x30 | (1 << 17)); // periodic
    let now = l.read(0x390);
    assert!(now != 0 && now <= half, "{now} vs {half}");
}
