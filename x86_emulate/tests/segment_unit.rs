//! Segment register loads over the mock `EmulatorOps` (MOV Sreg, POP Sreg,
//! LDS/LES/LFS/LGS/LSS): the descriptor cache handed to `set_segment`
//! (base, limit with granularity, access rights with the accessed bit),
//! the accessed bit written back to the GDT, the LDT, and every check of
//! the SDM Vol. 2 "MOV" / "POP" / "LDS/LES/LFS/LGS/LSS" exception lists:
//! the null-SS cases of kvm-unit-tests `test_sreg`, RPL/DPL/CPL, types,
//! table limits, #NP/#SS for a segment not present; real-address and
//! virtual-8086 mode (base = selector << 4). Expected values come from the
//! SDM's descriptor format (Vol. 3 §3.4.5) and pseudo-code.

mod common;

use common::gpr::{RAX, RSP};
use common::{
    DATA, EFER_LONG, GDT, MSR_EFER, Mock, RIP, Run, STACK, descriptor, flat_descriptors,
    run_segmented, segmented_mock, table,
};
use kvm_x86_emulate::{
    Exception, InterruptShadow, Mode, Outcome, Registers, Seg, SegmentCache, Unhandleable,
};

const LDT: u64 = 0x5000;
/// The "unusable" access-rights bit (VMCS format).
const UNUSABLE: u32 = 1 << 16;

// GDT selectors (index << 3).
const KERNEL_DS: u16 = 0x10;
const USER_DS: u16 = 0x28;
const DATA_FRESH: u16 = 0x30;
const DATA_ABSENT: u16 = 0x38;
const CONFORMING: u16 = 0x40;
const EXEC_ONLY: u16 = 0x48;
const READ_ONLY: u16 = 0x50;
const CALL_GATE: u16 = 0x58;
const DPL1_DS: u16 = 0x70;
const KERNEL_CS: u16 = 0x08;

/// The GDT every test gets (32 slots, limit 0xff).
fn gdt() -> Vec<u8> {
    let mut entries = flat_descriptors();
    entries.extend([
        (6, descriptor(0x0012_3400, 0xabcd, 0x92, 0x4)), // 0x30 not accessed, G = 0
        (7, descriptor(0, 0xfffff, 0x13, 0xc)),          // 0x38 data, not present
        (8, descriptor(0, 0xfffff, 0x9f, 0xc)),          // 0x40 conforming code DPL 0
        (9, descriptor(0, 0xfffff, 0x99, 0xc)),          // 0x48 execute-only code
        (10, descriptor(0, 0xfffff, 0x91, 0xc)),         // 0x50 read-only data
        (11, descriptor(0, 0, 0x8c, 0)),                 // 0x58 call gate
        (14, descriptor(0, 0xfffff, 0xb3, 0xc)),         // 0x70 data DPL 1
    ]);
    table(32, &entries)
}

/// The segment tests' layout with this GDT.
fn run(mode: Mode, code: &[u8], set: impl FnOnce(&mut Registers, &mut Mock)) -> Run {
    run_segmented(mode, segmented_mock(mode, code, &gdt()), set)
}

/// `code` with the selector `sel` at DATA.
fn with_selector(mode: Mode, cpl: u8, code: &[u8], sel: u16) -> Run {
    run(mode, code, |_, m| {
        m.cpl = cpl;
        m.region_mut(DATA)[..2].copy_from_slice(&sel.to_le_bytes());
    })
}

/// mov ss, [rbx]
const MOV_SS: [u8; 2] = [0x8e, 0x13];
/// mov ds, [rbx]
const MOV_DS: [u8; 2] = [0x8e, 0x1b];
/// mov fs, [rbx]
const MOV_FS: [u8; 2] = [0x8e, 0x23];

/// The writes into the GDT or LDT.
fn table_writes(m: &Mock) -> Vec<(u64, Vec<u8>)> {
    m.writes
        .iter()
        .filter(|(a, _)| (GDT..LDT + 0x100).contains(a))
        .cloned()
        .collect()
}

/// A fault: no segment loaded, no table write, RIP unchanged.
fn assert_fault(r: Run, e: Exception) {
    let (ctx, m, out) = r;
    assert_eq!(out, Ok(Outcome::Exception(e)));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.loaded_segs.is_empty(), "loaded {:?}", m.loaded_segs);
    assert!(table_writes(&m).is_empty(), "written {:?}", m.writes);
}

#[test] // test_sreg: a null SS in 64-bit mode at CPL 0 with RPL = CPL: SS unusable, DPL = CPL
fn null_ss_64bit_cpl0() {
    let (ctx, m, out) = with_selector(Mode::Prot64, 0, &MOV_SS, 0);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.rip, RIP + 2);
    assert_eq!(ctx.shadow, InterruptShadow::MovSs);
    assert_eq!(m.loaded_segs.len(), 1);
    let (seg, c) = m.loaded_segs[0];
    assert_eq!((seg, c.selector), (Seg::Ss, 0));
    assert_ne!(c.access_rights & UNUSABLE, 0, "unusable");
    assert_eq!((c.access_rights >> 5) & 3, 0, "SS.DPL keeps CPL 0");
    assert!(table_writes(&m).is_empty());
    // CPL 2, RPL 2: allowed too, DPL 2.
    let (_, m, out) = with_selector(Mode::Prot64, 2, &MOV_SS, 2);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.loaded_segs[0].1.selector, 2);
    assert_eq!((m.loaded_segs[0].1.access_rights >> 5) & 3, 2);
}

#[test] // test_sreg: null SS with RPL != CPL: #GP(0)
fn null_ss_rpl_not_cpl_gp0() {
    assert_fault(
        with_selector(Mode::Prot64, 0, &MOV_SS, 3),
        Exception::GeneralProtection(0),
    );
}

#[test] // a null SS at CPL 3 (even RPL 3), or outside 64-bit mode: #GP(0)
fn null_ss_cpl3_or_legacy_gp0() {
    assert_fault(
        with_selector(Mode::Prot64, 3, &MOV_SS, 3),
        Exception::GeneralProtection(0),
    );
    assert_fault(
        with_selector(Mode::Prot32, 0, &MOV_SS, 0),
        Exception::GeneralProtection(0),
    );
    // Compatibility mode is not 64-bit mode.
    let r = run(Mode::Prot32, &MOV_SS, |_, m| {
        m.msrs.insert(MSR_EFER, EFER_LONG);
    });
    assert_fault(r, Exception::GeneralProtection(0));
}

#[test] // test_sreg: a non-null SS with RPL != CPL: #GP(selector & ~3)
fn ss_rpl_not_cpl_gp_selector() {
    assert_fault(
        with_selector(Mode::Prot64, 0, &MOV_SS, KERNEL_DS | 3),
        Exception::GeneralProtection(KERNEL_DS),
    );
}

#[test] // SS: DPL != CPL, a read-only or code segment: #GP(selector); not present: #SS(selector)
fn ss_checks() {
    for (cpl, sel) in [
        (0, DPL1_DS),
        (3, KERNEL_DS | 3),
        (0, READ_ONLY),
        (0, KERNEL_CS),
        (0, CONFORMING),
    ] {
        assert_fault(
            with_selector(Mode::Prot32, cpl, &MOV_SS, sel),
            Exception::GeneralProtection(sel & !3),
        );
    }
    assert_fault(
        with_selector(Mode::Prot32, 0, &MOV_SS, DATA_ABSENT),
        Exception::StackFault(DATA_ABSENT),
    );
}

#[test] // mov ss, [ebx] with a valid DPL 3 data segment at CPL 3
fn ss_user_ok() {
    let (ctx, m, out) = with_selector(Mode::Prot32, 3, &MOV_SS, USER_DS | 3);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.shadow, InterruptShadow::MovSs);
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Ss,
            SegmentCache {
                selector: USER_DS | 3,
                base: 0,
                limit: 0xffff_ffff,
                access_rights: 0xc0f3,
            }
        )]
    );
}

#[test] // test_user_load_dpl0_seg: CPL 3 loading a DPL 0 segment into FS: #GP(selector)
fn cpl3_dpl0_data_gp() {
    assert_fault(
        with_selector(Mode::Prot64, 3, &MOV_FS, KERNEL_CS),
        Exception::GeneralProtection(KERNEL_CS),
    );
    assert_fault(
        with_selector(Mode::Prot64, 3, &MOV_FS, KERNEL_DS | 3),
        Exception::GeneralProtection(KERNEL_DS),
    );
    // RPL 3 > DPL 0 at CPL 0 too.
    assert_fault(
        with_selector(Mode::Prot32, 0, &MOV_DS, KERNEL_DS | 3),
        Exception::GeneralProtection(KERNEL_DS),
    );
}

#[test] // DS: a conforming readable code segment is loadable from any CPL and RPL
fn ds_conforming_code_any_privilege() {
    let (_, m, out) = with_selector(Mode::Prot32, 3, &MOV_DS, CONFORMING | 3);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.loaded_segs[0].1.access_rights, 0xc09f);
    // A readable non-conforming code segment at DPL >= CPL is fine.
    let (_, m, out) = with_selector(Mode::Prot32, 0, &MOV_DS, KERNEL_CS);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(m.loaded_segs[0].1.selector, KERNEL_CS);
}

#[test] // DS: execute-only code, system descriptors: #GP(selector); not present: #NP(selector)
fn ds_type_checks() {
    for sel in [EXEC_ONLY, CALL_GATE] {
        assert_fault(
            with_selector(Mode::Prot32, 0, &MOV_DS, sel),
            Exception::GeneralProtection(sel),
        );
    }
    assert_fault(
        with_selector(Mode::Prot32, 0, &MOV_DS, DATA_ABSENT),
        Exception::SegmentNotPresent(DATA_ABSENT),
    );
}

#[test] // beyond the GDT limit: #GP(selector & ~3)
fn beyond_gdt_limit() {
    let r = run(Mode::Prot32, &MOV_DS, |_, m| {
        m.gdtr = Some((GDT, KERNEL_DS + 6)); // the descriptor's last byte is out
        m.region_mut(DATA)[..2].copy_from_slice(&KERNEL_DS.to_le_bytes());
    });
    assert_fault(r, Exception::GeneralProtection(KERNEL_DS));
}

#[test] // the descriptor cache: base, limit (G = 0), D/B; the accessed bit set in the cache and the GDT
fn cache_and_accessed_bit() {
    let (_, m, out) = with_selector(Mode::Prot32, 0, &MOV_DS, DATA_FRESH);
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Ds,
            SegmentCache {
                selector: DATA_FRESH,
                base: 0x0012_3400,
                limit: 0xabcd,
                access_rights: 0x4093,
            }
        )]
    );
    let at = GDT + u64::from(DATA_FRESH) + 5;
    assert_eq!(table_writes(&m), vec![(at, vec![0x93])]);
    assert_eq!(
        &m.region(GDT)[0x30..0x38],
        &descriptor(0x0012_3400, 0xabcd, 0x93, 0x4).to_le_bytes()
    );
    // Already accessed: no write.
    let (_, m, out) = with_selector(Mode::Prot32, 0, &MOV_DS, KERNEL_DS);
    assert_eq!(out, Ok(Outcome::Done));
    assert!(table_writes(&m).is_empty());
}

#[test] // a null selector in DS/ES/FS/GS: loaded, unusable, no table access
fn null_data_segment() {
    let (_, m, out) = with_selector(Mode::Prot32, 3, &MOV_DS, 3);
    assert_eq!(out, Ok(Outcome::Done));
    let (seg, c) = m.loaded_segs[0];
    assert_eq!((seg, c.selector), (Seg::Ds, 3));
    assert_ne!(c.access_rights & UNUSABLE, 0);
    assert!(!m.reads.iter().any(|(a, _)| (GDT..GDT + 0x100).contains(a)));
}

#[test] // TI = 1: the descriptor comes from the LDT; an unusable LDTR is #GP(selector)
fn ldt_selectors() {
    let ldt = table(4, &[(2, descriptor(0x7000, 0xff, 0xf2, 0x4))]);
    let sel = 0x10 | 4 | 3;
    let set_ldt = |m: &mut Mock, usable: bool| {
        m.map(LDT, &ldt);
        m.ldtr = Some(SegmentCache {
            selector: 0x60,
            base: LDT,
            limit: 0x1f,
            access_rights: if usable { 0x82 } else { UNUSABLE },
        });
        m.region_mut(DATA)[..2].copy_from_slice(&(sel as u16).to_le_bytes());
        m.cpl = 3;
    };
    let (_, m, out) = run(Mode::Prot32, &MOV_DS, |_, m| set_ldt(m, true));
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Ds,
            SegmentCache {
                selector: sel as u16,
                base: 0x7000,
                limit: 0xff,
                access_rights: 0x40f3,
            }
        )]
    );
    assert_eq!(table_writes(&m), vec![(LDT + 0x10 + 5, vec![0xf3])]);
    let r = run(Mode::Prot32, &MOV_DS, |_, m| set_ldt(m, false));
    assert_fault(r, Exception::GeneralProtection(0x14));
}

#[test] // pop ds in 32-bit mode: 4 bytes popped, DS loaded
fn pop_ds() {
    let (ctx, m, out) = run(Mode::Prot32, &[0x1f], |r, m| {
        r.gpr[RSP] = STACK;
        m.region_mut(STACK)[..4].copy_from_slice(&0xffff_0010u32.to_le_bytes());
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RSP], STACK + 4);
    assert_eq!(m.loaded_segs[0].0, Seg::Ds);
    assert_eq!(m.loaded_segs[0].1.selector, KERNEL_DS);
    // A failing load keeps RSP.
    let (ctx, m, out) = run(Mode::Prot32, &[0x1f], |r, m| {
        r.gpr[RSP] = STACK;
        m.region_mut(STACK)[..4].copy_from_slice(&u32::from(EXEC_ONLY).to_le_bytes());
    });
    assert_eq!(
        out,
        Ok(Outcome::Exception(Exception::GeneralProtection(EXEC_ONLY)))
    );
    assert_eq!(ctx.regs.gpr[RSP], STACK);
    assert!(m.loaded_segs.is_empty());
}

#[test] // lss rax, [rbx] (REX.W: m16:64): RAX = offset, SS loaded; lfs eax, [ebx]; lds eax, [ebx]
fn load_far_pointers() {
    let ptr = |m: &mut Mock, off: &[u8], sel: u16| {
        let d = m.region_mut(DATA);
        d[..off.len()].copy_from_slice(off);
        d[off.len()..off.len() + 2].copy_from_slice(&sel.to_le_bytes());
    };
    let (ctx, m, out) = run(Mode::Prot64, &[0x48, 0x0f, 0xb2, 0x03], |_, m| {
        ptr(m, &0x1122_3344_5566_7788u64.to_le_bytes(), KERNEL_DS);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RAX], 0x1122_3344_5566_7788);
    assert_eq!(
        (m.loaded_segs[0].0, m.loaded_segs[0].1.selector),
        (Seg::Ss, KERNEL_DS)
    );
    assert_eq!(ctx.shadow, InterruptShadow::None, "LSS opens no shadow");
    let (ctx, m, out) = run(Mode::Prot32, &[0x0f, 0xb4, 0x03], |r, m| {
        r.gpr[RAX] = 0xffff_ffff_0000_0000;
        ptr(m, &0x8765_4321u32.to_le_bytes(), USER_DS | 3);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RAX], 0x8765_4321);
    assert_eq!(
        (m.loaded_segs[0].0, m.loaded_segs[0].1.selector),
        (Seg::Fs, USER_DS | 3)
    );
    let (ctx, m, out) = run(Mode::Prot32, &[0xc5, 0x03], |_, m| {
        ptr(m, &0x4444_5555u32.to_le_bytes(), KERNEL_DS);
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(ctx.regs.gpr[RAX], 0x4444_5555);
    assert_eq!(m.loaded_segs[0].0, Seg::Ds);
    // A failed load leaves the register alone.
    let (ctx, m, out) = run(Mode::Prot32, &[0x0f, 0xb5, 0x03], |r, m| {
        r.gpr[RAX] = 7;
        ptr(m, &0x4444_5555u32.to_le_bytes(), DATA_ABSENT);
    });
    assert_eq!(
        out,
        Ok(Outcome::Exception(Exception::SegmentNotPresent(
            DATA_ABSENT
        )))
    );
    assert_eq!(ctx.regs.gpr[RAX], 7);
    assert!(m.loaded_segs.is_empty());
}

#[test] // C4/C5 with mod = 11 are VEX prefixes (not emulated); in 64-bit mode always
fn les_lds_vex_forms_unhandleable() {
    let (_, _, out) = run(Mode::Prot32, &[0xc5, 0xc3], |_, _| {});
    assert_eq!(out, Err(Unhandleable::Opcode));
    let (_, _, out) = run(Mode::Prot64, &[0xc5, 0x03], |_, _| {});
    assert_eq!(out, Err(Unhandleable::Opcode));
}

#[test] // real mode: base = selector << 4; limit and attributes (an "unreal" limit) kept
fn real_mode_keeps_limit() {
    let (_, m, out) = run(Mode::Real, &[0x8e, 0xd8], |r, m| {
        r.gpr[RAX] = 0x1234;
        m.seg_limit[3] = 0xffff_ffff;
        m.seg_ar[3] = 0xc093;
        m.gdtr = None;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Ds,
            SegmentCache {
                selector: 0x1234,
                base: 0x12340,
                limit: 0xffff_ffff,
                access_rights: 0xc093,
            }
        )]
    );
}

#[test] // virtual-8086 mode: base = selector << 4, a 64 KiB DPL 3 read/write data segment
fn vm86_segment() {
    let (_, m, out) = run(Mode::Vm86, &[0x8e, 0xc0], |r, m| {
        r.gpr[RAX] = 0xb800;
        m.seg_limit[0] = 0xffff_ffff;
        m.seg_ar[0] = 0xc093;
    });
    assert_eq!(out, Ok(Outcome::Done));
    assert_eq!(
        m.loaded_segs,
        vec![(
            Seg::Es,
            SegmentCache {
                selector: 0xb800,
                base: 0xb8000,
                limit: 0xffff,
                access_rights: 0xf3,
            }
        )]
    );
}

#[test] // the selector in MMIO: pending I/O, nothing loaded
fn selector_in_mmio() {
    let (ctx, m, out) = run(Mode::Prot64, &MOV_SS, |_, m| m.mmio.push((DATA, 2)));
    assert_eq!(out, Ok(Outcome::IoNeeded));
    assert_eq!(ctx.regs.rip, RIP);
    assert!(m.loaded_segs.is_empty());
}
