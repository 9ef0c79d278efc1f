//! Far JMP/CALL/RET and IRET in protected and IA-32e mode over the mock
//! `EmulatorOps`: CS (and SS) loaded through `set_segment` with the SDM's
//! privilege checks (Vol. 2 "JMP", "CALL", "RET", "IRET"; conforming and
//! non-conforming code, CS.RPL <- CPL), the mode the new CS selects,
//! #GP(0) for an offset beyond the limit or non-canonical, #NP, gates
//! unhandleable, the return to an outer privilege level with ES/FS/GS/DS
//! nulled (kvm-unit-tests `test_iret`), and the `rex64 ljmp *m` of
//! `test_ljmp`.

mod common;

use common::gpr::RSP;
use common::{
    DATA, Mock, RIP, Run, STACK, descriptor, flat_descriptors, run_segmented, segmented_mock, table,
};
use kvm_x86_emulate::{
    Exception, Mode, Outcome, Registers, Rflags, Seg, SegmentCache, Unhandleable,
};

const UNUSABLE: u32 = 1 << 16;

const KERNEL_CS: u16 = 0x08;
const KERNEL_DS: u16 = 0x10;
const CODE32: u16 = 0x18;
const USER_CS: u16 = 0x20;
const USER_DS: u16 = 0x28;
const CONFORMING: u16 = 0x40;
const CALL_GATE: u16 = 0x58;
const CS_ABSENT: u16 = 0x60;
const CS_L_AND_D: u16 = 0x68;
const SMALL_CS: u16 = 0x80;
const DPL3_CONFORMING: u16 = 0x78;

/// Access rights (VMCS format) of the GDT's entries as loaded (accessed).
const AR_CODE64: u32 = 0xa09b;
const AR_USER_CODE64: u32 = 0xa0fb;
const AR_USER_DATA: u32 = 0xc0f3;
const AR_DATA: u32 = 0xc093;

/// The flat descriptors (0x08-0x28) and this file's others.
fn gdt() -> Vec<u8> {
    let mut entries = flat_descriptors();
    entries.extend([
        (8, descriptor(0, 0xfffff, 0x9f, 0xc)), // 0x40 conforming code DPL 0
        (11, descriptor(0, 0, 0x8c, 0)),        // 0x58 call gate
        (12, descriptor(0, 0xfffff, 0x1b, 0xa)), // 0x60 code64, not present
        (13, descriptor(0, 0xfffff, 0x9b, 0xe)), // 0x68 L and D
        (15, descriptor(0, 0xfffff, 0xff, 0xc)), // 0x78 conforming code DPL 3
        (16, descriptor(0x10000, 0xfff, 0x9b, 0x4)), // 0x80 code32, limit 0xfff
    ]);
    table(32, &entries)
}

/// The segment tests' layout with this GDT; in 64-bit mode CS is the
/// 64-bit kernel code segment.
fn run(mode: Mode, code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    let mut m = segmented_mock(mode, code, &gdt());
    if mode == Mode::Prot64 {
        m.seg_sel[1] = KERNEL_CS;
        m.seg_ar[1] = AR_CODE64;
    }
    run_segmented(mode, m, set)
}

/// A far pointer at DATA: offset of `off.len()` bytes, then the selector.
fn far_ptr(m: &mut Mock, off: &[u8], sel: u16) {
    let d = m.region_mut(DATA);
    d[..off.len()].copy_from_slice(off);
    d[off.len()..off.len() + 2].copy_from_slice(&sel.to_le_bytes());
}

/// Stack words of `size` bytes from RSP = STACK + 0x100 up.
fn stack(m: &mut Mock, size: usize, words: &[u64]) {
    let s = m.region_mut(STACK);
    for (i, w) in words.iter().enumerate() {
        let at = 0x100 + i * size;
        s[at..at + size].copy_from_slice(&w.to_le_bytes()[..size]);
    }
}

/// rex64 ljmp *[rbx] (REX.W FF /5)
const LJMP64: [u8; 3] = [0x48, 0xff, 0x2b];
/// ljmp *[rbx] (FF /5)
const LJMP: [u8; 2] = [0xff, 0x2b];

fn assert_fault(r: Run, e: Exception) {
    let (ctx, m, out) = r;
    assert_eq!(out, Ok(Outcome::Exception(e)));
    assert_eq!(ctx.regs.rip, RIP);
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x100);
    assert!(m.loaded_segs.is_empty(), "loaded {:?}", m.loaded_segs);
}

#[test] // test_ljmp: rex64 ljmp *m (m16:64) loads CS and the 64-bit RIP
fn ljmp_m16_64() {
    let target = 0xffff_8000_0000_1234u64;
    let (ctx, m, out) = run(Mode::Prot64, &LJMP64, |_, m| {
        far_ptr(m, &target.to_le_bytes(), KERNEL_CS);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!((ctx.regs.rip, ctx.mode), (target, Mode::Prot64));
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Cs,
            SegmentCache {
                selector: KERNEL_CS,
                base: 0,
                limit: 0xffff_ffff,
                access_rights: AR_CODE64,
            }
        )]
    );
}

#[test] // ljmp *m16:32 to a 32-bit code segment from 64-bit mode: compatibility mode
fn ljmp_to_compatibility_mode() {
    let (ctx, m, out) = run(Mode::Prot64, &LJMP, |_, m| {
        far_ptr(m, &0x8000_1000u32.to_le_bytes(), CODE32);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!((ctx.regs.rip, ctx.mode), (0x8000_1000, Mode::Prot32));
    assert_eq!(m.loaded_segs[0].1.selector, CODE32);
}

#[test] // CS.RPL <- CPL: an RPL 0 selector at CPL 3 (non-conforming DPL 3, conforming DPL 0)
fn ljmp_rpl_becomes_cpl() {
    for sel in [USER_CS, CONFORMING] {
        let (_, m, out) = run(Mode::Prot32, &LJMP, |_, m| {
            m.cpl = 3;
            far_ptr(m, &0x5000u32.to_le_bytes(), sel);
        });
        assert_eq!(out, Ok(Outcome::Done));
        assert_eq!(m.loaded_segs[0].1.selector, sel | 3);
    }
}

#[test] // non-conforming: RPL > CPL or DPL != CPL: #GP(selector)
fn ljmp_nonconforming_privilege() {
    let r = run(Mode::Prot64, &LJMP64, |_, m| {
        far_ptr(m, &0x5000u64.to_le_bytes(), USER_CS | 3);
    });
    assert_fault(r, Exception::GeneralProtection(USER_CS));
    let r = run(Mode::Prot64, &LJMP64, |_, m| {
        m.cpl = 3;
        far_ptr(m, &0x5000u64.to_le_bytes(), KERNEL_CS | 3);
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_CS));
    // RPL 3 > CPL 0.
    let r = run(Mode::Prot64, &LJMP64, |_, m| {
        far_ptr(m, &0x5000u64.to_le_bytes(), KERNEL_CS | 3);
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_CS));
}

#[test] // conforming: DPL > CPL is #GP(selector); DPL < CPL fine
fn ljmp_conforming_privilege() {
    let r = run(Mode::Prot32, &LJMP, |_, m| {
        m.cpl = 2;
        far_ptr(m, &0x5000u32.to_le_bytes(), DPL3_CONFORMING);
    });
    assert_fault(r, Exception::GeneralProtection(DPL3_CONFORMING));
}

#[test] // null selector #GP(0); data segment #GP(sel); not present #NP(sel); L = D = 1 #GP(sel)
fn ljmp_descriptor_checks() {
    for (sel, e) in [
        (0u16, Exception::GeneralProtection(0)),
        (3, Exception::GeneralProtection(0)),
        (KERNEL_DS, Exception::GeneralProtection(KERNEL_DS)),
        (CS_ABSENT, Exception::SegmentNotPresent(CS_ABSENT)),
        (CS_L_AND_D, Exception::GeneralProtection(CS_L_AND_D)),
    ] {
        let r = run(Mode::Prot64, &LJMP64, |_, m| {
            far_ptr(m, &0x5000u64.to_le_bytes(), sel);
        });
        assert_fault(r, e);
    }
}

#[test] // a call gate (a task switch or gate transfer) is unhandleable
fn ljmp_call_gate_unhandleable() {
    let (ctx, m, out) = run(Mode::Prot64, &LJMP64, |_, m| {
        far_ptr(m, &0x5000u64.to_le_bytes(), CALL_GATE);
    });
    assert_eq!(out, Err(Unhandleable::Form));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.loaded_segs.is_empty());
}

#[test] // beyond the new CS limit (legacy mode) or non-canonical (64-bit mode): #GP(0)
fn ljmp_target_checks() {
    let r = run(Mode::Prot32, &LJMP, |_, m| {
        far_ptr(m, &0x1000u32.to_le_bytes(), SMALL_CS);
    });
    assert_fault(r, Exception::GeneralProtection(0));
    let r = run(Mode::Prot64, &LJMP64, |_, m| {
        far_ptr(m, &0x8000_0000_0000_0000u64.to_le_bytes(), KERNEL_CS);
    });
    assert_fault(r, Exception::GeneralProtection(0));
    // The last byte of the limit is a valid target.
    let (ctx, _, out) = run(Mode::Prot32, &LJMP, |_, m| {
        far_ptr(m, &0xfffu32.to_le_bytes(), SMALL_CS);
    });
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), 0xfff));
}

#[test] // lcall *[ebx] (m16:32): CS and EIP pushed as 4-byte words, then CS loaded
fn lcall_m16_32() {
    let (ctx, m, out) = run(Mode::Prot32, &[0xff, 0x1b], |_, m| {
        m.seg_sel[1] = CODE32;
        far_ptr(m, &0x0000_0321u32.to_le_bytes(), SMALL_CS);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, 0x321);
    assert_eq!(m.loaded_segs[0].1.base, 0x10000);
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x100 - 8);
    let s = &m.region(STACK)[0xf8..0x100];
    assert_eq!(s, &[0x02, 0x10, 0, 0, CODE32 as u8, 0, 0, 0]);
}

#[test] // retfq to the same privilege level: RIP, CS popped
fn retf_same_level() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x48, 0xcb], |_, m| {
        stack(m, 8, &[0x7777, u64::from(KERNEL_CS)]);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, 0x7777);
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x110);
    assert_eq!(m.loaded_segs.len(), 1);
    assert_eq!(m.loaded_segs[0].1.selector, KERNEL_CS);
}

#[test] // retf to an inner level (RPL < CPL): #GP(selector)
fn retf_inner_level_gp() {
    let r = run(Mode::Prot64, &[0x48, 0xcb], |_, m| {
        m.cpl = 3;
        stack(m, 8, &[0x7777, u64::from(KERNEL_CS)]);
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_CS));
}

#[test] // retfq 8 to CPL 3: SS:RSP popped (imm added to both stacks), DS with DPL 0 nulled
fn retf_outer_level() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x48, 0xca, 0x08, 0x00], |_, m| {
        // RIP, CS, 8 bytes of parameters, RSP, SS.
        stack(
            m,
            8,
            &[
                0x40_0000,
                u64::from(USER_CS | 3),
                0,
                0x9000,
                u64::from(USER_DS | 3),
            ],
        );
        m.seg_sel[3] = KERNEL_DS;
        m.seg_ar[3] = AR_DATA;
        m.seg_sel[0] = USER_DS | 3;
        m.seg_ar[0] = AR_USER_DATA;
        m.seg_ar[4] = UNUSABLE;
        m.seg_ar[5] = UNUSABLE;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, 0x40_0000);
    assert_eq!(ctx.regs.gpr[RSP], 0x9008);
    let loaded = m.loaded_selectors();
    assert_eq!(
        loaded,
        vec![(Seg::Cs, USER_CS | 3), (Seg::Ss, USER_DS | 3), (Seg::Ds, 0)]
    );
    assert_ne!(m.loaded_segs[2].1.access_rights & UNUSABLE, 0);
}

#[test] // test_iret: iretq to CPL 3 nulls GS (DPL 0 data), keeping its base; SS:RSP loaded
fn iretq_to_user_nulls_gs() {
    let flags = 0x3202u64 | Rflags::CF.bits();
    let (ctx, m, out) = run(Mode::Prot64, &[0x48, 0xcf], |_, m| {
        stack(
            m,
            8,
            &[
                0x40_1000,
                u64::from(USER_CS | 3),
                flags,
                0x7ff0,
                u64::from(USER_DS | 3),
            ],
        );
        m.seg_sel[5] = KERNEL_DS;
        m.seg_base[5] = 0x40_0000;
        m.seg_limit[5] = 0xffff_ffff;
        m.seg_ar[5] = AR_DATA;
        // FS: a conforming code segment stays; ES, DS: already null.
        m.seg_sel[4] = CONFORMING;
        m.seg_ar[4] = 0xc09f;
        m.seg_ar[0] = UNUSABLE;
        m.seg_ar[3] = UNUSABLE;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!((ctx.regs.rip, ctx.mode), (0x40_1000, Mode::Prot64));
    assert_eq!(ctx.regs.gpr[RSP], 0x7ff0);
    // CPL 0: IF and IOPL are loaded from the stack.
    assert_eq!(ctx.regs.rflags, flags);
    assert_eq!(
        m.loaded_segs,
        vec![
            (
                Seg::Cs,
                SegmentCache {
                    selector: USER_CS | 3,
                    base: 0,
                    limit: 0xffff_ffff,
                    access_rights: AR_USER_CODE64
                }
            ),
            (
                Seg::Ss,
                SegmentCache {
                    selector: USER_DS | 3,
                    base: 0,
                    limit: 0xffff_ffff,
                    access_rights: AR_USER_DATA
                }
            ),
            (
                Seg::Gs,
                SegmentCache {
                    selector: 0,
                    base: 0x40_0000,
                    limit: 0xffff_ffff,
                    access_rights: AR_DATA | UNUSABLE
                }
            ),
        ]
    );
}

#[test] // iretq at CPL 3 to CPL 3: IF and IOPL stay, the rest loads; SS:RSP popped in 64-bit mode
fn iretq_same_level_cpl3_flags() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x48, 0xcf], |r, m| {
        m.cpl = 3;
        r.rflags = 0x2;
        stack(
            m,
            8,
            &[
                0x1234,
                u64::from(USER_CS | 3),
                0x3203 | (1 << 14),
                0x6000,
                u64::from(USER_DS | 3),
            ],
        );
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rflags, 0x2 | 0x1 | (1 << 14));
    assert_eq!(ctx.regs.gpr[RSP], 0x6000);
    let loaded = m.loaded_selectors();
    assert_eq!(loaded, vec![(Seg::Cs, USER_CS | 3), (Seg::Ss, USER_DS | 3)]);
}

#[test] // iretd in 32-bit protected mode, same level: EIP, CS, EFLAGS only
fn iretd_same_level_legacy() {
    let (ctx, m, out) = run(Mode::Prot32, &[0xcf], |_, m| {
        stack(m, 4, &[0x2345, u64::from(CODE32), 0x46]);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!((ctx.regs.rip, ctx.regs.rflags), (0x2345, 0x46));
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x10c);
    assert_eq!(m.loaded_segs.len(), 1);
}

#[test] // NT = 1: #GP(0) in IA-32e mode, a task return (unhandleable) in legacy mode
fn iret_nested_task() {
    let r = run(Mode::Prot64, &[0x48, 0xcf], |r, _| {
        r.rflags = 2 | Rflags::NT.bits();
    });
    assert_eq!(r.2, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
    let (ctx, m, out) = run(Mode::Prot32, &[0xcf], |r, _| {
        r.rflags = 2 | Rflags::NT.bits();
    });
    assert_eq!(out, Err(Unhandleable::Form));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.loaded_segs.is_empty());
}

#[test] // iret to an inner level (RPL 0 from CPL 3): #GP(selector), nothing popped for good
fn iret_inner_level_gp() {
    let r = run(Mode::Prot64, &[0x48, 0xcf], |_, m| {
        m.cpl = 3;
        stack(
            m,
            8,
            &[
                0x1234,
                u64::from(KERNEL_CS),
                2,
                0x6000,
                u64::from(KERNEL_DS),
            ],
        );
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_CS));
}

#[test] // iret to CPL 3 with a DPL 0 SS: #GP(SS selector)
fn iret_outer_bad_ss() {
    let r = run(Mode::Prot64, &[0x48, 0xcf], |_, m| {
        stack(
            m,
            8,
            &[
                0x1234,
                u64::from(USER_CS | 3),
                2,
                0x6000,
                u64::from(KERNEL_DS | 3),
            ],
        );
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_DS));
    // A null SS to CPL 3: #GP(0).
    let r = run(Mode::Prot64, &[0x48, 0xcf], |_, m| {
        stack(m, 8, &[0x1234, u64::from(USER_CS | 3), 2, 0x6000, 3]);
    });
    assert_fault(r, Exception::GeneralProtection(0));
}
