//! The injected clock and the one-shot timer the platform arms.
//!
//! Port of the time sources of `kvm_timer.h` / `kvm_lapic.c:start_apic_timer`
//! / `kvm_i8254.c:create_pit_timer`: the C driver reads `gethrtime()` and
//! programs illumos cyclics directly. Here the device models only ever *compute*
//! absolute deadlines in nanoseconds; the platform owns the real timer (a cyclic
//! in the kernel, a fake in tests), arms it through [`Timer`] and calls the
//! model's `on_timer(now)` back when the deadline passes.
//!
//! Rules for implementors: `arm` replaces any previous deadline (one-shot
//! semantics; periodic behaviour is produced by the model re-arming from
//! `on_timer`), and neither method may allocate or block, because the models
//! call them from timer callbacks.

/// A monotonic nanosecond clock (`gethrtime()` in the kernel).
pub trait Clock {
    /// The current time in nanoseconds. Must never go backwards.
    fn now_ns(&self) -> u64;
}

/// A one-shot host timer that the platform provides to one device timer.
pub trait Timer {
    /// Arm (or re-arm) the timer to call the owner's `on_timer` at or after
    /// `deadline_ns` (absolute, in the [`Clock`] time base).
    fn arm(&mut self, deadline_ns: u64);
    /// Cancel a pending deadline; a no-op if none is armed.
    fn cancel(&mut self);
}

/// Nanoseconds per second.
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// `a * b / c`, rounded down, computed in 128 bits and saturated to `u64`.
/// Port of `kvm_i8254.c:muldiv64` (which truncates the high word instead).
pub fn muldiv(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return u64::MAX;
    }
    let q = u128::from(a)
        .saturating_mul(u128::from(b))
        .checked_div(u128::from(c))
        .unwrap_or(u128::MAX);
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// `a * b / c`, rounded up, computed in 128 bits and saturated to `u64`.
pub fn muldiv_ceil(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return u64::MAX;
    }
    let n = u128::from(a).saturating_mul(u128::from(b));
    let c = u128::from(c);
    let q = n.checked_div(c).unwrap_or(u128::MAX);
    let q = if n.checked_rem(c).unwrap_or(0) != 0 {
        q.saturating_add(1)
    } else {
        q
    };
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// A fake clock and timer for tests: the test moves time by hand.
#[cfg(test)]
pub mod fake {
    use super::{Clock, Timer};
    use std::cell::Cell;
    use std::rc::Rc;

    /// A clock whose time the test sets; clones share the same time.
    #[derive(Clone, Default, Debug)]
    pub struct FakeClock(Rc<Cell<u64>>);

    impl FakeClock {
        pub fn new(start: u64) -> Self {
            Self(Rc::new(Cell::new(start)))
        }
        pub fn set(&self, t: u64) {
            self.0.set(t);
        }
        pub fn advance(&self, d: u64) {
            self.0.set(self.0.get() + d);
        }
        pub fn get(&self) -> u64 {
            self.0.get()
        }
    }

    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.0.get()
        }
    }

    /// A timer that records the armed deadline and how often it was armed.
    #[derive(Clone, Default, Debug)]
    pub struct FakeTimer {
        pub deadline: Option<u64>,
        pub arms: u64,
    }

    impl Timer for FakeTimer {
        fn arm(&mut self, deadline_ns: u64) {
            self.deadline = Some(deadline_ns);
            self.arms += 1;
        }
        fn cancel(&mut self) {
            self.deadline = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muldiv_is_exact_in_128_bits_and_saturates() {
        assert_eq!(muldiv(u64::MAX, 2, 2), u64::MAX);
        assert_eq!(muldiv(u64::MAX, 3, 1), u64::MAX);
        assert_eq!(muldiv(10, 1, 0), u64::MAX);
        assert_eq!(muldiv_ceil(10, 1, 3), 4);
        assert_eq!(muldiv_ceil(9, 1, 3), 3);
        assert_eq!(muldiv(1_000_000, NSEC_PER_SEC, 1_193_181), 838_095_812);
    }
}
