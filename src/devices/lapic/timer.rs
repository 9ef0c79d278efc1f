//! The LAPIC timer: one-shot, periodic and TSC-deadline modes (SDM vol. 3
//! §11.5.4; port of `start_apic_timer`, `apic_get_tmcct`, `kvm_timer_fire`
//! and `kvm_inject_apic_timer_irqs` of kvm_lapic.c, plus TSC-deadline mode,
//! which the C lacked). Deadlines are absolute nanoseconds of the injected
//! clock; expiration `k` of a countdown started at `start` is at
//! `start + k × period`, so long runs do not drift.

use super::{APIC_BUS_CYCLE_NS, ApicReg, GeneralProtection, LVT_MASKED, Lapic, Lvt, TimerMode};
use crate::clock::{Clock, Timer, muldiv_ceil};

impl<C: Clock, T: Timer> Lapic<C, T> {
    /// Divide value from TDCR (port of `update_divide_count`).
    pub fn divide_count(&self) -> u64 {
        let tdcr = self.reg(ApicReg::DivideConfig);
        let v = (tdcr & 3) | ((tdcr & 8) >> 1);
        1u64 << ((v + 1) & 7)
    }

    pub(super) fn tick_ns(&self) -> u64 {
        self.divide_count().saturating_mul(APIC_BUS_CYCLE_NS)
    }

    /// Countdown length in ns: TMICT × divide × bus cycle, periodic clamped
    /// to the configured minimum (0 = stopped).
    pub(super) fn timer_period(&self) -> u64 {
        let period = u64::from(self.reg(ApicReg::InitialCount)).saturating_mul(self.tick_ns());
        if period != 0 && self.timer_mode() == TimerMode::Periodic {
            period.max(self.cfg.min_periodic_ns)
        } else {
            period
        }
    }

    /// Port of `start_apic_timer` for one-shot/periodic mode, starting at
    /// `start` (now, or earlier on restore).
    pub(super) fn start_timer_at(&mut self, start: u64) {
        self.timer_state.start = start;
        self.timer_state.period = self.timer_period();
        self.timer_state.next_expiry = 1;
        self.rearm();
    }

    /// Absolute deadline of the next timer event, if any.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        let t = &self.timer_state;
        match self.timer_mode() {
            TimerMode::TscDeadline => {
                if t.tsc_deadline == 0 {
                    return None;
                }
                let delta = t.tsc_deadline.saturating_sub(self.tsc_offset);
                Some(muldiv_ceil(delta, 1_000_000, self.cfg.tsc_khz.max(1)))
            }
            mode => {
                if t.period == 0 || (mode == TimerMode::OneShot && t.next_expiry > 1) {
                    return None;
                }
                t.start.checked_add(t.period.checked_mul(t.next_expiry)?)
            }
        }
    }

    pub(super) fn rearm(&mut self) {
        match self.next_deadline() {
            Some(d) => self.timer.arm(d),
            None => self.timer.cancel(),
        }
    }

    /// Current count (port of `apic_get_tmcct`; SDM: counts down from the
    /// initial count at the divided bus clock, stays 0 after a one-shot
    /// expires, reloads in periodic mode; reads 0 in TSC-deadline mode).
    pub fn current_count(&self, now: u64) -> u32 {
        let t = &self.timer_state;
        let initial = self.reg(ApicReg::InitialCount);
        if initial == 0 || t.period == 0 || self.timer_mode() == TimerMode::TscDeadline {
            return 0;
        }
        let elapsed = now.saturating_sub(t.start);
        let in_period = match self.timer_mode() {
            TimerMode::Periodic => elapsed % t.period,
            _ if elapsed >= t.period => return 0,
            _ => elapsed,
        };
        let ticks = in_period.checked_div(self.tick_ns()).unwrap_or(0);
        u32::try_from(u64::from(initial).saturating_sub(ticks)).unwrap_or(0)
    }

    /// Timer callback (port of `kvm_timer_fire` + injection): count the
    /// expirations due by `now`, deliver through LVT timer, re-arm.
    /// Does not allocate. Returns whether the VCPU should be kicked.
    pub fn on_timer(&mut self, now: u64) -> bool {
        let mut due = 0u64;
        match self.timer_mode() {
            TimerMode::TscDeadline => {
                if self.next_deadline().is_some_and(|d| d <= now) {
                    due = 1;
                    self.timer_state.tsc_deadline = 0;
                }
            }
            mode => {
                let t = self.timer_state;
                if let Some(done) = now.saturating_sub(t.start).checked_div(t.period) {
                    let done = if mode == TimerMode::OneShot {
                        done.min(1)
                    } else {
                        done
                    };
                    let last = done.saturating_add(1);
                    if last > t.next_expiry {
                        due = last - t.next_expiry;
                        self.timer_state.next_expiry = last;
                    }
                }
            }
        }
        // A masked LVT timer entry inhibits the interrupt (SDM §11.5.1): the
        // expirations are discarded, not held (the C kept counting them and
        // replayed a burst on unmask).
        if self.lvt(Lvt::Timer) & LVT_MASKED == 0 {
            self.timer_state.pending = self.timer_state.pending.saturating_add(due);
        }
        self.rearm();
        self.inject_timer_irqs()
    }

    /// Run [`Self::on_timer`] if the timer's deadline has passed on the
    /// model's clock: the VCPU thread's poll (before entry, and when a
    /// halted VCPU is woken), so the platform timer only has to wake it.
    /// No side effect (no re-arm) when nothing is due.
    pub fn poll_timer(&mut self) -> bool {
        let now = self.clock.now_ns();
        match self.next_deadline() {
            Some(d) if d <= now => self.on_timer(now),
            _ => false,
        }
    }

    /// Deliver one backlogged timer interrupt if the LVT accepts it (port of
    /// `kvm_inject_apic_timer_irqs`). Returns whether one was delivered.
    pub fn inject_timer_irqs(&mut self) -> bool {
        if self.timer_state.pending > 0 && self.local_deliver(Lvt::Timer) {
            self.timer_state.pending -= 1;
            return true;
        }
        false
    }

    /// Timer expirations counted but not yet delivered.
    pub fn pending_timer(&self) -> u64 {
        self.timer_state.pending
    }

    /// RDMSR IA32_TSC_DEADLINE: the armed deadline in TSC-deadline mode,
    /// 0 otherwise (SDM §11.5.4.1).
    pub fn tsc_deadline(&self) -> Result<u64, GeneralProtection> {
        if !self.cfg.tsc_deadline {
            return Err(GeneralProtection);
        }
        Ok(if self.timer_mode() == TimerMode::TscDeadline {
            self.timer_state.tsc_deadline
        } else {
            0
        })
    }

    /// WRMSR IA32_TSC_DEADLINE: arm (non-zero) or disarm (0) in TSC-deadline
    /// mode; ignored in the other modes. A deadline already passed fires at
    /// once.
    pub fn set_tsc_deadline(&mut self, tsc: u64) -> Result<(), GeneralProtection> {
        if !self.cfg.tsc_deadline {
            return Err(GeneralProtection);
        }
        if self.timer_mode() != TimerMode::TscDeadline {
            return Ok(());
        }
        self.timer_state.tsc_deadline = tsc;
        let now = self.clock.now_ns();
        if self.next_deadline().is_some_and(|d| d <= now) {
            self.on_timer(now);
        } else {
            self.rearm();
        }
        Ok(())
    }
}
