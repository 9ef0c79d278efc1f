//! The MSRs `kvm_set_msr_common`/`kvm_get_msr_common` handle (kvm_x86.c,
//! inventory §9.8); the VMCS-held and shared MSRs are `kvm_vmx::exit::
//! {get_msr, set_msr}`'s. Anything else is #GP, as in the C driver with
//! `ignore_msrs` off.

use kvm_ioctl::abi::hyperv::{
    HV_X64_MSR_APIC_ASSIST_PAGE, HV_X64_MSR_EOI, HV_X64_MSR_GUEST_OS_ID, HV_X64_MSR_HYPERCALL,
    HV_X64_MSR_ICR, HV_X64_MSR_TPR, HV_X64_MSR_VP_INDEX,
};
use kvm_vmx::env::Fault;
use kvm_vmx::state::{EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, set_efer};
use kvm_vmx::vcpu::VmxVcpu;
use kvm_vmx::vmcs::Vmcs;

use super::super::services::Services;
use super::super::vcpu::VcpuCore;

pub const MSR_P5_MC_ADDR: u32 = 0;
pub const MSR_P5_MC_TYPE: u32 = 1;
pub const MSR_KVM_WALL_CLOCK: u32 = 0x11;
pub const MSR_KVM_SYSTEM_TIME: u32 = 0x12;
pub const MSR_PLATFORM_ID: u32 = 0x17;
pub const MSR_APIC_BASE: u32 = 0x1b;
pub const MSR_EBL_CR_POWERON: u32 = 0x2a;
pub const MSR_UCODE_WRITE: u32 = 0x79;
pub const MSR_UCODE_REV: u32 = 0x8b;
pub const MSR_FSB_FREQ: u32 = 0xcd;
pub const MSR_MTRRCAP: u32 = 0xfe;
pub const MSR_MCG_CAP: u32 = 0x179;
pub const MSR_MCG_STATUS: u32 = 0x17a;
pub const MSR_MCG_CTL: u32 = 0x17b;
pub const MSR_PERF_STATUS: u32 = 0x198;
pub const MSR_MISC_ENABLE: u32 = 0x1a0;
pub const MSR_DEBUGCTL: u32 = 0x1d9;
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
pub const MSR_PAT: u32 = 0x277;
pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_K7_HWCR: u32 = 0xc001_0015;
pub const MSR_AMD64_NB_CFG: u32 = 0xc001_001f;
pub const MSR_FAM10H_MMIO_CONF_BASE: u32 = 0xc001_0058;
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
pub const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
pub const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

/// `kvm_init_msr_list`'s candidates (`msrs_to_save`): the first five are
/// always reported, the rest if the host has them.
pub const MSRS_TO_SAVE: [u32; 18] = [
    MSR_KVM_SYSTEM_TIME,
    MSR_KVM_WALL_CLOCK,
    HV_X64_MSR_GUEST_OS_ID,
    HV_X64_MSR_HYPERCALL,
    HV_X64_MSR_APIC_ASSIST_PAGE,
    0x174,
    0x175,
    0x176,
    0xc000_0081, // STAR
    0xc000_0083, // CSTAR
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0084, // SYSCALL_MASK
    0xc000_0082, // LSTAR
    0x10,        // TSC
    MSR_PERF_STATUS,
    MSR_PAT,
    MSR_VM_HSAVE_PA,
    0,
];
/// How many of [`MSRS_TO_SAVE`] are meaningful (the last slot is padding).
pub const MSRS_TO_SAVE_LEN: usize = 17;
/// Always reported, without probing (`KVM_SAVE_MSRS_BEGIN`).
pub const MSRS_SAVE_BEGIN: usize = 5;
/// `emulated_msrs`.
pub const EMULATED_MSRS: [u32; 1] = [MSR_MISC_ENABLE];

/// The generic MSR state of a VCPU (`vcpu->arch` fields).
#[derive(Clone, Debug)]
pub struct MsrState {
    /// IA32_APIC_BASE without an in-kernel LAPIC.
    pub apic_base: u64,
    /// CR8 without an in-kernel LAPIC.
    pub cr8: u64,
    pub misc_enable: u64,
    /// Variable MTRRs 0x200–0x20f, fixed ones, PAT, def type.
    pub mtrr_var: [u64; 16],
    pub mtrr_fixed: [u64; 11],
    pub mtrr_def_type: u64,
    pub pat: u64,
    /// kvmclock (MSR_KVM_SYSTEM_TIME): written by `RunCtx::set_msr`.
    pub kvmclock: crate::vm::kvmclock::VcpuClock,
    /// `hv_vapic`: HV_X64_MSR_APIC_ASSIST_PAGE as written (write-only, as
    /// in the C: its RDMSR is #GP).
    pub hv_vapic: u64,
    pub mcg_status: u64,
}

impl Default for MsrState {
    fn default() -> Self {
        MsrState {
            apic_base: 0xfee0_0000 | (1 << 11),
            cr8: 0,
            misc_enable: 0,
            mtrr_var: [0; 16],
            mtrr_fixed: [0; 11],
            mtrr_def_type: 0,
            pat: 0x0007_0406_0007_0406,
            kvmclock: crate::vm::kvmclock::VcpuClock::default(),
            hv_vapic: 0,
            mcg_status: 0,
        }
    }
}

/// `HV_X64_MSR_APIC_ASSIST_PAGE_ENABLE`.
const HV_APIC_ASSIST_PAGE_ENABLE: u64 = 1;

/// The LAPIC register behind a Hyper-V synthetic APIC MSR.
fn hv_apic_reg(msr: u32) -> u32 {
    match msr {
        HV_X64_MSR_EOI => 0xb0,
        HV_X64_MSR_ICR => 0x300,
        _ => 0x80, // HV_X64_MSR_TPR
    }
}

/// Index of a fixed-range MTRR (0x250, 0x258, 0x259, 0x268–0x26f).
fn fixed_mtrr(msr: u32) -> Option<usize> {
    match msr {
        0x250 => Some(0),
        0x258 => Some(1),
        0x259 => Some(2),
        0x268..=0x26f => Some(3 + (msr - 0x268) as usize),
        _ => None,
    }
}

impl MsrState {
    /// `kvm_get_msr_common`.
    pub fn get<S: Services>(
        &mut self,
        core: &VcpuCore<S>,
        vcpu: &VmxVcpu,
        msr: u32,
        apic_base: u64,
    ) -> Result<u64, Fault> {
        Ok(match msr {
            MSR_EFER => vcpu.efer,
            MSR_APIC_BASE => apic_base,
            MSR_MTRRCAP => 0x508,
            0x200..=0x20f => *self
                .mtrr_var
                .get((msr - 0x200) as usize)
                .ok_or(Fault::Gp(0))?,
            MSR_MTRR_DEF_TYPE => self.mtrr_def_type,
            MSR_PAT => self.pat,
            m if fixed_mtrr(m).is_some() => fixed_mtrr(m)
                .and_then(|i| self.mtrr_fixed.get(i).copied())
                .unwrap_or(0),
            MSR_MISC_ENABLE => self.misc_enable,
            MSR_MCG_CAP => core.mcg_cap,
            MSR_MCG_CTL => {
                if core.mcg_cap & kvm_ioctl::MCG_CTL_P == 0 {
                    return Err(Fault::Gp(0));
                }
                core.mcg_ctl
            }
            MSR_MCG_STATUS => self.mcg_status,
            0x400..=0x47f => {
                let banks = (core.mcg_cap & 0xff) as u32;
                if msr >= 0x400 + 4 * banks {
                    return Err(Fault::Gp(0));
                }
                core.mce_banks
                    .get((msr - 0x400) as usize)
                    .copied()
                    .unwrap_or(0)
            }
            MSR_P5_MC_ADDR | MSR_P5_MC_TYPE => 0,
            // VM-wide, as the C's `kvm->arch.wall_clock`.
            MSR_KVM_WALL_CLOCK | MSR_KVM_WALL_CLOCK_NEW => core.shared().arch().wall_clock_msr,
            MSR_KVM_SYSTEM_TIME | MSR_KVM_SYSTEM_TIME_NEW => self.kvmclock.msr,
            MSR_K7_HWCR
            | MSR_FAM10H_MMIO_CONF_BASE
            | MSR_AMD64_NB_CFG
            | MSR_UCODE_REV
            | MSR_VM_HSAVE_PA
            | MSR_DEBUGCTL
            | MSR_PLATFORM_ID
            | MSR_EBL_CR_POWERON
            | 0x1db..=0x1de
            | 0xc001_0010
            | 0xc001_0055
            | 0x186
            | 0x187
            | 0xc1
            | 0xc2
            | 0xc001_0000..=0xc001_0007 => 0,
            MSR_FSB_FREQ => 3,
            MSR_PERF_STATUS => 1000 | (4 << 40),
            // `get_msr_hyperv_pw`, the partition-wide Hyper-V MSRs.
            HV_X64_MSR_GUEST_OS_ID | HV_X64_MSR_HYPERCALL => {
                core.shared().get_msr_hyperv_pw(msr).ok_or(Fault::Gp(0))?
            }
            // `get_msr_hyperv`: the VCPU's index, and the LAPIC's EOI
            // (not readable: #GP, as `apic_reg_read`), ICR and TPR.
            HV_X64_MSR_VP_INDEX => u64::from(core.index()),
            HV_X64_MSR_ICR | HV_X64_MSR_TPR => core
                .shared()
                .devices()
                .lock()
                .hv_vapic_msr_read(core.index(), hv_apic_reg(msr))
                .ok_or(Fault::Gp(0))?,
            _ => return Err(Fault::Gp(0)),
        })
    }

    /// `kvm_set_msr_common`.
    pub fn set<S: Services>(
        &mut self,
        core: &mut VcpuCore<S>,
        vcpu: &mut VmxVcpu,
        v: &mut impl Vmcs,
        msr: u32,
        data: u64,
    ) -> Result<(), Fault> {
        match msr {
            MSR_EFER => {
                if data & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 {
                    return Err(Fault::Gp(0));
                }
                let paging = kvm_vmx::cr::guest_cr0(v) & kvm_vmx::setup::CR0_PG != 0;
                if paging && (data ^ vcpu.efer) & EFER_LME != 0 {
                    return Err(Fault::Gp(0));
                }
                let keep = vcpu.efer & EFER_LMA;
                set_efer(vcpu, v, (data & !EFER_LMA) | keep);
            }
            MSR_APIC_BASE => {
                // `kvm_set_apic_base`: the LAPIC applies the enable and
                // x2APIC (EXTD) bits with the SDM's #GP rules (§11.12.5);
                // a base at or above the guest's MAXPHYADDR (CPUID
                // 80000008H:EAX[7:0], 36 without the leaf) is reserved.
                let maxphyaddr = super::cpuid_lookup(core, 0x8000_0008, 0)
                    .map_or(36, |e| (e.eax & 0xff).clamp(32, 52));
                if data >> maxphyaddr != 0 {
                    return Err(Fault::Gp(0));
                }
                match core.with_lapic(|l| l.set_apic_base(data)) {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(Fault::Gp(0)),
                    Err(_) => self.apic_base = data,
                }
            }
            0x200..=0x20f => {
                if let Some(s) = self.mtrr_var.get_mut((msr - 0x200) as usize) {
                    *s = data;
                }
            }
            MSR_MTRR_DEF_TYPE => self.mtrr_def_type = data,
            MSR_PAT => {
                let valid = data
                    .to_le_bytes()
                    .iter()
                    .all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7));
                if !valid {
                    return Err(Fault::Gp(0));
                }
                self.pat = data;
            }
            m if fixed_mtrr(m).is_some() => {
                if let Some(s) = fixed_mtrr(m).and_then(|i| self.mtrr_fixed.get_mut(i)) {
                    *s = data;
                }
            }
            MSR_MISC_ENABLE => self.misc_enable = data,
            MSR_MCG_STATUS => self.mcg_status = data,
            MSR_MCG_CTL => {
                if core.mcg_cap & kvm_ioctl::MCG_CTL_P == 0 || (data != 0 && data != !0) {
                    return Err(Fault::Gp(0));
                }
                core.mcg_ctl = data;
            }
            0x400..=0x47f => {
                let banks = (core.mcg_cap & 0xff) as u32;
                if msr >= 0x400 + 4 * banks {
                    return Err(Fault::Gp(0));
                }
                let i = (msr - 0x400) as usize;
                // MCi_CTL: only 0 or all ones.
                if i.is_multiple_of(4) && data != 0 && data != !0 {
                    return Err(Fault::Gp(0));
                }
                // MCi_STATUS: only 0 (from the guest).
                if i % 4 == 1 && data != 0 {
                    return Err(Fault::Gp(0));
                }
                if let Some(s) = core.mce_banks.get_mut(i) {
                    *s = data;
                }
            }
            // kvmclock's MSRs write guest memory and ask for the host's
            // clock: `RunCtx::set_msr` handles them before this.
            MSR_KVM_WALL_CLOCK
            | MSR_KVM_WALL_CLOCK_NEW
            | MSR_KVM_SYSTEM_TIME
            | MSR_KVM_SYSTEM_TIME_NEW => return Err(Fault::Gp(0)),
            MSR_K7_HWCR => {
                if data & !(1 << 6) != 0 {
                    return Err(Fault::Gp(0));
                }
            }
            MSR_FAM10H_MMIO_CONF_BASE => {
                if data != 0 {
                    return Err(Fault::Gp(0));
                }
            }
            MSR_DEBUGCTL => {
                // 0, LBR (bit 0) and BTF (bit 1) are accepted as no-ops.
                if data & !3 != 0 {
                    return Err(Fault::Gp(0));
                }
            }
            MSR_AMD64_NB_CFG
            | MSR_UCODE_REV
            | MSR_UCODE_WRITE
            | MSR_VM_HSAVE_PA
            | 0xc001_0020
            | 0x186
            | 0x187
            | 0xc1
            | 0xc2
            | 0xc001_0000..=0xc001_0007 => {}
            // `set_msr_hyperv_pw`, with `vmx_patch_hypercall`'s VMCALL for
            // the hypercall page.
            HV_X64_MSR_GUEST_OS_ID | HV_X64_MSR_HYPERCALL => core
                .shared()
                .set_msr_hyperv_pw(msr, data, kvm_vmx::exit::VMX_HYPERCALL)
                .map_err(|_| Fault::Gp(0))?,
            // `set_msr_hyperv`: the APIC assist page is zeroed when
            // enabled; EOI, ICR and TPR are LAPIC register writes
            // (`kvm_hv_vapic_msr_write`, in-kernel LAPIC only).
            HV_X64_MSR_APIC_ASSIST_PAGE => {
                if data & HV_APIC_ASSIST_PAGE_ENABLE != 0 {
                    let gpa = data & !0xfff;
                    let zeros = [0u8; 256];
                    let mut mmu = core.shared().mmu().lock();
                    for off in (0..4096u64).step_by(zeros.len()) {
                        mmu.write_guest(gpa.wrapping_add(off), &zeros)
                            .map_err(|_| Fault::Gp(0))?;
                    }
                }
                self.hv_vapic = data;
            }
            HV_X64_MSR_EOI | HV_X64_MSR_ICR | HV_X64_MSR_TPR => core
                .shared()
                .devices()
                .lock()
                .hv_vapic_msr_write(core.index(), hv_apic_reg(msr), data)
                .ok_or(Fault::Gp(0))?,
            _ => return Err(Fault::Gp(0)),
        }
        Ok(())
    }
}
