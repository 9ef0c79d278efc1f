//! Routing tests, each named after the rule it checks, plus end-to-end
//! paths through the chips (PIT → IRQ0 → PIC/IOAPIC → LAPIC, EOI back).

use super::*;
use crate::clock::fake::{FakeClock, FakeTimer};
use crate::i8254::Pit;
use crate::lapic::{Lapic, LapicAction, LapicConfig};
use crate::lapic_bus::LapicSet;
use std::vec;
use std::vec::Vec;

type L = Lapic<FakeClock, FakeTimer>;

fn abi_chip(gsi: u32, chip: u32, pin: u32) -> IrqRoutingEntryAbi {
    IrqRoutingEntryAbi {
        gsi,
        kind: KVM_IRQ_ROUTING_IRQCHIP,
        u: [chip, pin, 0, 0, 0, 0, 0, 0],
        ..Default::default()
    }
}

fn abi_msi(gsi: u32, addr: u32, data: u32) -> IrqRoutingEntryAbi {
    IrqRoutingEntryAbi {
        gsi,
        kind: KVM_IRQ_ROUTING_MSI,
        u: [addr, 0, data, 0, 0, 0, 0, 0],
        ..Default::default()
    }
}

/// Records what reaches each chip.
#[derive(Default)]
struct Probe {
    pic: Vec<(usize, bool)>,
    ioapic: Vec<(usize, bool)>,
    msi: Vec<ApicMessage>,
    /// Raw messages seen by the probe hook.
    fired: Vec<MsiMessage>,
}

impl IrqChipSet for Probe {
    fn set_pic_irq(&mut self, line: usize, level: bool) -> IrqStatus {
        self.pic.push((line, level));
        IrqStatus::Delivered
    }
    fn set_ioapic_irq(&mut self, pin: usize, level: bool) -> IrqStatus {
        self.ioapic.push((pin, level));
        IrqStatus::Coalesced
    }
    fn deliver_msi(&mut self, msg: &ApicMessage) -> DeliveryOutcome {
        self.msi.push(*msg);
        DeliveryOutcome::Accepted(1)
    }
    fn msi_fired(&mut self, msi: &MsiMessage) {
        self.fired.push(*msi);
    }
}

fn default_router() -> IrqRouter {
    IrqRouter::new(RoutingTable::default_table().unwrap_or_default())
}

#[test]
fn routing_default_table_gsi_0_to_15_reach_pic_and_ioapic_16_to_23_ioapic_only() {
    let t = RoutingTable::default_table().unwrap_or_default();
    assert_eq!(t.entries().len(), 40);
    for gsi in 0..16u32 {
        let r = t.routes(gsi);
        assert_eq!(r.len(), 2, "gsi {gsi}");
        assert!(r.iter().any(|e| e.route
            == Route::Irqchip {
                chip: IrqChip::Ioapic,
                pin: gsi as u8
            }));
        let chip = if gsi < 8 {
            IrqChip::PicMaster
        } else {
            IrqChip::PicSlave
        };
        assert!(r.iter().any(|e| e.route
            == Route::Irqchip {
                chip,
                pin: (gsi % 8) as u8
            }));
    }
    for gsi in 16..24u32 {
        assert_eq!(
            t.routes(gsi),
            &[RoutingEntry {
                gsi,
                route: Route::Irqchip {
                    chip: IrqChip::Ioapic,
                    pin: gsi as u8
                }
            }]
        );
    }
    assert!(t.routes(24).is_empty());
    assert_eq!(t.gsi_for_pin(IrqChip::PicSlave, 4), Some(12));
}

#[test]
fn routing_rejects_gsi_beyond_1023_flags_and_unknown_types() {
    let e = |x| RoutingTable::from_abi(&[x]).err();
    assert_eq!(e(abi_chip(1024, 2, 0)), Some(RoutingError::GsiTooLarge));
    assert_eq!(
        e(IrqRoutingEntryAbi {
            flags: 1,
            ..abi_chip(1, 2, 0)
        }),
        Some(RoutingError::NonZeroFlags)
    );
    assert_eq!(
        e(IrqRoutingEntryAbi {
            kind: 7,
            ..abi_chip(1, 2, 0)
        }),
        Some(RoutingError::UnknownType)
    );
    assert_eq!(e(abi_chip(1, 3, 0)), Some(RoutingError::UnknownChip));
    assert_eq!(e(abi_chip(1, 2, 24)), Some(RoutingError::PinOutOfRange));
    assert_eq!(e(abi_chip(1, 0, 8)), Some(RoutingError::PinOutOfRange));
    assert!(RoutingTable::from_abi(&[abi_chip(1023, 2, 23)]).is_ok());
}

#[test]
fn routing_one_pin_per_chip_per_gsi_and_msi_only_alone() {
    assert_eq!(
        RoutingTable::from_abi(&[abi_chip(5, 2, 5), abi_chip(5, 2, 6)]).err(),
        Some(RoutingError::Duplicate)
    );
    assert_eq!(
        RoutingTable::from_abi(&[abi_msi(30, 0xfee0_0000, 0x40), abi_chip(30, 2, 1)]).err(),
        Some(RoutingError::Duplicate)
    );
    assert_eq!(
        RoutingTable::from_abi(&[
            abi_msi(30, 0xfee0_0000, 0x40),
            abi_msi(30, 0xfee0_0000, 0x41)
        ])
        .err(),
        Some(RoutingError::Duplicate)
    );
    assert!(
        RoutingTable::from_abi(&[abi_chip(5, 2, 5), abi_chip(5, 0, 5), abi_chip(5, 1, 5)]).is_ok()
    );
}

#[test]
fn routing_line_is_or_of_all_sources() {
    let mut r = default_router();
    let mut p = Probe::default();
    let pit = r.request_source_id().unwrap_or(0);
    assert_eq!(pit, 1);
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 20, true, &mut p);
    r.set_irq(pit, 20, true, &mut p);
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 20, false, &mut p);
    assert_eq!(
        p.ioapic.last(),
        Some(&(20, true)),
        "still driven by the second source"
    );
    r.set_irq(pit, 20, false, &mut p);
    assert_eq!(p.ioapic.last(), Some(&(20, false)));
}

#[test]
fn routing_freeing_a_source_forgets_its_levels() {
    let mut r = default_router();
    let mut p = Probe::default();
    let s = r.request_source_id().unwrap_or(0);
    r.set_irq(s, 21, true, &mut p);
    r.free_source_id(s);
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 21, false, &mut p);
    assert_eq!(p.ioapic.last(), Some(&(21, false)));
}

#[test]
fn routing_at_most_64_source_ids_and_userspace_id_is_reserved() {
    let mut r = default_router();
    let ids: Vec<u8> = core::iter::from_fn(|| r.request_source_id()).collect();
    assert_eq!(ids.len(), 63);
    assert!(!ids.contains(&KVM_USERSPACE_IRQ_SOURCE_ID));
    r.free_source_id(KVM_USERSPACE_IRQ_SOURCE_ID);
    r.free_source_id(9);
    assert_eq!(r.request_source_id(), Some(9));
}

#[test]
fn routing_result_is_delivered_if_any_chip_delivered() {
    let mut r = default_router();
    let mut p = Probe::default();
    assert_eq!(
        r.set_irq(0, 3, true, &mut p),
        IrqStatus::Delivered,
        "PIC delivered, IOAPIC coalesced"
    );
    assert_eq!(r.set_irq(0, 17, true, &mut p), IrqStatus::Coalesced);
    assert_eq!(
        r.set_irq(0, 500, true, &mut p),
        IrqStatus::Dropped,
        "unrouted GSI"
    );
}

#[test]
fn routing_msi_decodes_address_and_data_per_sdm_and_only_on_assert() {
    let t = RoutingTable::from_abi(&[abi_msi(40, 0xfee0_3004, 0x0000_c1a5)]).unwrap_or_default();
    let mut r = IrqRouter::new(t);
    let mut p = Probe::default();
    assert_eq!(r.set_irq(0, 40, false, &mut p), IrqStatus::Dropped);
    assert!(p.msi.is_empty());
    r.set_irq(0, 40, true, &mut p);
    assert_eq!(
        p.msi,
        [ApicMessage {
            vector: 0xa5,
            delivery_mode: DeliveryMode::LowestPriority,
            dest_mode: DestMode::Logical,
            trigger: TriggerMode::Level,
            level: true,
            shorthand: Shorthand::None,
            dest_id: 3,
        }]
    );
}

#[test]
fn routing_ack_notifier_fires_for_gsi_of_acked_pin() {
    let mut r = default_router();
    r.register_ack_notifier(0, 77).ok();
    r.register_ack_notifier(5, 78).ok();
    let mut got = Vec::new();
    r.notify_acked(IrqChip::Ioapic, 0, &mut |t| got.push(t));
    r.notify_acked(IrqChip::PicMaster, 0, &mut |t| got.push(t));
    r.notify_acked(IrqChip::PicMaster, 1, &mut |t| got.push(t));
    assert_eq!(got, [77, 77]);
    r.unregister_ack_notifier(77);
    r.notify_acked(IrqChip::Ioapic, 0, &mut |t| got.push(t));
    assert_eq!(got.len(), 2);
    for i in 0..MAX_NOTIFIERS as u32 {
        assert!(r.register_mask_notifier(i, i).is_ok());
    }
    assert_eq!(r.register_mask_notifier(0, 99), Err(NotifierFull));
    let mut m = Vec::new();
    r.fire_mask_notifiers(3, true, &mut |t, masked| m.push((t, masked)));
    assert_eq!(m, [(3, true)]);
}

#[test]
fn end_to_end_msi_reaches_the_addressed_lapic() {
    let clk = FakeClock::new(0);
    let mut cpus: Vec<L> = (0..2)
        .map(|i| {
            let mut l = Lapic::new(LapicConfig::new(i), clk.clone(), FakeTimer::default());
            l.write(0xf0, 0x1ff);
            l
        })
        .collect();
    let mut pic = PicPair::new();
    let mut io = Ioapic::new();
    let t = RoutingTable::from_abi(&[abi_msi(50, 0xfee0_1000, 0x0051)]).unwrap_or_default();
    let mut r = IrqRouter::new(t);
    let mut set = LapicSet(&mut cpus);
    let mut chips = IrqChips {
        pic: &mut pic,
        ioapic: &mut io,
        apics: &mut set,
    };
    assert_eq!(r.set_irq(0, 50, true, &mut chips), IrqStatus::Delivered);
    assert!(cpus[1].irr_has(0x51) && !cpus[0].irr_has(0x51));
}

#[test]
fn end_to_end_pit_tick_through_pic_is_reinjected_after_ack() {
    // PIT channel 0, mode 2, through the default route to PIC IRQ0 (vector
    // base 0x20); the INTA + EOI acks IRQ0, which lets the next tick through.
    let clk = FakeClock::new(1_000);
    let mut pit = Pit::new(clk.clone(), FakeTimer::default());
    let mut pic = PicPair::new();
    let mut io = Ioapic::new();
    let mut cpus: Vec<L> = vec![Lapic::new(
        LapicConfig::new(0),
        clk.clone(),
        FakeTimer::default(),
    )];
    let mut r = default_router();
    let src = r.request_source_id().unwrap_or(1);
    r.register_ack_notifier(0, 1).ok();
    for (port, v) in [(0x20u16, 0x11u8), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        pic.write(port, v);
    }
    pit.write(0x43, 0x34);
    pit.write(0x40, 100);
    pit.write(0x40, 0);
    clk.set(1_000 + 3 * 83_900); // > 3 periods of 100 clocks
    pit.on_timer(clk.get());
    assert_eq!(pit.pending(), 3);
    let mut vectors = Vec::new();
    for _ in 0..5 {
        if pit.take_irq0() {
            let mut set = LapicSet(&mut cpus);
            let mut chips = IrqChips {
                pic: &mut pic,
                ioapic: &mut io,
                apics: &mut set,
            };
            r.set_irq(src, 0, true, &mut chips);
            r.set_irq(src, 0, false, &mut chips);
        }
        if pic.output() && cpus[0].accept_pic_intr() {
            vectors.push(pic.read_irq());
            pic.write(0x20, 0x20);
        }
        let acked = pic.take_acked();
        for line in 0..8u8 {
            if acked & (1 << line) != 0 {
                r.notify_acked(IrqChip::PicMaster, line, &mut |_| pit.ack_irq0());
            }
        }
    }
    assert_eq!(vectors, [0x20, 0x20, 0x20], "three ticks, one at a time");
    assert_eq!(pit.pending(), 0);
}

#[test]
fn end_to_end_level_ioapic_interrupt_redelivered_after_lapic_eoi_while_asserted() {
    let clk = FakeClock::new(0);
    let mut cpus: Vec<L> = vec![Lapic::new(
        LapicConfig::new(0),
        clk.clone(),
        FakeTimer::default(),
    )];
    cpus[0].write(0xf0, 0x1ff);
    let mut pic = PicPair::new();
    let mut io = Ioapic::new();
    let mut r = default_router();
    {
        let mut set = LapicSet(&mut cpus);
        io.write(0, 0x10 + 2 * 19, &mut set);
        io.write(0x10, 0x63 | (1 << 15), &mut set);
        let mut chips = IrqChips {
            pic: &mut pic,
            ioapic: &mut io,
            apics: &mut set,
        };
        r.set_irq(0, 19, true, &mut chips);
    }
    assert_eq!(cpus[0].get_interrupt(), Some(0x63));
    let a = cpus[0].write(0xb0, 0);
    assert_eq!(a, LapicAction::IoapicEoi(0x63));
    {
        let mut set = LapicSet(&mut cpus);
        io.eoi(0x63, TriggerMode::Level, &mut set);
    }
    assert_eq!(
        cpus[0].get_interrupt(),
        Some(0x63),
        "line still high: delivered again"
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Reference: the wire seen by the chip equals the OR of the levels
        /// last driven by each source.
        #[test]
        fn routing_wire_is_or_of_sources(ops in proptest::collection::vec((0u8..4, 0u32..24, any::<bool>()), 1..100)) {
            let mut r = default_router();
            for _ in 0..3 { r.request_source_id(); }
            let mut model = [[false; 4]; 24];
            let mut p = Probe::default();
            for (src, gsi, level) in ops {
                r.set_irq(src, gsi, level, &mut p);
                model[gsi as usize][usize::from(src)] = level;
                let want = model[gsi as usize].iter().any(|&l| l);
                prop_assert_eq!(p.ioapic.last().copied(), Some((gsi as usize, want)));
                if gsi < 16 {
                    prop_assert_eq!(p.pic.last().copied(), Some((gsi as usize, want)));
                }
            }
        }
    }
}

/// kvm_irq_comm.c:kvm_set_msi fires `kvm-msi-set-irq(address_lo, data)`
/// before decoding, only for `level` = 1 (it returns -1 first otherwise).
#[test]
fn msi_probe_hook_sees_the_raw_message_once_per_asserted_msi() {
    let table = RoutingTable::from_abi(&[abi_msi(30, 0xfee0_3004, 0x4041)]).unwrap();
    let mut r = IrqRouter::new(table);
    let mut p = Probe::default();
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 30, false, &mut p);
    assert!(p.fired.is_empty(), "de-assert: no probe");
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 30, true, &mut p);
    assert_eq!(
        p.fired,
        vec![MsiMessage {
            address_lo: 0xfee0_3004,
            address_hi: 0,
            data: 0x4041
        }]
    );
    assert_eq!(p.msi.len(), 1);
    // A pin route does not fire it.
    let mut r = default_router();
    r.set_irq(KVM_USERSPACE_IRQ_SOURCE_ID, 4, true, &mut p);
    assert_eq!(p.fired.len(), 1);
}
