//! The harness' own guests (issue 8): small programs (`asm/*.S`,
//! assembled offline into `code.rs`) that misbehave the ways a guest can,
//! each run in its own VM through the ioctl dispatcher under the real VMX
//! seam (`kvm::vm::vmx::RealVmx`, as `make kut`), and microbenchmarks of
//! the VM exit round trips. Each robustness guest has the result a PC
//! would give — a triple fault is KVM_EXIT_SHUTDOWN, an access to a GPA
//! nobody claims is KVM_EXIT_MMIO, an unknown MSR is #GP, a VMX
//! instruction is #UD, ... — and after each the VM is destroyed and
//! nothing may be left behind.
//!
//! `mode=guests` (`make bochs-guests`) runs the robustness guests, then
//! the benchmarks; `mode=bench` (`make bochs-bench`) only the benchmarks.
//! One line per guest, `guest: <name> PASS|FAIL|XFAIL|XPASS <detail>`,
//! one per benchmark, `bench: <name> <n> insns/op (n=<N>)`, and last
//! `RESULT: PASS` or `RESULT: FAIL: <why>`.

mod bench;
mod code;
mod vm;

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use kvm_ioctl::abi::KVM_MP_STATE_HALTED;
use vm::{End, Event, Limits, Slot};

use crate::vmm::{BareDriver, GuestRam};
use crate::{platform, power, println};

const MIB: u64 = 1 << 20;

/// Guests that fail because of a driver bug (see tests/bochs/README.md):
/// name and reason. They print XFAIL and do not fail the run; one that
/// passes prints XPASS and does, so the list gets updated.
const KNOWN_FAILING: &[(&str, &str)] = &[];

/// The driver under the real VMX seam, as `make kut` builds it.
pub type RealDriver = BareDriver<platform::timers::BareSeam>;

fn driver() -> RealDriver {
    let seam = platform::timers::BareSeam(kvm::vm::vmx::RealVmx::new(
        platform::vmx_host::BareVmxHost::new(),
    ));
    BareDriver::new(
        platform::ioctl::BarePlatform::new(),
        kvm::vm::VmBackend::with_vmx(platform::services::BareServices::new(), seam),
    )
}

/// `mode=guests` (robustness guests and benchmarks) or `mode=bench`.
pub fn run(mode: &str, ram: Option<GuestRam>) -> ! {
    let Some(ram) = ram else {
        power::fail("no guest RAM for the guests");
    };
    // Pages in use before any VM (the VMXON region): after the last VM is
    // gone the count must be back to this.
    let pages_before = crate::pages::in_use();
    let d = driver();
    let mut failed = 0usize;
    let mut ran = 0usize;
    if mode == "guests" {
        for g in guests() {
            ran += 1;
            if !run_guest(&d, ram, &g) {
                failed += 1;
            }
        }
        println!("guests: {ran} run, {failed} failed");
    }
    let bench_failed = bench::run_all(&d, ram);
    // Every VM is gone: so must be every page the driver took.
    let pages = crate::pages::in_use();
    if pages != pages_before {
        println!("guests: {pages} pages in use after the last VM, {pages_before} before the first");
        failed += 1;
    } else {
        println!(
            "pages: every page the VMs took returned to the allocator ({pages} in use: VMXON)"
        );
    }
    if failed == 0 && bench_failed == 0 {
        println!("RESULT: PASS");
    } else {
        println!("RESULT: FAIL: {failed} guests and {bench_failed} benchmarks failed");
    }
    power::shutdown()
}

/// One robustness guest and what a PC does with it.
struct Guest {
    name: &'static str,
    program: &'static [u8],
    limits: Limits,
    /// The events the VMM must see, in order.
    events: Vec<Event>,
    end: End,
    /// KVM_GET_MP_STATE after the run, when it matters.
    mp_state: Option<u32>,
    /// The guest's RIP after the run, when it matters.
    rip: Option<u64>,
}

/// A guest that ends on its own is stopped after this many instructions.
const BUDGET: u64 = 20_000_000;

fn limits() -> Limits {
    Limits {
        budget: BUDGET,
        idle_returns: 0,
    }
}

/// Slot 0: the first 16 MiB of guest RAM at GPA 0.
fn low_ram() -> [Slot; 1] {
    [Slot {
        gpa: 0,
        size: 16 * MIB,
        offset: 0,
        log_dirty: false,
    }]
}

fn exc(vector: u32, eip: u32) -> Event {
    Event::Exc {
        vector,
        error: 0,
        eip,
    }
}

fn io(port: u16, size: u8, out: bool, value: u32) -> Event {
    Event::Io {
        port,
        size,
        out,
        value,
    }
}

fn mmio(gpa: u64, len: u32, write: bool, value: u64) -> Event {
    Event::Mmio {
        gpa,
        len,
        write,
        value,
    }
}

/// #GP and #UD.
const GP: u32 = 13;
const UD: u32 = 6;
/// -KVM_ENOSYS (kvm_para.h: KVM_ENOSYS = 1000) as the 32-bit guest sees
/// RAX.
const MINUS_KVM_ENOSYS: u32 = 1000u32.wrapping_neg();

fn guests() -> Vec<Guest> {
    let mmio_base: u64 = 0x4000_0000;
    let in1 = vm::in_answer(0x0123) & 0xff;
    let in2 = vm::in_answer(0x4567) & 0xffff;
    let in4 = vm::in_answer(0x99);
    let ins = vm::in_answer(0x4444) & 0xffff;
    let m1 = vm::mmio_answer(mmio_base + 0x301, 1);
    let m2 = vm::mmio_answer(mmio_base + 0x402, 2);
    let m4 = vm::mmio_answer(mmio_base + 0x504, 4);
    vec![
        Guest {
            name: "triple-fault",
            program: code::TRIPLE_FAULT,
            limits: limits(),
            events: vec![Event::Val(0x7f1e_0001)],
            end: End::Shutdown,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "unmapped-gpa",
            program: code::MMIO,
            limits: limits(),
            events: vec![
                mmio(mmio_base, 1, true, 0x5a),
                mmio(mmio_base + 0x102, 2, true, 0xbeef),
                mmio(mmio_base + 0x204, 4, true, 0xdead_beef),
                mmio(mmio_base + 0x301, 1, false, m1),
                Event::Val(m1 as u32),
                mmio(mmio_base + 0x402, 2, false, m2),
                Event::Val(m2 as u32),
                mmio(mmio_base + 0x504, 4, false, m4),
                Event::Val(m4 as u32),
            ],
            end: End::Done,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "unknown-msr",
            program: code::MSR,
            limits: limits(),
            events: vec![
                Event::Val(vm::APIC_BASE as u32),
                exc(GP, code::MSR_RDMSR),
                exc(GP, code::MSR_WRMSR),
                exc(GP, code::MSR_RDMSR_AMD),
                exc(GP, code::MSR_RDMSR_X2APIC),
                Event::Val(0x600d),
            ],
            end: End::Done,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "ports",
            program: code::PORTS,
            limits: limits(),
            events: vec![
                io(0x77, 1, true, 0x5a),
                io(0x1234, 2, true, 0xbeef),
                io(0xabcd, 4, true, 0xdead_beef),
                io(0x0123, 1, false, in1),
                Event::Val(in1),
                io(0x4567, 2, false, in2),
                Event::Val(in2),
                io(0x99, 4, false, in4),
                Event::Val(in4),
                io(0x3333, 1, true, u32::from(b'a')),
                io(0x3333, 1, true, u32::from(b'b')),
                io(0x3333, 1, true, u32::from(b'c')),
                io(0x3333, 1, true, u32::from(b'd')),
                io(0x4444, 2, false, ins),
                io(0x4444, 2, false, ins),
                Event::Val(ins | ins << 16),
            ],
            end: End::Done,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "vmx-instructions",
            program: code::VMX,
            limits: limits(),
            events: vec![
                exc(UD, code::VMX_VMXON),
                exc(UD, code::VMX_VMCLEAR),
                exc(UD, code::VMX_VMPTRLD),
                exc(UD, code::VMX_VMPTRST),
                exc(UD, code::VMX_VMREAD),
                exc(UD, code::VMX_VMWRITE),
                exc(UD, code::VMX_VMLAUNCH),
                exc(UD, code::VMX_VMRESUME),
                exc(UD, code::VMX_VMXOFF),
                exc(UD, code::VMX_INVEPT),
                exc(UD, code::VMX_INVVPID),
                Event::Val(0x600d),
            ],
            end: End::Done,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "vmcall",
            program: code::VMCALL,
            limits: limits(),
            events: vec![Event::Val(MINUS_KVM_ENOSYS), Event::Val(0)],
            end: End::Done,
            mp_state: None,
            rip: None,
        },
        Guest {
            name: "hlt-cli",
            program: code::HLT,
            limits: Limits {
                budget: BUDGET,
                idle_returns: 3,
            },
            events: vec![Event::Val(0x4a17)],
            end: End::Idle(3),
            mp_state: Some(KVM_MP_STATE_HALTED),
            // Halted after the HLT, as the CPU is.
            rip: Some(u64::from(code::HLT_HLT) + 1),
        },
    ]
}

/// Why a guest failed.
enum Mismatch {
    Event {
        index: usize,
        want: Event,
        got: Option<Event>,
        end: End,
    },
    Extra {
        index: usize,
        got: Event,
    },
    End {
        got: End,
        want: End,
    },
    MpState {
        got: Option<u32>,
        want: u32,
    },
    Rip {
        got: Option<u64>,
        want: u64,
    },
    Leak {
        minors: u32,
        tables: usize,
        blocks: usize,
        kstats: usize,
        timers: usize,
    },
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mismatch::Event {
                index,
                want,
                got: Some(got),
                ..
            } => write!(f, "event {index}: expected {want:?}, got {got:?}"),
            Mismatch::Event {
                index,
                want,
                got: None,
                end,
            } => write!(
                f,
                "event {index}: expected {want:?}, got none (run ended: {end})"
            ),
            Mismatch::Extra { index, got } => write!(f, "unexpected event {index}: {got:?}"),
            Mismatch::End { got, want } => write!(f, "run ended: {got}; expected: {want}"),
            Mismatch::MpState { got, want } => {
                write!(f, "KVM_GET_MP_STATE {got:?}, expected {want}")
            }
            Mismatch::Rip { got, want } => {
                write!(f, "RIP after the run {got:x?}, expected {want:#x}")
            }
            Mismatch::Leak {
                minors,
                tables,
                blocks,
                kstats,
                timers,
            } => write!(
                f,
                "left behind: {minors} minors, {tables} EPT tables, {blocks} blocks, {kstats} kstats, {timers} timers"
            ),
        }
    }
}

/// Runs `g` in a fresh VM, prints its line and checks that the VM left
/// nothing behind. False if it failed (XFAIL counts as passed).
fn run_guest(d: &RealDriver, ram: GuestRam, g: &Guest) -> bool {
    let o = vm::run(d, ram, &low_ram(), g.program, g.limits);
    let verdict = judge(g, &o).and_then(|()| leaks(d));
    let known = KNOWN_FAILING
        .iter()
        .find(|(name, _)| *name == g.name)
        .map(|(_, why)| *why);
    let passed = match (&verdict, known) {
        (Ok(()), None) => {
            println!(
                "guest: {} PASS {} events, {}, {} KVM_RUN slice returns, {} ticks",
                g.name,
                o.events.len(),
                o.end,
                o.slice_returns,
                o.ticks
            );
            true
        }
        (Ok(()), Some(why)) => {
            println!(
                "guest: {} XPASS known failure no longer fails ({why}): update KNOWN_FAILING",
                g.name
            );
            false
        }
        (Err(detail), Some(why)) => {
            println!("guest: {} XFAIL {why}: {detail}", g.name);
            true
        }
        (Err(detail), None) => {
            println!("guest: {} FAIL {detail}", g.name);
            for (i, e) in o.events.iter().enumerate() {
                println!("guests:   event {i}: {e:?}");
            }
            false
        }
    };
    // The harness-wide check (prints its line; stops the host on a leak).
    crate::check_vmm_leaks(d);
    passed
}

fn judge(g: &Guest, o: &vm::Outcome) -> Result<(), Mismatch> {
    for (index, want) in g.events.iter().enumerate() {
        let got = o.events.get(index).copied();
        if got != Some(*want) {
            return Err(Mismatch::Event {
                index,
                want: *want,
                got,
                end: o.end,
            });
        }
    }
    if let Some(got) = o.events.get(g.events.len()) {
        return Err(Mismatch::Extra {
            index: g.events.len(),
            got: *got,
        });
    }
    if o.end != g.end {
        return Err(Mismatch::End {
            got: o.end,
            want: g.end,
        });
    }
    if let Some(want) = g.mp_state
        && o.mp_state != Some(want)
    {
        return Err(Mismatch::MpState {
            got: o.mp_state,
            want,
        });
    }
    if let Some(want) = g.rip
        && o.rip != Some(want)
    {
        return Err(Mismatch::Rip { got: o.rip, want });
    }
    Ok(())
}

/// What the VM left behind after its fds were closed, if anything.
fn leaks(d: &RealDriver) -> Result<(), Mismatch> {
    let (tables, blocks, kstats, timers) = platform::services::live();
    let minors = d.usage();
    if minors != 0 || tables != 0 || blocks != 0 || kstats != 0 || timers != 0 {
        return Err(Mismatch::Leak {
            minors,
            tables,
            blocks,
            kstats,
            timers,
        });
    }
    Ok(())
}
