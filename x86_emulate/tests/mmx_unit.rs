//! MMX moves over the mock `EmulatorOps` and its FXSAVE image: MMX
//! register i is bytes 32 + 16 i .. + 8 of the image (SDM Vol. 1 Table
//! 10-2); every MMX instruction sets TOS to 0 and all tags valid, and a
//! write to MMi sets bits 79:64 of ST(i) to ones (Vol. 1 §9.5.1);
//! #UD with CR0.EM, #NM with CR0.TS, #MF with a pending x87 exception
//! (kvm-unit-tests `test_mmx`, `test_mmx_movq_mf`). Also the XADD hook
//! (`note_xadd`).

mod common;

use common::gpr::{RAX, RBX};
use common::{DATA, Mock, RIP, Run, mock_with_code, run_with};
use kvm_x86_emulate::{EmulatorOps, Exception, Mode, Outcome, Registers, Unhandleable};

/// CR0: PE, ET, NE, PG (EM and TS clear).
const CR0: u64 = 0x8000_0031;
/// FXSAVE offsets: FSW, abridged FTW, ST(0)/MM0.
const FSW: usize = 2;
const FTW: usize = 4;
const MM0: usize = 32;

/// `code` in 64-bit mode, RBX = DATA (16 bytes of 0xee), CR0 without EM
/// and TS, and the FXSAVE image below.
fn run(code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    let mut m = mock_with_code(code);
    m.map(DATA, &[0xee; 16]);
    m.crs[0] = CR0;
    m.fpu = vec![0; 512];
    // TOS = 5, ES clear, FTW: only ST(7) valid.
    m.fpu[FSW..FSW + 2].copy_from_slice(&(5u16 << 11).to_le_bytes());
    m.fpu[FTW] = 0x80;
    for i in 0..8 {
        for b in 0..10 {
            m.fpu[MM0 + 16 * i + b] = (0x10 * i + b) as u8;
        }
    }
    run_with(Mode::Prot64, m, |r, m| {
        r.gpr[RBX] = DATA;
        set(r, m)
    })
}

fn mm(m: &Mock, i: usize) -> [u8; 10] {
    m.fpu[MM0 + 16 * i..MM0 + 16 * i + 10].try_into().unwrap()
}

/// After any MMX instruction: TOS 0, all tags valid.
fn assert_mmx_state(m: &Mock) {
    assert_eq!(
        u16::from_le_bytes([m.fpu[FSW], m.fpu[FSW + 1]]) & (7 << 11),
        0,
        "TOS"
    );
    assert_eq!(m.fpu[FTW], 0xff, "tags");
}

#[test] // test_mmx "read": movq [rbx], mm2 stores MM2's 8 bytes
fn movq_store() {
    let (ctx, m, out) = run(&[0x0f, 0x7f, 0x13], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 3);
    assert_eq!(
        &m.region(DATA)[..8],
        &[0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27]
    );
    assert_eq!(m.region(DATA)[8], 0xee);
    assert_mmx_state(&m);
    // The register itself is not written.
    assert_eq!(mm(&m, 2)[8..], [0x28, 0x29]);
}

#[test] // test_mmx "write": movq mm1, [rbx] loads 8 bytes, exponent bits 79:64 all ones
fn movq_load() {
    let (_, m, out) = run(&[0x0f, 0x6f, 0x0b], |_, m| {
        m.region_mut(DATA)[..8].copy_from_slice(&0x8070_6050_4030_2010u64.to_le_bytes());
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        mm(&m, 1),
        [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0xff, 0xff]
    );
    assert_mmx_state(&m);
    assert_eq!(mm(&m, 0)[8..], [0x08, 0x09], "other registers untouched");
}

#[test] // movq mm3, mm6 (register form) and REX.R/REX.B do not extend MMX register numbers
fn movq_register_forms() {
    let (_, m, out) = run(&[0x4d, 0x0f, 0x6f, 0xde], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        mm(&m, 3),
        [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0xff, 0xff]
    );
}

#[test] // movd mm0, eax zero-extends; movd eax, mm5 zero-extends RAX; movq rax, mm5 (REX.W)
fn movd_gpr_forms() {
    let (_, m, out) = run(&[0x0f, 0x6e, 0xc0], |r, _| {
        r.gpr[RAX] = 0xaaaa_bbbb_cccc_dddd
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(mm(&m, 0), [0xdd, 0xdd, 0xcc, 0xcc, 0, 0, 0, 0, 0xff, 0xff]);
    let (ctx, _, out) = run(&[0x0f, 0x7e, 0xe8], |r, _| r.gpr[RAX] = u64::MAX);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RAX], 0x5352_5150);
    let (ctx, _, out) = run(&[0x48, 0x0f, 0x7e, 0xe8], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RAX], 0x5756_5554_5352_5150);
    // movd [rbx], mm1 writes 4 bytes.
    let (_, m, out) = run(&[0x0f, 0x7e, 0x0b], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(&m.region(DATA)[..5], &[0x10, 0x11, 0x12, 0x13, 0xee]);
}

/// The instruction faulted with `e` before touching memory or the image.
fn assert_fault(r: Run, e: Exception) {
    let (ctx, m, out) = r;
    assert_eq!(out, Ok(Outcome::Exception(e)));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(
        m.reads.is_empty() && m.writes.is_empty(),
        "{:?} {:?}",
        m.reads,
        m.writes
    );
    assert!(m.fpu_writes.is_empty());
}

#[test] // CR0.EM: #UD (also with TS); CR0.TS: #NM
fn cr0_em_ts() {
    for code in [&[0x0f, 0x7f, 0x13][..], &[0x0f, 0x6f, 0x0b]] {
        assert_fault(
            run(code, |_, m| m.crs[0] = CR0 | 4),
            Exception::InvalidOpcode,
        );
        assert_fault(
            run(code, |_, m| m.crs[0] = CR0 | 4 | 8),
            Exception::InvalidOpcode,
        );
        assert_fault(
            run(code, |_, m| m.crs[0] = CR0 | 8),
            Exception::DeviceNotAvailable,
        );
    }
}

#[test] // test_mmx_movq_mf: a pending unmasked x87 exception (FSW.ES) is #MF
fn pending_x87_exception_mf() {
    let r = run(&[0x0f, 0x7f, 0x03], |_, m| {
        // 0.0 / 0.0 unmasked: IE and ES set.
        m.fpu[FSW] = 0x81;
    });
    assert_fault(r, Exception::FloatingPoint);
}

#[test] // LOCK is #UD at decode
fn lock_ud() {
    let (_, _, out) = run(&[0xf0, 0x0f, 0x7f, 0x03], |_, _| {});
    assert_eq!(out, Ok(Outcome::Exception(Exception::InvalidOpcode)));
}

#[test] // the memory operand in MMIO: pending I/O, no register or x87 state change
fn load_from_mmio_pending() {
    let (ctx, m, out) = run(&[0x0f, 0x6f, 0x0b], |_, m| m.mmio.push((DATA, 16)));
    assert_eq!(out, Ok(Outcome::IoNeeded));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.fpu_writes.is_empty());
}

/// The mock without an FXSAVE image: the trait's default `fpu_read`.
struct NoFpu(Mock);

impl EmulatorOps for NoFpu {
    common::delegate_required_ops!();
}

#[test] // default fpu_read: MMX moves are Unhandleable::Ops before any memory access
fn default_fpu_ops_unhandleable() {
    let mut m = mock_with_code(&[0x0f, 0x7f, 0x03]);
    m.map(DATA, &[0; 8]);
    m.crs[0] = CR0;
    let (ctx, ops, out) = run_with(Mode::Prot64, NoFpu(m), |r, _| r.gpr[RBX] = DATA);
    assert_eq!(out, Err(Unhandleable::Ops));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(ops.0.reads.is_empty() && ops.0.writes.is_empty());
}

#[test] // xadd [rbx+8], eax: note_xadd gets the destination's linear address; a register one gets 0
fn xadd_noted() {
    let (_, m, out) = run(&[0x0f, 0xc1, 0x43, 0x08], |_, m| m.seg_base[4] = 0x100);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.xadds, vec![DATA + 8]);
    let (_, m, out) = run(&[0x64, 0x0f, 0xc1, 0x43, 0x08], |r, m| {
        r.gpr[RBX] = DATA - 0x100;
        m.seg_base[4] = 0x100; // FS
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.xadds, vec![DATA + 8]);
    let (_, m, out) = run(&[0x0f, 0xc1, 0xc3], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.xadds, vec![0]);
}
