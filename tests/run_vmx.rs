//! KVM_RUN and the register ioctls through `kvm_ioctl::Driver` over
//! `VmBackend<_, RealVmx<FakeHost>>`: a scripted CPU produces VM exits
//! (tests/run_support) and every test checks the `kvm_run` bytes, the PIO
//! page, the registers and what the next VM entry saw.

mod run_support;
mod vm_support;

use ::x86::vmx::vmcs::guest;
use kvm_ioctl::abi::*;
use kvm_ioctl::{Dev, Errno};
use kvm_vmx::exit_reason::ExitReason;
use run_support::*;
use vm_support::Proc;

const KVM_EXIT_IO: u32 = 2;
const KVM_EXIT_HLT: u32 = 5;
const KVM_EXIT_MMIO: u32 = 6;
const KVM_EXIT_SHUTDOWN: u32 = 8;
const KVM_EXIT_INTR: u32 = 10;

const BUF: u64 = 0x7fff_0000_0000;
const RAM: u64 = 0x7f00_0000_0000;
const RAM_SIZE: u64 = 1 << 20;

struct Vm {
    d: RunDriver,
    p: Proc,
    vmfd: Dev,
    fd: Dev,
    run: &'static mut [u8],
}

impl Vm {
    /// A VM with 1 MiB of RAM at GPA 0 and one VCPU; `irqchip` creates
    /// the in-kernel PIC/IOAPIC/LAPIC first, `pit` the PIT.
    fn new(irqchip: bool, pit: bool) -> Vm {
        let p = Proc::default();
        p.map(BUF, 0x10000);
        p.map(RAM, RAM_SIZE as usize);
        let d = driver(&p);
        let vmfd = open(&d);
        ioctl(&d, vmfd, Ioctl::CreateVm, 0, &p).unwrap();
        if pit {
            assert_eq!(ioctl(&d, vmfd, Ioctl::CreatePit, 0, &p), Ok(0));
        }
        if irqchip {
            assert_eq!(ioctl(&d, vmfd, Ioctl::CreateIrqchip, 0, &p), Ok(0));
        }
        p.put(
            BUF,
            &kvm_userspace_memory_region {
                slot: 0,
                flags: 0,
                guest_phys_addr: 0,
                memory_size: RAM_SIZE,
                userspace_addr: RAM,
            },
        );
        assert_eq!(ioctl(&d, vmfd, Ioctl::SetUserMemoryRegion, BUF, &p), Ok(0));
        let fd = open(&d);
        assert_eq!(ioctl(&d, fd, Ioctl::Clone, vmfd.0, &p), Ok(0));
        assert_eq!(ioctl(&d, fd, Ioctl::CreateVcpu, 0, &p), Ok(0));
        let run = run_pages(&d, fd);
        Vm {
            d,
            p,
            vmfd,
            fd,
            run,
        }
    }

    /// `new`, then flat protected mode at 0x1000 (`protected_mode`).
    fn protected(irqchip: bool, pit: bool) -> Vm {
        let vm = Vm::new(irqchip, pit);
        vm.protected_mode(0x1000);
        vm
    }

    fn exits(&self, exits: Vec<Exit>) {
        script(&self.d).exits.extend(exits);
    }

    fn run(&mut self) -> Result<i32, Errno> {
        ioctl(&self.d, self.fd, Ioctl::Run, 0, &self.p)
    }

    fn exit_reason(&self) -> u32 {
        u32::from_le_bytes(self.run[8..12].try_into().unwrap())
    }

    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.run[off..off + 4].try_into().unwrap())
    }

    fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.run[off..off + 8].try_into().unwrap())
    }

    fn regs(&self) -> kvm_regs {
        assert_eq!(ioctl(&self.d, self.fd, Ioctl::GetRegs, BUF, &self.p), Ok(0));
        self.p.get(BUF)
    }

    fn set_regs(&self, r: &kvm_regs) {
        self.p.put(BUF, r);
        assert_eq!(ioctl(&self.d, self.fd, Ioctl::SetRegs, BUF, &self.p), Ok(0));
    }

    fn sregs(&self) -> kvm_sregs {
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::GetSregs, BUF, &self.p),
            Ok(0)
        );
        self.p.get(BUF)
    }

    fn set_sregs(&self, s: &kvm_sregs) {
        self.p.put(BUF, s);
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::SetSregs, BUF, &self.p),
            Ok(0)
        );
    }

    /// KVM_GET_REGS, `edit`, KVM_SET_REGS.
    fn edit_regs(&self, edit: impl FnOnce(&mut kvm_regs)) {
        let mut r = self.regs();
        edit(&mut r);
        self.set_regs(&r);
    }

    /// KVM_GET_SREGS, `edit`, KVM_SET_SREGS.
    fn edit_sregs(&self, edit: impl FnOnce(&mut kvm_sregs)) {
        let mut s = self.sregs();
        edit(&mut s);
        self.set_sregs(&s);
    }

    /// `code` at GPA 0x1000 (where `protected_mode(0x1000)` starts) and
    /// the registers as `regs` edits them.
    fn code(&self, code: &[u8], regs: impl FnOnce(&mut kvm_regs)) {
        self.p.write(RAM + 0x1000, code);
        self.edit_regs(regs);
    }

    /// Segment descriptors (selector, 8 bytes) into the GDT at GPA `base`.
    fn descriptors(&self, base: u64, entries: &[(u64, [u8; 8])]) {
        for (sel, d) in entries {
            self.p.write(RAM + base + sel, d);
        }
    }

    /// `entries` into the GDT at GPA `base`, and GDTR = (`base`, `limit`).
    fn gdt(&self, base: u64, limit: u16, entries: &[(u64, [u8; 8])]) {
        self.descriptors(base, entries);
        self.edit_sregs(|s| {
            s.gdt.base = base;
            s.gdt.limit = limit;
        });
    }

    /// KVM_RUN, which must end in KVM_EXIT_MMIO: its (phys_addr, len,
    /// is_write).
    #[track_caller]
    fn run_to_mmio(&mut self) -> (u64, u32, u8) {
        assert_eq!(self.run(), Ok(0));
        assert_eq!(self.exit_reason(), KVM_EXIT_MMIO);
        (self.u64_at(32), self.u32_at(48), self.run[52])
    }

    /// KVM_RUN, which must end in KVM_EXIT_IO: its (direction, size,
    /// port, count).
    #[track_caller]
    fn run_to_io(&mut self) -> (u8, u8, u16, u32) {
        assert_eq!(self.run(), Ok(0));
        assert_eq!(self.exit_reason(), KVM_EXIT_IO);
        let port = u16::from_le_bytes([self.run[34], self.run[35]]);
        (self.run[32], self.run[33], port, self.u32_at(36))
    }

    /// User space's answer to an MMIO read: `data` into kvm_run.mmio.data.
    fn answer_mmio(&mut self, data: &[u8]) {
        self.run[40..40 + data.len()].copy_from_slice(data);
    }

    /// The LAPIC's register page (KVM_GET_LAPIC).
    fn lapic(&self) -> Vec<u8> {
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::GetLapic, BUF, &self.p),
            Ok(0)
        );
        self.p.read(BUF, 1024)
    }

    /// KVM_GET_LAPIC, `edit` the register page, KVM_SET_LAPIC.
    fn edit_lapic(&self, edit: impl FnOnce(&mut [u8])) {
        let mut regs = self.lapic();
        edit(&mut regs);
        self.p.write(BUF, &regs);
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::SetLapic, BUF, &self.p),
            Ok(0)
        );
    }

    /// Flat 32-bit protected mode, paging off, RIP = `rip`, IF set.
    fn protected_mode(&self, rip: u64) {
        let mut s = self.sregs();
        flat_protected_mode(&mut s);
        self.set_sregs(&s);
        let mut r = self.regs();
        r.rip = rip;
        r.rflags = 0x202;
        self.set_regs(&r);
    }

    /// KVM_SET_CPUID2 with `entries`.
    fn set_cpuid(&self, entries: &[kvm_cpuid_entry2]) {
        self.p.put(
            BUF,
            &kvm_cpuid2 {
                nent: entries.len() as u32,
                padding: 0,
                entries: [],
            },
        );
        for (i, e) in entries.iter().enumerate() {
            self.p.put(BUF + 8 + 40 * i as u64, e);
        }
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::SetCpuid2, BUF, &self.p),
            Ok(0)
        );
    }

    fn entries(&self) -> Vec<Entry> {
        script(&self.d).entries.clone()
    }
}

/// A counter of the live kstat `kstat`, whose data is a `T`: what `find`
/// answers.
fn stat<T>(d: &RunDriver, kstat: &str, find: impl FnOnce(&T) -> Option<u64>) -> u64 {
    let s = d.backend().services();
    let live = s.kstats.live.lock().unwrap();
    let rec = live
        .values()
        .find(|r| r.name == kstat)
        .unwrap_or_else(|| panic!("{kstat} kstat"));
    // SAFETY: the kstat's data lives as long as its VM or VCPU, which the
    // tests keep open.
    find(unsafe { &*(rec.data as *const T) }).expect("counter")
}

/// The value of counter `name` of the (only) VCPU's `vcpu-0` kstat.
fn vcpu_stat(d: &RunDriver, name: &str) -> u64 {
    stat(d, "vcpu-0", |s: &kvm_kstat::VcpuStats| {
        s.entries().find(|k| k.name() == name).map(|k| k.get())
    })
}

/// I/O qualification: size 1/2/4, IN or OUT, port (SDM table 27-5).
fn io_qual(port: u16, size: u64, input: bool) -> u64 {
    (u64::from(port) << 16) | (u64::from(input) << 3) | (size - 1)
}

fn set_rax(v: u64) -> impl FnMut(&mut kvm_vmx::vcpu::GuestRegs, &mut kvm_vmx::fake::FakeVmcs) {
    move |r, _| r.rax = v
}

/// A one-byte HLT exit.
fn hlt() -> Exit {
    Exit::new(ExitReason::Hlt, 1, 0)
}

/// A one-byte IN or OUT (`size` bytes at `port`) exit.
fn port_io(port: u16, size: u64, input: bool) -> Exit {
    Exit::new(ExitReason::IoInstruction, 1, io_qual(port, size, input))
}

#[test]
fn out_to_a_user_space_port_exits_with_kvm_exit_io_and_the_data_page() {
    let mut vm = Vm::protected(false, false);
    vm.exits(vec![port_io(0x3f8, 1, false).with(set_rax(0x41)), hlt()]);
    assert_eq!(
        vm.run_to_io(),
        (KVM_EXIT_IO_OUT, 1, 0x3f8, 1),
        "direction, size, port, count"
    );
    assert_eq!(vm.u64_at(40), 4096, "data_offset");
    assert_eq!(vm.run[4096], 0x41);
    // The instruction is done: RIP is past it.
    assert_eq!(vm.regs().rip, 0x1001);
    // The next KVM_RUN resumes after it; KVM_RUN's end VMCLEARed the VMCS,
    // so the entry is a VMLAUNCH again.
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].rip, e[1].rip), (0x1000, 0x1001));
    assert!(!e[0].launched && !e[1].launched);
    assert_eq!(vm.regs().rip, 0x1002);
    // Each KVM_RUN told the host the VCPU runs (illumos ties its kick
    // object to the VMCS there); the register ioctls did not.
    let running = host(&vm.d).running.lock().unwrap().clone();
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|(_, vcpu)| *vcpu == 0));
}

#[test]
fn in_from_user_space_completes_into_al_on_the_next_run() {
    let mut vm = Vm::protected(false, false);
    vm.exits(vec![
        port_io(0x3f9, 1, true).with(set_rax(0x1122_3344)),
        hlt(),
    ]);
    let (direction, _, port, _) = vm.run_to_io();
    assert_eq!((direction, port), (KVM_EXIT_IO_IN, 0x3f9));
    vm.run[4096] = 0x5a;
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e[1].regs.rax, 0x1122_335a, "AL merged, the rest kept");
    assert_eq!(e[1].rip, 0x1001);
}

#[test]
fn pit_ports_are_handled_in_the_kernel() {
    let mut vm = Vm::protected(false, true);
    // Counter 0, lobyte/hibyte, mode 2, count 0x1234; latch; read twice.
    let out = |port, val| port_io(port, 1, false).with(set_rax(val));
    vm.exits(vec![
        out(0x43, 0x34),
        out(0x40, 0x34),
        out(0x40, 0x12),
        out(0x43, 0x00),
        port_io(0x40, 1, true).with(set_rax(0)),
        port_io(0x40, 1, true).with(set_rax(0)),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    // One KVM_RUN: six port accesses stayed in the kernel.
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e.len(), 7);
    assert_eq!(e[5].regs.rax & 0xff, 0x34, "latched low byte");
    assert_eq!(e[6].regs.rax & 0xff, 0x12, "latched high byte");
    assert_eq!(e[6].rip, 0x1006);
    // The VCPU kstat counted them.
    assert_eq!(vcpu_stat(&vm.d, "exits"), 7);
    assert_eq!(vcpu_stat(&vm.d, "io-exits"), 6);
    assert_eq!(vcpu_stat(&vm.d, "halt-exits"), 1);
    assert_eq!(vcpu_stat(&vm.d, "mmio-exits"), 0);
}

#[test]
fn ept_violation_on_ram_is_mapped_and_the_guest_resumes() {
    let mut vm = Vm::new(false, false);
    let tables = vm.d.backend().services().tables.live();
    vm.exits(vec![Exit::ept(0x5000, 1), hlt()]);
    let rip = vm.regs().rip;
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e.len(), 2);
    // Resumed at the same instruction, which now has its page.
    assert_eq!(e[1].rip, rip);
    assert!(
        vm.d.backend().services().tables.live() > tables,
        "EPT tables built"
    );
    assert!(script(&vm.d).invepts.is_empty());
    assert_eq!(vcpu_stat(&vm.d, "pf-fixed"), 1);
    // The VM's table-memory gauge follows the MMU (4 levels built).
    assert_eq!(
        vm_stat(&vm.d, "ept-table-pages"),
        vm.d.backend().services().tables.live() as u64
    );
    assert!(vm_stat(&vm.d, "ept-table-pages") >= 4);
}

/// The value of counter `name` of the VM's `vm` kstat.
fn vm_stat(d: &RunDriver, name: &str) -> u64 {
    stat(d, "vm", |s: &kvm_kstat::VmStats| {
        s.entries().find(|k| k.name() == name).map(|k| k.get())
    })
}

#[test]
fn mmio_write_outside_ram_is_emulated_and_exits_with_kvm_exit_mmio() {
    let mut vm = Vm::protected(false, false);
    // mov [ebx], eax
    vm.code(&[0x89, 0x03], |r| {
        r.rax = 0x1234_5678;
        r.rbx = 0xd000_0000;
    });
    vm.exits(vec![Exit::ept(0xd000_0000, 2), hlt()]);
    assert_eq!(
        vm.run_to_mmio(),
        (0xd000_0000, 4, 1),
        "phys_addr, len, is_write"
    );
    assert_eq!(&vm.run[40..48], &[0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
    assert_eq!(vm.regs().rip, 0x1002);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.entries()[1].rip, 0x1002);
    assert_eq!(vcpu_stat(&vm.d, "mmio-exits"), 1);
    assert_eq!(vcpu_stat(&vm.d, "insn-emulation"), 1);
    assert_eq!(vcpu_stat(&vm.d, "pf-fixed"), 0);
}

#[test]
fn mmio_read_is_answered_by_user_space_on_the_next_run() {
    let mut vm = Vm::protected(false, false);
    vm.code(&[0x8b, 0x03], |r| r.rbx = 0xd000_0010); // mov eax, [ebx]
    vm.exits(vec![Exit::ept(0xd000_0010, 1), hlt()]);
    assert_eq!(vm.run_to_mmio(), (0xd000_0010, 4, 0), "a read");
    assert_eq!(vm.regs().rip, 0x1000, "not done yet");
    vm.answer_mmio(&0xdead_beefu32.to_le_bytes());
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e[1].regs.rax, 0xdead_beef);
    assert_eq!(e[1].rip, 0x1002);
}

#[test]
fn hlt_with_the_in_kernel_irqchip_blocks_until_the_lapic_has_an_interrupt() {
    let mut vm = Vm::protected(true, false);
    // Software-enable the LAPIC and make vector 0x30 pending in its IRR.
    vm.edit_lapic(|regs| {
        regs[0xf0..0xf4].copy_from_slice(&0x1ffu32.to_le_bytes());
        regs[0x212] |= 1; // IRR bit 48 (0x210 + bit 16)
    });
    // Disable injection on the first entry: IF clear until the HLT.
    vm.edit_regs(|r| r.rflags = 0x2);
    vm.exits(vec![
        hlt().with(|_, v| {
            v.set_exit_info(guest::RFLAGS, 0x202);
        }),
        port_io(0x3f8, 1, false),
    ]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_IO);
    let e = vm.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].injected & (1 << 31), 0, "nothing injected with IF=0");
    assert_eq!(script(&vm.d).blocks, vec![true], "woken by the LAPIC");
    // External interrupt (type 0), vector 0x30, valid.
    assert_eq!(e[1].injected, 0x8000_0030);
    assert_eq!(vcpu_stat(&vm.d, "irq-injections"), 1);
    assert_eq!(vcpu_stat(&vm.d, "halt-wakeup"), 1);
    assert_eq!(e[1].rip, 0x1001);
    // MP state back to runnable.
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetMpState, BUF, &vm.p), Ok(0));
    assert_eq!(vm.p.get::<u32>(BUF), 0);
}

#[test]
fn cpuid_answers_from_the_vcpu_table() {
    let mut vm = Vm::protected(false, false);
    let e = kvm_cpuid_entry2 {
        function: 0x4000_0000,
        index: 0,
        flags: 0,
        eax: 0x4000_0001,
        ebx: 0x4b4d_564b,
        ecx: 0x564b_4d56,
        edx: 0x4d,
        padding: [0; 3],
    };
    vm.set_cpuid(&[e]);
    vm.exits(vec![
        Exit::new(ExitReason::Cpuid, 2, 0).with(|r, _| {
            r.rax = 0x4000_0000;
            r.rcx = 0;
        }),
        Exit::new(ExitReason::Cpuid, 2, 0).with(|r, _| {
            r.rax = 0x8000_0000;
            r.rbx = 0x77;
        }),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    let en = vm.entries();
    let r = en[1].regs;
    assert_eq!(
        (r.rax, r.rbx, r.rcx, r.rdx),
        (0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d)
    );
    assert_eq!(en[1].rip, 0x1002);
    // A leaf not in the table reads as zeros.
    let r = en[2].regs;
    assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (0, 0, 0, 0));
    assert_eq!(en[2].rip, 0x1004);
}

#[test]
fn rdmsr_of_an_unknown_msr_injects_gp() {
    let mut vm = Vm::protected(false, false);
    vm.exits(vec![
        Exit::new(ExitReason::MsrRead, 2, 0).with(|r, _| r.rcx = 0x1234_5678),
        Exit::new(ExitReason::MsrRead, 2, 0).with(|r, _| r.rcx = 0x1a0),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    // #GP(0): valid, deliver error code, hardware exception, vector 13.
    assert_eq!(e[1].injected, 0x8000_0b0d);
    assert_eq!(e[1].error_code, 0);
    assert_eq!(e[1].rip, 0x1000, "RIP not advanced");
    // MISC_ENABLE is known: no fault, EDX:EAX = 0, RIP advanced.
    assert_eq!(e[2].injected & (1 << 31), 0);
    assert_eq!((e[2].regs.rax, e[2].regs.rdx), (0, 0));
    assert_eq!(e[2].rip, 0x1002);
}

#[test]
fn triple_fault_is_kvm_exit_shutdown() {
    let mut vm = Vm::new(false, false);
    vm.exits(vec![Exit::new(ExitReason::TripleFault, 0, 0)]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_SHUTDOWN);
}

#[test]
fn a_signal_ends_kvm_run_with_eintr_and_kvm_exit_intr() {
    let mut vm = Vm::protected(true, false);
    // HLT with nothing pending: the fake's block finds nobody to wake the
    // VCPU and delivers a signal.
    vm.exits(vec![hlt()]);
    assert_eq!(vm.run(), Err(Errno::EINTR));
    assert_eq!(vm.exit_reason(), KVM_EXIT_INTR);
    assert_eq!(script(&vm.d).blocks, vec![false]);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetMpState, BUF, &vm.p), Ok(0));
    assert_eq!(vm.p.get::<u32>(BUF), 3, "halted");
}

#[test]
fn regs_and_sregs_round_trip() {
    let vm = Vm::new(false, false);
    // Reset state: F000:FFF0, real mode.
    let r = vm.regs();
    assert_eq!((r.rip, r.rflags), (0xfff0, 0x2));
    let s = vm.sregs();
    assert_eq!((s.cs.selector, s.cs.base), (0xf000, 0xf_0000));
    assert_eq!(s.cr0 & 1, 0);
    let r = kvm_regs {
        rax: 1,
        rbx: 2,
        rcx: 3,
        rdx: 4,
        rsi: 5,
        rdi: 6,
        rsp: 7,
        rbp: 8,
        r8: 9,
        r9: 10,
        r10: 11,
        r11: 12,
        r12: 13,
        r13: 14,
        r14: 15,
        r15: 16,
        rip: 0x1234,
        rflags: 0x246,
    };
    vm.set_regs(&r);
    assert_eq!(vm.regs(), r);
    vm.protected_mode(0x2000);
    let mut s = vm.sregs();
    assert_eq!(s.cr0 & 1, 1);
    assert_eq!((s.cs.selector, s.cs.db, s.cs.limit), (0x8, 1, 0xffff_ffff));
    assert_eq!((s.ds.selector, s.ds.r#type), (0x10, 3));
    s.gdt = kvm_dtable {
        base: 0x5000,
        limit: 0x27,
        padding: [0; 3],
    };
    s.idt = kvm_dtable {
        base: 0x6000,
        limit: 0x7ff,
        padding: [0; 3],
    };
    s.cr2 = 0xdead_0000;
    s.cr3 = 0x9000;
    s.efer = 0;
    vm.set_sregs(&s);
    let back = vm.sregs();
    assert_eq!((back.gdt.base, back.gdt.limit), (0x5000, 0x27));
    assert_eq!((back.idt.base, back.idt.limit), (0x6000, 0x7ff));
    assert_eq!((back.cr2, back.cr3), (0xdead_0000, 0x9000));
    assert_eq!(back.cs, s.cs);
    assert_eq!(back.ss, s.ss);
    assert_eq!(vm.regs().rip, 0x2000);
}

#[test]
fn msrs_fpu_and_the_msr_index_list() {
    let vm = Vm::new(false, false);
    // SET_MSRS stops at the first unknown MSR.
    let mut msrs = kvm_msrs {
        nmsrs: 3,
        pad: 0,
        entries: [kvm_msr_entry::default(); 100],
    };
    msrs.entries[0] = kvm_msr_entry {
        index: 0x1a0,
        reserved: 0,
        data: 0x81,
    };
    msrs.entries[1] = kvm_msr_entry {
        index: 0x174,
        reserved: 0,
        data: 0x10,
    };
    msrs.entries[2] = kvm_msr_entry {
        index: 0x4321,
        reserved: 0,
        data: 1,
    };
    vm.p.put(BUF, &msrs);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetMsrs, BUF, &vm.p), Ok(2));
    msrs.entries[0].data = 0;
    msrs.entries[1].data = 0;
    vm.p.put(BUF, &msrs);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetMsrs, BUF, &vm.p), Ok(2));
    let back: kvm_msrs = vm.p.get(BUF);
    assert_eq!((back.entries[0].data, back.entries[1].data), (0x81, 0x10));
    // FPU: the reset FCW/MXCSR, then a round trip.
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetFpu, BUF, &vm.p), Ok(0));
    let mut f: kvm_fpu = vm.p.get(BUF);
    assert_eq!((f.fcw, f.mxcsr), (0x37f, 0x1f80));
    f.xmm[3] = [7; 16];
    f.fsw = 0x4000;
    vm.p.put(BUF, &f);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetFpu, BUF, &vm.p), Ok(0));
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetFpu, BUF, &vm.p), Ok(0));
    assert_eq!(vm.p.get::<kvm_fpu>(BUF), f);
    // The index list: the five always-reported, what the host has, and
    // MISC_ENABLE.
    vm.p.put(BUF, &64u32);
    assert_eq!(
        ioctl(&vm.d, vm.vmfd, Ioctl::GetMsrIndexList, BUF, &vm.p),
        Ok(0)
    );
    let n = vm.p.get::<u32>(BUF) as usize;
    let list: Vec<u32> = (0..n).map(|i| vm.p.get(BUF + 4 + 4 * i as u64)).collect();
    assert_eq!(
        &list[..5],
        &[0x12, 0x11, 0x4000_0000, 0x4000_0001, 0x4000_0073]
    );
    assert!(list.contains(&0x174) && list.contains(&0x277));
    assert!(!list.contains(&0xc001_0117) && !list.contains(&0x198));
    assert_eq!(list.last(), Some(&0x1a0));
}

#[test]
fn mmio_writes_to_a_coalesced_zone_go_to_the_ring_without_an_exit() {
    let mut vm = Vm::new(false, false);
    vm.p.put(
        BUF,
        &kvm_coalesced_mmio_zone {
            addr: 0xd000_0000,
            size: 0x1000,
            pad: 0,
        },
    );
    assert_eq!(
        ioctl(&vm.d, vm.vmfd, Ioctl::RegisterCoalescedMmio, BUF, &vm.p),
        Ok(0)
    );
    vm.protected_mode(0x1000);
    // mov [ebx], eax x2
    vm.code(&[0x89, 0x03, 0x89, 0x03], |r| {
        r.rax = 0xcafe_f00d;
        r.rbx = 0xd000_0008;
    });
    vm.exits(vec![
        Exit::ept(0xd000_0008, 2),
        Exit::ept(0xd000_0008, 2).with(|r, _| r.rax = 0x1234),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT, "no MMIO exit");
    assert_eq!(vm.entries()[2].rip, 0x1004);
    let ring = ring_page(&vm.d, vm.fd);
    let first = u32::from_le_bytes(ring[0..4].try_into().unwrap());
    let last = u32::from_le_bytes(ring[4..8].try_into().unwrap());
    assert_eq!((first, last), (0, 2));
    // Entry: phys_addr, len, pad, data.
    assert_eq!(
        u64::from_le_bytes(ring[8..16].try_into().unwrap()),
        0xd000_0008
    );
    assert_eq!(u32::from_le_bytes(ring[16..20].try_into().unwrap()), 4);
    assert_eq!(&ring[24..32], &[0x0d, 0xf0, 0xfe, 0xca, 0, 0, 0, 0]);
    assert_eq!(&ring[48..56], &[0x34, 0x12, 0, 0, 0, 0, 0, 0]);
    assert_eq!(vcpu_stat(&vm.d, "mmio-exits"), 0, "no exit to user space");
    assert_eq!(vcpu_stat(&vm.d, "insn-emulation"), 2);
}

#[test]
fn tpr_shadow_writes_reach_the_lapic_and_back() {
    let mut vm = Vm::protected(true, false);
    // The LAPIC's TPR (0x80) is 0x30 before the entry.
    vm.edit_lapic(|regs| {
        regs[0xf0..0xf4].copy_from_slice(&0x1ffu32.to_le_bytes());
        regs[0x80..0x84].copy_from_slice(&0x30u32.to_le_bytes());
    });
    let pages = host(&vm.d).pages.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(0u32));
    let seen2 = seen.clone();
    vm.exits(vec![port_io(0x3f8, 1, false).with(move |_, v| {
        // The guest runs MOV CR8, 5 without an exit: the CPU writes the
        // virtual-APIC page's TPR.
        let pa = v
            .get(::x86::vmx::vmcs::control::VIRT_APIC_ADDR_FULL)
            .unwrap();
        let ptr = pages.lock().unwrap()[&pa] as *mut u8;
        // SAFETY: the page lives in the VCPU, which is being run.
        let tpr = unsafe { std::slice::from_raw_parts_mut(ptr.add(0x80), 4) };
        *seen2.lock().unwrap() = u32::from_le_bytes(tpr.try_into().unwrap());
        tpr.copy_from_slice(&0x50u32.to_le_bytes());
    })]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_IO);
    assert_eq!(
        *seen.lock().unwrap(),
        0x30,
        "LAPIC TPR shadowed before entry"
    );
    let regs = vm.lapic();
    assert_eq!(
        u32::from_le_bytes(regs[0x80..0x84].try_into().unwrap()),
        0x50
    );
    // kvm_run.cr8 reports it (TPR >> 4).
    assert_eq!(vm.u64_at(16), 5);
}

#[test]
fn vcpu_setup_programs_the_vmcs_and_teardown_frees_the_vpid() {
    let vm = Vm::new(false, false);
    let h = host(&vm.d);
    {
        let m = h.vmcs.lock().unwrap();
        assert_eq!(m.len(), 1, "one VMCS region");
        let (pa, v) = m.iter().next().unwrap();
        let v = v.lock().unwrap();
        assert_eq!(v.current, None, "VMCLEARed after setup");
        // vmx_vcpu_setup: VPID 1, HOST_RIP from the host, EPTP WB/4-level.
        assert_eq!(v.get(::x86::vmx::vmcs::control::VPID), Some(1));
        assert_eq!(
            v.get(::x86::vmx::vmcs::host::RIP),
            Some(0xffff_ffff_fb80_1000)
        );
        assert_eq!(
            v.get(::x86::vmx::vmcs::control::EPTP_FULL).unwrap() & 0x7f,
            0x1e
        );
        // The region carries the revision id.
        let page = h.pages.lock().unwrap()[pa] as *const u32;
        // SAFETY: the region lives in the open VCPU.
        assert_eq!(unsafe { page.read() }, 4);
    }
    // VCPUs live as long as their VM: close both descriptors.
    vm.d.close(vm.fd).unwrap();
    assert!(h.freed_vpids.lock().unwrap().is_empty());
    vm.d.close(vm.vmfd).unwrap();
    assert_eq!(*h.freed_vpids.lock().unwrap(), vec![1]);
}

/// A two-byte string I/O exit: qualification bit 4, REP bit 5.
fn string_io(port: u16, size: u64, input: bool, rep: bool) -> Exit {
    let qual = io_qual(port, size, input) | (1 << 4) | (u64::from(rep) << 5);
    Exit::new(ExitReason::IoInstruction, 2, qual)
}

#[test]
fn rep_outsb_to_user_space_is_one_exit_with_every_byte() {
    let mut vm = Vm::protected(false, false);
    vm.p.write(RAM + 0x3000, b"hello");
    // rep outsb
    vm.code(&[0xf3, 0x6e], |r| {
        r.rdx = 0x3f8;
        r.rsi = 0x3000;
        r.rcx = 5;
    });
    vm.exits(vec![string_io(0x3f8, 1, false, true), hlt()]);
    assert_eq!(
        vm.run_to_io(),
        (KVM_EXIT_IO_OUT, 1, 0x3f8, 5),
        "direction, size, port, count"
    );
    assert_eq!(vm.u64_at(40), 4096);
    assert_eq!(&vm.run[4096..4101], b"hello");
    let r = vm.regs();
    assert_eq!((r.rip, r.rsi, r.rcx), (0x1002, 0x3005, 0));
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    assert_eq!(vm.entries()[1].rip, 0x1002);
}

#[test]
fn insw_from_user_space_lands_in_guest_memory() {
    let mut vm = Vm::protected(false, false);
    // insw
    vm.code(&[0x66, 0x6d], |r| {
        r.rdx = 0x1f0;
        r.rdi = 0x4000;
    });
    vm.exits(vec![
        string_io(0x1f0, 2, true, false),
        // The CPU re-executes the INSW once user space answered.
        string_io(0x1f0, 2, true, false),
        hlt(),
    ]);
    assert_eq!(
        vm.run_to_io(),
        (KVM_EXIT_IO_IN, 2, 0x1f0, 1),
        "direction, size, port, count"
    );
    assert_eq!(vm.regs().rip, 0x1000, "not done yet");
    vm.run[4096..4098].copy_from_slice(&0xbeefu16.to_le_bytes());
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    assert_eq!(vm.p.read(RAM + 0x4000, 2), vec![0xef, 0xbe]);
    let e = vm.entries();
    assert_eq!(e.len(), 3);
    assert_eq!(e[2].rip, 0x1002);
    let r = vm.regs();
    assert_eq!(r.rdi, 0x4002);
}

#[test]
fn kvm_set_signal_mask_applies_around_kvm_run() {
    let mut vm = Vm::new(false, false);
    // struct kvm_signal_mask { len = 16; sigset[16] }.
    let mut arg = 16u32.to_le_bytes().to_vec();
    arg.extend_from_slice(&[0x5a; 16]);
    vm.p.write(BUF, &arg);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetSignalMask, BUF, &vm.p), Ok(0));
    vm.exits(vec![Exit::new(ExitReason::TripleFault, 0, 0)]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(
        script(&vm.d).sigmasks,
        vec![(true, [0x5a; 16]), (false, [0xee; 16])]
    );
}

#[test]
fn irq_line_kicks_the_vms_vcpus() {
    let vm = Vm::new(true, false);
    vm.p.put(
        BUF,
        &kvm_irq_level {
            u: kvm_irq_level_u { irq: 4 },
            level: 1,
        },
    );
    assert_eq!(ioctl(&vm.d, vm.vmfd, Ioctl::IrqLine, BUF, &vm.p), Ok(0));
    assert_eq!(script(&vm.d).kicks, vec![(0, 0)]);
}

/// An IPI one VCPU sends through its LAPIC kicks the VCPU it reached
/// (`__apic_accept_irq` → `kvm_vcpu_kick`): a halted AP sleeping in
/// `kvm_vcpu_block` would otherwise never see its INIT, SIPI or NMI.
#[test]
fn an_ipi_kicks_the_vcpu_it_reaches_and_not_the_sender() {
    let mut vm = Vm::new(true, false);
    let fd1 = open(&vm.d);
    assert_eq!(ioctl(&vm.d, fd1, Ioctl::Clone, vm.vmfd.0, &vm.p), Ok(0));
    assert_eq!(
        ioctl(&vm.d, fd1, Ioctl::CreateVcpu, 1, &vm.p),
        Ok(1),
        "KVM_CREATE_VCPU returns the VCPU id"
    );
    vm.protected_mode(0x1000);
    // ICR high = destination APIC ID 1, then ICR low = NMI, physical.
    // mov [ebx],eax; mov [ecx],edx
    vm.code(&[0x89, 0x03, 0x89, 0x11], |r| {
        r.rbx = 0xfee0_0310;
        r.rax = 1 << 24;
        r.rcx = 0xfee0_0300;
        r.rdx = 0x0000_4400; // assert, delivery mode NMI
    });
    vm.exits(vec![
        Exit::ept(0xfee0_0310, 2),
        Exit::ept(0xfee0_0300, 2),
        hlt(),
    ]);
    script(&vm.d).kicks.clear();
    let _ = vm.run();
    let kicks = script(&vm.d).kicks.clone();
    assert!(kicks.contains(&(0, 1)), "VCPU 1 not kicked: {kicks:?}");
    assert!(
        !kicks.contains(&(0, 0)),
        "the sender kicked itself: {kicks:?}"
    );
    // VCPU 1 takes the NMI at its next entry (KVM_GET_VCPU_EVENTS).
    assert_eq!(ioctl(&vm.d, fd1, Ioctl::GetVcpuEvents, BUF, &vm.p), Ok(0));
    let ev: kvm_vcpu_events = vm.p.get(BUF);
    assert_eq!(ev.nmi.pending, 1);
}

/// CMPSB with both operands in MMIO reads twice: each read goes to user
/// space in turn and the re-executed instruction finds the earlier answer
/// (kvm-unit-tests' emulator.flat `repe cmpsb` on pc-testdev's iomem
/// looped forever when only the last answer was kept).
#[test]
fn an_instruction_reading_mmio_twice_completes_after_two_answers() {
    let mut vm = Vm::protected(false, false);
    // cmpsb [esi], es:[edi]
    vm.code(&[0xa6], |r| {
        r.rsi = 0xd000_0000;
        r.rdi = 0xd000_0010;
    });
    vm.exits(vec![Exit::ept(0xd000_0000, 1), hlt()]);
    let mut reads = Vec::new();
    for answer in [0x42u8, 0x42] {
        let (addr, _, is_write) = vm.run_to_mmio();
        assert_eq!(is_write, 0, "a read");
        reads.push(addr);
        vm.answer_mmio(&[answer]);
    }
    assert_eq!(reads, vec![0xd000_0000, 0xd000_0010]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    let last = e.last().unwrap();
    assert_eq!(last.rip, 0x1001, "CMPSB completed");
    assert_eq!((last.regs.rsi, last.regs.rdi), (0xd000_0001, 0xd000_0011));
    assert_ne!(vm.regs().rflags & 0x40, 0, "equal bytes: ZF set");
}

/// WRMSR IA32_APIC_BASE with an address bit at or above MAXPHYADDR (36
/// without CPUID leaf 80000008H) is #GP (SDM vol. 3 §11.4.4; apic.flat's
/// "apicbase: reserved physaddr bits"); below it the LAPIC takes it.
#[test]
fn apic_base_above_maxphyaddr_is_gp() {
    let mut vm = Vm::protected(true, false);
    vm.exits(vec![
        Exit::new(ExitReason::MsrWrite, 2, 0).with(|r, _| {
            r.rcx = 0x1b;
            r.rax = 0xfee0_0900;
            r.rdx = 1 << (36 - 32);
        }),
        Exit::new(ExitReason::MsrWrite, 2, 0).with(|r, _| {
            r.rcx = 0x1b;
            r.rax = 0xfee0_0900;
            r.rdx = 0;
        }),
        hlt(),
    ]);
    let _ = vm.run(); // ends in HLT (blocks: EINTR from the fake)
    let e = vm.entries();
    assert_eq!(e[1].injected, 0x8000_0b0d, "#GP(0)");
    assert_eq!(e[1].rip, 0x1000, "RIP not advanced");
    assert_eq!(e[2].injected & (1 << 31), 0, "the valid base is accepted");
    assert_eq!(e[2].rip, 0x1002);
}

/// SSE moves to and from MMIO (kvm-unit-tests' emulator.flat test_sse on
/// pc-testdev's iomem): the XMM register comes from the guest's FXSAVE
/// image, and the 16 bytes cross to user space as two 8-byte
/// KVM_EXIT_MMIO fragments, the second before the guest runs again.
#[test]
fn sse_moves_to_and_from_mmio_go_out_in_two_fragments() {
    let mut vm = Vm::protected(false, false);
    vm.edit_sregs(|s| s.cr4 |= 0x200); // OSFXSR
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetFpu, BUF, &vm.p), Ok(0));
    let mut fpu: kvm_fpu = vm.p.get(BUF);
    let pattern: [u8; 16] = core::array::from_fn(|i| 0x10 + i as u8);
    fpu.xmm[1] = pattern;
    vm.p.put(BUF, &fpu);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetFpu, BUF, &vm.p), Ok(0));
    // movdqu [ebx], xmm1 ; movdqu xmm2, [ebx]
    vm.code(&[0xf3, 0x0f, 0x7f, 0x0b, 0xf3, 0x0f, 0x6f, 0x13], |r| {
        r.rbx = 0xd000_0000
    });
    vm.exits(vec![
        Exit::ept(0xd000_0000, 2),
        Exit::ept(0xd000_0000, 1),
        hlt(),
    ]);
    // The store: two write fragments, low half first.
    for (addr, half) in [(0xd000_0000u64, 0..8), (0xd000_0008, 8..16)] {
        assert_eq!(vm.run_to_mmio(), (addr, 8, 1));
        assert_eq!(&vm.run[40..48], &pattern[half]);
    }
    assert_eq!(
        vm.entries().len(),
        1,
        "the guest did not run between fragments"
    );
    // The load: two read fragments, answered in turn.
    let answer: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    for (addr, half) in [(0xd000_0000u64, 0..8), (0xd000_0008, 8..16)] {
        assert_eq!(vm.run_to_mmio(), (addr, 8, 0));
        vm.answer_mmio(&answer[half]);
    }
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    assert_eq!(vm.entries().last().unwrap().rip, 0x1008);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetFpu, BUF, &vm.p), Ok(0));
    let fpu: kvm_fpu = vm.p.get(BUF);
    assert_eq!(fpu.xmm[2], answer, "xmm2 loaded from the two answers");
    assert_eq!(fpu.xmm[1], pattern, "xmm1 unchanged");
}

/// What must happen on one CPU does (kvm.c `vcpu_put`, `kvm_put_guest_fpu`):
/// the VMCLEAR and the guest-FPU save run with preemption disabled, and
/// the disables and enables balance over a KVM_RUN.
#[test]
fn vmcs_put_and_fpu_save_run_with_preemption_disabled() {
    let mut vm = Vm::protected(false, false);
    vm.exits(vec![hlt()]);
    let _ = vm.run();
    let s = script(&vm.d);
    assert!(s.fpu_stops > 0, "the guest FPU was loaded and saved");
    assert_eq!(s.preemptible_calls, Vec::<&str>::new());
    assert_eq!(s.preempt_depth, 0, "balanced");
}

/// An AP that received its SIPI starts with a reset LAPIC (kvm_x86.c
/// `__vcpu_run`: `kvm_lapic_reset` before `kvm_arch_vcpu_reset`): what the
/// guest left there (here a TPR) is gone.
#[test]
fn sipi_resets_the_lapic() {
    let mut vm = Vm::new(true, false);
    vm.edit_lapic(|regs| regs[0x80] = 0x50); // TPR
    assert_eq!(vm.lapic()[0x80], 0x50);
    vm.p.put(BUF, &kvm_mp_state { mp_state: 4 }); // SIPI_RECEIVED
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetMpState, BUF, &vm.p), Ok(0));
    vm.exits(vec![hlt()]);
    let _ = vm.run();
    assert_eq!(vm.lapic()[0x80], 0, "TPR back to its reset value");
}

/// KVM_GET_VCPU_EVENTS sees what the run loop left (an exception it was
/// delivering when the exit came: IDT-vectoring information), and
/// KVM_SET_VCPU_EVENTS' state is injected at the next entry: the events
/// survive a save/restore through user space (QEMU's migration path).
#[test]
fn vcpu_events_flow_both_ways() {
    let mut vm = Vm::protected(false, false);
    // A host interrupt while delivering #PF (error code 6): the event is
    // requeued, and a signal ends KVM_RUN before it is re-injected.
    vm.exits(vec![
        Exit::new(ExitReason::ExternalInterrupt, 0, 0).during_delivery(0x8000_0b0e, 6),
    ]);
    script(&vm.d).signals.extend([false, true]);
    assert_eq!(vm.run(), Err(Errno::EINTR));
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetVcpuEvents, BUF, &vm.p), Ok(0));
    let ev: kvm_vcpu_events = vm.p.get(BUF);
    assert_eq!(
        (
            ev.exception.injected,
            ev.exception.nr,
            ev.exception.has_error_code,
            ev.exception.error_code
        ),
        (1, 14, 1, 6),
        "the #PF being delivered"
    );
    // User space replaces it with an external interrupt 0x31.
    let mut ev2 = ev;
    ev2.exception.injected = 0;
    ev2.interrupt.injected = 1;
    ev2.interrupt.nr = 0x31;
    vm.p.put(BUF, &ev2);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetVcpuEvents, BUF, &vm.p), Ok(0));
    vm.exits(vec![hlt()]);
    let _ = vm.run();
    let last = vm.entries().last().unwrap().clone();
    assert_eq!(
        last.injected, 0x8000_0031,
        "external interrupt 0x31 injected"
    );
}

/// LTR with its selector in MMIO (kvm-unit-tests' emulator.flat
/// test_ltr): user space answers the selector, the emulator reads the TSS
/// descriptor from the guest's GDT, marks it busy and TR is loaded.
#[test]
fn ltr_from_mmio_loads_tr_and_marks_the_tss_busy() {
    let mut vm = Vm::protected(false, false);
    // GDT at 0x2000: entry 3 (0x18) an available 32-bit TSS at 0x3000, limit 0x67.
    let tss: [u8; 8] = [0x67, 0x00, 0x00, 0x30, 0x00, 0x89, 0x00, 0x00];
    vm.gdt(0x2000, 0x27, &[(0x18, tss)]);
    vm.code(&[0x0f, 0x00, 0x1b], |r| r.rbx = 0xd000_0000); // ltr [ebx]
    vm.exits(vec![Exit::ept(0xd000_0000, 1), hlt()]);
    let (addr, len, _) = vm.run_to_mmio();
    assert_eq!((addr, len), (0xd000_0000, 2));
    vm.answer_mmio(&0x18u16.to_le_bytes());
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let s = vm.sregs();
    assert_eq!(
        (s.tr.selector, s.tr.base, s.tr.limit, s.tr.r#type),
        (0x18, 0x3000, 0x67, 11)
    );
    let gdt = vm.p.read(RAM + 0x2000 + 0x18, 8);
    assert_eq!(gdt[5], 0x8b, "descriptor marked busy");
}

/// A store that crosses from one MMIO page into another goes to user
/// space as two KVM_EXIT_MMIO fragments, one per page, the guest not
/// running in between (emulator.flat's "cross-page mmio write").
#[test]
fn a_store_crossing_mmio_pages_goes_out_in_two_fragments() {
    let mut vm = Vm::protected(false, false);
    // mov [ebx], ax
    vm.code(&[0x66, 0x89, 0x03], |r| {
        r.rbx = 0xd000_0fff;
        r.rax = 0x88aa;
    });
    vm.exits(vec![Exit::ept(0xd000_0fff, 2), hlt()]);
    for (addr, byte) in [(0xd000_0fffu64, 0xaau8), (0xd000_1000, 0x88)] {
        assert_eq!(vm.run_to_mmio(), (addr, 1, 1));
        assert_eq!(vm.run[40], byte);
    }
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    assert_eq!(vm.entries().len(), 2);
}

/// MOV to CR4 of a bit whose feature the guest's CPUID does not offer is
/// #GP (SDM vol. 3 §2.5; kvm-unit-tests' pcid-*, xsave); offered, it is
/// taken.
#[test]
fn cr4_bits_follow_the_guests_cpuid() {
    let mut vm = Vm::protected(false, false);
    const PCIDE: u64 = 1 << 17;
    // mov cr4, rax (CR 4, MOV to CR, GPR 0).
    let mov_cr4 = || Exit::new(ExitReason::CrAccess, 3, 4).with(|r, _| r.rax = PCIDE);
    vm.exits(vec![mov_cr4(), hlt()]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e[1].injected, 0x8000_0b0d, "no PCID in CPUID: #GP(0)");
    assert_eq!(vm.sregs().cr4 & PCIDE, 0);
    // Offer PCID (CPUID.1:ECX[17]).
    let leaf1 = kvm_cpuid_entry2 {
        function: 1,
        index: 0,
        flags: 0,
        eax: 0,
        ebx: 0,
        ecx: 1 << 17,
        edx: 0,
        padding: [0; 3],
    };
    vm.set_cpuid(&[leaf1]);
    vm.exits(vec![mov_cr4(), hlt()]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e.last().unwrap().injected & (1 << 31), 0, "taken");
    assert_ne!(vm.sregs().cr4 & PCIDE, 0);
}

/// The Hyper-V hypercall page (kvm_x86.c `set_msr_hyperv_pw`,
/// `get_msr_hyperv_pw`, `kvm_hv_hypercall_enabled`): HV_X64_MSR_HYPERCALL
/// is ignored while HV_X64_MSR_GUEST_OS_ID is 0; enabling it (bit 0, the
/// page's GPA in bits 63:12) writes the page's code, VMCALL then RET, and
/// VMCALL becomes a Hyper-V hypercall (result in EDX:EAX here, 32-bit
/// mode); a page outside guest RAM is #GP; clearing the guest OS id
/// disables the page again.
#[test]
fn hyperv_hypercall_msr_installs_the_hypercall_page() {
    const GUEST_OS_ID: u64 = 0x4000_0000;
    const HYPERCALL: u64 = 0x4000_0001;
    const OS_ID: u64 = 0x0001_0400_0000_1234;
    // SDM vol. 2: VMCALL is 0F 01 C1, near RET is C3.
    const PAGE_CODE: [u8; 4] = [0x0f, 0x01, 0xc1, 0xc3];
    // The C's -ENOSYS for an unknown KVM hypercall is KVM's -1000.
    const KVM_ENOSYS: u64 = 1000u64.wrapping_neg();
    let wrmsr = |msr: u64, data: u64| {
        Exit::new(ExitReason::MsrWrite, 2, 0).with(move |r, _| {
            r.rcx = msr;
            r.rax = data & 0xffff_ffff;
            r.rdx = data >> 32;
        })
    };
    let rdmsr = |msr: u64| Exit::new(ExitReason::MsrRead, 2, 0).with(move |r, _| r.rcx = msr);
    // Call code 0x99 (unknown to both interfaces) in EAX, EDX 0.
    let vmcall = || {
        Exit::new(ExitReason::Vmcall, 3, 0).with(|r, _| {
            r.rax = 0x99;
            r.rdx = 0;
        })
    };
    let mut vm = Vm::protected(false, false);
    vm.p.write(RAM + 0x5000, &[0xaa; 8]);

    // Without a guest OS id: the enable is ignored (no #GP), VMCALL stays
    // a KVM hypercall.
    vm.exits(vec![
        wrmsr(HYPERCALL, 0x5001),
        rdmsr(HYPERCALL),
        vmcall(),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e[1].injected & (1 << 31), 0, "no #GP");
    assert_eq!(e[1].rip, e[0].rip + 2);
    assert_eq!((e[2].regs.rax, e[2].regs.rdx), (0, 0), "still 0");
    assert_eq!(e[3].regs.rax, KVM_ENOSYS, "a KVM hypercall");
    assert_eq!(vm.p.read(RAM + 0x5000, 8), [0xaa; 8], "no page written");

    // With one: the page is written and VMCALL is a Hyper-V hypercall.
    vm.exits(vec![
        wrmsr(GUEST_OS_ID, OS_ID),
        wrmsr(HYPERCALL, 0x5001),
        rdmsr(HYPERCALL),
        rdmsr(GUEST_OS_ID),
        vmcall(),
        // Page 0x200 is above the 1 MiB of RAM: #GP, nothing changes.
        wrmsr(HYPERCALL, 0x20_0001),
        rdmsr(HYPERCALL),
        // A zero guest OS id clears the enable bit.
        wrmsr(GUEST_OS_ID, 0),
        rdmsr(HYPERCALL),
        vmcall(),
        hlt(),
    ]);
    let n = vm.entries().len();
    assert_eq!(vm.run(), Ok(0));
    let e = &vm.entries()[n..];
    assert_eq!(e[1].injected & (1 << 31), 0);
    assert_eq!(e[2].injected & (1 << 31), 0, "enabled without #GP");
    let mut page = PAGE_CODE.to_vec();
    page.extend([0xaa; 4]);
    assert_eq!(
        vm.p.read(RAM + 0x5000, 8),
        page,
        "VMCALL; RET, nothing more"
    );
    assert_eq!((e[3].regs.rax, e[3].regs.rdx), (0x5001, 0));
    assert_eq!((e[4].regs.rax, e[4].regs.rdx), (0x1234, 0x0001_0400));
    assert_eq!(
        (e[5].regs.rax, e[5].regs.rdx),
        (2, 0),
        "HV_STATUS_INVALID_HYPERCALL_CODE in EDX:EAX"
    );
    assert_eq!(e[5].rip, e[4].rip + 3);
    assert_eq!(e[6].injected, 0x8000_0b0d, "#GP(0)");
    assert_eq!(e[6].rip, e[5].rip, "RIP on the WRMSR");
    assert_eq!((e[7].regs.rax, e[7].regs.rdx), (0x5001, 0), "unchanged");
    assert_eq!((e[9].regs.rax, e[9].regs.rdx), (0x5000, 0), "disabled");
    assert_eq!(e[10].regs.rax, KVM_ENOSYS, "a KVM hypercall again");
    // `hypercalls` counts the two KVM hypercalls only (the C's
    // `kvm_emulate_hypercall` hands Hyper-V calls over before counting).
    assert_eq!(vcpu_stat(&vm.d, "hypercalls"), 2);

    // KVM_GET_MSRS reads the same state.
    let mut msrs = kvm_msrs {
        nmsrs: 2,
        pad: 0,
        entries: [kvm_msr_entry::default(); 100],
    };
    msrs.entries[0].index = GUEST_OS_ID as u32;
    msrs.entries[1].index = HYPERCALL as u32;
    vm.p.put(BUF, &msrs);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetMsrs, BUF, &vm.p), Ok(2));
    let back: kvm_msrs = vm.p.get(BUF);
    assert_eq!((back.entries[0].data, back.entries[1].data), (0, 0x5000));
}

/// A far JMP with its pointer in MMIO (kvm-unit-tests' emulator.flat
/// test_ljmp, 32-bit form): user space answers the offset, then the
/// selector; the emulator checks the GDT descriptor, sets its accessed
/// bit, and CS and EIP are loaded when the instruction completes.
#[test]
fn far_jmp_through_mmio_loads_cs() {
    let mut vm = Vm::protected(false, false);
    // GDT at 0x2000: entry 3 (0x18) a flat 32-bit code segment, DPL 0,
    // execute/read, not yet accessed (SDM vol. 3 figure 3-8).
    let code: [u8; 8] = [0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00];
    vm.gdt(0x2000, 0x27, &[(0x18, code)]);
    vm.code(&[0xff, 0x2b], |r| r.rbx = 0xd000_0000); // jmp far [ebx]
    vm.exits(vec![Exit::ept(0xd000_0000, 1), hlt()]);
    for (addr, len, answer) in [(0xd000_0000u64, 4, 0x3000u32), (0xd000_0004, 2, 0x18)] {
        assert_eq!(vm.run_to_mmio(), (addr, len, 0));
        vm.answer_mmio(&answer.to_le_bytes());
    }
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    assert_eq!(vm.entries().last().unwrap().rip, 0x3000);
    let s = vm.sregs();
    assert_eq!(
        (
            s.cs.selector,
            s.cs.base,
            s.cs.limit,
            s.cs.r#type,
            s.cs.db,
            s.cs.g
        ),
        (0x18, 0, 0xffff_ffff, 0xb, 1, 1)
    );
    assert_eq!(
        vm.p.read(RAM + 0x2000 + 0x18 + 5, 1),
        [0x9b],
        "accessed bit"
    );
    // A descriptor-table write is not an emulated data write: the C wrote
    // it with `kvm_write_guest_virt`, never `kvm_mmu_pte_write`.
    assert_eq!(vm_stat(&vm.d, "mmu-pte-write"), 0);
}

/// A far JMP to a data segment: #GP(selector) is injected, CS and RIP stay.
#[test]
fn far_jmp_to_a_data_segment_is_gp() {
    let mut vm = Vm::protected(false, false);
    let data: [u8; 8] = [0xff, 0xff, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00];
    vm.gdt(0x2000, 0x27, &[(0x20, data)]);
    // jmp far [0x3000]: the pointer in RAM.
    vm.p.write(RAM + 0x1000, &[0xff, 0x2d, 0x00, 0x30, 0x00, 0x00]);
    vm.p.write(RAM + 0x3000, &[0x00, 0x40, 0x00, 0x00, 0x20, 0x00]);
    vm.exits(vec![Exit::ept(0xd000_0000, 1), hlt()]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e[1].injected, 0x8000_0b0d, "#GP with an error code");
    assert_eq!(e[1].error_code, 0x20);
    assert_eq!(e[1].rip, 0x1000);
    assert_eq!(vm.sregs().cs.selector, 0x8);
}

/// kvm_emulate.c's XADD records `KVM_RINGBUF_TAG_EMUXADD` (12) with the
/// destination's address in the VCPU's event ring, once per instruction.
#[test]
fn xadd_through_mmio_records_the_ring() {
    let mut vm = Vm::protected(false, false);
    // xadd [ebx], eax
    vm.code(&[0x0f, 0xc1, 0x03], |r| {
        r.rbx = 0xd000_0010;
        r.rax = 5;
    });
    vm.exits(vec![Exit::ept(0xd000_0010, 2), hlt()]);
    assert_eq!(vm.run_to_mmio().2, 0, "the read");
    vm.answer_mmio(&7u32.to_le_bytes());
    assert_eq!(vm.run_to_mmio().2, 1, "the write");
    assert_eq!(vm.u32_at(40), 12);
    let xadds: Vec<u64> = ring_entries(&vm.d)
        .iter()
        .filter(|e| e.tag == 12)
        .map(|e| e.payload)
        .collect();
    assert_eq!(xadds, vec![0xd000_0010]);
    assert_eq!(vm.regs().rax, 7);
}

/// The per-VCPU Hyper-V MSRs of `set_msr_hyperv`/`get_msr_hyperv`
/// (KVM_CAP_HYPERV_VAPIC): the synthetic APIC MSRs are the LAPIC's
/// registers (TPR at 0x80, ICR at 0x300/0x310: Hyper-V TLFS "Synthetic
/// APIC MSRs"), VP_INDEX is the VCPU's index, and enabling the APIC
/// assist page zeroes it.
#[test]
fn hyperv_vapic_msrs_reach_the_lapic() {
    fn msrs(entries: &[(u32, u64)]) -> kvm_msrs {
        let mut m = kvm_msrs {
            nmsrs: entries.len() as u32,
            pad: 0,
            entries: [kvm_msr_entry::default(); 100],
        };
        for (e, (index, data)) in m.entries.iter_mut().zip(entries) {
            *e = kvm_msr_entry {
                index: *index,
                reserved: 0,
                data: *data,
            };
        }
        m
    }
    let set = |vm: &Vm, e: &[(u32, u64)]| {
        vm.p.put(BUF, &msrs(e));
        ioctl(&vm.d, vm.fd, Ioctl::SetMsrs, BUF, &vm.p)
    };
    let get = |vm: &Vm, e: &[u32]| {
        let list: Vec<(u32, u64)> = e.iter().map(|i| (*i, 0)).collect();
        vm.p.put(BUF, &msrs(&list));
        let n = ioctl(&vm.d, vm.fd, Ioctl::GetMsrs, BUF, &vm.p);
        let back: kvm_msrs = vm.p.get(BUF);
        (n, back.entries.map(|e| e.data))
    };
    // No in-kernel LAPIC: the synthetic APIC MSRs #GP (SET_MSRS stops).
    let vm = Vm::new(false, false);
    assert_eq!(
        ioctl(&vm.d, vm.vmfd, Ioctl::CheckExtension, 45, &vm.p),
        Ok(1),
        "KVM_CAP_HYPERV_VAPIC"
    );
    assert_eq!(set(&vm, &[(0x4000_0072, 0x20)]), Ok(0));

    let vm = Vm::new(true, false);
    // TPR 0x20; ICR: a fixed IPI, vector 0x40, destination 0xff.
    assert_eq!(
        set(
            &vm,
            &[(0x4000_0072, 0x20), (0x4000_0071, 0xff00_0000_0000_4040)]
        ),
        Ok(2)
    );
    let (n, d) = get(&vm, &[0x4000_0072, 0x4000_0071, 0x4000_0002, 0x4000_0070]);
    assert_eq!(n, Ok(3), "EOI is write-only: the read stops there");
    assert_eq!(d[0], 0x20);
    assert_eq!(
        d[1] & 0xffff_ffff_0000_0fff,
        0xff00_0000_0000_0040,
        "ICR2:ICR, vector 0x40"
    );
    assert_eq!(d[2], 0, "VP_INDEX of VCPU 0");
    // The LAPIC page agrees (KVM_GET_LAPIC: TPR at 0x80, ICR2 at 0x310).
    let page = vm.lapic();
    let reg = |o: usize| u32::from_le_bytes(page[o..o + 4].try_into().unwrap());
    assert_eq!(reg(0x80), 0x20);
    assert_eq!(reg(0x310), 0xff00_0000);

    // The assist page: zeroed when enabled; the MSR is write-only.
    vm.p.write(RAM + 0x5000, &[0xaa; 4096]);
    assert_eq!(
        set(&vm, &[(0x4000_0073, 0x5000)]),
        Ok(1),
        "disabled: stored only"
    );
    assert_eq!(vm.p.read(RAM + 0x5000, 1), [0xaa]);
    assert_eq!(set(&vm, &[(0x4000_0073, 0x5001)]), Ok(1));
    assert!(vm.p.read(RAM + 0x5000, 4096).iter().all(|b| *b == 0));
    assert_eq!(
        set(&vm, &[(0x4000_0073, 0x20_0001)]),
        Ok(0),
        "outside RAM: #GP"
    );
    assert_eq!(get(&vm, &[0x4000_0073]).0, Ok(0));
}

/// A guest with two 32-bit tasks for the task-switch exits: GDT at 0x2000
/// with flat code (0x08) and data (0x10), the running task's busy TSS
/// (0x18, at 0x3000) in TR and an available one (0x20, at 0x3100, limit
/// `new_limit`) that starts at EIP 0x5000 with ESP 0x8000, EAX 0x1234 and
/// EFLAGS 0x2 (SDM vol. 3 figure 7-2 offsets).
fn two_tasks(new_limit: u8) -> Vm {
    let vm = Vm::protected(false, false);
    let code: [u8; 8] = [0xff, 0xff, 0x00, 0x00, 0x00, 0x9b, 0xcf, 0x00];
    let data: [u8; 8] = [0xff, 0xff, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00];
    let old_tss: [u8; 8] = [0x67, 0x00, 0x00, 0x30, 0x00, 0x8b, 0x00, 0x00];
    let new_tss: [u8; 8] = [new_limit, 0x00, 0x00, 0x31, 0x00, 0x89, 0x00, 0x00];
    vm.descriptors(
        0x2000,
        &[(0x08, code), (0x10, data), (0x18, old_tss), (0x20, new_tss)],
    );
    let mut t = [0u8; 0x68];
    let mut put = |off: usize, v: u32| t[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(0x20, 0x5000); // EIP
    put(0x24, 0x2); // EFLAGS
    put(0x28, 0x1234); // EAX
    put(0x38, 0x8000); // ESP
    for (off, sel) in [(0x48, 0x10), (0x4c, 0x08), (0x50, 0x10), (0x54, 0x10)] {
        put(off, sel); // ES, CS, SS, DS
    }
    vm.p.write(RAM + 0x3100, &t);
    vm.edit_sregs(|s| {
        s.gdt.base = 0x2000;
        s.gdt.limit = 0x27;
        s.tr = kvm_segment {
            base: 0x3000,
            limit: 0x67,
            selector: 0x18,
            r#type: 11,
            present: 1,
            s: 0,
            ..s.cs
        };
    });
    vm.edit_regs(|r| r.rax = 0xaaaa);
    vm
}

/// `lcall $0x20, $0` (7 bytes) to an available 32-bit TSS: a task-switch
/// exit with source CALL (SDM vol. 3 table 28-2: bits 15:0 the selector,
/// 31:30 = 0). The driver saves the old task past the instruction, links
/// and nests the new one, marks it busy, loads TR, CR0.TS and the new
/// registers, and clears DR7's local enables.
#[test]
fn call_to_a_tss_switches_tasks() {
    use kvm_vmx::Vmcs;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut vm = two_tasks(0x67);
    let dr7 = Arc::new(AtomicU64::new(0));
    let seen = dr7.clone();
    vm.exits(vec![
        Exit::new(ExitReason::TaskSwitch, 7, 0x20).with(|_, v| v.write(guest::DR7, 0x4ff)),
        hlt().with(move |_, v| {
            let ldtr_ar = v.read(guest::LDTR_ACCESS_RIGHTS);
            seen.store(v.read(guest::DR7) | (ldtr_ar << 32), Ordering::Relaxed);
        }),
    ]);
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
    let e = vm.entries();
    assert_eq!(e[1].rip, 0x5000, "the new task runs");
    assert_eq!(e[1].regs.rax, 0x1234);
    assert_eq!(e[1].injected, 0);
    let old = vm.p.read(RAM + 0x3000, 0x68);
    let at = |off: usize| u32::from_le_bytes(old[off..off + 4].try_into().unwrap());
    assert_eq!(at(0x20), 0x1007, "old EIP past the lcall");
    assert_eq!(at(0x24), 0x202, "old EFLAGS");
    assert_eq!(at(0x28), 0xaaaa, "old EAX");
    assert_eq!(at(0x4c) & 0xffff, 0x08, "old CS");
    let new = vm.p.read(RAM + 0x3100, 2);
    assert_eq!(new, [0x18, 0x00], "link to the caller");
    assert_eq!(vm.p.read(RAM + 0x2000 + 0x20 + 5, 1), [0x8b], "new busy");
    assert_eq!(
        vm.p.read(RAM + 0x2000 + 0x18 + 5, 1),
        [0x8b],
        "old busy kept"
    );
    let r = vm.regs();
    assert_eq!((r.rip, r.rsp), (0x5001, 0x8000), "past the new task's HLT");
    assert_eq!(r.rflags, 0x4002, "NT set for a nested task");
    let s = vm.sregs();
    assert_eq!(
        (s.tr.selector, s.tr.base, s.tr.limit, s.tr.r#type),
        (0x20, 0x3100, 0x67, 11)
    );
    assert_eq!(s.cr0 & 8, 8, "CR0.TS");
    assert_eq!(
        (s.cs.selector, s.ss.selector, s.ds.selector),
        (0x08, 0x10, 0x10)
    );
    // What the next entry ran with: a null LDT selector makes LDTR
    // unusable (KVM_GET_SREGS reports an unusable segment as all-zero
    // attributes, as the C's `vmx_get_segment`), and DR7's L0-L3 and LE
    // cleared.
    let seen = dr7.load(Ordering::Relaxed);
    assert_eq!(seen >> 32, 0x1_0000, "LDTR unusable");
    assert_eq!((s.ldt.selector, s.ldt.present), (0, 0));
    assert_eq!(seen & 0xffff_ffff, 0x4aa, "DR7");
}

/// A #GP (error code 0x1234) delivered through a task gate: the exit
/// comes with the IDT-vectoring information (SDM vol. 3 §27.2.4); the
/// driver does not re-inject the #GP, saves the old task at the faulting
/// instruction and pushes the error code on the new task's stack
/// (kvm-unit-tests taskswitch.flat's fault handler pops it).
#[test]
fn exception_through_a_task_gate_pushes_its_error_code() {
    let mut vm = two_tasks(0x67);
    vm.exits(vec![
        Exit::new(ExitReason::TaskSwitch, 0, (3 << 30) | 0x20).during_delivery(0x8000_0b0d, 0x1234),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e[1].injected, 0, "not re-injected");
    assert_eq!(e[1].rip, 0x5000);
    let old = vm.p.read(RAM + 0x3000 + 0x20, 4);
    assert_eq!(old, [0x00, 0x10, 0x00, 0x00], "old EIP at the fault");
    let r = vm.regs();
    assert_eq!(r.rsp, 0x7ffc);
    assert_eq!(vm.p.read(RAM + 0x7ffc, 4), [0x34, 0x12, 0x00, 0x00]);
    assert_eq!(r.rflags & 0x4000, 0x4000);
}

/// A new TSS below the 32-bit minimum limit (67H): #TS(selector) in the
/// old task (SDM vol. 3 §7.2.2), RIP back on the JMP, nothing switched.
#[test]
fn jmp_to_a_short_tss_is_ts() {
    let mut vm = two_tasks(0x66);
    vm.exits(vec![
        Exit::new(ExitReason::TaskSwitch, 7, (2 << 30) | 0x20),
        hlt(),
    ]);
    assert_eq!(vm.run(), Ok(0));
    let e = vm.entries();
    assert_eq!(e[1].injected, 0x8000_0b0a, "#TS with an error code");
    assert_eq!(e[1].error_code, 0x20);
    assert_eq!(e[1].rip, 0x1000);
    let s = vm.sregs();
    assert_eq!(s.tr.selector, 0x18);
    assert_eq!(vm.p.read(RAM + 0x2000 + 0x18 + 5, 1), [0x8b]);
}
