//! SDT probes (`dtrace -l -m sdt:kvm`): the C driver's `KVM_TRACE*` sites
//! (`kvm_impl.h`: `DTRACE_PROBEn(kvm__<name>, ...)`), same names, argument
//! order and meaning (inventory §4). The `kvm-xxx` probes that marked
//! unported C code have no counterpart here.
//!
//! How a probe works on illumos: the call goes to the undefined symbol
//! `__dtrace_probe_kvm__<name>`; krtld turns the call into NOPs and records
//! the site, and the sdt provider names it `sdt:kvm:<function>:kvm-<name>`
//! with `__` → `-`. The site must be a `call`: a tail `jmp` is patched as if
//! it were a call by older krtld (docs/rust-in-the-illumos-kernel.md §0.2),
//! hence the empty `asm!` after it, and the audit (`tools/kmodfix`) checks
//! every site. Arguments are `uintptr_t`, so each is a `usize` here.
//!
//! Without the `kernel` feature (tests, the Bochs host) a probe does nothing.
//!
//! Every name is declared, so a D script naming any of them compiles
//! against the provider; `make` counts the ones placed in the object. Five
//! have no site, by decision:
//! - `kvm-mmu-sync-page`, `kvm-mmu-get-page`, `kvm-mmu-audit-post-pte`:
//!   the C fired them in the shadow MMU (kvm_mmu.c `kvm_sync_page`,
//!   `kvm_mmu_get_page`, the `audit` hook of `kvm_mmu_pte_write`) on
//!   shadow pages. The port's MMU is EPT only (`mmu/`): there are no shadow
//!   pages to sync, look up or audit, so no event for them to report.
//! - `kvm-hv-hypercall`: `kvm_hv_hypercall` (kvm_x86.c:2981), the Hyper-V
//!   hypercall interface, which the port does not implement.
//! - `kvm-vcpu-run`: the C fired it at `__vcpu_run`'s decision points
//!   (kvm_x86.c:3532–3560; arguments `__FILE__`, `__LINE__` and the result
//!   or the VCPU). Those are in the run loop, `kvm_vmx::run::vcpu_loop`
//!   (vmx/src/run.rs), which reports probes through its `ProbeSink`
//!   (vmx/src/env.rs `Probe`, mapped to these functions in
//!   src/vm/vmx/env.rs): it needs a `Probe::VcpuRun` there, not a site in
//!   the driver crate.

macro_rules! probes {
    ($(
        $(#[$meta:meta])*
        $func:ident => $sym:ident ( $($arg:ident),* );
    )*) => {
        #[cfg(feature = "kernel")]
        mod sys {
            unsafe extern "C" {
                $( pub fn $sym($($arg: usize),*); )*
            }
        }

        $(
            $(#[$meta])*
            #[inline(always)]
            pub fn $func($($arg: usize),*) {
                #[cfg(feature = "kernel")]
                // SAFETY: the symbol is a probe site krtld resolves (to NOPs
                // until the probe is enabled); the empty asm only keeps the
                // call from becoming a tail call.
                unsafe {
                    sys::$sym($($arg),*);
                    core::arch::asm!("", options(nomem, nostack, preserves_flags));
                }
                #[cfg(not(feature = "kernel"))]
                { $( let _ = $arg; )* }
            }
        )*

        /// Every probe symbol this crate can emit.
        pub const PROBE_SYMBOLS: &[&str] = &[ $( stringify!($sym) ),* ];
    };
}

probes! {
    /// kvm-guest-entry(vcpu): about to enter the guest, VMCS current.
    guest_entry => __dtrace_probe_kvm__guest__entry(vcpu);
    /// kvm-guest-exit(vcpu): back from the guest, VMCS still current.
    guest_exit => __dtrace_probe_kvm__guest__exit(vcpu);
    /// kvm-bad-ioctl(cmd): an ioctl the driver does not implement.
    bad_ioctl => __dtrace_probe_kvm__bad__ioctl(cmd);
    /// kvm-pio(out, port, size, count).
    pio => __dtrace_probe_kvm__pio(out, port, size, count);
    /// kvm-pic-set-irq(chip, pin, elcr, imr, coalesced).
    pic_set_irq => __dtrace_probe_kvm__pic__set__irq(chip, pin, elcr, imr, coalesced);
    /// kvm-ioapic-set-irq(redirection entry, irq, coalesced).
    ioapic_set_irq => __dtrace_probe_kvm__ioapic__set__irq(entry, irq, coalesced);
    /// kvm-msi-set-irq(address_lo, data).
    msi_set_irq => __dtrace_probe_kvm__msi__set__irq(address_lo, data);
    /// kvm-ack-irq(irqchip, pin).
    ack_irq => __dtrace_probe_kvm__ack__irq(irqchip, pin);
    /// kvm-apic-ipi(icr_low, dest_id).
    apic_ipi => __dtrace_probe_kvm__apic__ipi(icr_low, dest_id);
    /// kvm-apic-read(offset, value).
    apic_read => __dtrace_probe_kvm__apic__read(offset, value);
    /// kvm-apic-write(reg, value).
    apic_write => __dtrace_probe_kvm__apic__write(reg, value);
    /// kvm-mmu-sync-page(page).
    mmu_sync_page => __dtrace_probe_kvm__mmu__sync__page(page);
    /// kvm-mmu-get-page(page).
    mmu_get_page => __dtrace_probe_kvm__mmu__get__page(page);
    /// kvm-mmu-audit-post-pte(vcpu).
    mmu_audit_post_pte => __dtrace_probe_kvm__mmu__audit__post__pte(vcpu);
    /// kvm-vmx-invvpid(vpid, gva).
    vmx_invvpid => __dtrace_probe_kvm__vmx__invvpid(vpid, gva);
    /// kvm-vmx-invept(eptp, gpa).
    vmx_invept => __dtrace_probe_kvm__vmx__invept(eptp, gpa);
    /// kvm-vmx-vmptrld(vmcs_pa).
    vmx_vmptrld => __dtrace_probe_kvm__vmx__vmptrld(vmcs_pa);
    /// kvm-vmx-vmclear(vmcs_pa).
    vmx_vmclear => __dtrace_probe_kvm__vmx__vmclear(vmcs_pa);
    /// kvm-vmx-vmread(field, value).
    vmx_vmread => __dtrace_probe_kvm__vmx__vmread(field, value);
    /// kvm-vmx-vmwrite(field, value, err).
    vmx_vmwrite => __dtrace_probe_kvm__vmx__vmwrite(field, value, err);
    /// kvm-inj-virq(irq).
    inj_virq => __dtrace_probe_kvm__inj__virq(irq);
    /// kvm-page-fault(cr2 or gpa, error code or exit qualification).
    page_fault => __dtrace_probe_kvm__page__fault(addr, code);
    /// kvm-cr(cr, gpr, access type: 0 mov-to, 1 mov-from, 2 clts, 3 lmsw).
    cr => __dtrace_probe_kvm__cr(cr, gpr, access);
    /// kvm-cr-write(cr, value).
    cr_write => __dtrace_probe_kvm__cr__write(cr, value);
    /// kvm-cr-read(cr, value).
    cr_read => __dtrace_probe_kvm__cr__read(cr, value);
    /// kvm-msr-read-ex(msr): #GP injected.
    msr_read_ex => __dtrace_probe_kvm__msr__read__ex(msr);
    /// kvm-msr-read(msr, data).
    msr_read => __dtrace_probe_kvm__msr__read(msr, data);
    /// kvm-msr-write-ex(msr, data): #GP injected.
    msr_write_ex => __dtrace_probe_kvm__msr__write__ex(msr, data);
    /// kvm-msr-write(msr, data).
    msr_write => __dtrace_probe_kvm__msr__write(msr, data);
    /// kvm-vexit(guest rip, exit reason): VMCS current, so `vmregs[]` works.
    vexit => __dtrace_probe_kvm__vexit(guest_rip, exit_reason);
    /// kvm-vrun(guest rip).
    vrun => __dtrace_probe_kvm__vrun(guest_rip);
    /// kvm-vmx-vmresume(vcpu).
    vmx_vmresume => __dtrace_probe_kvm__vmx__vmresume(vcpu);
    /// kvm-vmx-vmlaunch(vcpu).
    vmx_vmlaunch => __dtrace_probe_kvm__vmx__vmlaunch(vcpu);
    /// kvm-mmio-read(bytes, gpa, value).
    mmio_read => __dtrace_probe_kvm__mmio__read(bytes, gpa, value);
    /// kvm-mmio-read-unsatisfied(bytes, gpa): going to userland.
    mmio_read_unsatisfied => __dtrace_probe_kvm__mmio__read__unsatisfied(bytes, gpa);
    /// kvm-mmio-write(bytes, gpa, value).
    mmio_write => __dtrace_probe_kvm__mmio__write(bytes, gpa, value);
    /// kvm-hv-hypercall(code, fast, rep_cnt, rep_idx, ingpa, outgpa).
    hv_hypercall => __dtrace_probe_kvm__hv__hypercall(code, fast, rep_cnt, rep_idx, ingpa, outgpa);
    /// kvm-hypercall(nr, a0, a1, a2, a3).
    hypercall => __dtrace_probe_kvm__hypercall(nr, a0, a1, a2, a3);
    /// kvm-vm-entry(vcpu id).
    vm_entry => __dtrace_probe_kvm__vm__entry(vcpu_id);
    /// kvm-vcpu-run(vcpu, result): the run loop's decision points.
    vcpu_run => __dtrace_probe_kvm__vcpu__run(vcpu, result);
    /// kvm-fpu(1): the guest FPU was loaded.
    fpu => __dtrace_probe_kvm__fpu(loaded);
}

/// `__dtrace_probe_kvm__a__b` → `kvm-a-b`, the name DTrace shows.
pub fn probe_name(symbol: &str, out: &mut [u8]) -> usize {
    let name = symbol.strip_prefix("__dtrace_probe_").unwrap_or(symbol);
    let mut n = 0;
    let bytes = name.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (c, step) = if b == b'_' && bytes.get(i + 1) == Some(&b'_') {
            (b'-', 2)
        } else {
            (b, 1)
        };
        if let Some(slot) = out.get_mut(n) {
            *slot = c;
            n += 1;
        }
        i += step;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// Inventory §4, probes 1–41 (42 `kvm-xxx` and 43 `kvm-xxx-sync`
    /// marked unported C code and are deliberately absent).
    const INVENTORY: &[&str] = &[
        "kvm-guest-entry",
        "kvm-guest-exit",
        "kvm-bad-ioctl",
        "kvm-pio",
        "kvm-pic-set-irq",
        "kvm-ioapic-set-irq",
        "kvm-msi-set-irq",
        "kvm-ack-irq",
        "kvm-apic-ipi",
        "kvm-apic-read",
        "kvm-apic-write",
        "kvm-mmu-sync-page",
        "kvm-mmu-get-page",
        "kvm-mmu-audit-post-pte",
        "kvm-vmx-invvpid",
        "kvm-vmx-invept",
        "kvm-vmx-vmptrld",
        "kvm-vmx-vmclear",
        "kvm-vmx-vmread",
        "kvm-vmx-vmwrite",
        "kvm-inj-virq",
        "kvm-page-fault",
        "kvm-cr",
        "kvm-cr-write",
        "kvm-cr-read",
        "kvm-msr-read-ex",
        "kvm-msr-read",
        "kvm-msr-write-ex",
        "kvm-msr-write",
        "kvm-vexit",
        "kvm-vrun",
        "kvm-vmx-vmresume",
        "kvm-vmx-vmlaunch",
        "kvm-mmio-read",
        "kvm-mmio-read-unsatisfied",
        "kvm-mmio-write",
        "kvm-hv-hypercall",
        "kvm-hypercall",
        "kvm-vm-entry",
        "kvm-vcpu-run",
        "kvm-fpu",
    ];

    fn name(sym: &str) -> String {
        let mut buf = [0u8; 64];
        let n = probe_name(sym, &mut buf);
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn probe_names_are_the_c_drivers_minus_the_unported_markers() {
        let ours: Vec<String> = PROBE_SYMBOLS.iter().map(|s| name(s)).collect();
        assert_eq!(ours, INVENTORY);
        assert!(!ours.iter().any(|n| n.starts_with("kvm-xxx")));
    }

    #[test]
    fn symbol_to_dtrace_name_turns_double_underscores_into_dashes() {
        assert_eq!(
            name("__dtrace_probe_kvm__mmio__read__unsatisfied"),
            "kvm-mmio-read-unsatisfied"
        );
        assert_eq!(name("__dtrace_probe_kvm__vexit"), "kvm-vexit");
        assert_eq!(name("__dtrace_probe_kvm__a_b"), "kvm-a_b");
    }

    #[test]
    fn probes_are_callable_without_the_kernel() {
        vexit(0xfff0, 30);
        hv_hypercall(1, 2, 3, 4, 5, 6);
    }
}
