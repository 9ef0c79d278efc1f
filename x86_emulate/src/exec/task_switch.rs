//! Hardware task switches: CALL or JMP to a TSS or a task gate, IRET with
//! EFLAGS.NT set, and an interrupt or exception through a task gate.
//!
//! Port of kvm_x86.c:`kvm_task_switch`, `kvm_task_switch_16/32`,
//! `save_state_to_tss16/32` and `load_state_from_tss16/32` (their segment
//! loads are [`Transfer::TaskSwitch`] of `kvm_load_segment_descriptor`'s
//! port), following the SDM Vol. 3 §7.3 "Task Switching" steps, Table 7-1
//! (the exceptions checked) and the task-switch parts of the Vol. 2
//! pseudo-code of "JMP", "CALL", "IRET" and "INT n" (Linux's
//! `emulator_do_task_switch` and Bochs' `task_switch` as second opinions).
//! What differs from the C:
//! - the new TSS descriptor must be a TSS, available for CALL, JMP and
//!   gates (#GP(selector)) and busy for IRET (#TS(selector)), besides
//!   present (#NP(selector), the C raised #TS) and large enough (#TS);
//! - the TSS DPL is checked only when the caller asks ([`TaskSwitch::check_dpl`]):
//!   under VMX the CPU made the privilege checks before the VM exit (SDM
//!   Vol. 3 §26.4.2), and through a task gate the TSS DPL does not count
//!   (the C checked it for gates too);
//! - the outgoing task is saved in its own TSS format (the C used the new
//!   TSS's), without its static fields (CR3, LDT selector);
//! - every access that can fault comes before the first write, so a fault
//!   up to the commit point leaves the old task as it was
//!   ([`TaskSwitchOutcome::Fault`]); after it (TR, CR0.TS, CR3, LDTR and
//!   the segment loads, SDM step 12-13) faults happen in the new task's
//!   context ([`TaskSwitchOutcome::FaultInNewTask`]) with #TS/#NP/#SS and
//!   the selector as error code, the EXT bit for external events;
//! - the new task may be a virtual-8086 task (EFLAGS.VM in a 32-bit TSS:
//!   CPL 3, segments loaded as in virtual-8086 mode, as Linux does);
//! - CR3 is loaded only with paging on (step 12: "if paging is not
//!   enabled, a PDBR value is read ... but not loaded");
//! - an exception with an error code that went through the task gate
//!   pushes it on the new task's stack (SDM Vol. 2 "INT n", TASK-GATE;
//!   Linux's `has_error_code`), then EIP is checked against CS's limit.
//!
//! Not done here: DR7's local enables (the caller clears them, as
//! kvm_vmx.c's `handle_task_switch`), the debug trap of a TSS with T set
//! (its #DB with DR6.BT is not raised), and IA-32e mode (no task switches:
//! #GP(0)).

use super::descriptor::{Descriptor, TableEntry};
use super::segment::Transfer;
use super::tss::{IMAGE_MAX, TaskState, TssKind};
use super::{
    Context, Exec, GP0, InterruptShadow, R, Stop, Unhandleable, check_limits, fault, page_chunk,
};
use crate::decode::table::{Attr, Op};
use crate::decode::{Insn, Map, Operand, Prefixes};
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Exception, OpError, Seg, SegmentCache, SegmentLimits};
use crate::regs::Gpr;

/// What started the switch: the source of a VMX task-switch exit
/// qualification (SDM Vol. 3 Table 28-2, bits 31:30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSwitchReason {
    /// CALL to a TSS or a task gate: the new task is nested (link, NT).
    Call,
    /// IRET with EFLAGS.NT = 1: back to the task in the link field.
    Iret,
    /// JMP to a TSS or a task gate.
    Jmp,
    /// An interrupt or exception (INT n included) through a task gate in
    /// the IDT: nested like CALL.
    Gate,
}

/// A task switch to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSwitch {
    /// The new task's TSS selector.
    pub selector: u16,
    /// What started it.
    pub reason: TaskSwitchReason,
    /// The error code of the exception that went through the task gate:
    /// pushed on the new task's stack (2 or 4 bytes, as the new TSS).
    pub error_code: Option<u32>,
    /// The switch delivers an external event (hardware exception,
    /// external interrupt, NMI): exceptions it raises carry the EXT bit
    /// (SDM Vol. 3 §6.13).
    pub external: bool,
    /// A CALL or JMP named the TSS descriptor directly and its DPL is
    /// still to be checked against the CPL and the selector's RPL
    /// (#GP(selector)). False when the CPU did so before the VM exit (SDM
    /// Vol. 3 §26.4.2) or a task gate was used.
    pub check_dpl: bool,
}

/// How a task switch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSwitchOutcome {
    /// The new task runs: its registers and mode are in the [`Context`],
    /// TR, LDTR, CR0.TS, CR3 and its segments went through the ops.
    Switched,
    /// A fault before the commit point: nothing changed (the context and
    /// every register the ops hold are the old task's); deliver it there.
    Fault(Exception),
    /// The switch committed, then loading the new task faulted: the
    /// context and the ops hold the new task's state as far as it was
    /// loaded (segments that failed: CS and SS keep the old caches, the
    /// others get their new selector, unusable). Deliver the exception in
    /// the new task.
    FaultInNewTask(Exception),
}

/// The busy bit of a TSS descriptor's type.
const BUSY: u8 = 2;
/// CR0.TS, CR0.PG.
const CR0_TS: u64 = 1 << 3;
const CR0_PG: u64 = 1 << 31;
/// The EFLAGS bits a TSS loads (the others are reserved; bit 1 is set):
/// CF PF AF ZF SF TF IF DF OF IOPL NT RF VM AC VIF VIP ID (a 16-bit TSS's
/// FLAGS has no upper half).
const EFLAGS_LOADED: u64 = 0x003f_7fd5;
/// The segment registers in the TSS order.
const TSS_SEGS: [Seg; 6] = [Seg::Es, Seg::Cs, Seg::Ss, Seg::Ds, Seg::Fs, Seg::Gs];
/// The order the new task's segments are checked in (SDM Table 7-1: CS,
/// SS, then DS, ES, FS, GS), as indexes into [`TSS_SEGS`].
const LOAD_ORDER: [usize; 6] = [1, 2, 0, 3, 4, 5];
const CS: usize = 1;
const SS: usize = 2;

/// What the checks before the commit point found.
struct NewTask {
    selector: u16,
    desc: Descriptor,
    kind: TssKind,
    state: TaskState,
}

/// Perform the task switch `ts` from the task in `ctx` (whose RIP is where
/// the outgoing task resumes: past the CALL, JMP, IRET or INT n, on a
/// faulting instruction).
pub fn task_switch<O: EmulatorOps + ?Sized>(
    ctx: &mut Context,
    ops: &mut O,
    ts: &TaskSwitch,
) -> Result<TaskSwitchOutcome, Unhandleable> {
    if ctx.mode == Mode::Real {
        return Err(Unhandleable::Form);
    }
    let insn = placeholder(ctx.mode);
    let mut ex = Exec {
        mode: ctx.mode,
        regs: ctx.regs,
        committed: ctx.regs,
        insn: &insn,
        ops,
        next_rip: ctx.regs.rip,
        shadow: InterruptShadow::None,
        halt: false,
        new_mode: ctx.mode,
        advance: true,
        keep_rf: false,
    };
    let new = match ex.leave_old_task(ts) {
        Ok(n) => n,
        Err(e) => return Ok(TaskSwitchOutcome::Fault(stop(e, ts.external)?)),
    };
    // The commit point: from here on the new task's context.
    let r = ex.enter_new_task(ts, &new);
    ctx.regs = ex.regs;
    ctx.mode = ex.mode;
    ctx.shadow = InterruptShadow::None;
    match r {
        Ok(()) => Ok(TaskSwitchOutcome::Switched),
        Err(e) => Ok(TaskSwitchOutcome::FaultInNewTask(stop(e, ts.external)?)),
    }
}

/// The exception a stop stands for (with EXT for external events), or
/// why the switch cannot be emulated. A TSS outside RAM (pending I/O)
/// cannot be: the C failed the same way (`kvm_read_guest`).
fn stop(e: Stop, external: bool) -> Result<Exception, Unhandleable> {
    match e {
        Stop::Op(OpError::Fault(x)) => Ok(if external { with_ext(x) } else { x }),
        Stop::Op(OpError::IoNeeded | OpError::Unhandleable) => Err(Unhandleable::Ops),
        Stop::Form | Stop::Retry => Err(Unhandleable::Form),
    }
}

/// Set the EXT bit (bit 0) of a selector error code.
fn with_ext(e: Exception) -> Exception {
    match e {
        Exception::InvalidTss(c) => Exception::InvalidTss(c | 1),
        Exception::SegmentNotPresent(c) => Exception::SegmentNotPresent(c | 1),
        Exception::StackFault(c) => Exception::StackFault(c | 1),
        Exception::GeneralProtection(c) => Exception::GeneralProtection(c | 1),
        other => other,
    }
}

/// The instruction [`Exec`] carries: none is executed (a NOP of the mode).
fn placeholder(mode: Mode) -> Insn {
    Insn {
        op: Op::Nop,
        len: 0,
        mode,
        op_size: mode.default_op_size(),
        addr_size: mode.default_addr_size(),
        prefixes: Prefixes::default(),
        map: Map::One,
        opcode: 0x90,
        modrm: None,
        mem: None,
        dst: Operand::None,
        src: Operand::None,
        src2: Operand::None,
        attr: Attr::empty(),
    }
}

/// What the stack checks of a push see of a segment cache (SDM Vol. 3
/// §5.3, §5.4).
fn limits_of(c: &SegmentCache) -> SegmentLimits {
    let data = c.access_rights & 0x18 == 0x10;
    SegmentLimits {
        limit: c.limit,
        expand_down: data && c.typ() & 4 != 0,
        big: c.access_rights & (1 << 14) != 0,
        writable: data && c.typ() & 2 != 0,
        readable: !data || c.typ() & 2 != 0,
        usable: c.usable(),
    }
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    /// Read `buf.len()` bytes at linear `la` as supervisor accesses, split
    /// at page boundaries and into pieces of at most 16 bytes.
    fn read_sys(&mut self, la: u64, buf: &mut [u8]) -> R<()> {
        let mut at = la;
        for part in buf.chunks_mut(16) {
            let first = page_chunk(at, part.len());
            let (lo, hi) = part.split_at_mut_checked(first).ok_or(Stop::Form)?;
            self.ops.read_system(at & 0xffff_ffff, lo)?;
            if !hi.is_empty() {
                self.ops
                    .read_system(at.wrapping_add(first as u64) & 0xffff_ffff, hi)?;
            }
            at = at.wrapping_add(part.len() as u64);
        }
        Ok(())
    }

    /// Write `data` at linear `la` as supervisor accesses, split as
    /// [`Exec::read_sys`].
    fn write_sys(&mut self, la: u64, data: &[u8]) -> R<()> {
        let mut at = la;
        for part in data.chunks(16) {
            let first = page_chunk(at, part.len());
            let (lo, hi) = part.split_at_checked(first).ok_or(Stop::Form)?;
            self.ops.write_system(at & 0xffff_ffff, lo)?;
            if !hi.is_empty() {
                self.ops
                    .write_system(at.wrapping_add(first as u64) & 0xffff_ffff, hi)?;
            }
            at = at.wrapping_add(part.len() as u64);
        }
        Ok(())
    }

    /// The new TSS descriptor's checks (SDM Vol. 2 "JMP"/"CALL"
    /// TASK-STATE-SEGMENT and TASK-GATE, "IRET" TASK-RETURN, "INT n"
    /// TASK-GATE; Vol. 3 Table 7-1 rows 1-3).
    fn new_tss_descriptor(&mut self, ts: &TaskSwitch) -> R<TableEntry> {
        let iret = ts.reason == TaskSwitchReason::Iret;
        let err = ts.selector & 0xfffc;
        // IRET: #TS(selector); the others: #GP(selector).
        let bad = if iret {
            Exception::InvalidTss(err)
        } else {
            Exception::GeneralProtection(err)
        };
        if ts.selector & 4 != 0 {
            return fault(bad);
        }
        let entry = match self.table_entry(ts.selector, false) {
            Err(Stop::Op(OpError::Fault(Exception::GeneralProtection(e)))) if e == err => {
                return fault(bad);
            }
            r => r?,
        };
        let d = entry.desc;
        let typ = d.typ();
        let tss = d.system() && matches!(typ, 1 | 3 | 9 | 11);
        let busy = typ & BUSY != 0;
        if !tss || busy != iret {
            return fault(bad);
        }
        let direct = matches!(ts.reason, TaskSwitchReason::Call | TaskSwitchReason::Jmp);
        if ts.check_dpl && direct {
            let cpl = self.cpl();
            let rpl = (ts.selector & 3) as u8;
            if d.dpl() < cpl || d.dpl() < rpl {
                return fault(Exception::GeneralProtection(err));
            }
        }
        if !d.present() {
            return fault(Exception::SegmentNotPresent(err));
        }
        if d.limit < TssKind::of(typ).min_limit() {
            return fault(Exception::InvalidTss(err));
        }
        Ok(entry)
    }

    /// SDM §7.3 steps 1-10 up to the commit point: check the new TSS, read
    /// it and the outgoing TSS (every fault here leaves the old task
    /// untouched), then clear the old busy bit (JMP, IRET), save the old
    /// task in its TSS (NT cleared in the image for IRET), write the new
    /// TSS's link (CALL, gate) and set its busy bit (not IRET). Returns
    /// the new task's state, read after those writes.
    fn leave_old_task(&mut self, ts: &TaskSwitch) -> R<NewTask> {
        if self.ia32e()? {
            return fault(GP0);
        }
        let tr = self.ops.tr()?;
        let (gdt_base, _) = self.ops.gdtr()?;
        let entry = self.new_tss_descriptor(ts)?;
        let kind = TssKind::of(entry.desc.typ());
        let new_base = entry.desc.base & 0xffff_ffff;
        let mut img = [0u8; IMAGE_MAX];
        let img_len = kind.image_len();
        let img = img.get_mut(..img_len).ok_or(Stop::Form)?;
        // Probe: the new TSS must be readable before anything is written.
        self.read_sys(new_base, img)?;
        let old_kind = TssKind::of(tr.typ());
        let (dyn_off, dyn_len) = old_kind.dynamic();
        let old_dyn = tr.base.wrapping_add(dyn_off as u64) & 0xffff_ffff;
        let mut block = [0u8; IMAGE_MAX];
        let block = block.get_mut(..dyn_len).ok_or(Stop::Form)?;
        self.read_sys(old_dyn, block)?;
        // The outgoing TSS's descriptor, where TR's selector says (no
        // table-limit check: TR was loaded from it).
        let old_addr = gdt_base.wrapping_add(u64::from(tr.selector & 0xfff8)) & 0xffff_ffff;
        let old_raw = self.read_sys_u64(old_addr)?;
        let old_entry = TableEntry {
            desc: Descriptor::from_low(old_raw),
            raw: old_raw,
            addr: old_addr,
        };

        // Writes from here on.
        let reason = ts.reason;
        let nested = matches!(reason, TaskSwitchReason::Call | TaskSwitchReason::Gate);
        if matches!(reason, TaskSwitchReason::Jmp | TaskSwitchReason::Iret) {
            self.write_access_byte(&old_entry, ((old_raw >> 40) as u8) & !BUSY, false)?;
        }
        let mut eflags = self.regs.rflags;
        if reason == TaskSwitchReason::Iret {
            eflags &= !Rflags::NT.bits();
        }
        let mut old = TaskState {
            eip: self.regs.rip as u32,
            eflags: eflags as u32,
            ..TaskState::default()
        };
        for (i, r) in old.gpr.iter_mut().enumerate() {
            *r = self.regs.read(i as u8, Size::S32) as u32;
        }
        for (s, seg) in old.sel.iter_mut().zip(TSS_SEGS) {
            *s = self.ops.segment_selector(seg);
        }
        old.save(old_kind, block);
        self.write_sys(old_dyn, block)?;
        if nested {
            self.write_sys(new_base, &tr.selector.to_le_bytes())?;
        }
        if reason != TaskSwitchReason::Iret {
            self.set_access_bits(&entry, BUSY, false)?;
        }
        // Read after the save: the new TSS may be the old one (IRET to the
        // current task).
        self.read_sys(new_base, img)?;
        Ok(NewTask {
            selector: ts.selector,
            desc: entry.desc,
            kind,
            state: TaskState::parse(kind, img),
        })
    }

    /// SDM §7.3 steps 11-13 and the end of "INT n" TASK-GATE: load TR
    /// (busy), set CR0.TS, load the registers, EFLAGS (NT set for CALL and
    /// gates), CR3 (32-bit TSS, paging on), LDTR and the segments, push
    /// the error code, check EIP.
    fn enter_new_task(&mut self, ts: &TaskSwitch, new: &NewTask) -> R<()> {
        let d = &new.desc;
        self.ops.load_tr(
            new.selector,
            d.base,
            d.limit,
            d.access_rights | u32::from(BUSY),
        )?;
        let cr0 = self.ops.read_cr(0)?;
        self.ops.write_cr(0, cr0 | CR0_TS)?;
        let st = &new.state;
        let mut eflags = (u64::from(st.eflags) & EFLAGS_LOADED) | Rflags::FIXED.bits();
        if matches!(ts.reason, TaskSwitchReason::Call | TaskSwitchReason::Gate) {
            eflags |= Rflags::NT.bits();
        }
        for (i, r) in st.gpr.iter().enumerate() {
            self.regs.write(i as u8, Size::S64, u64::from(*r));
        }
        self.regs.rip = u64::from(st.eip);
        self.regs.rflags = eflags;
        let vm86 = eflags & Rflags::VM.bits() != 0;
        let cpl = if vm86 { 3 } else { (st.sel[CS] & 3) as u8 };
        // The selectors are interpreted in the new task's mode; a
        // protected-mode task's width follows its CS below.
        self.mode = if vm86 { Mode::Vm86 } else { Mode::Prot32 };
        if new.kind == TssKind::Bits32 && cr0 & CR0_PG != 0 {
            self.ops.write_cr(3, u64::from(st.cr3))?;
        }
        let ldt = self.load_new_ldt(st.ldt);
        let mut caches = [None; 6];
        let mut failed = ldt.err();
        for i in LOAD_ORDER {
            // After a fault a protected-mode task loads nothing more; the
            // virtual-8086 segments cannot fault and are always loaded.
            if failed.is_some() && !vm86 {
                break;
            }
            let (Some(seg), Some(sel)) = (TSS_SEGS.get(i), st.sel.get(i)) else {
                continue;
            };
            match self.segment_for(*seg, *sel, cpl, Transfer::TaskSwitch, false) {
                Ok(c) => {
                    if let Some(slot) = caches.get_mut(i) {
                        *slot = Some(c);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        let cs = self.apply_segments(&caches, &st.sel)?;
        self.mode = if vm86 {
            Mode::Vm86
        } else {
            self.mode_for_cs(&cs)?
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if let (Some(code), Some(ss)) = (ts.error_code, caches.get(SS).copied().flatten()) {
            self.push_error_code(&ss, new.kind, code)?;
        }
        if self.regs.rip > u64::from(cs.limit) {
            return fault(GP0);
        }
        Ok(())
    }

    /// LDTR from the new task's selector (SDM Table 7-1 rows 5 and 10:
    /// #TS(selector) for a TI = 1 selector, one beyond the GDT, a
    /// descriptor that is not an LDT, one not present). A null selector
    /// leaves LDTR unusable.
    fn load_new_ldt(&mut self, selector: u16) -> R<()> {
        let err = selector & 0xfffc;
        let ts = Exception::InvalidTss(err);
        if selector & 4 != 0 {
            return fault(ts);
        }
        if err == 0 {
            self.ops.load_ldtr(selector, 0, 0, SegmentCache::UNUSABLE)?;
            return Ok(());
        }
        let entry = match self.table_entry(selector, false) {
            Err(Stop::Op(OpError::Fault(Exception::GeneralProtection(e)))) if e == err => {
                return fault(ts);
            }
            r => r?,
        };
        let d = entry.desc;
        if !d.system() || d.typ() != 2 || !d.present() {
            return fault(ts);
        }
        self.ops
            .load_ldtr(selector, d.base, d.limit, d.access_rights)?;
        Ok(())
    }

    /// Hand the new task's segment caches to the ops: CS and SS together
    /// (if one failed both keep the old caches, which stay consistent
    /// with each other), each other one as loaded or, when it was not,
    /// with its new selector and an unusable cache (the selector is loaded
    /// before the descriptor, SDM step 12). Returns the CS in effect.
    fn apply_segments(
        &mut self,
        caches: &[Option<SegmentCache>; 6],
        sel: &[u16; 6],
    ) -> R<SegmentCache> {
        let cs = caches.get(CS).copied().flatten();
        let ss = caches.get(SS).copied().flatten();
        let cs = match (cs, ss) {
            (Some(cs), Some(ss)) => {
                self.ops.set_segment(Seg::Cs, cs)?;
                self.ops.set_segment(Seg::Ss, ss)?;
                cs
            }
            _ => self.ops.get_segment(Seg::Cs)?,
        };
        for ((seg, cache), selector) in TSS_SEGS.iter().zip(caches).zip(sel) {
            if matches!(seg, Seg::Cs | Seg::Ss) {
                continue;
            }
            let c = cache.unwrap_or(SegmentCache {
                selector: *selector,
                base: 0,
                limit: 0,
                access_rights: SegmentCache::UNUSABLE,
            });
            self.ops.set_segment(*seg, c)?;
        }
        Ok(cs)
    }

    /// Push the error code of the exception the task gate delivered on
    /// the new task's stack `ss` (SDM Vol. 2 "INT n": 4 bytes through a
    /// 32-bit TSS, 2 through a 16-bit one; #SS when the stack limit does
    /// not allow it; SS.B picks ESP or SP).
    fn push_error_code(&mut self, ss: &SegmentCache, kind: TssKind, code: u32) -> R<()> {
        let n = kind.push_bytes();
        let size = if n == 4 { Size::S32 } else { Size::S16 };
        let width = if ss.access_rights & (1 << 14) != 0 {
            Size::S32
        } else {
            Size::S16
        };
        let sp = width.trunc(self.regs.read(Gpr::Rsp as u8, width).wrapping_sub(n as u64));
        check_limits(Seg::Ss, &limits_of(ss), sp, n, true)?;
        let la = ss.base.wrapping_add(sp) & 0xffff_ffff;
        self.write_lin(la, size, u64::from(code))?;
        self.set_gpr(Gpr::Rsp, width, sp);
        Ok(())
    }
}
