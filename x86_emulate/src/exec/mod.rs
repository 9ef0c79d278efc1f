//! Instruction execution.
//!
//! Ports `x86_emulate_insn` (kvm_emulate.c:2203-3050): operand fetch,
//! the per-opcode semantics (split by family into the submodules), write-back
//! and the commit of RIP and the register file. The guest state is only
//! changed when the instruction completes, except that a REP string
//! instruction keeps the iterations it finished (as the CPU does when an
//! iteration faults).

mod alu;
mod bit;
mod control;
mod descriptor;
mod far;
mod iret;
mod mmx;
mod mov;
mod muldiv;
mod segment;
mod shift;
mod sse;
mod stack;
mod string;
mod sys_call;
mod system;
mod task;
mod task_switch;
mod tss;

use crate::decode::table::{Attr, Op};
use crate::decode::{self, DecodeError, Insn, MAX_LEN, MemRef, Operand, RegRef};
use crate::flags::Rflags;
use crate::mode::{Mode, Size};
use crate::ops::{EmulatorOps, Exception, OpError, Seg, SegmentLimits};
use crate::regs::{Gpr, Registers};
pub use task_switch::{TaskSwitch, TaskSwitchOutcome, TaskSwitchReason, task_switch};

/// The interrupt shadow an instruction leaves behind (port of
/// `toggle_interruptibility`): MOV SS / POP SS and STI block interrupts for
/// one instruction (SDM Vol. 3 §6.8.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InterruptShadow {
    /// No shadow.
    #[default]
    None,
    /// Blocking by MOV SS / POP SS.
    MovSs,
    /// Blocking by STI.
    Sti,
}

/// The emulator state of one vcpu (the parts of `struct x86_emulate_ctxt`
/// the caller sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The guest's execution mode.
    pub mode: Mode,
    /// The register file; updated when an instruction completes.
    pub regs: Registers,
    /// The interrupt shadow set by the last emulated instruction.
    pub shadow: InterruptShadow,
}

impl Context {
    /// A context in `mode` with `regs`.
    pub fn new(mode: Mode, regs: Registers) -> Context {
        Context {
            mode,
            regs,
            shadow: InterruptShadow::None,
        }
    }
}

/// What happened to the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The instruction completed; registers and RIP are updated. (A REP
    /// string instruction may also stop early after a bounded number of
    /// iterations with RIP unchanged; the guest then simply re-executes it.)
    Done,
    /// HLT completed (RIP advanced): the vcpu should halt.
    Halt,
    /// An access must be completed outside the kernel; nothing (beyond
    /// finished REP iterations) changed. Complete the access recorded by the
    /// [`EmulatorOps`] implementation and run the instruction again.
    IoNeeded,
    /// Inject this exception. RIP is not advanced.
    Exception(Exception),
}

/// The instruction cannot be emulated; the caller reports an emulation
/// failure (KVM_EXIT_INTERNAL_ERROR) as the C driver did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhandleable {
    /// The decoder does not handle the opcode.
    Opcode,
    /// The instruction is decoded but this form is not emulated.
    Form,
    /// An [`EmulatorOps`] call returned [`OpError::Unhandleable`].
    Ops,
}

/// How many REP iterations one call runs before returning (hardware takes
/// interrupts between iterations; this bounds the time spent here).
pub const MAX_REP_ITERATIONS: u32 = 1024;

/// Fetch, decode and execute the instruction at CS:RIP.
pub fn emulate<O: EmulatorOps + ?Sized>(
    ctx: &mut Context,
    ops: &mut O,
) -> Result<Outcome, Unhandleable> {
    let mut buf = [0u8; MAX_LEN];
    let rip = ctx.regs.rip;
    let cs = if ctx.mode.is_64() {
        0
    } else {
        ops.segment_base(Seg::Cs)
    };
    let mut have = 0usize;
    let mut fetch_err = None;
    while have < MAX_LEN {
        let off = rip.wrapping_add(have as u64);
        let off = if ctx.mode.is_64() {
            off
        } else {
            off & 0xffff_ffff
        };
        let lin = cs.wrapping_add(off);
        let lin = if ctx.mode.is_64() {
            lin
        } else {
            lin & 0xffff_ffff
        };
        let Some(dst) = buf.get_mut(have..) else {
            break;
        };
        match ops.fetch(lin, dst) {
            Ok(0) => break,
            Ok(n) => have = have.saturating_add(n).min(MAX_LEN),
            Err(e) => {
                fetch_err = Some(e);
                break;
            }
        }
    }
    let bytes = buf.get(..have).unwrap_or(&[]);
    let insn = match decode::decode(bytes, ctx.mode) {
        Ok(i) => i,
        Err(DecodeError::Truncated) => {
            return match fetch_err {
                Some(e) => op_error(e),
                None => Ok(Outcome::Exception(Exception::GeneralProtection(0))),
            };
        }
        Err(DecodeError::TooLong) => {
            return Ok(Outcome::Exception(Exception::GeneralProtection(0)));
        }
        Err(DecodeError::Invalid) => return Ok(Outcome::Exception(Exception::InvalidOpcode)),
        Err(DecodeError::Unsupported) => return Err(Unhandleable::Opcode),
    };
    execute(ctx, &insn, ops)
}

fn op_error(e: OpError) -> Result<Outcome, Unhandleable> {
    match e {
        OpError::Fault(x) => Ok(Outcome::Exception(x)),
        OpError::IoNeeded => Ok(Outcome::IoNeeded),
        OpError::Unhandleable => Err(Unhandleable::Ops),
    }
}

/// Internal stop reasons: an [`OpError`] or an unemulated form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Op(OpError),
    Form,
    /// Give up without changing anything; the guest re-executes the
    /// instruction (a contended LOCK compare-exchange loop).
    Retry,
}

impl From<OpError> for Stop {
    fn from(e: OpError) -> Stop {
        Stop::Op(e)
    }
}

pub(crate) type R<T> = Result<T, Stop>;

pub(crate) fn fault<T>(e: Exception) -> R<T> {
    Err(Stop::Op(OpError::Fault(e)))
}

pub(crate) const GP0: Exception = Exception::GeneralProtection(0);

/// Execute an already decoded instruction whose first byte is at `ctx.regs.rip`.
pub fn execute<O: EmulatorOps + ?Sized>(
    ctx: &mut Context,
    insn: &Insn,
    ops: &mut O,
) -> Result<Outcome, Unhandleable> {
    let mut ex = Exec {
        mode: ctx.mode,
        regs: ctx.regs,
        committed: ctx.regs,
        insn,
        ops,
        next_rip: ctx.regs.rip.wrapping_add(u64::from(insn.len)),
        shadow: InterruptShadow::None,
        halt: false,
        new_mode: ctx.mode,
        advance: true,
        keep_rf: false,
    };
    // The next IP wraps at the code segment's width (branches truncate their
    // targets to the operand size themselves).
    match ex.mode {
        Mode::Prot64 => {}
        Mode::Prot32 => ex.next_rip &= 0xffff_ffff,
        Mode::Real | Mode::Vm86 | Mode::Prot16 => ex.next_rip &= 0xffff,
    }
    let r = ex.run();
    match r {
        Ok(()) => {
            let mut regs = ex.regs;
            if ex.advance {
                regs.rip = ex.next_rip;
            } else {
                regs.rip = ctx.regs.rip;
            }
            // RF is cleared after any instruction completes (SDM Vol. 3
            // §18.3.1.1) but IRET, which loads it.
            if !ex.keep_rf {
                regs.rflags &= !Rflags::RF.bits();
            }
            ctx.regs = regs;
            ctx.shadow = ex.shadow;
            ctx.mode = ex.new_mode;
            Ok(if ex.halt {
                Outcome::Halt
            } else {
                Outcome::Done
            })
        }
        Err(e) => {
            ctx.regs = ex.committed;
            match e {
                Stop::Op(e) => op_error(e),
                Stop::Form => Err(Unhandleable::Form),
                Stop::Retry => Ok(Outcome::Done),
            }
        }
    }
}

/// The limit and type checks of a protected-mode (or real-mode) access.
fn check_limits(seg: Seg, d: &SegmentLimits, offset: u64, len: usize, write: bool) -> R<()> {
    let last = offset.wrapping_add(len.saturating_sub(1) as u64);
    let in_range = if d.expand_down {
        let upper = if d.big { 0xffff_ffff } else { 0xffff };
        offset > u64::from(d.limit) && last <= upper && last >= offset
    } else {
        last <= u64::from(d.limit) && last >= offset
    };
    let typed = d.usable && if write { d.writable } else { d.readable };
    if in_range && typed {
        Ok(())
    } else if seg == Seg::Ss {
        fault(Exception::StackFault(0))
    } else {
        fault(GP0)
    }
}

/// How many of the `n` bytes at `la` lie in its 4 KiB page.
fn page_chunk(la: u64, n: usize) -> usize {
    let room = 0x1000 - (la & 0xfff) as usize;
    n.min(room)
}

/// The state of one instruction's execution.
pub(crate) struct Exec<'a, O: EmulatorOps + ?Sized> {
    pub mode: Mode,
    /// Working copy of the registers.
    pub regs: Registers,
    /// What to leave in the context if the instruction stops with an error.
    pub committed: Registers,
    pub insn: &'a Insn,
    pub ops: &'a mut O,
    /// RIP of the next instruction (branches overwrite it).
    pub next_rip: u64,
    pub shadow: InterruptShadow,
    pub halt: bool,
    /// The mode after the instruction (SYSCALL/SYSENTER/SYSEXIT change it).
    pub new_mode: Mode,
    /// False when a REP instruction stopped early: RIP stays.
    pub advance: bool,
    /// RF as the instruction left it survives (IRET loads RF).
    pub keep_rf: bool,
}

impl<O: EmulatorOps + ?Sized> Exec<'_, O> {
    fn run(&mut self) -> R<()> {
        let insn = self.insn;
        if insn.attr.contains(Attr::PRIV) && self.cpl() != 0 {
            return fault(GP0);
        }
        match insn.op {
            Op::Alu(a) => self.alu(a),
            Op::Test => self.test(),
            Op::Inc | Op::Dec | Op::Not | Op::Neg => self.unary(insn.op),
            Op::Xadd => self.xadd(),
            Op::Cmpxchg => self.cmpxchg(),
            Op::Cmpxchg8b16b => self.cmpxchg8b16b(),
            Op::Xchg => self.xchg(),
            Op::Mul | Op::Imul1 | Op::Div | Op::Idiv => self.muldiv1(insn.op),
            Op::Imul => self.imul(),
            Op::Shift(s) => self.shift(s),
            Op::Shld | Op::Shrd => self.shxd(insn.op == Op::Shld),
            Op::Bit(b) => self.bit(b),
            Op::Bsf | Op::Bsr => self.bsf_bsr(insn.op == Op::Bsf),
            Op::Bswap => self.bswap(),
            Op::Mov => self.mov(),
            Op::Movzx | Op::Movsx => self.movx(insn.op == Op::Movsx),
            Op::Lea => self.lea(),
            Op::Setcc(c) => self.setcc(c),
            Op::Cmovcc(c) => self.cmovcc(c),
            Op::Cbw => self.cbw(),
            Op::Cwd => self.cwd(),
            Op::Xlat => self.xlat(),
            Op::Jcc(c) => self.jcc(c),
            Op::Jmp => self.jmp_rel(),
            Op::JmpAbs => self.jmp_abs(),
            Op::JmpFar => self.jmp_far(),
            Op::Call => self.call_rel(),
            Op::CallAbs => self.call_abs(),
            Op::Ret => self.ret(),
            Op::RetFar => self.ret_far(),
            Op::Loop(k) => self.loop_(k),
            Op::Str(s) => self.string(s),
            Op::In => self.in_(),
            Op::Out => self.out(),
            Op::Push => self.push_op(),
            Op::Pop => self.pop_op(),
            Op::PushSeg(s) => self.push_seg(s),
            Op::PopSeg(s) => self.pop_seg(s),
            Op::Pusha => self.pusha(),
            Op::Popa => self.popa(),
            Op::Pushf => self.pushf(),
            Op::Popf => self.popf(),
            Op::Leave => self.leave(),
            Op::Sahf | Op::Lahf | Op::Cmc | Op::Clc | Op::Stc | Op::Cld | Op::Std => {
                self.flag_op(insn.op)
            }
            Op::Cli | Op::Sti => self.cli_sti(insn.op == Op::Sti),
            Op::Hlt => {
                self.halt = true;
                Ok(())
            }
            Op::Nop => Ok(()),
            Op::MovFromSeg => self.mov_from_seg(),
            Op::MovToSeg => self.mov_to_seg(),
            Op::MovFromCr | Op::MovToCr | Op::MovFromDr | Op::MovToDr => self.mov_crdr(insn.op),
            Op::Rdmsr => self.rdmsr(),
            Op::Wrmsr => self.wrmsr(),
            Op::Clts => self.clts(),
            Op::Ltr => self.ltr(),
            Op::Lgdt | Op::Lidt => self.lgdt_lidt(insn.op == Op::Lidt),
            Op::Smsw => self.smsw(),
            Op::Lmsw => self.lmsw(),
            Op::Invlpg => self.invlpg(),
            Op::Vmcall => Ok(self.ops.hypercall()?),
            Op::CallFar => self.call_far_ptr(),
            Op::CallFarMem => self.far_mem(true),
            Op::JmpFarMem => self.far_mem(false),
            Op::Enter => self.enter(),
            Op::Int(k) => self.int(k),
            Op::Iret => self.iret(),
            Op::Syscall => self.syscall(),
            Op::Sysenter => self.sysenter(),
            Op::Sysexit => self.sysexit(),
            Op::Xmm(m) => self.xmm_move(m),
            Op::Mmx(len) => self.mmx_move(len),
            Op::LoadFarPtr(seg) => self.load_far_ptr(seg),
        }
    }

    pub(crate) fn cpl(&self) -> u8 {
        match self.mode {
            Mode::Real => 0,
            Mode::Vm86 => 3,
            _ => self.ops.cpl() & 3,
        }
    }

    pub(crate) fn rflags(&self) -> u64 {
        self.regs.rflags
    }

    /// Replace the status flags selected by `which` with `status`.
    pub(crate) fn set_status(&mut self, status: u64, which: u64) {
        self.regs.rflags =
            crate::flags::merge(self.regs.rflags, status, which) | Rflags::FIXED.bits();
    }

    // ---- registers -------------------------------------------------------

    pub(crate) fn reg_read(&self, r: RegRef, size: Size) -> u64 {
        if r.high {
            self.regs.read_high_byte(r.num)
        } else {
            self.regs.read(r.num, size)
        }
    }

    pub(crate) fn reg_write(&mut self, r: RegRef, size: Size, v: u64) {
        if r.high {
            self.regs.write_high_byte(r.num, v);
        } else {
            self.regs.write(r.num, size, v);
        }
    }

    pub(crate) fn gpr(&self, r: Gpr, size: Size) -> u64 {
        self.regs.read(r as u8, size)
    }

    pub(crate) fn set_gpr(&mut self, r: Gpr, size: Size, v: u64) {
        self.regs.write(r as u8, size, v);
    }

    // ---- addresses -------------------------------------------------------

    /// The effective address (offset) of a memory operand, truncated to the
    /// address size (SDM Vol. 1 §3.7.5).
    pub(crate) fn effective_address(&self, m: &MemRef) -> u64 {
        let asz = self.insn.addr_size;
        let mut ea = m.disp as u64;
        if m.rip_rel {
            ea = ea.wrapping_add(self.next_rip);
        }
        if let Some(b) = m.base {
            ea = ea.wrapping_add(self.regs.read(b, asz));
        }
        if let Some(i) = m.index {
            ea = ea.wrapping_add(self.regs.read(i, asz).wrapping_mul(u64::from(m.scale)));
        }
        asz.trunc(ea)
    }

    /// Apply segmentation to an access of `len` bytes at `offset`: base +
    /// offset. In 64-bit mode only FS and GS have a base and the address must
    /// be canonical; otherwise the limit and type checks of SDM Vol. 3 §5.3
    /// and §5.4 apply when the ops report the descriptor. Violations raise
    /// #GP(0), or #SS(0) for SS.
    pub(crate) fn linear(&self, seg: Seg, offset: u64, len: usize, write: bool) -> R<u64> {
        if self.mode.is_64() {
            let base = match seg {
                Seg::Fs | Seg::Gs => self.ops.segment_base(seg),
                _ => 0,
            };
            let la = base.wrapping_add(offset);
            if ((la as i64) << 16) >> 16 != la as i64 {
                return fault(if seg == Seg::Ss {
                    Exception::StackFault(0)
                } else {
                    GP0
                });
            }
            Ok(la)
        } else {
            if let Some(d) = self.ops.segment_limits(seg) {
                check_limits(seg, &d, offset, len, write)?;
            }
            Ok(self.ops.segment_base(seg).wrapping_add(offset) & 0xffff_ffff)
        }
    }

    /// Linear address of the instruction's memory operand, for an access of
    /// `len` bytes.
    pub(crate) fn mem_linear(&self, len: usize, write: bool) -> R<u64> {
        let m = self.insn.mem.ok_or(Stop::Form)?;
        self.linear(m.seg, self.effective_address(&m), len, write)
    }

    // ---- memory ----------------------------------------------------------

    /// Read `size` bytes at linear `la`, split at a page boundary so every
    /// [`EmulatorOps::read`] stays within one 4 KiB page (and translates once).
    pub(crate) fn read_lin(&mut self, la: u64, size: Size) -> R<u64> {
        let mut b = [0u8; 8];
        let n = size.bytes();
        let first = page_chunk(la, n);
        // `first <= n <= 8` (page_chunk), so the split always exists.
        let (lo, hi) = b.split_at_mut_checked(first).unwrap_or_default();
        self.ops.read(la, lo)?;
        if let Some(hi) = hi.get_mut(..n - first).filter(|h| !h.is_empty()) {
            self.ops.read(la.wrapping_add(first as u64), hi)?;
        }
        Ok(u64::from_le_bytes(b))
    }

    /// Write `size` bytes at linear `la`, split at a page boundary. A fault
    /// on the second page leaves the first part written, as a page-crossing
    /// store may on hardware.
    pub(crate) fn write_lin(&mut self, la: u64, size: Size, v: u64) -> R<()> {
        let b = v.to_le_bytes();
        let n = size.bytes();
        let first = page_chunk(la, n);
        let (lo, hi) = b.split_at_checked(first).unwrap_or_default();
        self.ops.write(la, lo)?;
        if let Some(hi) = hi.get(..n - first).filter(|h| !h.is_empty()) {
            self.ops.write(la.wrapping_add(first as u64), hi)?;
        }
        Ok(())
    }

    pub(crate) fn read_seg(&mut self, seg: Seg, off: u64, size: Size) -> R<u64> {
        let la = self.linear(seg, off, size.bytes(), false)?;
        self.read_lin(la, size)
    }

    pub(crate) fn write_seg(&mut self, seg: Seg, off: u64, size: Size, v: u64) -> R<()> {
        let la = self.linear(seg, off, size.bytes(), true)?;
        self.write_lin(la, size, v)
    }

    /// Compare-exchange at `la`: `Ok(None)` when it happened, else the value found.
    pub(crate) fn cmpxchg_lin(
        &mut self,
        la: u64,
        size: Size,
        old: u64,
        new: u64,
    ) -> R<Option<u64>> {
        let n = size.bytes();
        let mut exp = old.to_le_bytes();
        let newb = new.to_le_bytes();
        let ok = self.ops.cmpxchg(
            la,
            exp.get_mut(..n).ok_or(Stop::Form)?,
            newb.get(..n).ok_or(Stop::Form)?,
        )?;
        if ok {
            Ok(None)
        } else {
            Ok(Some(size.trunc(u64::from_le_bytes(exp))))
        }
    }

    // ---- operands --------------------------------------------------------

    pub(crate) fn read_op(&mut self, o: Operand) -> R<u64> {
        match o {
            Operand::None => Ok(0),
            Operand::Reg(r, s) => Ok(self.reg_read(r, s)),
            Operand::Imm(v, _) => Ok(v),
            Operand::Mem(s) => {
                let la = self.mem_linear(s.bytes(), false)?;
                self.read_lin(la, s)
            }
            Operand::Xmm(_) | Operand::Mmx(_) | Operand::MemBytes(_) => Err(Stop::Form),
        }
    }

    pub(crate) fn write_op(&mut self, o: Operand, v: u64) -> R<()> {
        match o {
            Operand::Reg(r, s) => {
                self.reg_write(r, s, v);
                Ok(())
            }
            Operand::Mem(s) => {
                let la = self.mem_linear(s.bytes(), true)?;
                self.write_lin(la, s, v)
            }
            Operand::None
            | Operand::Imm(..)
            | Operand::Xmm(_)
            | Operand::Mmx(_)
            | Operand::MemBytes(_) => Err(Stop::Form),
        }
    }

    /// Read-modify-write of the destination: `f(old)` gives the new value and
    /// the new RFLAGS. A LOCK-prefixed memory destination is updated with a
    /// compare-exchange loop so the access is atomic. Returns the old value.
    pub(crate) fn rmw(&mut self, f: impl Fn(u64, u64) -> (u64, u64)) -> R<u64> {
        let dst = self.insn.dst;
        match dst {
            Operand::Mem(s) if self.insn.prefixes.lock => {
                let la = self.mem_linear(s.bytes(), true)?;
                let mut old = self.read_lin(la, s)?;
                // Bounded: a guest that keeps changing the value under us
                // gets the instruction re-executed.
                for _ in 0..64 {
                    let (new, fl) = f(old, self.regs.rflags);
                    match self.cmpxchg_lin(la, s, old, s.trunc(new))? {
                        None => {
                            self.regs.rflags = fl | Rflags::FIXED.bits();
                            return Ok(old);
                        }
                        Some(cur) => old = cur,
                    }
                }
                Err(Stop::Retry)
            }
            _ => {
                let old = self.read_op(dst)?;
                let (new, fl) = f(old, self.regs.rflags);
                self.write_op(dst, new)?;
                self.regs.rflags = fl | Rflags::FIXED.bits();
                Ok(old)
            }
        }
    }

    /// Operand size of the instruction.
    pub(crate) fn osz(&self) -> Size {
        self.insn.op_size
    }

    /// Stack address size (SDM Vol. 1 §6.2.3): 64 in 64-bit mode, else
    /// SS.B as reported by [`EmulatorOps::stack_is_32bit`], else the mode's
    /// default.
    pub(crate) fn stack_size(&self) -> Size {
        match self.mode {
            Mode::Prot64 => Size::S64,
            Mode::Real | Mode::Vm86 => Size::S16,
            m => match self.ops.stack_is_32bit() {
                Some(true) => Size::S32,
                Some(false) => Size::S16,
                None => m.default_addr_size(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_insn_are_small() {
        // The context lives in the vcpu; the decoded instruction on the
        // (20 KiB) kernel stack.
        assert!(core::mem::size_of::<Context>() < 1024);
        assert!(core::mem::size_of::<Insn>() < 256);
    }
}
