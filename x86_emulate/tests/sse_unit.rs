//! SSE data moves over the mock `EmulatorOps`: the architectural exceptions
//! (#UD for CR0.EM/CR4.OSFXSR/LOCK, #NM for CR0.TS, #GP(0) for misaligned
//! MOVAPS/MOVAPD/MOVDQA, segment and canonical checks, #PF with the error
//! code, page-crossing accesses), pending MMIO, other modes, and ops without
//! XMM access (the trait's default `xmm_read`/`xmm_write`) making every SSE
//! move unhandleable before it touches memory. Values are checked by
//! `diff_sse.rs` against the CPU.

mod common;

use common::gpr::{RAX, RBP, RBX};
use common::{DATA, Mock, RIP, Run, flat_data_limits, mock_with_code, run_with};
use kvm_x86_emulate::{EmulatorOps, Exception, Mode, OpError, Outcome, Registers, Unhandleable};

/// CR0: PE, ET, NE, PG.
const CR0: u64 = 0x8000_0031;
/// CR4: PAE, OSFXSR.
const CR4: u64 = 0x220;
const X1: [u8; 16] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];

fn pattern() -> Vec<u8> {
    (0..0x1000u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// `code` at RIP, the pattern at DATA, SSE enabled in CR0 and CR4.
fn sse_mock(code: &[u8]) -> Mock {
    let mut mock = mock_with_code(code);
    mock.map(DATA, &pattern());
    mock.crs[0] = CR0;
    mock.crs[4] = CR4;
    mock
}

/// `run_with` with RBX = DATA before `set`.
fn run_at_data<O: EmulatorOps>(
    mode: Mode,
    ops: O,
    set: impl FnOnce(&mut Registers, &mut O),
) -> Run<O> {
    run_with(mode, ops, |r, o| {
        r.gpr[RBX] = DATA;
        set(r, o)
    })
}

/// `code` at RIP, a data page at DATA, RBX = DATA, XMM1 = X1, SSE enabled.
fn run(mode: Mode, code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    let mut mock = sse_mock(code);
    mock.xmm[1] = X1;
    run_at_data(mode, mock, set)
}

/// The instruction stopped with `e`: RIP unchanged, memory and XMM1 intact.
fn assert_fault(r: Run, e: Exception) {
    let (ctx, mock, out) = r;
    assert_eq!(out, Ok(Outcome::Exception(e)));
    assert_eq!(ctx.regs.rip, RIP);
    assert_eq!(mock.region(DATA), &pattern()[..]);
    assert_eq!(mock.xmm[1], X1);
}

// movdqu xmm1, [rbx] / movdqu [rbx], xmm1 / movdqa [rbx], xmm1 / movaps xmm1, [rbx]
const MOVDQU_LOAD: [u8; 4] = [0xf3, 0x0f, 0x6f, 0x0b];
const MOVDQU_STORE: [u8; 4] = [0xf3, 0x0f, 0x7f, 0x0b];
const MOVDQA_STORE: [u8; 4] = [0x66, 0x0f, 0x7f, 0x0b];
const MOVAPS_LOAD: [u8; 3] = [0x0f, 0x28, 0x0b];

#[test]
fn movdqu_load_and_store() {
    let (ctx, mock, out) = run(Mode::Prot64, &MOVDQU_LOAD, |_, _| {});
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), RIP + 4));
    assert_eq!(&mock.xmm[1][..], &pattern()[..16]);
    let (ctx, mock, out) = run(Mode::Prot64, &MOVDQU_STORE, |r, _| r.gpr[RBX] = DATA + 3);
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), RIP + 4));
    assert_eq!(&mock.region(DATA)[3..19], &X1[..]);
    assert_eq!(mock.writes, vec![(DATA + 3, X1.to_vec())]);
}

#[test] // TS = 1: #NM for every form, loads and stores
fn cr0_ts_raises_nm() {
    for code in [&MOVDQU_LOAD[..], &MOVDQU_STORE, &MOVDQA_STORE, &MOVAPS_LOAD] {
        assert_fault(
            run(Mode::Prot64, code, |_, m| m.crs[0] |= 8),
            Exception::DeviceNotAvailable,
        );
    }
    // movd xmm1, eax / movq rax, xmm1 (register forms too).
    for code in [
        &[0x66, 0x0f, 0x6e, 0xc8][..],
        &[0x66, 0x48, 0x0f, 0x7e, 0xc8],
    ] {
        let (ctx, _, out) = run(Mode::Prot64, code, |r, m| {
            m.crs[0] |= 8;
            r.gpr[RAX] = 0x1234;
        });
        assert_eq!(
            (out, ctx.regs.rip, ctx.regs.gpr[RAX]),
            (
                Ok(Outcome::Exception(Exception::DeviceNotAvailable)),
                RIP,
                0x1234
            )
        );
    }
}

#[test] // OSFXSR = 0 or EM = 1: #UD, also when TS = 1
fn osfxsr_clear_or_em_set_raises_ud() {
    for code in [&MOVDQU_LOAD[..], &MOVDQU_STORE, &MOVDQA_STORE, &MOVAPS_LOAD] {
        assert_fault(
            run(Mode::Prot64, code, |_, m| m.crs[4] &= !0x200),
            Exception::InvalidOpcode,
        );
        assert_fault(
            run(Mode::Prot64, code, |_, m| {
                m.crs[4] &= !0x200;
                m.crs[0] |= 8;
            }),
            Exception::InvalidOpcode,
        );
        assert_fault(
            run(Mode::Prot64, code, |_, m| m.crs[0] |= 4 | 8),
            Exception::InvalidOpcode,
        );
    }
}

#[test] // lock movdqu [rbx], xmm1
fn lock_prefix_raises_ud() {
    assert_fault(
        run(Mode::Prot64, &[0xf0, 0xf3, 0x0f, 0x7f, 0x0b], |_, _| {}),
        Exception::InvalidOpcode,
    );
}

#[test] // movdqa/movaps/movapd misaligned: #GP(0), no access; movdqu fine
fn misaligned_aligned_forms_raise_gp0() {
    let aligned = [
        &MOVDQA_STORE[..],
        &MOVAPS_LOAD,
        &[0x66, 0x0f, 0x6f, 0x0b], // movdqa xmm1, [rbx]
        &[0x0f, 0x29, 0x0b],       // movaps [rbx], xmm1
        &[0x66, 0x0f, 0x28, 0x0b], // movapd xmm1, [rbx]
        &[0x66, 0x0f, 0x29, 0x0b], // movapd [rbx], xmm1
    ];
    for code in aligned {
        for off in [1, 4, 8, 15] {
            let r = run(Mode::Prot64, code, |r, _| r.gpr[RBX] = DATA + off);
            assert!(r.1.reads.is_empty() && r.1.writes.is_empty());
            assert_fault(r, Exception::GeneralProtection(0));
        }
        let (ctx, _, out) = run(Mode::Prot64, code, |r, _| r.gpr[RBX] = DATA + 0x30);
        assert_eq!(
            (out, ctx.regs.rip),
            (Ok(Outcome::Done), RIP + code.len() as u64)
        );
    }
    let (_, mock, out) = run(Mode::Prot64, &MOVDQU_STORE, |r, _| r.gpr[RBX] = DATA + 8);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(&mock.region(DATA)[8..24], &X1[..]);
}

#[test] // the alignment is that of the linear address (segment base included)
fn alignment_uses_the_linear_address() {
    // 32-bit mode, DS base 8: [ebx] with EBX = DATA - 8 is 16-byte aligned.
    let (_, mock, out) = run(Mode::Prot32, &MOVDQA_STORE, |r, m| {
        r.gpr[RBX] = DATA - 8;
        m.seg_base[3] = 8;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(&mock.region(DATA)[..16], &X1[..]);
    assert_fault(
        run(Mode::Prot32, &MOVDQA_STORE, |_, m| m.seg_base[3] = 8),
        Exception::GeneralProtection(0),
    );
}

#[test] // unmapped memory: #PF with the address and W/R error code
fn unmapped_memory_raises_pf() {
    let unmapped = 0x9000;
    for (code, error_code) in [
        (&MOVDQU_LOAD[..], 0),
        (&MOVDQU_STORE, 2),
        (&[0xf3, 0x0f, 0x11, 0x0b], 2), // movss [rbx], xmm1
        (&[0xf3, 0x0f, 0x7e, 0x0b], 0), // movq xmm1, [rbx]
    ] {
        assert_fault(
            run(Mode::Prot64, code, |r, _| r.gpr[RBX] = unmapped),
            Exception::PageFault {
                addr: unmapped,
                error_code,
            },
        );
    }
}

#[test] // a 16-byte access across a page boundary is split; #PF on the second page
fn page_crossing() {
    let end = DATA + 0x1000 - 8;
    // Both pages mapped: two reads, 8 + 8 bytes.
    let (_, mock, out) = run(Mode::Prot64, &MOVDQU_LOAD, |r, m| {
        r.gpr[RBX] = end;
        m.map(DATA + 0x1000, &[0xee; 0x1000]);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(mock.reads, vec![(end, 8), (DATA + 0x1000, 8)]);
    assert_eq!(&mock.xmm[1][..8], &pattern()[0xff8..]);
    assert_eq!(&mock.xmm[1][8..], &[0xee; 8]);
    // Second page unmapped (kvm-unit-tests "movups crosspage exception").
    assert_fault(
        run(Mode::Prot64, &MOVDQU_LOAD, |r, _| r.gpr[RBX] = end),
        Exception::PageFault {
            addr: DATA + 0x1000,
            error_code: 0,
        },
    );
    // movups [rbx], xmm1
    let (ctx, _, out) = run(Mode::Prot64, &[0x0f, 0x11, 0x0b], |r, _| r.gpr[RBX] = end);
    assert_eq!(
        (out, ctx.regs.rip),
        (
            Ok(Outcome::Exception(Exception::PageFault {
                addr: DATA + 0x1000,
                error_code: 2
            })),
            RIP
        )
    );
}

#[test] // an MMIO load that needs userspace leaves XMM and RIP alone
fn pending_mmio_load() {
    let (ctx, mock, out) = run(Mode::Prot64, &MOVDQU_LOAD, |_, m| m.mmio.push((DATA, 16)));
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::IoNeeded), RIP));
    assert_eq!(mock.xmm[1], X1);
}

#[test] // non-canonical address: #GP(0); segment limit: #GP(0) / #SS(0)
fn segment_and_canonical_checks() {
    assert_fault(
        run(Mode::Prot64, &MOVDQU_STORE, |r, _| r.gpr[RBX] = 1 << 47),
        Exception::GeneralProtection(0),
    );
    // DS limit DATA + 0x10: a 16-byte access at DATA + 8 ends beyond it.
    assert_fault(
        run(Mode::Prot32, &MOVDQU_STORE, |r, m| {
            r.gpr[RBX] = DATA + 8;
            m.limits[3] = Some(flat_data_limits(DATA as u32 + 0x10));
        }),
        Exception::GeneralProtection(0),
    );
    // movdqu xmm1, [ebp]: SS.
    assert_fault(
        run(Mode::Prot32, &[0xf3, 0x0f, 0x6f, 0x4d, 0x00], |r, m| {
            r.gpr[RBP] = DATA + 8;
            m.limits[2] = Some(flat_data_limits(DATA as u32 + 0x10));
        }),
        Exception::StackFault(0),
    );
    // Within the limit it works.
    let (_, _, out) = run(Mode::Prot32, &MOVDQU_STORE, |r, m| {
        r.gpr[RBX] = DATA;
        m.limits[3] = Some(flat_data_limits(DATA as u32 + 0x0f));
    });
    assert_eq!(out, Ok(Outcome::Done));
}

#[test] // 16-bit addressing in real mode: movups [bx+si+2], xmm1 with a DS base
fn real_mode_movups() {
    let (ctx, mock, out) = run(Mode::Real, &[0x0f, 0x11, 0x48, 0x02], |r, m| {
        r.gpr[RBX] = 0x10;
        r.gpr[6] = 0x20;
        m.seg_base[3] = DATA - 0x30;
        m.crs[0] = 0x10;
    });
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), RIP + 4));
    assert_eq!(mock.writes, vec![(DATA + 2, X1.to_vec())]);
}

#[test] // movd eax, xmm1 / movq xmm2, rax / movd xmm1, [rbx] zero-extends
fn movd_movq_gpr_forms() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x66, 0x0f, 0x7e, 0xc8], |r, _| {
        r.gpr[RAX] = u64::MAX;
    });
    assert_eq!((out, ctx.regs.gpr[RAX]), (Ok(Outcome::Done), 0x1312_1110));
    let (_, mock, out) = run(Mode::Prot64, &[0x66, 0x48, 0x0f, 0x6e, 0xd0], |r, _| {
        r.gpr[RAX] = 0x0102_0304_0506_0708;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        mock.xmm[2],
        [8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // In 32-bit mode 66 0F 6E reads 32 bits (no REX).
    let (_, mock, out) = run(Mode::Prot32, &[0x66, 0x0f, 0x6e, 0x0b], |_, _| {});
    assert_eq!(out, Ok(Outcome::Done));
    let mut want = [0u8; 16];
    want[..4].copy_from_slice(&pattern()[..4]);
    assert_eq!(mock.xmm[1], want);
}

#[test] // kvm-unit-tests test_sse: every move round-trips through memory
fn kvm_unit_tests_test_sse() {
    // (store, load) pairs: movdqu, movaps, movapd, movups, movupd.
    let pairs: [(&[u8], &[u8]); 5] = [
        (&[0xf3, 0x0f, 0x7f, 0x0b], &[0xf3, 0x0f, 0x6f, 0x13]),
        (&[0x0f, 0x29, 0x0b], &[0x0f, 0x28, 0x13]),
        (&[0x66, 0x0f, 0x29, 0x0b], &[0x66, 0x0f, 0x28, 0x13]),
        (&[0x0f, 0x11, 0x0b], &[0x0f, 0x10, 0x13]),
        (&[0x66, 0x0f, 0x11, 0x0b], &[0x66, 0x0f, 0x10, 0x13]),
    ];
    for (store, load) in pairs {
        let (_, mock, out) = run(Mode::Prot64, store, |_, _| {});
        assert_eq!(out, Ok(Outcome::Done));
        assert_eq!(&mock.region(DATA)[..16], &X1[..]);
        let mut mock = mock;
        mock.regions.retain(|r| r.base != RIP);
        mock.map(RIP, load);
        let (_, mock, out) = run_at_data(Mode::Prot64, mock, |_, _| {});
        assert_eq!(out, Ok(Outcome::Done));
        assert_eq!(mock.xmm[2], X1);
    }
}

#[test] // read_cr errors propagate
fn cr_read_failure_propagates() {
    struct NoCr4(Mock);
    impl EmulatorOps for NoCr4 {
        common::delegate_required_ops!(read_cr: |s: &mut NoCr4, n: u8| if n == 4 {
            Err(OpError::Unhandleable)
        } else {
            s.0.read_cr(n)
        });
    }
    let mut m = mock_with_code(&MOVDQU_LOAD);
    m.map(DATA, &pattern());
    m.crs[0] = CR0;
    let (_, _, out) = run_at_data(Mode::Prot64, NoCr4(m), |_, _| {});
    assert_eq!(out, Err(Unhandleable::Ops));
}

/// Ops without XMM access: `xmm_read`/`xmm_write` are the trait defaults.
struct NoXmm(Mock);

impl EmulatorOps for NoXmm {
    common::delegate_required_ops!();
}

#[test] // the default xmm_read/xmm_write: unhandleable, before any memory access
fn default_xmm_methods_make_sse_unhandleable() {
    let forms: [&[u8]; 8] = [
        &MOVDQU_LOAD,
        &MOVDQU_STORE,
        &MOVDQA_STORE,
        &MOVAPS_LOAD,
        &[0x66, 0x0f, 0x6e, 0xc8],       // movd xmm1, eax
        &[0x66, 0x48, 0x0f, 0x7e, 0x0b], // movq [rbx], xmm1
        &[0xf3, 0x0f, 0x10, 0x0b],       // movss xmm1, [rbx]
        &[0xf2, 0x0f, 0x11, 0x0b],       // movsd [rbx], xmm1
    ];
    for code in forms {
        let (ctx, ops, out) = run_at_data(Mode::Prot64, NoXmm(sse_mock(code)), |_, _| {});
        assert_eq!(out, Err(Unhandleable::Ops), "{code:02x?}");
        assert_eq!(ctx.regs.rip, RIP);
        assert!(ops.0.reads.is_empty() && ops.0.writes.is_empty());
    }
}

#[test] // SSE instructions that are not data moves stay unhandleable
fn other_sse_instructions_unhandleable() {
    for code in [
        &[0x0f, 0x58, 0x0b][..],   // addps xmm1, [rbx]
        &[0x66, 0x0f, 0xef, 0x0b], // pxor xmm1, [rbx]
        &[0x0f, 0xfc, 0x0b],       // paddb mm1, [rbx] (MMX arithmetic)
        &[0xf3, 0x0f, 0xd6, 0xcb], // movq2dq xmm1, mm3
        &[0xf2, 0x0f, 0x12, 0x0b], // movddup xmm1, [rbx] (SSE3)
        &[0x66, 0x0f, 0xe7, 0x0b], // movntdq [rbx], xmm1
    ] {
        let (_, _, out) = run(Mode::Prot64, code, |_, _| {});
        assert_eq!(out, Err(Unhandleable::Opcode), "{code:02x?}");
    }
}
