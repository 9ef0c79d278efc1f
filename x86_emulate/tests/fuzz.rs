//! Fuzzing: arbitrary instruction bytes, modes, registers and arbitrary
//! `EmulatorOps` answers (faults, pending I/O, unhandleable, short fetches,
//! failed compare-exchanges, random data) never make the emulator panic, and
//! an instruction that stops with an exception or pending I/O leaves RIP
//! where it was.
//!
//! CI runs 100,000 cases; `EMU_FUZZ_CASES=10000000 cargo test --release -p
//! kvm-x86-emulate --test fuzz` is the documented long run.

use kvm_x86_emulate::{
    Context, EmulatorOps, Exception, Mode, OpError, Outcome, Registers, Seg, SegmentCache,
    SegmentLimits, emulate,
};
use proptest::prelude::*;

/// Answers every call from a PRNG.
struct ChaosOps {
    s: u64,
    /// One in `fail` calls fails.
    fail: u64,
}

impl ChaosOps {
    fn next(&mut self) -> u64 {
        self.s ^= self.s << 13;
        self.s ^= self.s >> 7;
        self.s ^= self.s << 17;
        self.s
    }

    fn outcome(&mut self) -> Result<(), OpError> {
        let r = self.next();
        if self.fail == 0 || !r.is_multiple_of(self.fail) {
            return Ok(());
        }
        Err(match (r >> 32) % 5 {
            0 => OpError::IoNeeded,
            1 => OpError::Unhandleable,
            2 => OpError::Fault(Exception::GeneralProtection(0)),
            3 => OpError::Fault(Exception::StackFault(0)),
            _ => OpError::Fault(Exception::PageFault {
                addr: r,
                error_code: (r >> 40) as u32 & 0x1f,
            }),
        })
    }

    fn cache(&mut self) -> SegmentCache {
        let r = self.next();
        SegmentCache {
            selector: r as u16,
            base: self.next(),
            limit: (r >> 16) as u32,
            access_rights: (r >> 48) as u32 & 0x1_f0ff,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = self.next() as u8;
        }
    }
}

impl EmulatorOps for ChaosOps {
    fn read(&mut self, _addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        self.outcome()?;
        self.fill(buf);
        Ok(())
    }
    fn write(&mut self, _addr: u64, _data: &[u8]) -> Result<(), OpError> {
        self.outcome()
    }
    fn cmpxchg(&mut self, _addr: u64, expected: &mut [u8], _new: &[u8]) -> Result<bool, OpError> {
        self.outcome()?;
        if self.next().is_multiple_of(3) {
            self.fill(expected);
            Ok(false)
        } else {
            Ok(true)
        }
    }
    fn fetch(&mut self, _addr: u64, _buf: &mut [u8]) -> Result<usize, OpError> {
        unreachable!("the fuzz loop wraps fetch")
    }
    fn io_in(&mut self, _port: u16, _size: u8) -> Result<u32, OpError> {
        self.outcome()?;
        Ok(self.next() as u32)
    }
    fn io_out(&mut self, _port: u16, _size: u8, _value: u32) -> Result<(), OpError> {
        self.outcome()
    }
    fn cpl(&self) -> u8 {
        (self.s >> 5) as u8 & 3
    }
    fn segment_base(&self, _seg: Seg) -> u64 {
        self.s.rotate_left(17)
    }
    fn segment_selector(&self, _seg: Seg) -> u16 {
        self.s as u16
    }
    fn get_segment(&mut self, _seg: Seg) -> Result<SegmentCache, OpError> {
        self.outcome()?;
        Ok(self.cache())
    }
    fn set_segment(&mut self, _seg: Seg, _cache: SegmentCache) -> Result<(), OpError> {
        self.outcome()
    }
    fn ldtr(&mut self) -> Result<SegmentCache, OpError> {
        self.outcome()?;
        Ok(self.cache())
    }
    fn fpu_read(&mut self, _offset: usize, buf: &mut [u8]) -> Result<(), OpError> {
        self.outcome()?;
        self.fill(buf);
        Ok(())
    }
    fn fpu_write(&mut self, _offset: usize, _data: &[u8]) -> Result<(), OpError> {
        self.outcome()
    }
    fn io_permitted(&mut self, _port: u16, _size: u8) -> bool {
        self.next() & 1 == 0
    }
    fn segment_limits(&self, _seg: Seg) -> Option<SegmentLimits> {
        let r = self.s.rotate_left(29);
        (r & 3 != 0).then_some(SegmentLimits {
            limit: (r >> 8) as u32,
            expand_down: r & 4 != 0,
            big: r & 8 != 0,
            writable: r & 16 != 0,
            readable: r & 32 != 0,
            usable: r & 64 != 0,
        })
    }
    fn stack_is_32bit(&self) -> Option<bool> {
        match self.s >> 61 {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        }
    }
    fn read_cr(&mut self, _n: u8) -> Result<u64, OpError> {
        self.outcome()?;
        Ok(self.next())
    }
    fn write_cr(&mut self, _n: u8, _value: u64) -> Result<(), OpError> {
        self.outcome()
    }
    fn read_dr(&mut self, _n: u8) -> Result<u64, OpError> {
        self.outcome()?;
        Ok(self.next())
    }
    fn write_dr(&mut self, _n: u8, _value: u64) -> Result<(), OpError> {
        self.outcome()
    }
    fn read_msr(&mut self, _msr: u32) -> Result<u64, OpError> {
        self.outcome()?;
        Ok(self.next())
    }
    fn write_msr(&mut self, _msr: u32, _value: u64) -> Result<(), OpError> {
        self.outcome()
    }
    fn load_descriptor_table(
        &mut self,
        _is_idt: bool,
        _base: u64,
        _limit: u16,
    ) -> Result<(), OpError> {
        self.outcome()
    }
    fn hypercall(&mut self) -> Result<(), OpError> {
        self.outcome()
    }
    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        self.outcome()?;
        Ok((self.next(), self.next() as u16))
    }
    fn load_tr(&mut self, _sel: u16, _base: u64, _limit: u32, _ar: u32) -> Result<(), OpError> {
        self.outcome()
    }
    fn xmm_read(&mut self, _reg: u8) -> Result<[u8; 16], OpError> {
        self.outcome()?;
        let mut b = [0u8; 16];
        self.fill(&mut b);
        Ok(b)
    }
    fn xmm_write(&mut self, _reg: u8, _value: [u8; 16]) -> Result<(), OpError> {
        self.outcome()
    }
}

/// The instruction bytes come from the case; fetch may stop short.
struct Fuzz<'a> {
    code: &'a [u8],
    short: usize,
    ops: ChaosOps,
}

impl EmulatorOps for Fuzz<'_> {
    fn read(&mut self, a: u64, b: &mut [u8]) -> Result<(), OpError> {
        self.ops.read(a, b)
    }
    fn write(&mut self, a: u64, d: &[u8]) -> Result<(), OpError> {
        self.ops.write(a, d)
    }
    fn cmpxchg(&mut self, a: u64, e: &mut [u8], n: &[u8]) -> Result<bool, OpError> {
        self.ops.cmpxchg(a, e, n)
    }
    fn fetch(&mut self, _addr: u64, buf: &mut [u8]) -> Result<usize, OpError> {
        // Serve the code in pieces of at most `short` bytes, then fault.
        if self.code.is_empty() {
            return Err(OpError::Fault(Exception::PageFault {
                addr: 0,
                error_code: 0x10,
            }));
        }
        let n = buf.len().min(self.code.len()).min(self.short.max(1));
        buf[..n].copy_from_slice(&self.code[..n]);
        self.code = &self.code[n..];
        Ok(n)
    }
    fn io_in(&mut self, p: u16, s: u8) -> Result<u32, OpError> {
        self.ops.io_in(p, s)
    }
    fn io_out(&mut self, p: u16, s: u8, v: u32) -> Result<(), OpError> {
        self.ops.io_out(p, s, v)
    }
    fn cpl(&self) -> u8 {
        self.ops.cpl()
    }
    fn segment_base(&self, s: Seg) -> u64 {
        self.ops.segment_base(s)
    }
    fn segment_selector(&self, s: Seg) -> u16 {
        self.ops.segment_selector(s)
    }
    fn get_segment(&mut self, s: Seg) -> Result<SegmentCache, OpError> {
        self.ops.get_segment(s)
    }
    fn set_segment(&mut self, s: Seg, c: SegmentCache) -> Result<(), OpError> {
        self.ops.set_segment(s, c)
    }
    fn ldtr(&mut self) -> Result<SegmentCache, OpError> {
        self.ops.ldtr()
    }
    fn fpu_read(&mut self, o: usize, b: &mut [u8]) -> Result<(), OpError> {
        self.ops.fpu_read(o, b)
    }
    fn fpu_write(&mut self, o: usize, d: &[u8]) -> Result<(), OpError> {
        self.ops.fpu_write(o, d)
    }
    fn io_permitted(&mut self, p: u16, s: u8) -> bool {
        self.ops.io_permitted(p, s)
    }
    fn segment_limits(&self, s: Seg) -> Option<SegmentLimits> {
        self.ops.segment_limits(s)
    }
    fn stack_is_32bit(&self) -> Option<bool> {
        self.ops.stack_is_32bit()
    }
    fn load_flat_segment(
        &mut self,
        s: Seg,
        v: u16,
        d: kvm_x86_emulate::FlatSegment,
    ) -> Result<(), OpError> {
        self.ops.outcome()?;
        let _ = (s, v, d);
        Ok(())
    }
    fn read_cr(&mut self, n: u8) -> Result<u64, OpError> {
        self.ops.read_cr(n)
    }
    fn write_cr(&mut self, n: u8, v: u64) -> Result<(), OpError> {
        self.ops.write_cr(n, v)
    }
    fn read_dr(&mut self, n: u8) -> Result<u64, OpError> {
        self.ops.read_dr(n)
    }
    fn write_dr(&mut self, n: u8, v: u64) -> Result<(), OpError> {
        self.ops.write_dr(n, v)
    }
    fn read_msr(&mut self, m: u32) -> Result<u64, OpError> {
        self.ops.read_msr(m)
    }
    fn write_msr(&mut self, m: u32, v: u64) -> Result<(), OpError> {
        self.ops.write_msr(m, v)
    }
    fn load_descriptor_table(&mut self, i: bool, b: u64, l: u16) -> Result<(), OpError> {
        self.ops.load_descriptor_table(i, b, l)
    }
    fn hypercall(&mut self) -> Result<(), OpError> {
        self.ops.hypercall()
    }
    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        self.ops.gdtr()
    }
    fn load_tr(&mut self, s: u16, b: u64, l: u32, a: u32) -> Result<(), OpError> {
        self.ops.load_tr(s, b, l, a)
    }
    fn xmm_read(&mut self, r: u8) -> Result<[u8; 16], OpError> {
        self.ops.xmm_read(r)
    }
    fn xmm_write(&mut self, r: u8, v: [u8; 16]) -> Result<(), OpError> {
        self.ops.xmm_write(r, v)
    }
}

thread_local! {
    /// Outcome counts: done, exception, pending I/O, unhandleable.
    static STATS: std::cell::RefCell<[u64; 4]> = const { std::cell::RefCell::new([0; 4]) };
}

const MODES: [Mode; 5] = [
    Mode::Real,
    Mode::Vm86,
    Mode::Prot16,
    Mode::Prot32,
    Mode::Prot64,
];

#[allow(clippy::too_many_arguments)]
fn one(
    code: &[u8],
    mode: Mode,
    gprs: [u64; 16],
    rip: u64,
    rflags: u64,
    seed: u64,
    short: usize,
    fail: u64,
) {
    let regs = Registers {
        gpr: gprs,
        rip,
        rflags,
    };
    let mut ctx = Context::new(mode, regs);
    let mut ops = Fuzz {
        code,
        short,
        ops: ChaosOps { s: seed | 1, fail },
    };
    let out = emulate(&mut ctx, &mut ops);
    STATS.with(|st| {
        let mut st = st.borrow_mut();
        let i = match out {
            Ok(Outcome::Done | Outcome::Halt) => 0,
            Ok(Outcome::Exception(_)) => 1,
            Ok(Outcome::IoNeeded) => 2,
            Err(_) => 3,
        };
        st[i] += 1;
    });
    if let Ok(Outcome::Exception(_) | Outcome::IoNeeded) = out {
        assert_eq!(
            ctx.regs.rip, rip,
            "{code:02x?} in {mode:?}: RIP moved on {out:?}"
        );
    }
}

#[test]
fn fuzz_bulk() {
    let n: u64 = std::env::var("EMU_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut s = 0x243f_6a88_85a3_08d3u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // Prefixes and the opcodes the emulator handles, to get past decoding.
    let hot = [
        0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x64, 0x48, 0x41, 0x4c, 0x0f, 0x0f, 0x8b, 0x89, 0xa4,
        0xab, 0xf7, 0xd3, 0xc7, 0x6f, 0x11, 0x7e,
    ];
    for i in 0..n {
        let mut code = [0u8; 16];
        for c in code.chunks_mut(8) {
            c.copy_from_slice(&next().to_le_bytes()[..c.len()]);
        }
        let r = next();
        for j in 0..(r % 4) as usize {
            code[j] = hot[((r >> (8 + 5 * j)) % hot.len() as u64) as usize];
        }
        let len = 1 + (next() % 16) as usize;
        let mut gprs = [0u64; 16];
        for g in gprs.iter_mut() {
            *g = match next() % 4 {
                0 => next() % 64,
                1 => u64::MAX - next() % 64,
                _ => next(),
            };
        }
        let rflags = (next() & 0x3f_7fd5) | 2;
        let short = (next() % 16) as usize;
        let fail = [0, 2, 5, 50][(next() % 4) as usize];
        one(
            &code[..len],
            MODES[(i % 5) as usize],
            gprs,
            next(),
            rflags,
            next(),
            short,
            fail,
        );
    }
    STATS.with(|st| {
        let [done, exc, io, unh] = *st.borrow();
        eprintln!(
            "fuzz outcomes: {done} done, {exc} exceptions, {io} pending I/O, {unh} unhandleable"
        );
        assert!(done > n / 10, "too few cases get through execution");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn fuzz_proptest(
        code in proptest::collection::vec(any::<u8>(), 0..17),
        mode in 0usize..5,
        gprs in any::<[u64; 16]>(),
        rip in any::<u64>(),
        rflags in any::<u64>(),
        seed in any::<u64>(),
        short in 0usize..16,
        fail in prop_oneof![Just(0u64), Just(2u64), Just(7u64)],
    ) {
        one(&code, MODES[mode], gprs, rip, rflags, seed, short, fail);
    }
}
