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

/// The fixed flat descriptor SYSCALL/SYSENTER/SYSEXIT load: base 0,
/// limit 4 GiB, present, accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatSegment {
    /// Code (execute/read) rather than data (read/write).
    pub code: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// CS.L: 64-bit code segment.
    pub long: bool,
    /// D/B: 32-bit default size.
    pub big: bool,
}

/// What the emulator checks of a segment outside 64-bit mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLimits {
    /// The effective limit in bytes (granularity already applied).
    pub limit: u32,
    /// Expand-down data segment.
    pub expand_down: bool,
    /// D/B: the upper bound of an expand-down segment is 4 GiB - 1, else 64 KiB - 1.
    pub big: bool,
    /// Writable data segment.
    pub writable: bool,
    /// Readable (data, or a readable code segment).
    pub readable: bool,
    /// Usable: a non-null, present selector is loaded.
    pub usable: bool,
}

/// A segment register's descriptor cache, as the emulator loads it into a
/// segment register ([`EmulatorOps::set_segment`]) and reads it back
/// ([`EmulatorOps::get_segment`]): the VMCS guest-state format (SDM Vol. 3
/// §24.4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentCache {
    /// The visible selector.
    pub selector: u16,
    /// The base (a descriptor's 32 bits, zero-extended).
    pub base: u64,
    /// The effective limit in bytes (granularity applied: `G = 1` gives
    /// `raw << 12 | 0xfff`).
    pub limit: u32,
    /// Access rights: type[3:0], S[4], DPL[6:5], P[7], AVL[12], L[13],
    /// D/B[14], G[15], unusable[16] ([`SegmentCache::UNUSABLE`]).
    pub access_rights: u32,
}

impl SegmentCache {
    /// The "segment unusable" bit of the access rights (a null selector).
    pub const UNUSABLE: u32 = 1 << 16;

    /// Descriptor privilege level.
    pub const fn dpl(&self) -> u8 {
        ((self.access_rights >> 5) & 3) as u8
    }

    /// The segment type (bits 3:0 of the access rights).
    pub const fn typ(&self) -> u8 {
        (self.access_rights & 0xf) as u8
    }

    /// A usable segment (not loaded with a null selector).
    pub const fn usable(&self) -> bool {
        self.access_rights & Self::UNUSABLE == 0
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
    /// #MF (x87 floating-point error, vector 16): an MMX instruction found
    /// an unmasked x87 exception pending.
    FloatingPoint,
    /// #TS (invalid TSS, vector 10) with error code: a task switch found
    /// the new TSS, or a selector in it, invalid (SDM Vol. 3 Table 7-1).
    InvalidTss(u16),
    /// #SS with error code.
    StackFault(u16),
    /// #NP (segment not present, vector 11) with error code.
    SegmentNotPresent(u16),
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
/// All addresses are linear (segment base already added). Reads and writes
/// never cross a 4 KiB page boundary (the emulator splits them, as Linux's
/// `emulator_read_emulated` does); a compare-exchange may, and then the
/// implementation decides (it may return [`OpError::Unhandleable`]). A
/// translation failure is returned as [`Exception::PageFault`] with the
/// faulting address and error code.
///
/// Writes to MMIO should be queued for the device model and answered `Ok`;
/// [`OpError::IoNeeded`] means "nothing happened, run the instruction again
/// when the data is there" and suits reads and port input.
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

    /// A segment register's descriptor cache (real-mode loads keep its
    /// limit and attributes; IRET to an outer privilege level reads the
    /// DPL and type of ES, DS, FS and GS). Default: unhandleable.
    fn get_segment(&mut self, seg: Seg) -> Result<SegmentCache, OpError> {
        let _ = seg;
        Err(OpError::Unhandleable)
    }

    /// Load a segment register with the descriptor cache the emulator built
    /// (MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS, far JMP/CALL/RET, IRET;
    /// the emulator did every check of the SDM and set the accessed bit in
    /// the descriptor table). Called at the end of the instruction, after
    /// every memory access; an implementation that applies the cache only
    /// when the instruction completes ([`crate::Outcome::Done`]) keeps the
    /// guest state untouched whatever happens. A new CS or SS may change
    /// the CPL (SS.DPL) and the mode (CS.L, CS.D). Default: unhandleable.
    fn set_segment(&mut self, seg: Seg, cache: SegmentCache) -> Result<(), OpError> {
        let _ = (seg, cache);
        Err(OpError::Unhandleable)
    }

    /// LDTR's selector, base, limit and usability (unusable: a selector
    /// with TI = 1 is beyond the table), for descriptor loads through the
    /// LDT. Default: unhandleable.
    fn ldtr(&mut self) -> Result<SegmentCache, OpError> {
        Err(OpError::Unhandleable)
    }

    /// The task register: selector, base, limit and access rights (type
    /// 3: busy 16-bit TSS, 11: busy 32-bit TSS), for a task switch, which
    /// saves the outgoing task's state in the TSS at TR's base.
    /// Default: unhandleable.
    fn tr(&mut self) -> Result<SegmentCache, OpError> {
        Err(OpError::Unhandleable)
    }

    /// Load LDTR (a task switch loads the new task's LDT, SDM Vol. 3
    /// §7.3 step 12) with `selector` and its descriptor's `base`, `limit`
    /// in bytes and `access_rights` in the VMCS format (type 2, S = 0,
    /// DPL, P, G; [`SegmentCache::UNUSABLE`] for a null selector). Called
    /// after every check of the LDT descriptor passed; from then on
    /// [`EmulatorOps::ldtr`] must answer the new LDTR (the new task's
    /// segment selectors with TI = 1 are looked up in it). Default:
    /// unhandleable.
    fn load_ldtr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        let _ = (selector, base, limit, access_rights);
        Err(OpError::Unhandleable)
    }

    /// Read guest memory at a linear address as an implicit supervisor
    /// access (descriptor tables; SDM Vol. 3 §4.6.1), whatever the CPL.
    /// Default: [`EmulatorOps::read`].
    fn read_system(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), OpError> {
        self.read(addr, buf)
    }

    /// Write guest memory at a linear address as an implicit supervisor
    /// access (the accessed and busy bits of descriptors). Default:
    /// [`EmulatorOps::write`].
    fn write_system(&mut self, addr: u64, data: &[u8]) -> Result<(), OpError> {
        self.write(addr, data)
    }

    /// Load a segment register with a flat descriptor the emulator builds
    /// (SYSCALL, SYSENTER and SYSEXIT do not read the GDT: SDM Vol. 2
    /// "SYSCALL" loads "fixed values" into the descriptor caches).
    fn load_flat_segment(
        &mut self,
        seg: Seg,
        selector: u16,
        desc: FlatSegment,
    ) -> Result<(), OpError> {
        let _ = (seg, selector, desc);
        Err(OpError::Unhandleable)
    }

    /// The limit and type of a segment's cached descriptor, for the checks
    /// outside 64-bit mode (SDM Vol. 3 §5.3, §5.4). `None` (the default)
    /// skips them, as the C driver did.
    fn segment_limits(&self, seg: Seg) -> Option<SegmentLimits> {
        let _ = seg;
        None
    }

    /// IDTR (base, limit): in real mode the interrupt vector table that INT n
    /// reads. Default: the reset value (0, 0x3ff).
    fn idtr(&self) -> (u64, u16) {
        (0, 0x3ff)
    }

    /// SS.B (the "big" bit of the stack segment) in protected mode: `Some(true)`
    /// for a 32-bit stack. `None` (the default) assumes the stack width
    /// matches the code segment.
    fn stack_is_32bit(&self) -> Option<bool> {
        None
    }

    /// Whether the I/O permission bitmap of the TSS allows `size` bytes at
    /// `port` (only consulted when CPL > IOPL or in virtual-8086 mode).
    fn io_permitted(&mut self, port: u16, size: u8) -> bool {
        let _ = (port, size);
        false
    }

    /// Read control register `n`.
    fn read_cr(&mut self, n: u8) -> Result<u64, OpError>;

    /// Write control register `n`. A task switch writes CR0 with TS set
    /// and, from a 32-bit TSS with paging on, CR3 (SDM Vol. 3 §7.3); the
    /// new CR3 translates every later access (the new task's descriptor
    /// tables and stack), and a fault (e.g. #GP(0) for reserved bits in
    /// PAE PDPTEs) is reported in the new task.
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
    fn load_descriptor_table(
        &mut self,
        is_idt: bool,
        base: u64,
        limit: u16,
    ) -> Result<(), OpError> {
        let _ = (is_idt, base, limit);
        Err(OpError::Unhandleable)
    }

    /// GDTR as (base, limit), for LTR's descriptor lookup. The emulator
    /// reads and writes the GDT through [`EmulatorOps::read`] and
    /// [`EmulatorOps::write`] at linear addresses (GDTR base + selector
    /// index; implicit supervisor accesses). Default: unhandleable (LTR is
    /// then [`crate::Unhandleable::Ops`] before any memory access).
    fn gdtr(&mut self) -> Result<(u64, u16), OpError> {
        Err(OpError::Unhandleable)
    }

    /// Load the task register (LTR) with `selector` and its descriptor's
    /// `base` (64 bits in IA-32e mode), `limit` in bytes (granularity
    /// applied: `G = 1` gives `raw << 12 | 0xfff`) and `access_rights` in the
    /// VMCS format: type[3:0] (already busy: 11, or 3 for a 16-bit TSS),
    /// S[4], DPL[6:5], P[7], AVL[12], L[13], D/B[14], G[15]. Called last,
    /// after every check passed and the busy bit was written to the
    /// descriptor in the GDT. Default: unhandleable.
    fn load_tr(
        &mut self,
        selector: u16,
        base: u64,
        limit: u32,
        access_rights: u32,
    ) -> Result<(), OpError> {
        let _ = (selector, base, limit, access_rights);
        Err(OpError::Unhandleable)
    }

    /// Execute VMCALL (hypercall). Default: unhandleable.
    fn hypercall(&mut self) -> Result<(), OpError> {
        Err(OpError::Unhandleable)
    }

    /// The 16 bytes (little-endian) of the guest's XMM register `reg`
    /// (0-15), for the SSE data moves (MOVUPS ... MOVQ). The emulator never
    /// executes SSE instructions itself; the implementation reads the
    /// guest's saved FXSAVE image. Default: unhandleable (SSE moves are then
    /// reported as [`crate::Unhandleable::Ops`] before any memory access).
    fn xmm_read(&mut self, reg: u8) -> Result<[u8; 16], OpError> {
        let _ = reg;
        Err(OpError::Unhandleable)
    }

    /// Replace the guest's XMM register `reg` (0-15) with `value`. Called
    /// last, once every memory access of the instruction succeeded.
    /// Default: unhandleable.
    fn xmm_write(&mut self, reg: u8, value: [u8; 16]) -> Result<(), OpError> {
        let _ = (reg, value);
        Err(OpError::Unhandleable)
    }

    /// Read `buf.len()` bytes at `offset` of the guest's x87/MMX state in
    /// the FXSAVE image (SDM Vol. 1 Table 10-2: FSW at 2, the abridged tag
    /// word at 4, ST(i)/MMi at 32 + 16 i), for the MMX moves. Default:
    /// unhandleable (MMX moves are then [`crate::Unhandleable::Ops`]
    /// before any memory access).
    fn fpu_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), OpError> {
        let _ = (offset, buf);
        Err(OpError::Unhandleable)
    }

    /// Replace the bytes at `offset` of the guest's FXSAVE image with
    /// `data`. Called last, once every memory access of the MMX move
    /// succeeded. Default: unhandleable.
    fn fpu_write(&mut self, offset: usize, data: &[u8]) -> Result<(), OpError> {
        let _ = (offset, data);
        Err(OpError::Unhandleable)
    }

    /// The emulator executed XADD (0F C0/C1) whose destination is at
    /// linear address `linear` (0 for a register destination), once per
    /// instruction: called after the destination was read and written (a
    /// re-execution after pending MMIO calls it once). The C driver
    /// recorded a `KVM_RINGBUF_TAG_EMUXADD` event there (kvm_emulate.c,
    /// `case 0xc0 ... 0xc1`, after the operand fetch). Default: nothing.
    fn note_xadd(&mut self, linear: u64) {
        let _ = linear;
    }
}
