//! SDT probes (`dtrace -l -m sdt:kvm`): the C driver's `KVM_TRACE*` sites
//! (`kvm_impl.h`: `DTRACE_PROBEn(kvm__<name>, ...)`), same names, argument
//! order and meaning (inventory §4). The `kvm-xxx` probes that marked
//! unported C code have no counterpart here.
//!
//! How a probe works on illumos: the call goes to the undefined symbol
//! `__dtrace_probe_kvm__<name>`; krtld turns the call into NOPs and records
//! the site, and the sdt provider names it `sdt:kvm:<function>:kvm-<name>`
//! with `__` → `-`, where `<function>` is the function symbol around the
//! call. The site must be a `call`: a tail `jmp` is patched as if it were a
//! call by older krtld (docs/rust-in-the-illumos-kernel.md §0.2), hence the
//! empty `asm!` after it. Arguments are `uintptr_t`, so each is a `usize`
//! here.
//!
//! ## Probe functions
//!
//! Every call to a `__dtrace_probe_*` symbol is in its own wrapper in
//! [`site`]: `#[inline(never)]`, `#[unsafe(no_mangle)]`, `extern "C"`, so
//! the probe's function is a stable, readable name, the same in every build
//! (a site inlined into Rust code would carry a mangled name with a
//! per-build hash). The Rust-named functions below (`vexit`, ...) are
//! `#[inline(always)]` forwarders to them. The wrapper names follow the C
//! driver's (inventory §4, "fired at"), so `sdt:kvm:vmx_handle_exit:kvm-vexit`
//! names the same probe on both drivers:
//! - the C function, when it fired only this probe (of ours);
//! - `<c_function>_<probe>` (probe name with `-` → `_`) when it fired several
//!   (`handle_cr`, `handle_rdmsr`, `handle_wrmsr`, `vmx_vcpu_run`,
//!   `emulator_read_emulated`): symbols must be unique;
//! - `kvm_sdt_<probe>` when the C fired it from several functions
//!   (`kvm-pio`, `kvm-page-fault`) or the C name is taken in the module
//!   (`kvm_ioctl` is the glue's `cb_ops` entry).
//!
//! | probe | function (ours) | C function (inventory §4) |
//! |---|---|---|
//! | kvm-guest-entry | `kvm_guest_enter` | `kvm_guest_enter` |
//! | kvm-guest-exit | `kvm_guest_exit` | `kvm_guest_exit` |
//! | kvm-bad-ioctl | `kvm_sdt_bad_ioctl` | `kvm_ioctl` |
//! | kvm-pio | `kvm_sdt_pio` | `kvm_emulate_pio`, `kvm_emulate_pio_string` |
//! | kvm-pic-set-irq | `kvm_pic_set_irq` | `kvm_pic_set_irq` |
//! | kvm-ioapic-set-irq | `kvm_ioapic_set_irq` | `kvm_ioapic_set_irq` |
//! | kvm-msi-set-irq | `kvm_set_msi` | `kvm_set_msi` |
//! | kvm-ack-irq | `kvm_notify_acked_irq` | `kvm_notify_acked_irq` |
//! | kvm-apic-ipi | `apic_send_ipi` | `apic_send_ipi` |
//! | kvm-apic-read | `apic_reg_read` | `apic_reg_read` |
//! | kvm-apic-write | `apic_reg_write` | `apic_reg_write` |
//! | kvm-mmu-sync-page | `kvm_sync_page` | `kvm_sync_page` |
//! | kvm-mmu-get-page | `kvm_mmu_get_page` | `kvm_mmu_get_page` |
//! | kvm-mmu-audit-post-pte | `kvm_mmu_pte_write` | `kvm_mmu_pte_write` |
//! | kvm-vmx-invvpid | `__invvpid` | `__invvpid` |
//! | kvm-vmx-invept | `__invept` | `__invept` |
//! | kvm-vmx-vmptrld | `vmcs_load` | `vmcs_load` |
//! | kvm-vmx-vmclear | `vmcs_clear` | `vmcs_clear` |
//! | kvm-vmx-vmread | `vmcs_readl` | `vmcs_readl` |
//! | kvm-vmx-vmwrite | `__vmwrite` | `__vmwrite` |
//! | kvm-inj-virq | `vmx_inject_irq` | `vmx_inject_irq` |
//! | kvm-page-fault | `kvm_sdt_page_fault` | `handle_exception`, `handle_ept_violation` |
//! | kvm-cr | `handle_cr_kvm_cr` | `handle_cr` |
//! | kvm-cr-write | `handle_cr_kvm_cr_write` | `handle_cr` |
//! | kvm-cr-read | `handle_cr_kvm_cr_read` | `handle_cr` |
//! | kvm-msr-read-ex | `handle_rdmsr_kvm_msr_read_ex` | `handle_rdmsr` |
//! | kvm-msr-read | `handle_rdmsr_kvm_msr_read` | `handle_rdmsr` |
//! | kvm-msr-write-ex | `handle_wrmsr_kvm_msr_write_ex` | `handle_wrmsr` |
//! | kvm-msr-write | `handle_wrmsr_kvm_msr_write` | `handle_wrmsr` |
//! | kvm-vexit | `vmx_handle_exit` | `vmx_handle_exit` |
//! | kvm-vrun | `vmx_vcpu_run_kvm_vrun` | `vmx_vcpu_run` |
//! | kvm-vmx-vmresume | `vmx_vcpu_run_kvm_vmx_vmresume` | `vmx_vcpu_run` |
//! | kvm-vmx-vmlaunch | `vmx_vcpu_run_kvm_vmx_vmlaunch` | `vmx_vcpu_run` |
//! | kvm-mmio-read | `emulator_read_emulated_kvm_mmio_read` | `emulator_read_emulated` |
//! | kvm-mmio-read-unsatisfied | `emulator_read_emulated_kvm_mmio_read_unsatisfied` | `emulator_read_emulated` |
//! | kvm-mmio-write | `emulator_write_emulated_onepage` | `emulator_write_emulated_onepage` |
//! | kvm-hv-hypercall | `kvm_hv_hypercall` | `kvm_hv_hypercall` |
//! | kvm-hypercall | `kvm_emulate_hypercall` | `kvm_emulate_hypercall` |
//! | kvm-vm-entry | `vcpu_enter_guest` | `vcpu_enter_guest` |
//! | kvm-vcpu-run | `__vcpu_run` | `__vcpu_run` |
//! | kvm-fpu | `kvm_load_guest_fpu` | `kvm_load_guest_fpu` |
//!
//! The table is [`PROBE_SITES`]. `make` checks the object against it
//! (`kmodfix --list-probe-sites` against `sdt-probes --sites`), and the
//! audit fails any probe site in a mangled (`_R…`, `_ZN…`) function. Two
//! differences from the C follow: a disabled probe costs a call to an empty
//! function (the C's NOPs were inline), and `fbt::vmx_handle_exit:entry`
//! and the like fire on the wrapper (so, only where the probe fires), not
//! on the C function of that name.
//!
//! Without the `kernel` feature (tests, the Bochs host) a probe does nothing
//! and the wrappers are ordinary inlined functions.
//!
//! Every name is declared, so a D script naming any of them compiles
//! against the provider; `make` counts the ones placed in the object (40
//! of 41). One has no site, by decision: `kvm-mmu-sync-page`, which the C
//! fired only in the shadow MMU's kvm_mmu.c `kvm_sync_page`, on an unsync
//! shadow page; under EPT every page is a direct one, never unsync, so the
//! C never reached it either, and the EPT-only port (`mmu/`) has no such
//! page. Two fire where the C did under EPT:
//! - `kvm-mmu-audit-post-pte` in `kvm_mmu_pte_write`, which every emulated
//!   write to guest RAM calls (kvm_x86.c `emulator_write_phys`; the port:
//!   `VmShared::mmu_pte_write`, from the emulator's RAM writes);
//! - `kvm-mmu-get-page` where a new EPT table page is allocated
//!   (src/illumos/services.rs), as the C's `__direct_map` →
//!   `kvm_mmu_get_page` did.

macro_rules! probes {
    ($(
        $(#[$meta:meta])*
        $vis:vis fn $func:ident => $sym:ident in $site:ident ( $($arg:ident),* );
    )*) => {
        #[cfg(feature = "kernel")]
        mod sys {
            unsafe extern "C" {
                $( pub fn $sym($($arg: usize),*); )*
            }
        }

        /// The probe sites: one `extern "C"` function per probe, never
        /// inlined, under a stable unmangled name in the kernel module (see
        /// "Probe functions" in the module documentation). Each is the
        /// function DTrace shows for its probe.
        pub mod site {
            $(
                #[doc = concat!("The site of `", stringify!($sym), "` (`super::", stringify!($func), "`).")]
                #[cfg_attr(feature = "kernel", unsafe(no_mangle), inline(never))]
                #[cfg_attr(not(feature = "kernel"), inline(always))]
                pub extern "C" fn $site($($arg: usize),*) {
                    #[cfg(feature = "kernel")]
                    // SAFETY: the symbol is a probe site krtld resolves (to
                    // NOPs until the probe is enabled); the empty asm after
                    // the call keeps it from becoming a tail call.
                    unsafe {
                        super::sys::$sym($($arg),*);
                        core::arch::asm!("", options(nomem, nostack, preserves_flags));
                    }
                    #[cfg(not(feature = "kernel"))]
                    { $( let _ = $arg; )* }
                }
            )*
        }

        $(
            $(#[$meta])*
            #[doc = ""]
            #[doc = concat!("Fires in [`site::", stringify!($site), "`].")]
            #[inline(always)]
            $vis fn $func($($arg: usize),*) {
                site::$site($($arg),*)
            }
        )*

        /// Every probe symbol this crate can emit.
        pub const PROBE_SYMBOLS: &[&str] = &[ $( stringify!($sym) ),* ];

        /// `(probe symbol, the function its site is in)`, for every probe:
        /// what `dtrace -l` shows in the NAME and FUNCTION columns.
        pub const PROBE_SITES: &[(&str, &str)] = &[ $( (stringify!($sym), stringify!($site)) ),* ];
    };
}

probes! {
    /// kvm-guest-entry(vcpu): about to enter the guest, VMCS current.
    pub fn guest_entry => __dtrace_probe_kvm__guest__entry in kvm_guest_enter(vcpu);
    /// kvm-guest-exit(vcpu): back from the guest, VMCS still current.
    pub fn guest_exit => __dtrace_probe_kvm__guest__exit in kvm_guest_exit(vcpu);
    /// kvm-bad-ioctl(cmd): an ioctl the driver does not implement.
    pub fn bad_ioctl => __dtrace_probe_kvm__bad__ioctl in kvm_sdt_bad_ioctl(cmd);
    /// kvm-pio(out, port, size, count).
    pub fn pio => __dtrace_probe_kvm__pio in kvm_sdt_pio(out, port, size, count);
    /// kvm-pic-set-irq(chip, pin, elcr, imr, coalesced).
    pub fn pic_set_irq => __dtrace_probe_kvm__pic__set__irq in kvm_pic_set_irq(chip, pin, elcr, imr, coalesced);
    /// kvm-ioapic-set-irq(redirection entry, irq, coalesced).
    pub fn ioapic_set_irq => __dtrace_probe_kvm__ioapic__set__irq in kvm_ioapic_set_irq(entry, irq, coalesced);
    /// kvm-msi-set-irq(address_lo, data).
    pub fn msi_set_irq => __dtrace_probe_kvm__msi__set__irq in kvm_set_msi(address_lo, data);
    /// kvm-ack-irq(irqchip, pin).
    pub fn ack_irq => __dtrace_probe_kvm__ack__irq in kvm_notify_acked_irq(irqchip, pin);
    /// kvm-apic-ipi(icr_low, dest_id).
    pub fn apic_ipi => __dtrace_probe_kvm__apic__ipi in apic_send_ipi(icr_low, dest_id);
    /// kvm-apic-read(offset, value).
    pub fn apic_read => __dtrace_probe_kvm__apic__read in apic_reg_read(offset, value);
    /// kvm-apic-write(reg, value).
    pub fn apic_write => __dtrace_probe_kvm__apic__write in apic_reg_write(reg, value);
    /// kvm-mmu-sync-page(page).
    pub fn mmu_sync_page => __dtrace_probe_kvm__mmu__sync__page in kvm_sync_page(page);
    /// kvm-mmu-get-page(page).
    pub fn mmu_get_page => __dtrace_probe_kvm__mmu__get__page in kvm_mmu_get_page(page);
    /// kvm-mmu-audit-post-pte(vcpu).
    pub fn mmu_audit_post_pte => __dtrace_probe_kvm__mmu__audit__post__pte in kvm_mmu_pte_write(vcpu);
    /// kvm-vmx-invvpid(vpid, gva).
    pub fn vmx_invvpid => __dtrace_probe_kvm__vmx__invvpid in __invvpid(vpid, gva);
    /// kvm-vmx-invept(eptp, gpa).
    pub fn vmx_invept => __dtrace_probe_kvm__vmx__invept in __invept(eptp, gpa);
    /// kvm-vmx-vmptrld(vmcs_pa).
    pub fn vmx_vmptrld => __dtrace_probe_kvm__vmx__vmptrld in vmcs_load(vmcs_pa);
    /// kvm-vmx-vmclear(vmcs_pa).
    pub fn vmx_vmclear => __dtrace_probe_kvm__vmx__vmclear in vmcs_clear(vmcs_pa);
    /// kvm-vmx-vmread(field, value).
    pub fn vmx_vmread => __dtrace_probe_kvm__vmx__vmread in vmcs_readl(field, value);
    /// kvm-vmx-vmwrite(field, value, err).
    pub fn vmx_vmwrite => __dtrace_probe_kvm__vmx__vmwrite in __vmwrite(field, value, err);
    /// kvm-inj-virq(irq).
    pub fn inj_virq => __dtrace_probe_kvm__inj__virq in vmx_inject_irq(irq);
    /// kvm-page-fault(cr2 or gpa, error code or exit qualification).
    pub fn page_fault => __dtrace_probe_kvm__page__fault in kvm_sdt_page_fault(addr, code);
    /// kvm-cr(cr, gpr, access type: 0 mov-to, 1 mov-from, 2 clts, 3 lmsw).
    pub fn cr => __dtrace_probe_kvm__cr in handle_cr_kvm_cr(cr, gpr, access);
    /// kvm-cr-write(cr, value).
    pub fn cr_write => __dtrace_probe_kvm__cr__write in handle_cr_kvm_cr_write(cr, value);
    /// kvm-cr-read(cr, value).
    pub fn cr_read => __dtrace_probe_kvm__cr__read in handle_cr_kvm_cr_read(cr, value);
    /// kvm-msr-read-ex(msr): #GP injected.
    pub fn msr_read_ex => __dtrace_probe_kvm__msr__read__ex in handle_rdmsr_kvm_msr_read_ex(msr);
    /// kvm-msr-read(msr, data).
    pub fn msr_read => __dtrace_probe_kvm__msr__read in handle_rdmsr_kvm_msr_read(msr, data);
    /// kvm-msr-write-ex(msr, data): #GP injected.
    pub fn msr_write_ex => __dtrace_probe_kvm__msr__write__ex in handle_wrmsr_kvm_msr_write_ex(msr, data);
    /// kvm-msr-write(msr, data).
    pub fn msr_write => __dtrace_probe_kvm__msr__write in handle_wrmsr_kvm_msr_write(msr, data);
    /// kvm-vexit(guest rip, exit reason): VMCS current, so `vmregs[]` works.
    pub fn vexit => __dtrace_probe_kvm__vexit in vmx_handle_exit(guest_rip, exit_reason);
    /// kvm-vrun(guest rip).
    pub fn vrun => __dtrace_probe_kvm__vrun in vmx_vcpu_run_kvm_vrun(guest_rip);
    /// kvm-vmx-vmresume(vcpu).
    pub fn vmx_vmresume => __dtrace_probe_kvm__vmx__vmresume in vmx_vcpu_run_kvm_vmx_vmresume(vcpu);
    /// kvm-vmx-vmlaunch(vcpu).
    pub fn vmx_vmlaunch => __dtrace_probe_kvm__vmx__vmlaunch in vmx_vcpu_run_kvm_vmx_vmlaunch(vcpu);
    /// kvm-mmio-read(bytes, gpa, value).
    pub fn mmio_read => __dtrace_probe_kvm__mmio__read in emulator_read_emulated_kvm_mmio_read(bytes, gpa, value);
    /// kvm-mmio-read-unsatisfied(bytes, gpa): going to userland.
    pub fn mmio_read_unsatisfied => __dtrace_probe_kvm__mmio__read__unsatisfied in emulator_read_emulated_kvm_mmio_read_unsatisfied(bytes, gpa);
    /// kvm-mmio-write(bytes, gpa, value).
    pub fn mmio_write => __dtrace_probe_kvm__mmio__write in emulator_write_emulated_onepage(bytes, gpa, value);
    /// kvm-hv-hypercall(code, fast, rep_cnt, rep_idx, ingpa, outgpa).
    pub fn hv_hypercall => __dtrace_probe_kvm__hv__hypercall in kvm_hv_hypercall(code, fast, rep_cnt, rep_idx, ingpa, outgpa);
    /// kvm-hypercall(nr, a0, a1, a2, a3).
    pub fn hypercall => __dtrace_probe_kvm__hypercall in kvm_emulate_hypercall(nr, a0, a1, a2, a3);
    /// kvm-vm-entry(vcpu id).
    pub fn vm_entry => __dtrace_probe_kvm__vm__entry in vcpu_enter_guest(vcpu_id);
    /// kvm-vcpu-run(file, line, r or vcpu), raw `uintptr_t` arguments; use
    /// [`vcpu_run`].
    fn vcpu_run_raw => __dtrace_probe_kvm__vcpu__run in __vcpu_run(file, line, r_or_vcpu);
    /// kvm-fpu(1): the guest FPU was loaded.
    pub fn fpu => __dtrace_probe_kvm__fpu in kvm_load_guest_fpu(loaded);
}

/// kvm-vcpu-run(file, line, r / vcpu): a decision point of the run loop,
/// as kvm_x86.c:`__vcpu_run` fired it (`KVM_TRACE3(vcpu__run, char *,
/// __FILE__, int, __LINE__, ...)`, inventory §4 #40):
/// - `file`: the source file, as a C string (`arg0`; D: `stringof(arg0)`);
/// - `line`: the line (`arg1`);
/// - `r_or_vcpu`: after the enter-guest/block step, the loop's result `r`
///   (an `int`: pass `r as isize as usize` so a negative errno is
///   sign-extended as the C's `(uintptr_t)r`, D: `(int)arg2`); at the
///   other points (timer injection, IRQ-window exit, signal exit, loop
///   end) the `struct kvm_vcpu *` (the port passes its VCPU's address).
///
/// The C fired it five times per loop exit path (kvm_x86.c:3532, 3538,
/// 3545, 3553, 3560), so a script tells the points apart by `line`.
/// `file!()`/`line!()` at the call site give the same: e.g.
/// `vcpu_run(c"vmx/src/run.rs", line!(), r as isize as usize)`.
/// Not placed yet (see the module documentation).
#[inline(always)]
pub fn vcpu_run(file: &'static core::ffi::CStr, line: u32, r_or_vcpu: usize) {
    vcpu_run_raw(file.as_ptr() as usize, line as usize, r_or_vcpu);
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

    /// Inventory §4, "fired at": the C function(s) each probe was fired
    /// in (kvm.c, kvm_x86.c, kvm_vmx.c, ... of illumos-kvm).
    const C_FUNCTIONS: &[(&str, &[&str])] = &[
        ("kvm-guest-entry", &["kvm_guest_enter"]),
        ("kvm-guest-exit", &["kvm_guest_exit"]),
        ("kvm-bad-ioctl", &["kvm_ioctl"]),
        ("kvm-pio", &["kvm_emulate_pio", "kvm_emulate_pio_string"]),
        ("kvm-pic-set-irq", &["kvm_pic_set_irq"]),
        ("kvm-ioapic-set-irq", &["kvm_ioapic_set_irq"]),
        ("kvm-msi-set-irq", &["kvm_set_msi"]),
        ("kvm-ack-irq", &["kvm_notify_acked_irq"]),
        ("kvm-apic-ipi", &["apic_send_ipi"]),
        ("kvm-apic-read", &["apic_reg_read"]),
        ("kvm-apic-write", &["apic_reg_write"]),
        ("kvm-mmu-sync-page", &["kvm_sync_page"]),
        ("kvm-mmu-get-page", &["kvm_mmu_get_page"]),
        ("kvm-mmu-audit-post-pte", &["kvm_mmu_pte_write"]),
        ("kvm-vmx-invvpid", &["__invvpid"]),
        ("kvm-vmx-invept", &["__invept"]),
        ("kvm-vmx-vmptrld", &["vmcs_load"]),
        ("kvm-vmx-vmclear", &["vmcs_clear"]),
        ("kvm-vmx-vmread", &["vmcs_readl"]),
        ("kvm-vmx-vmwrite", &["__vmwrite"]),
        ("kvm-inj-virq", &["vmx_inject_irq"]),
        (
            "kvm-page-fault",
            &["handle_exception", "handle_ept_violation"],
        ),
        ("kvm-cr", &["handle_cr"]),
        ("kvm-cr-write", &["handle_cr"]),
        ("kvm-cr-read", &["handle_cr"]),
        ("kvm-msr-read-ex", &["handle_rdmsr"]),
        ("kvm-msr-read", &["handle_rdmsr"]),
        ("kvm-msr-write-ex", &["handle_wrmsr"]),
        ("kvm-msr-write", &["handle_wrmsr"]),
        ("kvm-vexit", &["vmx_handle_exit"]),
        ("kvm-vrun", &["vmx_vcpu_run"]),
        ("kvm-vmx-vmresume", &["vmx_vcpu_run"]),
        ("kvm-vmx-vmlaunch", &["vmx_vcpu_run"]),
        ("kvm-mmio-read", &["emulator_read_emulated"]),
        ("kvm-mmio-read-unsatisfied", &["emulator_read_emulated"]),
        ("kvm-mmio-write", &["emulator_write_emulated_onepage"]),
        ("kvm-hv-hypercall", &["kvm_hv_hypercall"]),
        ("kvm-hypercall", &["kvm_emulate_hypercall"]),
        ("kvm-vm-entry", &["vcpu_enter_guest"]),
        ("kvm-vcpu-run", &["__vcpu_run"]),
        ("kvm-fpu", &["kvm_load_guest_fpu"]),
    ];

    /// C function names our module defines for something else (the C
    /// glue's `cb_ops` entry `kvm_ioctl`), so a wrapper cannot take them.
    const TAKEN: &[&str] = &["kvm_ioctl"];

    /// The naming rule of the module documentation, applied to the
    /// inventory: the C function; `<c_function>_<probe>` where it fired
    /// several of the probes; `kvm_sdt_<probe>` where several C functions
    /// fired it or the name is taken.
    #[test]
    fn probe_functions_follow_the_c_drivers_names() {
        let underscored = |p: &str| p.replace('-', "_");
        for &(sym, site) in PROBE_SITES {
            let probe = name(sym);
            let cfuncs = C_FUNCTIONS
                .iter()
                .find(|(p, _)| *p == probe)
                .map(|(_, f)| *f)
                .unwrap_or_else(|| panic!("{probe} not in the inventory table"));
            let want = if cfuncs.len() > 1 || TAKEN.contains(&cfuncs[0]) {
                std::format!("kvm_sdt_{}", underscored(&probe["kvm-".len()..]))
            } else {
                let shared = C_FUNCTIONS
                    .iter()
                    .filter(|(_, f)| f.contains(&cfuncs[0]))
                    .count();
                if shared > 1 {
                    std::format!("{}_{}", cfuncs[0], underscored(&probe))
                } else {
                    String::from(cfuncs[0])
                }
            };
            assert_eq!(site, want, "function of {probe}");
        }
        assert_eq!(PROBE_SITES.len(), C_FUNCTIONS.len());
        let sites_of = |p: &str| {
            PROBE_SITES
                .iter()
                .find(|(s, _)| name(s) == p)
                .map(|(_, f)| *f)
        };
        // Spot checks written out from the inventory.
        assert_eq!(sites_of("kvm-vexit"), Some("vmx_handle_exit"));
        assert_eq!(sites_of("kvm-cr-read"), Some("handle_cr_kvm_cr_read"));
        assert_eq!(sites_of("kvm-page-fault"), Some("kvm_sdt_page_fault"));
        assert_eq!(sites_of("kvm-bad-ioctl"), Some("kvm_sdt_bad_ioctl"));
        assert_eq!(sites_of("kvm-vcpu-run"), Some("__vcpu_run"));
    }

    /// The probe functions are distinct C identifiers, none mangled-looking
    /// (the audit rejects `_R…`/`_ZN…`), none a probe stub.
    #[test]
    fn probe_functions_are_distinct_c_identifiers() {
        let mut seen: Vec<&str> = Vec::new();
        for &(sym, site) in PROBE_SITES {
            assert!(PROBE_SYMBOLS.contains(&sym));
            assert!(!seen.contains(&site), "{site} twice");
            seen.push(site);
            assert!(
                site.bytes()
                    .all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{site}"
            );
            assert!(
                !site.starts_with("_R") && !site.starts_with("_ZN"),
                "{site}"
            );
            assert!(!site.starts_with("__dtrace_probe_"), "{site}");
        }
        assert_eq!(seen.len(), PROBE_SYMBOLS.len());
    }

    /// A probe function must not shadow a kernel symbol the module imports
    /// (krtld would bind the module's own reference to the wrapper), nor be
    /// defined by the C glue (`ld -r` would fail on the duplicate).
    #[test]
    fn probe_functions_clash_with_no_import_or_glue_function() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let allow = std::fs::read_to_string(root.join("tools/kmodfix/allowlist.txt")).unwrap();
        let imports: Vec<&str> = allow
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split('\t').next())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert!(imports.contains(&"kmem_alloc"), "allow-list read");
        let mut glue = String::new();
        for f in ["kvm_glue.c", "kvm_services.c", "kvm_vmx_glue.c"] {
            glue += &std::fs::read_to_string(root.join("src/glue").join(f)).unwrap();
        }
        // C function definitions start a line with `name(`.
        assert!(glue.lines().any(|l| l.starts_with("kvm_ioctl(")));
        for &(_, site) in PROBE_SITES {
            assert!(!imports.contains(&site), "{site} is a kernel import");
            let def = std::format!("{site}(");
            assert!(
                !glue.lines().any(|l| l.starts_with(&def)),
                "{site} is in the glue"
            );
        }
    }

    #[test]
    fn vcpu_run_takes_the_c_arguments() {
        // Callable with the C's (file, line, r) and (file, line, vcpu).
        vcpu_run(c"vmx/src/run.rs", line!(), (-4isize) as usize);
        vcpu_run(c"vmx/src/run.rs", line!(), 0xffff_fe00_0000_1000);
        assert!(PROBE_SITES.contains(&("__dtrace_probe_kvm__vcpu__run", "__vcpu_run")));
    }

    #[test]
    fn probes_are_callable_without_the_kernel() {
        vexit(0xfff0, 30);
        hv_hypercall(1, 2, 3, 4, 5, 6);
    }
}
