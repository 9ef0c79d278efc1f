//! The VMCS layout of the original: `vmx_vcpu_setup`, the VMCS half of
//! `vmx_vcpu_reset`, the per-CPU host fields of `vmx_vcpu_load`, and the
//! I/O and MSR bitmaps of `vmx_init` (kvm_vmx.c). SDM vol. 3 chapter 25
//! (VMCS fields), §25.6.4 (I/O bitmaps), §25.6.9 (MSR bitmaps), §28.3 (guest
//! state checks the reset state must pass).
//!
//! The bitmaps and the VMCS itself are pages the driver allocates (never on
//! the kernel stack); this module only fills them in.

use x86::vmx::vmcs::control::{self, EntryControls, PrimaryControls, SecondaryControls};
use x86::vmx::vmcs::{guest, host};

use crate::caps::VmcsConfig;
use crate::vmcs::Vmcs;

/// Bytes in a page.
pub const PAGE_SIZE: usize = 4096;
/// A page the driver allocated (bitmaps).
pub type Page = [u8; PAGE_SIZE];

/// The PC debug port, passed through (`vmx_init`: "often used for I/O
/// delays, but the vmexits simply slow things down").
pub const PORT_POST: u16 = 0x80;

/// Tunables `ple_gap` and `ple_window` (appendix A of the inventory).
pub const PLE_GAP: u32 = 41;
pub const PLE_WINDOW: u32 = 4096;

// Exception vectors (SDM vol. 3 §6.3.1).
pub const DE_VECTOR: u8 = 0;
pub const DB_VECTOR: u8 = 1;
pub const NMI_VECTOR: u8 = 2;
pub const BP_VECTOR: u8 = 3;
pub const OF_VECTOR: u8 = 4;
pub const BR_VECTOR: u8 = 5;
pub const UD_VECTOR: u8 = 6;
pub const NM_VECTOR: u8 = 7;
pub const DF_VECTOR: u8 = 8;
pub const TS_VECTOR: u8 = 10;
pub const NP_VECTOR: u8 = 11;
pub const SS_VECTOR: u8 = 12;
pub const GP_VECTOR: u8 = 13;
pub const PF_VECTOR: u8 = 14;
pub const MF_VECTOR: u8 = 16;
pub const AC_VECTOR: u8 = 17;
pub const MC_VECTOR: u8 = 18;

// CR0/CR4 bits (SDM vol. 3 §2.5).
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_TS: u64 = 1 << 3;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_NW: u64 = 1 << 29;
pub const CR0_CD: u64 = 1 << 30;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_VME: u64 = 1 << 0;
pub const CR4_PVI: u64 = 1 << 1;
pub const CR4_DE: u64 = 1 << 3;
pub const CR4_PSE: u64 = 1 << 4;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_PGE: u64 = 1 << 7;
pub const CR4_PCE: u64 = 1 << 8;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_VMXE: u64 = 1 << 13;

/// CR4 bits the guest owns (`KVM_CR4_GUEST_OWNED_BITS`); PGE joins them
/// under EPT.
pub const CR4_GUEST_OWNED: u64 = CR4_PVI | CR4_DE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT;
/// CR0 bits the host forces with unrestricted guest
/// (`KVM_VM_CR0_ALWAYS_ON_UNRESTRICTED_GUEST`).
pub const CR0_ALWAYS_ON_UG: u64 = CR0_WP | CR0_NE;
/// Guest CR0 bits replaced by the host's with unrestricted guest
/// (`KVM_GUEST_CR0_MASK_UNRESTRICTED_GUEST`).
pub const CR0_HOST_MASK_UG: u64 = CR0_WP | CR0_NE | CR0_NW | CR0_CD;
/// Without unrestricted guest PE and PG are forced too (the vm86 path).
pub const CR0_ALWAYS_ON: u64 = CR0_ALWAYS_ON_UG | CR0_PG | CR0_PE;
pub const CR0_HOST_MASK: u64 = CR0_HOST_MASK_UG | CR0_PG | CR0_PE;
/// CR4 bits forced in protected mode (`KVM_PMODE_VM_CR4_ALWAYS_ON`).
pub const CR4_PMODE_ALWAYS_ON: u64 = CR4_PAE | CR4_VMXE;
/// CR4 bits forced in vm86 real mode (`KVM_RMODE_VM_CR4_ALWAYS_ON`).
pub const CR4_RMODE_ALWAYS_ON: u64 = CR4_VME | CR4_PAE | CR4_VMXE;
/// CR0 after RESET: CD, NW, ET (SDM vol. 3 table 10-1).
pub const CR0_RESET: u64 = CR0_NW | CR0_CD | CR0_ET;

/// EPTP memory type write-back (bits 2:0) and page-walk length 4 (bits 5:3
/// hold length − 1) (SDM §25.6.11); `construct_eptp`.
pub const EPTP_WB: u64 = 6;
pub const EPTP_WALK_4: u64 = 3 << 3;

/// `construct_eptp`: the EPT pointer for the PML4 at `root_hpa`.
pub const fn construct_eptp(root_hpa: u64) -> u64 {
    EPTP_WB | EPTP_WALK_4 | (root_hpa & !0xfff)
}

/// Host state that is the same on every CPU (`vmx_vcpu_setup`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    pub cr0: u64,
    pub cr4: u64,
    /// Kernel code/data/TSS selectors (KCS_SEL, KDS_SEL, KTSS_SEL) and the
    /// current FS/GS selectors.
    pub cs: u16,
    pub ds: u16,
    pub es: u16,
    pub ss: u16,
    pub fs: u16,
    pub gs: u16,
    pub tr: u16,
    pub fs_base: u64,
    pub sysenter_cs: u32,
    pub sysenter_eip: u64,
    /// Host IA32_PAT.
    pub pat: u64,
    /// Where VM exits land: the trampoline's exit label (`entry`).
    pub rip: u64,
}

/// Host state that differs per CPU; rewritten when the VCPU thread moves
/// (`vmx_vcpu_load` with `cpu_lastrun != cpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCpuState {
    pub cr3: u64,
    pub tr_base: u64,
    pub gdtr_base: u64,
    pub idtr_base: u64,
    pub gs_base: u64,
    pub sysenter_esp: u64,
    /// `tsc_gethrtime_tick_delta()` of this CPU.
    pub tsc_tick_delta: u64,
}

/// Per-VCPU inputs to the layout, from the platform and the VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuLayout {
    /// `hma_vmx_vpid_alloc()`; 0 when none (VPID then stays off).
    pub vpid: u16,
    /// Physical addresses of the bitmaps (shared by all VCPUs).
    pub io_bitmap_a: u64,
    pub io_bitmap_b: u64,
    pub msr_bitmap_legacy: u64,
    pub msr_bitmap_longmode: u64,
    /// The in-kernel irqchip exists (`irqchip_in_kernel`): TPR shadow and
    /// APIC-access virtualisation are wanted (`vm_need_tpr_shadow`,
    /// `vm_need_virtualize_apic_accesses`).
    pub irqchip_in_kernel: bool,
    /// Physical address of the VM's APIC-access page.
    pub apic_access_page: u64,
    /// Physical address of this VCPU's LAPIC register page.
    pub virtual_apic_page: u64,
    /// Guest TSC offset (`vcpu.arch.tsc_offset`).
    pub tsc_offset: u64,
    /// Boot processor: starts at F000:FFF0; APs at the SIPI vector.
    pub is_bsp: bool,
    pub sipi_vector: u8,
    /// PML4 of the VM's EPT.
    pub ept_root: u64,
}

/// The exception bitmap (`update_exception_bitmap`): #PF (off under
/// EPT), #UD, #MC, #NM (off while the guest FPU is loaded), #DB, #AC; #BP
/// when userspace debugs with software breakpoints; everything in vm86.
pub fn exception_bitmap(ept: bool, fpu_active: bool, sw_bp: bool, vm86: bool) -> u32 {
    let mut eb: u32 = [
        PF_VECTOR, UD_VECTOR, MC_VECTOR, NM_VECTOR, DB_VECTOR, AC_VECTOR,
    ]
    .iter()
    .fold(0, |m, v| m | 1 << v);
    if sw_bp {
        eb |= 1 << BP_VECTOR;
    }
    if vm86 {
        eb = !0;
    }
    if ept {
        eb &= !(1 << PF_VECTOR);
    }
    if fpu_active {
        eb &= !(1 << NM_VECTOR);
    }
    eb
}

/// `vmx_vcpu_setup`: controls, bitmaps, host state, masks. Call with the
/// VCPU's VMCS current, after VMCLEAR + VMPTRLD of a fresh region.
pub fn setup_vmcs(v: &mut impl Vmcs, cfg: &VmcsConfig, host: &HostState, l: &VcpuLayout) {
    v.write(control::IO_BITMAP_A_ADDR_FULL, l.io_bitmap_a);
    v.write(control::IO_BITMAP_B_ADDR_FULL, l.io_bitmap_b);
    if cfg.msr_bitmaps() {
        v.write(control::MSR_BITMAPS_ADDR_FULL, l.msr_bitmap_legacy);
    }
    v.write(guest::LINK_PTR_FULL, u64::MAX); // §25.4.2

    v.write(control::PINBASED_EXEC_CONTROLS, u64::from(cfg.pin));

    let mut proc = cfg.proc;
    if !l.irqchip_in_kernel {
        proc = cfg
            .caps
            .procbased
            .without(proc, PrimaryControls::USE_TPR_SHADOW.bits());
        proc |= crate::caps::policy::CR8_EXITING;
    }
    v.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, u64::from(proc));

    if cfg.secondary() {
        let mut proc2 = cfg.proc2;
        if !l.irqchip_in_kernel {
            proc2 &= !SecondaryControls::VIRTUALIZE_APIC.bits();
        }
        if l.vpid == 0 {
            proc2 &= !SecondaryControls::ENABLE_VPID.bits();
        }
        v.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, u64::from(proc2));
    }
    if cfg.pause_loop_exiting() {
        v.write(control::PLE_GAP, u64::from(PLE_GAP));
        v.write(control::PLE_WINDOW, u64::from(PLE_WINDOW));
    }

    // bypass_guest_pf is forced off under EPT.
    v.write(control::PAGE_FAULT_ERR_CODE_MASK, 0);
    v.write(control::PAGE_FAULT_ERR_CODE_MATCH, 0);
    v.write(control::CR3_TARGET_COUNT, 0);

    v.write(host::CR0, host.cr0);
    v.write(host::CR4, host.cr4);
    v.write(host::CS_SELECTOR, u64::from(host.cs));
    v.write(host::DS_SELECTOR, u64::from(host.ds));
    v.write(host::ES_SELECTOR, u64::from(host.es));
    v.write(host::FS_SELECTOR, u64::from(host.fs));
    v.write(host::GS_SELECTOR, u64::from(host.gs));
    v.write(host::SS_SELECTOR, u64::from(host.ss));
    v.write(host::TR_SELECTOR, u64::from(host.tr));
    v.write(host::FS_BASE, host.fs_base);
    v.write(host::RIP, host.rip);
    v.write(host::IA32_SYSENTER_CS, u64::from(host.sysenter_cs));
    v.write(host::IA32_SYSENTER_EIP, host.sysenter_eip);
    v.write(control::VMEXIT_MSR_STORE_COUNT, 0);
    v.write(control::VMEXIT_MSR_LOAD_COUNT, 0);
    v.write(control::VMENTRY_MSR_LOAD_COUNT, 0);
    if cfg.exit & x86::vmx::vmcs::control::ExitControls::LOAD_IA32_PAT.bits() != 0 {
        v.write(host::IA32_PAT_FULL, host.pat);
    }
    if cfg.entry & EntryControls::LOAD_IA32_PAT.bits() != 0 {
        // The guest starts with the host's PAT (kept in vcpu.arch.pat).
        v.write(guest::IA32_PAT_FULL, host.pat);
    }

    v.write(control::VMEXIT_CONTROLS, u64::from(cfg.exit));
    v.write(control::VMENTRY_CONTROLS, u64::from(cfg.entry));

    v.write(control::CR0_GUEST_HOST_MASK, u64::MAX);
    v.write(control::CR4_GUEST_HOST_MASK, !cr4_guest_owned(cfg.ept()));
    v.write(control::TSC_OFFSET_FULL, l.tsc_offset);
    if cfg.ept() {
        v.write(control::EPTP_FULL, construct_eptp(l.ept_root));
    }
}

/// CR4 bits the guest may change without an exit.
pub const fn cr4_guest_owned(ept: bool) -> u64 {
    if ept {
        CR4_GUEST_OWNED | CR4_PGE
    } else {
        CR4_GUEST_OWNED
    }
}

/// The per-CPU host fields and the TSC offset of `vmx_vcpu_load` when the
/// VCPU last ran elsewhere. The caller also requests a TLB flush.
pub fn load_host_cpu_state(v: &mut impl Vmcs, cpu: &HostCpuState, guest_tsc_offset: u64) {
    v.write(host::TR_BASE, cpu.tr_base);
    v.write(host::GDTR_BASE, cpu.gdtr_base);
    v.write(host::GS_BASE, cpu.gs_base);
    v.write(host::IDTR_BASE, cpu.idtr_base);
    v.write(host::IA32_SYSENTER_ESP, cpu.sysenter_esp);
    v.write(host::CR3, cpu.cr3);
    v.write(
        control::TSC_OFFSET_FULL,
        cpu.tsc_tick_delta.wrapping_add(guest_tsc_offset),
    );
}

/// A guest segment register's four VMCS fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFields {
    pub selector: u32,
    pub base: u32,
    pub limit: u32,
    pub access_rights: u32,
}

/// ES, CS, SS, DS, FS, GS (`kvm_vmx_segment_fields`).
pub const SEGMENTS: [SegmentFields; 6] = [
    seg(
        guest::ES_SELECTOR,
        guest::ES_BASE,
        guest::ES_LIMIT,
        guest::ES_ACCESS_RIGHTS,
    ),
    seg(
        guest::CS_SELECTOR,
        guest::CS_BASE,
        guest::CS_LIMIT,
        guest::CS_ACCESS_RIGHTS,
    ),
    seg(
        guest::SS_SELECTOR,
        guest::SS_BASE,
        guest::SS_LIMIT,
        guest::SS_ACCESS_RIGHTS,
    ),
    seg(
        guest::DS_SELECTOR,
        guest::DS_BASE,
        guest::DS_LIMIT,
        guest::DS_ACCESS_RIGHTS,
    ),
    seg(
        guest::FS_SELECTOR,
        guest::FS_BASE,
        guest::FS_LIMIT,
        guest::FS_ACCESS_RIGHTS,
    ),
    seg(
        guest::GS_SELECTOR,
        guest::GS_BASE,
        guest::GS_LIMIT,
        guest::GS_ACCESS_RIGHTS,
    ),
];

const fn seg(selector: u32, base: u32, limit: u32, access_rights: u32) -> SegmentFields {
    SegmentFields {
        selector,
        base,
        limit,
        access_rights,
    }
}

/// The VMCS part of `vmx_vcpu_reset`: the architectural RESET state (SDM
/// vol. 3 §10.1.1, table 10-1) for the BSP, or the SIPI state for an AP,
/// with unrestricted guest (the vm86 real-mode path is not ported yet).
pub fn reset_guest_state(v: &mut impl Vmcs, cfg: &VmcsConfig, l: &VcpuLayout) {
    let ug = cfg.unrestricted_guest();
    for (i, s) in SEGMENTS.iter().enumerate() {
        v.write(s.selector, 0);
        v.write(s.base, 0);
        v.write(s.limit, 0xffff);
        // Accessed read/write data, present (0x93), CS accessed code (0x9b);
        // vm86 needs DPL 3 (0xf3).
        let ar = match (ug, i == 1) {
            (true, true) => 0x9b,
            (true, false) => 0x93,
            (false, _) => 0xf3,
        };
        v.write(s.access_rights, ar);
    }
    if l.is_bsp {
        // CS.base should be 0xffff0000; vm86 insists on base == sel << 4.
        v.write(guest::CS_SELECTOR, 0xf000);
        v.write(guest::CS_BASE, 0x000f_0000);
        v.write(guest::RIP, 0xfff0);
    } else {
        let vec = u64::from(l.sipi_vector);
        v.write(guest::CS_SELECTOR, vec << 8);
        v.write(guest::CS_BASE, vec << 12);
        v.write(guest::RIP, 0);
    }
    v.write(guest::TR_SELECTOR, 0);
    v.write(guest::TR_BASE, 0);
    v.write(guest::TR_LIMIT, 0xffff);
    v.write(guest::TR_ACCESS_RIGHTS, 0x8b);
    v.write(guest::LDTR_SELECTOR, 0);
    v.write(guest::LDTR_BASE, 0);
    v.write(guest::LDTR_LIMIT, 0xffff);
    v.write(guest::LDTR_ACCESS_RIGHTS, 0x82);
    v.write(guest::IA32_SYSENTER_CS, 0);
    v.write(guest::IA32_SYSENTER_ESP, 0);
    v.write(guest::IA32_SYSENTER_EIP, 0);
    v.write(guest::RFLAGS, 0x2);
    v.write(guest::RSP, 0);
    v.write(guest::DR7, 0x400);
    v.write(guest::GDTR_BASE, 0);
    v.write(guest::GDTR_LIMIT, 0xffff);
    v.write(guest::IDTR_BASE, 0);
    v.write(guest::IDTR_LIMIT, 0xffff);
    v.write(guest::ACTIVITY_STATE, 0);
    v.write(guest::INTERRUPTIBILITY_STATE, 0);
    v.write(guest::PENDING_DBG_EXCEPTIONS, 0);
    v.write(guest::IA32_DEBUGCTL_FULL, 0);
    v.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
    if cfg.tpr_shadow() {
        let page = if l.irqchip_in_kernel {
            l.virtual_apic_page
        } else {
            0
        };
        v.write(control::VIRT_APIC_ADDR_FULL, page);
        v.write(control::TPR_THRESHOLD, 0);
    }
    if l.irqchip_in_kernel && cfg.virtualize_apic_accesses() {
        v.write(control::APIC_ACCESS_ADDR_FULL, l.apic_access_page);
    }
    if l.vpid != 0 {
        v.write(control::VPID, u64::from(l.vpid));
    }
    // vmx_set_cr0(CD|NW|ET), vmx_set_cr4(0), vmx_set_efer(0), FPU active.
    set_cr0_bits(v, cfg, CR0_RESET, true);
    set_cr4_bits(v, cfg, 0, false, false);
    v.clear_bits(
        control::VMENTRY_CONTROLS,
        EntryControls::IA32E_MODE_GUEST.bits(),
    );
    v.write(guest::IA32_EFER_FULL, 0);
    v.write(
        control::EXCEPTION_BITMAP,
        u64::from(exception_bitmap(cfg.ept(), true, false, !ug)),
    );
}

/// `vmx_set_cr0` for a guest with unrestricted guest and EPT: the read
/// shadow holds the guest's value, GUEST_CR0 the one the CPU runs with, and
/// CR3 exiting follows paging (`ept_update_paging_mode_cr0`).
pub fn set_cr0_bits(v: &mut impl Vmcs, cfg: &VmcsConfig, cr0: u64, fpu_active: bool) {
    let mut hw = if cfg.unrestricted_guest() {
        (cr0 & !CR0_HOST_MASK_UG) | CR0_ALWAYS_ON_UG
    } else {
        (cr0 & !CR0_HOST_MASK) | CR0_ALWAYS_ON
    };
    if cfg.ept() {
        let cr3_exits =
            PrimaryControls::CR3_LOAD_EXITING.bits() | PrimaryControls::CR3_STORE_EXITING.bits();
        if cr0 & CR0_PG == 0 {
            v.set_bits(control::PRIMARY_PROCBASED_EXEC_CONTROLS, cr3_exits);
        } else {
            let proc = v.read32(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
            let proc = cfg.caps.procbased.without(proc, cr3_exits);
            v.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, u64::from(proc));
        }
        if cr0 & CR0_WP == 0 {
            hw &= !CR0_WP;
        }
    }
    if !fpu_active {
        hw |= CR0_TS | CR0_MP;
    }
    v.write(control::CR0_READ_SHADOW, cr0);
    v.write(guest::CR0, hw);
}

/// `vmx_set_cr4`: VMXE (and PAE) forced; under EPT without guest paging the
/// CPU runs with PSE and without PAE (identity map).
pub fn set_cr4_bits(v: &mut impl Vmcs, cfg: &VmcsConfig, cr4: u64, paging: bool, vm86: bool) {
    let mut hw = cr4
        | if vm86 {
            CR4_RMODE_ALWAYS_ON
        } else {
            CR4_PMODE_ALWAYS_ON
        };
    if cfg.ept() {
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

/// `vmx_create_vcpu`: a fresh VMCS region, zeroed, with the revision
/// identifier in its first four bytes (bit 31 clear: not a shadow VMCS;
/// SDM §25.2). The caller then VMCLEARs it before the first VMPTRLD.
pub fn init_vmcs_region(page: &mut Page, revision: u32) {
    page.fill(0);
    if let Some(dst) = page.get_mut(..4) {
        dst.copy_from_slice(&(revision & 0x7fff_ffff).to_le_bytes());
    }
}

/// `vmx_cpuid_update`: RDTSCP runs natively only when the guest's CPUID
/// (0x80000001 EDX bit 27) offers it; otherwise the control goes off so
/// RDTSCP raises #UD as on a CPU without it. Returns `rdtscp_enabled`.
pub fn cpuid_update(v: &mut impl Vmcs, cfg: &VmcsConfig, guest_has_rdtscp: bool) -> bool {
    if !cfg.rdtscp() {
        return false;
    }
    let rdtscp = SecondaryControls::ENABLE_RDTSCP.bits();
    if guest_has_rdtscp {
        // Back on after a CPUID table without it (KVM_SET_CPUID2 again).
        v.set_bits(control::SECONDARY_PROCBASED_EXEC_CONTROLS, rdtscp);
        true
    } else {
        v.clear_bits(control::SECONDARY_PROCBASED_EXEC_CONTROLS, rdtscp);
        false
    }
}

fn set_bit(page: &mut Page, bit: usize, value: bool) {
    if let Some(b) = page.get_mut(bit / 8) {
        let m = 1u8 << (bit % 8);
        if value {
            *b |= m;
        } else {
            *b &= !m;
        }
    }
}

fn test_bit(page: &Page, bit: usize) -> bool {
    page.get(bit / 8).is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

/// Fill the I/O bitmaps (`vmx_init`): every port exits except 0x80.
/// Bitmap A covers ports 0–0x7fff, B 0x8000–0xffff (SDM §25.6.4).
pub fn init_io_bitmaps(a: &mut Page, b: &mut Page) {
    a.fill(0xff);
    b.fill(0xff);
    set_bit(a, usize::from(PORT_POST), false);
}

/// Whether an access to `port` exits, per the bitmaps.
pub fn io_port_intercepted(a: &Page, b: &Page, port: u16) -> bool {
    let p = usize::from(port);
    if p < 0x8000 {
        test_bit(a, p)
    } else {
        test_bit(b, p - 0x8000)
    }
}

/// Read or write access, for the MSR bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess {
    Read,
    Write,
}

/// Byte offset of the bitmap that covers `msr` for `access`, and the bit
/// within it: read-low 0x000, read-high 0x400, write-low 0x800, write-high
/// 0xc00 (SDM §25.6.9). `None` outside 0–0x1fff and 0xc0000000–0xc0001fff
/// (those always exit).
fn msr_bit(msr: u32, access: MsrAccess) -> Option<usize> {
    let (base, idx) = match msr {
        0..=0x1fff => (0x000, msr),
        0xc000_0000..=0xc000_1fff => (0x400, msr & 0x1fff),
        _ => return None,
    };
    let base = match access {
        MsrAccess::Read => base,
        MsrAccess::Write => base + 0x800,
    };
    Some(base * 8 + idx as usize)
}

/// MSRs guests access without exits (`vmx_init`): the segment bases and
/// SYSENTER MSRs live in the VMCS; KERNEL_GS_BASE only in long mode.
pub const PASS_THROUGH_MSRS: [(u32, bool); 6] = [
    (x86::msr::IA32_FS_BASE, false),
    (x86::msr::IA32_GS_BASE, false),
    (x86::msr::IA32_KERNEL_GSBASE, true),
    (x86::msr::IA32_SYSENTER_CS, false),
    (x86::msr::IA32_SYSENTER_ESP, false),
    (x86::msr::IA32_SYSENTER_EIP, false),
];

/// Fill one MSR bitmap: every MSR exits except the pass-through ones
/// (`long_mode` selects the long-mode bitmap, which also passes
/// KERNEL_GS_BASE).
pub fn init_msr_bitmap(page: &mut Page, long_mode: bool) {
    page.fill(0xff);
    for (msr, longmode_only) in PASS_THROUGH_MSRS {
        if longmode_only && !long_mode {
            continue;
        }
        for access in [MsrAccess::Read, MsrAccess::Write] {
            if let Some(bit) = msr_bit(msr, access) {
                set_bit(page, bit, false);
            }
        }
    }
}

/// Whether `access` to `msr` exits, per the bitmap.
pub fn msr_intercepted(page: &Page, msr: u32, access: MsrAccess) -> bool {
    msr_bit(msr, access).is_none_or(|bit| test_bit(page, bit))
}

/// The MSR bitmap for the guest's mode (`setup_msrs`).
pub fn select_msr_bitmap(v: &mut impl Vmcs, cfg: &VmcsConfig, l: &VcpuLayout, long_mode: bool) {
    if cfg.msr_bitmaps() {
        let pa = if long_mode {
            l.msr_bitmap_longmode
        } else {
            l.msr_bitmap_legacy
        };
        v.write(control::MSR_BITMAPS_ADDR_FULL, pa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::tests::{nehalem, skylake};
    use crate::fake::FakeVmcs;
    use std::boxed::Box;
    use x86::vmx::vmcs::{control, guest, host};

    fn layout() -> VcpuLayout {
        VcpuLayout {
            vpid: 7,
            io_bitmap_a: 0x10_0000,
            io_bitmap_b: 0x10_1000,
            msr_bitmap_legacy: 0x10_2000,
            msr_bitmap_longmode: 0x10_3000,
            irqchip_in_kernel: true,
            apic_access_page: 0xfee0_0000,
            virtual_apic_page: 0x20_0000,
            tsc_offset: 0xffff_ffff_0000_0000,
            is_bsp: true,
            sipi_vector: 0,
            ept_root: 0x30_0000,
        }
    }

    fn host() -> HostState {
        HostState {
            cr0: 0x8005_003b,
            cr4: 0x0037_26f8,
            cs: 0x30,
            ds: 0x4b,
            es: 0x4b,
            ss: 0x38,
            fs: 0,
            gs: 0,
            tr: 0x40,
            fs_base: 0,
            sysenter_cs: 0x30,
            sysenter_eip: 0xffff_ffff_fb80_0000,
            pat: 0x0007_0406_0007_0406,
            rip: 0xffff_ffff_f7a0_1234,
        }
    }

    fn configured(cpu: &crate::caps::tests::MsrCpu) -> (FakeVmcs, VmcsConfig) {
        let cfg = VmcsConfig::probe(cpu).unwrap();
        let mut v = FakeVmcs::new();
        setup_vmcs(&mut v, &cfg, &host(), &layout());
        load_host_cpu_state(
            &mut v,
            &HostCpuState {
                cr3: 0x1234_5000,
                tr_base: 0xffff_fe00_0000_1000,
                gdtr_base: 0xffff_fe00_0000_2000,
                idtr_base: 0xffff_fe00_0000_3000,
                gs_base: 0xffff_fe00_0000_4000,
                sysenter_esp: 0xffff_fe00_0000_5000,
                tsc_tick_delta: 0x10,
            },
            layout().tsc_offset,
        );
        reset_guest_state(&mut v, &cfg, &layout());
        (v, cfg)
    }

    #[test]
    fn skylake_vmcs_holds_the_original_layout() {
        let (v, cfg) = configured(&skylake());
        assert_eq!(
            v.get(control::PINBASED_EXEC_CONTROLS),
            Some(u64::from(cfg.pin))
        );
        // CR3 exiting is back on: the guest starts without paging.
        let proc = v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() as u32;
        assert_eq!(proc, cfg.proc | 1 << 15 | 1 << 16);
        assert_eq!(
            proc & (1 << 19 | 1 << 20 | 1 << 9),
            0,
            "no CR8/INVLPG exits"
        );
        assert_eq!(
            v.get(control::SECONDARY_PROCBASED_EXEC_CONTROLS),
            Some(u64::from(cfg.proc2))
        );
        assert_eq!(v.get(control::VPID), Some(7));
        assert_eq!(v.get(control::PLE_GAP), Some(41));
        assert_eq!(v.get(control::PLE_WINDOW), Some(4096));
        assert_eq!(v.get(guest::LINK_PTR_FULL), Some(u64::MAX));
        assert_eq!(v.get(control::IO_BITMAP_A_ADDR_FULL), Some(0x10_0000));
        assert_eq!(v.get(control::IO_BITMAP_B_ADDR_FULL), Some(0x10_1000));
        assert_eq!(v.get(control::MSR_BITMAPS_ADDR_FULL), Some(0x10_2000));
        assert_eq!(v.get(control::EPTP_FULL), Some(0x30_0000 | 6 | 3 << 3));
        assert_eq!(v.get(control::CR0_GUEST_HOST_MASK), Some(u64::MAX));
        assert_eq!(
            v.get(control::CR4_GUEST_HOST_MASK),
            Some(!(CR4_PVI | CR4_DE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_PGE))
        );
        // #UD, #MC, #DB, #AC; not #PF (EPT), not #NM (FPU active).
        assert_eq!(
            v.get(control::EXCEPTION_BITMAP),
            Some(1 << 6 | 1 << 18 | 1 << 1 | 1 << 17)
        );
        assert_eq!(v.get(host::RIP), Some(host().rip));
        assert_eq!(v.get(host::CS_SELECTOR), Some(0x30));
        assert_eq!(v.get(host::TR_SELECTOR), Some(0x40));
        assert_eq!(v.get(host::IA32_PAT_FULL), Some(host().pat));
        assert_eq!(v.get(guest::IA32_PAT_FULL), Some(host().pat));
        assert_eq!(v.get(host::CR3), Some(0x1234_5000));
        assert_eq!(v.get(host::GDTR_BASE), Some(0xffff_fe00_0000_2000));
        assert_eq!(v.get(control::TSC_OFFSET_FULL), Some(0xffff_ffff_0000_0010));
        assert_eq!(v.get(control::VIRT_APIC_ADDR_FULL), Some(0x20_0000));
        assert_eq!(v.get(control::APIC_ACCESS_ADDR_FULL), Some(0xfee0_0000));
        assert_eq!(v.get(control::VMEXIT_CONTROLS), Some(u64::from(cfg.exit)));
        assert_eq!(v.get(control::VMENTRY_CONTROLS), Some(u64::from(cfg.entry)));
    }

    #[test]
    fn reset_state_is_the_architectural_one() {
        let (v, _) = configured(&skylake());
        assert_eq!(v.get(guest::CS_SELECTOR), Some(0xf000));
        assert_eq!(v.get(guest::CS_BASE), Some(0xf0000));
        assert_eq!(v.get(guest::RIP), Some(0xfff0));
        assert_eq!(v.get(guest::RFLAGS), Some(2));
        assert_eq!(v.get(guest::CS_ACCESS_RIGHTS), Some(0x9b));
        assert_eq!(v.get(guest::SS_ACCESS_RIGHTS), Some(0x93));
        assert_eq!(v.get(guest::TR_ACCESS_RIGHTS), Some(0x8b));
        assert_eq!(v.get(guest::LDTR_ACCESS_RIGHTS), Some(0x82));
        assert_eq!(v.get(guest::DR7), Some(0x400));
        // Shadow shows CD|NW|ET; the CPU runs with NE and without CD/NW
        // (and without WP, which the guest has clear under EPT).
        assert_eq!(v.get(control::CR0_READ_SHADOW), Some(0x6000_0010));
        assert_eq!(v.get(guest::CR0), Some(CR0_ET | CR0_NE));
        assert_eq!(v.get(control::CR4_READ_SHADOW), Some(0));
        assert_eq!(v.get(guest::CR4), Some(CR4_VMXE | CR4_PSE));
    }

    #[test]
    fn application_processor_starts_at_the_sipi_vector() {
        let cfg = VmcsConfig::probe(&skylake()).unwrap();
        let mut v = FakeVmcs::new();
        let l = VcpuLayout {
            is_bsp: false,
            sipi_vector: 0x9a,
            ..layout()
        };
        reset_guest_state(&mut v, &cfg, &l);
        assert_eq!(v.get(guest::CS_SELECTOR), Some(0x9a00));
        assert_eq!(v.get(guest::CS_BASE), Some(0x9a000));
        assert_eq!(v.get(guest::RIP), Some(0));
    }

    #[test]
    fn userspace_irqchip_keeps_cr8_exits_and_no_vpid_turns_vpid_off() {
        let cfg = VmcsConfig::probe(&skylake()).unwrap();
        let mut v = FakeVmcs::new();
        let l = VcpuLayout {
            irqchip_in_kernel: false,
            vpid: 0,
            ..layout()
        };
        setup_vmcs(&mut v, &cfg, &host(), &l);
        let proc = v.get(control::PRIMARY_PROCBASED_EXEC_CONTROLS).unwrap() as u32;
        assert_eq!(proc & (1 << 21), 0, "no TPR shadow");
        assert_eq!(proc & (1 << 19 | 1 << 20), 1 << 19 | 1 << 20);
        let p2 = v.get(control::SECONDARY_PROCBASED_EXEC_CONTROLS).unwrap() as u32;
        assert_eq!(p2 & (1 << 0 | 1 << 5), 0, "no APIC virtualisation, no VPID");
    }

    #[test]
    fn nehalem_without_unrestricted_guest_uses_vm86_attributes() {
        let (v, cfg) = configured(&nehalem());
        assert!(!cfg.unrestricted_guest());
        assert_eq!(v.get(guest::CS_ACCESS_RIGHTS), Some(0xf3));
        assert_eq!(
            v.get(control::EXCEPTION_BITMAP),
            Some(u64::from(!(1u32 << 14 | 1 << 7)))
        );
        // No PLE on Nehalem: the fields are not written.
        assert!(!v.has(control::PLE_GAP));
        // PE and PG forced on for vm86.
        let cr0 = v.get(guest::CR0).unwrap();
        assert_eq!(cr0 & (CR0_PE | CR0_NE), CR0_PE | CR0_NE);
    }

    #[test]
    fn vmcs_region_and_rdtscp() {
        let mut p: Box<Page> = Box::new([0xaa; PAGE_SIZE]);
        init_vmcs_region(&mut p, 4);
        assert_eq!(&p[..8], &[4, 0, 0, 0, 0, 0, 0, 0]);
        let (mut v, cfg) = configured(&skylake());
        assert!(cpuid_update(&mut v, &cfg, true));
        assert!(!cpuid_update(&mut v, &cfg, false));
        assert_eq!(
            v.get(control::SECONDARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 3),
            0
        );
        // A later KVM_SET_CPUID2 with RDTSCP turns it back on (the C left
        // it off for good once a table without RDTSCP had been seen).
        assert!(cpuid_update(&mut v, &cfg, true));
        assert_ne!(
            v.get(control::SECONDARY_PROCBASED_EXEC_CONTROLS).unwrap() & (1 << 3),
            0
        );
    }

    #[test]
    fn io_bitmaps_pass_only_port_0x80() {
        let mut a: Box<Page> = Box::new([0; PAGE_SIZE]);
        let mut b: Box<Page> = Box::new([0; PAGE_SIZE]);
        init_io_bitmaps(&mut a, &mut b);
        assert!(!io_port_intercepted(&a, &b, 0x80));
        for p in [0u16, 0x20, 0x7f, 0x81, 0x3f8, 0x7fff, 0x8000, 0xcf8, 0xffff] {
            assert!(io_port_intercepted(&a, &b, p), "port {p:#x}");
        }
        assert_eq!(a[0x10], 0xfe, "bit 0 of byte 0x10 is port 0x80");
    }

    #[test]
    fn msr_bitmaps_pass_the_original_msrs() {
        let mut legacy: Box<Page> = Box::new([0; PAGE_SIZE]);
        let mut long: Box<Page> = Box::new([0; PAGE_SIZE]);
        init_msr_bitmap(&mut legacy, false);
        init_msr_bitmap(&mut long, true);
        for msr in [0xc000_0100u32, 0xc000_0101, 0x174, 0x175, 0x176] {
            for a in [MsrAccess::Read, MsrAccess::Write] {
                assert!(!msr_intercepted(&legacy, msr, a), "{msr:#x}");
                assert!(!msr_intercepted(&long, msr, a), "{msr:#x}");
            }
        }
        assert!(msr_intercepted(&legacy, 0xc000_0102, MsrAccess::Read));
        assert!(!msr_intercepted(&long, 0xc000_0102, MsrAccess::Write));
        for msr in [0x10u32, 0x1b, 0x277, 0xc000_0080, 0x4000_0000, 0x4b56_4d00] {
            assert!(msr_intercepted(&long, msr, MsrAccess::Read), "{msr:#x}");
            assert!(msr_intercepted(&long, msr, MsrAccess::Write), "{msr:#x}");
        }
        // SYSENTER_CS (0x174): read-low bit 0x174 and write-low at 0x800.
        assert_eq!(legacy[0x174 / 8] & (1 << (0x174 % 8)), 0);
        assert_eq!(legacy[0x800 + 0x174 / 8] & (1 << (0x174 % 8)), 0);
        // FS_BASE (0xc0000100): read-high at 0x400, write-high at 0xc00.
        assert_eq!(legacy[0x400 + 0x100 / 8] & 1, 0);
        assert_eq!(legacy[0xc00 + 0x100 / 8] & 1, 0);
    }
}
