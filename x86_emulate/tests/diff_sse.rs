//! Differential tests of the SSE/SSE2 data moves against the host CPU, in
//! the manner of `diff_native.rs`: every form is assembled by `asm!` into a
//! native function that loads random general-purpose registers and XMM0-3,
//! XMM7-9 and XMM15, runs the one instruction with R11 pointing into a
//! 512-byte buffer, and stores the registers back. The same bytes are then
//! emulated in 64-bit mode with the same registers (the mock's XMM file) and
//! the buffer mapped at the same address; registers, XMM registers, RIP and
//! memory must match.
//!
//! Unaligned forms address `[r11+rcx]` with a random RCX (0-48), so every
//! alignment and, now and then, a page boundary is exercised; the aligned
//! forms (MOVAPS/MOVAPD/MOVDQA) use 16-byte multiples (their #GP(0) on
//! misalignment is tested in `sse_unit.rs`). Encodings the assembler does not
//! choose for a mnemonic (66 REX.W 0F 6E/7E with memory, 66 0F D6 between
//! registers) are given as `.byte`.
//!
//! `EMU_DIFF_CASES` sets the cases per form (default 10,000).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use common::{Mock, Rng, diff_cases};
use kvm_x86_emulate::{Context, Mode, Outcome, Registers, emulate};
use std::arch::asm;

const BUF: usize = 512;
/// R11 points here inside the buffer.
const MEM_OFF: usize = 128;

#[repr(C, align(16))]
struct Buf([u8; BUF]);

/// The XMM registers the harness loads and stores.
const XMM: [usize; 8] = [0, 1, 2, 3, 7, 8, 9, 15];

/// Registers of the native harness: RAX RCX RDX RSI RDI R8 R9 R10 and the
/// XMM registers of [`XMM`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct St {
    r: [u64; 8],
    x: [[u8; 16]; 8],
}

/// The emulator's GPR numbers of `St::r`.
const GPR: [usize; 8] = [0, 1, 2, 6, 7, 8, 9, 10];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Fixed operands.
    Plain,
    /// `[r11+rcx]`: RCX is a random offset 0-48.
    Idx,
    /// `[r11+rcx]`: RCX is 0, 16 or 32.
    Idx16,
}

struct Form {
    text: &'static str,
    run: fn(&mut St, *mut u8) -> (usize, usize),
    kind: Kind,
}

macro_rules! form {
    ($insn:literal, $kind:expr) => {{
        fn run(st: &mut St, mem: *mut u8) -> (usize, usize) {
            let (start, end): (usize, usize);
            let x = st.x.as_mut_ptr();
            // SAFETY: the instruction touches only the listed registers and
            // the 512-byte buffer R11 points into ([r11+rcx] stays within
            // 64 bytes); the XMM registers are declared clobbered and are
            // loaded from and stored to `st.x`, which `{x}` points to.
            unsafe {
                asm!(
                    "lea {s}, [rip + 2f]",
                    "lea {e}, [rip + 3f]",
                    "movdqu xmm0, [{x}]",
                    "movdqu xmm1, [{x} + 16]",
                    "movdqu xmm2, [{x} + 32]",
                    "movdqu xmm3, [{x} + 48]",
                    "movdqu xmm7, [{x} + 64]",
                    "movdqu xmm8, [{x} + 80]",
                    "movdqu xmm9, [{x} + 96]",
                    "movdqu xmm15, [{x} + 112]",
                    "2:",
                    $insn,
                    "3:",
                    "movdqu [{x}], xmm0",
                    "movdqu [{x} + 16], xmm1",
                    "movdqu [{x} + 32], xmm2",
                    "movdqu [{x} + 48], xmm3",
                    "movdqu [{x} + 64], xmm7",
                    "movdqu [{x} + 80], xmm8",
                    "movdqu [{x} + 96], xmm9",
                    "movdqu [{x} + 112], xmm15",
                    s = out(reg) start,
                    e = out(reg) end,
                    x = in(reg) x,
                    inout("rax") st.r[0],
                    inout("rcx") st.r[1],
                    inout("rdx") st.r[2],
                    inout("rsi") st.r[3],
                    inout("rdi") st.r[4],
                    inout("r8") st.r[5],
                    inout("r9") st.r[6],
                    inout("r10") st.r[7],
                    in("r11") mem,
                    out("xmm0") _,
                    out("xmm1") _,
                    out("xmm2") _,
                    out("xmm3") _,
                    out("xmm7") _,
                    out("xmm8") _,
                    out("xmm9") _,
                    out("xmm15") _,
                    options(nostack, preserves_flags),
                );
            }
            (start, end)
        }
        Form {
            text: $insn,
            run,
            kind: $kind,
        }
    }};
}

/// The input shapes of this test on the shared generator.
impl Rng {
    /// 16 bytes, now and then all zero or all ones.
    fn xmm(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        match self.below(16) {
            0 => {}
            1 => b = [0xff; 16],
            _ => {
                b[..8].copy_from_slice(&self.next().to_le_bytes());
                b[8..].copy_from_slice(&self.next().to_le_bytes());
            }
        }
        b
    }
}

fn run_form(f: &Form, n: u64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut buf = Box::new(Buf([0; BUF]));
    let base = buf.0.as_ptr() as u64;
    let mut mock = Mock::new();
    mock.log = false;
    // CR0: PE, ET, NE, PG (no EM, no TS); CR4: PAE, OSFXSR.
    mock.crs[0] = 0x8000_0031;
    mock.crs[4] = 0x220;
    mock.map(0, &[]).map(base, &[0; BUF]);
    for case in 0..n {
        let mut input = St {
            r: [0; 8],
            x: [[0; 16]; 8],
        };
        for r in input.r.iter_mut() {
            *r = rng.next();
        }
        for x in input.x.iter_mut() {
            *x = rng.xmm();
        }
        match f.kind {
            Kind::Plain => {}
            Kind::Idx => input.r[1] = rng.below(49),
            Kind::Idx16 => input.r[1] = 16 * rng.below(3),
        }
        if case.is_multiple_of(8) {
            for i in (MEM_OFF - 64..MEM_OFF + 128).step_by(8) {
                buf.0[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
            }
        }
        for i in (MEM_OFF..MEM_OFF + 64).step_by(8) {
            buf.0[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
        }
        let mem_in = buf.0;
        // Native.
        let mut native = input;
        let (start, end) = (f.run)(&mut native, unsafe { buf.0.as_mut_ptr().add(MEM_OFF) });
        // Emulated.
        let code = unsafe { std::slice::from_raw_parts(start as *const u8, end - start) };
        if mock.regions[0].base != start as u64 {
            mock.regions[0].base = start as u64;
            mock.regions[0].data = code.to_vec();
        }
        mock.regions[1].data.copy_from_slice(&mem_in);
        let mut regs = Registers::default();
        for (i, g) in GPR.iter().enumerate() {
            regs.gpr[*g] = input.r[i];
        }
        regs.gpr[11] = base + MEM_OFF as u64;
        regs.rip = start as u64;
        regs.rflags = 0x202;
        mock.xmm = [[0x5a; 16]; 16];
        for (i, n) in XMM.iter().enumerate() {
            mock.xmm[*n] = input.x[i];
        }
        let mut ctx = Context::new(Mode::Prot64, regs);
        let out = emulate(&mut ctx, &mut mock);
        let mut emu = St {
            r: [0; 8],
            x: [[0; 16]; 8],
        };
        for (i, g) in GPR.iter().enumerate() {
            emu.r[i] = ctx.regs.gpr[*g];
        }
        for (i, n) in XMM.iter().enumerate() {
            emu.x[i] = mock.xmm[*n];
        }
        let fail = |what: &str| -> ! {
            panic!(
                "{} (case {case}): {what}\n code {code:02x?}\n input {input:x?}\n native {native:x?}\n emulated {emu:x?} rip {:#x} out {out:?}",
                f.text, ctx.regs.rip
            )
        };
        if out != Ok(Outcome::Done) {
            fail("emulation did not complete");
        }
        if ctx.regs.rip as usize != end {
            fail("RIP not advanced to the next instruction");
        }
        if emu != native {
            fail("registers differ");
        }
        let untouched = (0..16).all(|n| XMM.contains(&n) || mock.xmm[n] == [0x5a; 16]);
        if !untouched {
            fail("an XMM register outside the instruction changed");
        }
        if mock.region(base) != &buf.0[..] {
            fail("memory differs");
        }
    }
}

/// The opcode form: mandatory prefix, opcode, REX.W, register or memory.
fn opcode_form(f: &Form) -> String {
    let mut buf = Box::new(Buf([0; BUF]));
    let mut st = St {
        r: [0; 8],
        x: [[0; 16]; 8],
    };
    let (s, e) = (f.run)(&mut st, unsafe { buf.0.as_mut_ptr().add(MEM_OFF) });
    let code = unsafe { std::slice::from_raw_parts(s as *const u8, e - s) };
    let i = kvm_x86_emulate::decode(code, Mode::Prot64).expect("form decodes");
    let reg = matches!(i.modrm, Some(m) if m >> 6 == 3);
    format!(
        "{:#x} 66:{} {:?} W:{} reg:{reg}",
        i.opcode,
        i.prefixes.opsize,
        i.prefixes.rep,
        i.prefixes.rex.w()
    )
}

/// Runs every form `diff_cases()` times.
fn run_all(forms: &[Form], salt: u64) {
    let n = diff_cases();
    let mut keys: Vec<String> = forms.iter().map(opcode_form).collect();
    keys.sort();
    keys.dedup();
    eprintln!(
        "{} text forms, {} opcode forms, {n} cases each",
        forms.len(),
        keys.len()
    );
    for (i, f) in forms.iter().enumerate() {
        run_form(
            f,
            n,
            0x0123_4567_89ab_cdef ^ (i as u64 + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
    }
}

#[test]
fn diff_sse_full() {
    let forms = [
        // MOVUPS / MOVUPD / MOVDQU (0F 10/11, 66 0F 10/11, F3 0F 6F/7F).
        form!("movups xmm1, xmmword ptr [r11+rcx]", Kind::Idx),
        form!("movups xmmword ptr [r11+rcx], xmm9", Kind::Idx),
        form!("movups xmm15, xmm2", Kind::Plain),
        form!(".byte 0x0f, 0x11, 0xc8", Kind::Plain), // movups xmm0, xmm1 (store form)
        form!("movupd xmm3, xmmword ptr [r11+rcx]", Kind::Idx),
        form!("movupd xmmword ptr [r11+rcx], xmm0", Kind::Idx),
        form!("movupd xmm8, xmm9", Kind::Plain),
        form!(".byte 0x66, 0x0f, 0x11, 0xc8", Kind::Plain), // movupd xmm0, xmm1 (store form)
        form!("movdqu xmm2, xmmword ptr [r11+rcx]", Kind::Idx),
        form!("movdqu xmmword ptr [r11+rcx], xmm15", Kind::Idx),
        form!("movdqu xmm7, xmm8", Kind::Plain),
        form!(".byte 0xf3, 0x0f, 0x7f, 0xca", Kind::Plain), // movdqu xmm2, xmm1 (store form)
        // MOVAPS / MOVAPD / MOVDQA (0F 28/29, 66 0F 28/29, 66 0F 6F/7F).
        form!("movaps xmm0, xmmword ptr [r11+16]", Kind::Plain),
        form!("movaps xmmword ptr [r11+rcx], xmm8", Kind::Idx16),
        form!("movaps xmm1, xmm2", Kind::Plain),
        form!(".byte 0x0f, 0x29, 0xd1", Kind::Plain), // movaps xmm1, xmm2 (store form)
        form!("movapd xmm9, xmmword ptr [r11+rcx]", Kind::Idx16),
        form!("movapd xmmword ptr [r11+16], xmm3", Kind::Plain),
        form!("movapd xmm15, xmm0", Kind::Plain),
        form!(".byte 0x66, 0x44, 0x0f, 0x29, 0xc7", Kind::Plain), // movapd xmm7, xmm8 (store form)
        form!("movdqa xmm0, xmmword ptr [r11+rcx]", Kind::Idx16),
        form!("movdqa xmmword ptr [r11+48], xmm7", Kind::Plain),
        form!("movdqa xmm3, xmm9", Kind::Plain),
        form!(".byte 0x66, 0x0f, 0x7f, 0xd1", Kind::Plain), // movdqa xmm1, xmm2 (store form)
        // MOVSS / MOVSD (F3/F2 0F 10/11).
        form!("movss xmm1, dword ptr [r11+rcx]", Kind::Idx),
        form!("movss dword ptr [r11+rcx], xmm8", Kind::Idx),
        form!("movss xmm2, xmm3", Kind::Plain),
        form!(".byte 0xf3, 0x45, 0x0f, 0x11, 0xf9", Kind::Plain), // movss xmm9, xmm15 (store form)
        form!("movsd xmm1, qword ptr [r11+rcx]", Kind::Idx),
        form!("movsd qword ptr [r11+rcx], xmm2", Kind::Idx),
        form!("movsd xmm0, xmm8", Kind::Plain),
        form!(".byte 0xf2, 0x0f, 0x11, 0xd8", Kind::Plain), // movsd xmm0, xmm3 (store form)
        // MOVD / MOVQ with r/m32/64 (66 0F 6E/7E, REX.W).
        form!("movd xmm1, dword ptr [r11+rcx]", Kind::Idx),
        form!("movd dword ptr [r11+rcx], xmm9", Kind::Idx),
        form!("movd xmm2, eax", Kind::Plain),
        form!("movd r9d, xmm3", Kind::Plain),
        form!("movd xmm15, r10d", Kind::Plain),
        form!("movq xmm1, rax", Kind::Plain),
        form!("movq rdx, xmm8", Kind::Plain),
        form!(".byte 0x66, 0x49, 0x0f, 0x6e, 0x0c, 0x0b", Kind::Idx), // movq xmm1, [r11+rcx]
        form!(".byte 0x66, 0x4d, 0x0f, 0x7e, 0x3c, 0x0b", Kind::Idx), // movq [r11+rcx], xmm15
        // MOVQ xmm, xmm/m64 (F3 0F 7E) and xmm/m64, xmm (66 0F D6).
        form!(".byte 0xf3, 0x41, 0x0f, 0x7e, 0x1c, 0x0b", Kind::Idx), // movq xmm3, [r11+rcx]
        form!(".byte 0xf3, 0x44, 0x0f, 0x7e, 0xc2", Kind::Plain),     // movq xmm8, xmm2
        form!(".byte 0x66, 0x41, 0x0f, 0xd6, 0x14, 0x0b", Kind::Idx), // movq [r11+rcx], xmm2
        form!(".byte 0x66, 0x0f, 0xd6, 0xc1", Kind::Plain),           // movq xmm1, xmm0
        // MOVLPS/MOVHPS/MOVLPD/MOVHPD (0F 12/13/16/17, 66), MOVHLPS/MOVLHPS.
        form!("movlps xmm1, qword ptr [r11+rcx]", Kind::Idx),
        form!("movlps qword ptr [r11+rcx], xmm9", Kind::Idx),
        form!("movhps xmm2, qword ptr [r11+rcx]", Kind::Idx),
        form!("movhps qword ptr [r11+rcx], xmm3", Kind::Idx),
        form!("movlpd xmm8, qword ptr [r11+rcx]", Kind::Idx),
        form!("movlpd qword ptr [r11+rcx], xmm0", Kind::Idx),
        form!("movhpd xmm15, qword ptr [r11+rcx]", Kind::Idx),
        form!("movhpd qword ptr [r11+rcx], xmm7", Kind::Idx),
        form!("movhlps xmm1, xmm2", Kind::Plain),
        form!("movlhps xmm9, xmm3", Kind::Plain),
    ];
    run_all(&forms, 0x55e);
}
