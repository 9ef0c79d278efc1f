//! `Backend::supports`: which KVM_CHECK_EXTENSION capabilities this backend
//! implements (the dispatcher answers 0 for the others and keeps the C
//! values for these).

use kvm_ioctl::abi::Capability;

/// Whether `cap`'s implementation is built. Capabilities that live in the
/// run loop, the emulator or the MSR code ask the VMX seam (`vmx`).
pub fn supports(cap: Capability, vmx: impl Fn(Capability) -> bool) -> bool {
    use Capability as C;
    match cap {
        // Memory slots (kvm-mmu), the handle model, CPUID tables.
        C::UserMemory
        | C::DestroyMemoryRegionWorks
        | C::JoinMemoryRegionsWorks
        | C::SetBootCpuId
        | C::NrVcpus
        | C::NrMemslots
        | C::SyncMmu
        | C::SetTssAddr
        | C::SetIdentityMapAddr
        | C::ExtCpuid => true,
        // In-kernel devices and routing (kvm-devices).
        C::Irqchip
        | C::IrqRouting
        | C::IrqInjectStatus
        | C::Pit
        | C::Pit2
        | C::PitState2
        | C::CoalescedMmio => true,
        // VCPU state held by the backend.
        C::MpState | C::Mce | C::VcpuEvents => true,
        // Run loop, exits, emulator, paravirt MSRs: VMX's.
        C::Hlt
        | C::NopIoDelay
        | C::InternalErrorData
        | C::Clocksource
        | C::Hyperv
        | C::HypervVapic
        | C::HypervSpin
        | C::X86RobustSinglestep => vmx(cap),
        // Claimed by the C without an implementation, or never claimed.
        C::MmuShadowCacheControl
        | C::ReinjectControl
        | C::AssignDevIrq
        | C::Ioeventfd
        | C::XenHvm
        | C::AdjustClock
        | C::PciSegment
        | C::Vapic
        | C::Iommu
        | C::PvMmu
        | C::UserNmi
        | C::S390Psw
        | C::PpcSegstate => false,
    }
}
