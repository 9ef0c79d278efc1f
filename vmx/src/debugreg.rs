//! The guest's breakpoint addresses on the CPU around a VM entry
//! (kvm_x86.c `vcpu_enter_guest`'s `set_debugreg`): DR0–DR3 are not in the
//! VMCS (SDM vol. 3 §27.3.1 and §28.3.1 save and load only DR7 of the
//! debug registers), so the host puts the guest's in the registers before
//! the entry. DR6 never needs the CPU: every #DB exits (the exception
//! bitmap) and so does every MOV DR, and both work on `vcpu.debug.dr6`.
//! One copy for every host that runs guests: the illumos kernel and the
//! Bochs host. Tests use fakes.

use core::arch::asm;

/// Load DR0–DR3 with `db`. DR7 is cleared first (as the C's
/// `set_debugreg(0, 7)`) so no host breakpoint fires on a guest address
/// meanwhile; the VM entry loads the guest's DR7 from the VMCS.
///
/// # Safety
/// CPL 0 (MOV DR is privileged), interrupts disabled (a host #DB between
/// the load and the entry would see the guest's addresses).
pub unsafe fn load_guest_breakpoints(db: &[u64; 4]) {
    let [d0, d1, d2, d3] = *db;
    // SAFETY: the caller is at CPL 0 with interrupts off; writing debug
    // registers touches no memory.
    unsafe {
        asm!(
            "mov dr7, {z}",
            "mov dr0, {d0}",
            "mov dr1, {d1}",
            "mov dr2, {d2}",
            "mov dr3, {d3}",
            z = in(reg) 0u64,
            d0 = in(reg) d0,
            d1 = in(reg) d1,
            d2 = in(reg) d2,
            d3 = in(reg) d3,
            options(nomem, nostack, preserves_flags)
        );
    }
}
