//! The decoder against iced-x86: instruction length, memory operand,
//! registers and immediates agree on every opcode form the emulator accepts,
//! in 16-, 32- and 64-bit modes, and on random byte strings.

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};
use kvm_x86_emulate::decode::{Operand, RegRef, decode};
use kvm_x86_emulate::{Mode, Seg, Size};
use proptest::prelude::*;

const IP: u64 = 0x1000;

fn bitness(m: Mode) -> u32 {
    match m {
        Mode::Prot64 => 64,
        Mode::Prot32 => 32,
        _ => 16,
    }
}

fn iced(bytes: &[u8], mode: Mode) -> Instruction {
    let ip = if mode.is_64() { IP } else { IP & 0xffff };
    Decoder::with_ip(bitness(mode), bytes, ip, DecoderOptions::NONE).decode()
}

fn seg_of(r: Register) -> Option<Seg> {
    Some(match r {
        Register::ES => Seg::Es,
        Register::CS => Seg::Cs,
        Register::SS => Seg::Ss,
        Register::DS => Seg::Ds,
        Register::FS => Seg::Fs,
        Register::GS => Seg::Gs,
        _ => return None,
    })
}

fn gpr_of(r: Register) -> Option<(RegRef, Size)> {
    if !(r.is_gpr8() || r.is_gpr16() || r.is_gpr32() || r.is_gpr64()) {
        return None;
    }
    let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    let size = Size::from_bytes(r.size())?;
    Some((
        RegRef {
            num: r.full_register().number() as u8,
            high,
        },
        size,
    ))
}

fn gpr_num(r: Register) -> Option<u8> {
    gpr_of(r).map(|(rr, _)| rr.num)
}

/// Compare our decoding of `bytes` with iced's; `Ok(false)` when ours rejects.
fn check(bytes: &[u8], mode: Mode) -> Result<bool, String> {
    let Ok(ours) = decode(bytes, mode) else {
        return Ok(false);
    };
    // The decoder reads exactly `len` bytes: the prefix decodes the same.
    if decode(&bytes[..usize::from(ours.len)], mode) != Ok(ours) {
        return Err(format!(
            "{bytes:02x?} in {mode:?}: prefix of length {} decodes differently",
            ours.len
        ));
    }
    let theirs = iced(bytes, mode);
    let ctx = || {
        format!(
            "{bytes:02x?} in {mode:?}: ours {ours:?} iced {theirs} ({:?})",
            theirs.code()
        )
    };
    if theirs.is_invalid() {
        return Err(format!("iced says invalid: {}", ctx()));
    }
    if theirs.len() != usize::from(ours.len) {
        return Err(format!(
            "length {} vs iced {}: {}",
            ours.len,
            theirs.len(),
            ctx()
        ));
    }
    let asz = ours.addr_size;
    let mut iced_regs = Vec::new();
    let mut iced_xmm = Vec::new();
    let mut iced_mm = Vec::new();
    let mut iced_imms = Vec::new();
    let mut iced_mem = false;
    for i in 0..theirs.op_count() {
        match theirs.op_kind(i) {
            OpKind::Register => {
                let r = theirs.op_register(i);
                if let Some(g) = gpr_of(r) {
                    iced_regs.push(g);
                }
                if r.is_xmm() {
                    iced_xmm.push(r.number() as u8);
                }
                if r.is_mm() {
                    iced_mm.push(r.number() as u8);
                }
            }
            OpKind::Memory => iced_mem = true,
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                iced_imms.push(("branch", theirs.near_branch_target()))
            }
            OpKind::FarBranch16 => iced_imms.push(("far", u64::from(theirs.far_branch16()))),
            OpKind::FarBranch32 => iced_imms.push(("far", u64::from(theirs.far_branch32()))),
            OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => iced_imms.push(("imm", theirs.immediate(i))),
            _ => {}
        }
    }
    // Memory operand.
    match (ours.mem, iced_mem) {
        (Some(m), true) => {
            let mut disp = theirs.memory_displacement64();
            let our_disp = if m.rip_rel {
                (IP + u64::from(ours.len)).wrapping_add(m.disp as u64)
            } else {
                m.disp as u64
            };
            if !m.rip_rel {
                disp = asz.trunc(disp);
            }
            let base = theirs.memory_base();
            let ok_base = if m.rip_rel {
                base == Register::RIP || base == Register::EIP
            } else {
                m.base == gpr_num(base) && (m.base.is_some() || base == Register::None)
            };
            let idx = theirs.memory_index();
            let ok_index = m.index == gpr_num(idx)
                && (m.index.is_none() || m.scale as u32 == theirs.memory_index_scale());
            let seg_ok = seg_of(theirs.memory_segment()) == Some(m.seg);
            let disp_ok = asz.trunc(our_disp) == asz.trunc(disp);
            if !(ok_base && ok_index && seg_ok && disp_ok) {
                return Err(format!(
                    "memory operand base {ok_base} index {ok_index} seg {seg_ok} disp {disp_ok} ({our_disp:#x} vs {disp:#x}): {}",
                    ctx()
                ));
            }
        }
        (None, false) => {}
        (Some(_), false) if ours.modrm.is_none() => {}
        (None, true) if ours.modrm.is_none() => {}
        (m, i) => {
            return Err(format!(
                "memory operand presence {} vs iced {i}: {}",
                m.is_some(),
                ctx()
            ));
        }
    }
    // Register operands (compare number, high-byte and width as a multiset).
    let mut our_regs: Vec<(RegRef, Size)> = Vec::new();
    let mut our_xmm = Vec::new();
    let mut our_mm = Vec::new();
    for o in [ours.dst, ours.src, ours.src2] {
        match o {
            Operand::Reg(r, s) => our_regs.push((r, s)),
            Operand::Xmm(n) => our_xmm.push(n),
            Operand::Mmx(n) => our_mm.push(n),
            Operand::MemBytes(n) if theirs.memory_size().size() != usize::from(n) => {
                return Err(format!(
                    "memory size {n} vs iced {}: {}",
                    theirs.memory_size().size(),
                    ctx()
                ));
            }
            _ => {}
        }
    }
    our_xmm.sort();
    iced_xmm.sort();
    if our_xmm != iced_xmm {
        return Err(format!(
            "XMM registers {our_xmm:?} vs iced {iced_xmm:?}: {}",
            ctx()
        ));
    }
    our_mm.sort();
    iced_mm.sort();
    if our_mm != iced_mm {
        return Err(format!(
            "MMX registers {our_mm:?} vs iced {iced_mm:?}: {}",
            ctx()
        ));
    }
    use kvm_x86_emulate::decode::table::Op;
    // Implicit operands iced spells out: string ops (DX, rSI/rDI), XLAT ([rBX]), hint NOPs (a reg field).
    if matches!(ours.op, Op::Str(_) | Op::Xlat | Op::Nop) {
        return Ok(true);
    }
    // LTR reads 16 bits of any register iced names at the operand size.
    let size_exempt = matches!(
        ours.op,
        Op::MovToSeg | Op::MovFromSeg | Op::Smsw | Op::Lmsw | Op::Ltr
    );
    let key = |v: &Vec<(RegRef, Size)>| {
        let mut k: Vec<(u8, bool, Option<Size>)> = v
            .iter()
            .map(|(r, s)| (r.num, r.high, if size_exempt { None } else { Some(*s) }))
            .collect();
        k.sort_by_key(|x| (x.0, x.1));
        k
    };
    if key(&our_regs) != key(&iced_regs) {
        return Err(format!(
            "registers {:?} vs iced {:?}: {}",
            key(&our_regs),
            key(&iced_regs),
            ctx()
        ));
    }
    // Immediates / branch targets.
    let mut ours_imm = Vec::new();
    for o in [ours.dst, ours.src, ours.src2] {
        if let Operand::Imm(v, s) = o {
            ours_imm.push((v, s));
        }
    }
    let is_branch = iced_imms.iter().any(|(k, _)| *k == "branch");
    if is_branch {
        let Some((rel, _)) = ours_imm.first() else {
            return Err(format!("no branch operand: {}", ctx()));
        };
        let next = if mode.is_64() { IP } else { IP & 0xffff } + u64::from(ours.len);
        let target = ours.op_size.trunc(next.wrapping_add(*rel));
        let Some((_, t)) = iced_imms.iter().find(|(k, _)| *k == "branch") else {
            unreachable!()
        };
        if target != *t {
            return Err(format!("branch target {target:#x} vs {t:#x}: {}", ctx()));
        }
    } else if iced_imms.iter().any(|(k, _)| *k == "far") {
        let Some((v, _)) = ours_imm.first() else {
            return Err(format!("no far ptr: {}", ctx()));
        };
        let Some((_, t)) = iced_imms.iter().find(|(k, _)| *k == "far") else {
            unreachable!()
        };
        if v & 0xffff_ffff != *t || (v >> 32) as u16 != theirs.far_branch_selector() {
            return Err(format!("far pointer: {}", ctx()));
        }
    } else {
        // The implicit 1 of D0/D1 is an immediate for iced too.
        if ours_imm.len() != iced_imms.len() {
            return Err(format!(
                "immediate count {} vs {}: {}",
                ours_imm.len(),
                iced_imms.len(),
                ctx()
            ));
        }
        for ((v, s), (_, t)) in ours_imm.iter().zip(iced_imms.iter()) {
            if s.trunc(*v) != s.trunc(*t) {
                return Err(format!("immediate {v:#x} vs {t:#x}: {}", ctx()));
            }
        }
    }
    Ok(true)
}

const MODES: [Mode; 4] = [Mode::Real, Mode::Prot16, Mode::Prot32, Mode::Prot64];

fn prefix_sets(mode: Mode) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x66],
        vec![0x67],
        vec![0xf3],
        vec![0xf2],
        vec![0xf0],
        vec![0x2e],
        vec![0x64, 0x66, 0x67],
    ];
    if mode.is_64() {
        for rex in [0x40, 0x41, 0x42, 0x44, 0x48, 0x4f] {
            v.push(vec![rex]);
            v.push(vec![0x66, rex]);
        }
        v.push(vec![0x48, 0x66]); // REX not last: ignored
        v.push(vec![0xf0, 0x48]);
    }
    v
}

/// Every opcode in both maps with every ModRM byte (and a varying SIB and
/// filler bytes for displacement/immediates), under a set of prefixes.
fn every_accepted_form_matches_iced(mode: Mode) {
    let mut accepted = 0usize;
    let mut failures = Vec::new();
    for pfx in prefix_sets(mode) {
        for map in [false, true] {
            for op in 0u16..256 {
                let op = op as u8;
                for modrm in 0u16..256 {
                    let modrm = modrm as u8;
                    let mut b = pfx.clone();
                    if map {
                        b.push(0x0f);
                    }
                    b.push(op);
                    b.push(modrm);
                    // SIB, then distinct filler bytes.
                    b.push(modrm.rotate_left(3) ^ op);
                    b.extend_from_slice(&[
                        0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09, 0x1a, 0x2b,
                    ]);
                    match check(&b, mode) {
                        Ok(true) => accepted += 1,
                        Ok(false) => {}
                        Err(e) => failures.push(e),
                    }
                }
            }
        }
    }
    summarize(&failures);
    assert!(
        accepted > 20_000,
        "only {accepted} forms accepted in {mode:?}"
    );
}

#[test]
fn every_accepted_form_matches_iced_real() {
    every_accepted_form_matches_iced(Mode::Real);
}

#[test]
fn every_accepted_form_matches_iced_prot16() {
    every_accepted_form_matches_iced(Mode::Prot16);
}

#[test]
fn every_accepted_form_matches_iced_prot32() {
    every_accepted_form_matches_iced(Mode::Prot32);
}

#[test]
fn every_accepted_form_matches_iced_prot64() {
    every_accepted_form_matches_iced(Mode::Prot64);
}

/// Random byte strings (biased towards prefixes and emulated opcodes): every
/// one the decoder accepts agrees with iced.
#[test]
fn random_bytes_match_iced_bulk() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut failures = Vec::new();
    for i in 0..200_000u32 {
        let mut b = [0u8; 16];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&next().to_le_bytes()[..c.len()]);
        }
        let r = next();
        let np = (r % 4) as usize;
        let prefixes = [0x66, 0x67, 0xf3, 0xf2, 0xf0, 0x26, 0x64, 0x48, 0x41, 0x0f];
        for j in 0..np {
            b[j] = prefixes[((r >> (8 + 4 * j)) % prefixes.len() as u64) as usize];
        }
        let mode = MODES[(i % 4) as usize];
        if let Err(e) = check(&b, mode) {
            failures.push(e);
        }
    }
    summarize(&failures);
}

fn summarize(failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut kinds: std::collections::BTreeMap<String, (usize, &String)> = Default::default();
    for f in failures {
        let k = format!(
            "{} | {}",
            &f[..f.find(':').unwrap_or(10).min(30)],
            f.split("iced ")
                .last()
                .unwrap_or("")
                .split('(')
                .nth(1)
                .unwrap_or("")
        );
        kinds.entry(k).or_insert((0, f)).0 += 1;
    }
    let mut msg = String::new();
    for (k, (n, f)) in kinds
        .iter()
        .filter(|(k, _)| std::env::var("KIND").map_or(true, |x| k.contains(&x)))
        .take(40)
    {
        msg += &format!("{n:6} {k}\n        {}\n", &f[..f.len().min(200)]);
    }
    panic!(
        "{} mismatches in {} kinds:\n{msg}",
        failures.len(),
        kinds.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_match_iced(bytes in proptest::collection::vec(any::<u8>(), 1..16), m in 0usize..4) {
        if let Err(e) = check(&bytes, MODES[m]) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// What an SSE data move does according to the SDM, keyed by iced's
/// mnemonic: (bytes moved, offset in an XMM source, offset in an XMM
/// destination, XMM destination's other bytes zeroed, 16-byte alignment).
fn sse_semantics(mn: iced_x86::Mnemonic, src_mem: bool) -> Option<(u8, u8, u8, bool, bool)> {
    use iced_x86::Mnemonic as Mn;
    Some(match mn {
        Mn::Movups | Mn::Movupd | Mn::Movdqu => (16, 0, 0, true, false),
        Mn::Movaps | Mn::Movapd | Mn::Movdqa => (16, 0, 0, true, true),
        Mn::Movss => (4, 0, 0, src_mem, false),
        Mn::Movsd => (8, 0, 0, src_mem, false),
        Mn::Movlps | Mn::Movlpd => (8, 0, 0, false, false),
        Mn::Movhps | Mn::Movhpd => (8, 8, 8, false, false),
        Mn::Movhlps => (8, 8, 0, false, false),
        Mn::Movlhps => (8, 0, 8, false, false),
        Mn::Movd => (4, 0, 0, true, false),
        Mn::Movq => (8, 0, 0, true, false),
        _ => return None,
    })
}

/// Check one SSE data move against iced beyond `check`: the instruction is
/// accepted exactly when iced sees one of the emulated moves with an XMM
/// operand, or MOVD/MOVQ with an MMX register (and no LOCK), operands are
/// in iced's order, and the move does what the SDM says the mnemonic does.
fn check_sse(bytes: &[u8], mode: Mode) -> Result<bool, String> {
    use kvm_x86_emulate::decode::table::Op;
    let accepted = check(bytes, mode)?;
    let theirs = iced(bytes, mode);
    let has_mm = (0..theirs.op_count())
        .any(|i| theirs.op_kind(i) == OpKind::Register && theirs.op_register(i).is_mm());
    if has_mm && !theirs.is_invalid() && !theirs.has_lock_prefix() {
        return check_mmx(bytes, mode, accepted, &theirs);
    }
    let has_xmm = (0..theirs.op_count())
        .any(|i| theirs.op_kind(i) == OpKind::Register && theirs.op_register(i).is_xmm());
    let src_mem = theirs.op_count() == 2 && theirs.op_kind(1) == OpKind::Memory;
    let want = if theirs.is_invalid() || !has_xmm || theirs.has_lock_prefix() {
        None
    } else {
        sse_semantics(theirs.mnemonic(), src_mem)
    };
    let ctx = || {
        format!(
            "{bytes:02x?} in {mode:?}: iced {theirs} ({:?})",
            theirs.code()
        )
    };
    let Some((len, src_off, dst_off, zero_rest, aligned)) = want else {
        if accepted {
            return Err(format!("accepted, but not an emulated SSE move: {}", ctx()));
        }
        return Ok(false);
    };
    if !accepted {
        return Err(format!("SSE move rejected: {}", ctx()));
    }
    let ours = decode(bytes, mode).map_err(|e| format!("{e:?}"))?;
    let Op::Xmm(m) = ours.op else {
        return Err(format!("not an XMM move: {ours:?} {}", ctx()));
    };
    let mut bad = m.len != len || m.aligned != aligned;
    let same = |o: Operand, i: u32| match (o, theirs.op_kind(i)) {
        (Operand::Xmm(n), OpKind::Register) => {
            theirs.op_register(i).is_xmm() && u32::from(n) == theirs.op_register(i).number() as u32
        }
        (Operand::Reg(r, s), OpKind::Register) => gpr_of(theirs.op_register(i)) == Some((r, s)),
        (Operand::MemBytes(_), OpKind::Memory) => true,
        _ => false,
    };
    if theirs.op_count() != 2 || !same(ours.dst, 0) || !same(ours.src, 1) {
        bad = true;
    }
    if matches!(ours.src, Operand::Xmm(_)) && m.src_off != src_off {
        bad = true;
    }
    if matches!(ours.dst, Operand::Xmm(_)) && (m.dst_off != dst_off || m.zero_rest != zero_rest) {
        bad = true;
    }
    if bad {
        return Err(format!(
            "move {m:?} dst {:?} src {:?} vs SDM ({len}, {src_off}, {dst_off}, {zero_rest}, {aligned}): {}",
            ours.dst,
            ours.src,
            ctx()
        ));
    }
    Ok(true)
}

/// An MMX move iced decodes: MOVD (4 bytes) and MOVQ (8) are accepted as
/// `Op::Mmx` with iced's operands in iced's order; every other MMX
/// instruction is rejected.
fn check_mmx(
    bytes: &[u8],
    mode: Mode,
    accepted: bool,
    theirs: &iced_x86::Instruction,
) -> Result<bool, String> {
    use iced_x86::Mnemonic as Mn;
    use kvm_x86_emulate::decode::table::Op;
    let ctx = || format!("{bytes:02x?} in {mode:?}: iced {theirs}");
    let len = match theirs.mnemonic() {
        Mn::Movd => 4,
        Mn::Movq => 8,
        _ if accepted => return Err(format!("accepted, but not an MMX move: {}", ctx())),
        _ => return Ok(false),
    };
    if !accepted {
        return Err(format!("MMX move rejected: {}", ctx()));
    }
    let ours = decode(bytes, mode).map_err(|e| format!("{e:?}"))?;
    let same = |o: Operand, i: u32| match (o, theirs.op_kind(i)) {
        (Operand::Mmx(n), OpKind::Register) => {
            theirs.op_register(i).is_mm() && u32::from(n) == theirs.op_register(i).number() as u32
        }
        (Operand::Reg(r, s), OpKind::Register) => gpr_of(theirs.op_register(i)) == Some((r, s)),
        (Operand::MemBytes(n), OpKind::Memory) => n == len,
        _ => false,
    };
    if ours.op != Op::Mmx(len) || theirs.op_count() != 2 || !same(ours.dst, 0) || !same(ours.src, 1)
    {
        return Err(format!(
            "MMX move {:?} dst {:?} src {:?}: {}",
            ours.op,
            ours.dst,
            ours.src,
            ctx()
        ));
    }
    Ok(true)
}

/// Every SSE data-move opcode with every ModRM byte under mandatory-prefix
/// combinations (66 with F2/F3, F2 with F3 in both orders, REX.W/R/X/B) in
/// all modes: decoded exactly when iced sees an emulated move, with iced's
/// length, operands and memory operand, and the SDM's semantics.
#[test]
fn sse_moves_match_iced() {
    let mut failures = Vec::new();
    let mut accepted = 0usize;
    for mode in MODES {
        let mut sets: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x66],
            vec![0xf3],
            vec![0xf2],
            vec![0x66, 0xf3],
            vec![0xf3, 0x66],
            vec![0x66, 0xf2],
            vec![0xf2, 0xf3],
            vec![0xf3, 0xf2],
            vec![0xf0],
            vec![0xf0, 0x66],
            vec![0x67, 0x66],
            vec![0x2e, 0xf3],
            vec![0x64, 0xf2, 0x67],
        ];
        if mode.is_64() {
            for rex in [0x40, 0x41, 0x42, 0x44, 0x48, 0x4c, 0x4f] {
                for p in [&[][..], &[0x66], &[0xf3], &[0xf2], &[0x66, 0xf3]] {
                    let mut v = p.to_vec();
                    v.push(rex);
                    sets.push(v);
                }
            }
            sets.push(vec![0x48, 0x66]);
        }
        for pfx in &sets {
            for op in [
                0x10u8, 0x11, 0x12, 0x13, 0x16, 0x17, 0x28, 0x29, 0x6e, 0x6f, 0x7e, 0x7f, 0xd6,
            ] {
                for modrm in 0u16..256 {
                    let modrm = modrm as u8;
                    let mut b = pfx.clone();
                    b.extend_from_slice(&[0x0f, op, modrm, modrm.rotate_left(3) ^ op]);
                    b.extend_from_slice(&[0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8]);
                    match check_sse(&b, mode) {
                        Ok(true) => accepted += 1,
                        Ok(false) => {}
                        Err(e) => failures.push(e),
                    }
                }
            }
        }
    }
    summarize(&failures);
    assert!(accepted > 50_000, "only {accepted} SSE moves accepted");
    eprintln!("{accepted} SSE move encodings agree with iced");
}

/// 0F 00 with every ModRM byte under the prefix sets of
/// `every_accepted_form_matches_iced` in all four modes: exactly the LTR
/// encodings iced decodes (without LOCK) are accepted, as `Op::Ltr` with a
/// 16-bit operand, and agree with iced on length, memory operand and
/// register; SLDT/STR/LLDT/VERR/VERW stay unsupported.
#[test]
fn ltr_matches_iced() {
    use kvm_x86_emulate::decode::table::Op;
    let mut failures = Vec::new();
    let (mut reg_forms, mut mem_forms) = (0usize, 0usize);
    for mode in MODES {
        for pfx in prefix_sets(mode) {
            for modrm in 0u16..256 {
                let modrm = modrm as u8;
                let mut b = pfx.clone();
                b.extend_from_slice(&[0x0f, 0x00, modrm, modrm.rotate_left(3)]);
                b.extend_from_slice(&[0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8]);
                let theirs = iced(&b, mode);
                let want = !theirs.is_invalid()
                    && !theirs.has_lock_prefix()
                    && theirs.mnemonic() == iced_x86::Mnemonic::Ltr;
                let ctx = || format!("{b:02x?} in {mode:?}: iced {theirs}");
                let accepted = match check(&b, mode) {
                    Ok(a) => a,
                    Err(e) => {
                        failures.push(e);
                        continue;
                    }
                };
                if accepted != want {
                    failures.push(format!("accepted {accepted} vs LTR {want}: {}", ctx()));
                    continue;
                }
                if !accepted {
                    continue;
                }
                let Ok(ours) = decode(&b, mode) else {
                    unreachable!()
                };
                let ok = ours.op == Op::Ltr
                    && match ours.src {
                        Operand::Mem(Size::S16) => {
                            mem_forms += 1;
                            theirs.op_kind(0) == OpKind::Memory && theirs.memory_size().size() == 2
                        }
                        Operand::Reg(r, Size::S16) => {
                            reg_forms += 1;
                            theirs.op_kind(0) == OpKind::Register
                                && u32::from(r.num) == theirs.op_register(0).number() as u32
                                && !r.high
                        }
                        _ => false,
                    };
                if !ok {
                    failures.push(format!("operand {:?}: {}", ours.src, ctx()));
                }
            }
        }
    }
    summarize(&failures);
    // /3: 8 register and 24 memory ModRM bytes per prefix set without LOCK
    // (at least 7 in every mode).
    assert!(reg_forms >= 4 * 7 * 8, "{reg_forms} register forms");
    assert!(mem_forms >= 4 * 7 * 24, "{mem_forms} memory forms");
    eprintln!("LTR: {reg_forms} register and {mem_forms} memory encodings agree with iced");
}
