//! Prints the cost of the device hot paths (issue 5 acceptance):
//! LAPIC EOI, ICR IPI send, IOAPIC set_irq → LAPIC accept, PIC INTA.
//! Run with `cargo bench -p kvm-devices`.

use std::hint::black_box;
use std::time::Instant;

use kvm_devices::apic_bus::TriggerMode;
use kvm_devices::clock::{Clock, Timer};
use kvm_devices::i8259::PicPair;
use kvm_devices::ioapic::Ioapic;
use kvm_devices::lapic::{Lapic, LapicAction, LapicConfig};
use kvm_devices::lapic_bus::{LapicSet, deliver};

#[derive(Clone, Copy)]
struct Clk;
impl Clock for Clk {
    fn now_ns(&self) -> u64 {
        0
    }
}

struct NoTimer;
impl Timer for NoTimer {
    fn arm(&mut self, _deadline_ns: u64) {}
    fn cancel(&mut self) {}
}

const N: u32 = 2_000_000;

fn lapics(n: u32) -> Vec<Lapic<Clk, NoTimer>> {
    (0..n)
        .map(|i| {
            let mut l = Lapic::new(LapicConfig::new(i), Clk, NoTimer);
            l.write(0xf0, 0x1ff);
            l
        })
        .collect()
}

/// Prints and returns the cost in picoseconds per operation (integers only:
/// the workspace denies float arithmetic).
fn time(name: &str, mut f: impl FnMut(u32)) -> u128 {
    for i in 0..N / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..N {
        f(black_box(i));
    }
    let ps = t.elapsed().as_nanos() * 1000 / u128::from(N);
    report(name, ps);
    ps
}

fn report(name: &str, ps: u128) {
    println!("{name:<56} {:>6}.{} ns/op", ps / 1000, (ps % 1000) / 100);
}

fn main() {
    // LAPIC EOI: nest 12 vectors (one per priority class) in service
    // untimed, then time the 12 EOIs that retire them.
    let mut v = lapics(1);
    let mut total = std::time::Duration::ZERO;
    let batches = N / 12;
    for _ in 0..batches {
        for class in 4..16u8 {
            v[0].accept(&kvm_devices::apic_bus::ApicMessage::fixed(class << 4, 0));
            black_box(v[0].get_interrupt());
        }
        let t = Instant::now();
        for _ in 0..12 {
            black_box(v[0].write(0xb0, 0));
        }
        total += t.elapsed();
    }
    report(
        "LAPIC EOI (12 nested in service)",
        total.as_nanos() * 1000 / u128::from(batches * 12),
    );

    let mut v = lapics(4);
    v[2].write(0x80, 0);
    time(
        "ICR write → IPI delivered to 1 of 4 LAPICs (+ack/EOI)",
        |i| {
            let vec = 0x40 + (i % 0x80) as u8;
            v[0].write(0x310, 2 << 24);
            if let LapicAction::SendIpi(m) = v[0].write(0x300, u32::from(vec)) {
                deliver(&mut v, Some(0), &m);
            }
            black_box(v[2].get_interrupt());
            v[2].write(0xb0, 0);
        },
    );

    let mut v = lapics(4);
    let mut io = Ioapic::new();
    {
        let mut s = LapicSet(&mut v);
        io.write(0, 0x10 + 2 * 9, &mut s);
        io.write(0x10, 0x59 | (1 << 15), &mut s);
        io.write(0, 0x11 + 2 * 9, &mut s);
        io.write(0x10, 1 << 24, &mut s);
    }
    time(
        "IOAPIC set_irq (level) → LAPIC accept → EOI → IOAPIC",
        |_| {
            {
                let mut s = LapicSet(&mut v);
                io.set_irq(9, true, &mut s);
                io.set_irq(9, false, &mut s);
            }
            black_box(v[1].get_interrupt());
            if let LapicAction::IoapicEoi(vec) = v[1].write(0xb0, 0) {
                let mut s = LapicSet(&mut v);
                io.eoi(vec, TriggerMode::Level, &mut s);
            }
        },
    );

    let mut pic = PicPair::new();
    for (port, val) in [(0x20u16, 0x11u8), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        pic.write(port, val);
    }
    time("PIC edge IRQ1 + INTA (read_irq) + EOI", |_| {
        pic.set_irq(1, true);
        pic.set_irq(1, false);
        black_box(pic.read_irq());
        pic.write(0x20, 0x20);
    });
}
