//! A mock [`EmulatorOps`]: flat guest memory made of regions, a port log,
//! control registers, MSRs and segments, plus knobs to inject faults and
//! pending-I/O answers; and what the unit tests share around it: the
//! layout of guest-linear memory, GPR indexes, descriptor encoding and
//! the one-instruction runner.
#![allow(dead_code)]

use kvm_x86_emulate::{
    Context, EmulatorOps, Exception, FlatSegment, Mode, OpError, Outcome, Registers, Seg,
    SegmentCache, SegmentLimits, Unhandleable, emulate,
};
use std::collections::BTreeMap;

/// Where the instruction under test is mapped (the initial RIP).
pub const RIP: u64 = 0x1000;
/// The data page memory operands point at.
pub const DATA: u64 = 0x2000;
/// The GDT of the protected-mode tests.
pub const GDT: u64 = 0x4000;
/// The stack page of the protected-mode tests.
pub const STACK: u64 = 0x8000;
pub const MSR_EFER: u32 = 0xc000_0080;
/// EFER with LME and LMA.
pub const EFER_LONG: u64 = 0x500;

/// Indexes into `Registers::gpr` (the ModRM register numbers).
pub mod gpr {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
}

/// xorshift64*: fast and good enough for the differential tests' inputs
/// (each test adds the value shapes it wants in an `impl Rng` of its own).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Cases per form of the differential tests: `EMU_DIFF_CASES`, else 10,000.
pub fn diff_cases() -> u64 {
    std::env::var("EMU_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// What one emulated instruction leaves: the context, the ops, the result.
pub type Run<O = Mock> = (Context, O, Result<Outcome, Unhandleable>);

/// A mock with `code` mapped at RIP.
pub fn mock_with_code(code: &[u8]) -> Mock {
    let mut m = Mock::new();
    m.map(RIP, code);
    m
}

/// Emulate one instruction in `mode` over `ops`: RIP at RIP, RFLAGS 2, the
/// other registers 0, then `set` adjusts registers and ops.
pub fn run_with<O: EmulatorOps>(
    mode: Mode,
    mut ops: O,
    set: impl FnOnce(&mut Registers, &mut O),
) -> Run<O> {
    let mut regs = Registers {
        rip: RIP,
        rflags: 2,
        ..Registers::default()
    };
    set(&mut regs, &mut ops);
    let mut ctx = Context::new(mode, regs);
    let out = emulate(&mut ctx, &mut ops);
    (ctx, ops, out)
}

/// `run_with` over a mock with only `code` (at RIP) mapped.
pub fn run(mode: Mode, code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    run_with(mode, mock_with_code(code), set)
}

/// The protected-mode layout of the segment-load tests: `code` at RIP,
/// `gdt` at GDT (GDTR limit 0xff), DATA (0x20 bytes) and STACK (0x200
/// bytes) zeroed; EFER.LME/LMA in 64-bit mode.
pub fn segmented_mock(mode: Mode, code: &[u8], gdt: &[u8]) -> Mock {
    let mut m = mock_with_code(code);
    m.map(GDT, gdt)
        .map(DATA, &[0; 0x20])
        .map(STACK, &[0; 0x200]);
    m.gdtr = Some((GDT, 0xff));
    if mode == Mode::Prot64 {
        m.msrs.insert(MSR_EFER, EFER_LONG);
    }
    m
}

/// `run_with` with RBX = DATA and RSP = STACK + 0x100 before `set`.
pub fn run_segmented(mode: Mode, m: Mock, set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    run_with(mode, m, |r, m| {
        r.gpr[gpr::RBX] = DATA;
        r.gpr[gpr::RSP] = STACK + 0x100;
        set(r, m)
    })
}

/// The body of `impl EmulatorOps for W` where `W` wraps other ops in
/// `.0`: the required methods, delegated, every provided one left at the
/// trait's default (what ops without that support answer).
/// `delegate_required_ops!(read_cr: |w: &mut W, n: u8| ...)` replaces
/// `read_cr`.
#[allow(unused_macros)]
macro_rules! delegate_required_ops {
    () => {
        $crate::common::delegate_required_ops!(read_cr: |w: &mut Self, n: u8| {
            ::kvm_x86_emulate::EmulatorOps::read_cr(&mut w.0, n)
        });
    };
    (read_cr: $read_cr:expr) => {
        fn read(&mut self, a: u64, b: &mut [u8]) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::read(&mut self.0, a, b)
        }
        fn write(&mut self, a: u64, d: &[u8]) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::write(&mut self.0, a, d)
        }
        fn cmpxchg(
            &mut self,
            a: u64,
            e: &mut [u8],
            n: &[u8],
        ) -> Result<bool, ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::cmpxchg(&mut self.0, a, e, n)
        }
        fn fetch(&mut self, a: u64, b: &mut [u8]) -> Result<usize, ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::fetch(&mut self.0, a, b)
        }
        fn io_in(&mut self, p: u16, s: u8) -> Result<u32, ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::io_in(&mut self.0, p, s)
        }
        fn io_out(&mut self, p: u16, s: u8, v: u32) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::io_out(&mut self.0, p, s, v)
        }
        fn cpl(&self) -> u8 {
            ::kvm_x86_emulate::EmulatorOps::cpl(&self.0)
        }
        fn segment_base(&self, s: ::kvm_x86_emulate::Seg) -> u64 {
            ::kvm_x86_emulate::EmulatorOps::segment_base(&self.0, s)
        }
        fn segment_selector(&self, s: ::kvm_x86_emulate::Seg) -> u16 {
            ::kvm_x86_emulate::EmulatorOps::segment_selector(&self.0, s)
        }
        fn read_cr(&mut self, n: u8) -> Result<u64, ::kvm_x86_emulate::OpError> {
            let f = $read_cr;
            f(self, n)
        }
        fn write_cr(&mut self, n: u8, v: u64) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::write_cr(&mut self.0, n, v)
        }
        fn read_dr(&mut self, n: u8) -> Result<u64, ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::read_dr(&mut self.0, n)
        }
        fn write_dr(&mut self, n: u8, v: u64) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::write_dr(&mut self.0, n, v)
        }
        fn read_msr(&mut self, m: u32) -> Result<u64, ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::read_msr(&mut self.0, m)
        }
        fn write_msr(&mut self, m: u32, v: u64) -> Result<(), ::kvm_x86_emulate::OpError> {
            ::kvm_x86_emulate::EmulatorOps::write_msr(&mut self.0, m, v)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use delegate_required_ops;

/// One mapped range of guest-linear memory.
pub struct Region {
    pub base: u64,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Mock {
    pub regions: Vec<Region>,
    pub cpl: u8,
    pub seg_base: [u64; 6],
    pub seg_sel: [u16; 6],
    pub crs: [u64; 9],
    pub drs: [u64; 8],
    pub msrs: BTreeMap<u32, u64>,
    /// Values returned by port reads, in order (then 0xffff_ffff).
    pub port_in: Vec<u32>,
    /// (port, size, value) of every port write.
    pub port_out: Vec<(u16, u8, u32)>,
    /// (port, size) of every port read.
    pub port_reads: Vec<(u16, u8)>,
    /// Every write: (address, bytes).
    pub writes: Vec<(u64, Vec<u8>)>,
    /// Every read: (address, length).
    pub reads: Vec<(u64, usize)>,
    /// Make accesses at these addresses need userspace I/O.
    pub mmio: Vec<(u64, u64)>,
    /// Every `set_segment`, in order.
    pub loaded_segs: Vec<(Seg, SegmentCache)>,
    /// The rest of each segment's descriptor cache (with `seg_base`,
    /// `seg_sel`): limit and access rights (`get_segment`).
    pub seg_limit: [u32; 6],
    pub seg_ar: [u32; 6],
    /// LDTR; `None` answers `ldtr` with `Unhandleable`.
    pub ldtr: Option<SegmentCache>,
    /// The FXSAVE image behind `fpu_read`/`fpu_write` (512 bytes once used).
    pub fpu: Vec<u8>,
    /// Every `fpu_write`: (offset, bytes).
    pub fpu_writes: Vec<(usize, Vec<u8>)>,
    /// Every `note_xadd`.
    pub xadds: Vec<u64>,
    pub flat_segs: Vec<(Seg, u16, FlatSegment)>,
    pub limits: [Option<SegmentLimits>; 6],
    pub halted: bool,
    /// The XMM registers (`xmm_read`/`xmm_write`).
    pub xmm: [[u8; 16]; 16],
    /// Record reads and writes (off for the bulk differential runs).
    pub log: bool,
    pub io_allowed: bool,
    /// GDTR (base, limit); `None` answers `gdtr` with `Unhandleable`.
    pub gdtr: Option<(u64, u16)>,
    /// Every `load_tr`: (selector, base, limit, access rights).
    pub tr_loads: Vec<(u16, u64, u32, u32)>,
    /// TR (`tr`; `load_tr` replaces it); `None` answers `tr` with
    /// `Unhandleable`.
    pub tr: Option<SegmentCache>,
    /// Every `load_ldtr`: (selector, base, limit, access rights); it also
    /// replaces `ldtr`.
    pub ldtr_loads: Vec<(u16, u64, u32, u32)>,
    /// Every `write_cr`: (register, value).
    pub cr_writes: Vec<(u8, u64)>,
}

pub fn seg_index(s: Seg) -> usize {
    match s {
        Seg::Es => 0,
        Seg::Cs => 1,
        Seg::Ss => 2,
        Seg::Ds => 3,
        Seg::Fs => 4,
        Seg::Gs => 5,
    }
}

impl Mock {
    pub fn new() -> Mock {
        Mock {
            log: true,
            ..Mock::default()
        }
    }

    pub fn map(&mut self, base: u64, data: &[u8]) -> &mut Self {
        self.regions.push(Region {
            base,
            data: data.to_vec(),
        });
        self
    }

    pub fn region(&self, base: u64) -> &[u8] {
        &self
            .regions
            .iter()
            .find(|r| r.base == base)
            .expect("region")
            .data
    }

    pub fn region_mut(&mut self, base: u64) -> &mut [u8] {
        &mut self
            .regions
            .iter_mut()
            .find(|r| r.base == base)
            .expect("region")
            .data
    }

    fn find(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        for r in &mut self.regions {
            if addr >= r.base {
                let off = (addr - r.base) as usize;
                if off.checked_add(len).is_some_and(|end| end <= r.data.len()) {
                    return Some(&mut r.data[off..off + len]);
                }
            }
        }
        None
    }

    fn pf(addr: u64, write: bool) -> OpError {
        OpError::Fault(Exception::PageFault {
            addr,
            error_code: if write { 2 } else { 0 },
        })
    }

    fn is_mmio(&self, addr: u64) -> bool {
        self.mmio.iter().any(|&(b, l)| addr >= b && addr < b + l)
    }

    /// (segment, selector) of every `set_segment`, in order.
    pub fn loaded_selectors(&self) -> Vec<(Seg, u16)> {
        self.loaded_segs
            .iter()
            .map(|(s, c)| (*s, c.selector))
            .collect()
    }

    pub fn read_u64(&mut self, addr: u64, n: usize) -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(self.find(addr, n).expect("mapped"));
        u64::from_le_bytes(b)
    }
}

impl EmulatorOps for Mock {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        if self.is_mmio(addr) {
            return Err(OpError::IoNeeded);
        }
        if self.log {
            self.reads.push((addr, buf.len()));
        }
        let n = buf.len();
        let src = self.find(addr, n).ok_or(Mock::pf(addr, false))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError> {
        if self.log {
            self.writes.push((addr, data.to_vec()));
        }
        let dst = self.find(addr, data.len()).ok_or(Mock::pf(addr, true))?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn cmpxchg(&mut self, addr: u64, expected: &mut [u8], new: &[u8]) -> Result<bool, OpError> {
        let dst = self.find(addr, new.len()).ok_or(Mock::pf(addr, true))?;
        if dst == expected {
            dst.copy_from_slice(new);
            if self.log {
                self.writes.push((addr, new.to_vec()));
            }
            Ok(true)
        } else {
            expected.copy_from_slice(dst);
            Ok(false)
        }
    }

    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, OpError> {
        for r in &self.regions {
            if addr >= r.base && addr < r.base + r.data.len() as u64 {
                let off = (addr - r.base) as usize;
                let n = buf.len().min(r.data.len() - off);
                buf[..n].copy_from_slice(&r.data[off..off + n]);
                return Ok(n);
            }
        }
        Err(Mock::pf(addr, false))
    }

    fn io_in(&mut self, port: u16, size: u8) -> Result<u32, OpError> {
        self.port_reads.push((port, size));
        Ok(if self.port_in.is_empty() {
            0xffff_ffff
        } else {
            self.port_in.remove(0)
        })
    }

    fn io_out(&mut self, port: u16, size: u8, value: u32) -> Result<(), OpError> {
        self.port_out.push((port, size, value));
        Ok(())
    }

    fn cpl(&self) -> u8 {
        self.cpl
    }

    fn segment_base(&self, seg: Seg) -> u64 {
        self.seg_base[seg_index(seg)]
    }

    fn segment_selector(&self, seg: Seg) -> u16 {
        self.seg_sel[seg_index(seg)]
    }

    fn get_segment(&mut self, seg: Seg) -> Result<SegmentCache, OpError> {
        let i = seg_index(seg);
        Ok(SegmentCache {
            selector: self.seg_sel[i],
            base: self.seg_base[i],
            limit: self.seg_limit[i],
            access_rights: self.seg_ar[i],
        })
    }

    fn set_segment(&mut self, seg: Seg, cache: SegmentCache) -> Result<(), OpError> {
        self.loaded_segs.push((seg, cache));
        let i = seg_index(seg);
        self.seg_sel[i] = cache.selector;
        self.seg_base[i] = cache.base;
        self.seg_limit[i] = cache.limit;
        self.seg_ar[i] = cache.access_rights;
        Ok(())
    }

    fn ldtr(&mut self) -> Result<SegmentCache, OpError> {
        self.ldtr.ok_or(OpError::Unhandleable)
    }

    fn fpu_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), OpError> {
        self.fpu.resize(512, 0);
        buf.copy_from_slice(&self.fpu[offset..offset + buf.len()]);
        Ok(())
    }

    fn fpu_write(&mut self, offset: usize, data: &[u8]) -> Result<(), OpError> {
        self.fpu.resize(512, 0);
        self.fpu[offset..offset + data.len()].copy_from_slice(data);
        self.fpu_writes.push((offset, data.to_vec()));
        Ok(())
    }

    fn note_xadd(&mut self, linear: u64) {
        self.xadds.push(linear);
    }

    fn load_flat_segment(
        &mut self,
        seg: Seg,
        selector: u16,
        desc: FlatSegment,
    ) -> Result<(), OpError> {
        self.flat_segs.push((seg, selector, desc));
        self.seg_sel[seg_index(seg)] = selector;
        Ok(())
    }

    fn segment_limits(&self, seg: Seg) -> Option<SegmentLimits> {
        self.limits[seg_index(seg)]
    }

    fn io_permitted(&mut self, _port: u16, _size: u8) -> bool {
        self.io_allowed
    }

    fn read_cr(&mut self, n: u8) -> Result<u64, OpError> {
        self.crs
            .get(usize::from(n))
            .copied()
            .ok_or(OpError::Fault(Exception::InvalidOpcode))
    }

    fn write_cr(&mut self, n: u8, value: u64) -> Result<(), OpError> {
        self.cr_writes.push((n, value));
        *self
            .crs
            .get_mut(usize::from(n))
            .ok_or(OpError::Fault(Exception::InvalidOpcode))? = value;
        Ok(())
    }

    fn read_dr(&mut self, n: u8) -> Result<u64, OpError> {
        Ok(self.drs[usize::from(n & 7)])
    }

    fn write_dr(&mut self, n: u8, value: u64) -> Result<(), OpError> {
        self.drs[usize::from(n & 7)] = value;
        Ok(())
    }

    fn read_msr(&mut self, msr: u32) -> Result<u64, OpError> {
        self.msrs
            .get(&msr)
            .copied()
            .ok_or(OpError::Fault(Exception::GeneralProtection(0)))
    }

    fn write_msr(&mut self, msr: u32, value: u64) -> Result<(), OpError> {
        self.msrs.insert(msr, value);
        Ok(())
    }

    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        self.gdtr.ok_or(OpError::Unhandleable)
    }

    fn load_tr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        self.tr_loads.push((selector, base, limit, access_rights));
        self.tr = Some(SegmentCache {
            selector,
            base,
            limit,
            access_rights,
        });
        Ok(())
    }

    fn tr(&mut self) -> Result<SegmentCache, OpError> {
        self.tr.ok_or(OpError::Unhandleable)
    }

    fn load_ldtr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        self.ldtr_loads.push((selector, base, limit, access_rights));
        self.ldtr = Some(SegmentCache {
            selector,
            base,
            limit,
            access_rights,
        });
        Ok(())
    }

    fn xmm_read(&mut self, reg: u8) -> Result<[u8; 16], OpError> {
        Ok(self.xmm[usize::from(reg)])
    }

    fn xmm_write(&mut self, reg: u8, value: [u8; 16]) -> Result<(), OpError> {
        self.xmm[usize::from(reg)] = value;
        Ok(())
    }
}

/// An 8-byte segment descriptor (SDM Vol. 3 Figure 3-8): `access` is byte 5
/// (P, DPL, S, type), `flags` the G, D/B, L, AVL nibble.
pub fn descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    u64::from(limit & 0xffff)
        | (u64::from(base & 0x00ff_ffff) << 16)
        | (u64::from(access) << 40)
        | (u64::from((limit >> 16) & 0xf) << 48)
        | (u64::from(flags & 0xf) << 52)
        | (u64::from(base >> 24) << 56)
}

/// The flat 4 GiB descriptors in GDT slots 1-5 of the segment-load tests:
/// 0x08 64-bit code DPL 0, 0x10 data DPL 0, 0x18 32-bit code DPL 0, 0x20
/// 64-bit code DPL 3, 0x28 data DPL 3.
pub fn flat_descriptors() -> Vec<(usize, u64)> {
    vec![
        (1, descriptor(0, 0xfffff, 0x9b, 0xa)),
        (2, descriptor(0, 0xfffff, 0x93, 0xc)),
        (3, descriptor(0, 0xfffff, 0x9b, 0xc)),
        (4, descriptor(0, 0xfffff, 0xfb, 0xa)),
        (5, descriptor(0, 0xfffff, 0xf3, 0xc)),
    ]
}

/// The limits of a flat, writable, 32-bit data segment up to `limit`.
pub fn flat_data_limits(limit: u32) -> SegmentLimits {
    SegmentLimits {
        limit,
        expand_down: false,
        big: true,
        writable: true,
        readable: true,
        usable: true,
    }
}

/// A descriptor table of `slots` entries with `entries` at (index, qword).
pub fn table(slots: usize, entries: &[(usize, u64)]) -> Vec<u8> {
    let mut g = vec![0u8; slots * 8];
    for &(i, d) in entries {
        g[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
    }
    g
}
