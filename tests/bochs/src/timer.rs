//! The host's one-shot timer: the local APIC timer, in TSC-deadline mode
//! when the CPU has it (CPUID.1:ECX[24]), else in one-shot count mode
//! calibrated against the TSC. The driver's LAPIC and PIT timer emulation
//! will sit on this; for now `self_test` proves an interrupt arrives when
//! it should.

use crate::clock;
use crate::cpu::{cpuid, rdmsr, wrmsr};
use crate::descriptors;
use core::sync::atomic::{AtomicU64, Ordering};

/// The vector the timer interrupt uses.
pub const TIMER_VECTOR: u8 = 0x40;
const SPURIOUS_VECTOR: u32 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_MASK: u64 = 0x000f_ffff_ffff_f000;

// xAPIC register offsets.
const REG_EOI: usize = 0xb0;
const REG_SPURIOUS: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_INITIAL_COUNT: usize = 0x380;
const REG_CURRENT_COUNT: usize = 0x390;
const REG_DIVIDE: usize = 0x3e0;
const SPURIOUS_APIC_ENABLE: u32 = 1 << 8;
const LVT_MODE_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_1: u32 = 0b1011;

static APIC_BASE: AtomicU64 = AtomicU64::new(0);
/// LAPIC timer counts per second in one-shot mode; 0 = TSC-deadline mode.
static COUNT_HZ: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);
static FIRED_AT: AtomicU64 = AtomicU64::new(0);

/// How the timer is driven.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    TscDeadline,
    OneShot { count_hz: u64 },
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mode::TscDeadline => f.write_str("TSC-deadline mode"),
            Mode::OneShot { count_hz } => write!(f, "one-shot mode at {count_hz} Hz"),
        }
    }
}

fn apic_read(reg: usize) -> u32 {
    let base = APIC_BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: the xAPIC page is identity mapped (uncached) by boot.rs.
    unsafe { ((base + reg) as *const u32).read_volatile() }
}

fn apic_write(reg: usize, value: u32) {
    let base = APIC_BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: as for `apic_read`.
    unsafe { ((base + reg) as *mut u32).write_volatile(value) }
}

/// Called from `timer_entry` on every timer interrupt, with the CPU's
/// interrupt frame and the interrupted code's RBP (for the profiler).
extern "C" fn timer_interrupt(frame: *const u64, rbp: u64) {
    FIRED_AT.store(clock::now(), Ordering::Relaxed);
    FIRED.fetch_add(1, Ordering::Relaxed);
    crate::profile::sample(frame, rbp);
    apic_write(REG_EOI, 0);
}

/// The interrupt entry: save the caller-saved registers (9 pushes keep the
/// stack 16-byte aligned for the call), handle, return.
#[unsafe(naked)]
extern "C" fn timer_entry() {
    core::arch::naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "cld",
        // The interrupt frame (RIP first) above the 9 saved registers.
        "lea rdi, [rsp + 72]",
        "mov rsi, rbp",
        "call {handler}",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "iretq",
        handler = sym timer_interrupt,
    )
}

/// Enables the local APIC and its timer; `None` without an APIC.
pub fn init() -> Option<Mode> {
    let features = cpuid(1, 0);
    if features.edx & (1 << 9) == 0 {
        return None;
    }
    // SAFETY: CPUID.1:EDX.APIC says IA32_APIC_BASE exists.
    let base_msr = unsafe { rdmsr(IA32_APIC_BASE) };
    if base_msr & APIC_BASE_ENABLE == 0 {
        // SAFETY: enabling the xAPIC at its current base.
        unsafe { wrmsr(IA32_APIC_BASE, base_msr | APIC_BASE_ENABLE) };
    }
    APIC_BASE.store(base_msr & APIC_BASE_MASK, Ordering::Relaxed);
    descriptors::set_gate(TIMER_VECTOR, timer_entry as *const () as usize as u64);
    apic_write(REG_SPURIOUS, SPURIOUS_APIC_ENABLE | SPURIOUS_VECTOR);
    apic_write(REG_DIVIDE, DIVIDE_BY_1);

    if features.ecx & (1 << 24) != 0 {
        apic_write(
            REG_LVT_TIMER,
            LVT_MODE_TSC_DEADLINE | u32::from(TIMER_VECTOR),
        );
        COUNT_HZ.store(0, Ordering::Relaxed);
        return Some(Mode::TscDeadline);
    }
    // One-shot mode, masked while we measure the count rate over 1 ms.
    apic_write(REG_LVT_TIMER, (1 << 16) | u32::from(TIMER_VECTOR));
    apic_write(REG_INITIAL_COUNT, u32::MAX);
    let start = clock::now();
    let window = clock::tsc_hz() / 1000;
    while clock::now().wrapping_sub(start) < window {
        core::hint::spin_loop();
    }
    let counted = u64::from(u32::MAX - apic_read(REG_CURRENT_COUNT));
    apic_write(REG_INITIAL_COUNT, 0);
    let count_hz = counted.saturating_mul(1000).max(1);
    COUNT_HZ.store(count_hz, Ordering::Relaxed);
    apic_write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    Some(Mode::OneShot { count_hz })
}

/// Arms the timer to fire once, `ticks` TSC ticks from now.
pub fn arm_after(ticks: u64) {
    let count_hz = COUNT_HZ.load(Ordering::Relaxed);
    if count_hz == 0 {
        // SAFETY: TSC-deadline mode is on; the MSR exists (CPUID.1:ECX[24]).
        unsafe { wrmsr(IA32_TSC_DEADLINE, clock::now().saturating_add(ticks.max(1))) };
    } else {
        let count = u128::from(ticks) * u128::from(count_hz) / u128::from(clock::tsc_hz().max(1));
        apic_write(
            REG_INITIAL_COUNT,
            u32::try_from(count.max(1)).unwrap_or(u32::MAX),
        );
    }
}

/// Timer interrupts taken so far.
pub fn fired() -> u64 {
    FIRED.load(Ordering::Relaxed)
}

/// Arms the timer `ticks` ahead and waits with interrupts enabled (at most
/// `limit` ticks). Returns the TSC ticks from arming to the interrupt.
pub fn self_test(ticks: u64, limit: u64) -> Option<u64> {
    let before = fired();
    let start = clock::now();
    arm_after(ticks);
    while fired() == before {
        if clock::now().wrapping_sub(start) > limit {
            return None;
        }
        // SAFETY: open an interrupt window of one instruction; the timer
        // vector has a handler and every other vector reports and stops.
        unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
    }
    Some(FIRED_AT.load(Ordering::Relaxed).wrapping_sub(start))
}
