//! A small VMM for the harness' own guests: it brings a VM up through the
//! ioctl dispatcher as QEMU does (the same calls as `vmm.rs`, with the
//! memslots a guest asks for), loads a guest program (`code.rs`) at
//! `code::LOAD` in 32-bit flat protected mode, runs it with KVM_RUN and
//! records what the guest did as the VMM saw it: every KVM_EXIT_IO and
//! KVM_EXIT_MMIO, the values and exceptions the guest reports on its
//! ports (`asm/lib.inc`), and how the run ended. Every fd is closed before
//! `run` returns, so the VM is gone and the caller can check for leaks.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{
    DATAMODEL_LP64, FREAD, FWRITE, OTYP_CHR, PROT_READ, PROT_USER, PROT_WRITE,
};
use kvm_ioctl::{Dev, Errno, KVM_VCPU_MMAP_SIZE};

use super::code;
use crate::platform::ioctl::HostUser;
use crate::vmm::{BareDriver, GuestRam, Seam};

const KVM_MAJOR: u32 = 42;
const LP64: i32 = DATAMODEL_LP64;

/// The guest's ports (`asm/lib.inc`).
pub const PORT_VAL: u16 = 0xe0;
pub const PORT_EXC: u16 = 0xe4;
pub const PORT_DONE: u16 = 0xe8;
pub const PORT_BENCH: u16 = 0xe2;

/// Where QEMU puts the TSS and the identity map (pc.c).
const TSS_ADDR: u64 = 0xfeff_d000;
const IDENTITY_MAP_ADDR: u64 = 0xfeff_c000;
/// The xAPIC base the VMM gives the BSP (enabled, BSP bit).
pub const APIC_BASE: u64 = 0xfee0_0000 | 0x900;
/// Initial ESP (the guest sets its own too).
const STACK: u64 = 0x9000;
/// Guest RAM below this is cleared before a guest is loaded.
const CLEAR_BELOW: u64 = 0x2_0000;
/// The program must end below this (slot 0 covers at least this much).
const SLOT_MIN: u64 = 0x10_0000;

/// One memslot: `size` bytes at `gpa`, backed by guest RAM from
/// `offset` in the VMM's arena.
#[derive(Clone, Copy)]
pub struct Slot {
    pub gpa: u64,
    pub size: u64,
    pub offset: u64,
    pub log_dirty: bool,
}

/// What a guest did, in order, as the VMM saw it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A dword on `PORT_VAL`.
    Val(u32),
    /// The guest's exception handler ran (three dwords on `PORT_EXC`).
    Exc { vector: u32, error: u32, eip: u32 },
    /// One element of a KVM_EXIT_IO on any other port: an OUT with the
    /// data the guest wrote, or an IN with the data the VMM answered.
    Io {
        port: u16,
        size: u8,
        out: bool,
        value: u32,
    },
    /// A KVM_EXIT_MMIO: a write with its data, or a read with the data the
    /// VMM answered.
    Mmio {
        gpa: u64,
        len: u32,
        write: bool,
        value: u64,
    },
}

/// How a guest run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The guest wrote `PORT_DONE`.
    Done,
    /// KVM_EXIT_SHUTDOWN.
    Shutdown,
    /// KVM_RUN came back to the VMM this many times with no exit for it
    /// (EINTR, KVM_EXIT_INTR: the time slice) and nothing else happened
    /// in between: the VMM stopped waiting (`Limits::idle_returns`).
    Idle(u32),
    /// Another exit the VMM does not continue from: reason, guest RIP.
    Exit(u32, u64),
    /// KVM_RUN failed.
    RunError(Errno),
    /// The instruction budget ran out.
    Budget,
    /// A bring-up ioctl failed.
    BringUp(&'static str, Option<Errno>),
}

impl core::fmt::Debug for Event {
    // Values in hex, as the guest programs write them.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Event::Val(v) => write!(f, "Val({v:#x})"),
            Event::Exc { vector, error, eip } => {
                write!(f, "Exc(vector {vector}, error {error:#x}, eip {eip:#x})")
            }
            Event::Io {
                port,
                size,
                out,
                value,
            } => write!(
                f,
                "Io({} port {port:#x} size {size} value {value:#x})",
                if out { "OUT" } else { "IN" }
            ),
            Event::Mmio {
                gpa,
                len,
                write,
                value,
            } => write!(
                f,
                "Mmio({} gpa {gpa:#x} len {len} value {value:#x})",
                if write { "write" } else { "read" }
            ),
        }
    }
}

impl core::fmt::Display for End {
    // By hand: a derived Debug of the `&str` brings core's string
    // escaping and its panic paths along.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            End::Done => f.write_str("done"),
            End::Shutdown => f.write_str("KVM_EXIT_SHUTDOWN"),
            End::Idle(n) => write!(f, "{n} slice returns with the guest idle"),
            End::Exit(reason, rip) => write!(
                f,
                "{} ({reason}) at rip {rip:#x}",
                crate::vmm::exit_name(*reason)
            ),
            End::RunError(e) => write!(f, "KVM_RUN = {e:?}"),
            End::Budget => f.write_str("instruction budget exhausted"),
            End::BringUp(what, Some(e)) => write!(f, "bring-up: {what} = {e:?}"),
            End::BringUp(what, None) => write!(f, "bring-up: {what}"),
        }
    }
}

/// The answer of the VMM to an IN from `port` (any function of the port
/// will do: the guests report what they read and the checks compare).
pub fn in_answer(port: u16) -> u32 {
    u32::from(port).wrapping_mul(0x9e37_79b1) ^ 0x5a5a_0000
}

/// The answer of the VMM to an MMIO read of `len` bytes at `gpa`.
pub fn mmio_answer(gpa: u64, len: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..u64::from(len.min(8)) {
        v |= u64::from((gpa as u8).wrapping_add(i as u8) ^ 0x3c) << (8 * i);
    }
    v
}

/// What a run produced.
pub struct Outcome {
    pub events: Vec<Event>,
    pub end: End,
    /// KVM_RUN returns for the time slice (EINTR / KVM_EXIT_INTR).
    pub slice_returns: u32,
    /// OUTs to `PORT_BENCH`.
    pub bench_outs: u64,
    /// KVM_GET_MP_STATE after the run.
    pub mp_state: Option<u32>,
    /// The guest's RIP after the run (KVM_GET_REGS).
    pub rip: Option<u64>,
    /// TSC ticks from the first KVM_RUN to the end.
    pub ticks: u64,
}

/// When the VMM stops a guest that does not end by itself.
#[derive(Clone, Copy)]
pub struct Limits {
    /// TSC ticks (= instructions under Bochs) for the whole run.
    pub budget: u64,
    /// Stop after this many consecutive slice returns with no event (0:
    /// never).
    pub idle_returns: u32,
}

/// A VMM time slice (TSC ticks), as `vmm.rs`'s.
const SLICE_TICKS: u64 = 500_000;

fn ioctl<X: Seam>(d: &BareDriver<X>, dev: Dev, cmd: Ioctl, arg: u64) -> Result<i32, End> {
    d.ioctl(dev, cmd.cmd() as i32, arg, LP64, &mut HostUser)
        .map_err(|e| End::BringUp(cmd.name(), Some(e)))
}

fn addr<T>(v: &T) -> u64 {
    v as *const T as u64
}

fn addr_mut<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

/// A byte buffer for a variable-length ioctl argument (8-aligned).
fn buffer(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes.div_ceil(8)]
}

fn put<T: Pod>(buf: &mut [u64], at: usize, v: &T) {
    let bytes = v.as_bytes();
    if at + bytes.len() <= buf.len() * 8 {
        // SAFETY: in bounds of `buf`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                buf.as_mut_ptr().cast::<u8>().add(at),
                bytes.len(),
            )
        };
    }
}

fn get<T: Pod>(buf: &[u64], at: usize) -> T {
    let n = core::mem::size_of::<T>();
    let mut v = T::zeroed();
    if at + n <= buf.len() * 8 {
        // SAFETY: in bounds; `T: Pod` takes any bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                buf.as_ptr().cast::<u8>().add(at),
                (&mut v as *mut T).cast::<u8>(),
                n,
            )
        };
    }
    v
}

/// 32-bit flat protected mode at `LOAD`, paging and interrupts off; no
/// GDT or IDT yet (every guest loads its own).
fn entry_state() -> (kvm_regs, kvm_sregs) {
    let regs = kvm_regs {
        rip: u64::from(code::LOAD),
        rsp: STACK,
        rflags: 2,
        ..Default::default()
    };
    let mut sregs = crate::vmm::flat_protected_sregs();
    sregs.apic_base = APIC_BASE;
    (regs, sregs)
}

/// The VM's fds, closed on drop (as QEMU's exit closes them).
struct Fds<'d, X: Seam> {
    d: &'d BareDriver<X>,
    sys: Option<Dev>,
    vcpu: Option<Dev>,
}

impl<X: Seam> Drop for Fds<'_, X> {
    fn drop(&mut self) {
        for dev in [self.vcpu.take(), self.sys.take()].into_iter().flatten() {
            if let Err(e) = self.d.close(dev) {
                crate::println!("guests: close(minor {}) = {e:?}", dev.minor());
            }
        }
    }
}

fn open<X: Seam>(d: &BareDriver<X>) -> Result<Dev, End> {
    let mut dev = Dev::new(KVM_MAJOR, 0);
    d.open(&mut dev, FREAD | FWRITE, OTYP_CHR)
        .map(|()| dev)
        .map_err(|e| End::BringUp("open", Some(e)))
}

/// KVM_GET_SUPPORTED_CPUID (nent doubled until not E2BIG), x2APIC hidden
/// as the kvm-unit-tests VMM does by default.
fn cpuid<X: Seam>(d: &BareDriver<X>, sys: Dev) -> Result<Vec<u64>, End> {
    let mut nent = 16usize;
    loop {
        let mut buf = buffer(8 + 40 * nent);
        put(&mut buf, 0, &(nent as u32));
        match d.ioctl(
            sys,
            Ioctl::GetSupportedCpuid.cmd() as i32,
            buf.as_mut_ptr() as u64,
            LP64,
            &mut HostUser,
        ) {
            Ok(_) => {
                let n: u32 = get(&buf, 0);
                for i in 0..n as usize {
                    let mut e: kvm_cpuid_entry2 = get(&buf, 8 + 40 * i);
                    if e.function == 1 {
                        e.ecx &= !(1 << 21);
                        put(&mut buf, 8 + 40 * i, &e);
                    }
                }
                return Ok(buf);
            }
            Err(Errno::E2BIG) if nent < 256 => nent *= 2,
            Err(e) => return Err(End::BringUp("KVM_GET_SUPPORTED_CPUID", Some(e))),
        }
    }
}

/// Brings a VM up with `slots` of `ram`, loads `program` and runs it
/// within `limits`. The VM is destroyed (every fd closed) on return.
pub fn run<X: Seam>(
    d: &BareDriver<X>,
    ram: GuestRam,
    slots: &[Slot],
    program: &[u8],
    limits: Limits,
) -> Outcome {
    let mut out = Outcome {
        events: Vec::new(),
        end: End::Budget,
        slice_returns: 0,
        bench_outs: 0,
        mp_state: None,
        rip: None,
        ticks: 0,
    };
    let mut fds = Fds {
        d,
        sys: None,
        vcpu: None,
    };
    match bring_up(d, ram, slots, program, &mut fds) {
        Ok(run) => {
            let start = crate::clock::now();
            out.end = run_loop(d, &fds, run, limits, &mut out);
            out.ticks = crate::clock::now().wrapping_sub(start);
            if let Some(vcpu) = fds.vcpu {
                let mut mp = kvm_mp_state { mp_state: u32::MAX };
                if ioctl(d, vcpu, Ioctl::GetMpState, addr_mut(&mut mp)).is_ok() {
                    out.mp_state = Some(mp.mp_state);
                }
                let mut regs = kvm_regs::default();
                if ioctl(d, vcpu, Ioctl::GetRegs, addr_mut(&mut regs)).is_ok() {
                    out.rip = Some(regs.rip);
                }
            }
        }
        Err(e) => out.end = e,
    }
    drop(fds);
    out
}

fn bring_up<X: Seam>(
    d: &BareDriver<X>,
    ram: GuestRam,
    slots: &[Slot],
    program: &[u8],
    fds: &mut Fds<'_, X>,
) -> Result<*mut kvm_run, End> {
    let load = u64::from(code::LOAD);
    if load + program.len() as u64 > ram.size.min(SLOT_MIN) {
        return Err(End::BringUp("the program does not fit", None));
    }
    for s in slots {
        if s.offset.saturating_add(s.size) > ram.size {
            return Err(End::BringUp("a memslot is larger than guest RAM", None));
        }
    }
    // SAFETY: guest RAM is the VMM's, identity mapped, and larger than
    // both ranges (checked above); no VM uses it now.
    unsafe {
        core::ptr::write_bytes(ram.hva as usize as *mut u8, 0, CLEAR_BELOW as usize);
        core::ptr::copy_nonoverlapping(
            program.as_ptr(),
            (ram.hva + load) as usize as *mut u8,
            program.len(),
        );
    }

    let sys = open(d)?;
    fds.sys = Some(sys);
    ioctl(d, sys, Ioctl::CreateVm, 0)?;
    ioctl(d, sys, Ioctl::SetTssAddr, TSS_ADDR)?;
    let ident = IDENTITY_MAP_ADDR;
    ioctl(d, sys, Ioctl::SetIdentityMapAddr, addr(&ident))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        pad: [0; 15],
    };
    ioctl(d, sys, Ioctl::CreatePit2, addr(&pit))?;
    ioctl(d, sys, Ioctl::CreateIrqchip, 0)?;
    for (i, s) in slots.iter().enumerate() {
        let region = kvm_userspace_memory_region {
            slot: i as u32,
            flags: if s.log_dirty {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
            guest_phys_addr: s.gpa,
            memory_size: s.size,
            userspace_addr: ram.hva + s.offset,
        };
        ioctl(d, sys, Ioctl::SetUserMemoryRegion, addr(&region))?;
    }
    let cpuid = cpuid(d, sys)?;

    let vcpu = open(d)?;
    fds.vcpu = Some(vcpu);
    ioctl(d, vcpu, Ioctl::Clone, sys.0)?;
    ioctl(d, vcpu, Ioctl::CreateVcpu, 0)?;
    d.segmap(
        vcpu,
        0,
        KVM_VCPU_MMAP_SIZE,
        PROT_READ | PROT_WRITE | PROT_USER,
    )
    .map_err(|e| End::BringUp("segmap", Some(e)))?;
    let run = d
        .devmap(vcpu, 0, KVM_VCPU_MMAP_SIZE, LP64)
        .map_err(|e| End::BringUp("devmap", Some(e)))?;
    ioctl(d, vcpu, Ioctl::SetCpuid2, cpuid.as_ptr() as u64)?;
    let mut lapic = buffer(1024);
    ioctl(d, vcpu, Ioctl::GetLapic, lapic.as_mut_ptr() as u64)?;
    ioctl(d, vcpu, Ioctl::SetLapic, lapic.as_ptr() as u64)?;
    let (regs, sregs) = entry_state();
    ioctl(d, vcpu, Ioctl::SetSregs, addr(&sregs))?;
    ioctl(d, vcpu, Ioctl::SetRegs, addr(&regs))?;
    Ok(run.cookie as usize as *mut kvm_run)
}

/// The guest's exception report in progress (three dwords).
#[derive(Default)]
struct ExcReport {
    words: [u32; 3],
    have: usize,
}

fn run_loop<X: Seam>(
    d: &BareDriver<X>,
    fds: &Fds<'_, X>,
    run: *mut kvm_run,
    limits: Limits,
    out: &mut Outcome,
) -> End {
    let Some(vcpu) = fds.vcpu else {
        return End::BringUp("no VCPU", None);
    };
    let start = crate::clock::now();
    let mut exc = ExcReport::default();
    let mut idle = 0u32;
    loop {
        if crate::clock::now().wrapping_sub(start) > limits.budget {
            return End::Budget;
        }
        // Device deadlines that passed while the VMM ran fire now (the
        // platform's timer callback), then the slice is armed: KVM_RUN
        // comes back at its end even if the guest never exits.
        crate::platform::services::fire_due(crate::clock::ticks_to_ns(crate::clock::now()));
        crate::platform::vmx_host::set_slice_end(crate::clock::now() + SLICE_TICKS);
        let r = d.ioctl(vcpu, Ioctl::Run.cmd() as i32, 0, LP64, &mut HostUser);
        crate::platform::vmx_host::set_slice_end(0);
        let events_before = out.events.len();
        match r {
            Ok(_) => {}
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {
                out.slice_returns += 1;
                idle += 1;
                if limits.idle_returns != 0 && idle >= limits.idle_returns {
                    return End::Idle(idle);
                }
                continue;
            }
            Err(e) => return End::RunError(e),
        }
        // SAFETY: the kvm_run page devmap gave us, alive while the fd is.
        let run = unsafe { &mut *run };
        let reason = run.exit_reason;
        if reason == ExitReason::Io as u32 {
            // SAFETY: the union member of KVM_EXIT_IO.
            let io = unsafe { run.u.io };
            let size = usize::from(io.size.clamp(1, 4));
            let data = (run as *mut kvm_run as u64 + io.data_offset) as usize as *mut u8;
            let out_dir = io.direction == KVM_EXIT_IO_OUT;
            for k in 0..io.count as usize {
                // SAFETY: the PIO data lies in the 2-page kvm_run area
                // (the driver bounds count * size by it).
                let p = unsafe { data.add(k * size) };
                let mut v = [0u8; 4];
                if out_dir {
                    // SAFETY: as above.
                    unsafe { core::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), size) };
                } else {
                    v = in_answer(io.port).to_le_bytes();
                    // SAFETY: as above.
                    unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), p, size) };
                }
                let mask = if size >= 4 {
                    u32::MAX
                } else {
                    (1u32 << (8 * size)) - 1
                };
                let value = u32::from_le_bytes(v) & mask;
                match (io.port, out_dir) {
                    (PORT_VAL, true) => out.events.push(Event::Val(value)),
                    (PORT_EXC, true) => {
                        if let Some(w) = exc.words.get_mut(exc.have) {
                            *w = value;
                        }
                        exc.have += 1;
                        if exc.have == 3 {
                            let [vector, error, eip] = exc.words;
                            out.events.push(Event::Exc { vector, error, eip });
                            exc = ExcReport::default();
                        }
                    }
                    (PORT_DONE, true) => return End::Done,
                    (PORT_BENCH, true) => out.bench_outs += 1,
                    _ => out.events.push(Event::Io {
                        port: io.port,
                        size: io.size,
                        out: out_dir,
                        value,
                    }),
                }
            }
        } else if reason == ExitReason::Mmio as u32 {
            // SAFETY: the union member of KVM_EXIT_MMIO.
            let mmio = unsafe { &mut run.u.mmio };
            let len = mmio.len.min(8);
            let value = if mmio.is_write != 0 {
                let mut v = [0u8; 8];
                for (dst, src) in v.iter_mut().zip(mmio.data.iter()).take(len as usize) {
                    *dst = *src;
                }
                u64::from_le_bytes(v)
            } else {
                let v = mmio_answer(mmio.phys_addr, len);
                mmio.data = v.to_le_bytes();
                v
            };
            out.events.push(Event::Mmio {
                gpa: mmio.phys_addr,
                len: mmio.len,
                write: mmio.is_write != 0,
                value,
            });
        } else if reason == ExitReason::Shutdown as u32 {
            return End::Shutdown;
        } else if reason == ExitReason::Intr as u32 {
            out.slice_returns += 1;
            idle += 1;
            if limits.idle_returns != 0 && idle >= limits.idle_returns {
                return End::Idle(idle);
            }
            continue;
        } else if reason != ExitReason::IrqWindowOpen as u32 {
            let mut regs = kvm_regs::default();
            let rip = match ioctl(d, vcpu, Ioctl::GetRegs, addr_mut(&mut regs)) {
                Ok(_) => regs.rip,
                Err(_) => u64::MAX,
            };
            return End::Exit(reason, rip);
        }
        if out.events.len() != events_before {
            idle = 0;
        }
    }
}
