//! LTR (0F 00 /3) over the mock `EmulatorOps`: the task register loaded
//! through `load_tr` with the descriptor's base, limit and access rights, the
//! busy bit written back to the GDT, the 16-byte descriptors of IA-32e mode
//! (64-bit and compatibility mode), every #UD/#GP/#NP of the SDM's
//! exception list, pending MMIO for the selector operand (kvm-unit-tests
//! `test_ltr`), and ops with the default `gdtr`/`load_tr`.

mod common;

use common::gpr::{RAX, RBX};
use common::{
    DATA, EFER_LONG, GDT, MSR_EFER, Mock, RIP, Run, descriptor, mock_with_code, run_with, table,
};
use kvm_x86_emulate::{EmulatorOps, Exception, Mode, OpError, Outcome, Registers, Unhandleable};

/// ltr ax
const LTR_AX: [u8; 3] = [0x0f, 0x00, 0xd8];
/// ltr [rbx] / ltr [ebx] / (16-bit) ltr [bp+di]: ModRM 0x1b
const LTR_MEM_BX: [u8; 3] = [0x0f, 0x00, 0x1b];

/// A GDT of 8 slots (64 bytes), the size GDTR gives.
fn gdt(entries: &[(usize, u64)]) -> Vec<u8> {
    table(8, entries)
}

/// `code` at RIP, GDTR = (GDT, 63); the GDT itself is mapped by `set`.
fn run(mode: Mode, code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    let mut mock = mock_with_code(code);
    mock.gdtr = Some((GDT, 63));
    run_with(mode, mock, set)
}

/// `ltr ax` with AX = `sel` and `entries` in the GDT.
fn ltr_reg(mode: Mode, sel: u16, entries: &[(usize, u64)]) -> Run {
    let g = gdt(entries);
    run(mode, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0xffff_0000 | u64::from(sel);
        m.map(GDT, &g);
        if mode == Mode::Prot64 {
            m.msrs.insert(MSR_EFER, EFER_LONG);
        }
    })
}

/// A fault: no TR load, no GDT write, RIP unchanged.
fn assert_fault(r: Run, e: Exception) {
    let (ctx, m, out) = r;
    assert_eq!(out, Ok(Outcome::Exception(e)));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.tr_loads.is_empty(), "TR loaded: {:?}", m.tr_loads);
    assert!(m.writes.is_empty(), "written: {:?}", m.writes);
}

const TSS32: u8 = 0x89; // P, DPL 0, S = 0, type 9
const TSS32_BUSY: u8 = 0x8b;
const TSS16: u8 = 0x81;

#[test] // ltr ax in 32-bit protected mode: TR loaded, busy bit in the GDT, RIP advanced
fn ltr_reg_prot32() {
    let d = descriptor(0x1234_5678, 0x67, TSS32, 0);
    let (ctx, m, out) = ltr_reg(Mode::Prot32, 0x18, &[(3, d)]);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 3);
    assert_eq!(m.tr_loads, vec![(0x18, 0x1234_5678, 0x67, 0x8b)]);
    assert_eq!(m.writes, vec![(GDT + 0x18 + 5, vec![TSS32_BUSY])]);
    assert_eq!(
        &m.region(GDT)[0x18..0x20],
        &descriptor(0x1234_5678, 0x67, TSS32_BUSY, 0).to_le_bytes()
    );
    // The register's upper bits and RPL are ignored / kept in TR.
    let (_, m, out) = ltr_reg(Mode::Prot32, 0x1b, &[(3, d)]);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.tr_loads, vec![(0x1b, 0x1234_5678, 0x67, 0x8b)]);
}

#[test] // ltr [ebx]: the selector comes from memory (2 bytes read), G = 1, AVL, DPL 3
fn ltr_mem_prot32_granularity() {
    let d = descriptor(0xfedc_b000, 0x1_2345, 0xe9, 0x9);
    let g = gdt(&[(5, d)]);
    let (ctx, m, out) = run(Mode::Prot32, &LTR_MEM_BX, |r, m| {
        r.gpr[RBX] = DATA;
        m.map(DATA, &[0x28, 0x00, 0xee, 0xee]);
        m.map(GDT, &g);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 3);
    assert!(m.reads.contains(&(DATA, 2)), "reads {:?}", m.reads);
    assert_eq!(
        m.tr_loads,
        vec![(0x28, 0xfedc_b000, 0x1234_5fff, 0xeb | (1 << 12) | (1 << 15))]
    );
    assert_eq!(m.region(GDT)[0x28 + 5], 0xeb);
}

#[test] // the GDT is read at GDTR.base + index (linear), DS base applies to the operand only
fn ltr_mem_segment_base() {
    let d = descriptor(0x9000, 0x67, TSS32, 0);
    let g = gdt(&[(1, d)]);
    let (_, m, out) = run(Mode::Prot32, &LTR_MEM_BX, |r, m| {
        r.gpr[RBX] = 0x10;
        m.seg_base[3] = DATA - 0x10;
        m.map(DATA, &[0x08, 0x00]);
        m.map(GDT, &g);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.tr_loads, vec![(0x08, 0x9000, 0x67, 0x8b)]);
    assert!(m.reads.contains(&(GDT + 8, 8)), "reads {:?}", m.reads);
}

#[test] // a 16-bit available TSS (type 1) outside IA-32e mode becomes type 3
fn ltr_tss16_prot16() {
    let d = descriptor(0x3000, 0x2b, TSS16, 0);
    let g = gdt(&[(2, d)]);
    let (ctx, m, out) = run(Mode::Prot16, &LTR_MEM_BX, |r, m| {
        // 16-bit addressing: ModRM 0x1b is [bp+di] (SS, base 0).
        r.gpr[5] = 0;
        r.gpr[7] = DATA;
        m.map(DATA, &[0x10, 0x00]);
        m.map(GDT, &g);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 3);
    assert_eq!(m.tr_loads, vec![(0x10, 0x3000, 0x2b, 0x83)]);
    assert_eq!(m.writes, vec![(GDT + 0x10 + 5, vec![0x83])]);
}

#[test] // 64-bit mode: 16-byte descriptor, base[63:32] from the upper half
fn ltr_64bit_16_byte_descriptor() {
    let lo = descriptor(0x8765_4321, 0x67, TSS32, 0);
    let hi = 0xffff_8000u64;
    let (ctx, m, out) = ltr_reg(Mode::Prot64, 0x20, &[(4, lo), (5, hi)]);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 3);
    assert_eq!(m.tr_loads, vec![(0x20, 0xffff_8000_8765_4321, 0x67, 0x8b)]);
    assert_eq!(m.writes, vec![(GDT + 0x20 + 5, vec![TSS32_BUSY])]);
    // The upper half is read and left alone.
    assert!(m.reads.contains(&(GDT + 0x28, 8)), "reads {:?}", m.reads);
    assert_eq!(&m.region(GDT)[0x28..0x30], &hi.to_le_bytes());
}

#[test] // 64-bit mode with REX.W and a memory operand: still a 2-byte read
fn ltr_64bit_mem_rexw() {
    let lo = descriptor(0x1000, 0x67, TSS32, 0);
    let g = gdt(&[(2, lo), (3, 1)]);
    let (_, m, out) = run(Mode::Prot64, &[0x48, 0x0f, 0x00, 0x1b], |r, m| {
        r.gpr[RBX] = DATA;
        m.map(DATA, &[0x10, 0x00]);
        m.map(GDT, &g);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert!(m.reads.contains(&(DATA, 2)), "reads {:?}", m.reads);
    assert_eq!(m.tr_loads, vec![(0x10, 0x1_0000_1000, 0x67, 0x8b)]);
}

#[test] // compatibility mode (Prot32 with EFER.LMA): 16-byte descriptors, no 16-bit TSS
fn ltr_compat_mode_is_ia32e() {
    let lo = descriptor(0x5000, 0x67, TSS32, 0);
    let g = gdt(&[(2, lo), (3, 0x7)]);
    let (_, m, out) = run(Mode::Prot32, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x10;
        m.map(GDT, &g);
        m.msrs.insert(MSR_EFER, EFER_LONG);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.tr_loads, vec![(0x10, 0x7_0000_5000, 0x67, 0x8b)]);
    // The same GDT without LMA: an 8-byte descriptor.
    let (_, m, out) = run(Mode::Prot32, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x10;
        m.map(GDT, &g);
        m.msrs.insert(MSR_EFER, 0);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.tr_loads, vec![(0x10, 0x5000, 0x67, 0x8b)]);
    // A 16-bit TSS in compatibility mode: #GP(selector).
    let g16 = gdt(&[(2, descriptor(0x5000, 0x67, TSS16, 0))]);
    let (ctx, m, out) = run(Mode::Prot32, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x10;
        m.map(GDT, &g16);
        m.msrs.insert(MSR_EFER, EFER_LONG);
    });
    assert_fault((ctx, m, out), Exception::GeneralProtection(0x10));
}

#[test] // real-address and virtual-8086 mode: #UD (before the CPL check)
fn ltr_ud_real_vm86() {
    let d = descriptor(0x1000, 0x67, TSS32, 0);
    for mode in [Mode::Real, Mode::Vm86] {
        assert_fault(ltr_reg(mode, 0x18, &[(3, d)]), Exception::InvalidOpcode);
    }
}

#[test] // LOCK: #UD
fn ltr_lock_ud() {
    let (ctx, m, out) = run(Mode::Prot32, &[0xf0, 0x0f, 0x00, 0x1b], |r, m| {
        r.gpr[RBX] = DATA;
        m.map(DATA, &[0x18, 0]);
    });
    assert_fault((ctx, m, out), Exception::InvalidOpcode);
}

#[test] // CPL 1-3: #GP(0), the operand is not read
fn ltr_cpl_gp0() {
    let d = descriptor(0x1000, 0x67, TSS32, 0);
    let g = gdt(&[(3, d)]);
    for cpl in 1..=3 {
        let (ctx, m, out) = run(Mode::Prot32, &LTR_MEM_BX, |r, m| {
            r.gpr[RBX] = DATA;
            m.map(DATA, &[0x18, 0]);
            m.map(GDT, &g);
            m.cpl = cpl;
        });
        assert!(m.reads.is_empty());
        assert_fault((ctx, m, out), Exception::GeneralProtection(0));
    }
}

#[test] // null selectors (index 0, TI 0, any RPL): #GP(0)
fn ltr_null_selector_gp0() {
    for sel in 0..4 {
        for mode in [Mode::Prot16, Mode::Prot32, Mode::Prot64] {
            assert_fault(ltr_reg(mode, sel, &[]), Exception::GeneralProtection(0));
        }
    }
}

#[test] // TI = 1 (an LDT selector): #GP(selector & 0xfffc), even with index 0
fn ltr_ldt_selector_gp() {
    let d = descriptor(0x1000, 0x67, TSS32, 0);
    assert_fault(
        ltr_reg(Mode::Prot32, 0x1f, &[(3, d)]),
        Exception::GeneralProtection(0x1c),
    );
    assert_fault(
        ltr_reg(Mode::Prot32, 0x4, &[(3, d)]),
        Exception::GeneralProtection(0x4),
    );
}

#[test] // beyond the GDT limit: #GP(selector & 0xfffc); the last 8 (16) bytes must fit
fn ltr_beyond_limit_gp() {
    let d = descriptor(0x1000, 0x67, TSS32, 0);
    // Limit 0x1e: slot 3 (0x18..0x1f) ends one byte past it.
    let g = gdt(&[(3, d)]);
    let (ctx, m, out) = run(Mode::Prot32, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x1a;
        m.map(GDT, &g);
        m.gdtr = Some((GDT, 0x1e));
    });
    assert!(m.reads.is_empty(), "GDT read: {:?}", m.reads);
    assert_fault((ctx, m, out), Exception::GeneralProtection(0x18));
    // Limit 0x1f: fits.
    let (_, m, out) = run(Mode::Prot32, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x18;
        m.map(GDT, &g);
        m.gdtr = Some((GDT, 0x1f));
    });
    assert_eq!((out, m.tr_loads.len()), (Ok(Outcome::Done), 1));
    // 64-bit mode: the whole 16 bytes (0x18..0x27) must fit.
    let (ctx, m, out) = run(Mode::Prot64, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x18;
        m.map(GDT, &g);
        m.gdtr = Some((GDT, 0x26));
    });
    assert_fault((ctx, m, out), Exception::GeneralProtection(0x18));
    let (_, m, out) = run(Mode::Prot64, &LTR_AX, |r, m| {
        r.gpr[RAX] = 0x18;
        m.map(GDT, &g);
        m.gdtr = Some((GDT, 0x27));
    });
    assert_eq!((out, m.tr_loads.len()), (Ok(Outcome::Done), 1));
}

#[test] // anything but an available TSS: #GP(selector & 0xfffc)
fn ltr_not_available_tss_gp() {
    // S = 1 (code/data) with every type; system types other than 9 (and 1).
    let mut accesses: Vec<u8> = (0..16).map(|t| 0x90 | t).collect();
    accesses.extend((0..16u8).filter(|t| *t != 9 && *t != 1).map(|t| 0x80 | t));
    for a in accesses {
        for mode in [Mode::Prot32, Mode::Prot64] {
            let d = descriptor(0x1000, 0x67, a, 0);
            assert_fault(
                ltr_reg(mode, 0x1b, &[(3, d)]),
                Exception::GeneralProtection(0x18),
            );
        }
    }
    // A 16-bit TSS is not available in 64-bit mode.
    let d = descriptor(0x1000, 0x67, TSS16, 0);
    assert_fault(
        ltr_reg(Mode::Prot64, 0x18, &[(3, d)]),
        Exception::GeneralProtection(0x18),
    );
}

#[test] // a TSS that is not present: #NP(selector & 0xfffc) (after the type check)
fn ltr_not_present_np() {
    for mode in [Mode::Prot16, Mode::Prot32, Mode::Prot64] {
        let d = descriptor(0x1000, 0x67, TSS32 & 0x7f, 0);
        assert_fault(
            ltr_reg(mode, 0x1a, &[(3, d)]),
            Exception::SegmentNotPresent(0x18),
        );
    }
    // Not present and busy: the type check comes first.
    let d = descriptor(0x1000, 0x67, TSS32_BUSY & 0x7f, 0);
    assert_fault(
        ltr_reg(Mode::Prot32, 0x18, &[(3, d)]),
        Exception::GeneralProtection(0x18),
    );
}

#[test] // IA-32e mode: a non-canonical base is #GP(selector & 0xfffc)
fn ltr_64bit_non_canonical_gp() {
    let lo = descriptor(0x1000, 0x67, TSS32, 0);
    for hi in [0x0000_8000u64, 0x1234_0000, 0xffff_7fff] {
        assert_fault(
            ltr_reg(Mode::Prot64, 0x11, &[(2, lo), (3, hi)]),
            Exception::GeneralProtection(0x10),
        );
    }
    // Canonical on both sides.
    for hi in [0x0000_7fffu64, 0xffff_8000] {
        let (_, m, out) = ltr_reg(Mode::Prot64, 0x10, &[(2, lo), (3, hi)]);
        assert_eq!((out, m.tr_loads.len()), (Ok(Outcome::Done), 1));
    }
}

#[test] // IA-32e mode: a non-zero type in the upper 8 bytes is #GP(selector & 0xfffc)
fn ltr_64bit_upper_type_gp() {
    let lo = descriptor(0x1000, 0x67, TSS32, 0);
    for t in 1..32u64 {
        assert_fault(
            ltr_reg(Mode::Prot64, 0x10, &[(2, lo), (3, t << 40)]),
            Exception::GeneralProtection(0x10),
        );
    }
}

#[test] // the selector in MMIO (kvm-unit-tests test_ltr): pending I/O, nothing changed
fn ltr_selector_in_mmio() {
    let d = descriptor(0x1000, 0x67, TSS32, 0);
    let g = gdt(&[(3, d)]);
    let (ctx, m, out) = run(Mode::Prot64, &LTR_MEM_BX, |r, m| {
        r.gpr[RBX] = DATA;
        m.mmio.push((DATA, 0x1000));
        m.map(GDT, &g);
    });
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::IoNeeded), RIP));
    assert!(m.tr_loads.is_empty() && m.writes.is_empty());
}

#[test] // #PF reading the descriptor: TR not loaded
fn ltr_gdt_page_faults() {
    // GDT not mapped.
    let (ctx, m, out) = run(Mode::Prot32, &LTR_AX, |r, _| r.gpr[RAX] = 0x18);
    assert_eq!(
        out,
        Ok(Outcome::Exception(Exception::PageFault {
            addr: GDT + 0x18,
            error_code: 0
        }))
    );
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.tr_loads.is_empty());
}

/// The mock without `gdtr`/`load_tr`: the trait defaults.
struct NoTr(Mock);

impl EmulatorOps for NoTr {
    common::delegate_required_ops!();
}

/// `gdtr` only, `load_tr` left at its default.
struct GdtrOnly(NoTr);

impl EmulatorOps for GdtrOnly {
    common::delegate_required_ops!();
    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        Ok((GDT, 63))
    }
}

fn mem_setup() -> Mock {
    let mut m = mock_with_code(&LTR_MEM_BX);
    m.map(DATA, &[0x18, 0]);
    m.map(GDT, &gdt(&[(3, descriptor(0x1000, 0x67, TSS32, 0))]));
    m
}

#[test] // the default trait methods answer Unhandleable
fn default_gdtr_load_tr_unhandleable() {
    let mut ops = NoTr(Mock::new());
    assert_eq!(ops.gdtr(), Err(OpError::Unhandleable));
    assert_eq!(
        ops.load_tr(0x18, 0x1000, 0x67, 0x8b),
        Err(OpError::Unhandleable)
    );
}

#[test] // default gdtr: LTR is Unhandleable::Ops before any memory access
fn ltr_default_gdtr_unhandleable_no_access() {
    let (ctx, ops, out) = run_with(Mode::Prot32, NoTr(mem_setup()), |r, _| r.gpr[RBX] = DATA);
    assert_eq!(out, Err(Unhandleable::Ops));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(ops.0.reads.is_empty(), "reads {:?}", ops.0.reads);
    assert!(ops.0.writes.is_empty());
}

#[test] // default load_tr: Unhandleable::Ops, RIP unchanged
fn ltr_default_load_tr_unhandleable() {
    let (ctx, _, out) = run_with(Mode::Prot32, GdtrOnly(NoTr(mem_setup())), |r, _| {
        r.gpr[RBX] = DATA
    });
    assert_eq!(out, Err(Unhandleable::Ops));
    assert_eq!(ctx.regs.rip, RIP);
}
