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

/// `(hi:lo) / d` and `(hi:lo) % d` for a 128-bit dividend whose quotient
/// fits 64 bits (`hi < d`); `None` otherwise. Shift-and-subtract in 64-bit
/// arithmetic: a `u128` division would call compiler_builtins'
/// `__udivti3`, which the kernel module must not import.
pub fn div_wide(hi: u64, lo: u64, d: u64) -> Option<(u64, u64)> {
    if d == 0 || hi >= d {
        return None;
    }
    let (mut r, mut q) = (hi, 0u64);
    for i in (0..64).rev() {
        let carry = r >> 63;
        r = (r << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry != 0 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
    }
    Some((q, r))
}

/// `a * b` as (high, low) 64-bit halves (a native `mul`, no libcall).
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    let p = u128::from(a) * u128::from(b);
    ((p >> 64) as u64, p as u64)
}

/// `a * b / c`, rounded down, computed in 128 bits and saturated to `u64`.
/// Port of `kvm_i8254.c:muldiv64` (which truncates the high word instead).
pub fn muldiv(a: u64, b: u64, c: u64) -> u64 {
    let (hi, lo) = mul_wide(a, b);
    div_wide(hi, lo, c).map_or(u64::MAX, |(q, _)| q)
}

/// `a * b / c`, rounded up, computed in 128 bits and saturated to `u64`.
pub fn muldiv_ceil(a: u64, b: u64, c: u64) -> u64 {
    let (hi, lo) = mul_wide(a, b);
    match div_wide(hi, lo, c) {
        Some((q, 0)) => q,
        Some((q, _)) => q.saturating_add(1),
        None => u64::MAX,
    }
}

#[cfg(test)]
mod wide_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The 128-bit reference is the compiler's own u128 arithmetic.
        #[test]
        fn div_wide_matches_u128_division(hi in any::<u64>(), lo in any::<u64>(), d in any::<u64>()) {
            let n = (u128::from(hi) << 64) | u128::from(lo);
            let want = (d != 0 && n / u128::from(d) <= u128::from(u64::MAX))
                .then(|| ((n / u128::from(d)) as u64, (n % u128::from(d)) as u64));
            prop_assert_eq!(div_wide(hi, lo, d), want);
        }

        #[test]
        fn muldiv_matches_saturating_u128(a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let n = u128::from(a) * u128::from(b);
            let floor = if c == 0 { u64::MAX } else { u64::try_from(n / u128::from(c)).unwrap_or(u64::MAX) };
            prop_assert_eq!(muldiv(a, b, c), floor);
            let ceil = if c == 0 { u64::MAX } else {
                let q = n / u128::from(c) + u128::from(n % u128::from(c) != 0);
                u64::try_from(q).unwrap_or(u64::MAX)
            };
            prop_assert_eq!(muldiv_ceil(a, b, c), ceil);
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(div_wide(0, 7, 2), Some((3, 1)));
        assert_eq!(div_wide(1, 0, 2), Some((1 << 63, 0)));
        assert_eq!(div_wide(2, 0, 2), None);
        assert_eq!(
            div_wide(u64::MAX - 1, u64::MAX, u64::MAX),
            Some((u64::MAX, u64::MAX - 1))
        );
        assert_eq!(muldiv(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(muldiv(1_193_182, 1_000_000_000, 1_193_182), 1_000_000_000);
    }
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
