//! Differential tests against the host CPU.
//!
//! Every form below is assembled by `asm!` into a small native function that
//! loads a random register file and RFLAGS, runs the one instruction with
//! R11 pointing at a 512-byte test buffer, and stores the results. The bytes
//! the assembler produced (between the local labels `2:` and `3:`) are then
//! fetched, decoded and executed by the emulator in 64-bit mode on the same
//! state, with the same buffer mapped at the same (real) address. Registers,
//! the defined RFLAGS bits and the buffer must match. Architecturally
//! undefined flags (per the SDM "Flags Affected" of each instruction) are
//! masked.
//!
//! `EMU_DIFF_CASES` sets the cases per form (default 10,000); the documented
//! long run is `EMU_DIFF_CASES=1000000 cargo test --release -p
//! kvm-x86-emulate --test diff_native`.
//!
//! Not run natively, and covered by the mock-based tests instead:
//! - IN/OUT/INS/OUTS, CLI/STI, HLT, MOV CR/DR, RDMSR/WRMSR, LGDT/LIDT, SMSW/
//!   LMSW, INVLPG, MOV Sreg: privileged or IOPL-sensitive, they fault (SIGSEGV)
//!   in a user-mode test process.
//! - LEAVE/ENTER: they use RBP, which `asm!` cannot hand out; PUSH/POP Sreg
//!   and far transfers load segments. (PUSH/POP/PUSHF/POPF/CALL/RET do run
//!   natively, with RSP switched to the test buffer: `stack_form!`.)
//! - MOV moffs (A0-A3), far JMP/RET: the absolute address or selector is not
//!   known when the form is assembled.
//! - 16/32-bit address sizes: the test buffer lives above 4 GiB.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use common::{Mock, Rng, diff_cases};
use kvm_x86_emulate::{Context, Exception, Mode, Outcome, Registers, Rflags, emulate};
use std::arch::asm;

const BUF: usize = 512;
/// R11 points here inside the buffer.
const MEM_OFF: usize = 128;

#[repr(C, align(16))]
struct Buf([u8; BUF]);

/// The register file of the native harness: RAX RCX RDX RSI RDI R8 R9 R10,
/// then RFLAGS. RBX is loaded from R10 (for CMPXCHG8B/16B) and not compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct St {
    r: [u64; 8],
    flags: u64,
}

/// The emulator's GPR numbers of `St::r`.
const GPR: [usize; 8] = [0, 1, 2, 6, 7, 8, 9, 10];

/// Code addresses the native function reports: instruction start and end,
/// and the branch target label.
#[derive(Clone, Copy)]
struct Addrs {
    start: usize,
    end: usize,
    target: usize,
}

#[derive(Clone, Copy, Debug)]
enum Dv {
    Reg(usize),
    RegHigh(usize),
    Mem(usize),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Str,
    Div {
        bits: u32,
        signed: bool,
        divisor: Dv,
    },
    BitMem,
    Shift,
    Sh16,
    Sparse,
    Cmpxchg(usize),
    CmpxchgReg,
    Cx8(usize),
    Cx16(usize),
    Branch,
    Loop,
    Xlat,
    /// PUSH/POP/PUSHF/POPF on a stack inside the buffer.
    Stack,
    /// POPF: the popped image has no TF/AC.
    StackPopf,
    /// CALL rel: a taken branch that pushes.
    StackCall,
    /// RET: the template pushes the return target first.
    StackRet,
}

/// RSP of the stack forms (relative to R11); the native RSP after the
/// instruction is parked at R11-8.
const STACK_TOP: usize = 96;

#[derive(Clone, Copy, Debug)]
enum Cnt {
    Cl,
    Imm(u32),
}

#[derive(Clone, Copy, Debug)]
enum ShK {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
    Rcl,
    Rcr,
    Shld,
    Shrd,
}

/// Which RFLAGS bits the SDM leaves undefined.
#[derive(Clone, Copy, Debug)]
enum U {
    No,
    Logic,
    Mul,
    Div,
    Bit,
    Bsf,
    Sh { cnt: Cnt, bits: u32, op: ShK },
}

const CF: u64 = Rflags::CF.bits();
const PF: u64 = Rflags::PF.bits();
const AF: u64 = Rflags::AF.bits();
const ZF: u64 = Rflags::ZF.bits();
const SF: u64 = Rflags::SF.bits();
const OF: u64 = Rflags::OF.bits();
const DF: u64 = Rflags::DF.bits();
const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

fn undefined(u: U, input: &St) -> u64 {
    match u {
        U::No => 0,
        U::Logic => AF,
        U::Mul => SF | ZF | AF | PF,
        U::Div => STATUS,
        U::Bit => OF | SF | AF | PF,
        U::Bsf => CF | OF | SF | AF | PF,
        U::Sh { cnt, bits, op } => {
            let raw = match cnt {
                Cnt::Cl => (input.r[1] & 0xff) as u32,
                Cnt::Imm(n) => n,
            };
            let c = raw & if bits == 64 { 63 } else { 31 };
            if c == 0 {
                return 0;
            }
            let of = if c == 1 { 0 } else { OF };
            match op {
                ShK::Shl | ShK::Shr | ShK::Sar => AF | of | if c >= bits { CF | OF } else { 0 },
                ShK::Rol | ShK::Ror | ShK::Rcl | ShK::Rcr => of,
                ShK::Shld | ShK::Shrd => AF | of | if c > bits { STATUS } else { 0 },
            }
        }
    }
}

struct Form {
    text: &'static str,
    run: fn(&mut St, *mut u8) -> Addrs,
    kind: Kind,
    undef: U,
}

macro_rules! form {
    ($insn:literal, [$($tail:literal),*], $kind:expr, $undef:expr) => {{
        fn run(st: &mut St, mem: *mut u8) -> Addrs {
            let (start, end, target): (usize, usize, usize);
            // SAFETY: the instruction only touches the listed registers, the
            // flags and the 512-byte buffer R11 points into; RBX is saved and
            // restored; DF is cleared before returning.
            unsafe {
                asm!(
                    "lea {s}, [rip + 2f]",
                    "lea {e}, [rip + 3f]",
                    "lea {t}, [rip + 5f]",
                    "push rbx",
                    "mov rbx, r10",
                    "push {fl}",
                    "popfq",
                    "2:",
                    $insn,
                    "3:",
                    $($tail,)*
                    "5:",
                    "pushfq",
                    "pop {fl}",
                    "cld",
                    "pop rbx",
                    s = out(reg) start,
                    e = out(reg) end,
                    t = out(reg) target,
                    fl = inout(reg) st.flags,
                    inout("rax") st.r[0],
                    inout("rcx") st.r[1],
                    inout("rdx") st.r[2],
                    inout("rsi") st.r[3],
                    inout("rdi") st.r[4],
                    inout("r8") st.r[5],
                    inout("r9") st.r[6],
                    inout("r10") st.r[7],
                    in("r11") mem,
                );
            }
            Addrs { start, end, target }
        }
        Form { text: $insn, run, kind: $kind, undef: $undef }
    }};
}

/// Like `form!`, but with RSP pointing into the test buffer (at
/// R11+STACK_TOP) while the instruction runs; `$pre` runs on that stack
/// before the instruction (not part of it). A signal delivered in that
/// window would land on the buffer; the test process does not expect any.
macro_rules! stack_form {
    ($insn:literal, [$($pre:literal),*], [$($tail:literal),*], $kind:expr) => {{
        fn run(st: &mut St, mem: *mut u8) -> Addrs {
            let (start, end, target): (usize, usize, usize);
            // SAFETY: as for `form!`; RSP is switched to the buffer and back
            // with flag-neutral instructions and restored before returning.
            unsafe {
                asm!(
                    "lea {s}, [rip + 2f]",
                    "lea {e}, [rip + 3f]",
                    "lea {t}, [rip + 5f]",
                    "push rbx",
                    "push {fl}",
                    "popfq",
                    "mov rbx, rsp",
                    "lea rsp, [r11 + 96]",
                    $($pre,)*
                    "2:",
                    $insn,
                    "3:",
                    $($tail,)*
                    "5:",
                    "xchg rbx, rsp",
                    "pushfq",
                    "pop {fl}",
                    "cld",
                    "mov [r11 - 8], rbx",
                    "pop rbx",
                    s = out(reg) start,
                    e = out(reg) end,
                    t = out(reg) target,
                    fl = inout(reg) st.flags,
                    inout("rax") st.r[0],
                    inout("rcx") st.r[1],
                    inout("rdx") st.r[2],
                    inout("rsi") st.r[3],
                    inout("rdi") st.r[4],
                    inout("r8") st.r[5],
                    inout("r9") st.r[6],
                    inout("r10") st.r[7],
                    in("r11") mem,
                );
            }
            Addrs { start, end, target }
        }
        Form { text: $insn, run, kind: $kind, undef: U::No }
    }};
}

/// The input shapes of this test on the shared generator.
impl Rng {
    /// A value biased towards the edges of every width.
    fn value(&mut self) -> u64 {
        let r = self.next();
        match r % 10 {
            0 => 0,
            1 => u64::MAX,
            2 => [
                0x7f,
                0x80,
                0xff,
                0x7fff,
                0x8000,
                0xffff,
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                0x7fff_ffff_ffff_ffff,
                1u64 << 63,
                1,
            ][(r >> 8) as usize % 12],
            3 => r >> 60,
            4 => (r >> 8) & 0xff,
            5 => self.next() as u32 as u64,
            6 => (self.next() as i32 as i64) as u64,
            _ => self.next(),
        }
    }
}

/// Whether DIV/IDIV of the input raises #DE (independent of the emulator).
fn div_faults(st: &St, mem: &[u8], bits: u32, signed: bool, d: Dv) -> bool {
    let m = |o: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&mem[MEM_OFF + o..MEM_OFF + o + n]);
        u64::from_le_bytes(b)
    };
    let bytes = (bits / 8) as usize;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let divisor = match d {
        Dv::Reg(i) => st.r[i] & mask,
        Dv::RegHigh(i) => (st.r[i] >> 8) & 0xff,
        Dv::Mem(o) => m(o, bytes),
    };
    let (hi, lo) = if bits == 8 {
        ((st.r[0] >> 8) & 0xff, st.r[0] & 0xff)
    } else {
        (st.r[2] & mask, st.r[0] & mask)
    };
    let dividend = ((hi as u128) << bits) | lo as u128;
    if divisor == 0 {
        return true;
    }
    if signed {
        let sh = 128 - 2 * bits;
        let n = ((dividend << sh) as i128) >> sh;
        let dsh = 128 - bits;
        let dv = (((divisor as u128) << dsh) as i128) >> dsh;
        match n.checked_div(dv) {
            Some(q) => q < -(1i128 << (bits - 1)) || q > (1i128 << (bits - 1)) - 1,
            None => true,
        }
    } else {
        dividend / divisor as u128 > mask as u128
    }
}

fn setup(f: &Form, case: u64, rng: &mut Rng, st: &mut St, buf: &mut Buf, base: u64) {
    for r in st.r.iter_mut() {
        *r = rng.value();
    }
    // The operand area gets fresh edge-biased values every case, its
    // surroundings fresh noise every 8th case (the debug-build test is
    // dominated by input generation otherwise).
    if case.is_multiple_of(8) {
        let (lo, hi) = if matches!(f.kind, Kind::Str) {
            (64, 320)
        } else {
            (MEM_OFF - 64, MEM_OFF + 96)
        };
        for i in (lo..hi).step_by(8) {
            buf.0[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
        }
    }
    for i in (MEM_OFF..MEM_OFF + 32).step_by(8) {
        buf.0[i..i + 8].copy_from_slice(&rng.value().to_le_bytes());
    }
    st.flags = (rng.next() & (STATUS | DF)) | 2;
    match f.kind {
        Kind::Str => {
            st.r[3] = base + 64 + rng.below(64); // rsi
            st.r[4] = base + 320 + rng.below(64); // rdi
            st.r[1] = rng.below(10); // rcx
            // Make compares match for a while: copy, then perturb a few bytes.
            let (a, b) = buf.0.split_at_mut(256);
            b[..256].copy_from_slice(&a[..256]);
            for _ in 0..rng.below(4) {
                let i = 256 + rng.below(256) as usize;
                buf.0[i] = rng.next() as u8;
            }
            if rng.below(2) == 0 {
                let v = buf.0[(st.r[4] - base) as usize];
                st.r[0] = u64::from_le_bytes([v; 8]);
            }
        }
        Kind::Div { bits, signed, .. } => {
            if rng.below(4) != 0 {
                // Keep the high half small so many quotients fit.
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                if bits == 8 {
                    let lo = st.r[0] & 0xff;
                    let hi = if signed {
                        if lo & 0x80 != 0 { 0xff } else { 0 }
                    } else {
                        0
                    };
                    st.r[0] = (st.r[0] & !0xff00) | (hi << 8);
                } else {
                    let neg = signed && st.r[0] & (1u64 << (bits - 1)) != 0;
                    st.r[2] = (st.r[2] & !mask) | if neg { mask } else { 0 };
                }
            }
        }
        Kind::BitMem => {
            st.r[1] = (rng.below(1024) as i64 - 512) as u64;
            st.r[2] = (rng.below(1024) as i64 - 512) as u64;
        }
        Kind::Shift => {
            if rng.below(2) == 0 {
                st.r[1] = (st.r[1] & !0xff) | rng.below(70);
            }
        }
        Kind::Sh16 => st.r[1] = (st.r[1] & !0xff) | rng.below(17),
        Kind::Sparse => {
            if rng.below(3) == 0 {
                st.r[1] = 0;
                st.r[5] = 0;
                buf.0[MEM_OFF..MEM_OFF + 16].fill(0);
            }
            if rng.below(3) == 0 {
                st.r[1] &= 0xffff_0000;
                st.r[4] &= 0xffff_0000;
            }
        }
        Kind::Cmpxchg(o) => {
            if rng.below(2) == 0 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf.0[MEM_OFF + o..MEM_OFF + o + 8]);
                st.r[0] = u64::from_le_bytes(b);
            }
        }
        Kind::CmpxchgReg => {
            if rng.below(2) == 0 {
                st.r[0] = st.r[1];
            }
        }
        Kind::Cx8(o) | Kind::Cx16(o) => {
            if rng.below(2) == 0 {
                let w = if matches!(f.kind, Kind::Cx8(_)) { 4 } else { 8 };
                let rd = |i: usize| {
                    let mut b = [0u8; 8];
                    b[..w].copy_from_slice(&buf.0[MEM_OFF + i..MEM_OFF + i + w]);
                    u64::from_le_bytes(b)
                };
                st.r[0] = (st.r[0] & !(u64::MAX >> (64 - 8 * w))) | rd(o);
                st.r[2] = (st.r[2] & !(u64::MAX >> (64 - 8 * w))) | rd(o + w);
            }
        }
        Kind::Branch | Kind::Loop => {
            if st.r[7] == 0x1234 {
                st.r[7] = 0;
            }
            if matches!(f.kind, Kind::Loop) && rng.below(2) == 0 {
                st.r[1] = rng.below(3) | (rng.below(2) << 32);
            }
        }
        Kind::Xlat => st.r[7] = base + MEM_OFF as u64, // RBX (loaded from R10)
        Kind::Stack | Kind::StackPopf | Kind::StackCall | Kind::StackRet => {
            let top = MEM_OFF + STACK_TOP;
            for i in (top..top + 16).step_by(8) {
                buf.0[i..i + 8].copy_from_slice(&rng.value().to_le_bytes());
            }
            if matches!(f.kind, Kind::StackPopf) {
                let image = (rng.next() & (STATUS | DF)) | 2;
                buf.0[top..top + 8].copy_from_slice(&image.to_le_bytes());
            }
            if st.r[7] == 0x1234 {
                st.r[7] = 0;
            }
        }
        Kind::Plain => {}
    }
}

fn run_form(f: &Form, n: u64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut buf = Box::new(Buf([0; BUF]));
    let base = buf.0.as_ptr() as u64;
    let mut mock = Mock::new();
    mock.log = false;
    mock.map(0, &[]).map(base, &[0; BUF]);
    let stack = matches!(
        f.kind,
        Kind::Stack | Kind::StackPopf | Kind::StackCall | Kind::StackRet
    );
    let branch = matches!(
        f.kind,
        Kind::Branch | Kind::Loop | Kind::StackCall | Kind::StackRet
    );
    if stack {
        // User mode, as natively: POPF keeps IF and IOPL.
        mock.cpl = 3;
    }
    for case in 0..n {
        let mut input = St {
            r: [0; 8],
            flags: 2,
        };
        setup(f, case, &mut rng, &mut input, &mut buf, base);
        let mem_in = buf.0;
        let de = match f.kind {
            Kind::Div {
                bits,
                signed,
                divisor,
            } => div_faults(&input, &mem_in, bits, signed, divisor),
            _ => false,
        };
        // Native.
        let mut native = input;
        let addrs = if de {
            // Only learn the instruction's address; do not execute it.
            let mut probe = St {
                r: [0; 8],
                flags: 2,
            };
            probe.r[0] = 1;
            probe.r[1] = 1;
            probe.r[3] = 1;
            probe.r[6] = 1;
            probe.r[7] = 0x100; // BH = 1
            let mut scratch = Box::new(Buf([1; BUF]));
            (f.run)(&mut probe, unsafe { scratch.0.as_mut_ptr().add(MEM_OFF) })
        } else {
            (f.run)(&mut native, unsafe { buf.0.as_mut_ptr().add(MEM_OFF) })
        };
        let taken_native = native.r[7] != 0x1234;
        if branch {
            native.r[7] = input.r[7];
        }
        let mut native_rsp = 0;
        if stack {
            let park = MEM_OFF - 8..MEM_OFF;
            native_rsp = u64::from_le_bytes(buf.0[park.clone()].try_into().unwrap());
            buf.0[park.clone()].copy_from_slice(&mem_in[park]);
        }
        // Emulated.
        let code = unsafe {
            std::slice::from_raw_parts(addrs.start as *const u8, addrs.end - addrs.start)
        };
        if mock.regions[0].base != addrs.start as u64 {
            mock.regions[0].base = addrs.start as u64;
            mock.regions[0].data = code.to_vec();
        }
        mock.regions[1].data.copy_from_slice(&mem_in);
        let mut rsp = base + (MEM_OFF + STACK_TOP) as u64;
        if matches!(f.kind, Kind::StackRet) {
            // The template pushed the return target before the instruction.
            rsp -= 8;
            let slot = MEM_OFF + STACK_TOP - 8;
            mock.regions[1].data[slot..slot + 8]
                .copy_from_slice(&(addrs.target as u64).to_le_bytes());
        }
        let mut regs = Registers::default();
        for (i, g) in GPR.iter().enumerate() {
            regs.gpr[*g] = input.r[i];
        }
        regs.gpr[3] = input.r[7];
        regs.gpr[11] = base + MEM_OFF as u64;
        if stack {
            regs.gpr[4] = rsp;
        }
        regs.rip = addrs.start as u64;
        // Natively IF is always set in user mode (PUSHF shows it).
        regs.rflags = input.flags | Rflags::IF.bits();
        let mut ctx = Context::new(Mode::Prot64, regs);
        let out = emulate(&mut ctx, &mut mock);
        let fail = |what: &str| -> ! {
            panic!(
                "{} (case {case}): {what}\n code {code:02x?}\n input {input:x?}\n native {native:x?}\n emulated {:x?} rip {:#x} out {out:?}",
                f.text, ctx.regs.gpr, ctx.regs.rip
            )
        };
        if de {
            if out != Ok(Outcome::Exception(Exception::DivideError)) {
                fail("expected #DE");
            }
            continue;
        }
        if out != Ok(Outcome::Done) {
            fail("emulation did not complete");
        }
        let mut emu = St {
            r: [0; 8],
            flags: ctx.regs.rflags,
        };
        for (i, g) in GPR.iter().enumerate() {
            emu.r[i] = ctx.regs.gpr[*g];
        }
        if stack && ctx.regs.gpr[4] != native_rsp {
            fail(&format!(
                "RSP {:#x} vs native {native_rsp:#x}",
                ctx.regs.gpr[4]
            ));
        }
        match f.kind {
            Kind::Branch | Kind::Loop | Kind::StackCall | Kind::StackRet => {
                let rip = ctx.regs.rip as usize;
                let taken_emu = if rip == addrs.target {
                    true
                } else if rip == addrs.end {
                    false
                } else {
                    fail("RIP is neither target nor next");
                };
                if taken_native != taken_emu {
                    fail("branch decision differs");
                }
            }
            _ => {
                if ctx.regs.rip as usize != addrs.end {
                    fail("RIP not advanced to the next instruction");
                }
            }
        }
        if emu.r != native.r {
            // BSF/BSR with a zero source: the destination is undefined (Intel).
            let zero_src = matches!(f.undef, U::Bsf) && native.flags & ZF != 0;
            if !zero_src {
                fail("registers differ");
            }
        }
        let keep = (STATUS | DF) & !undefined(f.undef, &input);
        if emu.flags & keep != native.flags & keep {
            fail(&format!(
                "flags differ: {:#x} vs native {:#x} (compared {keep:#x})",
                emu.flags & keep,
                native.flags & keep
            ));
        }
        if mock.region(base) != &buf.0[..] {
            fail("memory differs");
        }
    }
}

/// The opcode form a text form belongs to: map, opcode, operation, operand
/// size, register-or-memory, LOCK and REP. Register variants of one opcode
/// form share its case budget.
fn opcode_form(f: &Form) -> String {
    let mut rng = Rng(7);
    let mut buf = Box::new(Buf([1; BUF]));
    let base = buf.0.as_ptr() as u64;
    let mut st = St {
        r: [1, 1, 0, 1, 1, 1, 1, 0x100],
        flags: 2,
    };
    if !matches!(f.kind, Kind::Div { .. }) {
        setup(f, 0, &mut rng, &mut st, &mut buf, base);
    }
    let a = (f.run)(&mut st, unsafe { buf.0.as_mut_ptr().add(MEM_OFF) });
    let code = unsafe { std::slice::from_raw_parts(a.start as *const u8, a.end - a.start) };
    let i = kvm_x86_emulate::decode(code, Mode::Prot64).expect("form decodes");
    let reg = matches!(i.modrm, Some(m) if m >> 6 == 3);
    format!(
        "{:?} {:#x} {:?} {:?} {reg} {} {:?}",
        i.map, i.opcode, i.op, i.op_size, i.prefixes.lock, i.prefixes.rep
    )
}

/// Runs every form; each opcode form gets at least `diff_cases()` cases, split
/// over its register variants.
fn run_all(forms: &[Form], salt: u64) {
    let n = diff_cases();
    let keys: Vec<String> = forms.iter().map(opcode_form).collect();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    eprintln!(
        "{} text forms, {} opcode forms, >= {n} cases each",
        forms.len(),
        distinct.len()
    );
    for (i, f) in forms.iter().enumerate() {
        let variants = keys.iter().filter(|k| **k == keys[i]).count() as u64;
        let per = n.div_ceil(variants);
        run_form(
            f,
            per,
            0x1234_5678_9abc_def1 ^ (i as u64 + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
    }
}

#[test]
fn diff_alu_add() {
    let forms = [
        form!("add al, cl", [], Kind::Plain, U::No),
        form!("add ah, dl", [], Kind::Plain, U::No),
        form!("add sil, r8b", [], Kind::Plain, U::No),
        form!("add dh, ch", [], Kind::Plain, U::No),
        form!("add ax, cx", [], Kind::Plain, U::No),
        form!("add eax, edx", [], Kind::Plain, U::No),
        form!("add rax, r9", [], Kind::Plain, U::No),
        form!("add r10d, esi", [], Kind::Plain, U::No),
        form!("add byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("add word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("add dword ptr [r11+4], esi", [], Kind::Plain, U::No),
        form!("add qword ptr [r11+8], rdi", [], Kind::Plain, U::No),
        form!("add byte ptr [r11+1], dil", [], Kind::Plain, U::No),
        form!("add cl, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("add edx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("add r9, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("add dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("add sil, byte ptr [r11+3]", [], Kind::Plain, U::No),
        form!("add al, 0x85", [], Kind::Plain, U::No),
        form!("add ax, 0x8001", [], Kind::Plain, U::No),
        form!("add eax, 0x80000001", [], Kind::Plain, U::No),
        form!("add rax, -0x7ffffff", [], Kind::Plain, U::No),
        form!("add byte ptr [r11], 0x7f", [], Kind::Plain, U::No),
        form!("add word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("add word ptr [r11+2], -3", [], Kind::Plain, U::No),
        form!("add dword ptr [r11+4], -5", [], Kind::Plain, U::No),
        form!("add qword ptr [r11+8], 0x12345678", [], Kind::Plain, U::No),
        form!("add dword ptr [r11+4], 0x80000000", [], Kind::Plain, U::No),
        form!("add qword ptr [r11+8], -1", [], Kind::Plain, U::No),
        form!("add cl, 0x80", [], Kind::Plain, U::No),
        form!("add r9b, 1", [], Kind::Plain, U::No),
        form!("lock add dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("lock add byte ptr [r11], 0x3c", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_or() {
    let forms = [
        form!("or al, cl", [], Kind::Plain, U::Logic),
        form!("or ah, dl", [], Kind::Plain, U::Logic),
        form!("or sil, r8b", [], Kind::Plain, U::Logic),
        form!("or dh, ch", [], Kind::Plain, U::Logic),
        form!("or ax, cx", [], Kind::Plain, U::Logic),
        form!("or eax, edx", [], Kind::Plain, U::Logic),
        form!("or rax, r9", [], Kind::Plain, U::Logic),
        form!("or r10d, esi", [], Kind::Plain, U::Logic),
        form!("or byte ptr [r11], cl", [], Kind::Plain, U::Logic),
        form!("or word ptr [r11+2], dx", [], Kind::Plain, U::Logic),
        form!("or dword ptr [r11+4], esi", [], Kind::Plain, U::Logic),
        form!("or qword ptr [r11+8], rdi", [], Kind::Plain, U::Logic),
        form!("or byte ptr [r11+1], dil", [], Kind::Plain, U::Logic),
        form!("or cl, byte ptr [r11]", [], Kind::Plain, U::Logic),
        form!("or edx, dword ptr [r11+4]", [], Kind::Plain, U::Logic),
        form!("or r9, qword ptr [r11+8]", [], Kind::Plain, U::Logic),
        form!("or dx, word ptr [r11+2]", [], Kind::Plain, U::Logic),
        form!("or sil, byte ptr [r11+3]", [], Kind::Plain, U::Logic),
        form!("or al, 0x85", [], Kind::Plain, U::Logic),
        form!("or ax, 0x8001", [], Kind::Plain, U::Logic),
        form!("or eax, 0x80000001", [], Kind::Plain, U::Logic),
        form!("or rax, -0x7ffffff", [], Kind::Plain, U::Logic),
        form!("or byte ptr [r11], 0x7f", [], Kind::Plain, U::Logic),
        form!("or word ptr [r11+2], 0x1234", [], Kind::Plain, U::Logic),
        form!("or word ptr [r11+2], -3", [], Kind::Plain, U::Logic),
        form!("or dword ptr [r11+4], -5", [], Kind::Plain, U::Logic),
        form!(
            "or qword ptr [r11+8], 0x12345678",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!(
            "or dword ptr [r11+4], 0x80000000",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!("or qword ptr [r11+8], -1", [], Kind::Plain, U::Logic),
        form!("or cl, 0x80", [], Kind::Plain, U::Logic),
        form!("or r9b, 1", [], Kind::Plain, U::Logic),
        form!("lock or dword ptr [r11+4], ecx", [], Kind::Plain, U::Logic),
        form!("lock or byte ptr [r11], 0x3c", [], Kind::Plain, U::Logic),
    ];
    run_all(&forms, 47514);
}

#[test]
fn diff_alu_adc() {
    let forms = [
        form!("adc al, cl", [], Kind::Plain, U::No),
        form!("adc ah, dl", [], Kind::Plain, U::No),
        form!("adc sil, r8b", [], Kind::Plain, U::No),
        form!("adc dh, ch", [], Kind::Plain, U::No),
        form!("adc ax, cx", [], Kind::Plain, U::No),
        form!("adc eax, edx", [], Kind::Plain, U::No),
        form!("adc rax, r9", [], Kind::Plain, U::No),
        form!("adc r10d, esi", [], Kind::Plain, U::No),
        form!("adc byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("adc word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("adc dword ptr [r11+4], esi", [], Kind::Plain, U::No),
        form!("adc qword ptr [r11+8], rdi", [], Kind::Plain, U::No),
        form!("adc byte ptr [r11+1], dil", [], Kind::Plain, U::No),
        form!("adc cl, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("adc edx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("adc r9, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("adc dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("adc sil, byte ptr [r11+3]", [], Kind::Plain, U::No),
        form!("adc al, 0x85", [], Kind::Plain, U::No),
        form!("adc ax, 0x8001", [], Kind::Plain, U::No),
        form!("adc eax, 0x80000001", [], Kind::Plain, U::No),
        form!("adc rax, -0x7ffffff", [], Kind::Plain, U::No),
        form!("adc byte ptr [r11], 0x7f", [], Kind::Plain, U::No),
        form!("adc word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("adc word ptr [r11+2], -3", [], Kind::Plain, U::No),
        form!("adc dword ptr [r11+4], -5", [], Kind::Plain, U::No),
        form!("adc qword ptr [r11+8], 0x12345678", [], Kind::Plain, U::No),
        form!("adc dword ptr [r11+4], 0x80000000", [], Kind::Plain, U::No),
        form!("adc qword ptr [r11+8], -1", [], Kind::Plain, U::No),
        form!("adc cl, 0x80", [], Kind::Plain, U::No),
        form!("adc r9b, 1", [], Kind::Plain, U::No),
        form!("lock adc dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("lock adc byte ptr [r11], 0x3c", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_sbb() {
    let forms = [
        form!("sbb al, cl", [], Kind::Plain, U::No),
        form!("sbb ah, dl", [], Kind::Plain, U::No),
        form!("sbb sil, r8b", [], Kind::Plain, U::No),
        form!("sbb dh, ch", [], Kind::Plain, U::No),
        form!("sbb ax, cx", [], Kind::Plain, U::No),
        form!("sbb eax, edx", [], Kind::Plain, U::No),
        form!("sbb rax, r9", [], Kind::Plain, U::No),
        form!("sbb r10d, esi", [], Kind::Plain, U::No),
        form!("sbb byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("sbb word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("sbb dword ptr [r11+4], esi", [], Kind::Plain, U::No),
        form!("sbb qword ptr [r11+8], rdi", [], Kind::Plain, U::No),
        form!("sbb byte ptr [r11+1], dil", [], Kind::Plain, U::No),
        form!("sbb cl, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("sbb edx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("sbb r9, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("sbb dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("sbb sil, byte ptr [r11+3]", [], Kind::Plain, U::No),
        form!("sbb al, 0x85", [], Kind::Plain, U::No),
        form!("sbb ax, 0x8001", [], Kind::Plain, U::No),
        form!("sbb eax, 0x80000001", [], Kind::Plain, U::No),
        form!("sbb rax, -0x7ffffff", [], Kind::Plain, U::No),
        form!("sbb byte ptr [r11], 0x7f", [], Kind::Plain, U::No),
        form!("sbb word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("sbb word ptr [r11+2], -3", [], Kind::Plain, U::No),
        form!("sbb dword ptr [r11+4], -5", [], Kind::Plain, U::No),
        form!("sbb qword ptr [r11+8], 0x12345678", [], Kind::Plain, U::No),
        form!("sbb dword ptr [r11+4], 0x80000000", [], Kind::Plain, U::No),
        form!("sbb qword ptr [r11+8], -1", [], Kind::Plain, U::No),
        form!("sbb cl, 0x80", [], Kind::Plain, U::No),
        form!("sbb r9b, 1", [], Kind::Plain, U::No),
        form!("lock sbb dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("lock sbb byte ptr [r11], 0x3c", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_and() {
    let forms = [
        form!("and al, cl", [], Kind::Plain, U::Logic),
        form!("and ah, dl", [], Kind::Plain, U::Logic),
        form!("and sil, r8b", [], Kind::Plain, U::Logic),
        form!("and dh, ch", [], Kind::Plain, U::Logic),
        form!("and ax, cx", [], Kind::Plain, U::Logic),
        form!("and eax, edx", [], Kind::Plain, U::Logic),
        form!("and rax, r9", [], Kind::Plain, U::Logic),
        form!("and r10d, esi", [], Kind::Plain, U::Logic),
        form!("and byte ptr [r11], cl", [], Kind::Plain, U::Logic),
        form!("and word ptr [r11+2], dx", [], Kind::Plain, U::Logic),
        form!("and dword ptr [r11+4], esi", [], Kind::Plain, U::Logic),
        form!("and qword ptr [r11+8], rdi", [], Kind::Plain, U::Logic),
        form!("and byte ptr [r11+1], dil", [], Kind::Plain, U::Logic),
        form!("and cl, byte ptr [r11]", [], Kind::Plain, U::Logic),
        form!("and edx, dword ptr [r11+4]", [], Kind::Plain, U::Logic),
        form!("and r9, qword ptr [r11+8]", [], Kind::Plain, U::Logic),
        form!("and dx, word ptr [r11+2]", [], Kind::Plain, U::Logic),
        form!("and sil, byte ptr [r11+3]", [], Kind::Plain, U::Logic),
        form!("and al, 0x85", [], Kind::Plain, U::Logic),
        form!("and ax, 0x8001", [], Kind::Plain, U::Logic),
        form!("and eax, 0x80000001", [], Kind::Plain, U::Logic),
        form!("and rax, -0x7ffffff", [], Kind::Plain, U::Logic),
        form!("and byte ptr [r11], 0x7f", [], Kind::Plain, U::Logic),
        form!("and word ptr [r11+2], 0x1234", [], Kind::Plain, U::Logic),
        form!("and word ptr [r11+2], -3", [], Kind::Plain, U::Logic),
        form!("and dword ptr [r11+4], -5", [], Kind::Plain, U::Logic),
        form!(
            "and qword ptr [r11+8], 0x12345678",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!(
            "and dword ptr [r11+4], 0x80000000",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!("and qword ptr [r11+8], -1", [], Kind::Plain, U::Logic),
        form!("and cl, 0x80", [], Kind::Plain, U::Logic),
        form!("and r9b, 1", [], Kind::Plain, U::Logic),
        form!("lock and dword ptr [r11+4], ecx", [], Kind::Plain, U::Logic),
        form!("lock and byte ptr [r11], 0x3c", [], Kind::Plain, U::Logic),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_sub() {
    let forms = [
        form!("sub al, cl", [], Kind::Plain, U::No),
        form!("sub ah, dl", [], Kind::Plain, U::No),
        form!("sub sil, r8b", [], Kind::Plain, U::No),
        form!("sub dh, ch", [], Kind::Plain, U::No),
        form!("sub ax, cx", [], Kind::Plain, U::No),
        form!("sub eax, edx", [], Kind::Plain, U::No),
        form!("sub rax, r9", [], Kind::Plain, U::No),
        form!("sub r10d, esi", [], Kind::Plain, U::No),
        form!("sub byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("sub word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("sub dword ptr [r11+4], esi", [], Kind::Plain, U::No),
        form!("sub qword ptr [r11+8], rdi", [], Kind::Plain, U::No),
        form!("sub byte ptr [r11+1], dil", [], Kind::Plain, U::No),
        form!("sub cl, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("sub edx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("sub r9, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("sub dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("sub sil, byte ptr [r11+3]", [], Kind::Plain, U::No),
        form!("sub al, 0x85", [], Kind::Plain, U::No),
        form!("sub ax, 0x8001", [], Kind::Plain, U::No),
        form!("sub eax, 0x80000001", [], Kind::Plain, U::No),
        form!("sub rax, -0x7ffffff", [], Kind::Plain, U::No),
        form!("sub byte ptr [r11], 0x7f", [], Kind::Plain, U::No),
        form!("sub word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("sub word ptr [r11+2], -3", [], Kind::Plain, U::No),
        form!("sub dword ptr [r11+4], -5", [], Kind::Plain, U::No),
        form!("sub qword ptr [r11+8], 0x12345678", [], Kind::Plain, U::No),
        form!("sub dword ptr [r11+4], 0x80000000", [], Kind::Plain, U::No),
        form!("sub qword ptr [r11+8], -1", [], Kind::Plain, U::No),
        form!("sub cl, 0x80", [], Kind::Plain, U::No),
        form!("sub r9b, 1", [], Kind::Plain, U::No),
        form!("lock sub dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("lock sub byte ptr [r11], 0x3c", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_xor() {
    let forms = [
        form!("xor al, cl", [], Kind::Plain, U::Logic),
        form!("xor ah, dl", [], Kind::Plain, U::Logic),
        form!("xor sil, r8b", [], Kind::Plain, U::Logic),
        form!("xor dh, ch", [], Kind::Plain, U::Logic),
        form!("xor ax, cx", [], Kind::Plain, U::Logic),
        form!("xor eax, edx", [], Kind::Plain, U::Logic),
        form!("xor rax, r9", [], Kind::Plain, U::Logic),
        form!("xor r10d, esi", [], Kind::Plain, U::Logic),
        form!("xor byte ptr [r11], cl", [], Kind::Plain, U::Logic),
        form!("xor word ptr [r11+2], dx", [], Kind::Plain, U::Logic),
        form!("xor dword ptr [r11+4], esi", [], Kind::Plain, U::Logic),
        form!("xor qword ptr [r11+8], rdi", [], Kind::Plain, U::Logic),
        form!("xor byte ptr [r11+1], dil", [], Kind::Plain, U::Logic),
        form!("xor cl, byte ptr [r11]", [], Kind::Plain, U::Logic),
        form!("xor edx, dword ptr [r11+4]", [], Kind::Plain, U::Logic),
        form!("xor r9, qword ptr [r11+8]", [], Kind::Plain, U::Logic),
        form!("xor dx, word ptr [r11+2]", [], Kind::Plain, U::Logic),
        form!("xor sil, byte ptr [r11+3]", [], Kind::Plain, U::Logic),
        form!("xor al, 0x85", [], Kind::Plain, U::Logic),
        form!("xor ax, 0x8001", [], Kind::Plain, U::Logic),
        form!("xor eax, 0x80000001", [], Kind::Plain, U::Logic),
        form!("xor rax, -0x7ffffff", [], Kind::Plain, U::Logic),
        form!("xor byte ptr [r11], 0x7f", [], Kind::Plain, U::Logic),
        form!("xor word ptr [r11+2], 0x1234", [], Kind::Plain, U::Logic),
        form!("xor word ptr [r11+2], -3", [], Kind::Plain, U::Logic),
        form!("xor dword ptr [r11+4], -5", [], Kind::Plain, U::Logic),
        form!(
            "xor qword ptr [r11+8], 0x12345678",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!(
            "xor dword ptr [r11+4], 0x80000000",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!("xor qword ptr [r11+8], -1", [], Kind::Plain, U::Logic),
        form!("xor cl, 0x80", [], Kind::Plain, U::Logic),
        form!("xor r9b, 1", [], Kind::Plain, U::Logic),
        form!("lock xor dword ptr [r11+4], ecx", [], Kind::Plain, U::Logic),
        form!("lock xor byte ptr [r11], 0x3c", [], Kind::Plain, U::Logic),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_alu_cmp() {
    let forms = [
        form!("cmp al, cl", [], Kind::Plain, U::No),
        form!("cmp ah, dl", [], Kind::Plain, U::No),
        form!("cmp sil, r8b", [], Kind::Plain, U::No),
        form!("cmp dh, ch", [], Kind::Plain, U::No),
        form!("cmp ax, cx", [], Kind::Plain, U::No),
        form!("cmp eax, edx", [], Kind::Plain, U::No),
        form!("cmp rax, r9", [], Kind::Plain, U::No),
        form!("cmp r10d, esi", [], Kind::Plain, U::No),
        form!("cmp byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("cmp word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("cmp dword ptr [r11+4], esi", [], Kind::Plain, U::No),
        form!("cmp qword ptr [r11+8], rdi", [], Kind::Plain, U::No),
        form!("cmp byte ptr [r11+1], dil", [], Kind::Plain, U::No),
        form!("cmp cl, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("cmp edx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmp r9, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("cmp dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmp sil, byte ptr [r11+3]", [], Kind::Plain, U::No),
        form!("cmp al, 0x85", [], Kind::Plain, U::No),
        form!("cmp ax, 0x8001", [], Kind::Plain, U::No),
        form!("cmp eax, 0x80000001", [], Kind::Plain, U::No),
        form!("cmp rax, -0x7ffffff", [], Kind::Plain, U::No),
        form!("cmp byte ptr [r11], 0x7f", [], Kind::Plain, U::No),
        form!("cmp word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("cmp word ptr [r11+2], -3", [], Kind::Plain, U::No),
        form!("cmp dword ptr [r11+4], -5", [], Kind::Plain, U::No),
        form!("cmp qword ptr [r11+8], 0x12345678", [], Kind::Plain, U::No),
        form!("cmp dword ptr [r11+4], 0x80000000", [], Kind::Plain, U::No),
        form!("cmp qword ptr [r11+8], -1", [], Kind::Plain, U::No),
        form!("cmp cl, 0x80", [], Kind::Plain, U::No),
        form!("cmp r9b, 1", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 55433);
}

#[test]
fn diff_unary() {
    let forms = [
        form!("test al, cl", [], Kind::Plain, U::Logic),
        form!("test ah, dh", [], Kind::Plain, U::Logic),
        form!("test byte ptr [r11], dl", [], Kind::Plain, U::Logic),
        form!("test word ptr [r11+2], cx", [], Kind::Plain, U::Logic),
        form!("test dword ptr [r11+4], eax", [], Kind::Plain, U::Logic),
        form!("test qword ptr [r11+8], r9", [], Kind::Plain, U::Logic),
        form!(
            "test qword ptr [r11+8], 0x7fff0000",
            [],
            Kind::Plain,
            U::Logic
        ),
        form!("test al, 0x81", [], Kind::Plain, U::Logic),
        form!("test ax, 0x8001", [], Kind::Plain, U::Logic),
        form!("test eax, 0x80000001", [], Kind::Plain, U::Logic),
        form!("test rax, -2", [], Kind::Plain, U::Logic),
        form!("test word ptr [r11+2], 0x8001", [], Kind::Plain, U::Logic),
        form!("test byte ptr [r11+1], 0x40", [], Kind::Plain, U::Logic),
        form!("inc byte ptr [r11]", [], Kind::Plain, U::No),
        form!("inc word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("inc dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("inc qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("inc al", [], Kind::Plain, U::No),
        form!("inc ah", [], Kind::Plain, U::No),
        form!("inc sil", [], Kind::Plain, U::No),
        form!("inc cx", [], Kind::Plain, U::No),
        form!("inc edx", [], Kind::Plain, U::No),
        form!("inc r9", [], Kind::Plain, U::No),
        form!("lock inc dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("dec byte ptr [r11]", [], Kind::Plain, U::No),
        form!("dec word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("dec dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("dec qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("dec al", [], Kind::Plain, U::No),
        form!("dec ah", [], Kind::Plain, U::No),
        form!("dec sil", [], Kind::Plain, U::No),
        form!("dec cx", [], Kind::Plain, U::No),
        form!("dec edx", [], Kind::Plain, U::No),
        form!("dec r9", [], Kind::Plain, U::No),
        form!("lock dec dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("not byte ptr [r11]", [], Kind::Plain, U::No),
        form!("not word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("not dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("not qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("not al", [], Kind::Plain, U::No),
        form!("not ah", [], Kind::Plain, U::No),
        form!("not sil", [], Kind::Plain, U::No),
        form!("not cx", [], Kind::Plain, U::No),
        form!("not edx", [], Kind::Plain, U::No),
        form!("not r9", [], Kind::Plain, U::No),
        form!("lock not dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("neg byte ptr [r11]", [], Kind::Plain, U::No),
        form!("neg word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("neg dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("neg qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("neg al", [], Kind::Plain, U::No),
        form!("neg ah", [], Kind::Plain, U::No),
        form!("neg sil", [], Kind::Plain, U::No),
        form!("neg cx", [], Kind::Plain, U::No),
        form!("neg edx", [], Kind::Plain, U::No),
        form!("neg r9", [], Kind::Plain, U::No),
        form!("lock neg dword ptr [r11+4]", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 39595);
}

#[test]
fn diff_muldiv() {
    let forms = [
        form!("mul cl", [], Kind::Plain, U::Mul),
        form!("mul bh", [], Kind::Plain, U::Mul),
        form!("mul byte ptr [r11]", [], Kind::Plain, U::Mul),
        form!("mul word ptr [r11+2]", [], Kind::Plain, U::Mul),
        form!("mul si", [], Kind::Plain, U::Mul),
        form!("mul dword ptr [r11+4]", [], Kind::Plain, U::Mul),
        form!("mul ecx", [], Kind::Plain, U::Mul),
        form!("mul qword ptr [r11+8]", [], Kind::Plain, U::Mul),
        form!("mul r9", [], Kind::Plain, U::Mul),
        form!("imul cl", [], Kind::Plain, U::Mul),
        form!("imul bh", [], Kind::Plain, U::Mul),
        form!("imul byte ptr [r11]", [], Kind::Plain, U::Mul),
        form!("imul word ptr [r11+2]", [], Kind::Plain, U::Mul),
        form!("imul si", [], Kind::Plain, U::Mul),
        form!("imul dword ptr [r11+4]", [], Kind::Plain, U::Mul),
        form!("imul ecx", [], Kind::Plain, U::Mul),
        form!("imul qword ptr [r11+8]", [], Kind::Plain, U::Mul),
        form!("imul r9", [], Kind::Plain, U::Mul),
        form!(
            "div cl",
            [],
            Kind::Div {
                bits: 8,
                signed: false,
                divisor: Dv::Reg(1)
            },
            U::Div
        ),
        form!(
            "div bh",
            [],
            Kind::Div {
                bits: 8,
                signed: false,
                divisor: Dv::RegHigh(7)
            },
            U::Div
        ),
        form!(
            "div byte ptr [r11]",
            [],
            Kind::Div {
                bits: 8,
                signed: false,
                divisor: Dv::Mem(0)
            },
            U::Div
        ),
        form!(
            "div word ptr [r11+2]",
            [],
            Kind::Div {
                bits: 16,
                signed: false,
                divisor: Dv::Mem(2)
            },
            U::Div
        ),
        form!(
            "div si",
            [],
            Kind::Div {
                bits: 16,
                signed: false,
                divisor: Dv::Reg(3)
            },
            U::Div
        ),
        form!(
            "div dword ptr [r11+4]",
            [],
            Kind::Div {
                bits: 32,
                signed: false,
                divisor: Dv::Mem(4)
            },
            U::Div
        ),
        form!(
            "div ecx",
            [],
            Kind::Div {
                bits: 32,
                signed: false,
                divisor: Dv::Reg(1)
            },
            U::Div
        ),
        form!(
            "div qword ptr [r11+8]",
            [],
            Kind::Div {
                bits: 64,
                signed: false,
                divisor: Dv::Mem(8)
            },
            U::Div
        ),
        form!(
            "div r9",
            [],
            Kind::Div {
                bits: 64,
                signed: false,
                divisor: Dv::Reg(6)
            },
            U::Div
        ),
        form!(
            "idiv cl",
            [],
            Kind::Div {
                bits: 8,
                signed: true,
                divisor: Dv::Reg(1)
            },
            U::Div
        ),
        form!(
            "idiv bh",
            [],
            Kind::Div {
                bits: 8,
                signed: true,
                divisor: Dv::RegHigh(7)
            },
            U::Div
        ),
        form!(
            "idiv byte ptr [r11]",
            [],
            Kind::Div {
                bits: 8,
                signed: true,
                divisor: Dv::Mem(0)
            },
            U::Div
        ),
        form!(
            "idiv word ptr [r11+2]",
            [],
            Kind::Div {
                bits: 16,
                signed: true,
                divisor: Dv::Mem(2)
            },
            U::Div
        ),
        form!(
            "idiv si",
            [],
            Kind::Div {
                bits: 16,
                signed: true,
                divisor: Dv::Reg(3)
            },
            U::Div
        ),
        form!(
            "idiv dword ptr [r11+4]",
            [],
            Kind::Div {
                bits: 32,
                signed: true,
                divisor: Dv::Mem(4)
            },
            U::Div
        ),
        form!(
            "idiv ecx",
            [],
            Kind::Div {
                bits: 32,
                signed: true,
                divisor: Dv::Reg(1)
            },
            U::Div
        ),
        form!(
            "idiv qword ptr [r11+8]",
            [],
            Kind::Div {
                bits: 64,
                signed: true,
                divisor: Dv::Mem(8)
            },
            U::Div
        ),
        form!(
            "idiv r9",
            [],
            Kind::Div {
                bits: 64,
                signed: true,
                divisor: Dv::Reg(6)
            },
            U::Div
        ),
        form!("imul ecx, dword ptr [r11+4]", [], Kind::Plain, U::Mul),
        form!("imul rdx, qword ptr [r11+8]", [], Kind::Plain, U::Mul),
        form!("imul cx, word ptr [r11+2]", [], Kind::Plain, U::Mul),
        form!("imul eax, ecx", [], Kind::Plain, U::Mul),
        form!("imul r9, rsi", [], Kind::Plain, U::Mul),
        form!(
            "imul eax, dword ptr [r11+4], 0x12345",
            [],
            Kind::Plain,
            U::Mul
        ),
        form!("imul r9, qword ptr [r11+8], -3", [], Kind::Plain, U::Mul),
        form!("imul si, word ptr [r11+2], 7", [], Kind::Plain, U::Mul),
        form!("imul ecx, edx, -100000", [], Kind::Plain, U::Mul),
        form!("imul dx, ax, 0x1234", [], Kind::Plain, U::Mul),
        form!("imul rax, rcx, 0x7fffffff", [], Kind::Plain, U::Mul),
    ];
    run_all(&forms, 47514);
}

#[test]
fn diff_shift_rol() {
    let forms = [
        form!(
            "rol byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rol
            }
        ),
        form!(
            "rol word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rol
            }
        ),
        form!(
            "rol dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rol
            }
        ),
        form!(
            "rol qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rol
            }
        ),
        form!(
            "rol eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Rol
            }
        ),
        form!(
            "rol dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Rol
            }
        ),
        form!(
            "rol r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Rol
            }
        ),
        form!(
            "rol esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rol
            }
        ),
        form!(
            "rol ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Rol
            }
        ),
        form!(
            "rol ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rol
            }
        ),
        form!(
            "rol word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Rol
            }
        ),
        form!(
            "rol byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Rol
            }
        ),
        form!(
            "rol rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rol
            }
        ),
        form!(
            "rol ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Rol
            }
        ),
        form!(
            "rol dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rol
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_ror() {
    let forms = [
        form!(
            "ror byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Ror
            }
        ),
        form!(
            "ror word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Ror
            }
        ),
        form!(
            "ror dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Ror
            }
        ),
        form!(
            "ror qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Ror
            }
        ),
        form!(
            "ror eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Ror
            }
        ),
        form!(
            "ror dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Ror
            }
        ),
        form!(
            "ror r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Ror
            }
        ),
        form!(
            "ror esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Ror
            }
        ),
        form!(
            "ror ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Ror
            }
        ),
        form!(
            "ror ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Ror
            }
        ),
        form!(
            "ror word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Ror
            }
        ),
        form!(
            "ror byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Ror
            }
        ),
        form!(
            "ror rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Ror
            }
        ),
        form!(
            "ror ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Ror
            }
        ),
        form!(
            "ror dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Ror
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_rcl() {
    let forms = [
        form!(
            "rcl byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Rcl
            }
        ),
        form!(
            "rcl dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rcl
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_rcr() {
    let forms = [
        form!(
            "rcr byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Rcr
            }
        ),
        form!(
            "rcr dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Rcr
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_shl() {
    let forms = [
        form!(
            "shl byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Shl
            }
        ),
        form!(
            "shl word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shl
            }
        ),
        form!(
            "shl dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shl
            }
        ),
        form!(
            "shl qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shl
            }
        ),
        form!(
            "shl eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Shl
            }
        ),
        form!(
            "shl dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Shl
            }
        ),
        form!(
            "shl r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Shl
            }
        ),
        form!(
            "shl esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shl
            }
        ),
        form!(
            "shl ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Shl
            }
        ),
        form!(
            "shl ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Shl
            }
        ),
        form!(
            "shl word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Shl
            }
        ),
        form!(
            "shl byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Shl
            }
        ),
        form!(
            "shl rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shl
            }
        ),
        form!(
            "shl ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Shl
            }
        ),
        form!(
            "shl dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shl
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_shr() {
    let forms = [
        form!(
            "shr byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Shr
            }
        ),
        form!(
            "shr word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shr
            }
        ),
        form!(
            "shr dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shr
            }
        ),
        form!(
            "shr qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shr
            }
        ),
        form!(
            "shr eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Shr
            }
        ),
        form!(
            "shr dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Shr
            }
        ),
        form!(
            "shr r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Shr
            }
        ),
        form!(
            "shr esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shr
            }
        ),
        form!(
            "shr ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Shr
            }
        ),
        form!(
            "shr ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Shr
            }
        ),
        form!(
            "shr word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Shr
            }
        ),
        form!(
            "shr byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Shr
            }
        ),
        form!(
            "shr rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shr
            }
        ),
        form!(
            "shr ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Shr
            }
        ),
        form!(
            "shr dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shr
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_sar() {
    let forms = [
        form!(
            "sar byte ptr [r11], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Sar
            }
        ),
        form!(
            "sar word ptr [r11+2], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Sar
            }
        ),
        form!(
            "sar dword ptr [r11+4], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Sar
            }
        ),
        form!(
            "sar qword ptr [r11+8], cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Sar
            }
        ),
        form!(
            "sar eax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Sar
            }
        ),
        form!(
            "sar dl, 3",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(3),
                bits: 8,
                op: ShK::Sar
            }
        ),
        form!(
            "sar r9, 13",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(13),
                bits: 64,
                op: ShK::Sar
            }
        ),
        form!(
            "sar esi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Sar
            }
        ),
        form!(
            "sar ax, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 16,
                op: ShK::Sar
            }
        ),
        form!(
            "sar ah, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 8,
                op: ShK::Sar
            }
        ),
        form!(
            "sar word ptr [r11+2], 9",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(9),
                bits: 16,
                op: ShK::Sar
            }
        ),
        form!(
            "sar byte ptr [r11+1], 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 8,
                op: ShK::Sar
            }
        ),
        form!(
            "sar rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Sar
            }
        ),
        form!(
            "sar ecx, 31",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(31),
                bits: 32,
                op: ShK::Sar
            }
        ),
        form!(
            "sar dx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Sar
            }
        ),
    ];
    run_all(&forms, 71271);
}

#[test]
fn diff_shift_double() {
    let forms = [
        form!(
            "shld dword ptr [r11+4], edx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shld
            }
        ),
        form!(
            "shld qword ptr [r11+8], rsi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shld
            }
        ),
        form!(
            "shld word ptr [r11+2], ax, cl",
            [],
            Kind::Sh16,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shld
            }
        ),
        form!(
            "shld rax, rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shld
            }
        ),
        form!(
            "shld ax, dx, cl",
            [],
            Kind::Sh16,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shld
            }
        ),
        form!(
            "shld esi, edi, 5",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(5),
                bits: 32,
                op: ShK::Shld
            }
        ),
        form!(
            "shld esi, edi, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Shld
            }
        ),
        form!(
            "shld r9, r10, 63",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(63),
                bits: 64,
                op: ShK::Shld
            }
        ),
        form!(
            "shld word ptr [r11+2], si, 12",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(12),
                bits: 16,
                op: ShK::Shld
            }
        ),
        form!(
            "shld eax, edx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shld
            }
        ),
        form!(
            "shrd dword ptr [r11+4], edx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd qword ptr [r11+8], rsi, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd word ptr [r11+2], ax, cl",
            [],
            Kind::Sh16,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd rax, rdx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 64,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd ax, dx, cl",
            [],
            Kind::Sh16,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 16,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd esi, edi, 5",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(5),
                bits: 32,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd esi, edi, 1",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(1),
                bits: 32,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd r9, r10, 63",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(63),
                bits: 64,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd word ptr [r11+2], si, 12",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Imm(12),
                bits: 16,
                op: ShK::Shrd
            }
        ),
        form!(
            "shrd eax, edx, cl",
            [],
            Kind::Shift,
            U::Sh {
                cnt: Cnt::Cl,
                bits: 32,
                op: ShK::Shrd
            }
        ),
    ];
    run_all(&forms, 95028);
}

#[test]
fn diff_bit() {
    let forms = [
        form!("bt dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("bt qword ptr [r11], rcx", [], Kind::BitMem, U::Bit),
        form!("bt word ptr [r11], cx", [], Kind::BitMem, U::Bit),
        form!("bt dword ptr [r11+4], edx", [], Kind::BitMem, U::Bit),
        form!("bt eax, ecx", [], Kind::BitMem, U::Bit),
        form!("bt rax, rcx", [], Kind::BitMem, U::Bit),
        form!("bt ax, dx", [], Kind::BitMem, U::Bit),
        form!("bt dword ptr [r11+4], 13", [], Kind::BitMem, U::Bit),
        form!("bt qword ptr [r11+8], 63", [], Kind::BitMem, U::Bit),
        form!("bt word ptr [r11+2], 15", [], Kind::BitMem, U::Bit),
        form!("bt dword ptr [r11+4], 35", [], Kind::BitMem, U::Bit),
        form!("bt esi, 100", [], Kind::BitMem, U::Bit),
        form!("bt r9, 200", [], Kind::BitMem, U::Bit),
        form!("bts dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("bts qword ptr [r11], rcx", [], Kind::BitMem, U::Bit),
        form!("bts word ptr [r11], cx", [], Kind::BitMem, U::Bit),
        form!("bts dword ptr [r11+4], edx", [], Kind::BitMem, U::Bit),
        form!("bts eax, ecx", [], Kind::BitMem, U::Bit),
        form!("bts rax, rcx", [], Kind::BitMem, U::Bit),
        form!("bts ax, dx", [], Kind::BitMem, U::Bit),
        form!("bts dword ptr [r11+4], 13", [], Kind::BitMem, U::Bit),
        form!("bts qword ptr [r11+8], 63", [], Kind::BitMem, U::Bit),
        form!("bts word ptr [r11+2], 15", [], Kind::BitMem, U::Bit),
        form!("bts dword ptr [r11+4], 35", [], Kind::BitMem, U::Bit),
        form!("bts esi, 100", [], Kind::BitMem, U::Bit),
        form!("bts r9, 200", [], Kind::BitMem, U::Bit),
        form!("lock bts dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("lock bts qword ptr [r11+8], 7", [], Kind::BitMem, U::Bit),
        form!("btr dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("btr qword ptr [r11], rcx", [], Kind::BitMem, U::Bit),
        form!("btr word ptr [r11], cx", [], Kind::BitMem, U::Bit),
        form!("btr dword ptr [r11+4], edx", [], Kind::BitMem, U::Bit),
        form!("btr eax, ecx", [], Kind::BitMem, U::Bit),
        form!("btr rax, rcx", [], Kind::BitMem, U::Bit),
        form!("btr ax, dx", [], Kind::BitMem, U::Bit),
        form!("btr dword ptr [r11+4], 13", [], Kind::BitMem, U::Bit),
        form!("btr qword ptr [r11+8], 63", [], Kind::BitMem, U::Bit),
        form!("btr word ptr [r11+2], 15", [], Kind::BitMem, U::Bit),
        form!("btr dword ptr [r11+4], 35", [], Kind::BitMem, U::Bit),
        form!("btr esi, 100", [], Kind::BitMem, U::Bit),
        form!("btr r9, 200", [], Kind::BitMem, U::Bit),
        form!("lock btr dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("lock btr qword ptr [r11+8], 7", [], Kind::BitMem, U::Bit),
        form!("btc dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("btc qword ptr [r11], rcx", [], Kind::BitMem, U::Bit),
        form!("btc word ptr [r11], cx", [], Kind::BitMem, U::Bit),
        form!("btc dword ptr [r11+4], edx", [], Kind::BitMem, U::Bit),
        form!("btc eax, ecx", [], Kind::BitMem, U::Bit),
        form!("btc rax, rcx", [], Kind::BitMem, U::Bit),
        form!("btc ax, dx", [], Kind::BitMem, U::Bit),
        form!("btc dword ptr [r11+4], 13", [], Kind::BitMem, U::Bit),
        form!("btc qword ptr [r11+8], 63", [], Kind::BitMem, U::Bit),
        form!("btc word ptr [r11+2], 15", [], Kind::BitMem, U::Bit),
        form!("btc dword ptr [r11+4], 35", [], Kind::BitMem, U::Bit),
        form!("btc esi, 100", [], Kind::BitMem, U::Bit),
        form!("btc r9, 200", [], Kind::BitMem, U::Bit),
        form!("lock btc dword ptr [r11], ecx", [], Kind::BitMem, U::Bit),
        form!("lock btc qword ptr [r11+8], 7", [], Kind::BitMem, U::Bit),
        form!("bsf eax, ecx", [], Kind::Sparse, U::Bsf),
        form!("bsf rax, rcx", [], Kind::Sparse, U::Bsf),
        form!("bsf dx, word ptr [r11+2]", [], Kind::Sparse, U::Bsf),
        form!("bsf ecx, dword ptr [r11+4]", [], Kind::Sparse, U::Bsf),
        form!("bsf r9, qword ptr [r11+8]", [], Kind::Sparse, U::Bsf),
        form!("bsf si, di", [], Kind::Sparse, U::Bsf),
        form!("bsr eax, ecx", [], Kind::Sparse, U::Bsf),
        form!("bsr rax, rcx", [], Kind::Sparse, U::Bsf),
        form!("bsr dx, word ptr [r11+2]", [], Kind::Sparse, U::Bsf),
        form!("bsr ecx, dword ptr [r11+4]", [], Kind::Sparse, U::Bsf),
        form!("bsr r9, qword ptr [r11+8]", [], Kind::Sparse, U::Bsf),
        form!("bsr si, di", [], Kind::Sparse, U::Bsf),
    ];
    run_all(&forms, 23757);
}

#[test]
fn diff_cond() {
    let forms = [
        form!("seto byte ptr [r11]", [], Kind::Plain, U::No),
        form!("seto al", [], Kind::Plain, U::No),
        form!("seto sil", [], Kind::Plain, U::No),
        form!("cmovo eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovo rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovo dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovo r9d, esi", [], Kind::Plain, U::No),
        form!("setno byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setno al", [], Kind::Plain, U::No),
        form!("setno sil", [], Kind::Plain, U::No),
        form!("cmovno eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovno rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovno dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovno r9d, esi", [], Kind::Plain, U::No),
        form!("setb byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setb al", [], Kind::Plain, U::No),
        form!("setb sil", [], Kind::Plain, U::No),
        form!("cmovb eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovb rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovb dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovb r9d, esi", [], Kind::Plain, U::No),
        form!("setae byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setae al", [], Kind::Plain, U::No),
        form!("setae sil", [], Kind::Plain, U::No),
        form!("cmovae eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovae rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovae dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovae r9d, esi", [], Kind::Plain, U::No),
        form!("sete byte ptr [r11]", [], Kind::Plain, U::No),
        form!("sete al", [], Kind::Plain, U::No),
        form!("sete sil", [], Kind::Plain, U::No),
        form!("cmove eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmove rcx, rdx", [], Kind::Plain, U::No),
        form!("cmove dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmove r9d, esi", [], Kind::Plain, U::No),
        form!("setne byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setne al", [], Kind::Plain, U::No),
        form!("setne sil", [], Kind::Plain, U::No),
        form!("cmovne eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovne rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovne dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovne r9d, esi", [], Kind::Plain, U::No),
        form!("setbe byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setbe al", [], Kind::Plain, U::No),
        form!("setbe sil", [], Kind::Plain, U::No),
        form!("cmovbe eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovbe rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovbe dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovbe r9d, esi", [], Kind::Plain, U::No),
        form!("seta byte ptr [r11]", [], Kind::Plain, U::No),
        form!("seta al", [], Kind::Plain, U::No),
        form!("seta sil", [], Kind::Plain, U::No),
        form!("cmova eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmova rcx, rdx", [], Kind::Plain, U::No),
        form!("cmova dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmova r9d, esi", [], Kind::Plain, U::No),
        form!("sets byte ptr [r11]", [], Kind::Plain, U::No),
        form!("sets al", [], Kind::Plain, U::No),
        form!("sets sil", [], Kind::Plain, U::No),
        form!("cmovs eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovs rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovs dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovs r9d, esi", [], Kind::Plain, U::No),
        form!("setns byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setns al", [], Kind::Plain, U::No),
        form!("setns sil", [], Kind::Plain, U::No),
        form!("cmovns eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovns rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovns dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovns r9d, esi", [], Kind::Plain, U::No),
        form!("setp byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setp al", [], Kind::Plain, U::No),
        form!("setp sil", [], Kind::Plain, U::No),
        form!("cmovp eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovp rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovp dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovp r9d, esi", [], Kind::Plain, U::No),
        form!("setnp byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setnp al", [], Kind::Plain, U::No),
        form!("setnp sil", [], Kind::Plain, U::No),
        form!("cmovnp eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovnp rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovnp dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovnp r9d, esi", [], Kind::Plain, U::No),
        form!("setl byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setl al", [], Kind::Plain, U::No),
        form!("setl sil", [], Kind::Plain, U::No),
        form!("cmovl eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovl rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovl dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovl r9d, esi", [], Kind::Plain, U::No),
        form!("setge byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setge al", [], Kind::Plain, U::No),
        form!("setge sil", [], Kind::Plain, U::No),
        form!("cmovge eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovge rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovge dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovge r9d, esi", [], Kind::Plain, U::No),
        form!("setle byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setle al", [], Kind::Plain, U::No),
        form!("setle sil", [], Kind::Plain, U::No),
        form!("cmovle eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovle rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovle dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovle r9d, esi", [], Kind::Plain, U::No),
        form!("setg byte ptr [r11]", [], Kind::Plain, U::No),
        form!("setg al", [], Kind::Plain, U::No),
        form!("setg sil", [], Kind::Plain, U::No),
        form!("cmovg eax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("cmovg rcx, rdx", [], Kind::Plain, U::No),
        form!("cmovg dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("cmovg r9d, esi", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 31676);
}

#[test]
fn diff_xchg() {
    let forms = [
        form!("cmpxchg byte ptr [r11], cl", [], Kind::Cmpxchg(0), U::No),
        form!("cmpxchg word ptr [r11+2], cx", [], Kind::Cmpxchg(2), U::No),
        form!(
            "cmpxchg dword ptr [r11+4], ecx",
            [],
            Kind::Cmpxchg(4),
            U::No
        ),
        form!(
            "cmpxchg qword ptr [r11+8], rcx",
            [],
            Kind::Cmpxchg(8),
            U::No
        ),
        form!(
            "cmpxchg dword ptr [r11+4], edx",
            [],
            Kind::Cmpxchg(4),
            U::No
        ),
        form!("cmpxchg ecx, edx", [], Kind::CmpxchgReg, U::No),
        form!("cmpxchg rcx, rdx", [], Kind::CmpxchgReg, U::No),
        form!("cmpxchg cx, dx", [], Kind::CmpxchgReg, U::No),
        form!("cmpxchg cl, dl", [], Kind::CmpxchgReg, U::No),
        form!("cmpxchg eax, ecx", [], Kind::CmpxchgReg, U::No),
        form!(
            "lock cmpxchg dword ptr [r11+4], edx",
            [],
            Kind::Cmpxchg(4),
            U::No
        ),
        form!(
            "lock cmpxchg qword ptr [r11+8], rsi",
            [],
            Kind::Cmpxchg(8),
            U::No
        ),
        form!("cmpxchg8b qword ptr [r11+8]", [], Kind::Cx8(8), U::No),
        form!("lock cmpxchg8b qword ptr [r11+8]", [], Kind::Cx8(8), U::No),
        form!("cmpxchg16b xmmword ptr [r11+16]", [], Kind::Cx16(16), U::No),
        form!(
            "lock cmpxchg16b xmmword ptr [r11+16]",
            [],
            Kind::Cx16(16),
            U::No
        ),
        form!("xadd byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("lock xadd byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("xadd word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("lock xadd word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("xadd dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("lock xadd dword ptr [r11+4], ecx", [], Kind::Plain, U::No),
        form!("xadd qword ptr [r11+8], rsi", [], Kind::Plain, U::No),
        form!("lock xadd qword ptr [r11+8], rsi", [], Kind::Plain, U::No),
        form!("xadd eax, ecx", [], Kind::Plain, U::No),
        form!("xadd rax, rax", [], Kind::Plain, U::No),
        form!("xadd cl, dh", [], Kind::Plain, U::No),
        form!("xadd r9w, ax", [], Kind::Plain, U::No),
        form!("xchg byte ptr [r11], cl", [], Kind::Plain, U::No),
        form!("xchg word ptr [r11+2], dx", [], Kind::Plain, U::No),
        form!("xchg dword ptr [r11+4], eax", [], Kind::Plain, U::No),
        form!("xchg qword ptr [r11+8], r9", [], Kind::Plain, U::No),
        form!("xchg ax, dx", [], Kind::Plain, U::No),
        form!("xchg ecx, eax", [], Kind::Plain, U::No),
        form!("xchg r8, rax", [], Kind::Plain, U::No),
    ];
    run_all(&forms, 31676);
}

#[test]
fn diff_mov() {
    let forms = [
        form!("mov byte ptr [r11], sil", [], Kind::Plain, U::No),
        form!("mov word ptr [r11+2], cx", [], Kind::Plain, U::No),
        form!("mov dword ptr [r11+4], edx", [], Kind::Plain, U::No),
        form!("mov qword ptr [r11+8], r9", [], Kind::Plain, U::No),
        form!("mov ecx, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("mov rdx, qword ptr [r11+8]", [], Kind::Plain, U::No),
        form!("mov dx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("mov byte ptr [r11+1], 0x5a", [], Kind::Plain, U::No),
        form!("mov word ptr [r11+2], 0x1234", [], Kind::Plain, U::No),
        form!("mov dword ptr [r11+4], 0x89abcdef", [], Kind::Plain, U::No),
        form!("mov qword ptr [r11+8], -2", [], Kind::Plain, U::No),
        form!("mov r10b, byte ptr [r11+7]", [], Kind::Plain, U::No),
        form!("mov eax, 0x12345678", [], Kind::Plain, U::No),
        form!("mov rcx, 0x123456789abcdef0", [], Kind::Plain, U::No),
        form!("mov dh, 0x7f", [], Kind::Plain, U::No),
        form!("movzx eax, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("movzx ecx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("movzx rdx, byte ptr [r11+1]", [], Kind::Plain, U::No),
        form!("movzx si, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("movsx eax, byte ptr [r11]", [], Kind::Plain, U::No),
        form!("movsx rcx, word ptr [r11+2]", [], Kind::Plain, U::No),
        form!("movsx dx, byte ptr [r11+1]", [], Kind::Plain, U::No),
        form!("movsxd rax, dword ptr [r11+4]", [], Kind::Plain, U::No),
        form!("movzx eax, ah", [], Kind::Plain, U::No),
        form!("movsx r9, sil", [], Kind::Plain, U::No),
        form!("movsx ecx, dh", [], Kind::Plain, U::No),
        form!("movzx r10, word ptr [r11+6]", [], Kind::Plain, U::No),
        form!("movsxd rsi, edi", [], Kind::Plain, U::No),
        form!("lea eax, [r11+rcx*4+8]", [], Kind::Plain, U::No),
        form!("lea rcx, [r11+rdx*2-100]", [], Kind::Plain, U::No),
        form!("lea dx, [rsi+rdi]", [], Kind::Plain, U::No),
        form!("cbw", [], Kind::Plain, U::No),
        form!("cwde", [], Kind::Plain, U::No),
        form!("cdqe", [], Kind::Plain, U::No),
        form!("cwd", [], Kind::Plain, U::No),
        form!("cdq", [], Kind::Plain, U::No),
        form!("cqo", [], Kind::Plain, U::No),
        form!("stc", [], Kind::Plain, U::No),
        form!("clc", [], Kind::Plain, U::No),
        form!("cmc", [], Kind::Plain, U::No),
        form!("std", [], Kind::Plain, U::No),
        form!("sahf", [], Kind::Plain, U::No),
        form!("lahf", [], Kind::Plain, U::No),
        form!("bswap eax", [], Kind::Plain, U::No),
        form!("bswap r9", [], Kind::Plain, U::No),
        form!("nop", [], Kind::Plain, U::No),
        form!("pause", [], Kind::Plain, U::No),
        form!("xlatb", [], Kind::Xlat, U::No),
    ];
    run_all(&forms, 23757);
}

#[test]
fn diff_string() {
    let forms = [
        form!("movsb", [], Kind::Str, U::No),
        form!("movsw", [], Kind::Str, U::No),
        form!("movsd", [], Kind::Str, U::No),
        form!("movsq", [], Kind::Str, U::No),
        form!("rep movsb", [], Kind::Str, U::No),
        form!("rep movsw", [], Kind::Str, U::No),
        form!("rep movsd", [], Kind::Str, U::No),
        form!("rep movsq", [], Kind::Str, U::No),
        form!("stosb", [], Kind::Str, U::No),
        form!("stosq", [], Kind::Str, U::No),
        form!("rep stosb", [], Kind::Str, U::No),
        form!("rep stosd", [], Kind::Str, U::No),
        form!("lodsb", [], Kind::Str, U::No),
        form!("lodsd", [], Kind::Str, U::No),
        form!("rep lodsw", [], Kind::Str, U::No),
        form!("cmpsb", [], Kind::Str, U::No),
        form!("cmpsq", [], Kind::Str, U::No),
        form!("repe cmpsb", [], Kind::Str, U::No),
        form!("repe cmpsd", [], Kind::Str, U::No),
        form!("repne cmpsb", [], Kind::Str, U::No),
        form!("repne cmpsw", [], Kind::Str, U::No),
        form!("scasb", [], Kind::Str, U::No),
        form!("scasd", [], Kind::Str, U::No),
        form!("repe scasb", [], Kind::Str, U::No),
        form!("repe scasw", [], Kind::Str, U::No),
        form!("repne scasb", [], Kind::Str, U::No),
        form!("repne scasq", [], Kind::Str, U::No),
    ];
    run_all(&forms, 47514);
}

#[test]
fn diff_branch() {
    let forms = [
        form!("jo 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jo 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jno 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jno 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jb 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jb 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jae 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jae 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("je 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "je 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jne 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jne 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jbe 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jbe 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("ja 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "ja 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("js 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "js 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jns 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jns 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jp 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jp 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jnp 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jnp 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jl 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jl 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jge 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jge 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jle 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jle 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("jg 5f", ["mov r10, 0x1234"], Kind::Branch, U::No),
        form!(
            "jg 5f",
            ["mov r10, 0x1234", ".fill 140, 1, 0x90"],
            Kind::Branch,
            U::No
        ),
        form!("loop 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
        form!("loope 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
        form!("loopne 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
        form!("jrcxz 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
        form!("jecxz 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
        form!("jmp 5f", ["mov r10, 0x1234"], Kind::Loop, U::No),
    ];
    run_all(&forms, 47514);
}

#[test]
fn diff_stack() {
    let forms = [
        stack_form!("push rax", [], [], Kind::Stack),
        stack_form!("push r9", [], [], Kind::Stack),
        stack_form!("push cx", [], [], Kind::Stack),
        stack_form!("push qword ptr [r11+8]", [], [], Kind::Stack),
        stack_form!("push word ptr [r11+2]", [], [], Kind::Stack),
        stack_form!("push -5", [], [], Kind::Stack),
        stack_form!("push 0x12345678", [], [], Kind::Stack),
        stack_form!("pushfq", [], [], Kind::Stack),
        stack_form!("pushfw", [], [], Kind::Stack),
        stack_form!("pop rcx", [], [], Kind::Stack),
        stack_form!("pop r10", [], [], Kind::Stack),
        stack_form!("pop dx", [], [], Kind::Stack),
        stack_form!("pop qword ptr [r11+8]", [], [], Kind::Stack),
        stack_form!("pop word ptr [r11+2]", [], [], Kind::Stack),
        stack_form!("popfq", [], [], Kind::StackPopf),
        stack_form!("popfw", [], [], Kind::StackPopf),
        stack_form!("call 5f", [], ["mov r10, 0x1234"], Kind::StackCall),
        stack_form!("ret", ["push {t}"], ["mov r10, 0x1234"], Kind::StackRet),
        stack_form!("ret 16", ["push {t}"], ["mov r10, 0x1234"], Kind::StackRet),
    ];
    run_all(&forms, 4242);
}
