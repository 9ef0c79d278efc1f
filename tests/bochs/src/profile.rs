//! A sampling profiler for the host's own code (`PAYLOAD_PROFILE=<ticks>`,
//! `make kut-profile`): the local APIC timer interrupts every `period` TSC
//! ticks (= instructions under Bochs) and the handler records the
//! interrupted RIP and the return addresses of the frame-pointer chain
//! (the host is built with `force-frame-pointers`). At the end `dump`
//! prints the samples as `prof: <rip> <ret1> <ret2> ...` lines, which
//! `tests/bochs/profile.sh` symbolizes with `addr2line` against host.elf
//! and aggregates into self and inclusive counts per function.
//!
//! Interrupts are only open while the host runs the driver's KVM_RUN
//! (`vmm.rs` opens them around the ioctl when profiling, and
//! `BareVmxHost::interrupts_disable/enable` close them around VM entry as
//! on illumos). A guest interrupted by the timer takes an
//! external-interrupt exit and the sample lands where the run loop
//! reopens interrupts: those samples are the guest's own time plus the
//! entry/exit path, and `profile.sh` labels them so.
//!
//! The handler takes no lock and does not allocate: samples go to a static
//! array through an atomic index.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Frames kept per sample (RIP + return addresses).
const DEPTH: usize = 12;
/// Samples kept (the rest are counted as dropped).
const MAX_SAMPLES: usize = 12 * 1024;

/// Ticks between samples; 0: not profiling.
static PERIOD: AtomicU64 = AtomicU64::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// xorshift state for the jitter.
static RNG: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
/// Set when the host comes back from the guest, cleared once the run loop
/// has reopened interrupts: a sample taken in between is an interrupt
/// that arrived in VMX non-root mode (guest time).
static FROM_GUEST: AtomicBool = AtomicBool::new(false);

/// TSC at which the current KVM_RUN started (0: none running), and how
/// many `prof-stuck:` lines were printed: a KVM_RUN that does not return
/// (a hang in the driver or the platform) prints its stacks as it goes,
/// since the run never reaches `dump`.
static RUN_START: AtomicU64 = AtomicU64::new(0);
static STUCK_REPORTS: AtomicU64 = AtomicU64::new(0);
/// A KVM_RUN longer than this (100 time slices) is reported as stuck.
const STUCK_TICKS: u64 = 50_000_000;
const STUCK_REPORTS_MAX: u64 = 16;

/// The VMM enters (`true`) or leaves KVM_RUN.
pub fn in_run(entering: bool) {
    let t = if entering { crate::clock::now() } else { 0 };
    RUN_START.store(t, Ordering::Relaxed);
}

/// The RIP recorded for a sample that arrived while the guest ran.
pub const GUEST_MARK: u64 = 1;

/// The next interval: `period` ± 50 %, so the samples do not alias with
/// the (deterministic, under Bochs) period of the run loop.
fn next_interval(period: u64) -> u64 {
    let mut x = RNG.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.store(x, Ordering::Relaxed);
    period / 2 + x % period.max(1)
}

/// The host is back from VM entry (called with interrupts off).
pub fn guest_exited() {
    FROM_GUEST.store(true, Ordering::Relaxed);
}

/// The run loop has reopened interrupts after a VM exit.
pub fn window_done() {
    FROM_GUEST.store(false, Ordering::Relaxed);
}

struct Samples([[u64; DEPTH]; MAX_SAMPLES]);
static mut SAMPLES: Samples = Samples([[0; DEPTH]; MAX_SAMPLES]);

/// Turns sampling on with `period` ticks between samples (0: off).
pub fn start(period: u64) {
    PERIOD.store(period, Ordering::Relaxed);
    if period != 0 {
        crate::timer::arm_after(next_interval(period));
    }
}

/// Whether samples are being taken.
pub fn active() -> bool {
    PERIOD.load(Ordering::Relaxed) != 0
}

/// Stops sampling.
pub fn stop() {
    PERIOD.store(0, Ordering::Relaxed);
}

/// From the timer interrupt (interrupts off): record one sample from the
/// interrupt frame (`frame[0]` = RIP) and the interrupted RBP, re-arm.
pub fn sample(frame: *const u64, rbp: u64) {
    let period = PERIOD.load(Ordering::Relaxed);
    if period == 0 {
        return;
    }
    crate::timer::arm_after(next_interval(period));
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    if i >= MAX_SAMPLES {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let (lo, hi) = crate::boot::image_extent();
    let mut stack = [0u64; DEPTH];
    // SAFETY: `frame` points at the CPU's interrupt frame on our stack.
    let rip = if FROM_GUEST.load(Ordering::Relaxed) {
        GUEST_MARK
    } else {
        unsafe { frame.read() }
    };
    let mut n = 0;
    if let Some(s) = stack.get_mut(0) {
        *s = rip;
        n = 1;
    }
    let mut fp = rbp;
    while n < DEPTH && fp >= lo && fp.saturating_add(16) <= hi && fp.is_multiple_of(8) {
        // SAFETY: `fp` lies inside the host image (the boot stack is in its
        // bss), identity mapped and readable; a stale frame pointer gives a
        // wrong address in the profile, never a fault.
        let (next, ret) = unsafe {
            let p = fp as usize as *const u64;
            (p.read(), p.add(1).read())
        };
        if let Some(s) = stack.get_mut(n) {
            *s = ret;
        }
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    let started = RUN_START.load(Ordering::Relaxed);
    if started != 0
        && crate::clock::now().wrapping_sub(started) > STUCK_TICKS
        && STUCK_REPORTS.fetch_add(1, Ordering::Relaxed) < STUCK_REPORTS_MAX
    {
        crate::print!("prof-stuck:");
        for a in stack.iter().take_while(|a| **a != 0) {
            crate::print!(" {a:x}");
        }
        crate::println!();
    }
    // SAFETY: slot `i` belongs to this call alone (the atomic index hands
    // each slot out once); one CPU, interrupts off.
    unsafe {
        let slots = &raw mut SAMPLES;
        if let Some(slot) = (*slots).0.get_mut(i) {
            *slot = stack;
        }
    }
}

/// Prints every sample as a `prof:` line, then `prof-summary:` with the
/// sampling `period`.
pub fn dump(period: u64) {
    let n = NEXT.load(Ordering::Relaxed).min(MAX_SAMPLES);
    let samples = &raw const SAMPLES;
    for i in 0..n {
        // SAFETY: sampling has stopped (the caller called `stop`, and
        // interrupts are off); slots below `n` are written.
        let s = unsafe { (*samples).0.get(i).copied() };
        let Some(s) = s else { break };
        crate::print!("prof:");
        for a in s.iter().take_while(|a| **a != 0) {
            crate::print!(" {a:x}");
        }
        crate::println!();
    }
    crate::println!(
        "prof-summary: samples={n} dropped={} period={period}",
        DROPPED.load(Ordering::Relaxed)
    );
}
