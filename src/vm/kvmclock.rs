//! kvmclock: the paravirtual clock a guest reads from memory (inventory
//! §9.12). Port of kvm_x86.c `kvm_write_wall_clock`, `kvm_write_guest_time`
//! and `kvm_request_guest_time_update`, with the C's `boot_hrtime` bug
//! fixed: the C never set it, so a guest's `system_time` was the host's
//! uptime while its wall clock was the VM's creation time; here both are
//! taken at VM creation, so "wall clock + system_time" is the real time.
//!
//! The guest finds the structures at the guest-physical addresses it wrote
//! to MSR_KVM_WALL_CLOCK(_NEW) and MSR_KVM_SYSTEM_TIME(_NEW) and reads them
//! with the version protocol: odd while the host updates, even when
//! consistent. Its time is then
//! `system_time + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`
//! (a negative shift shifts right): Linux's `pvclock_clocksource_read`,
//! the ABI of `struct pvclock_vcpu_time_info`.

use core::sync::atomic::{Ordering, compiler_fence};

/// `PVCLOCK_TSC_STABLE_BIT`: the TSC is synchronized across VCPUs, so the
/// guest need not keep the highest value it saw (illumos keeps the TSCs in
/// step through `tsc_gethrtime_tick_delta`).
pub const PVCLOCK_TSC_STABLE_BIT: u8 = 1;

/// `KVMCLOCK_UPDATE_INTERVAL`: routine (not forced) updates are at least
/// 100 ms apart, as upstream Linux throttles them.
pub const UPDATE_INTERVAL_NS: u64 = 100_000_000;

/// Size of `struct pvclock_vcpu_time_info` (packed: version u32, pad u32,
/// tsc_timestamp u64, system_time u64, tsc_to_system_mul u32, tsc_shift
/// i8, flags u8, pad[2]).
pub const TIME_INFO_SIZE: usize = 32;

/// Size of `struct pvclock_wall_clock` (version, sec, nsec: three u32).
pub const WALL_CLOCK_SIZE: usize = 12;

const PAGE_SIZE: u64 = 4096;

/// One consistent reading of the host clock and its TSC
/// (`tsc_gethrtime_params` on illumos): at TSC `tsc` the host's monotonic
/// time was `hrtime` ns, and TSC ticks convert to ns with `mul`/`shift` in
/// the pvclock formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockParams {
    /// Monotonic host time, ns (`gethrtime`).
    pub hrtime: u64,
    /// The CPU-neutral host TSC at that moment (the guest's TSC is this
    /// plus the VCPU's TSC offset).
    pub tsc: u64,
    /// `tsc_to_system_mul`.
    pub mul: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

/// The multiplier and shift that turn ticks of a `tsc_hz` clock into
/// nanoseconds in the pvclock formula (what Linux's `kvm_get_time_scale`
/// computes for `NSEC_PER_SEC`): the shift scales the tick count so that
/// the multiplier, a 0.32 fixed-point fraction, is as precise as possible.
/// For hosts that know their TSC rate but have no `tsc_gethrtime_params`.
pub fn time_scale(tsc_hz: u64) -> (u32, i8) {
    const NSEC_PER_SEC: u64 = 1_000_000_000;
    let mut base = tsc_hz.max(1);
    let mut scaled = NSEC_PER_SEC;
    let mut shift: i8 = 0;
    // Bring the tick rate to 32 bits and at most twice the target rate.
    while base > scaled.saturating_mul(2) || base >> 32 != 0 {
        base >>= 1;
        shift -= 1;
    }
    let mut base32 = base;
    // Then raise it above the target rate (the fraction must be < 1).
    while base32 <= scaled || scaled >> 32 != 0 {
        if scaled >> 32 != 0 || base32 & 0x8000_0000 != 0 {
            scaled >>= 1;
        } else {
            base32 <<= 1;
        }
        shift += 1;
    }
    // scaled < base32 < 2^32: the quotient fits 32 bits.
    let mul = (scaled << 32).checked_div(base32).unwrap_or(0);
    (u32::try_from(mul).unwrap_or(u32::MAX), shift)
}

/// Guest-physical memory as kvmclock writes it (`kvm_read_guest` /
/// `kvm_write_guest`); `false` when the address is not guest RAM.
pub trait GuestRam {
    fn read(&mut self, gpa: u64, buf: &mut [u8]) -> bool;
    fn write(&mut self, gpa: u64, data: &[u8]) -> bool;
}

/// A VCPU's kvmclock state (`vcpu->arch.time_val`, `time_addr`,
/// `time_update`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuClock {
    /// The MSR_KVM_SYSTEM_TIME value as written (read back by RDMSR).
    pub msr: u64,
    /// Where the time structure goes: enabled and within one page.
    pub addr: Option<u64>,
    /// Host time of the last update (`time_update`; `None`: never).
    pub last_update: Option<u64>,
}

impl VcpuClock {
    /// WRMSR MSR_KVM_SYSTEM_TIME(_NEW) (`kvm_set_msr_common`): bit 0
    /// enables; a structure that would cross a page is ignored (the C
    /// accepts the write and writes nothing). Returns whether an update is
    /// due at host time `now` (the C's forced
    /// `kvm_request_guest_time_update`).
    pub fn set_msr(&mut self, data: u64, now: u64) -> bool {
        self.msr = data;
        self.addr = None;
        if data & 1 == 0 {
            return false;
        }
        let gpa = data & !1;
        if (gpa % PAGE_SIZE) + TIME_INFO_SIZE as u64 > PAGE_SIZE {
            return false;
        }
        self.addr = Some(gpa);
        self.wants_update(now, true)
    }

    /// `kvm_request_guest_time_update`: whether to write the structure at
    /// host time `now`. A forced request (MSR write) is honoured unless an
    /// update was made less than [`UPDATE_INTERVAL_NS`] ago; so is a
    /// routine one (each `vcpu_load`), except that a first update is never
    /// throttled when forced.
    pub fn wants_update(&self, now: u64, force: bool) -> bool {
        if self.addr.is_none() {
            return false;
        }
        match self.last_update {
            None if force => true,
            None => now >= UPDATE_INTERVAL_NS,
            Some(t) => now.saturating_sub(t) >= UPDATE_INTERVAL_NS,
        }
    }

    /// `kvm_write_guest_time`: write the time structure with the version
    /// protocol (odd while writing; a structure found odd, never written
    /// by us, is bumped by two). `tsc_offset` is the VCPU's CPU-neutral TSC
    /// offset, `boot_hrtime` the host time at VM creation. An address that
    /// is not guest RAM disables the clock, as the C's `bad_page` case.
    pub fn write_time(
        &mut self,
        mem: &mut impl GuestRam,
        p: &ClockParams,
        tsc_offset: u64,
        boot_hrtime: u64,
    ) {
        let Some(gpa) = self.addr else {
            return;
        };
        let mut v = [0u8; 4];
        if !mem.read(gpa, &mut v) {
            self.addr = None;
            return;
        }
        let old = u32::from_le_bytes(v);
        let version = if old & 1 != 0 {
            old.wrapping_add(2)
        } else {
            old.wrapping_add(1)
        };
        let mut info = [0u8; TIME_INFO_SIZE];
        let fields: [(usize, &[u8]); 6] = [
            (0, &version.to_le_bytes()),
            (8, &p.tsc.wrapping_add(tsc_offset).to_le_bytes()),
            (16, &p.hrtime.saturating_sub(boot_hrtime).to_le_bytes()),
            (24, &p.mul.to_le_bytes()),
            (28, &p.shift.to_le_bytes()),
            (29, &[PVCLOCK_TSC_STABLE_BIT]),
        ];
        for (off, bytes) in fields {
            if let Some(dst) = info.get_mut(off..off + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        // Version odd first, then the body, then the even version: another
        // VCPU may read this structure meanwhile (stores are ordered on
        // x86; the fences keep the compiler from merging them).
        let ok = mem.write(gpa, &version.to_le_bytes());
        compiler_fence(Ordering::Release);
        let ok = ok && mem.write(gpa, &info);
        compiler_fence(Ordering::Release);
        let ok = ok && mem.write(gpa, &version.wrapping_add(1).to_le_bytes());
        if !ok {
            self.addr = None;
            return;
        }
        self.last_update = Some(p.hrtime);
    }
}

/// `kvm_write_wall_clock`: the wall-clock time at which the guest's
/// `system_time` was zero (the VM's creation), with the version protocol.
/// Nothing is written at GPA 0 or outside guest RAM.
pub fn write_wall_clock(mem: &mut impl GuestRam, gpa: u64, sec: u64, nsec: u32) {
    if gpa == 0 {
        return;
    }
    let mut v = [0u8; 4];
    if !mem.read(gpa, &mut v) {
        return;
    }
    let mut version = u32::from_le_bytes(v);
    if version & 1 != 0 {
        // Never written by us: random contents.
        version = version.wrapping_add(1);
    }
    version = version.wrapping_add(1);
    let mut wc = [0u8; WALL_CLOCK_SIZE];
    let fields: [(usize, [u8; 4]); 3] = [
        (0, version.to_le_bytes()),
        // The ABI's seconds are 32 bits (good until 2106).
        (4, (sec as u32).to_le_bytes()),
        (8, nsec.to_le_bytes()),
    ];
    for (off, bytes) in fields {
        if let Some(dst) = wc.get_mut(off..off + 4) {
            dst.copy_from_slice(&bytes);
        }
    }
    let _ = mem.write(gpa, &version.to_le_bytes())
        && {
            compiler_fence(Ordering::Release);
            mem.write(gpa, &wc)
        }
        && {
            compiler_fence(Ordering::Release);
            mem.write(gpa, &version.wrapping_add(1).to_le_bytes())
        };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Guest RAM 0..len, recording every write.
    struct Ram {
        bytes: Vec<u8>,
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl Ram {
        fn new(len: usize) -> Ram {
            Ram {
                bytes: vec![0; len],
                writes: Vec::new(),
            }
        }
        fn u32_at(&self, off: usize) -> u32 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.bytes[off..off + 4]);
            u32::from_le_bytes(b)
        }
        fn u64_at(&self, off: usize) -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.bytes[off..off + 8]);
            u64::from_le_bytes(b)
        }
    }

    impl GuestRam for Ram {
        fn read(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
            let s = gpa as usize;
            match self.bytes.get(s..s + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
        fn write(&mut self, gpa: u64, data: &[u8]) -> bool {
            let s = gpa as usize;
            match self.bytes.get_mut(s..s + data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    self.writes.push((gpa, data.to_vec()));
                    true
                }
                None => false,
            }
        }
    }

    /// What a guest computes from the structure (Linux
    /// `pvclock_scale_delta` with 128-bit arithmetic, written from the
    /// ABI's formula).
    fn guest_ns(delta: u64, mul: u32, shift: i8) -> u64 {
        let d = if shift < 0 {
            delta >> (-shift) as u32
        } else {
            delta << shift as u32
        };
        ((u128::from(d) * u128::from(mul)) >> 32) as u64
    }

    #[test]
    fn time_scale_converts_a_second_of_ticks_to_a_second() {
        for hz in [
            31_250_001u64,
            50_000_000,
            500_000_000,
            1_000_000_000,
            2_400_000_000,
            3_000_000_000,
            5_200_000_000,
        ] {
            let (mul, shift) = time_scale(hz);
            let ns = guest_ns(hz, mul, shift);
            // Within 1 ns per 10^8: the 32-bit fraction's precision.
            assert!(
                ns.abs_diff(1_000_000_000) <= 10,
                "{hz} Hz: {ns} ns per second (mul {mul:#x} shift {shift})"
            );
            // A fraction below 1 with its top bit set: full precision.
            assert!(mul >= 0x8000_0000, "{hz} Hz: mul {mul:#x}");
        }
    }

    #[test]
    fn system_time_msr_enables_and_confines_to_a_page() {
        let mut c = VcpuClock::default();
        assert!(!c.set_msr(0x2000, 0), "bit 0 clear: disabled");
        assert_eq!(c.addr, None);
        assert_eq!(c.msr, 0x2000);
        assert!(c.set_msr(0x2001, 0), "enabled: a forced first update");
        assert_eq!(c.addr, Some(0x2000));
        // 0x2fe0 + 32 = 0x3000: fits; 0x2fe1 does not.
        assert!(c.set_msr(0x2fe0 | 1, 0));
        assert!(!c.set_msr(0x2fe8 | 1, 0));
        assert_eq!(c.addr, None);
    }

    #[test]
    fn routine_updates_are_throttled_to_100ms() {
        let mut c = VcpuClock::default();
        c.set_msr(0x1001, 0);
        let mut ram = Ram::new(0x2000);
        let p = ClockParams {
            hrtime: 5_000_000_000,
            tsc: 1,
            mul: 1,
            shift: 0,
        };
        c.write_time(&mut ram, &p, 0, 0);
        assert!(!c.wants_update(5_050_000_000, false));
        assert!(!c.wants_update(5_050_000_000, true));
        assert!(c.wants_update(5_100_000_000, false));
        // A forced request (the MSR rewritten) within the interval of an
        // earlier update is skipped too (the C checks `time_update`).
        assert!(!c.set_msr(0x1001, 5_010_000_000));
        assert!(c.set_msr(0x1001, 5_200_000_000));
    }

    #[test]
    fn write_time_fills_the_abi_structure() {
        let mut c = VcpuClock::default();
        c.set_msr(0x1040 | 1, 0);
        let mut ram = Ram::new(0x2000);
        let p = ClockParams {
            hrtime: 7_000_000_000,
            tsc: 1_000_000,
            mul: 0xa000_0000,
            shift: -1,
        };
        c.write_time(&mut ram, &p, 500, 2_000_000_000);
        let b = 0x1040;
        assert_eq!(ram.u32_at(b), 2, "version: 0 → 1 while writing → 2");
        assert_eq!(ram.u64_at(b + 8), 1_000_500, "tsc_timestamp = tsc + offset");
        assert_eq!(ram.u64_at(b + 16), 5_000_000_000, "since VM creation");
        assert_eq!(ram.u32_at(b + 24), 0xa000_0000);
        assert_eq!(ram.bytes[b + 28] as i8, -1);
        assert_eq!(ram.bytes[b + 29], PVCLOCK_TSC_STABLE_BIT);
        // The odd version went out before the body.
        assert_eq!(ram.writes[0], (0x1040, 1u32.to_le_bytes().to_vec()));
        assert_eq!(c.last_update, Some(7_000_000_000));
        // Junk with an odd version (never ours) is bumped by two, to odd+2
        // while writing and odd+3 after.
        ram.bytes[b..b + 4].copy_from_slice(&7u32.to_le_bytes());
        c.write_time(&mut ram, &p, 0, 0);
        assert_eq!(ram.u32_at(b), 10);
    }

    #[test]
    fn write_time_outside_ram_disables_the_clock() {
        let mut c = VcpuClock::default();
        c.set_msr(0x9000 | 1, 0);
        let mut ram = Ram::new(0x2000);
        let p = ClockParams {
            hrtime: 1,
            tsc: 1,
            mul: 1,
            shift: 0,
        };
        c.write_time(&mut ram, &p, 0, 0);
        assert_eq!(c.addr, None);
        assert!(ram.writes.is_empty());
    }

    #[test]
    fn wall_clock_with_version_protocol() {
        let mut ram = Ram::new(0x100);
        write_wall_clock(&mut ram, 0x10, 1_700_000_000, 123);
        assert_eq!(ram.u32_at(0x10), 2);
        assert_eq!(ram.u32_at(0x14), 1_700_000_000);
        assert_eq!(ram.u32_at(0x18), 123);
        write_wall_clock(&mut ram, 0x10, 1_700_000_000, 123);
        assert_eq!(ram.u32_at(0x10), 4);
        ram.bytes[0x10..0x14].copy_from_slice(&5u32.to_le_bytes());
        write_wall_clock(&mut ram, 0x10, 1, 2);
        assert_eq!(ram.u32_at(0x10), 8, "odd junk 5 → 6 → 7 while writing → 8");
        let before = ram.writes.len();
        write_wall_clock(&mut ram, 0, 1, 2);
        assert_eq!(ram.writes.len(), before, "GPA 0: not enabled");
    }
}
