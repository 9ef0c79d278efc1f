//! Control registers as VMX runs them: `vmx_set_cr0`, `vmx_set_cr3`,
//! `vmx_set_cr4`, `ept_update_paging_mode_cr0`, `ept_load_pdptrs`,
//! `vmx_decache_cr4_guest_bits` (kvm_vmx.c) — the `kvm_x86_ops` hooks the
//! generic `kvm_set_cr0/3/4` call after their architectural checks (which
//! stay with the driver's [`crate::env::ExitEnv::set_cr`]).
//!
//! The guest's view lives in the read shadows (CR0 is fully host-owned;
//! CR4 except [`crate::setup::cr4_guest_owned`]); GUEST_CR0/CR4 hold what
//! the CPU runs with. SDM vol. 3 §25.6.6 (masks and shadows), §26.3.1.1
//! (fixed CR0/CR4 bits), §28.3.3.1 (PDPTEs with EPT).

use x86::vmx::vmcs::control::{self, PrimaryControls};
use x86::vmx::vmcs::guest;

use crate::rmode;
use crate::setup::{
    CR0_ALWAYS_ON, CR0_ALWAYS_ON_UG, CR0_HOST_MASK, CR0_HOST_MASK_UG, CR0_MP, CR0_PE, CR0_PG,
    CR0_TS, CR0_WP, CR4_PAE, CR4_PMODE_ALWAYS_ON, CR4_PSE, CR4_RMODE_ALWAYS_ON, construct_eptp,
    cr4_guest_owned,
};
use crate::state::{EFER_LME, enter_long_mode, exit_long_mode};
use crate::vcpu::VmxVcpu;
use crate::vmcs::Vmcs;

/// The guest's CR0.
pub fn guest_cr0(v: &impl Vmcs) -> u64 {
    v.read(control::CR0_READ_SHADOW)
}

/// The guest's CR4: guest-owned bits from GUEST_CR4, the rest from the
/// shadow (`vmx_decache_cr4_guest_bits`).
pub fn guest_cr4<V: Vmcs + ?Sized>(v: &V, ept: bool) -> u64 {
    let owned = cr4_guest_owned(ept);
    (v.read(guest::CR4) & owned) | (v.read(control::CR4_READ_SHADOW) & !owned)
}

/// What a CR0 write requires of the caller beyond the VMCS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cr0Effects {
    /// vm86 was entered: reset the MMU context and make sure the private
    /// TSS and identity map are initialised (`init_rmode`).
    pub entered_rmode: bool,
    /// Paging or long mode changed: reset the MMU context.
    pub paging_changed: bool,
}

/// `vmx_set_cr0`: the guest writes `cr0` (already checked). `tss_base` is
/// the private TSS for vm86 (used only without unrestricted guest).
pub fn set_cr0(vcpu: &mut VmxVcpu, v: &mut impl Vmcs, cr0: u64, tss_base: u64) -> Cr0Effects {
    let cfg = vcpu.config;
    let ug = cfg.unrestricted_guest();
    let old = guest_cr0(v);
    let was_paging = old & CR0_PG != 0;
    let paging = cr0 & CR0_PG != 0;
    let mut fx = Cr0Effects {
        paging_changed: was_paging != paging,
        ..Cr0Effects::default()
    };
    let mut hw = if ug {
        (cr0 & !CR0_HOST_MASK_UG) | CR0_ALWAYS_ON_UG
    } else {
        (cr0 & !CR0_HOST_MASK) | CR0_ALWAYS_ON
    };

    if !ug {
        if vcpu.rmode.vm86_active && cr0 & CR0_PE != 0 {
            rmode::enter_pmode(v, &mut vcpu.rmode);
            update_bitmap(vcpu, v);
        }
        if !vcpu.rmode.vm86_active && cr0 & CR0_PE == 0 {
            rmode::enter_rmode(v, &mut vcpu.rmode, tss_base);
            update_bitmap(vcpu, v);
            fx.entered_rmode = true;
        }
    }

    if vcpu.efer & EFER_LME != 0 {
        if !was_paging && paging {
            enter_long_mode(vcpu, v);
        }
        if was_paging && !paging {
            exit_long_mode(vcpu, v);
        }
    }

    if cfg.ept() {
        let cr3_exits =
            PrimaryControls::CR3_LOAD_EXITING.bits() | PrimaryControls::CR3_STORE_EXITING.bits();
        if !paging || !was_paging {
            if !paging {
                v.set_bits(control::PRIMARY_PROCBASED_EXEC_CONTROLS, cr3_exits);
            } else {
                let proc = v.read32(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
                let proc = cfg.caps.procbased.without(proc, cr3_exits);
                v.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, u64::from(proc));
            }
            // The CR4 the CPU needs depends on paging (PSE/PAE below).
            let cr4 = guest_cr4(v, true);
            write_cr4(vcpu, v, cr4, paging);
        }
        if cr0 & CR0_WP == 0 {
            hw &= !CR0_WP;
        }
    }
    if !vcpu.fpu_active {
        hw |= CR0_TS | CR0_MP;
    }
    v.write(control::CR0_READ_SHADOW, cr0);
    v.write(guest::CR0, hw);
    fx
}

fn update_bitmap(vcpu: &VmxVcpu, v: &mut impl Vmcs) {
    crate::exit::update_exception_bitmap(v, vcpu);
}

/// `vmx_set_cr4`: VMXE (and PAE) forced, VME in vm86; under EPT without
/// guest paging the CPU runs 32-bit PSE paging over the identity map.
pub fn set_cr4(vcpu: &mut VmxVcpu, v: &mut impl Vmcs, cr4: u64) {
    let paging = guest_cr0(v) & CR0_PG != 0;
    write_cr4(vcpu, v, cr4, paging);
}

fn write_cr4(vcpu: &VmxVcpu, v: &mut impl Vmcs, cr4: u64, paging: bool) {
    let mut hw = cr4
        | if vcpu.rmode.vm86_active {
            CR4_RMODE_ALWAYS_ON
        } else {
            CR4_PMODE_ALWAYS_ON
        };
    if vcpu.config.ept() {
        if !paging {
            hw &= !CR4_PAE;
            hw |= CR4_PSE;
        } else if cr4 & CR4_PAE == 0 {
            hw &= !CR4_PAE;
        }
    }
    v.write(control::CR4_READ_SHADOW, cr4);
    v.write(guest::CR4, hw);
}

/// `vmx_set_cr3` under EPT: the EPT pointer for the MMU's root, GUEST_CR3
/// the guest's own when it pages, else the identity map; the PAE PDPTEs
/// when the guest uses PAE paging outside long mode (the CPU does not load
/// them from CR3 under EPT, SDM §28.3.3.1). The caller flushes the TLB
/// (`vmx_flush_tlb`, [`crate::run::flush_tlb`]).
pub fn set_cr3(
    vcpu: &mut VmxVcpu,
    v: &mut impl Vmcs,
    cr3: u64,
    identity_map: u64,
    pdptes: Option<[u64; 4]>,
) {
    vcpu.cr3 = cr3;
    let paging = guest_cr0(v) & CR0_PG != 0;
    if vcpu.config.ept() {
        v.write(control::EPTP_FULL, construct_eptp(vcpu.ept_root));
        let pae = guest_cr4(v, true) & CR4_PAE != 0;
        if paging
            && pae
            && !crate::exit::guest_long_mode(v)
            && let Some(p) = pdptes
        {
            v.write(guest::PDPTE0_FULL, p[0]);
            v.write(guest::PDPTE1_FULL, p[1]);
            v.write(guest::PDPTE2_FULL, p[2]);
            v.write(guest::PDPTE3_FULL, p[3]);
        }
        v.write(guest::CR3, if paging { cr3 } else { identity_map });
    } else {
        v.write(guest::CR3, cr3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VmcsConfig;
    use crate::caps::tests::{nehalem, skylake};
    use crate::fake::FakeVmcs;
    use crate::setup::{CR0_ET, CR0_NE, CR0_RESET, CR4_VME, CR4_VMXE};
    use crate::state::{EFER_LMA, EFER_LME};

    fn vcpu(cpu: &crate::caps::tests::MsrCpu) -> (VmxVcpu, FakeVmcs) {
        let c = VmxVcpu::new(VmcsConfig::probe(cpu).unwrap());
        let mut v = FakeVmcs::new();
        v.write(
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            u64::from(c.config.proc),
        );
        v.write(control::CR0_READ_SHADOW, CR0_RESET);
        (c, v)
    }

    #[test]
    fn enabling_paging_in_long_mode_on_skylake() {
        let (mut c, mut v) = vcpu(&skylake());
        c.efer = EFER_LME;
        v.write(control::CR4_READ_SHADOW, CR4_PAE);
        v.write(guest::TR_ACCESS_RIGHTS, 0x8b);
        set_cr0(&mut c, &mut v, CR0_PE | CR0_ET | CR0_NE, 0);
        let fx = set_cr0(
            &mut c,
            &mut v,
            CR0_PG | CR0_PE | CR0_ET | CR0_NE | CR0_WP,
            0,
        );
        assert!(fx.paging_changed && !fx.entered_rmode);
        assert_eq!(c.efer & EFER_LMA, EFER_LMA);
        assert_eq!(v.get(control::VMENTRY_CONTROLS).unwrap() & (1 << 9), 1 << 9);
        // CR3 exiting off, CR4 back to the guest's PAE, no PSE forced.
        assert_eq!(
            v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 15 | 1 << 16),
            0
        );
        assert_eq!(v.get(guest::CR4), Some(CR4_PAE | CR4_VMXE));
        assert_eq!(
            v.get(guest::CR0),
            Some(CR0_PG | CR0_PE | CR0_ET | CR0_NE | CR0_WP)
        );
        // Paging off again: CR3 exits back, long mode left.
        set_cr0(&mut c, &mut v, CR0_PE | CR0_ET | CR0_NE, 0);
        assert_eq!(c.efer & EFER_LMA, 0);
        assert_ne!(
            v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 15),
            0
        );
        assert_eq!(v.get(guest::CR4).unwrap() & (CR4_PSE | CR4_PAE), CR4_PSE);
    }

    #[test]
    fn nehalem_real_mode_runs_in_vm86() {
        let (mut c, mut v) = vcpu(&nehalem());
        v.write(control::CR0_READ_SHADOW, CR0_PE);
        v.write(guest::RFLAGS, 0x2);
        let fx = set_cr0(&mut c, &mut v, CR0_RESET, 0xfffb_d000);
        assert!(fx.entered_rmode && c.rmode.vm86_active);
        // PE and PG forced on for the CPU, the guest sees them clear.
        assert_eq!(
            v.get(guest::CR0).unwrap() & (CR0_PE | CR0_PG),
            CR0_PE | CR0_PG
        );
        assert_eq!(v.get(control::CR0_READ_SHADOW), Some(CR0_RESET));
        assert_eq!(v.get(guest::CR4).unwrap() & CR4_VME, CR4_VME);
        assert_eq!(
            v.get(control::EXCEPTION_BITMAP).unwrap() & 1 << 13,
            1 << 13,
            "#GP intercepted"
        );
        // Protected mode: vm86 left.
        set_cr0(&mut c, &mut v, CR0_PE | CR0_ET, 0xfffb_d000);
        assert!(!c.rmode.vm86_active);
        assert_eq!(v.get(guest::RFLAGS).unwrap() & rmode::RFLAGS_VM, 0);
    }

    #[test]
    fn cr3_under_ept() {
        let (mut c, mut v) = vcpu(&skylake());
        c.ept_root = 0x40_0000;
        set_cr3(&mut c, &mut v, 0x9000, 0xfffb_c000, None);
        assert_eq!(
            v.get(guest::CR3),
            Some(0xfffb_c000),
            "identity map while not paging"
        );
        assert_eq!(v.get(control::EPTP_FULL), Some(0x40_001e));
        // PAE paging, 32-bit: PDPTEs loaded.
        v.write(control::CR0_READ_SHADOW, CR0_PG | CR0_PE);
        v.write(control::CR4_READ_SHADOW, CR4_PAE);
        set_cr3(&mut c, &mut v, 0x9000, 0xfffb_c000, Some([1, 2, 3, 4]));
        assert_eq!(v.get(guest::CR3), Some(0x9000));
        assert_eq!(v.get(guest::PDPTE3_FULL), Some(4));
        assert_eq!(c.cr3, 0x9000);
    }

    #[test]
    fn guest_owned_cr4_bits_come_from_guest_cr4() {
        let mut v = FakeVmcs::new();
        v.write(guest::CR4, CR4_VMXE | crate::setup::CR4_OSFXSR);
        v.write(control::CR4_READ_SHADOW, CR4_PAE);
        assert_eq!(guest_cr4(&v, true), CR4_PAE | crate::setup::CR4_OSFXSR);
    }
}
