//! The interface between the emulator and the hypervisor.
//!
//! Ports `struct x86_emulate_ops` (kvm_emulate.h: `read_std`, `fetch`,
//! `read_emulated`, `write_emulated`, `cmpxchg_emulated`) and extends it with
//! everything kvm_emulate.c reached into the vcpu for directly (port I/O,
//! control/debug registers, MSRs, segments, CPL). The emulator applies
//! segmentation; the implementation translates linear addresses (guest
//! paging) and decides what is RAM and what is MMIO.

/// A segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    /// ES.
    Es,
    /// CS.
    Cs,
    /// SS.
    Ss,
    /// DS.
    Ds,
    /// FS.
    Fs,
    /// GS.
    Gs,
}

impl Seg {
    /// Segment register number `n` as encoded in ModRM.reg of MOV Sreg (0-5).
    pub const fn from_index(n: u8) -> Option<Seg> {
        match n {
            0 => Some(Seg::Es),
            1 => Some(Seg::Cs),
            2 => Some(Seg::Ss),
            3 => Some(Seg::Ds),
            4 => Some(Seg::Fs),
            5 => Some(Seg::Gs),
            _ => None,
        }
    }
}

/// An exception the emulated instruction raises; the caller injects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE: divide error.
    DivideError,
    /// #DB: debug (e.g. INT1 / MOV DR with DR7.GD).
    Debug,
    /// #BP: INT3.
    Breakpoint,
    /// #UD: invalid opcode.
    InvalidOpcode,
    /// #NM: device not available.
    DeviceNotAvailable,
    /// #SS with error code.
    StackFault(u16),
    /// #GP with error code.
    GeneralProtection(u16),
    /// #PF at `addr` with the page-fault error code.
    PageFault {
        /// Faulting linear address (CR2).
        addr: u64,
        /// Error code (P, W/R, U/S, RSVD, I/D bits).
        error_code: u32,
    },
    /// #AC (alignment check).
    AlignmentCheck,
}

/// Why an [`EmulatorOps`] call did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The access faulted; the emulator stops and reports the exception.
    Fault(Exception),
    /// The access must be completed outside (userspace MMIO or port I/O).
    /// The implementation records the pending access; the emulator leaves the
    /// guest state untouched and the caller re-runs the instruction when the
    /// data is available (the `X86EMUL_IO_NEEDED` scheme of later Linux).
    IoNeeded,
    /// The access cannot be emulated at all.
    Unhandleable,
}

/// The kind of an access, for the page-fault error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Fetch,
}

/// What the emulator needs from the hypervisor.
///
/// All addresses are linear (segment base already added). An implementation
/// may split accesses that cross a page boundary; a fault on either page is
/// returned as [`Exception::PageFault`] for the faulting address.
pub trait EmulatorOps {
    /// Read `buf.len()` (1-16) bytes of guest memory at `addr`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError>;

    /// Write `data` (1-16 bytes) to guest memory at `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError>;

    /// Atomically compare the `expected.len()` bytes at `addr` with `expected`
    /// and, if equal, replace them with `new` (same length). Returns `true`
    /// when the exchange happened; otherwise `expected` is overwritten with
    /// the current contents and `false` is returned. Used for CMPXCHG,
    /// CMPXCHG8B/16B, XCHG with memory and every LOCK-prefixed write.
    fn cmpxchg(&mut self, addr: u64, expected: &mut [u8], new: &[u8]) -> Result<bool, OpError>;

    /// Fetch instruction bytes at linear `addr` into `buf`; returns how many
    /// were fetched (at least 1; fewer than `buf.len()` at the end of a page
    /// whose successor is not mapped). A fault on the first byte is an error.
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, OpError>;

    /// Read `size` (1, 2 or 4) bytes from I/O port `port`.
    fn io_in(&mut self, port: u16, size: u8) -> Result<u32, OpError>;

    /// Write `size` (1, 2 or 4) bytes to I/O port `port`.
    fn io_out(&mut self, port: u16, size: u8, value: u32) -> Result<(), OpError>;

    /// Current privilege level (0-3).
    fn cpl(&self) -> u8;

    /// Base address of a segment register's cached descriptor.
    fn segment_base(&self, seg: Seg) -> u64;

    /// Selector currently loaded in a segment register.
    fn segment_selector(&self, seg: Seg) -> u16;

    /// Load a segment register (MOV Sreg, POP Sreg, far JMP/CALL/RET).
    /// The implementation performs the descriptor checks and returns #GP/#SS/#NP
    /// as a fault.
    fn load_segment(&mut self, seg: Seg, selector: u16) -> Result<(), OpError>;

    /// Whether the I/O permission bitmap of the TSS allows `size` bytes at
    /// `port` (only consulted when CPL > IOPL or in virtual-8086 mode).
    fn io_permitted(&mut self, port: u16, size: u8) -> bool {
        let _ = (port, size);
        false
    }

    /// Read control register `n`.
    fn read_cr(&mut self, n: u8) -> Result<u64, OpError>;

    /// Write control register `n`.
    fn write_cr(&mut self, n: u8, value: u64) -> Result<(), OpError>;

    /// Read debug register `n`.
    fn read_dr(&mut self, n: u8) -> Result<u64, OpError>;

    /// Write debug register `n`.
    fn write_dr(&mut self, n: u8, value: u64) -> Result<(), OpError>;

    /// Read an MSR (a #GP for an unknown MSR is returned as a fault).
    fn read_msr(&mut self, msr: u32) -> Result<u64, OpError>;

    /// Write an MSR.
    fn write_msr(&mut self, msr: u32, value: u64) -> Result<(), OpError>;

    /// Invalidate the TLB entry for linear address `addr` (INVLPG).
    fn invlpg(&mut self, addr: u64) {
        let _ = addr;
    }

    /// Load GDTR (`is_idt` = false) or IDTR from a base/limit pair.
    fn load_descriptor_table(&mut self, is_idt: bool, base: u64, limit: u16) -> Result<(), OpError> {
        let _ = (is_idt, base, limit);
        Err(OpError::Unhandleable)
    }

    /// Execute VMCALL (hypercall). Default: unhandleable.
    fn hypercall(&mut self) -> Result<(), OpError> {
        Err(OpError::Unhandleable)
    }
}
