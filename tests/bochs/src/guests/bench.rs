//! Microbenchmarks of the VM exit round trips (issue 8's cost table).
//! Each guest (`asm/bench_*.S`) runs a loop of N operations between two
//! RDTSCs and the same loop without the exiting instruction, and reports
//! both TSC deltas; under Bochs the TSC counts instructions (the guest's
//! and the host's alike), so the difference divided by N is the
//! instructions one round trip costs: exit, the driver's handling (and
//! for an I/O exit the return to the VMM, which answers it and calls
//! KVM_RUN again), entry. Benchmarks print figures and fail only when the
//! guest does not do what it should, never on a threshold.

extern crate alloc;

use alloc::vec::Vec;

use super::vm::{self, End, Event, Limits, Slot};
use super::{MIB, RealDriver, code};
use crate::println;
use crate::vmm::GuestRam;

/// Slot 0: 32 MiB at GPA 0 (2 MiB EPT pages); slot 1: 4 MiB after it,
/// dirty-logged (4 KiB EPT pages), for `bench_ept.S`.
fn slots() -> [Slot; 2] {
    [
        Slot {
            gpa: 0,
            size: 32 * MIB,
            offset: 0,
            log_dirty: false,
        },
        Slot {
            gpa: 32 * MIB,
            size: 4 * MIB,
            offset: 32 * MIB,
            log_dirty: true,
        },
    ]
}

/// One figure: `name`, the index of its pair of measurements among the
/// reported (baseline, measured) pairs, and N.
struct Figure {
    name: &'static str,
    pair: usize,
    n: u32,
}

struct Bench {
    program: &'static [u8],
    figures: &'static [Figure],
    /// Values the guest reports after its timings, which must be these.
    tail: &'static [u32],
    /// OUTs to the benchmark port the VMM must have seen.
    bench_outs: u64,
    /// The guest times the operation first, then the baseline (the EPT
    /// one: the second pass over the same pages is the baseline).
    measured_first: bool,
}

const BENCHES: &[Bench] = &[
    Bench {
        program: code::BENCH_CPUID,
        figures: &[Figure {
            name: "cpuid",
            pair: 0,
            n: code::BENCH_CPUID_N,
        }],
        tail: &[],
        bench_outs: 0,
        measured_first: false,
    },
    Bench {
        program: code::BENCH_IO,
        figures: &[Figure {
            name: "io-out-vmm",
            pair: 0,
            n: code::BENCH_IO_N,
        }],
        tail: &[],
        // The warm-up OUT and N timed ones.
        bench_outs: code::BENCH_IO_N as u64 + 1,
        measured_first: false,
    },
    Bench {
        program: code::BENCH_MMIO,
        figures: &[Figure {
            name: "mmio-ioapic-ioregsel",
            pair: 0,
            n: code::BENCH_MMIO_N,
        }],
        // IOREGSEL reads back the last value written.
        tail: &[0x10],
        bench_outs: 0,
        measured_first: false,
    },
    Bench {
        program: code::BENCH_EPT,
        figures: &[
            Figure {
                name: "ept-first-touch-2m",
                pair: 0,
                n: code::BENCH_EPT_N2M,
            },
            Figure {
                name: "ept-first-touch-4k",
                pair: 1,
                n: code::BENCH_EPT_N4K,
            },
        ],
        tail: &[],
        bench_outs: 0,
        measured_first: true,
    },
    Bench {
        program: code::BENCH_TIMER,
        figures: &[Figure {
            name: "lapic-timer-oneshot",
            pair: 0,
            n: code::BENCH_TIMER_N,
        }],
        // Interrupts taken: the warm-up one and N timed.
        tail: &[code::BENCH_TIMER_N + 1],
        bench_outs: 0,
        measured_first: false,
    },
];

/// Runs every benchmark; returns how many failed.
pub fn run_all(d: &RealDriver, ram: GuestRam) -> usize {
    if ram.size < 36 * MIB {
        println!(
            "bench: FAIL guest RAM is {} MiB, the benchmarks need 36",
            ram.size / MIB
        );
        return 1;
    }
    let mut failed = 0;
    for b in BENCHES {
        let o = vm::run(
            d,
            ram,
            &slots(),
            b.program,
            Limits {
                budget: 400_000_000,
                idle_returns: 0,
            },
        );
        match measure(b, &o) {
            Ok(figures) => {
                for (f, per_op) in b.figures.iter().zip(figures) {
                    println!("bench: {} {per_op} insns/op (n={})", f.name, f.n);
                }
            }
            Err(why) => {
                failed += 1;
                for f in b.figures {
                    println!("bench: {} FAIL {why}", f.name);
                }
            }
        }
        crate::check_vmm_leaks(d);
    }
    failed
}

/// Why a benchmark has no figure.
enum Broken {
    NotDone(End, usize),
    Event(Event),
    Count(usize, usize),
    Tail,
    BenchOuts(u64, u64),
}

impl core::fmt::Display for Broken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Broken::NotDone(end, n) => {
                write!(f, "the guest did not finish: {end} after {n} events")
            }
            Broken::Event(e) => write!(f, "unexpected event {e:?}"),
            Broken::Count(got, want) => write!(f, "{got} values reported, expected {want}"),
            Broken::Tail => write!(f, "wrong values after the timings"),
            Broken::BenchOuts(got, want) => {
                write!(f, "{got} OUTs to the benchmark port, expected {want}")
            }
        }
    }
}

/// The per-operation figures of `b` from its reports.
fn measure(b: &Bench, o: &vm::Outcome) -> Result<Vec<u64>, Broken> {
    if o.end != End::Done {
        return Err(Broken::NotDone(o.end, o.events.len()));
    }
    let mut vals = Vec::new();
    for e in &o.events {
        match e {
            Event::Val(v) => vals.push(*v),
            other => return Err(Broken::Event(*other)),
        }
    }
    let pairs = b.figures.len();
    if vals.len() != 4 * pairs + b.tail.len() {
        return Err(Broken::Count(vals.len(), 4 * pairs + b.tail.len()));
    }
    let tsc = |i: usize| -> u64 {
        let lo = vals.get(i).copied().unwrap_or(0);
        let hi = vals.get(i + 1).copied().unwrap_or(0);
        u64::from(lo) | u64::from(hi) << 32
    };
    let tail = vals.get(4 * pairs..).unwrap_or(&[]);
    if tail != b.tail {
        println!(
            "bench: reported {tail:x?} after the timings, expected {:x?}",
            b.tail
        );
        return Err(Broken::Tail);
    }
    if o.bench_outs != b.bench_outs {
        return Err(Broken::BenchOuts(o.bench_outs, b.bench_outs));
    }
    let mut out = Vec::new();
    for f in b.figures {
        let (a, c) = (tsc(4 * f.pair), tsc(4 * f.pair + 2));
        let (base, measured) = if b.measured_first { (c, a) } else { (a, c) };
        out.push(measured.saturating_sub(base) / u64::from(f.n.max(1)));
    }
    Ok(out)
}
