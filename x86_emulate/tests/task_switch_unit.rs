//! Hardware task switches (`kvm_x86_emulate::task_switch`) over the mock
//! `EmulatorOps`. Expected values come from the SDM: the TSS layouts of
//! Vol. 3 §7.2.1 (Figure 7-2, 32-bit) and §7.6 (Figure 7-11, 16-bit), the
//! busy-bit/NT/link rules of §7.3 and Table 7-2, the exceptions of Table
//! 7-1 and the task-switch pseudo-code of Vol. 2 "JMP", "CALL", "IRET" and
//! "INT n" (the error code on the new task's stack).

mod common;

use common::gpr::{RAX, RDI, RSP};
use common::{Mock, descriptor, table};
use kvm_x86_emulate::{
    Context, Exception, Mode, Registers, Seg, SegmentCache, TaskSwitch, TaskSwitchOutcome,
    TaskSwitchReason, Unhandleable, task_switch,
};

const GDT: u64 = 0x1000;
const OLD_TSS: u64 = 0x3000;
const NEW_TSS: u64 = 0x4000;
const TSS16: u64 = 0x5000;
const LDT: u64 = 0x6000;
const STACK: u64 = 0x8000;

// Selectors.
const CODE: u16 = 0x08;
const DATA: u16 = 0x10;
const OLD: u16 = 0x18;
const NEW: u16 = 0x20;
const LDT_SEL: u16 = 0x28;
const NEW16: u16 = 0x30;
const USER_DATA: u16 = 0x3b;
const CONFORMING: u16 = 0x40;
const ABSENT_TSS: u16 = 0x48;
const SHORT_TSS: u16 = 0x50;
const ABSENT_CODE: u16 = 0x58;
const CODE16: u16 = 0x60;
const SS16: u16 = 0x68;

/// Access bytes (P, DPL, S, type).
const TSS32_AVAIL: u8 = 0x89;
const TSS32_BUSY: u8 = 0x8b;
const TSS16_AVAIL: u8 = 0x81;
const TSS16_BUSY: u8 = 0x83;

const EFLAGS_NT: u64 = 1 << 14;
const EFLAGS_VM: u64 = 1 << 17;
const CR0_TS: u64 = 1 << 3;
const CR0_PG: u64 = 1 << 31;

fn gdt(old_access: u8, new_access: u8) -> Vec<u8> {
    table(
        16,
        &[
            (1, descriptor(0, 0xfffff, 0x9b, 0xc)),
            (2, descriptor(0, 0xfffff, 0x93, 0xc)),
            (3, descriptor(OLD_TSS as u32, 0x67, old_access, 0)),
            (4, descriptor(NEW_TSS as u32, 0x67, new_access, 0)),
            (5, descriptor(LDT as u32, 0x17, 0x82, 0)),
            (6, descriptor(TSS16 as u32, 0x2b, TSS16_AVAIL, 0)),
            (7, descriptor(0, 0xfffff, 0xf3, 0xc)),
            (8, descriptor(0, 0xfffff, 0x9f, 0xc)),
            (9, descriptor(NEW_TSS as u32, 0x67, 0x09, 0)),
            (10, descriptor(NEW_TSS as u32, 0x66, TSS32_AVAIL, 0)),
            (11, descriptor(0, 0xfffff, 0x1b, 0xc)),
            (12, descriptor(0, 0xffff, 0x9b, 0)),
            (13, descriptor(STACK as u32, 0xffff, 0x93, 0)),
        ],
    )
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A 32-bit TSS (Figure 7-2): link 0x7777, CR3, EIP, EFLAGS, EAX..EDI =
/// 0x1111_0000 + 16 i, ES..GS, LDT; the reserved halves 0xeeee.
fn tss32(cr3: u32, eip: u32, eflags: u32, segs: [u16; 6], ldt: u16) -> Vec<u8> {
    let mut t = vec![0u8; 0x68];
    put16(&mut t, 0, 0x7777);
    put32(&mut t, 0x1c, cr3);
    put32(&mut t, 0x20, eip);
    put32(&mut t, 0x24, eflags);
    for i in 0..8 {
        put32(&mut t, 0x28 + 4 * i, 0x1111_0000 + 16 * i as u32);
    }
    for (i, s) in segs.iter().enumerate() {
        put16(&mut t, 0x48 + 4 * i, *s);
        put16(&mut t, 0x4a + 4 * i, 0xeeee);
    }
    put16(&mut t, 0x60, ldt);
    put16(&mut t, 0x62, 0xeeee);
    t
}

/// A 16-bit TSS (Figure 7-11): IP, FLAG, AX..DI = 0x2200 + i, ES, CS, SS,
/// DS, LDT.
fn tss16(ip: u16, flag: u16, segs: [u16; 4], ldt: u16) -> Vec<u8> {
    let mut t = vec![0u8; 0x2c];
    put16(&mut t, 0, 0x7777);
    put16(&mut t, 0x0e, ip);
    put16(&mut t, 0x10, flag);
    for i in 0..8 {
        put16(&mut t, 0x12 + 2 * i, 0x2200 + i as u16);
    }
    for (i, s) in segs.iter().enumerate() {
        put16(&mut t, 0x22 + 2 * i, *s);
    }
    put16(&mut t, 0x2a, ldt);
    t
}

const FLAT: [u16; 6] = [DATA, CODE, DATA, DATA, DATA, DATA];

/// The outgoing task: flat CPL 0 protected mode, TR = `tr` (busy 32-bit
/// TSS at OLD_TSS), the GDT, both TSSs, an LDT, a stack page.
fn setup(new_tss: Vec<u8>) -> (Context, Mock) {
    let mut m = Mock::new();
    m.map(GDT, &gdt(TSS32_BUSY, TSS32_AVAIL));
    m.map(OLD_TSS, &tss32(0xdead_b000, 0, 0, [0; 6], 0x4444));
    m.map(NEW_TSS, &new_tss);
    m.map(TSS16, &tss16(0x0100, 0x0002, [DATA, CODE16, SS16, DATA], 0));
    m.map(
        LDT,
        &table(3, &[(1, descriptor(0x0010_0000, 0xfff, 0x92, 0x4))]),
    );
    m.map(STACK, &[0u8; 0x1000]);
    m.gdtr = Some((GDT, 0x7f));
    m.tr = Some(SegmentCache {
        selector: OLD,
        base: OLD_TSS,
        limit: 0x67,
        access_rights: u32::from(TSS32_BUSY),
    });
    m.ldtr = Some(SegmentCache {
        selector: 0,
        base: 0,
        limit: 0,
        access_rights: SegmentCache::UNUSABLE,
    });
    m.seg_sel = [DATA, CODE, DATA, DATA, 0x33, DATA];
    m.seg_ar = [0xc093, 0xc09b, 0xc093, 0xc093, 0xc093, 0xc093];
    m.seg_limit = [0xffff_ffff; 6];
    m.crs[0] = 0x11;
    m.crs[3] = 0x9000;
    let mut regs = Registers {
        rip: 0x5555,
        rflags: 0x202 | EFLAGS_NT,
        ..Registers::default()
    };
    for i in 0..8 {
        regs.gpr[i] = 0xaaaa_0000 + i as u64;
    }
    (Context::new(Mode::Prot32, regs), m)
}

fn new_tss() -> Vec<u8> {
    let mut t = tss32(0x7000, 0x1234, 0x0000_0202, FLAT, LDT_SEL);
    put32(&mut t, 0x38, (STACK + 0x800) as u32);
    t
}

fn switch(reason: TaskSwitchReason, selector: u16) -> TaskSwitch {
    TaskSwitch {
        selector,
        reason,
        error_code: None,
        external: false,
        check_dpl: false,
    }
}

fn run(ctx: &mut Context, m: &mut Mock, ts: TaskSwitch) -> Result<TaskSwitchOutcome, Unhandleable> {
    task_switch(ctx, m, &ts)
}

/// JMP to NEW, whose TSS has the word at `off` set to `v`.
fn jmp_to_new_with(off: usize, v: u16) -> (Context, Mock, Result<TaskSwitchOutcome, Unhandleable>) {
    let mut t = new_tss();
    put16(&mut t, off, v);
    let (mut ctx, mut m) = setup(t);
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW));
    (ctx, m, out)
}

/// Make the task at `sel` (its TSS at `base`, `limit`) the current one:
/// its descriptor's access byte `busy`, TR loaded with it.
fn make_current(m: &mut Mock, sel: u16, base: u64, limit: u32, busy: u8) {
    m.region_mut(GDT)[usize::from(sel) + 5] = busy;
    m.tr = Some(SegmentCache {
        selector: sel,
        base,
        limit,
        access_rights: u32::from(busy),
    });
}

fn access(m: &Mock, sel: u16) -> u8 {
    m.region(GDT)[usize::from(sel & 0xfff8) + 5]
}

fn loaded(m: &Mock, seg: Seg) -> Option<SegmentCache> {
    m.loaded_segs
        .iter()
        .rev()
        .find(|(s, _)| *s == seg)
        .map(|(_, c)| *c)
}

#[test]
fn jmp_saves_the_old_task_and_loads_the_new_one() {
    let (mut ctx, mut m) = setup(new_tss());
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW));
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));

    // The old task's dynamic fields at the Figure 7-2 offsets; NT stays in
    // the image for JMP; the static fields are not written.
    let old = m.region(OLD_TSS).to_vec();
    assert_eq!(get32(&old, 0x20), 0x5555, "EIP");
    assert_eq!(get32(&old, 0x24), 0x4202, "EFLAGS");
    for i in 0..8 {
        assert_eq!(get32(&old, 0x28 + 4 * i), 0xaaaa_0000 + i as u32);
    }
    let sels: Vec<u16> = (0..6).map(|i| get16(&old, 0x48 + 4 * i)).collect();
    assert_eq!(sels, [DATA, CODE, DATA, DATA, 0x33, DATA]);
    assert_eq!(get16(&old, 0x4a), 0xeeee, "reserved half kept");
    assert_eq!(get32(&old, 0x1c), 0xdead_b000, "CR3 is static");
    assert_eq!(get16(&old, 0x60), 0x4444, "LDT selector is static");
    assert_eq!(get16(&old, 0), 0x7777, "old link unchanged");

    // JMP: old busy cleared, new busy set, no link, NT from the TSS.
    assert_eq!(access(&m, OLD), TSS32_AVAIL);
    assert_eq!(access(&m, NEW), TSS32_BUSY);
    assert_eq!(get16(m.region(NEW_TSS), 0), 0x7777);

    // The new task's registers.
    assert_eq!(ctx.regs.rip, 0x1234);
    assert_eq!(ctx.regs.rflags, 0x202);
    assert_eq!(ctx.regs.gpr[RAX], 0x1111_0000);
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x800);
    assert_eq!(ctx.regs.gpr[RDI], 0x1111_0070);
    assert_eq!(ctx.mode, Mode::Prot32);

    // TR: the new TSS, busy; CR0.TS; CR3 not loaded with paging off;
    // LDTR from the TSS.
    assert_eq!(m.tr_loads, vec![(NEW, NEW_TSS, 0x67, 0x8b)]);
    assert_eq!(m.crs[0], 0x11 | CR0_TS);
    assert_eq!(m.crs[3], 0x9000);
    assert_eq!(m.ldtr_loads, vec![(LDT_SEL, LDT, 0x17, 0x82)]);
    let cs = loaded(&m, Seg::Cs).unwrap();
    assert_eq!(
        (cs.selector, cs.base, cs.limit, cs.access_rights),
        (CODE, 0, 0xffff_ffff, 0xc09b)
    );
    for seg in [Seg::Es, Seg::Ss, Seg::Ds, Seg::Fs, Seg::Gs] {
        assert_eq!(loaded(&m, seg).unwrap().selector, DATA, "{seg:?}");
    }
}

#[test]
fn call_nests_the_new_task_and_loads_cr3_with_paging() {
    let (mut ctx, mut m) = setup(new_tss());
    m.crs[0] = 0x11 | CR0_PG;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Call, NEW));
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    // CALL: old busy kept, new busy set, link = old TR, NT set.
    assert_eq!(access(&m, OLD), TSS32_BUSY);
    assert_eq!(access(&m, NEW), TSS32_BUSY);
    assert_eq!(get16(m.region(NEW_TSS), 0), OLD);
    assert_eq!(ctx.regs.rflags, 0x202 | EFLAGS_NT);
    assert_eq!(m.crs[3], 0x7000);
    assert_eq!(m.crs[0], 0x11 | CR0_PG | CR0_TS);
    // CR0.TS is set before CR3 is loaded (step 11 before 12).
    assert_eq!(m.cr_writes, vec![(0, 0x11 | CR0_PG | CR0_TS), (3, 0x7000)]);
}

#[test]
fn iret_returns_to_the_linked_busy_task() {
    // The current task is NEW (nested, NT set); IRET goes back to OLD.
    let (mut ctx, mut m) = setup(new_tss());
    make_current(&mut m, NEW, NEW_TSS, 0x67, TSS32_BUSY);
    let back = tss32(0x7000, 0x4321, 0x0000_4002, FLAT, 0);
    m.region_mut(OLD_TSS).copy_from_slice(&back);
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Iret, OLD));
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    // IRET: the task left is not busy any more, the one returned to stays
    // busy, NT is cleared in the image saved, the new NT is the TSS's.
    assert_eq!(access(&m, NEW), TSS32_AVAIL);
    assert_eq!(access(&m, OLD), TSS32_BUSY);
    assert_eq!(get32(m.region(NEW_TSS), 0x24), 0x202);
    assert_eq!(get16(m.region(OLD_TSS), 0), 0x7777, "no link written");
    assert_eq!(ctx.regs.rip, 0x4321);
    assert_eq!(ctx.regs.rflags, 0x4002);
    assert_eq!(m.tr_loads, vec![(OLD, OLD_TSS, 0x67, 0x8b)]);
    // A null LDT selector: LDTR unusable.
    assert_eq!(m.ldtr_loads, vec![(0, 0, 0, SegmentCache::UNUSABLE)]);
}

#[test]
fn iret_to_a_task_that_is_not_busy_is_ts() {
    let (mut ctx, mut m) = setup(new_tss());
    let before = ctx;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Iret, NEW));
    assert_eq!(
        out,
        Ok(TaskSwitchOutcome::Fault(Exception::InvalidTss(NEW)))
    );
    assert_eq!(ctx, before);
    assert!(m.writes.is_empty() && m.tr_loads.is_empty());
}

#[test]
fn gate_pushes_the_error_code_on_the_new_stack() {
    let (mut ctx, mut m) = setup(new_tss());
    let ts = TaskSwitch {
        error_code: Some(0x0000_0010),
        external: true,
        ..switch(TaskSwitchReason::Gate, NEW)
    };
    let out = run(&mut ctx, &mut m, ts);
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    // INT n TASK-GATE: nested (link, NT, busy) and the error code pushed,
    // 4 bytes through a 32-bit TSS.
    assert_eq!(get16(m.region(NEW_TSS), 0), OLD);
    assert_eq!(ctx.regs.rflags, 0x202 | EFLAGS_NT);
    assert_eq!(ctx.regs.gpr[RSP], STACK + 0x7fc);
    assert_eq!(get32(m.region(STACK), 0x7fc), 0x10);
    assert_eq!(access(&m, OLD), TSS32_BUSY);
    assert_eq!(access(&m, NEW), TSS32_BUSY);
}

#[test]
fn sixteen_bit_tss_in_and_out() {
    // Into a 16-bit TSS through a gate with an error code: its layout,
    // FS and GS null, 2 bytes pushed.
    let (mut ctx, mut m) = setup(new_tss());
    put16(m.region_mut(TSS16), 0x1a, 0x0900); // SP
    put16(m.region_mut(STACK), 0x900, 0xbeef);
    let ts = TaskSwitch {
        error_code: Some(0x18),
        ..switch(TaskSwitchReason::Gate, NEW16)
    };
    let out = run(&mut ctx, &mut m, ts);
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    assert_eq!(ctx.regs.rip, 0x0100);
    assert_eq!(ctx.regs.rflags, 0x0002 | EFLAGS_NT);
    assert_eq!(ctx.regs.gpr[RAX], 0xffff_2200);
    assert_eq!(ctx.regs.gpr[RDI], 0xffff_2207);
    // SS is 16-bit (B = 0): SP = 0x0900 - 2, at SS.base + SP.
    assert_eq!(ctx.regs.gpr[RSP], 0xffff_08fe);
    assert_eq!(get16(m.region(STACK), 0x8fe), 0x18);
    assert_eq!(get16(m.region(STACK), 0x900), 0xbeef, "2 bytes only");
    assert_eq!(ctx.mode, Mode::Prot16, "CS.D = 0");
    assert_eq!(m.tr_loads, vec![(NEW16, TSS16, 0x2b, 0x83)]);
    assert_eq!(access(&m, NEW16), TSS16_BUSY);
    assert_eq!(get16(m.region(TSS16), 0), OLD);
    for seg in [Seg::Fs, Seg::Gs] {
        let c = loaded(&m, seg).unwrap();
        assert_eq!((c.selector, c.usable()), (0, false), "{seg:?}");
    }

    // Out of a 16-bit TSS: the old task saved as words at Figure 7-11's
    // offsets.
    let (mut ctx, mut m) = setup(new_tss());
    make_current(&mut m, NEW16, TSS16, 0x2b, TSS16_BUSY);
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW));
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    let t = m.region(TSS16).to_vec();
    assert_eq!(get16(&t, 0x0e), 0x5555, "IP");
    assert_eq!(get16(&t, 0x10), 0x4202, "FLAG");
    for i in 0..8 {
        assert_eq!(get16(&t, 0x12 + 2 * i), i as u16, "AX..DI");
    }
    let sels: Vec<u16> = (0..4).map(|i| get16(&t, 0x22 + 2 * i)).collect();
    assert_eq!(sels, [DATA, CODE, DATA, DATA]);
    assert_eq!(get16(&t, 0x2a), 0, "LDT selector is static");
    assert_eq!(access(&m, NEW16), TSS16_AVAIL);
}

#[test]
fn limit_below_the_minimum_is_ts() {
    let (mut ctx, mut m) = setup(new_tss());
    let before = ctx;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, SHORT_TSS));
    assert_eq!(
        out,
        Ok(TaskSwitchOutcome::Fault(Exception::InvalidTss(SHORT_TSS)))
    );
    assert_eq!(ctx, before);
    assert!(m.writes.is_empty() && m.tr_loads.is_empty() && m.loaded_segs.is_empty());
    // A 16-bit TSS needs 2BH.
    let (mut ctx, mut m) = setup(new_tss());
    m.region_mut(GDT)[usize::from(NEW16)] = 0x2a;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Call, NEW16));
    assert_eq!(
        out,
        Ok(TaskSwitchOutcome::Fault(Exception::InvalidTss(NEW16)))
    );
}

#[test]
fn dpl_and_busy_violations_are_gp() {
    // JMP to a DPL 0 TSS from CPL 3, and with RPL 3: #GP(TSS selector).
    let (mut ctx, mut m) = setup(new_tss());
    m.cpl = 3;
    let ts = TaskSwitch {
        check_dpl: true,
        ..switch(TaskSwitchReason::Jmp, NEW)
    };
    assert_eq!(
        run(&mut ctx, &mut m, ts),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(NEW)))
    );
    let (mut ctx, mut m) = setup(new_tss());
    let ts = TaskSwitch {
        check_dpl: true,
        ..switch(TaskSwitchReason::Call, NEW | 3)
    };
    assert_eq!(
        run(&mut ctx, &mut m, ts),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(NEW)))
    );
    assert!(m.writes.is_empty());
    // Checked by the CPU before the exit (or through a gate): no check.
    let (mut ctx, mut m) = setup(new_tss());
    m.cpl = 3;
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW)),
        Ok(TaskSwitchOutcome::Switched)
    );
    // A busy TSS for CALL: #GP(selector); through a gate for an external
    // event with EXT set.
    let (mut ctx, mut m) = setup(new_tss());
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Call, OLD)),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(OLD)))
    );
    let ts = TaskSwitch {
        external: true,
        ..switch(TaskSwitchReason::Gate, OLD)
    };
    assert_eq!(
        run(&mut ctx, &mut m, ts),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(
            OLD | 1
        )))
    );
    // Not a TSS at all, or a TSS descriptor in the LDT (TI = 1).
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, CODE)),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(CODE)))
    );
    let tss_in_ldt = descriptor(NEW_TSS as u32, 0x67, TSS32_AVAIL, 0);
    m.region_mut(LDT)[16..24].copy_from_slice(&tss_in_ldt.to_le_bytes());
    m.ldtr = Some(SegmentCache {
        selector: LDT_SEL,
        base: LDT,
        limit: 0x17,
        access_rights: 0x82,
    });
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, 0x14)),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(0x14)))
    );
}

#[test]
fn not_present_tss_is_np() {
    let (mut ctx, mut m) = setup(new_tss());
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, ABSENT_TSS)),
        Ok(TaskSwitchOutcome::Fault(Exception::SegmentNotPresent(
            ABSENT_TSS
        )))
    );
    assert!(m.writes.is_empty());
}

#[test]
fn unreadable_new_tss_faults_before_anything_is_written() {
    let (mut ctx, mut m) = setup(new_tss());
    // The new TSS descriptor points at unmapped memory.
    let d = descriptor(0x0020_0000, 0x67, TSS32_AVAIL, 0);
    m.region_mut(GDT)[usize::from(NEW)..usize::from(NEW) + 8].copy_from_slice(&d.to_le_bytes());
    let before = ctx;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW));
    assert!(matches!(
        out,
        Ok(TaskSwitchOutcome::Fault(Exception::PageFault {
            addr: 0x0020_0000,
            ..
        }))
    ));
    assert_eq!(ctx, before);
    assert!(m.writes.is_empty());
}

#[test]
fn segment_faults_happen_in_the_new_task() {
    // CS not present: #NP(CS) after the commit point; TR, registers and
    // the busy bits are the new task's; SS and CS keep the old caches.
    let (ctx, m, out) = jmp_to_new_with(0x4c, ABSENT_CODE);
    assert_eq!(
        out,
        Ok(TaskSwitchOutcome::FaultInNewTask(
            Exception::SegmentNotPresent(ABSENT_CODE)
        ))
    );
    assert_eq!(ctx.regs.rip, 0x1234);
    assert_eq!(m.tr_loads.len(), 1);
    assert_eq!(access(&m, NEW), TSS32_BUSY);
    assert_eq!(loaded(&m, Seg::Cs), None);
    assert_eq!(loaded(&m, Seg::Ss), None);
    // The data segments: their selectors, unusable.
    let es = loaded(&m, Seg::Es).unwrap();
    assert_eq!((es.selector, es.usable()), (DATA, false));

    // A non-conforming CS whose DPL is not its RPL: #TS(CS).
    assert_eq!(
        jmp_to_new_with(0x4c, CODE | 3).2,
        Ok(TaskSwitchOutcome::FaultInNewTask(Exception::InvalidTss(
            CODE
        )))
    );
    // SS DPL 3 at CPL 0: #TS(SS), EXT set for an external event.
    let mut t = new_tss();
    put16(&mut t, 0x50, USER_DATA);
    let (mut ctx, mut m) = setup(t);
    let ts = TaskSwitch {
        external: true,
        ..switch(TaskSwitchReason::Gate, NEW)
    };
    assert_eq!(
        run(&mut ctx, &mut m, ts),
        Ok(TaskSwitchOutcome::FaultInNewTask(Exception::InvalidTss(
            (USER_DATA & 0xfffc) | 1
        )))
    );
    // A data selector beyond the GDT: #TS(selector).
    let (_, m, out) = jmp_to_new_with(0x54, 0x0100);
    assert_eq!(
        out,
        Ok(TaskSwitchOutcome::FaultInNewTask(Exception::InvalidTss(
            0x0100
        )))
    );
    assert_eq!(loaded(&m, Seg::Cs).unwrap().selector, CODE);
    // An LDT selector naming a code segment: #TS(LDT selector); a null CS:
    // #TS(0).
    assert_eq!(
        jmp_to_new_with(0x60, CODE).2,
        Ok(TaskSwitchOutcome::FaultInNewTask(Exception::InvalidTss(
            CODE
        )))
    );
    assert_eq!(
        jmp_to_new_with(0x4c, 0).2,
        Ok(TaskSwitchOutcome::FaultInNewTask(Exception::InvalidTss(0)))
    );
    // EIP beyond CS's limit: #GP(0) in the new task.
    let mut t = new_tss();
    put16(&mut t, 0x4c, CODE16);
    put32(&mut t, 0x20, 0x1_0000);
    let (mut ctx, mut m) = setup(t);
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW)),
        Ok(TaskSwitchOutcome::FaultInNewTask(
            Exception::GeneralProtection(0)
        ))
    );
}

#[test]
fn segments_through_the_new_ldt() {
    // DS = LDT entry 1 (TI = 1, RPL 0): looked up in the LDT the switch
    // just loaded.
    let (_, m, out) = jmp_to_new_with(0x54, 0x0c);
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    let ds = loaded(&m, Seg::Ds).unwrap();
    assert_eq!((ds.selector, ds.base, ds.limit), (0x0c, 0x0010_0000, 0xfff));
    // The accessed bit was set in the LDT.
    assert_eq!(m.region(LDT)[8 + 5], 0x93);
}

#[test]
fn conforming_cs_with_a_user_rpl_runs_at_cpl_3() {
    // kvm-unit-tests taskswitch2 test_conforming_switch: CS = conforming
    // DPL 0 with RPL 3, SS and the data segments DPL 3.
    let t = tss32(
        0x7000,
        0x1234,
        0x3202,
        [
            USER_DATA,
            CONFORMING | 3,
            USER_DATA,
            USER_DATA,
            USER_DATA,
            USER_DATA,
        ],
        0,
    );
    let (mut ctx, mut m) = setup(t);
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Call, NEW)),
        Ok(TaskSwitchOutcome::Switched)
    );
    let cs = loaded(&m, Seg::Cs).unwrap();
    assert_eq!((cs.selector, cs.dpl()), (CONFORMING | 3, 0));
    let ss = loaded(&m, Seg::Ss).unwrap();
    assert_eq!((ss.selector, ss.dpl()), (USER_DATA, 3));
}

#[test]
fn a_vm86_task_gets_virtual_8086_segments() {
    // kvm-unit-tests taskswitch2 test_vm86_switch: EFLAGS.VM in the TSS.
    let t = tss32(
        0x7000,
        0x0002,
        0x0002_0002,
        [0x2345, 0x4200, 0, 0x1234, 0, 0],
        0,
    );
    let (mut ctx, mut m) = setup(t);
    // IRET from OLD to NEW (busy, linked).
    m.region_mut(GDT)[usize::from(NEW) + 5] = TSS32_BUSY;
    let out = run(&mut ctx, &mut m, switch(TaskSwitchReason::Iret, NEW));
    assert_eq!(out, Ok(TaskSwitchOutcome::Switched));
    assert_eq!(ctx.mode, Mode::Vm86);
    assert_eq!(ctx.regs.rflags & EFLAGS_VM, EFLAGS_VM);
    assert_eq!(ctx.regs.rip, 2);
    for (seg, sel) in [
        (Seg::Es, 0x2345u16),
        (Seg::Cs, 0x4200),
        (Seg::Ss, 0),
        (Seg::Ds, 0x1234),
    ] {
        let c = loaded(&m, seg).unwrap();
        assert_eq!(
            (c.selector, c.base, c.limit, c.access_rights),
            (sel, u64::from(sel) << 4, 0xffff, 0xf3),
            "{seg:?}"
        );
    }
}

#[test]
fn no_task_switches_in_real_or_ia32e_mode() {
    let (mut ctx, mut m) = setup(new_tss());
    ctx.mode = Mode::Real;
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW)),
        Err(Unhandleable::Form)
    );
    let (mut ctx, mut m) = setup(new_tss());
    m.msrs.insert(0xc000_0080, 0x500);
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW)),
        Ok(TaskSwitchOutcome::Fault(Exception::GeneralProtection(0)))
    );
    // Ops without TR: unhandleable, nothing written.
    let (mut ctx, mut m) = setup(new_tss());
    m.tr = None;
    assert_eq!(
        run(&mut ctx, &mut m, switch(TaskSwitchReason::Jmp, NEW)),
        Err(Unhandleable::Ops)
    );
    assert!(m.writes.is_empty());
}
