//! The platform half of device timers (what the illumos cyclic callback
//! does): a fired `TimerOwner` finds its VM's shared state and calls the
//! device model's `on_timer(now)`. To find VMs by id, the backend's VMX
//! seam is wrapped ([`BareSeam`]) so that `create_vm` records each VM's
//! shared state — the platform's bookkeeping, not a call into the driver.

extern crate alloc;

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use ::kvm::vm::vmx::RealVmx;
use ::kvm::vm::{TimerOwner, VcpuCore, VmShared, VmxSeam};
use kvm_ioctl::abi::Capability;
use kvm_ioctl::{Errno, VcpuRequest};

use super::services::BareServices;
use super::vmx_host::BareVmxHost;
use crate::sync::SpinLock;

type Shared = VmShared<BareServices>;

static VMS: SpinLock<Vec<Weak<Shared>>> = SpinLock::new(Vec::new());

/// Calls the device's timer callback for `owner` at `now`.
pub fn fire(owner: TimerOwner, now: u64) {
    let vm_id = match owner {
        TimerOwner::Pit { vm } | TimerOwner::Lapic { vm, .. } => vm,
    };
    let vm = VMS
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .find(|v| v.id() == vm_id);
    let Some(vm) = vm else {
        return;
    };
    let mut d = vm.devices().lock();
    match owner {
        TimerOwner::Pit { .. } => {
            if let Some(p) = d.pit.as_mut() {
                p.pit.on_timer(now);
            }
        }
        TimerOwner::Lapic { vcpu, .. } => {
            if let Some(l) = d.lapic(vcpu) {
                l.on_timer(now);
            }
        }
    }
}

/// `RealVmx` over the bare-metal host, recording VMs for [`fire`].
pub struct BareSeam(pub RealVmx<BareVmxHost>);

type Inner = RealVmx<BareVmxHost>;

impl VmxSeam<BareServices> for BareSeam {
    type Vm = <Inner as VmxSeam<BareServices>>::Vm;
    type Vcpu = <Inner as VmxSeam<BareServices>>::Vcpu;

    fn hardware_enable(&self) -> Result<(), Errno> {
        <Inner as VmxSeam<BareServices>>::hardware_enable(&self.0)
    }
    fn hardware_disable(&self) {
        <Inner as VmxSeam<BareServices>>::hardware_disable(&self.0);
    }
    fn supports(&self, cap: Capability) -> bool {
        <Inner as VmxSeam<BareServices>>::supports(&self.0, cap)
    }
    fn msr_index_list(&self) -> Result<&[u32], Errno> {
        <Inner as VmxSeam<BareServices>>::msr_index_list(&self.0)
    }
    fn virtualize_apic_accesses(&self) -> bool {
        <Inner as VmxSeam<BareServices>>::virtualize_apic_accesses(&self.0)
    }
    fn create_vm(&self, shared: &Arc<Shared>) -> Result<Self::Vm, Errno> {
        let vm = self.0.create_vm(shared)?;
        let mut vms = VMS.lock();
        vms.retain(|w| w.strong_count() > 0);
        vms.push(Arc::downgrade(shared));
        Ok(vm)
    }
    fn create_vcpu(
        &self,
        vm: &mut Self::Vm,
        core: &VcpuCore<BareServices>,
    ) -> Result<Self::Vcpu, Errno> {
        self.0.create_vcpu(vm, core)
    }
    fn flush_ept(&self, vm: &Self::Vm, shared: &Shared) {
        self.0.flush_ept(vm, shared);
    }
    fn vcpu_request(
        &self,
        core: &mut VcpuCore<BareServices>,
        vmx: &mut Self::Vcpu,
        req: VcpuRequest<'_>,
    ) -> Result<i32, Errno> {
        self.0.vcpu_request(core, vmx, req)
    }
}
