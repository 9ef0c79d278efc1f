//! 8254 tests, each named after the datasheet rule it checks. Time is a
//! fake clock; `at(d)` is the first nanosecond at which `d` input clocks
//! (1.193181 MHz) have elapsed since the count was loaded.

use super::*;
use crate::clock::fake::{FakeClock, FakeTimer};

const T0: u64 = 5_000_000_000;

fn ns(d: u64) -> u64 {
    muldiv_ceil(d, NSEC_PER_SEC, PIT_FREQ_HZ)
}

fn new_pit() -> (Pit<FakeClock, FakeTimer>, FakeClock) {
    let clk = FakeClock::new(T0);
    (Pit::new(clk.clone(), FakeTimer::default()), clk)
}

/// Program counter `ch` with `mode`, LSB+MSB access, binary, count `n`.
fn program(p: &mut Pit<FakeClock, FakeTimer>, ch: u8, mode: u8, n: u16) {
    p.write(0x43, (ch << 6) | 0x30 | (mode << 1));
    let [lo, hi] = n.to_le_bytes();
    p.write(0x40 + u16::from(ch), lo);
    p.write(0x40 + u16::from(ch), hi);
}

fn read_word(p: &mut Pit<FakeClock, FakeTimer>, ch: u16) -> u16 {
    let lo = p.read(0x40 + ch);
    let hi = p.read(0x40 + ch);
    u16::from_le_bytes([lo, hi])
}

/// OUT of counter `ch` after `d` clocks since `load`.
fn out_at(p: &Pit<FakeClock, FakeTimer>, clk: &FakeClock, load: u64, ch: usize, d: u64) -> bool {
    clk.set(load + ns(d));
    p.out(ch)
}

#[test]
fn pit_mode0_out_low_after_control_word_and_until_terminal_count_then_high() {
    let (mut p, clk) = new_pit();
    p.write(0x43, 0x30);
    assert!(!p.out(0), "mode 0: OUT low after the control word");
    program(&mut p, 0, 0, 100);
    for d in [0, 1, 50, 99] {
        assert!(!out_at(&p, &clk, T0, 0, d), "low at {d}");
    }
    for d in [100, 101, 5000, 70_000] {
        assert!(out_at(&p, &clk, T0, 0, d), "high at {d}");
    }
}

#[test]
fn pit_mode0_one_shot_fires_exactly_once_at_terminal_count() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 0, 1000);
    assert_eq!(p.timer().deadline, Some(T0 + ns(1000)));
    clk.set(T0 + ns(1000) - 1);
    assert!(!p.on_timer(clk.get()), "an early callback counts nothing");
    clk.set(T0 + ns(1000));
    assert!(p.on_timer(clk.get()));
    assert_eq!(p.pending(), 1);
    assert_eq!(p.timer().deadline, None, "one-shot: not re-armed");
    clk.set(T0 + ns(10_000));
    p.on_timer(clk.get());
    assert_eq!(p.pending(), 1);
}

#[test]
fn pit_poll_timer_counts_the_terminal_count_only_once_it_is_reached() {
    // 8254 mode 0: OUT (IRQ0) rises at terminal count, N clocks after load.
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 0, 1000);
    clk.set(T0 + ns(1000) - 1);
    assert!(!p.poll_timer());
    assert_eq!(p.pending(), 0);
    clk.set(T0 + ns(1000));
    assert!(p.poll_timer());
    assert_eq!(p.pending(), 1);
    clk.set(T0 + ns(5000));
    assert!(!p.poll_timer(), "mode 0 fires once");
    assert_eq!(p.pending(), 1);
}

#[test]
fn pit_mode1_waits_for_gate_trigger_then_out_low_for_n_clocks() {
    let (mut p, clk) = new_pit();
    program(&mut p, 2, 1, 10);
    assert!(p.out(2), "mode 1: OUT high before the trigger");
    clk.advance(1_000_000);
    assert!(p.out(2));
    let trig = clk.get();
    p.write(0x61, 1); // GATE2 rising edge
    assert!(!out_at(&p, &clk, trig, 2, 0));
    assert!(!out_at(&p, &clk, trig, 2, 9));
    assert!(out_at(&p, &clk, trig, 2, 10));
    // Retrigger restarts the one-shot.
    p.write(0x61, 0);
    let trig2 = clk.get();
    p.write(0x61, 1);
    assert!(!out_at(&p, &clk, trig2, 2, 5));
}

#[test]
fn pit_mode1_on_counter0_fires_once() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 1, 300);
    clk.set(T0 + ns(300));
    p.on_timer(clk.get());
    assert_eq!(p.pending(), 1);
    assert_eq!(p.timer().deadline, None);
}

#[test]
fn pit_mode2_out_low_for_one_clock_when_count_reaches_one_and_repeats() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 10);
    for period in 0..3u64 {
        for i in 0..10u64 {
            let d = period * 10 + i;
            assert_eq!(out_at(&p, &clk, T0, 0, d), i != 9, "d={d}");
        }
    }
}

#[test]
fn pit_mode2_interrupts_every_n_clocks() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 1193);
    for k in 1..=5u64 {
        assert_eq!(p.timer().deadline, Some(T0 + ns(k * 1193)));
        clk.set(T0 + ns(k * 1193));
        p.on_timer(clk.get());
        assert_eq!(p.pending(), k);
    }
}

#[test]
fn pit_mode3_square_wave_high_half_low_half_even_count() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 3, 10);
    for d in 0..20u64 {
        assert_eq!(out_at(&p, &clk, T0, 0, d), d % 10 < 5, "d={d}");
    }
}

#[test]
fn pit_mode3_odd_count_high_for_n_plus_1_over_2() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 3, 5);
    let w: std::vec::Vec<bool> = (0..5).map(|d| out_at(&p, &clk, T0, 0, d)).collect();
    assert_eq!(w, [true, true, true, false, false]);
}

#[test]
fn pit_mode3_counter_decrements_by_two() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 3, 100);
    clk.set(T0 + ns(10));
    assert_eq!(read_word(&mut p, 0), 80);
}

#[test]
fn pit_mode4_strobe_low_for_one_clock_at_terminal_count_and_fires_once() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 4, 50);
    for d in [0, 49, 51, 500] {
        assert!(out_at(&p, &clk, T0, 0, d), "d={d}");
    }
    assert!(!out_at(&p, &clk, T0, 0, 50));
    clk.set(T0 + ns(50));
    p.on_timer(clk.get());
    assert_eq!(p.pending(), 1);
    assert_eq!(p.timer().deadline, None);
}

#[test]
fn pit_mode5_hardware_strobe_counts_from_gate_trigger() {
    let (mut p, clk) = new_pit();
    program(&mut p, 2, 5, 20);
    clk.advance(777);
    assert!(p.out(2));
    let trig = clk.get();
    p.write(0x61, 1);
    assert!(out_at(&p, &clk, trig, 2, 19));
    assert!(!out_at(&p, &clk, trig, 2, 20));
    assert!(out_at(&p, &clk, trig, 2, 21));
}

#[test]
fn pit_modes_6_and_7_alias_2_and_3() {
    let (mut p, _clk) = new_pit();
    program(&mut p, 1, 6, 10);
    program(&mut p, 2, 7, 10);
    p.write(0x43, 0xc0 | 0x20 | 0x04 | 0x08); // read-back status of 1 and 2
    assert_eq!((p.read(0x41) >> 1) & 7, 2);
    assert_eq!((p.read(0x42) >> 1) & 7, 3);
}

#[test]
fn pit_gate_low_holds_mode2_with_out_high_and_rising_edge_reloads() {
    let (mut p, clk) = new_pit();
    p.write(0x61, 1);
    program(&mut p, 2, 2, 10);
    let load = clk.get();
    assert!(!out_at(&p, &clk, load, 2, 9));
    p.write(0x61, 0);
    assert!(p.out(2), "GATE low forces OUT high in mode 2");
    clk.advance(ns(3));
    let trig = clk.get();
    p.write(0x61, 1);
    assert!(out_at(&p, &clk, trig, 2, 8));
    assert!(
        !out_at(&p, &clk, trig, 2, 9),
        "counting restarted at the rising edge"
    );
}

#[test]
fn pit_mode0_gate_low_suspends_counting_and_high_resumes() {
    let (mut p, clk) = new_pit();
    p.write(0x61, 1);
    program(&mut p, 2, 0, 100);
    let load = clk.get();
    clk.set(load + ns(30));
    p.write(0x61, 0);
    clk.advance(ns(5000));
    assert_eq!(read_word(&mut p, 2), 70, "no counting while GATE is low");
    assert!(!p.out(2));
    let st = p.save();
    let mut q = Pit::new(clk.clone(), FakeTimer::default());
    q.restore(&st);
    assert_eq!(q.save(), st, "a suspended counter survives save/restore");
    let resume = clk.get();
    p.write(0x61, 1);
    assert!(!out_at(&p, &clk, resume, 2, 69));
    assert!(out_at(&p, &clk, resume, 2, 70));
}

#[test]
fn pit_mode0_count_written_with_gate_low_waits_for_gate() {
    let (mut p, clk) = new_pit();
    program(&mut p, 2, 0, 10);
    clk.advance(ns(1000));
    assert_eq!(read_word(&mut p, 2), 10);
    let start = clk.get();
    p.write(0x61, 1);
    assert!(!out_at(&p, &clk, start, 2, 9));
    assert!(out_at(&p, &clk, start, 2, 10));
}

#[test]
fn pit_port_61_reports_gate2_speaker_and_out2() {
    let (mut p, clk) = new_pit();
    p.write(0x61, 3);
    program(&mut p, 2, 0, 10);
    let load = clk.get();
    clk.set(load + ns(5));
    assert_eq!(p.read(0x61) & 0x23, 0x03);
    clk.set(load + ns(10));
    assert_eq!(p.read(0x61) & 0x23, 0x23, "bit 5 is OUT2");
}

#[test]
fn pit_initial_count_zero_means_65536_binary() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 0);
    assert_eq!(p.timer().deadline, Some(T0 + ns(65_536)));
    clk.set(T0 + ns(1));
    assert_eq!(read_word(&mut p, 0), 65_535);
}

#[test]
fn pit_bcd_counts_in_decimal_and_zero_means_10000() {
    let (mut p, clk) = new_pit();
    p.write(0x43, 0x31); // counter 0, LSB+MSB, mode 0, BCD
    p.write(0x40, 0x00);
    p.write(0x40, 0x01); // 0100 BCD = 100
    clk.set(T0 + ns(11));
    assert_eq!(read_word(&mut p, 0), 0x0089);
    assert_eq!(p.timer().deadline, Some(T0 + ns(100)));
    p.write(0x43, 0x35); // mode 2, BCD
    p.write(0x40, 0);
    p.write(0x40, 0);
    let load = clk.get();
    assert_eq!(p.timer().deadline, Some(load + ns(10_000)));
}

#[test]
fn pit_bcd_mode0_wraps_to_9999_after_terminal_count() {
    let (mut p, clk) = new_pit();
    p.write(0x43, 0x31);
    p.write(0x40, 0x05);
    p.write(0x40, 0x00);
    clk.set(T0 + ns(6));
    assert_eq!(read_word(&mut p, 0), 0x9999);
}

#[test]
fn pit_binary_mode0_wraps_to_ffff_after_terminal_count() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 0, 5);
    clk.set(T0 + ns(6));
    assert_eq!(read_word(&mut p, 0), 0xffff);
}

#[test]
fn pit_lsb_only_and_msb_only_access() {
    let (mut p, clk) = new_pit();
    p.write(0x43, 0x54); // counter 1, LSB only, mode 2
    p.write(0x41, 0x34);
    assert_eq!(p.read(0x41), 0x34);
    p.write(0x43, 0x64); // counter 1, MSB only, mode 2
    p.write(0x41, 0x12);
    let load = clk.get();
    clk.set(load + ns(0x100));
    assert_eq!(p.read(0x41), 0x11, "MSB of 0x1100 after 0x100 clocks");
}

#[test]
fn pit_counter_latch_freezes_value_until_read_and_ignores_second_latch() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 1000);
    clk.set(T0 + ns(100));
    p.write(0x43, 0x00); // latch counter 0
    clk.set(T0 + ns(300));
    p.write(0x43, 0x00); // ignored: previous latch unread
    assert_eq!(p.read(0x40), (900u16 & 0xff) as u8);
    clk.set(T0 + ns(400));
    assert_eq!(
        p.read(0x40),
        (900u16 >> 8) as u8,
        "MSB of the latched value"
    );
    assert_eq!(read_word(&mut p, 0), 600, "latch released after both bytes");
}

#[test]
fn pit_read_back_status_byte_and_status_before_count() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 0, 100);
    clk.set(T0 + ns(40));
    p.write(0x43, 0xc2); // read-back count and status of counter 0
    // OUT=0, NULL COUNT=0, RW=3, mode 0, binary.
    assert_eq!(p.read(0x40), 0x30);
    assert_eq!(read_word(&mut p, 0), 60);
    clk.set(T0 + ns(100));
    p.write(0x43, 0xe2); // status only
    assert_eq!(p.read(0x40), 0xb0, "OUT high after terminal count");
}

#[test]
fn pit_status_null_count_set_between_control_word_and_count() {
    let (mut p, _clk) = new_pit();
    p.write(0x43, 0x34);
    p.write(0x43, 0xe2);
    assert_eq!(p.read(0x40) & 0x40, 0x40);
    p.write(0x40, 1);
    p.write(0x40, 0);
    p.write(0x43, 0xe2);
    assert_eq!(p.read(0x40) & 0x40, 0);
}

#[test]
fn pit_control_word_stops_counter0_until_new_count() {
    let (mut p, _clk) = new_pit();
    program(&mut p, 0, 2, 100);
    assert!(p.timer().deadline.is_some());
    p.write(0x43, 0x34);
    assert_eq!(p.timer().deadline, None);
}

#[test]
fn pit_no_drift_over_one_million_periods() {
    // 1193 clocks ≈ 999.85 µs is not a whole number of ns: a per-period
    // rounded deadline would drift. Jump straight to the millionth period.
    let (mut p, clk) = new_pit();
    let n = 1193u64;
    program(&mut p, 0, 2, n as u16);
    let k = 1_000_000u64;
    let exact = T0 + muldiv_ceil(k * n, NSEC_PER_SEC, PIT_FREQ_HZ);
    clk.set(exact - 1);
    p.on_timer(clk.get());
    assert_eq!(p.pending(), k - 1);
    assert_eq!(p.timer().deadline, Some(exact));
    clk.set(exact);
    p.on_timer(clk.get());
    assert_eq!(p.pending(), k);
}

#[test]
fn pit_without_reinjection_late_ticks_collapse_into_one() {
    let (mut p, clk) = new_pit();
    p.set_reinject(false);
    program(&mut p, 0, 2, 100);
    clk.set(T0 + ns(1000));
    p.on_timer(clk.get());
    assert_eq!(p.pending(), 1);
}

#[test]
fn pit_irq0_pulses_one_at_a_time_until_acknowledged() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 100);
    clk.set(T0 + ns(300));
    p.on_timer(clk.get());
    assert_eq!(p.pending(), 3);
    assert!(p.has_pending_timer());
    assert!(p.take_irq0());
    assert!(!p.has_pending_timer(), "waiting for the ack");
    assert!(!p.take_irq0(), "no second pulse before the ack");
    p.ack_irq0();
    assert_eq!(p.pending(), 2);
    assert!(p.take_irq0());
    p.mask_irq0(true);
    assert_eq!(p.pending(), 0);
    assert!(!p.take_irq0());
}

#[test]
fn pit_hpet_legacy_flag_silences_counter0() {
    let (mut p, _clk) = new_pit();
    let mut st = p.save();
    st.flags = PIT_FLAGS_HPET_LEGACY;
    p.restore(&st);
    program(&mut p, 0, 2, 100);
    assert_eq!(p.timer().deadline, None);
}

#[test]
fn pit_state_is_112_bytes_and_save_restore_is_identity_and_keeps_phase() {
    let (mut p, clk) = new_pit();
    program(&mut p, 0, 2, 1000);
    program(&mut p, 2, 3, 77);
    p.write(0x43, 0x00);
    clk.set(T0 + ns(2500));
    p.on_timer(clk.get());
    let st = p.save();
    let (mut q, _c2) = (Pit::new(clk.clone(), FakeTimer::default()), ());
    q.restore(&st);
    assert_eq!(q.save(), st);
    assert_eq!(
        q.timer().deadline,
        Some(T0 + ns(3000)),
        "next tick at the original phase"
    );
    assert_eq!(q.read(0x40), p.read(0x40), "latched count survives");
    assert_eq!(q.out(2), p.out(2));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Write(u16, u8),
        Read(u16),
        Advance(u64),
        Fire,
        Inject,
        SaveRestore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                prop_oneof![
                    Just(0x40u16),
                    Just(0x41),
                    Just(0x42),
                    Just(0x43),
                    Just(0x61)
                ],
                any::<u8>()
            )
                .prop_map(|(p, v)| Op::Write(p, v)),
            prop_oneof![
                Just(0x40u16),
                Just(0x41),
                Just(0x42),
                Just(0x43),
                Just(0x61)
            ]
            .prop_map(Op::Read),
            (0..50_000_000u64).prop_map(Op::Advance),
            Just(Op::Fire),
            Just(Op::Inject),
            Just(Op::SaveRestore),
        ]
    }

    proptest! {
        /// Reference: counter 0 in mode 2 with count N raises exactly
        /// floor(elapsed clocks / N) interrupts, whatever else happens on the
        /// other counters and however the callbacks are batched.
        #[test]
        fn pit_counter0_periodic_count_matches_reference(n in 2u16..5000, ops in proptest::collection::vec(op(), 1..60)) {
            let (mut p, clk) = new_pit();
            program(&mut p, 0, 2, n);
            let mut delivered = 0u64;
            for o in ops {
                match o {
                    Op::Write(port, v) => if port != 0x40 && (port != 0x43 || v >> 6 != 0) { p.write(port, v) },
                    Op::Read(port) => { p.read(port); }
                    Op::Advance(d) => clk.advance(d),
                    Op::Fire => { p.on_timer(clk.get()); }
                    Op::Inject => if p.take_irq0() { delivered += 1; p.ack_irq0(); },
                    Op::SaveRestore => {
                        let st = p.save();
                        // Save counted everything due; the backlog is the
                        // caller's to inject before the state moves.
                        delivered += p.pending();
                        let mut q = Pit::new(clk.clone(), FakeTimer::default());
                        q.restore(&st);
                        prop_assert_eq!(q.save(), st);
                        p = q;
                    }
                }
            }
            p.on_timer(clk.get());
            let expected = muldiv(clk.get() - T0, PIT_FREQ_HZ, NSEC_PER_SEC) / u64::from(n);
            prop_assert_eq!(delivered + p.pending(), expected);
        }

        #[test]
        fn pit_random_port_traffic_never_panics(ops in proptest::collection::vec(op(), 1..100)) {
            let (mut p, clk) = new_pit();
            for o in ops {
                match o {
                    Op::Write(port, v) => p.write(port, v),
                    Op::Read(port) => { p.read(port); }
                    Op::Advance(d) => clk.advance(d),
                    Op::Fire => { p.on_timer(clk.get()); }
                    Op::Inject => if p.take_irq0() { p.ack_irq0(); },
                    Op::SaveRestore => {
                        let st = p.save();
                        let mut q = Pit::new(clk.clone(), FakeTimer::default());
                        q.restore(&st);
                        prop_assert_eq!(q.save(), st);
                        p = q;
                    }
                }
            }
        }
    }
}
