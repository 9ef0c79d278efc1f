//! Issue 9's acceptance, "each counter moves when its event happens in a
//! test VCPU": for every named stat of the `vm` and `vcpu-<vmid>` kstats
//! (inventory §3.1–3.2) that the driver increments, a VCPU driven through
//! the ioctl dispatcher over the scripted VMX CPU (`tests/run_support`)
//! meets the event, and the test asserts that exactly the stats the C
//! driver would have bumped moved, by the amount it would have, and that
//! no other stat moved. The stats are read as `kstat(1M)` reads them: the
//! `kstat_named_t` array the kstat framework was given
//! (`tests/counter_support`).
//!
//! Where the expected movements come from (illumos-kvm, not our code):
//! - every VM exit the run loop handles: `exits` (kvm_x86.c:3477,
//!   `vcpu_enter_guest`), plus the handler's own counter;
//! - every KVM_RUN that enters the guest: one `fpu-reload`
//!   (`kvm_load_guest_fpu`, kvm_x86.c:4537, counted when the guest FPU was
//!   not loaded: it is put back at every `vcpu_put`) and one
//!   `host-state-reload` (`__vmx_load_host_state`, kvm_vmx.c:769, from
//!   `vmx_vcpu_put` after an entry saved the host state); that pair is
//!   [`RUN`] below;
//! - the handlers: `halt-exits` (`kvm_emulate_halt`), `io-exits`
//!   (`handle_io`), `mmio-exits` (`kvm_mmu_page_fault` going to user
//!   space), `insn-emulation`/`inst-emulation-fail` (`emulate_instruction`),
//!   `irq-exits` (`handle_external_interrupt`), `irq-window-exits`,
//!   `nmi-window-exits`, `hypercalls` (`kvm_emulate_hypercall`), `invlpg`
//!   (`kvm_mmu_invlpg`), `pf-fixed` (`__direct_map` installing a mapping),
//!   `irq-injections`/`nmi-injections` (`vmx_inject_irq`/`vmx_inject_nmi`),
//!   `signal-exits` (`__vcpu_run`'s `issig` check);
//! - `halt-wakeup`: the C declared but never counted it; the port counts a
//!   halted VCPU woken in the kernel, as Linux KVM does;
//! - VM: `ept-table-pages` and `lpages` are gauges (EPT table pages and
//!   2 MiB leaves in use; the fake page-table allocator and the guest
//!   layout are the oracles), `remote-tlb-flush` counts INVEPT requests
//!   (`kvm_flush_remote_tlbs`, kvm.c:557), `mmu-pte-write` counts emulated
//!   writes to guest RAM: `emulator_write_phys` (kvm_x86.c:2458) calls
//!   `kvm_mmu_pte_write` after every one, which counts it (kvm_mmu.c:2570)
//!   before it looks for shadow pages of the frame (none under EPT); an
//!   emulated write to MMIO never gets there, nor does a CMPXCHG whose
//!   comparison fails (kvm_emulate.c:2982: no memory write-back).
//!
//! Stats the driver never increments, asserted to exist and stay 0 through
//! every event of this file ([`never_incremented_stats_exist_and_stay_zero`]):
//! - `mmu-pte-updated`, `mmu-pte-zapped`, `mmu-flooded`: the C counted them
//!   in `kvm_mmu_pte_write` (kvm_mmu.c:2570ff), the shadow MMU's trap on
//!   writes to guest page tables, for the shadow pages of the written
//!   frame. With EPT there are none to update or zap.
//! - `mmu-cache-miss` (`kvm_mmu_get_page`, kvm_mmu.c:1212: a new shadow
//!   page; with EPT the C counted each new EPT table page there; here
//!   `ept-table-pages` reports table memory instead), `mmu-recycled`
//!   (`__kvm_mmu_free_some_pages`: the C's page-table cache limit; the
//!   port's EPT tables have no such cache), `mmu-unsync-page` (unsync
//!   shadow pages: shadow paging only).

mod counter_support;
mod run_support;
mod vm_support;

use ::x86::vmx::vmcs::guest;
use counter_support::*;
use kvm_ioctl::Errno;
use kvm_ioctl::abi::*;
use kvm_kstat::DataType;
use kvm_vmx::exit_reason::ExitReason;
use run_support::{Exit, ioctl, script};

/// 1 MiB of guest RAM.
const MIB: u64 = 1 << 20;

/// What every KVM_RUN that enters the guest moves (see the module
/// documentation): one guest-FPU load, one host-state reload.
const RUN: [(&str, i64); 2] = [("vcpu:fpu-reload", 1), ("vcpu:host-state-reload", 1)];

/// `RUN` plus `more`.
fn run_and(more: &[(&'static str, i64)]) -> Vec<(&'static str, i64)> {
    let mut v: Vec<(&str, i64)> = RUN.to_vec();
    for &(k, n) in more {
        match v.iter_mut().find(|(name, _)| *name == k) {
            Some(e) => e.1 += n,
            None => v.push((k, n)),
        }
    }
    v
}

/// A VM with 1 MiB of RAM, the VCPU in flat protected mode at 0x1000.
fn vm(irqchip: bool) -> Vm {
    let vm = Vm::new(irqchip, MIB);
    vm.protected_mode(0x1000);
    vm
}

/// KVM_GET_REGS, `edit`, KVM_SET_REGS.
fn edit_regs(vm: &Vm, edit: impl FnOnce(&mut kvm_regs)) {
    let mut r = vm.regs();
    edit(&mut r);
    vm.set_regs(&r);
}

/// `code` at GPA 0x1000 (where the VCPU starts) and the registers as
/// `regs` edits them.
fn code(vm: &Vm, code: &[u8], regs: impl FnOnce(&mut kvm_regs)) {
    vm.p.write(RAM + 0x1000, code);
    edit_regs(vm, regs);
}

/// Queue `exits`, KVM_RUN once (it answers `result`), and assert that
/// exactly [`RUN`] plus `more` moved.
#[track_caller]
fn run_moves(
    vm: &mut Vm,
    exits: Vec<Exit>,
    result: Result<i32, Errno>,
    more: &[(&'static str, i64)],
) {
    vm.exits(exits);
    let before = vm.counters();
    assert_eq!(vm.run(), result);
    assert_moved(&before, &vm.counters(), &run_and(more));
}

// ------------------------------------------------------------ VCPU exits

#[test]
fn halt_exits_counts_a_hlt_that_goes_to_user_space() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![Exit::new(ExitReason::Hlt, 1, 0)],
        Ok(0),
        &[("vcpu:exits", 1), ("vcpu:halt-exits", 1)],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_HLT);
}

#[test]
fn io_exits_counts_port_io() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![out_to_user()],
        Ok(0),
        &[("vcpu:exits", 1), ("vcpu:io-exits", 1)],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_IO);
}

#[test]
fn exits_counts_every_exit_of_one_kvm_run() {
    // Three CPUID exits handled in the kernel, then the OUT to user space:
    // one KVM_RUN, four exits.
    let mut vm = vm(false);
    let cpuid = || Exit::new(ExitReason::Cpuid, 2, 0);
    run_moves(
        &mut vm,
        vec![cpuid(), cpuid(), cpuid(), out_to_user()],
        Ok(0),
        &[("vcpu:exits", 4), ("vcpu:io-exits", 1)],
    );
}

#[test]
fn mmio_exits_and_insn_emulation_count_an_mmio_write_for_user_space() {
    let mut vm = vm(false);
    // mov [ebx], eax; no memslot, no in-kernel device at EBX
    code(&vm, &[0x89, 0x03], |r| r.rbx = 0xd000_0000);
    run_moves(
        &mut vm,
        vec![Exit::ept(0xd000_0000, 2)],
        Ok(0),
        &[
            ("vcpu:exits", 1),
            ("vcpu:mmio-exits", 1),
            ("vcpu:insn-emulation", 1),
        ],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_MMIO);
}

#[test]
fn insn_emulation_alone_counts_mmio_the_kernel_completes() {
    // A write to the in-kernel IOAPIC's window (IOREGSEL): emulated, no
    // trip to user space, so no `mmio-exits`.
    let mut vm = vm(true);
    // mov [ebx], eax
    code(&vm, &[0x89, 0x03], |r| {
        r.rbx = 0xfec0_0000;
        r.rax = 0x10;
    });
    run_moves(
        &mut vm,
        vec![Exit::ept(0xfec0_0000, 2), out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:insn-emulation", 1),
            ("vcpu:io-exits", 1),
        ],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_IO);
}

#[test]
fn inst_emulation_fail_counts_an_instruction_the_emulator_cannot_do() {
    // An MMIO access by an instruction the emulator does not implement
    // (`fxsave [ebx]`, `0f ae 03`; the C emulator had no FXSAVE either):
    // `emulate_instruction` fails, KVM_EXIT_INTERNAL_ERROR.
    let mut vm = vm(false);
    code(&vm, &[0x0f, 0xae, 0x03], |r| r.rbx = 0xd000_0000);
    run_moves(
        &mut vm,
        vec![Exit::ept(0xd000_0000, 2)],
        Ok(0),
        &[
            ("vcpu:exits", 1),
            ("vcpu:insn-emulation", 1),
            ("vcpu:inst-emulation-fail", 1),
        ],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_INTERNAL_ERROR);
}

#[test]
fn irq_exits_counts_an_external_interrupt_exit() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![
            Exit::new(ExitReason::ExternalInterrupt, 0, 0),
            out_to_user(),
        ],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:irq-exits", 1),
            ("vcpu:io-exits", 1),
        ],
    );
}

#[test]
fn irq_window_exits_counts_an_interrupt_window_exit() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![Exit::new(ExitReason::PendingInterrupt, 0, 0), out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:irq-window-exits", 1),
            ("vcpu:io-exits", 1),
        ],
    );
}

#[test]
fn nmi_window_exits_counts_an_nmi_window_exit() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![Exit::new(ExitReason::NmiWindow, 0, 0), out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:nmi-window-exits", 1),
            ("vcpu:io-exits", 1),
        ],
    );
}

#[test]
fn hypercalls_counts_a_vmcall() {
    // KVM_HC_VAPIC_POLL_IRQ (1) from CPL 0.
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![
            Exit::new(ExitReason::Vmcall, 3, 0).with(|r, _| r.rax = 1),
            out_to_user(),
        ],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:hypercalls", 1),
            ("vcpu:io-exits", 1),
        ],
    );
}

#[test]
fn invlpg_counts_an_invlpg_exit() {
    let mut vm = vm(false);
    run_moves(
        &mut vm,
        vec![Exit::new(ExitReason::Invlpg, 3, 0x40_1000), out_to_user()],
        Ok(0),
        &[("vcpu:exits", 2), ("vcpu:invlpg", 1), ("vcpu:io-exits", 1)],
    );
}

#[test]
fn signal_exits_counts_a_kvm_run_ended_by_a_signal() {
    // A CPUID exit handled in the kernel; the signal check before the
    // entry finds none, the one after the exit finds one: EINTR.
    let mut vm = vm(false);
    vm.signals(&[false, true]);
    run_moves(
        &mut vm,
        vec![Exit::new(ExitReason::Cpuid, 2, 0)],
        Err(Errno::EINTR),
        &[("vcpu:exits", 1), ("vcpu:signal-exits", 1)],
    );
    assert_eq!(vm.exit_reason(), KVM_EXIT_INTR);
}

// ------------------------------------------------------------ injections

#[test]
fn irq_injections_counts_a_kvm_interrupt_injected_at_entry() {
    let mut vm = vm(false);
    vm.p.put(BUF, &kvm_interrupt { irq: 0x20 });
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::Interrupt, BUF, &vm.p), Ok(0));
    run_moves(
        &mut vm,
        vec![out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 1),
            ("vcpu:io-exits", 1),
            ("vcpu:irq-injections", 1),
        ],
    );
    let entries = script(&vm.d).entries.clone();
    assert_eq!(entries[0].injected, 0x8000_0020, "external interrupt 0x20");
}

#[test]
fn nmi_injections_counts_a_kvm_nmi_injected_at_entry() {
    let mut vm = vm(false);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::Nmi, 0, &vm.p), Ok(0));
    run_moves(
        &mut vm,
        vec![out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 1),
            ("vcpu:io-exits", 1),
            ("vcpu:nmi-injections", 1),
        ],
    );
    let entries = script(&vm.d).entries.clone();
    // NMI: type 2, vector 2, valid.
    assert_eq!(entries[0].injected, 0x8000_0202);
}

#[test]
fn halt_wakeup_counts_a_halted_vcpu_woken_in_the_kernel() {
    let mut vm = vm(true);
    // Software-enable the LAPIC and make vector 0x30 pending in its IRR.
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::GetLapic, BUF, &vm.p), Ok(0));
    let mut regs: Vec<u8> = vm.p.read(BUF, 1024);
    regs[0xf0..0xf4].copy_from_slice(&0x1ffu32.to_le_bytes());
    regs[0x212] |= 1; // IRR bit 48 (0x210 + bit 16)
    vm.p.write(BUF, &regs);
    assert_eq!(ioctl(&vm.d, vm.fd, Ioctl::SetLapic, BUF, &vm.p), Ok(0));
    // IF clear until the HLT, so the interrupt waits for it.
    edit_regs(&vm, |r| r.rflags = 0x2);
    let hlt = Exit::new(ExitReason::Hlt, 1, 0).with(|_, v| {
        v.set_exit_info(guest::RFLAGS, 0x202);
    });
    run_moves(
        &mut vm,
        vec![hlt, out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:halt-exits", 1),
            ("vcpu:halt-wakeup", 1),
            ("vcpu:irq-injections", 1),
            ("vcpu:io-exits", 1),
        ],
    );
    assert_eq!(script(&vm.d).blocks, vec![true], "woken by the LAPIC");
}

// ------------------------------------------------------------ per KVM_RUN

#[test]
fn fpu_and_host_state_reloads_count_once_per_kvm_run_that_enters() {
    let mut vm = vm(false);
    vm.exits(vec![out_to_user(), out_to_user(), out_to_user()]);
    let before = vm.counters();
    for _ in 0..3 {
        assert_eq!(vm.run(), Ok(0));
    }
    assert_moved(
        &before,
        &vm.counters(),
        &[
            ("vcpu:exits", 3),
            ("vcpu:io-exits", 3),
            ("vcpu:fpu-reload", 3),
            ("vcpu:host-state-reload", 3),
        ],
    );
    // The register ioctls load and put the VCPU without entering the
    // guest: no host state was saved, no guest FPU loaded.
    let before = vm.counters();
    let r = vm.regs();
    vm.set_regs(&r);
    let _ = vm.sregs();
    assert_moved(&before, &vm.counters(), &[]);
}

// ------------------------------------------------------------ EPT

/// Queue an EPT violation at `gpa` the kernel maps, then an OUT to user
/// space, and KVM_RUN: the counters before the run and the EPT table
/// pages it built.
fn run_ept_fault(vm: &mut Vm, gpa: u64) -> (Counters, u64) {
    vm.exits(vec![Exit::ept(gpa, 1), out_to_user()]);
    let tables = vm.table_pages();
    let before = vm.counters();
    assert_eq!(vm.run(), Ok(0));
    (before, vm.table_pages() - tables)
}

#[test]
fn pf_fixed_counts_an_ept_violation_mapped_in_the_kernel() {
    let mut vm = vm(false);
    let (before, built) = run_ept_fault(&mut vm, 0x5000);
    assert!(built >= 3, "PML4 → PDPT → PD → PT: {built} new table pages");
    assert_moved(
        &before,
        &vm.counters(),
        &run_and(&[
            ("vcpu:exits", 2),
            ("vcpu:pf-fixed", 1),
            ("vcpu:io-exits", 1),
            ("vm:ept-table-pages", built as i64),
        ]),
    );
    assert_eq!(vm.counters().get("vm:ept-table-pages"), vm.table_pages());
}

#[test]
fn lpages_counts_a_2m_mapping_and_remote_tlb_flush_its_removal() {
    // 4 MiB of RAM, physically contiguous and 2 MiB aligned (the fake maps
    // the VMM's addresses 1:1): a fault in the second 2 MiB gets a large
    // leaf.
    let mut vm = Vm::new(false, 4 * MIB);
    vm.protected_mode(0x1000);
    let (before, built) = run_ept_fault(&mut vm, 0x20_5000);
    assert_moved(
        &before,
        &vm.counters(),
        &run_and(&[
            ("vcpu:exits", 2),
            ("vcpu:pf-fixed", 1),
            ("vcpu:io-exits", 1),
            ("vm:lpages", 1),
            ("vm:ept-table-pages", built as i64),
        ]),
    );
    // Deleting the slot zaps the mapping: one INVEPT request
    // (`kvm_flush_remote_tlbs`), the large leaf gone, the tables it
    // used freed.
    let before = vm.counters();
    let tables = vm.table_pages();
    vm.set_slot(0);
    let freed = tables as i64 - vm.table_pages() as i64;
    let mut want = vec![("vm:remote-tlb-flush", 1), ("vm:lpages", -1)];
    if freed != 0 {
        want.push(("vm:ept-table-pages", -freed));
    }
    assert_moved(&before, &vm.counters(), &want);
    assert_eq!(vm.counters().get("vm:ept-table-pages"), vm.table_pages());
}

/// `mmu-pte-write`: an emulated store to guest RAM. The scripted CPU
/// reports an EPT violation on an unbacked GPA (as a CPU with a stale
/// translation would); the emulator, re-walking the guest's (flat)
/// addressing, finds the store's target in RAM and writes it there.
#[test]
fn mmu_pte_write_counts_an_emulated_write_to_guest_ram() {
    let mut vm = vm(false);
    // mov [ebx], eax
    code(&vm, &[0x89, 0x03], |r| {
        r.rbx = 0x8000;
        r.rax = 0x1234_5678;
    });
    run_moves(
        &mut vm,
        vec![Exit::ept(0xd000_0000, 2), out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:insn-emulation", 1),
            ("vcpu:io-exits", 1),
            ("vm:mmu-pte-write", 1),
        ],
    );
    assert_eq!(vm.p.read(RAM + 0x8000, 4), 0x1234_5678u32.to_le_bytes());
}

/// `lock cmpxchg [ebx], ecx` (`f0 0f b1 0b`) on guest RAM: a successful
/// exchange writes memory (`mmu-pte-write` moves), a failed one only
/// loads EAX (it does not).
#[test]
fn mmu_pte_write_counts_a_cmpxchg_that_writes() {
    for (old, moves) in [(0x1111u32, true), (0x2222, false)] {
        let mut vm = vm(false);
        vm.p.write(RAM + 0x8000, &0x1111u32.to_le_bytes());
        code(&vm, &[0xf0, 0x0f, 0xb1, 0x0b], |r| {
            r.rbx = 0x8000;
            r.rax = u64::from(old);
            r.rcx = 0x3333;
        });
        let mut want = vec![
            ("vcpu:exits", 2),
            ("vcpu:insn-emulation", 1),
            ("vcpu:io-exits", 1),
        ];
        if moves {
            want.push(("vm:mmu-pte-write", 1));
        }
        let exits = vec![Exit::ept(0xd000_0000, 2), out_to_user()];
        run_moves(&mut vm, exits, Ok(0), &want);
        let mem = if moves { 0x3333u32 } else { 0x1111 };
        assert_eq!(vm.p.read(RAM + 0x8000, 4), mem.to_le_bytes());
    }
}

// ------------------------------------------------------------ the rest

/// The stats no event moves (see the module documentation for each one's
/// C reason), after a mix of every event above.
const NEVER: &[&str] = &[
    "vm:mmu-pte-zapped",
    "vm:mmu-pte-updated",
    "vm:mmu-flooded",
    "vm:mmu-cache-miss",
    "vm:mmu-recycled",
    "vm:mmu-unsync-page",
];

#[test]
fn never_incremented_stats_exist_and_stay_zero() {
    let mut vm = Vm::new(true, 4 * MIB);
    vm.protected_mode(0x1000);
    // MMIO emulated in the kernel, a 4 KiB and a 2 MiB EPT fault, a
    // hypercall, exits of every window kind, HLT woken by nothing (the
    // fake then raises a signal), and a user-space irq-window request.
    code(&vm, &[0x89, 0x03], |r| r.rbx = 0xfec0_0000); // mov [ebx], eax
    vm.exits(vec![
        Exit::ept(0x5000, 1),
        Exit::ept(0x20_0000, 2),
        Exit::ept(0xfec0_0000, 2),
        Exit::new(ExitReason::Vmcall, 3, 0).with(|r, _| r.rax = 1),
        Exit::new(ExitReason::PendingInterrupt, 0, 0),
        Exit::new(ExitReason::NmiWindow, 0, 0),
        Exit::new(ExitReason::ExternalInterrupt, 0, 0),
        Exit::new(ExitReason::Invlpg, 3, 0x1000),
        out_to_user(),
        Exit::new(ExitReason::Hlt, 1, 0),
    ]);
    let before = vm.counters();
    for k in NEVER {
        assert_eq!(before.get(k), 0, "{k}");
    }
    assert_eq!(vm.run(), Ok(0));
    assert_eq!(vm.run(), Err(Errno::EINTR), "HLT, then the fake's signal");
    vm.set_slot(0);
    let after = vm.counters();
    for k in NEVER {
        assert_eq!(after.get(k), 0, "{k}");
    }
    // The mix did move the counted stats (the test is not vacuous).
    let moved = after.moved_since(&before);
    for k in [
        "vcpu:exits",
        "vcpu:pf-fixed",
        "vcpu:insn-emulation",
        "vcpu:hypercalls",
        "vcpu:halt-exits",
        "vcpu:signal-exits",
        "vm:remote-tlb-flush",
    ] {
        assert!(moved.contains_key(k), "{k} did not move: {moved:?}");
    }
}

#[test]
fn identity_stats_name_the_vm_and_process_and_never_move() {
    let mut vm = vm(false);
    let ks = kstats(&vm.d);
    let vm_ks = ks.iter().find(|k| k.name == "vm").expect("vm kstat");
    let vcpu_ks = ks
        .iter()
        .find(|k| k.name == format!("vcpu-{}", vm_ks.instance))
        .expect("vcpu-<vm id> kstat");
    assert_eq!(vcpu_ks.instance, 0, "instance = VCPU id");
    let c = vm.counters();
    assert_eq!(c.get("vcpu:id"), vm_ks.instance as u64, "id = VM id");
    assert_eq!(c.get("vcpu:pid"), c.get("vm:pid"));
    // Both kstats carry the zone name as a string stat.
    for k in [vm_ks, vcpu_ks] {
        assert!(
            k.entries
                .iter()
                .any(|(n, t, _)| n == "zonename" && *t == DataType::String),
            "{} has zonename",
            k.name
        );
    }
    vm.exits(vec![Exit::new(ExitReason::Cpuid, 2, 0), out_to_user()]);
    assert_eq!(vm.run(), Ok(0));
    let after = vm.counters();
    for k in ["vm:pid", "vcpu:pid", "vcpu:id"] {
        assert_eq!(after.get(k), c.get(k), "{k}");
    }
}

/// Issue 9: "`request-irq-exits` is counted for real". When user space set
/// `request_interrupt_window` and the guest can take an interrupt, KVM_RUN
/// ends with KVM_EXIT_INTR (`dm_request_for_irq_injection`, kvm_x86.c:3543);
/// that is the exit `request-irq-exits` counts (Linux KVM's
/// `request_irq_exits`). The C counted it as `irq-exits`.
#[test]
fn request_irq_exits_counts_the_exit_user_space_asked_for() {
    let mut vm = vm(false);
    vm.run[0] = 1; // request_interrupt_window
    vm.exits(vec![Exit::new(ExitReason::Cpuid, 2, 0)]);
    let before = vm.counters();
    assert_eq!(vm.run(), Err(Errno::EINTR));
    assert_eq!(vm.exit_reason(), KVM_EXIT_INTR);
    let moved = vm.counters().moved_since(&before);
    assert_eq!(moved.get("vcpu:request-irq-exits"), Some(&1), "{moved:?}");
}

/// `pf-guest` counts a page fault the kernel injects
/// (`kvm_inject_page_fault`, kvm_x86.c:312): here the emulator, finishing
/// an MMIO instruction, finds its data address unmapped in the guest's
/// own page tables. The #PF's CR2 is that address (SDM vol. 3 §4.7).
#[test]
fn pf_guest_counts_a_page_fault_the_emulator_injects() {
    let mut vm = vm(false);
    // 32-bit paging with one 4 MiB page (CR4.PSE): linear 0-4 MiB =
    // physical 0-4 MiB, everything else not present.
    let pd = 0x3000u64;
    vm.p.write(RAM + pd, &0x0000_0083u32.to_le_bytes()); // P | RW | PS
    let mut s = vm.sregs();
    s.cr3 = pd;
    s.cr4 |= 0x10; // PSE
    s.cr0 |= 0x8000_0000; // PG
    vm.set_sregs(&s);
    code(&vm, &[0x89, 0x03], |r| r.rbx = 0xd000_0000); // mov [ebx], eax
    // The scripted CPU reports an EPT violation for the access (as a CPU
    // with a stale TLB entry would); the emulator re-walks and faults.
    run_moves(
        &mut vm,
        vec![Exit::ept(0xd000_0000, 2), out_to_user()],
        Ok(0),
        &[
            ("vcpu:exits", 2),
            ("vcpu:insn-emulation", 1),
            ("vcpu:pf-guest", 1),
            ("vcpu:io-exits", 1),
        ],
    );
    assert_eq!(vm.sregs().cr2, 0xd000_0000);
}

/// Every stat of both kstats is covered by a test above: a counter added
/// to the kstat without a test here fails this.
#[test]
fn every_stat_is_covered_by_a_test_of_this_file() {
    let covered: &[&str] = &[
        "vm:pid",
        "vm:lpages",
        "vm:remote-tlb-flush",
        "vm:ept-table-pages",
        "vm:mmu-pte-write",
        "vcpu:id",
        "vcpu:pid",
        "vcpu:nmi-injections",
        "vcpu:irq-injections",
        "vcpu:fpu-reload",
        "vcpu:host-state-reload",
        "vcpu:insn-emulation",
        "vcpu:inst-emulation-fail",
        "vcpu:exits",
        "vcpu:halt-exits",
        "vcpu:irq-exits",
        "vcpu:io-exits",
        "vcpu:mmio-exits",
        "vcpu:nmi-window-exits",
        "vcpu:irq-window-exits",
        "vcpu:signal-exits",
        "vcpu:halt-wakeup",
        "vcpu:invlpg",
        "vcpu:pf-fixed",
        "vcpu:hypercalls",
        "vcpu:pf-guest",
        "vcpu:request-irq-exits",
    ];
    let vm = vm(false);
    let mut all: Vec<String> = vm.counters().0.keys().cloned().collect();
    all.sort();
    let mut listed: Vec<String> = covered
        .iter()
        .chain(NEVER.iter())
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(all, listed);
}
