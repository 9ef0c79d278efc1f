//! The VM backend: [`VmBackend`] implements [`kvm_ioctl::Backend`] over the
//! subsystem crates (`kvm-mmu`, `kvm-devices`, `kvm-kstat`) and the kernel
//! services of [`Services`], so the driver's `Driver<P, B>` gets real VMs:
//! memory slots and dirty logging, the private memslots, the in-kernel
//! PIC/IOAPIC/LAPIC/PIT with GSI routing, coalesced MMIO, CPUID tables, MP
//! state, MCE banks, VCPU events and the kstats.
//!
//! What needs VMX (KVM_RUN, GET/SET_REGS, SREGS, MSRS, FPU, the MSR index
//! list, INVEPT) goes through the [`VmxSeam`] trait; [`NoVmx`] answers
//! ENOTSUP and never ran a guest (so no INVEPT is owed). [`vmx::RealVmx`]
//! is the real seam over `kvm-vmx` and a platform [`vmx::VmxHost`]; the
//! driver picks `VmBackend<IllumosServices, RealVmx<IllumosVmxHost>>`
//! (`VmBackend::with_vmx(services, RealVmx::new(host))`).
//!
//! | module | what |
//! |---|---|
//! | [`services`] | [`Services`]: what the platform provides (pages, timers, clock, CPUID, caller, kstats, private memory) |
//! | [`vm`] | [`Vm`]/[`VmShared`]: creation, memory regions, dirty log, TSS/identity/APIC-access private slots, coalesced MMIO |
//! | [`vcpu`] | [`Vcpu`]: creation (`kvm_run` pages, LAPIC, kstat), the VCPU requests that need no VMX |
//! | [`irqchip`] | PIC pair + IOAPIC + routing: CREATE_IRQCHIP, IRQ_LINE, GET/SET_IRQCHIP, SET_GSI_ROUTING |
//! | [`pit`] | CREATE_PIT(2), GET/SET_PIT2 |
//! | [`cpuid`] | KVM_GET_SUPPORTED_CPUID (inventory §2.2) |
//! | [`caps`] | `supports(cap)` |
//! | [`kstat`] | the installed `vm` / `vcpu-<vmid>` kstats |
//! | [`vmx`] | [`vmx::RealVmx`]: KVM_RUN, registers, MSRs, FPU over `kvm-vmx` and [`vmx::VmxHost`] |
//!
//! Locks: the driver serialises each VM (its `VmState` lock) and each VCPU
//! (its run lock). State both sides reach — the MMU, the devices (PIC,
//! IOAPIC, routing, LAPICs, PIT, I/O buses) and the coalesced-MMIO zones —
//! is in [`VmShared`] behind leaf `spin::Mutex`es, never two at once except
//! in the order `arch` → `mmu` (see [`VmShared`]).
//!
//! Contract kept: an `Err` from any request leaves the VM and VCPU as they
//! were (every check and allocation happens before the first change).

pub mod caps;
pub mod cpuid;
pub mod debug;
pub mod irqchip;
pub mod kstat;
pub mod kvmclock;
pub mod pit;
pub mod services;
pub mod vcpu;
#[allow(clippy::module_inception)]
pub mod vm;
pub mod vmx;

use alloc::sync::Arc;

use kvm_ioctl::abi::{Capability, kvm_cpuid_entry2};
use kvm_ioctl::{Backend, Errno, VcpuRequest, VmId, VmRequest};

pub use services::{Caller, Services, SharedPages, TimerOwner};
pub use vcpu::{Vcpu, VcpuCore};
pub use vm::{Vm, VmShared};

/// The seam the VMX work fills: everything that needs VMX root operation.
/// Default methods are the behaviour of a backend without it ([`NoVmx`]).
pub trait VmxSeam<S: Services>: Send + Sync {
    /// Per-VM VMX state (VPID, the list of CPUs that ran the VM, ...).
    type Vm: Send;
    /// Per-VCPU VMX state (VMCS, guest registers, FPU, MSRs).
    type Vcpu: Send;

    /// Port of `kvm_hvm_incr`'s `vmx_init` part on the first open.
    fn hardware_enable(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// Port of `kvm_hvm_decr` on the last close.
    fn hardware_disable(&self) {}
    /// Whether a capability whose implementation is VMX's (HLT, NOP_IO_DELAY,
    /// INTERNAL_ERROR_DATA, CLOCKSOURCE, HYPERV*, X86_ROBUST_SINGLESTEP) is
    /// built. [`caps`] asks only for those.
    fn supports(&self, _cap: Capability) -> bool {
        false
    }
    /// KVM_GET_MSR_INDEX_LIST (`msrs_to_save` probed with `rdmsr_safe`,
    /// then `emulated_msrs`).
    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        Err(Errno::ENOTSUP)
    }
    /// Whether VCPUs need the APIC-access page (`flexpriority`, i.e.
    /// `vm_need_virtualize_apic_accesses` once the irqchip exists).
    fn virtualize_apic_accesses(&self) -> bool {
        false
    }
    /// Per-VM state at KVM_CREATE_VM.
    fn create_vm(&self, shared: &Arc<VmShared<S>>) -> Result<Self::Vm, Errno>;
    /// Per-VCPU state at KVM_CREATE_VCPU (`vmx_create_vcpu` minus what
    /// [`Vcpu`] holds). Nothing is changed if it fails.
    fn create_vcpu(&self, vm: &mut Self::Vm, core: &VcpuCore<S>) -> Result<Self::Vcpu, Errno>;
    /// The MMU asked for an INVEPT (`Invept::Needed`): run INVEPT
    /// single-context on every CPU that ran this VM. The caller then calls
    /// `Mmu::invept_done`. Default: no CPU ever ran a guest of this VM.
    fn flush_ept(&self, _vm: &Self::Vm, _shared: &VmShared<S>) {}
    /// An interrupt may have become pending for the VM's VCPUs
    /// (KVM_IRQ_LINE, KVM_SET_IRQCHIP): wake them from `kvm_vcpu_block`
    /// (the C `kvm_vcpu_kick` from `kvm_apic_set_irq`/`pic_irq_request`).
    /// Default: no VCPU ever blocks.
    fn kick_vm(&self, _vm: &Self::Vm, _shared: &VmShared<S>) {}
    /// A VCPU request that needs VMX: Run, Get/SetRegs, Get/SetSregs,
    /// Get/SetMsrs, Get/SetFpu. `core` is the backend-held VCPU state
    /// (LAPIC via `core.shared()`, CPUID table, events, MP state, MCE).
    fn vcpu_request(
        &self,
        _core: &mut VcpuCore<S>,
        _vmx: &mut Self::Vcpu,
        _req: VcpuRequest<'_>,
    ) -> Result<i32, Errno> {
        Err(Errno::ENOTSUP)
    }
}

/// The VMX seam of a backend without VMX: KVM_RUN and the register ioctls
/// are ENOTSUP, no VMX capability is claimed, no guest ever runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoVmx;

impl<S: Services> VmxSeam<S> for NoVmx {
    type Vm = ();
    type Vcpu = ();
    fn create_vm(&self, _shared: &Arc<VmShared<S>>) -> Result<(), Errno> {
        Ok(())
    }
    fn create_vcpu(&self, _vm: &mut (), _core: &VcpuCore<S>) -> Result<(), Errno> {
        Ok(())
    }
}

/// The /dev/kvm backend over the services `S` and the VMX seam `X`.
pub struct VmBackend<S: Services, X: VmxSeam<S> = NoVmx> {
    services: Arc<S>,
    vmx: X,
}

impl<S: Services> VmBackend<S, NoVmx> {
    /// A backend without VMX.
    pub fn new(services: S) -> Self {
        Self::with_vmx(services, NoVmx)
    }
}

impl<S: Services, X: VmxSeam<S>> VmBackend<S, X> {
    /// A backend with the VMX seam `vmx`.
    pub fn with_vmx(services: S, vmx: X) -> Self {
        VmBackend {
            services: Arc::new(services),
            vmx,
        }
    }

    /// The platform services.
    pub fn services(&self) -> &Arc<S> {
        &self.services
    }

    /// The VMX seam.
    pub fn vmx(&self) -> &X {
        &self.vmx
    }
}

impl<S: Services, X: VmxSeam<S>> Backend for VmBackend<S, X> {
    type Vm = Vm<S, X>;
    type Vcpu = Vcpu<S, X>;
    type MapCookie = S::MapCookie;

    fn hardware_enable(&self) -> Result<(), Errno> {
        self.vmx.hardware_enable()
    }

    fn hardware_disable(&self) {
        self.vmx.hardware_disable();
    }

    fn supports(&self, cap: Capability) -> bool {
        caps::supports(cap, |c| self.vmx.supports(c))
    }

    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        self.vmx.msr_index_list()
    }

    fn supported_cpuid(&self, out: &mut [kvm_cpuid_entry2]) -> Result<usize, Errno> {
        Ok(cpuid::supported_cpuid(self.services.cpu(), out))
    }

    fn create_vm(&self, id: VmId) -> Result<Self::Vm, Errno> {
        Vm::create(&self.services, &self.vmx, id)
    }

    // Out of line: keeps its locals out of the dispatcher frame (kernel
    // stack budget, `make` --max-frame).
    #[inline(never)]
    fn create_vcpu(
        &self,
        vm: &mut Self::Vm,
        index: u32,
        id: u32,
        is_bsp: bool,
    ) -> Result<Self::Vcpu, Errno> {
        Vcpu::create(&self.services, &self.vmx, vm, index, id, is_bsp)
    }

    fn vm_request(&self, vm: &mut Self::Vm, req: VmRequest<'_>) -> Result<i32, Errno> {
        vm.request(&self.vmx, req)
    }

    fn vcpu_request(&self, vcpu: &mut Self::Vcpu, req: VcpuRequest<'_>) -> Result<i32, Errno> {
        vcpu.request(&self.vmx, req)
    }

    fn vcpu_map_cookie(&self, vcpu: &Self::Vcpu) -> S::MapCookie {
        vcpu.core().run_pages().cookie()
    }

    fn ring_map_cookie(&self, vm: &Self::Vm) -> S::MapCookie {
        vm.shared().ring().cookie()
    }
}
