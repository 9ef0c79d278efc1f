//! The subsystems behind the ioctls (VMX, MMU, in-kernel devices, CPUID and
//! MSR probing) as one trait. The dispatcher validates and copies every
//! input first, then hands the backend a typed request; the backend returns
//! `Ok(rval)` or an errno.
//!
//! Contract for implementors: an `Err` must leave the VM/VCPU unchanged
//! (check everything before mutating). [`Unimplemented`] is the backend of
//! a driver whose subsystems are not built yet: it creates empty VMs and
//! VCPUs (the handle model works) and answers every subsystem request with
//! `ENOTSUP`, changing nothing.

use crate::abi::{
    Capability, kvm_coalesced_mmio_zone, kvm_cpuid_entry2, kvm_fpu, kvm_irq_routing_entry,
    kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs,
    kvm_userspace_memory_region, kvm_vcpu_events,
};
use crate::abi::{IrqchipId, MpState};
use crate::errno::Errno;

/// A VM's id (`kvmid`): monotonically increasing from 0, returned by
/// KVM_CREATE_VM.
pub type VmId = u32;

/// The `sigset_t` of KVM_SET_SIGNAL_MASK (16 bytes on illumos).
pub type SigSet = [u8; 16];

/// A validated VM-wide request (the ioctl named in each variant).
pub enum VmRequest<'a> {
    /// KVM_SET_USER_MEMORY_REGION: already checked (slot < 32, flags,
    /// alignment, no overflow, no resize, no overlap with another slot).
    SetUserMemoryRegion(&'a kvm_userspace_memory_region),
    /// KVM_GET_DIRTY_LOG of a slot with dirty logging: fill `bitmap` (one
    /// bit per page, zeroed on entry) and reset the log.
    GetDirtyLog {
        /// The memslot.
        slot: u32,
        /// The bitmap, `ceil(npages / 64) * 8` bytes.
        bitmap: &'a mut [u8],
    },
    /// KVM_SET_TSS_ADDR (the argument by value).
    SetTssAddr(u64),
    /// KVM_SET_IDENTITY_MAP_ADDR.
    SetIdentityMapAddr(u64),
    /// KVM_CREATE_IRQCHIP (only when none exists).
    CreateIrqchip,
    /// KVM_IRQ_LINE / KVM_IRQ_LINE_STATUS (irqchip exists); `Ok` is the
    /// status copied back by KVM_IRQ_LINE_STATUS.
    IrqLine {
        /// The GSI.
        irq: u32,
        /// The level.
        level: u32,
    },
    /// KVM_GET_IRQCHIP of `chip.chip_id` (validated).
    GetIrqchip(IrqchipId, &'a mut kvm_irqchip),
    /// KVM_SET_IRQCHIP (chip id validated).
    SetIrqchip(IrqchipId, &'a kvm_irqchip),
    /// KVM_CREATE_PIT (flags = SPEAKER_DUMMY) / KVM_CREATE_PIT2 (only when
    /// no PIT exists; flags validated).
    CreatePit {
        /// `kvm_pit_config.flags`.
        flags: u32,
    },
    /// KVM_REGISTER_COALESCED_MMIO (`addr + size` does not overflow).
    RegisterCoalescedMmio(&'a kvm_coalesced_mmio_zone),
    /// KVM_UNREGISTER_COALESCED_MMIO.
    UnregisterCoalescedMmio(&'a kvm_coalesced_mmio_zone),
    /// KVM_SET_GSI_ROUTING: 1..1024 entries, each validated (gsi, type,
    /// chip, pin, no duplicate chip per gsi, MSI one-to-one).
    SetGsiRouting(&'a [kvm_irq_routing_entry]),
    /// KVM_GET_PIT2 (a PIT exists).
    GetPit2(&'a mut kvm_pit_state2),
    /// KVM_SET_PIT2 (a PIT exists; flags validated).
    SetPit2(&'a kvm_pit_state2),
}

/// A validated per-VCPU request.
#[derive(Debug)]
pub enum VcpuRequest<'a> {
    /// KVM_RUN, with the mask of KVM_SET_SIGNAL_MASK to apply around it.
    Run {
        /// The signal mask, if one is set.
        sigmask: Option<&'a SigSet>,
    },
    /// KVM_GET_REGS.
    GetRegs(&'a mut kvm_regs),
    /// KVM_SET_REGS.
    SetRegs(&'a kvm_regs),
    /// KVM_GET_SREGS.
    GetSregs(&'a mut kvm_sregs),
    /// KVM_SET_SREGS.
    SetSregs(&'a kvm_sregs),
    /// KVM_INTERRUPT (vector < 256; the VM has no in-kernel irqchip).
    Interrupt(u32),
    /// KVM_GET_MSRS (at most 100 entries); `Ok(n)`: entries processed.
    GetMsrs(&'a mut [kvm_msr_entry]),
    /// KVM_SET_MSRS (at most 100 entries); `Ok(n)`: entries processed.
    SetMsrs(&'a [kvm_msr_entry]),
    /// KVM_SET_CPUID2 (at most 40 entries).
    SetCpuid2(&'a [kvm_cpuid_entry2]),
    /// KVM_GET_CPUID2: fill up to 40 entries, `Ok(n)` = how many.
    GetCpuid2(&'a mut [kvm_cpuid_entry2; crate::KVM_MAX_CPUID_ENTRIES]),
    /// KVM_GET_FPU.
    GetFpu(&'a mut kvm_fpu),
    /// KVM_SET_FPU.
    SetFpu(&'a kvm_fpu),
    /// KVM_GET_LAPIC.
    GetLapic(&'a mut kvm_lapic_state),
    /// KVM_SET_LAPIC.
    SetLapic(&'a kvm_lapic_state),
    /// KVM_SET_VAPIC_ADDR.
    SetVapicAddr(u64),
    /// KVM_GET_MP_STATE.
    GetMpState(&'a mut kvm_mp_state),
    /// KVM_SET_MP_STATE (a valid state).
    SetMpState(MpState),
    /// KVM_NMI.
    Nmi,
    /// KVM_X86_SETUP_MCE (banks 1..31, caps within MCG_CTL_P | 0xff | 0xff0000).
    X86SetupMce(u64),
    /// KVM_GET_VCPU_EVENTS.
    GetVcpuEvents(&'a mut kvm_vcpu_events),
    /// KVM_SET_VCPU_EVENTS (flags within NMI_PENDING | SIPI_VECTOR).
    SetVcpuEvents(&'a kvm_vcpu_events),
}

/// The subsystems behind /dev/kvm.
pub trait Backend: Send + Sync {
    /// Per-VM state of the subsystems (`struct kvm` minus the handle model).
    /// Dropped when the last fd of the VM closes (after its VCPUs).
    type Vm: Send;
    /// Per-VCPU state (`struct kvm_vcpu`). Dropped with its VM.
    type Vcpu: Send;
    /// What devmap hands to `devmap_umem_setup` (a `ddi_umem_cookie_t`).
    type MapCookie: Copy + Send + Sync;

    /// Port of `kvm_hvm_incr` on the first open (`hma_register`, `vmx_init`).
    fn hardware_enable(&self) -> Result<(), Errno>;
    /// Port of `kvm_hvm_decr` on the last close.
    fn hardware_disable(&self);
    /// Whether the subsystem behind `cap` is built (KVM_CHECK_EXTENSION
    /// answers 0 for a capability whose subsystem is not).
    fn supports(&self, cap: Capability) -> bool;
    /// The MSRs KVM_GET_MSR_INDEX_LIST reports (`msrs_to_save` then
    /// `emulated_msrs`).
    fn msr_index_list(&self) -> Result<&[u32], Errno>;
    /// KVM_GET_SUPPORTED_CPUID: fill `out` (1..=40 entries) with the host's
    /// supported leaves, `Ok(n)` = entries produced (E2BIG if they don't fit).
    fn supported_cpuid(&self, out: &mut [kvm_cpuid_entry2]) -> Result<usize, Errno>;
    /// Port of `kvm_create_vm`.
    fn create_vm(&self, id: VmId) -> Result<Self::Vm, Errno>;
    /// Port of `kvm_vm_ioctl_create_vcpu` minus the handle model: the VCPU
    /// at `index` (0, 1, ...) with user id `id`; `is_bsp` if `id` is the
    /// boot CPU id.
    fn create_vcpu(
        &self,
        vm: &mut Self::Vm,
        index: u32,
        id: u32,
        is_bsp: bool,
    ) -> Result<Self::Vcpu, Errno>;
    /// A VM-wide request.
    fn vm_request(&self, vm: &mut Self::Vm, req: VmRequest<'_>) -> Result<i32, Errno>;
    /// A per-VCPU request.
    fn vcpu_request(&self, vcpu: &mut Self::Vcpu, req: VcpuRequest<'_>) -> Result<i32, Errno>;
    /// The 2-page `kvm_run` + PIO area of a VCPU (`vcpu->cookie`); asked
    /// once, right after `create_vcpu`.
    fn vcpu_map_cookie(&self, vcpu: &Self::Vcpu) -> Self::MapCookie;
    /// The VM's coalesced-MMIO ring page (`kvm->mmio_cookie`); asked once,
    /// right after `create_vm`.
    fn ring_map_cookie(&self, vm: &Self::Vm) -> Self::MapCookie;
}

/// The backend of a driver whose subsystems are not built yet: empty VMs and
/// VCPUs, `supports` false for every capability, and `ENOTSUP` with no state
/// change for every subsystem request, MSR list and CPUID query.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unimplemented;

impl Backend for Unimplemented {
    type Vm = ();
    type Vcpu = ();
    type MapCookie = ();

    fn hardware_enable(&self) -> Result<(), Errno> {
        Ok(())
    }
    fn hardware_disable(&self) {}
    fn supports(&self, _cap: Capability) -> bool {
        false
    }
    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        Err(Errno::ENOTSUP)
    }
    fn supported_cpuid(&self, _out: &mut [kvm_cpuid_entry2]) -> Result<usize, Errno> {
        Err(Errno::ENOTSUP)
    }
    fn create_vm(&self, _id: VmId) -> Result<(), Errno> {
        Ok(())
    }
    fn create_vcpu(&self, _vm: &mut (), _index: u32, _id: u32, _bsp: bool) -> Result<(), Errno> {
        Ok(())
    }
    fn vm_request(&self, _vm: &mut (), _req: VmRequest<'_>) -> Result<i32, Errno> {
        Err(Errno::ENOTSUP)
    }
    fn vcpu_request(&self, _vcpu: &mut (), _req: VcpuRequest<'_>) -> Result<i32, Errno> {
        Err(Errno::ENOTSUP)
    }
    fn vcpu_map_cookie(&self, _vcpu: &()) {}
    fn ring_map_cookie(&self, _vm: &()) {}
}
