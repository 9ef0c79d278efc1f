//! The ABI layout test: the Rust side of the contract (every field of every
//! ABI struct, every struct size, every ioctl number, every constant) against
//! the C driver's headers compiled with gcc.
//!
//! * Probe 1 includes the driver's `kvm.h`, `kvm_x86.h`, `kvm_para.h` from
//!   `$KVM_REFERENCE` (default `<workspace>/../shared/reference/illumos-kvm`)
//!   against the illumos headers in `$ILLUMOS_SDK` (default
//!   `<workspace>/../shared/illumos-sdk`), with the kernel defines the driver
//!   is built with, and prints `sizeof`/`offsetof` of every field, every
//!   ioctl and every constant of the three headers.
//! * Probe 2 includes Linux's `<linux/kvm.h>` and checks the structs that are
//!   unchanged there.
//!
//! The field list is written by hand below; `rust_side_is_complete` proves it
//! is complete (the fields of every struct and every aggregate member tile it
//! without holes), so no C field can be missing. If `../shared` is absent the
//! C comparisons print `skipped: ...` and pass.
#![allow(unused_unsafe)]

use kvm_ioctl::abi::caps::ALL_CAPABILITIES;
use kvm_ioctl::abi::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One field of one ABI struct: the C access path (`io.port`), absolute
/// offset and size on the Rust side. A path starting with `~` exists only in
/// Rust (explicit padding, C bit-field bytes) and is not sent to C.
#[derive(Clone, Debug)]
struct Field {
    strukt: &'static str,
    path: String,
    offset: usize,
    size: usize,
}

impl Field {
    fn rust_only(&self) -> bool {
        self.path.starts_with('~')
    }
    fn c_path(&self) -> &str {
        self.path.trim_start_matches('~')
    }
}

fn field_size<T, F>(_: for<'a> fn(&'a T) -> &'a F) -> usize {
    core::mem::size_of::<F>()
}

/// `fields!(kvm_run: "io.port" => u.io.port, ...)`.
macro_rules! fields {
    ($t:ident: $( $cpath:literal => $($p:ident).+ ),* $(,)?) => {
        vec![$(
            Field {
                strukt: stringify!($t),
                path: $cpath.to_string(),
                offset: core::mem::offset_of!($t, $($p).+),
                size: field_size(|s: &$t| unsafe { &s.$($p).+ }),
            },
        )*]
    };
}

/// Every field of every ABI struct (hand-written).
fn rust_fields() -> Vec<Field> {
    let mut v = Vec::new();
    // ---- kvm_x86.h
    v.extend(
        fields!(kvm_pic_state: "last_irr" => last_irr, "irr" => irr, "imr" => imr,
        "isr" => isr, "priority_add" => priority_add, "irq_base" => irq_base,
        "read_reg_select" => read_reg_select, "poll" => poll, "special_mask" => special_mask,
        "init_state" => init_state, "auto_eoi" => auto_eoi,
        "rotate_on_auto_eoi" => rotate_on_auto_eoi,
        "special_fully_nested_mode" => special_fully_nested_mode, "init4" => init4,
        "elcr" => elcr, "elcr_mask" => elcr_mask),
    );
    v.extend(fields!(kvm_ioapic_state: "base_address" => base_address,
        "ioregsel" => ioregsel, "id" => id, "irr" => irr, "pad" => pad,
        "redirtbl" => redirtbl));
    // redirtbl[0]: Rust's element type is a named union; offsets are relative
    // to the element, which starts at `redirtbl`.
    let rt = core::mem::offset_of!(kvm_ioapic_state, redirtbl);
    let el = |path: &str, off: usize, size: usize| Field {
        strukt: "kvm_ioapic_state",
        path: path.to_string(),
        offset: rt + off,
        size,
    };
    v.push(el(
        "redirtbl[0]",
        0,
        core::mem::size_of::<kvm_ioapic_redirtbl>(),
    ));
    v.push(el("redirtbl[0].bits", 0, 8));
    v.push(el(
        "redirtbl[0].fields",
        0,
        core::mem::size_of::<kvm_ioapic_redirtbl_fields>(),
    ));
    for f in fields!(kvm_ioapic_redirtbl_fields: "vector" => vector, "~bits1" => bits1,
        "~bits2" => bits2, "reserved" => reserved, "dest_id" => dest_id)
    {
        let path = if f.rust_only() {
            format!("~redirtbl[0].fields.{}", f.c_path())
        } else {
            format!("redirtbl[0].fields.{}", f.path)
        };
        v.push(el(&path, f.offset, f.size));
    }
    v.extend(
        fields!(kvm_regs: "rax" => rax, "rbx" => rbx, "rcx" => rcx, "rdx" => rdx,
        "rsi" => rsi, "rdi" => rdi, "rsp" => rsp, "rbp" => rbp, "r8" => r8, "r9" => r9,
        "r10" => r10, "r11" => r11, "r12" => r12, "r13" => r13, "r14" => r14, "r15" => r15,
        "rip" => rip, "rflags" => rflags),
    );
    v.extend(fields!(kvm_lapic_state: "regs" => regs));
    v.extend(
        fields!(kvm_segment: "base" => base, "limit" => limit, "selector" => selector,
        "type" => r#type, "present" => present, "dpl" => dpl, "db" => db, "s" => s, "l" => l,
        "g" => g, "avl" => avl, "unusable" => unusable, "padding" => padding),
    );
    v.extend(fields!(kvm_dtable: "base" => base, "limit" => limit, "padding" => padding));
    v.extend(
        fields!(kvm_sregs: "cs" => cs, "ds" => ds, "es" => es, "fs" => fs, "gs" => gs,
        "ss" => ss, "tr" => tr, "ldt" => ldt, "gdt" => gdt, "idt" => idt, "cr0" => cr0,
        "cr2" => cr2, "cr3" => cr3, "cr4" => cr4, "cr8" => cr8, "efer" => efer,
        "apic_base" => apic_base, "interrupt_bitmap" => interrupt_bitmap),
    );
    v.extend(
        fields!(kvm_fpu: "fpr" => fpr, "fcw" => fcw, "fsw" => fsw, "ftwx" => ftwx,
        "pad1" => pad1, "last_opcode" => last_opcode, "last_ip" => last_ip,
        "last_dp" => last_dp, "xmm" => xmm, "mxcsr" => mxcsr, "pad2" => pad2),
    );
    v.extend(fields!(kvm_msr_entry: "index" => index, "reserved" => reserved, "data" => data));
    v.extend(fields!(kvm_msrs: "nmsrs" => nmsrs, "pad" => pad, "entries" => entries));
    v.extend(fields!(kvm_msr_list: "nmsrs" => nmsrs, "indices" => indices));
    v.extend(
        fields!(kvm_cpuid_entry: "function" => function, "eax" => eax, "ebx" => ebx,
        "ecx" => ecx, "edx" => edx, "padding" => padding),
    );
    v.extend(fields!(kvm_cpuid: "nent" => nent, "padding" => padding, "entries" => entries));
    v.extend(
        fields!(kvm_cpuid_entry2: "function" => function, "index" => index,
        "flags" => flags, "eax" => eax, "ebx" => ebx, "ecx" => ecx, "edx" => edx,
        "padding" => padding),
    );
    v.extend(fields!(kvm_cpuid2: "nent" => nent, "padding" => padding, "entries" => entries));
    v.extend(fields!(kvm_pit_channel_state: "count" => count,
        "latched_count" => latched_count, "count_latched" => count_latched,
        "status_latched" => status_latched, "status" => status, "read_state" => read_state,
        "write_state" => write_state, "write_latch" => write_latch, "rw_mode" => rw_mode,
        "mode" => mode, "bcd" => bcd, "gate" => gate, "count_load_time" => count_load_time));
    v.extend(
        fields!(kvm_debug_exit_arch: "exception" => exception, "pad" => pad,
        "pc" => pc, "dr6" => dr6, "dr7" => dr7),
    );
    v.extend(fields!(kvm_guest_debug_arch: "debugreg" => debugreg));
    v.extend(fields!(kvm_pit_state: "channels" => channels));
    v.extend(
        fields!(kvm_pit_state2: "channels" => channels, "flags" => flags,
        "reserved" => reserved),
    );
    v.extend(
        fields!(kvm_reinject_control: "pit_reinject" => pit_reinject,
        "reserved" => reserved),
    );
    v.extend(fields!(kvm_vcpu_events: "exception" => exception,
        "exception.injected" => exception.injected, "exception.nr" => exception.nr,
        "exception.has_error_code" => exception.has_error_code,
        "exception.pad" => exception.pad, "exception.error_code" => exception.error_code,
        "interrupt" => interrupt, "interrupt.injected" => interrupt.injected,
        "interrupt.nr" => interrupt.nr, "interrupt.soft" => interrupt.soft,
        "interrupt.pad" => interrupt.pad, "nmi" => nmi, "nmi.injected" => nmi.injected,
        "nmi.pending" => nmi.pending, "nmi.masked" => nmi.masked, "nmi.pad" => nmi.pad,
        "sipi_vector" => sipi_vector, "flags" => flags, "reserved" => reserved));
    // ---- kvm.h
    v.extend(fields!(kvm_memory_region: "slot" => slot, "flags" => flags,
        "guest_phys_addr" => guest_phys_addr, "memory_size" => memory_size));
    v.extend(
        fields!(kvm_userspace_memory_region: "slot" => slot, "flags" => flags,
        "guest_phys_addr" => guest_phys_addr, "memory_size" => memory_size,
        "userspace_addr" => userspace_addr),
    );
    v.extend(fields!(kvm_irq_level: "irq" => u.irq, "status" => u.status, "level" => level));
    v.extend(
        fields!(kvm_irqchip: "chip_id" => chip_id, "pad" => pad, "chip" => chip,
        "chip.dummy" => chip.dummy, "chip.pic" => chip.pic, "chip.ioapic" => chip.ioapic),
    );
    v.extend(fields!(kvm_pit_config: "flags" => flags, "pad" => pad));
    v.extend(
        fields!(kvm_run: "request_interrupt_window" => request_interrupt_window,
        "padding1" => padding1, "exit_reason" => exit_reason,
        "ready_for_interrupt_injection" => ready_for_interrupt_injection,
        "if_flag" => if_flag, "padding2" => padding2, "cr8" => cr8, "apic_base" => apic_base,
        "hw" => u.hw, "hw.hardware_exit_reason" => u.hw.hardware_exit_reason,
        "fail_entry" => u.fail_entry,
        "fail_entry.hardware_entry_failure_reason" => u.fail_entry.hardware_entry_failure_reason,
        "ex" => u.ex, "ex.exception" => u.ex.exception, "ex.error_code" => u.ex.error_code,
        "io" => u.io, "io.direction" => u.io.direction, "io.size" => u.io.size,
        "io.port" => u.io.port, "io.count" => u.io.count, "io.data_offset" => u.io.data_offset,
        "debug" => u.debug, "debug.arch" => u.debug.arch,
        "mmio" => u.mmio, "mmio.phys_addr" => u.mmio.phys_addr, "mmio.data" => u.mmio.data,
        "mmio.len" => u.mmio.len, "mmio.is_write" => u.mmio.is_write,
        "~mmio._tail_pad" => u.mmio._tail_pad,
        "hypercall" => u.hypercall, "hypercall.nr" => u.hypercall.nr,
        "hypercall.args" => u.hypercall.args, "hypercall.ret" => u.hypercall.ret,
        "hypercall.longmode" => u.hypercall.longmode, "hypercall.pad" => u.hypercall.pad,
        "tpr_access" => u.tpr_access, "tpr_access.rip" => u.tpr_access.rip,
        "tpr_access.is_write" => u.tpr_access.is_write, "tpr_access.pad" => u.tpr_access.pad,
        "dcr" => u.dcr, "dcr.dcrn" => u.dcr.dcrn, "dcr.data" => u.dcr.data,
        "dcr.is_write" => u.dcr.is_write, "~dcr._tail_pad" => u.dcr._tail_pad,
        "internal" => u.internal, "internal.suberror" => u.internal.suberror,
        "internal.ndata" => u.internal.ndata, "internal.data" => u.internal.data,
        "padding" => u.padding),
    );
    v.extend(fields!(kvm_coalesced_mmio_zone: "addr" => addr, "size" => size, "pad" => pad));
    v.extend(
        fields!(kvm_coalesced_mmio: "phys_addr" => phys_addr, "len" => len,
        "pad" => pad, "data" => data),
    );
    v.extend(
        fields!(kvm_coalesced_mmio_ring: "first" => first, "last" => last,
        "coalesced_mmio" => coalesced_mmio),
    );
    v.extend(fields!(kvm_interrupt: "irq" => irq));
    v.extend(
        fields!(kvm_dirty_log: "slot" => slot, "padding1" => padding1,
        "dirty_bitmap" => u.dirty_bitmap, "padding2" => u.padding2),
    );
    v.extend(fields!(kvm_signal_mask: "len" => len, "sigset" => sigset,
        "~_tail_pad" => _tail_pad));
    v.extend(
        fields!(kvm_tpr_access_ctl: "enabled" => enabled, "flags" => flags,
        "reserved" => reserved),
    );
    v.extend(fields!(kvm_vapic_addr: "vapic_addr" => vapic_addr));
    v.extend(fields!(kvm_mp_state: "mp_state" => mp_state));
    v.extend(fields!(kvm_guest_debug: "control" => control, "pad" => pad, "arch" => arch));
    v.extend(fields!(kvm_irq_routing_irqchip: "irqchip" => irqchip, "pin" => pin));
    v.extend(fields!(kvm_irq_routing_msi: "address_lo" => address_lo,
        "address_hi" => address_hi, "data" => data, "pad" => pad));
    v.extend(
        fields!(kvm_irq_routing_entry: "gsi" => gsi, "type" => r#type,
        "flags" => flags, "pad" => pad, "u" => u, "u.irqchip" => u.irqchip,
        "u.msi" => u.msi, "u.pad" => u.pad),
    );
    v.extend(fields!(kvm_irq_routing: "nr" => nr, "flags" => flags, "entries" => entries));
    v.extend(
        fields!(kvm_x86_mce: "status" => status, "addr" => addr, "misc" => misc,
        "mcg_status" => mcg_status, "bank" => bank, "pad1" => pad1, "pad2" => pad2),
    );
    v.extend(fields!(kvm_clock_data: "clock" => clock, "flags" => flags, "pad" => pad));
    // ---- kvm_para.h
    v.extend(
        fields!(kvm_steal_time: "steal" => steal, "version" => version,
        "flags" => flags, "pad" => pad),
    );
    v.extend(fields!(kvm_mmu_op_header: "op" => op, "pad" => pad));
    v.extend(
        fields!(kvm_mmu_op_write_pte: "header" => header, "pte_phys" => pte_phys,
        "pte_val" => pte_val),
    );
    v.extend(fields!(kvm_mmu_op_flush_tlb: "header" => header));
    v.extend(fields!(kvm_mmu_op_release_pt: "header" => header, "pt_phys" => pt_phys));
    v.extend(
        fields!(kvm_vcpu_pv_apf_data: "reason" => reason, "pad" => pad,
        "enabled" => enabled),
    );
    v
}

/// Every non-ioctl constant of the three headers, Rust side.
fn rust_constants() -> Vec<(String, u64)> {
    let mut v: Vec<(&str, u64)> = vec![
        // kvm.h
        ("KVM_API_VERSION", KVM_API_VERSION as u64),
        ("KVM_MEM_LOG_DIRTY_PAGES", KVM_MEM_LOG_DIRTY_PAGES.into()),
        ("KVM_MEMSLOT_INVALID", KVM_MEMSLOT_INVALID.into()),
        ("KVM_PIT_SPEAKER_DUMMY", KVM_PIT_SPEAKER_DUMMY.into()),
        (
            "KVM_INTERNAL_ERROR_EMULATION",
            KVM_INTERNAL_ERROR_EMULATION.into(),
        ),
        (
            "KVM_INTERNAL_ERROR_SIMUL_EX",
            KVM_INTERNAL_ERROR_SIMUL_EX.into(),
        ),
        ("KVM_EXIT_IO_IN", KVM_EXIT_IO_IN.into()),
        ("KVM_EXIT_IO_OUT", KVM_EXIT_IO_OUT.into()),
        ("KVM_COALESCED_MMIO_MAX", KVM_COALESCED_MMIO_MAX as u64),
        ("KVM_MP_STATE_RUNNABLE", KVM_MP_STATE_RUNNABLE.into()),
        (
            "KVM_MP_STATE_UNINITIALIZED",
            KVM_MP_STATE_UNINITIALIZED.into(),
        ),
        (
            "KVM_MP_STATE_INIT_RECEIVED",
            KVM_MP_STATE_INIT_RECEIVED.into(),
        ),
        ("KVM_MP_STATE_HALTED", KVM_MP_STATE_HALTED.into()),
        (
            "KVM_MP_STATE_SIPI_RECEIVED",
            KVM_MP_STATE_SIPI_RECEIVED.into(),
        ),
        ("KVM_GUESTDBG_ENABLE", KVM_GUESTDBG_ENABLE.into()),
        ("KVM_GUESTDBG_SINGLESTEP", KVM_GUESTDBG_SINGLESTEP.into()),
        ("KVMIO", ioccom::KVMIO.into()),
        ("KVM_IRQ_ROUTING_IRQCHIP", KVM_IRQ_ROUTING_IRQCHIP.into()),
        ("KVM_IRQ_ROUTING_MSI", KVM_IRQ_ROUTING_MSI.into()),
        // kvm_x86.h
        ("KVM_NR_INTERRUPTS", KVM_NR_INTERRUPTS as u64),
        ("KVM_IOAPIC_NUM_PINS", KVM_IOAPIC_NUM_PINS as u64),
        ("KVM_IRQCHIP_PIC_MASTER", KVM_IRQCHIP_PIC_MASTER.into()),
        ("KVM_IRQCHIP_PIC_SLAVE", KVM_IRQCHIP_PIC_SLAVE.into()),
        ("KVM_IRQCHIP_IOAPIC", KVM_IRQCHIP_IOAPIC.into()),
        ("KVM_NR_IRQCHIPS", KVM_NR_IRQCHIPS.into()),
        ("KVM_APIC_REG_SIZE", KVM_APIC_REG_SIZE as u64),
        (
            "KVM_CPUID_FLAG_SIGNIFCANT_INDEX",
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX.into(),
        ),
        (
            "KVM_CPUID_FLAG_STATEFUL_FUNC",
            KVM_CPUID_FLAG_STATEFUL_FUNC.into(),
        ),
        (
            "KVM_CPUID_FLAG_STATE_READ_NEXT",
            KVM_CPUID_FLAG_STATE_READ_NEXT.into(),
        ),
        ("KVM_GUESTDBG_USE_SW_BP", KVM_GUESTDBG_USE_SW_BP.into()),
        ("KVM_GUESTDBG_USE_HW_BP", KVM_GUESTDBG_USE_HW_BP.into()),
        ("KVM_GUESTDBG_INJECT_DB", KVM_GUESTDBG_INJECT_DB.into()),
        ("KVM_GUESTDBG_INJECT_BP", KVM_GUESTDBG_INJECT_BP.into()),
        (
            "KVM_PIT_FLAGS_HPET_LEGACY",
            KVM_PIT_FLAGS_HPET_LEGACY.into(),
        ),
        (
            "KVM_VCPUEVENT_VALID_NMI_PENDING",
            KVM_VCPUEVENT_VALID_NMI_PENDING.into(),
        ),
        (
            "KVM_VCPUEVENT_VALID_SIPI_VECTOR",
            KVM_VCPUEVENT_VALID_SIPI_VECTOR.into(),
        ),
        // kvm_para.h
        ("KVM_CPUID_SIGNATURE", KVM_CPUID_SIGNATURE.into()),
        ("KVM_CPUID_FEATURES", KVM_CPUID_FEATURES.into()),
        ("KVM_FEATURE_CLOCKSOURCE", KVM_FEATURE_CLOCKSOURCE.into()),
        ("KVM_FEATURE_NOP_IO_DELAY", KVM_FEATURE_NOP_IO_DELAY.into()),
        ("KVM_FEATURE_MMU_OP", KVM_FEATURE_MMU_OP.into()),
        ("KVM_FEATURE_CLOCKSOURCE2", KVM_FEATURE_CLOCKSOURCE2.into()),
        ("KVM_FEATURE_ASYNC_PF", KVM_FEATURE_ASYNC_PF.into()),
        ("KVM_FEATURE_STEAL_TIME", KVM_FEATURE_STEAL_TIME.into()),
        (
            "KVM_FEATURE_CLOCKSOURCE_STABLE_BIT",
            KVM_FEATURE_CLOCKSOURCE_STABLE_BIT.into(),
        ),
        ("MSR_KVM_WALL_CLOCK", MSR_KVM_WALL_CLOCK.into()),
        ("MSR_KVM_SYSTEM_TIME", MSR_KVM_SYSTEM_TIME.into()),
        ("KVM_MSR_ENABLED", KVM_MSR_ENABLED),
        ("MSR_KVM_WALL_CLOCK_NEW", MSR_KVM_WALL_CLOCK_NEW.into()),
        ("MSR_KVM_SYSTEM_TIME_NEW", MSR_KVM_SYSTEM_TIME_NEW.into()),
        ("MSR_KVM_ASYNC_PF_EN", MSR_KVM_ASYNC_PF_EN.into()),
        ("MSR_KVM_STEAL_TIME", MSR_KVM_STEAL_TIME.into()),
        ("KVM_STEAL_ALIGNMENT_BITS", KVM_STEAL_ALIGNMENT_BITS.into()),
        ("KVM_STEAL_VALID_BITS", KVM_STEAL_VALID_BITS),
        ("KVM_STEAL_RESERVED_MASK", KVM_STEAL_RESERVED_MASK),
        ("KVM_MAX_MMU_OP_BATCH", KVM_MAX_MMU_OP_BATCH.into()),
        ("KVM_ASYNC_PF_ENABLED", KVM_ASYNC_PF_ENABLED),
        ("KVM_ASYNC_PF_SEND_ALWAYS", KVM_ASYNC_PF_SEND_ALWAYS),
        ("KVM_MMU_OP_WRITE_PTE", KVM_MMU_OP_WRITE_PTE.into()),
        ("KVM_MMU_OP_FLUSH_TLB", KVM_MMU_OP_FLUSH_TLB.into()),
        ("KVM_MMU_OP_RELEASE_PT", KVM_MMU_OP_RELEASE_PT.into()),
        (
            "KVM_PV_REASON_PAGE_NOT_PRESENT",
            KVM_PV_REASON_PAGE_NOT_PRESENT.into(),
        ),
        ("KVM_PV_REASON_PAGE_READY", KVM_PV_REASON_PAGE_READY.into()),
    ];
    for (name, r) in run::ALL_EXIT_REASONS {
        v.push((name, *r as u64));
    }
    for (name, n) in ALL_CAPABILITIES {
        v.push((name, u64::from(*n)));
    }
    v.extend_from_slice(hyperv::ALL_HYPERV_CONSTANTS);
    v.into_iter().map(|(n, x)| (n.to_string(), x)).collect()
}

/// The IOAPIC redirection-entry bit-fields: (C member, value that sets all
/// its bits, the `bits` mask Rust's accessors read).
const BITFIELDS: &[(&str, u64, u64)] = &[
    ("delivery_mode", 7, 0x700),
    ("dest_mode", 1, 0x800),
    ("delivery_status", 1, 0x1000),
    ("polarity", 1, 0x2000),
    ("remote_irr", 1, 0x4000),
    ("trig_mode", 1, 0x8000),
    ("mask", 1, 0x1_0000),
    ("reserve", 0x7f, 0xfe_0000),
];

/// The Rust side as `key -> value` lines, the same format the probe prints.
fn rust_side() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for f in rust_fields() {
        if !f.rust_only() {
            m.insert(
                format!("field {} {}", f.strukt, f.path),
                format!("{} {}", f.offset, f.size),
            );
        }
    }
    for (name, size) in ALL_STRUCTS {
        m.insert(format!("struct {name}"), size.to_string());
    }
    for (name, value) in ALL_IOCTLS {
        m.insert(format!("ioctl {name}"), format!("0x{value:08x}"));
    }
    for (name, value) in rust_constants() {
        m.insert(format!("const {name}"), value.to_string());
    }
    for (name, _, mask) in BITFIELDS {
        m.insert(format!("bitfield redirtbl {name}"), format!("0x{mask:x}"));
    }
    m
}

/// Compares the Rust side with what a C probe printed: every key of `rust`
/// must be present in `c` with the same value and vice versa. Returns one
/// line per difference (empty = equal).
fn compare(rust: &BTreeMap<String, String>, c: &BTreeMap<String, String>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, rv) in rust {
        match c.get(k) {
            Some(cv) if cv == rv => {}
            Some(cv) => diffs.push(format!("{k}: rust {rv}, C {cv}")),
            None => diffs.push(format!("{k}: rust {rv}, missing in C")),
        }
    }
    for (k, cv) in c {
        if !rust.contains_key(k) {
            diffs.push(format!("{k}: C {cv}, missing in Rust"));
        }
    }
    diffs
}

/// Parses probe output (`<kind> <name...> <value...>` lines) into the same
/// key/value form as `rust_side`.
fn parse_probe(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["field", s, p, off, size] => {
                m.insert(format!("field {s} {p}"), format!("{off} {size}"));
            }
            ["struct" | "ioctl" | "const", name, value] => {
                m.insert(format!("{} {name}", w[0]), (*value).to_string());
            }
            ["bitfield", s, name, value] => {
                m.insert(format!("bitfield {s} {name}"), (*value).to_string());
            }
            _ => {}
        }
    }
    m
}

/// `<workspace>/../shared/<rest>` unless `var` is set.
fn shared_path(var: &str, rest: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rest)
}

/// Names `#define`d with a value in the three headers and the `hyperv.h`
/// they include (not guards, macros with parameters, or the ioctls).
fn header_constants(reference: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for h in ["kvm.h", "kvm_x86.h", "kvm_para.h", "hyperv.h"] {
        let text = std::fs::read_to_string(reference.join(h)).unwrap_or_default();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("#define") {
                continue;
            }
            let Some(name) = w.next() else { continue };
            if name.contains('(') || name.starts_with("__") || name.starts_with("_KVM") {
                continue;
            }
            if w.next().is_none() || ALL_IOCTLS.iter().any(|(n, _)| *n == name) {
                continue;
            }
            names.push(name.to_string());
        }
    }
    names
}

/// Names of the structs the three headers define.
fn header_structs(reference: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for h in ["kvm.h", "kvm_x86.h", "kvm_para.h"] {
        let text = std::fs::read_to_string(reference.join(h)).unwrap_or_default();
        for line in text.lines() {
            let l = line.trim_start_matches("typedef ").trim();
            if let Some(name) = l.strip_prefix("struct ").and_then(|r| r.strip_suffix(" {")) {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The C source of probe 1.
fn illumos_probe_source(reference: &Path) -> String {
    let mut s = String::from(
        "#include \"kvm.h\"\n#include \"kvm_x86.h\"\n#include \"kvm_para.h\"\n\
         extern int printf(const char *, ...);\n\
         #define F(S, P) printf(\"field %s %s %lu %lu\\n\", #S, #P, \
         (unsigned long)__builtin_offsetof(struct S, P), \
         (unsigned long)sizeof (((struct S *)0)->P))\n\
         int main(void) {\n",
    );
    for f in rust_fields() {
        if !f.rust_only() {
            s.push_str(&format!("F({}, {});\n", f.strukt, f.path));
        }
    }
    for (name, _) in ALL_STRUCTS {
        s.push_str(&format!(
            "printf(\"struct {name} %lu\\n\", (unsigned long)sizeof (struct {name}));\n"
        ));
    }
    for (name, _) in ALL_IOCTLS {
        s.push_str(&format!(
            "printf(\"ioctl {name} 0x%08x\\n\", (unsigned)({name}));\n"
        ));
    }
    let mut consts = header_constants(reference);
    for (name, _) in rust_constants() {
        if !consts.contains(&name) {
            consts.push(name);
        }
    }
    for name in consts {
        s.push_str(&format!(
            "#ifdef {name}\nprintf(\"const {name} %llu\\n\", \
             (unsigned long long)({name}));\n#endif\n"
        ));
    }
    for (name, all, _) in BITFIELDS {
        s.push_str(&format!(
            "{{ struct kvm_ioapic_state st; st.redirtbl[0].bits = 0; \
             st.redirtbl[0].fields.{name} = {all}; \
             printf(\"bitfield redirtbl {name} 0x%llx\\n\", \
             (unsigned long long)st.redirtbl[0].bits); }}\n"
        ));
    }
    s.push_str("return 0;\n}\n");
    s
}

/// Whether a `gcc` can be run at all.
fn have_gcc() -> bool {
    Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles `src` with `args` and runs it; `Err` says why not.
fn compile_and_run(src: &str, name: &str, args: &[String]) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("kvm-ioctl-layout-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let c = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    let exe = dir.join(name);
    std::fs::write(&c, src).map_err(|e| e.to_string())?;
    let out = Command::new("gcc")
        .args(args)
        .arg("-c")
        .arg(&c)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| format!("gcc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Link with the host's C library: the probe only calls printf.
    let out = Command::new("gcc")
        .arg(&obj)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("gcc (link): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "link failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let out = Command::new(&exe).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("probe failed".into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Coverage: the fields of every struct, and the members of every aggregate
/// field, tile it without holes. This proves the hand-written field list is
/// complete (a missing C field would leave a hole, since offsets and sizes
/// are compared with C) and that no ABI type has implicit padding (the `Pod`
/// contract).
fn coverage_holes(fields: &[Field], structs: &[(&str, usize)]) -> Vec<String> {
    let mut holes = Vec::new();
    let check =
        |owner: &str, start: usize, end: usize, kids: &[&Field], holes: &mut Vec<String>| {
            let mut covered = vec![false; end - start];
            for k in kids {
                for b in k.offset..k.offset + k.size {
                    if let Some(c) = b.checked_sub(start).and_then(|i| covered.get_mut(i)) {
                        *c = true;
                    } else {
                        holes.push(format!(
                            "{owner}: member {} outside [{start},{end})",
                            k.path
                        ));
                    }
                }
            }
            if let Some(i) = covered.iter().position(|c| !c) {
                holes.push(format!(
                    "{owner}: byte {} not covered by any listed field",
                    start + i
                ));
            }
        };
    for (s, size) in structs {
        let mine: Vec<&Field> = fields.iter().filter(|f| f.strukt == *s).collect();
        let top: Vec<&Field> = mine
            .iter()
            .copied()
            .filter(|f| !f.c_path().contains('.'))
            .collect();
        check(s, 0, *size, &top, &mut holes);
        for parent in &mine {
            let prefix = format!("{}.", parent.c_path());
            let kids: Vec<&Field> = mine
                .iter()
                .copied()
                .filter(|f| {
                    f.c_path()
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.contains('.'))
                })
                .collect();
            if !kids.is_empty() {
                let owner = format!("{s}.{}", parent.c_path());
                check(
                    &owner,
                    parent.offset,
                    parent.offset + parent.size,
                    &kids,
                    &mut holes,
                );
            }
        }
    }
    holes
}

#[test]
fn rust_side_is_complete() {
    let fields = rust_fields();
    let holes = coverage_holes(&fields, ALL_STRUCTS);
    assert!(holes.is_empty(), "{holes:#?}");
    // Every struct has fields listed.
    for (s, _) in ALL_STRUCTS {
        assert!(
            fields.iter().any(|f| f.strukt == *s),
            "no fields listed for {s}"
        );
    }
}

#[test]
fn coverage_catches_a_missing_field() {
    let mut fields = rust_fields();
    fields.retain(|f| !(f.strukt == "kvm_run" && f.path == "io.port"));
    let holes = coverage_holes(&fields, ALL_STRUCTS);
    assert!(
        holes.iter().any(|h| h.starts_with("kvm_run.io:")),
        "{holes:?}"
    );
}

#[test]
fn compare_catches_a_wrong_offset() {
    let good = rust_side();
    assert!(compare(&good, &good).is_empty());
    let mut bad = good.clone();
    let key = "field kvm_run io.port".to_string();
    assert_eq!(bad.get(&key).map(String::as_str), Some("34 2"));
    bad.insert(key.clone(), "36 2".into());
    let diffs = compare(&good, &bad);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with(&key));
    // A wrong ioctl number and a missing struct are caught as well.
    let mut bad = good.clone();
    bad.insert("ioctl KVM_RUN".into(), "0x0000ae80".into());
    bad.remove("struct kvm_run");
    assert_eq!(compare(&good, &bad).len(), 2);
}

#[test]
fn bitfield_accessors_read_the_c_bits() {
    for (name, all, mask) in BITFIELDS {
        let e = kvm_ioapic_redirtbl { bits: *mask };
        // SAFETY (test): both members are plain bytes.
        let f = unsafe { e.fields };
        let got = match *name {
            "delivery_mode" => f.delivery_mode(),
            "dest_mode" => f.dest_mode(),
            "delivery_status" => f.delivery_status(),
            "polarity" => f.polarity(),
            "remote_irr" => f.remote_irr(),
            "trig_mode" => f.trig_mode(),
            "mask" => f.mask(),
            "reserve" => f.bits2 >> 1,
            _ => unreachable!(),
        };
        assert_eq!(u64::from(got), *all, "{name}");
    }
}

#[test]
fn layout_matches_the_illumos_headers() {
    let sdk = shared_path("ILLUMOS_SDK", "illumos-sdk");
    let reference = shared_path("KVM_REFERENCE", "reference/illumos-kvm");
    if !sdk.join("usr/src/uts/common/sys/types.h").exists() || !reference.join("kvm.h").exists() {
        println!("skipped: ../shared absent (set ILLUMOS_SDK)");
        return;
    }
    if !have_gcc() {
        println!("skipped: gcc not found");
        return;
    }
    // Every struct the headers define is an ABI struct here.
    for s in header_structs(&reference) {
        assert!(
            ALL_STRUCTS.iter().any(|(n, _)| *n == s),
            "struct {s} not ported"
        );
    }
    let inc = |p: &str| format!("-I{}", sdk.join(p).display());
    let args: Vec<String> = [
        "-D__sun",
        "-D_KERNEL",
        "-D_MACHDEP",
        "-Dx86",
        "-D_SYSCALL32",
        "-D_DDI_STRICT",
        "-Di86pc",
        "-nostdinc",
        "-m64",
        "-ffreestanding",
        "-fno-builtin",
        "-std=gnu99",
        "-Wall",
        "-Werror",
        "-Wno-unknown-pragmas",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("-I{}", reference.display()),
        inc("usr/src/uts/common"),
        inc("usr/src/uts/intel"),
        inc("usr/src/uts/i86pc"),
    ])
    .collect();
    let out = compile_and_run(&illumos_probe_source(&reference), "illumos_probe", &args)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = parse_probe(&out);
    // Constants the header defines that we don't have show up as
    // "missing in Rust".
    let diffs = compare(&rust_side(), &c);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    println!("illumos headers: {} items equal", c.len());
}

/// Structs unchanged in Linux's `<linux/kvm.h>` and the C paths of their
/// fields as Linux spells them (illumos-only structs, `kvm_run`, the
/// fixed-size `kvm_msrs`/`kvm_cpuid`, and the flexible-array headers
/// `kvm_msr_list`/`kvm_signal_mask`/`kvm_irq_routing`, whose sizes differ, are excluded;
/// fields Linux has renamed, e.g. `kvm_vcpu_events.exception.pad` (now
/// `pending`), are compared by offset only through the struct size).
const LINUX_SAME: &[(&str, &[&str])] = &[
    (
        "kvm_regs",
        &[
            "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "rip", "rflags",
        ],
    ),
    (
        "kvm_segment",
        &[
            "base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl",
            "unusable", "padding",
        ],
    ),
    ("kvm_dtable", &["base", "limit", "padding"]),
    (
        "kvm_sregs",
        &[
            "cs",
            "ds",
            "es",
            "fs",
            "gs",
            "ss",
            "tr",
            "ldt",
            "gdt",
            "idt",
            "cr0",
            "cr2",
            "cr3",
            "cr4",
            "cr8",
            "efer",
            "apic_base",
            "interrupt_bitmap",
        ],
    ),
    (
        "kvm_fpu",
        &[
            "fpr",
            "fcw",
            "fsw",
            "ftwx",
            "pad1",
            "last_opcode",
            "last_ip",
            "last_dp",
            "xmm",
            "mxcsr",
            "pad2",
        ],
    ),
    ("kvm_lapic_state", &["regs"]),
    ("kvm_msr_entry", &["index", "reserved", "data"]),
    (
        "kvm_cpuid_entry",
        &["function", "eax", "ebx", "ecx", "edx", "padding"],
    ),
    (
        "kvm_cpuid_entry2",
        &[
            "function", "index", "flags", "eax", "ebx", "ecx", "edx", "padding",
        ],
    ),
    ("kvm_cpuid2", &["nent", "padding"]),
    (
        "kvm_pic_state",
        &[
            "last_irr",
            "irr",
            "imr",
            "isr",
            "priority_add",
            "irq_base",
            "read_reg_select",
            "poll",
            "special_mask",
            "init_state",
            "auto_eoi",
            "rotate_on_auto_eoi",
            "special_fully_nested_mode",
            "init4",
            "elcr",
            "elcr_mask",
        ],
    ),
    (
        "kvm_ioapic_state",
        &[
            "base_address",
            "ioregsel",
            "id",
            "irr",
            "pad",
            "redirtbl",
            "redirtbl[0].bits",
            "redirtbl[0].fields.vector",
            "redirtbl[0].fields.reserved",
            "redirtbl[0].fields.dest_id",
        ],
    ),
    (
        "kvm_pit_channel_state",
        &[
            "count",
            "latched_count",
            "count_latched",
            "status_latched",
            "status",
            "read_state",
            "write_state",
            "write_latch",
            "rw_mode",
            "mode",
            "bcd",
            "gate",
            "count_load_time",
        ],
    ),
    ("kvm_pit_state", &["channels"]),
    ("kvm_pit_state2", &["channels", "flags", "reserved"]),
    (
        "kvm_irqchip",
        &[
            "chip_id",
            "pad",
            "chip",
            "chip.dummy",
            "chip.pic",
            "chip.ioapic",
        ],
    ),
    (
        "kvm_memory_region",
        &["slot", "flags", "guest_phys_addr", "memory_size"],
    ),
    (
        "kvm_userspace_memory_region",
        &[
            "slot",
            "flags",
            "guest_phys_addr",
            "memory_size",
            "userspace_addr",
        ],
    ),
    ("kvm_irq_level", &["irq", "status", "level"]),
    (
        "kvm_dirty_log",
        &["slot", "padding1", "dirty_bitmap", "padding2"],
    ),
    ("kvm_pit_config", &["flags", "pad"]),
    ("kvm_coalesced_mmio_zone", &["addr", "size"]),
    ("kvm_coalesced_mmio", &["phys_addr", "len", "data"]),
    ("kvm_interrupt", &["irq"]),
    ("kvm_tpr_access_ctl", &["enabled", "flags", "reserved"]),
    ("kvm_vapic_addr", &["vapic_addr"]),
    ("kvm_mp_state", &["mp_state"]),
    ("kvm_guest_debug", &["control", "pad", "arch"]),
    (
        "kvm_debug_exit_arch",
        &["exception", "pad", "pc", "dr6", "dr7"],
    ),
    ("kvm_guest_debug_arch", &["debugreg"]),
    ("kvm_reinject_control", &["pit_reinject", "reserved"]),
    (
        "kvm_vcpu_events",
        &[
            "exception",
            "exception.injected",
            "exception.nr",
            "exception.has_error_code",
            "exception.error_code",
            "interrupt",
            "interrupt.injected",
            "interrupt.nr",
            "interrupt.soft",
            "nmi",
            "nmi.injected",
            "nmi.pending",
            "nmi.masked",
            "nmi.pad",
            "sipi_vector",
            "flags",
        ],
    ),
    ("kvm_irq_routing_irqchip", &["irqchip", "pin"]),
    ("kvm_irq_routing_msi", &["address_lo", "address_hi", "data"]),
    (
        "kvm_irq_routing_entry",
        &["gsi", "type", "flags", "pad", "u", "u.irqchip", "u.msi"],
    ),
    (
        "kvm_x86_mce",
        &[
            "status",
            "addr",
            "misc",
            "mcg_status",
            "bank",
            "pad1",
            "pad2",
        ],
    ),
    ("kvm_clock_data", &["clock", "flags"]),
];

#[test]
fn layout_matches_linux_where_unchanged() {
    let header = Path::new("/usr/include/linux/kvm.h");
    if !header.exists() {
        println!("skipped: /usr/include/linux/kvm.h absent (install linux-libc-dev)");
        return;
    }
    if !have_gcc() {
        println!("skipped: gcc not found");
        return;
    }
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\n\
         #define F(S, P) printf(\"field %s %s %lu %lu\\n\", #S, #P, \
         (unsigned long)offsetof(struct S, P), (unsigned long)sizeof (((struct S *)0)->P))\n\
         int main(void) {\n",
    );
    let mut rust = BTreeMap::new();
    let all = rust_side();
    for (s, paths) in LINUX_SAME {
        src.push_str(&format!(
            "printf(\"struct {s} %lu\\n\", (unsigned long)sizeof (struct {s}));\n"
        ));
        let k = format!("struct {s}");
        rust.insert(k.clone(), all.get(&k).cloned().unwrap_or_default());
        for p in *paths {
            src.push_str(&format!("F({s}, {p});\n"));
            let k = format!("field {s} {p}");
            rust.insert(k.clone(), all.get(&k).cloned().unwrap_or_default());
        }
    }
    src.push_str("return 0;\n}\n");
    let out = compile_and_run(&src, "linux_probe", &["-Wall".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let c = parse_probe(&out);
    let diffs = compare(&rust, &c);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    println!("linux header: {} items equal", c.len());
}
