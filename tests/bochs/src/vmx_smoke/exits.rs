//! The exit loop of the smoke test: what the host does for each VM exit.
//! CPUID is answered from the host CPU, port I/O plays a minimal PC (COM1
//! output captured line by line, the POST port timing the benchmarks,
//! unclaimed ports reading all-ones), EPT violations inside guest RAM map a
//! zeroed page on first touch, HLT ends the run.

use super::entry::GuestRegs;
use super::ept::Ept;
use super::guest::{BENCH_IO_PORT, BENCH_ROUNDS, MARKER_PORT, PROBE_BYTE, PROBE_DWORD};
use super::{GUEST_PROBE_GPA, GUEST_RAM_BYTES, SmokeError, SmokeResult};
use crate::clock;
use crate::cpu::cpuid;
use crate::pages;
use crate::vmx_insn::{self, vmread};
use kvm_vmx::ExitReason;
use kvm_vmx::exit_reason::{EXIT_REASON_ENTRY_FAILURE, basic};
use x86::vmx::vmcs::{guest, ro};

const COM1: u16 = 0x3f8;
const COM1_LSR: u16 = COM1 + 5;
/// Line status: transmitter holding register and transmitter empty.
const LSR_THR_EMPTY: u64 = 0x60;
const DEBUGCON: u16 = 0xe9;
const REASONS: usize = 80;
const LINE_BYTES: usize = 120;

/// What the run loop does next.
pub enum Action {
    Resume,
    Halted,
    /// The guest is in shutdown state; the VM is dead.
    TripleFault {
        rip: u64,
    },
}

/// What the smoke run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub exits: u64,
    pub cpuid_exits: u64,
    pub io_exits: u64,
    pub ept_violations: u64,
    pub guest_lines: u64,
    /// TSC ticks per CPUID round trip (Bochs: instructions, guest loop
    /// included).
    pub cpuid_round_trip: u64,
    /// TSC ticks per OUT round trip to an unclaimed port.
    pub io_round_trip: u64,
    /// TSC ticks from VMLAUNCH to the HLT exit.
    pub guest_ticks: u64,
}

pub struct ExitLoop {
    counts: [u64; REASONS],
    line: [u8; LINE_BYTES],
    line_len: usize,
    markers: [u64; 4],
    guest_lines: u64,
    started: u64,
}

/// One I/O exit's exit qualification (SDM vol. 3 table 28-5).
struct Io {
    port: u16,
    size: u8,
    input: bool,
    string: bool,
}

impl Io {
    fn decode(qual: u64) -> Io {
        Io {
            size: (qual & 7) as u8 + 1,
            input: qual & (1 << 3) != 0,
            string: qual & (1 << 4) != 0,
            port: (qual >> 16) as u16,
        }
    }
}

fn read(field: u32) -> SmokeResult<u64> {
    vmread(field).map_err(|_| SmokeError::new("VMREAD", u64::from(field)))
}

fn write(field: u32, value: u64) -> SmokeResult<()> {
    // SAFETY: only guest-state fields the handlers own are written.
    unsafe { vmx_insn::vmwrite(field, value) }
        .map_err(|_| SmokeError::new("VMWRITE", u64::from(field)))
}

/// Moves the guest past the instruction that exited.
fn skip_instruction() -> SmokeResult<()> {
    let rip = read(guest::RIP)?;
    let len = read(ro::VMEXIT_INSTRUCTION_LEN)?;
    write(guest::RIP, rip + len)
}

fn name(reason: u16) -> &'static str {
    ExitReason::from_basic(reason).map_or("EXIT_REASON_UNKNOWN", ExitReason::name)
}

impl ExitLoop {
    pub fn new() -> Self {
        ExitLoop {
            counts: [0; REASONS],
            line: [0; LINE_BYTES],
            line_len: 0,
            markers: [0; 4],
            guest_lines: 0,
            started: clock::now(),
        }
    }

    fn count(&mut self, reason: u16) -> u64 {
        match self.counts.get_mut(usize::from(reason)) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => 0,
        }
    }

    /// VM exits so far.
    pub fn total_exits(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn total(&self, reason: ExitReason) -> u64 {
        self.counts
            .get(reason as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Handles the VM exit that just happened.
    pub fn handle(&mut self, regs: &mut GuestRegs, ept: &mut Ept) -> SmokeResult<Action> {
        let raw = read(ro::EXIT_REASON)? as u32;
        let reason = basic(raw);
        if raw & EXIT_REASON_ENTRY_FAILURE != 0 {
            let qual = read(ro::EXIT_QUALIFICATION)?;
            crate::println!(
                "VM-entry failure: {} ({reason}) qualification={qual:#x}",
                name(reason)
            );
            return Err(SmokeError::new("VM-entry failure", u64::from(reason)));
        }
        if self.count(reason) == 1 && reason != ExitReason::IoInstruction as u16 {
            crate::println!(
                "exit: {} ({reason}) at guest rip {:#x}",
                name(reason),
                read(guest::RIP)?
            );
        }
        match ExitReason::from_basic(reason) {
            Some(ExitReason::Cpuid) => {
                let r = cpuid(regs.rax as u32, regs.rcx as u32);
                regs.rax = u64::from(r.eax);
                regs.rbx = u64::from(r.ebx);
                regs.rcx = u64::from(r.ecx);
                regs.rdx = u64::from(r.edx);
                skip_instruction()?;
                Ok(Action::Resume)
            }
            Some(ExitReason::IoInstruction) => {
                let io = Io::decode(read(ro::EXIT_QUALIFICATION)?);
                self.port_io(&io, regs)?;
                skip_instruction()?;
                Ok(Action::Resume)
            }
            Some(ExitReason::EptViolation) => {
                self.first_touch(ept)?;
                Ok(Action::Resume)
            }
            Some(ExitReason::Hlt) => {
                skip_instruction()?;
                Ok(Action::Halted)
            }
            Some(ExitReason::TripleFault) => Ok(Action::TripleFault {
                rip: read(guest::RIP)?,
            }),
            Some(ExitReason::ExceptionNmi) => {
                let info = read(ro::VMEXIT_INTERRUPTION_INFO)?;
                crate::println!("guest exception: interruption info {info:#x}");
                Err(SmokeError::new("guest exception", info))
            }
            _ => Err(SmokeError::new("unexpected VM exit", u64::from(reason))),
        }
    }

    fn port_io(&mut self, io: &Io, regs: &mut GuestRegs) -> SmokeResult<()> {
        if io.string {
            return Err(SmokeError::new(
                "string I/O in the smoke guest",
                u64::from(io.port),
            ));
        }
        if io.input {
            let value = match io.port {
                COM1_LSR => LSR_THR_EMPTY,
                p if (COM1..COM1 + 8).contains(&p) => 0,
                _ => u64::MAX, // nothing decodes the port: the bus floats high
            };
            let mask = match io.size {
                1 => 0xff,
                2 => 0xffff,
                _ => 0xffff_ffff,
            };
            regs.rax = (regs.rax & !mask) | (value & mask);
            return Ok(());
        }
        let byte = regs.rax as u8;
        match io.port {
            COM1 => self.serial_byte(byte),
            DEBUGCON => crate::console::put_byte(byte),
            MARKER_PORT => {
                if let Some(slot) = self.markers.get_mut(usize::from(byte)) {
                    *slot = clock::now();
                }
            }
            BENCH_IO_PORT => {}
            _ => {}
        }
        Ok(())
    }

    /// COM1 transmit: collect a line, print it as `guest: ...`.
    fn serial_byte(&mut self, byte: u8) {
        if byte == b'\n' || self.line_len == LINE_BYTES {
            let text = self.line.get(..self.line_len).unwrap_or(&[]);
            crate::println!(
                "guest: {}",
                core::str::from_utf8(text).unwrap_or("<not UTF-8>")
            );
            self.guest_lines += 1;
            self.line_len = 0;
        }
        if byte != b'\n'
            && let Some(slot) = self.line.get_mut(self.line_len)
        {
            *slot = byte;
            self.line_len += 1;
        }
    }

    /// EPT violation: inside guest RAM and not yet mapped, map a zeroed
    /// page and retry the access (the way KVM's MMU faults pages in).
    fn first_touch(&mut self, ept: &mut Ept) -> SmokeResult<()> {
        let gpa = read(ro::GUEST_PHYSICAL_ADDR_FULL)?;
        let qual = read(ro::EXIT_QUALIFICATION)?;
        if gpa >= GUEST_RAM_BYTES {
            crate::println!("EPT violation outside guest RAM: gpa={gpa:#x} qual={qual:#x}");
            return Err(SmokeError::new("EPT violation outside guest RAM", gpa));
        }
        let page = pages::alloc().ok_or(SmokeError::new("out of pages for guest RAM", gpa))?;
        let page_gpa = gpa & !0xfff;
        ept.map(page_gpa, page)
            .map_err(|_| SmokeError::new("EPT violation on a mapped page", gpa))?;
        vmx_insn::invept_all().map_err(|_| SmokeError::new("INVEPT", gpa))?;
        if self.total(ExitReason::EptViolation) <= 4 {
            crate::println!(
                "  ept: first touch of gpa {gpa:#x} ({}), mapped page {page_gpa:#x}",
                if qual & 2 != 0 {
                    "write"
                } else if qual & 4 != 0 {
                    "fetch"
                } else {
                    "read"
                }
            );
        }
        Ok(())
    }

    /// After the HLT: check the guest's probe write and sum up.
    pub fn finish(self, ept: &Ept) -> SmokeResult<Report> {
        let guest_ticks = clock::now().wrapping_sub(self.started);
        let hpa = ept
            .translate(GUEST_PROBE_GPA)
            .ok_or(SmokeError::new("probe page never mapped", GUEST_PROBE_GPA))?;
        // SAFETY: the EPT maps the probe page to a host page we own; the
        // guest is stopped.
        let (byte, dword) = unsafe {
            (
                (hpa as usize as *const u8).read_volatile(),
                (hpa as usize as *const u32).wrapping_add(1).read_volatile(),
            )
        };
        if byte != PROBE_BYTE || dword != PROBE_DWORD {
            return Err(SmokeError::new(
                "guest write did not reach the host page",
                hpa,
            ));
        }
        crate::println!(
            "ept: guest wrote {PROBE_BYTE:#x}/{PROBE_DWORD:#x} at gpa {GUEST_PROBE_GPA:#x} -> host page {hpa:#x}: ok"
        );
        let [_, m1, m2, m3] = self.markers;
        if m1 == 0 || m2 < m1 || m3 < m2 {
            return Err(SmokeError::new("benchmark markers missing", 0));
        }
        Ok(Report {
            exits: self.total_exits(),
            cpuid_exits: self.total(ExitReason::Cpuid),
            io_exits: self.total(ExitReason::IoInstruction),
            ept_violations: self.total(ExitReason::EptViolation),
            guest_lines: self.guest_lines,
            cpuid_round_trip: (m2 - m1) / BENCH_ROUNDS,
            io_round_trip: (m3 - m2) / BENCH_ROUNDS,
            guest_ticks,
        })
    }
}
