//! The 8254 programmable interval timer: three counters at 1.193181 MHz.
//!
//! Port of `kvm_i8254.c`. Datasheet rules (Intel 8254):
//! * Ports 0x40–0x42 are counters 0–2, 0x43 the control word register:
//!   SC1:SC0 select the counter (3 = read-back), RW1:RW0 the access (0 =
//!   counter latch, 1 = LSB, 2 = MSB, 3 = LSB then MSB), M2:M0 the mode (6 and
//!   7 alias 2 and 3), BCD the count format.
//! * Writing a control word resets the counter: OUT goes low in mode 0 and
//!   high in the other modes, and counting waits for a new count.
//! * Initial count 0 means 2^16 in binary and 10^4 in BCD.
//! * Mode 0 (interrupt on terminal count): OUT low until the count expires,
//!   then high. Mode 1 (retriggerable one-shot): OUT low from the trigger
//!   until terminal count. Mode 2 (rate generator): OUT low for one clock when
//!   the counter reaches 1, then reload. Mode 3 (square wave): OUT high for
//!   ⌈N/2⌉ and low for ⌊N/2⌋ counts. Mode 4 (software strobe) and 5 (hardware
//!   strobe): OUT low for one clock when the count reaches 0.
//! * GATE: a rising edge (re)starts modes 1, 2, 3, 5; GATE low holds modes 2
//!   and 3 with OUT high. Counter 2's gate is bit 0 of port 0x61 and its OUT
//!   reads back in bit 5.
//! * Counter latch freezes the count for reading until it has been read;
//!   read-back latches count and/or status (status: OUT, NULL COUNT, RW,
//!   mode, BCD) and a latched status is read before a latched count.
//!
//! Counter 0 drives IRQ0: its expirations are computed from the load time
//! with exact integer arithmetic (no drift), the platform [`Timer`] is
//! armed for the next one, and [`Pit::on_timer`] counts them as pending
//! interrupts that the caller pulses on IRQ0 via [`Pit::take_irq0`] and
//! acknowledges with [`Pit::ack_irq0`] (reinjection as in `kvm_pit_ack_irq`).
//!
//! Differences from the C driver: one-shot modes 0, 1, 4 and 5 fire (the C
//! armed a cyclic that never expired, kvm_i8254.c:321); OUT follows the
//! datasheet for modes 1, 2 and 4 (the C had them inverted); BCD counts
//! count in decimal; a control word stops the counter until the count is
//! written; GATE low suspends modes 0 and 4 (the C ignored it).
//! Simplification kept from the C: loading a count is the trigger of modes 1
//! and 5 when GATE is already high (counters 0 and 1 have GATE tied high).

use crate::clock::{Clock, NSEC_PER_SEC, Timer, muldiv, muldiv_ceil};

/// Input clock of the counters (`KVM_PIT_FREQ`).
pub const PIT_FREQ_HZ: u64 = 1_193_181;
/// First PIT port.
pub const PIT_BASE_PORT: u16 = 0x40;
/// Control word port.
pub const PIT_CONTROL_PORT: u16 = 0x43;
/// Speaker / counter 2 gate port.
pub const PIT_SPEAKER_PORT: u16 = 0x61;
/// `KVM_PIT_FLAGS_HPET_LEGACY`: the HPET replaces counter 0's interrupt.
pub const PIT_FLAGS_HPET_LEGACY: u32 = 1;

/// The counter modes (control word M2:M0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PitMode {
    /// Mode 0.
    InterruptOnTerminalCount,
    /// Mode 1.
    RetriggerableOneShot,
    /// Mode 2 (and 6).
    RateGenerator,
    /// Mode 3 (and 7).
    SquareWave,
    /// Mode 4.
    SoftwareStrobe,
    /// Mode 5.
    HardwareStrobe,
}

impl PitMode {
    /// Decode M2:M0; 6 and 7 alias 2 and 3.
    pub const fn from_bits(m: u8) -> Self {
        match m & 7 {
            0 => Self::InterruptOnTerminalCount,
            1 => Self::RetriggerableOneShot,
            2 | 6 => Self::RateGenerator,
            3 | 7 => Self::SquareWave,
            4 => Self::SoftwareStrobe,
            _ => Self::HardwareStrobe,
        }
    }
    /// The mode number 0–5.
    pub const fn bits(self) -> u8 {
        match self {
            Self::InterruptOnTerminalCount => 0,
            Self::RetriggerableOneShot => 1,
            Self::RateGenerator => 2,
            Self::SquareWave => 3,
            Self::SoftwareStrobe => 4,
            Self::HardwareStrobe => 5,
        }
    }
    /// Modes 2 and 3 reload and repeat.
    pub const fn is_periodic(self) -> bool {
        matches!(self, Self::RateGenerator | Self::SquareWave)
    }
    /// Modes whose counting GATE low suspends without a restart.
    const fn gate_suspends(self) -> bool {
        matches!(self, Self::InterruptOnTerminalCount | Self::SoftwareStrobe)
    }
    /// Modes whose counting a GATE rising edge (re)starts.
    const fn gate_triggered(self) -> bool {
        matches!(
            self,
            Self::RetriggerableOneShot
                | Self::RateGenerator
                | Self::SquareWave
                | Self::HardwareStrobe
        )
    }
}

/// Byte access of a counter (control word RW1:RW0, `RW_STATE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RwState {
    /// LSB only.
    #[default]
    Lsb,
    /// MSB only.
    Msb,
    /// LSB then MSB, next byte is the LSB.
    Word0,
    /// LSB then MSB, next byte is the MSB.
    Word1,
}

impl RwState {
    const fn to_u8(self) -> u8 {
        match self {
            Self::Lsb => 1,
            Self::Msb => 2,
            Self::Word0 => 3,
            Self::Word1 => 4,
        }
    }
    const fn from_u8(v: u8) -> Self {
        match v {
            2 => Self::Msb,
            3 => Self::Word0,
            4 => Self::Word1,
            _ => Self::Lsb,
        }
    }
}

/// Saved state of one counter in the layout of `struct kvm_pit_channel_state`
/// (24 bytes). Local mirror until `kvm-ioctl` owns the ABI struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PitChannelState {
    pub count: u32,
    pub latched_count: u16,
    pub count_latched: u8,
    pub status_latched: u8,
    pub status: u8,
    pub read_state: u8,
    pub write_state: u8,
    pub write_latch: u8,
    pub rw_mode: u8,
    pub mode: u8,
    pub bcd: u8,
    pub gate: u8,
    /// Load (trigger) time in clock ns; -1 while the counter waits for a
    /// count after a control word (a port extension; the C never stops).
    pub count_load_time: i64,
}
static_assertions::const_assert_eq!(core::mem::size_of::<PitChannelState>(), 24);

/// Saved state in the layout of `struct kvm_pit_state2` (112 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PitState2 {
    pub channels: [PitChannelState; 3],
    pub flags: u32,
    pub reserved: [u32; 9],
}
static_assertions::const_assert_eq!(core::mem::size_of::<PitState2>(), 112);

/// One counter (port of `struct kvm_kpit_channel_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Channel {
    /// Raw initial count as written (0 already turned into 0x10000).
    count: u32,
    latched_count: u16,
    /// `None`: no count latched; otherwise the byte sequence to read it.
    count_latched: Option<RwState>,
    status_latched: bool,
    status: u8,
    read_state: RwState,
    write_state: RwState,
    write_latch: u8,
    /// Access mode from the control word (1–3).
    rw_mode: u8,
    /// `None` until the first control word (C: mode 0xff).
    mode: Option<PitMode>,
    bcd: bool,
    gate: bool,
    /// When counting started; `None` while waiting for a count.
    load_time: Option<u64>,
    /// Clocks counted when GATE fell in mode 0 or 4: counting is suspended
    /// there until GATE rises again.
    frozen: Option<u64>,
}

fn bcd_to_bin(v: u32) -> u64 {
    let v = u64::from(v & 0xffff);
    let n = (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
    if n == 0 { 10_000 } else { n }
}

/// `a % m` for a modulus that is never 0 (a count of 0 means 65536 or
/// 10000): without a divide-by-zero panic path in the kernel.
fn rem(a: u64, m: u64) -> u64 {
    a.checked_rem(m).unwrap_or(0)
}
fn bin_to_bcd(v: u64) -> u16 {
    let v = v % 10_000;
    ((v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) | ((v / 1000) << 12)) as u16
}

impl Channel {
    /// The counting modulus N: 1..=65536 binary, 1..=10000 BCD.
    fn modulus(&self) -> u64 {
        if self.bcd {
            bcd_to_bin(self.count)
        } else {
            let c = u64::from(self.count);
            if c == 0 || c > 0x1_0000 { 0x1_0000 } else { c }
        }
    }

    /// Input clocks since counting started.
    fn ticks(&self, now: u64) -> Option<u64> {
        if self.frozen.is_some() {
            return self.frozen;
        }
        let load = self.load_time?;
        Some(muldiv(now.saturating_sub(load), PIT_FREQ_HZ, NSEC_PER_SEC))
    }

    /// Whether GATE is holding a mode-2/3 counter.
    fn held(&self) -> bool {
        !self.gate && self.mode.is_some_and(PitMode::is_periodic)
    }

    /// Current counter value (port of `pit_get_count`), in binary or BCD as
    /// programmed.
    fn get_count(&self, now: u64) -> u16 {
        let n = self.modulus();
        let v = match (self.mode, self.ticks(now)) {
            (Some(mode), Some(d)) if !self.held() => match mode {
                PitMode::RateGenerator => n - rem(d, n),
                PitMode::SquareWave => n - rem(d.wrapping_mul(2), n),
                _ => {
                    let wrap = if self.bcd { 10_000 } else { 0x1_0000 };
                    (n + wrap - d % wrap) % wrap
                }
            },
            _ => n,
        };
        if self.bcd {
            bin_to_bcd(v)
        } else {
            (v & 0xffff) as u16
        }
    }

    /// OUT pin (port of `pit_get_out`, datasheet waveforms).
    fn get_out(&self, now: u64) -> bool {
        let Some(mode) = self.mode else { return false };
        let Some(d) = self.ticks(now) else {
            return mode != PitMode::InterruptOnTerminalCount;
        };
        if self.held() {
            return true;
        }
        let n = self.modulus();
        match mode {
            PitMode::InterruptOnTerminalCount | PitMode::RetriggerableOneShot => d >= n,
            PitMode::RateGenerator => rem(d, n) != n - 1,
            PitMode::SquareWave => rem(d, n) < n.div_ceil(2),
            PitMode::SoftwareStrobe | PitMode::HardwareStrobe => d != n,
        }
    }

    /// Status byte of the read-back command.
    fn status_byte(&self, now: u64) -> u8 {
        (u8::from(self.get_out(now)) << 7)
            | (u8::from(self.load_time.is_none()) << 6)
            | ((self.rw_mode & 3) << 4)
            | (self.mode.map_or(0, PitMode::bits) << 1)
            | u8::from(self.bcd)
    }

    /// The load time that makes `ticks` come out right at `now` (a
    /// suspended counter is saved as if it had run without pause).
    fn effective_load_time(&self, now: u64) -> Option<u64> {
        match self.frozen {
            Some(d) => Some(now.saturating_sub(muldiv_ceil(d, NSEC_PER_SEC, PIT_FREQ_HZ))),
            None => self.load_time,
        }
    }

    fn save(&self, now: u64) -> PitChannelState {
        PitChannelState {
            count: self.count,
            latched_count: self.latched_count,
            count_latched: self.count_latched.map_or(0, RwState::to_u8),
            status_latched: u8::from(self.status_latched),
            status: self.status,
            read_state: self.read_state.to_u8(),
            write_state: self.write_state.to_u8(),
            write_latch: self.write_latch,
            rw_mode: self.rw_mode,
            mode: self.mode.map_or(0xff, PitMode::bits),
            bcd: u8::from(self.bcd),
            gate: u8::from(self.gate),
            count_load_time: self
                .effective_load_time(now)
                .map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX)),
        }
    }

    fn restore(s: &PitChannelState, now: u64) -> Self {
        let mut c = Self {
            count: s.count & 0x1_ffff,
            latched_count: s.latched_count,
            count_latched: (s.count_latched != 0).then(|| RwState::from_u8(s.count_latched)),
            status_latched: s.status_latched != 0,
            status: s.status,
            read_state: RwState::from_u8(s.read_state),
            write_state: RwState::from_u8(s.write_state),
            write_latch: s.write_latch,
            rw_mode: s.rw_mode & 3,
            mode: (s.mode <= 7).then(|| PitMode::from_bits(s.mode)),
            bcd: s.bcd != 0,
            gate: s.gate != 0,
            load_time: u64::try_from(s.count_load_time).ok(),
            frozen: None,
        };
        if c.mode.is_some_and(PitMode::gate_suspends) && !c.gate {
            c.frozen = c.ticks(now);
        }
        c
    }
}

/// The PIT (port of `struct kvm_pit` / `struct kvm_kpit_state`).
pub struct Pit<C: Clock, T: Timer> {
    clock: C,
    timer: T,
    channels: [Channel; 3],
    flags: u32,
    speaker_data_on: bool,
    /// Counter 0: index of the next expiration (1-based) to count.
    next_expiry: u64,
    /// Counter 0 expirations not yet acknowledged by the guest.
    pending: u64,
    /// The last IRQ0 pulse was acknowledged (`irq_ack`).
    irq_ack: bool,
    /// Re-inject every lost tick (`KVM_REINJECT_CONTROL`, default on).
    reinject: bool,
}

impl<C: Clock, T: Timer> Pit<C, T> {
    /// A reset PIT (port of `kvm_create_pit` + `kvm_pit_reset`): counters in
    /// no mode, gates of counters 0 and 1 high, counter 2's low.
    pub fn new(clock: C, timer: T) -> Self {
        let mut s = Self {
            clock,
            timer,
            channels: [Channel::default(); 3],
            flags: 0,
            speaker_data_on: false,
            next_expiry: 1,
            pending: 0,
            irq_ack: true,
            reinject: true,
        };
        s.reset();
        s
    }

    /// Port of `kvm_pit_reset`.
    pub fn reset(&mut self) {
        for (i, c) in self.channels.iter_mut().enumerate() {
            *c = Channel {
                gate: i != 2,
                count: 0x1_0000,
                ..Channel::default()
            };
        }
        self.flags = 0;
        self.pending = 0;
        self.irq_ack = true;
        self.timer.cancel();
    }

    /// The platform timer (tests inspect the fake).
    pub fn timer(&self) -> &T {
        &self.timer
    }

    /// Turn lost-tick reinjection on or off (`KVM_REINJECT_CONTROL`).
    pub fn set_reinject(&mut self, on: bool) {
        self.reinject = on;
    }

    fn ch(&self, i: usize) -> Channel {
        self.channels.get(i).copied().unwrap_or_default()
    }

    /// Absolute time of counter 0's expiration number `k` (1-based).
    fn expiry_time(&self, k: u64) -> Option<u64> {
        let c = self.ch(0);
        let load = c.load_time?;
        let ticks = k.checked_mul(c.modulus())?;
        load.checked_add(muldiv_ceil(ticks, NSEC_PER_SEC, PIT_FREQ_HZ))
    }

    /// Run [`Self::on_timer`] if counter 0's next expiry has passed on the
    /// model's clock (the VCPU thread's poll; no re-arm when nothing is due).
    pub fn poll_timer(&mut self) -> bool {
        let now = self.clock.now_ns();
        // The same "armed" rule as `rearm`: periodic modes always, one-shot
        // modes only before their single expiry.
        let periodic = self.ch(0).mode.is_some_and(PitMode::is_periodic);
        let due = self.ch0_interrupts()
            && (periodic || self.next_expiry == 1)
            && self.expiry_time(self.next_expiry).is_some_and(|t| t <= now);
        due && self.on_timer(now)
    }

    /// Whether counter 0 generates interrupts now.
    fn ch0_interrupts(&self) -> bool {
        let c = self.ch(0);
        self.flags & PIT_FLAGS_HPET_LEGACY == 0
            && c.mode.is_some()
            && c.load_time.is_some()
            && !c.held()
    }

    /// (Re)arm the platform timer for counter 0's next expiration (port of
    /// `create_pit_timer` / `destroy_pit_timer`).
    fn rearm(&mut self) {
        let periodic = self.ch(0).mode.is_some_and(PitMode::is_periodic);
        let want = if self.ch0_interrupts() && (periodic || self.next_expiry == 1) {
            self.expiry_time(self.next_expiry)
        } else {
            None
        };
        match want {
            Some(t) => self.timer.arm(t),
            None => self.timer.cancel(),
        }
    }

    /// Port of `pit_load_count`.
    fn load_count(&mut self, i: usize, val: u32) {
        let now = self.clock.now_ns();
        let Some(c) = self.channels.get_mut(i) else {
            return;
        };
        c.count = if val == 0 { 0x1_0000 } else { val };
        let gated_start = c.mode.is_some_and(PitMode::gate_triggered) && !c.gate;
        c.load_time = if gated_start { None } else { Some(now) };
        // Mode 0/4 with GATE low: loaded, but suspended at zero clocks.
        c.frozen = (c.mode.is_some_and(PitMode::gate_suspends) && !c.gate).then_some(0);
        if i == 0 {
            self.next_expiry = 1;
            self.pending = 0;
            self.irq_ack = true;
            self.rearm();
        }
    }

    /// Port of `pit_set_gate`.
    fn set_gate(&mut self, i: usize, gate: bool) {
        let now = self.clock.now_ns();
        let Some(c) = self.channels.get_mut(i) else {
            return;
        };
        let rising = gate && !c.gate;
        let falling = !gate && c.gate;
        if c.mode.is_some_and(PitMode::gate_suspends) && c.load_time.is_some() {
            if falling && c.frozen.is_none() {
                c.frozen = c.ticks(now);
            } else if rising && let Some(d) = c.frozen.take() {
                c.load_time = Some(now.saturating_sub(muldiv_ceil(d, NSEC_PER_SEC, PIT_FREQ_HZ)));
            }
        }
        c.gate = gate;
        if rising && c.mode.is_some_and(PitMode::gate_triggered) {
            c.load_time = Some(now);
            if i == 0 {
                self.next_expiry = 1;
            }
        }
        if i == 0 {
            self.rearm();
        }
    }

    /// Port of `pit_latch_count`: ignored while a latched count is unread.
    fn latch_count(&mut self, i: usize) {
        let now = self.clock.now_ns();
        if let Some(c) = self.channels.get_mut(i)
            && c.count_latched.is_none()
        {
            c.latched_count = c.get_count(now);
            c.count_latched = Some(RwState::from_u8(c.rw_mode));
        }
    }

    /// Port of `pit_latch_status`.
    fn latch_status(&mut self, i: usize) {
        let now = self.clock.now_ns();
        if let Some(c) = self.channels.get_mut(i)
            && !c.status_latched
        {
            c.status = c.status_byte(now);
            c.status_latched = true;
        }
    }

    /// Port I/O write (ports 0x40–0x43 and 0x61; port of `pit_ioport_write`
    /// and `speaker_ioport_write`).
    pub fn write(&mut self, port: u16, val: u8) {
        match port {
            PIT_CONTROL_PORT => self.write_control(val),
            PIT_SPEAKER_PORT => {
                self.speaker_data_on = val & 2 != 0;
                self.set_gate(2, val & 1 != 0);
            }
            0x40..=0x42 => self.write_count(usize::from(port - PIT_BASE_PORT), val),
            _ => {}
        }
    }

    fn write_control(&mut self, val: u8) {
        let sel = usize::from(val >> 6);
        if sel == 3 {
            // Read-back: bit 5 = !COUNT, bit 4 = !STATUS, bits 3:1 = counters.
            for i in 0..3 {
                if val & (2 << i) != 0 {
                    if val & 0x20 == 0 {
                        self.latch_count(i);
                    }
                    if val & 0x10 == 0 {
                        self.latch_status(i);
                    }
                }
            }
            return;
        }
        let access = (val >> 4) & 3;
        if access == 0 {
            self.latch_count(sel);
            return;
        }
        if let Some(c) = self.channels.get_mut(sel) {
            let rw = RwState::from_u8(access);
            c.rw_mode = access;
            c.read_state = rw;
            c.write_state = rw;
            c.mode = Some(PitMode::from_bits(val >> 1));
            c.bcd = val & 1 != 0;
            c.load_time = None;
            c.frozen = None;
            c.count_latched = None;
            c.status_latched = false;
        }
        if sel == 0 {
            self.pending = 0;
            self.irq_ack = true;
            self.rearm();
        }
    }

    fn write_count(&mut self, i: usize, val: u8) {
        let Some(c) = self.channels.get_mut(i) else {
            return;
        };
        let v = u32::from(val);
        match c.write_state {
            RwState::Lsb => self.load_count(i, v),
            RwState::Msb => self.load_count(i, v << 8),
            RwState::Word0 => {
                c.write_latch = val;
                c.write_state = RwState::Word1;
            }
            RwState::Word1 => {
                let lo = u32::from(c.write_latch);
                c.write_state = RwState::Word0;
                self.load_count(i, lo | (v << 8));
            }
        }
    }

    /// Port I/O read (port of `pit_ioport_read` and `speaker_ioport_read`).
    pub fn read(&mut self, port: u16) -> u8 {
        let now = self.clock.now_ns();
        match port {
            PIT_SPEAKER_PORT => {
                let refresh = (now >> 14) & 1 == 1;
                (u8::from(self.ch(2).get_out(now)) << 5)
                    | (u8::from(refresh) << 4)
                    | (u8::from(self.speaker_data_on) << 1)
                    | u8::from(self.ch(2).gate)
            }
            0x40..=0x42 => self.read_count(usize::from(port - PIT_BASE_PORT), now),
            _ => 0,
        }
    }

    fn read_count(&mut self, i: usize, now: u64) -> u8 {
        let Some(c) = self.channels.get_mut(i) else {
            return 0;
        };
        let [lo, hi] = c.latched_count.to_le_bytes();
        if c.status_latched {
            c.status_latched = false;
            return c.status;
        }
        if let Some(st) = c.count_latched {
            return match st {
                RwState::Msb => {
                    c.count_latched = None;
                    hi
                }
                RwState::Word0 => {
                    c.count_latched = Some(RwState::Msb);
                    lo
                }
                RwState::Lsb | RwState::Word1 => {
                    c.count_latched = None;
                    lo
                }
            };
        }
        let [lo, hi] = c.get_count(now).to_le_bytes();
        match c.read_state {
            RwState::Lsb => lo,
            RwState::Msb => hi,
            RwState::Word0 => {
                c.read_state = RwState::Word1;
                lo
            }
            RwState::Word1 => {
                c.read_state = RwState::Word0;
                hi
            }
        }
    }

    /// OUT pin of counter `i` now.
    pub fn out(&self, i: usize) -> bool {
        self.ch(i).get_out(self.clock.now_ns())
    }

    /// Timer callback: count every counter-0 expiration due by `now` and
    /// re-arm for the next one (port of `kvm_timer_fire`). Does not allocate.
    /// Returns whether an interrupt is pending.
    pub fn on_timer(&mut self, now: u64) -> bool {
        if !self.ch0_interrupts() {
            self.timer.cancel();
            return self.pending > 0;
        }
        let periodic = self.ch(0).mode.is_some_and(PitMode::is_periodic);
        let mut due = 0u64;
        if let Some(first) = self.expiry_time(self.next_expiry)
            && first <= now
            && let Some(load) = self.ch(0).load_time
        {
            // Expirations k with load + ceil(k*N*1e9/F) <= now:
            // k <= floor((now - load) * F / 1e9) / N.
            let ticks = muldiv(now.saturating_sub(load), PIT_FREQ_HZ, NSEC_PER_SEC);
            let last = ticks.checked_div(self.ch(0).modulus()).unwrap_or(0);
            let last = if periodic { last } else { last.min(1) };
            due = last.saturating_add(1).saturating_sub(self.next_expiry);
            self.next_expiry = last.saturating_add(1);
        }
        if due > 0 {
            self.pending = if self.reinject {
                self.pending.saturating_add(due)
            } else {
                self.pending.max(1)
            };
        }
        self.rearm();
        self.pending > 0
    }

    /// Counter-0 interrupts counted and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Port of `pit_has_pending_timer`: a backlog exists and the last pulse
    /// was acknowledged (only meaningful for the BSP).
    pub fn has_pending_timer(&self) -> bool {
        self.pending > 0 && self.irq_ack
    }

    /// Whether to pulse IRQ0 now (port of `kvm_inject_pit_timer_irqs`): one
    /// pulse at a time, the next only after [`Pit::ack_irq0`].
    pub fn take_irq0(&mut self) -> bool {
        if self.pending > 0 && self.irq_ack {
            self.irq_ack = false;
            true
        } else {
            false
        }
    }

    /// IRQ0 ack notifier (port of `kvm_pit_ack_irq`).
    pub fn ack_irq0(&mut self) {
        self.pending = self.pending.saturating_sub(1);
        self.irq_ack = true;
    }

    /// IRQ0 mask notifier: a masked IRQ0 is never acknowledged, so forget
    /// the backlog instead of stalling (what later KVM does).
    pub fn mask_irq0(&mut self, masked: bool) {
        if masked {
            self.pending = 0;
            self.irq_ack = true;
        }
    }

    /// KVM_GET_PIT2. Counts counter-0 expirations due by now first, so the
    /// saved phase leaves nothing uncounted behind; the caller injects or
    /// drops [`Pit::pending`] (the ABI has no field for it).
    pub fn save(&mut self) -> PitState2 {
        let now = self.clock.now_ns();
        self.on_timer(now);
        PitState2 {
            channels: [
                self.ch(0).save(now),
                self.ch(1).save(now),
                self.ch(2).save(now),
            ],
            flags: self.flags,
            reserved: [0; 9],
        }
    }

    /// KVM_SET_PIT2: counters continue from their saved load times (the
    /// phase is kept); counter 0's next expiration is the first after now.
    pub fn restore(&mut self, st: &PitState2) {
        let now = self.clock.now_ns();
        for (c, s) in self.channels.iter_mut().zip(st.channels.iter()) {
            *c = Channel::restore(s, now);
        }
        self.flags = st.flags;
        self.pending = 0;
        self.irq_ack = true;
        let c = self.ch(0);
        self.next_expiry = match c.ticks(now) {
            Some(d) => {
                let done = d.checked_div(c.modulus()).unwrap_or(0);
                if c.mode.is_some_and(PitMode::is_periodic) {
                    done.saturating_add(1)
                } else {
                    done.min(1).saturating_add(1)
                }
            }
            None => 1,
        };
        self.rearm();
    }
}

#[cfg(test)]
mod tests;
