//! A VCPU: port of `kvm_vm_ioctl_create_vcpu` minus the handle model
//! (`kvm_vcpu_init`: the 2-page `kvm_run` + PIO area; `kvm_arch_vcpu_init`:
//! MP state, the LAPIC when the irqchip exists; `kvm_arch_vcpu_create`: the
//! `vcpu-<vmid>` kstat) and of the VCPU ioctls whose state the backend
//! holds: GET/SET_LAPIC, GET/SET_MP_STATE, SET/GET_CPUID2,
//! X86_SETUP_MCE, GET/SET_VCPU_EVENTS, SET_VAPIC_ADDR, NMI and INTERRUPT.
//! Everything else goes to the [`VmxSeam`].
//!
//! Differences from the C driver:
//! * GET/SET_LAPIC and SET_VAPIC_ADDR on a VCPU without a LAPIC (created
//!   before KVM_CREATE_IRQCHIP) are EINVAL (the C dereferenced NULL).
//! * The LAPIC offers neither TSC-deadline mode nor directed EOI, matching
//!   the CPUID KVM_GET_SUPPORTED_CPUID reports (the C LAPIC had neither TSC
//!   deadline; its version register followed the guest's x2APIC bit).
//! * SET_VCPU_EVENTS with an injected interrupt does not reset the PIC's
//!   `isr_ack` (`kvm_pic_clear_isr_ack`): the PIC model has no such state.
//! * `nmi.masked` is held here until the VMX seam owns the guest
//!   interruptibility state (the C read/wrote it in the VMCS).
//! * GET_VCPU_EVENTS first moves an NMI the LAPIC accepted into
//!   `nmi_pending` (the C's LAPIC set `nmi_pending` directly).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ffi::CStr;

use kvm_devices::lapic::{Lapic, LapicConfig, LapicState, MpState as DevMpState};
use kvm_ioctl::abi::{
    KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SIPI_VECTOR, MpState, kvm_cpuid_entry2,
    kvm_lapic_state, kvm_vcpu_events,
};
use kvm_ioctl::{Errno, KVM_MAX_CPUID_ENTRIES, KVM_MAX_MCE_BANKS, MCG_CTL_P, VcpuRequest};
use kvm_kstat::stats::vcpu_kstat_name;
use kvm_kstat::{Published, VcpuStats};

use super::VmxSeam;
use super::kstat::Installed;
use super::services::{Services, TimerOwner};
use super::vm::{Vm, VmShared};

/// Exception, interrupt and NMI state of `struct kvm_vcpu_arch` (what
/// KVM_GET/SET_VCPU_EVENTS move; the VMX run loop injects from it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// `exception.pending`.
    pub exception_pending: bool,
    /// `exception.nr`.
    pub exception_nr: u8,
    /// `exception.has_error_code`.
    pub exception_has_error_code: bool,
    /// `exception.error_code`.
    pub exception_error_code: u32,
    /// `interrupt.pending`.
    pub interrupt_pending: bool,
    /// `interrupt.nr`.
    pub interrupt_nr: u8,
    /// `interrupt.soft`.
    pub interrupt_soft: bool,
    /// `nmi_injected`.
    pub nmi_injected: bool,
    /// `nmi_pending`.
    pub nmi_pending: bool,
    /// The guest's NMI blocking (`get_nmi_mask`).
    pub nmi_masked: bool,
    /// `sipi_vector`.
    pub sipi_vector: u32,
}

/// The backend-held state of a VCPU (`struct kvm_vcpu` minus VMX).
pub struct VcpuCore<S: Services> {
    index: u32,
    id: u32,
    bsp: bool,
    shared: Arc<VmShared<S>>,
    run: S::Shared,
    stats: Installed<S, VcpuStats>,
    has_lapic: bool,
    /// MP state of a VCPU without LAPIC (with one, the LAPIC holds it).
    mp_state: MpState,
    /// KVM_SET_CPUID2's table (`cpuid_entries`, `cpuid_nent`). Boxed like
    /// the other large members: a VCPU is built, then moved into its lock
    /// and `Arc`, and every move of an inline 1.6 KB table would be a
    /// kernel-stack copy.
    pub cpuid: Box<[kvm_cpuid_entry2; KVM_MAX_CPUID_ENTRIES]>,
    /// Valid entries of [`Self::cpuid`].
    pub cpuid_nent: usize,
    /// `mcg_cap`.
    pub mcg_cap: u64,
    /// `mcg_ctl`.
    pub mcg_ctl: u64,
    /// `mce_banks` (CTL, STATUS, ADDR, MISC per bank).
    pub mce_banks: Box<[u64]>,
    /// Pending/injected events.
    pub events: Events,
    /// KVM_SET_VAPIC_ADDR (`apic->vapic_addr`).
    pub vapic_addr: u64,
    /// The debugger's record and event ring (`kvcpu_ringbuf`), boxed so
    /// the VM's record can point at it.
    pub debug: Box<kvm_kstat::debug::KvmDebugVcpu>,
}

impl<S: Services> VcpuCore<S> {
    /// Index in the VM (the value KVM_CREATE_VCPU returned).
    pub fn index(&self) -> u32 {
        self.index
    }
    /// The id user space gave.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Whether this is the boot CPU.
    pub fn is_bsp(&self) -> bool {
        self.bsp
    }
    /// The VM's shared state (MMU, devices with this VCPU's LAPIC).
    pub fn shared(&self) -> &Arc<VmShared<S>> {
        &self.shared
    }
    /// The `kvm_run` + PIO pages.
    pub fn run_pages(&self) -> &S::Shared {
        &self.run
    }
    /// The `vcpu-<vmid>` kstat's counters.
    pub fn stats(&self) -> &VcpuStats {
        self.stats.stats()
    }
    /// Whether the VCPU has a LAPIC (`vcpu->arch.apic != NULL`).
    pub fn has_lapic(&self) -> bool {
        self.has_lapic
    }

    /// Runs `f` on this VCPU's LAPIC; EINVAL without one.
    pub fn with_lapic<R>(
        &self,
        f: impl FnOnce(&mut Lapic<S::Clock, S::Timer>) -> R,
    ) -> Result<R, Errno> {
        if !self.has_lapic {
            return Err(Errno::EINVAL);
        }
        let mut d = self.shared.devices().lock();
        d.lapic(self.index).map(f).ok_or(Errno::EINVAL)
    }

    /// `vcpu->arch.mp_state` (and the SIPI vector with SIPI_RECEIVED).
    pub fn mp_state(&self) -> MpState {
        match self.with_lapic(|l| l.mp_state()) {
            Ok(s) => abi_mp_state(s),
            Err(_) => self.mp_state,
        }
    }

    pub(crate) fn set_mp_state(&mut self, s: MpState) {
        let vector = self.events.sipi_vector as u8;
        let dev = match s {
            MpState::Runnable => DevMpState::Runnable,
            MpState::Uninitialized => DevMpState::Uninitialized,
            MpState::InitReceived => DevMpState::InitReceived,
            MpState::Halted => DevMpState::Halted,
            MpState::SipiReceived => DevMpState::SipiReceived(vector),
        };
        if self.with_lapic(|l| l.set_mp_state(dev)).is_err() {
            self.mp_state = s;
        }
    }

    /// The SIPI vector (the LAPIC's, once a SIPI arrived there).
    fn sipi_vector(&self) -> u32 {
        match self.with_lapic(|l| l.mp_state()) {
            Ok(DevMpState::SipiReceived(v)) => u32::from(v),
            _ => self.events.sipi_vector,
        }
    }

    /// Port of `kvm_vcpu_ioctl_x86_setup_mce` (checks repeated from the
    /// dispatcher: banks 1..31, caps within MCG_CTL_P | 0xff | 0xff0000).
    fn setup_mce(&mut self, cap: u64) -> Result<i32, Errno> {
        let banks = (cap & 0xff) as usize;
        if banks == 0 || banks >= KVM_MAX_MCE_BANKS as usize {
            return Err(Errno::EINVAL);
        }
        if cap & !(MCG_CTL_P | 0xff | 0xff_0000) != 0 {
            return Err(Errno::EINVAL);
        }
        self.mcg_cap = cap;
        if cap & MCG_CTL_P != 0 {
            self.mcg_ctl = !0;
        }
        for bank in self.mce_banks.chunks_exact_mut(4).take(banks) {
            if let Some(ctl) = bank.first_mut() {
                *ctl = !0;
            }
        }
        Ok(0)
    }

    /// Port of `kvm_vcpu_ioctl_x86_get_vcpu_events`.
    fn get_events(&mut self, ev: &mut kvm_vcpu_events) {
        if let Ok(true) = self.with_lapic(|l| l.take_nmi()) {
            self.events.nmi_pending = true;
        }
        let e = &self.events;
        ev.exception.injected = u8::from(e.exception_pending);
        ev.exception.nr = e.exception_nr;
        ev.exception.has_error_code = u8::from(e.exception_has_error_code);
        ev.exception.error_code = e.exception_error_code;
        ev.interrupt.injected = u8::from(e.interrupt_pending);
        ev.interrupt.nr = e.interrupt_nr;
        ev.interrupt.soft = u8::from(e.interrupt_soft);
        ev.nmi.injected = u8::from(e.nmi_injected);
        ev.nmi.pending = u8::from(e.nmi_pending);
        ev.nmi.masked = u8::from(e.nmi_masked);
        ev.sipi_vector = self.sipi_vector();
        ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    }

    /// Port of `kvm_vcpu_ioctl_x86_set_vcpu_events` (flags checked again).
    fn set_events(&mut self, ev: &kvm_vcpu_events) -> Result<i32, Errno> {
        if ev.flags & !(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR) != 0 {
            return Err(Errno::EINVAL);
        }
        let e = &mut self.events;
        e.exception_pending = ev.exception.injected != 0;
        e.exception_nr = ev.exception.nr;
        e.exception_has_error_code = ev.exception.has_error_code != 0;
        e.exception_error_code = ev.exception.error_code;
        e.interrupt_pending = ev.interrupt.injected != 0;
        e.interrupt_nr = ev.interrupt.nr;
        e.interrupt_soft = ev.interrupt.soft != 0;
        e.nmi_injected = ev.nmi.injected != 0;
        if ev.flags & KVM_VCPUEVENT_VALID_NMI_PENDING != 0 {
            e.nmi_pending = ev.nmi.pending != 0;
        }
        e.nmi_masked = ev.nmi.masked != 0;
        if ev.flags & KVM_VCPUEVENT_VALID_SIPI_VECTOR != 0 {
            e.sipi_vector = ev.sipi_vector;
            let v = ev.sipi_vector as u8;
            let _ = self.with_lapic(|l| {
                if let DevMpState::SipiReceived(_) = l.mp_state() {
                    l.set_mp_state(DevMpState::SipiReceived(v));
                }
            });
        }
        Ok(0)
    }

    /// A request the backend answers itself; `None` for one the VMX seam
    /// must answer.
    fn request<'a>(&mut self, req: VcpuRequest<'a>) -> Result<Result<i32, Errno>, VcpuRequest<'a>> {
        Ok(match req {
            VcpuRequest::GetLapic(out) => self.with_lapic(|l| {
                out.regs = l.save().regs;
                0
            }),
            VcpuRequest::SetLapic(st) => {
                let st = LapicState { regs: st.regs };
                self.with_lapic(|l| {
                    l.restore(&st);
                    0
                })
            }
            VcpuRequest::GetMpState(out) => {
                let s = self.mp_state();
                out.mp_state = s as u32;
                Ok(0)
            }
            VcpuRequest::SetMpState(s) => {
                self.set_mp_state(s);
                Ok(0)
            }
            VcpuRequest::SetCpuid2(entries) => {
                if entries.len() > KVM_MAX_CPUID_ENTRIES {
                    return Ok(Err(Errno::E2BIG));
                }
                for (d, s) in self.cpuid.iter_mut().zip(entries.iter()) {
                    *d = *s;
                }
                self.cpuid_nent = entries.len();
                Ok(0)
            }
            VcpuRequest::GetCpuid2(table) => {
                let n = self.cpuid_nent.min(KVM_MAX_CPUID_ENTRIES);
                for (d, s) in table.iter_mut().zip(self.cpuid.iter()).take(n) {
                    *d = *s;
                }
                i32::try_from(n).map_err(|_| Errno::E2BIG)
            }
            VcpuRequest::X86SetupMce(cap) => self.setup_mce(cap),
            VcpuRequest::GetVcpuEvents(out) => {
                self.get_events(out);
                Ok(0)
            }
            VcpuRequest::SetVcpuEvents(ev) => self.set_events(ev),
            VcpuRequest::SetVapicAddr(addr) => {
                if !self.has_lapic {
                    return Ok(Err(Errno::EINVAL));
                }
                self.vapic_addr = addr;
                Ok(0)
            }
            VcpuRequest::Nmi => {
                // kvm_inject_nmi
                self.events.nmi_pending = true;
                Ok(0)
            }
            VcpuRequest::Interrupt(irq) => {
                // kvm_queue_interrupt(vcpu, irq, 0)
                let nr = u8::try_from(irq).map_err(|_| Errno::EINVAL);
                nr.map(|nr| {
                    self.events.interrupt_pending = true;
                    self.events.interrupt_nr = nr;
                    self.events.interrupt_soft = false;
                    0
                })
            }
            other => return Err(other),
        })
    }
}

fn abi_mp_state(s: DevMpState) -> MpState {
    match s {
        DevMpState::Runnable => MpState::Runnable,
        DevMpState::Uninitialized => MpState::Uninitialized,
        DevMpState::InitReceived => MpState::InitReceived,
        DevMpState::Halted => MpState::Halted,
        DevMpState::SipiReceived(_) => MpState::SipiReceived,
    }
}

/// A VCPU: the backend-held state and the VMX seam's.
pub struct Vcpu<S: Services, X: VmxSeam<S>> {
    // Field order is drop order: the VMX state (which the platform may
    // have told about `core.debug`, the event ring) goes first.
    vmx: X::Vcpu,
    core: VcpuCore<S>,
}

impl<S: Services, X: VmxSeam<S>> Vcpu<S, X> {
    /// Port of `kvm_vm_ioctl_create_vcpu`'s backend part. Order: the
    /// `kvm_run` pages, the kstat, the LAPIC (if the irqchip exists), the
    /// VMX state, the private slots; the LAPIC joins the VM last, so a
    /// failure at any step leaves the VM unchanged.
    pub(crate) fn create(
        services: &Arc<S>,
        vmx: &X,
        vm: &mut Vm<S, X>,
        index: u32,
        id: u32,
        is_bsp: bool,
    ) -> Result<Self, Errno> {
        let shared = vm.shared().clone();
        let run = services.alloc_shared(2)?;
        let caller = services.caller();
        let name = vcpu_kstat_name(u64::from(shared.id()));
        let name = CStr::from_bytes_until_nul(&name).map_err(|_| Errno::EINVAL)?;
        let instance = i32::try_from(id).map_err(|_| Errno::EINVAL)?;
        let data = Published::vcpu(
            u64::from(shared.id()),
            shared.stats().pid.get(),
            caller.zone(),
        );
        // The C failed the creation with EINVAL when kstat_create_zone did.
        let stats = Installed::install(services, instance, name, VcpuStats::NDATA, data)
            .map_err(|_| Errno::EINVAL)?;
        let has_irqchip = shared.devices().lock().has_irqchip();
        let lapic = has_irqchip.then(|| {
            let cfg = LapicConfig {
                bsp: is_bsp,
                tsc_deadline: false,
                directed_eoi: false,
                ..LapicConfig::new(id)
            };
            let owner = TimerOwner::Lapic {
                vm: shared.id(),
                vcpu: index,
            };
            Lapic::new(cfg, services.clock(), services.timer(owner))
        });
        let core = VcpuCore {
            index,
            id,
            bsp: is_bsp,
            shared: shared.clone(),
            run,
            stats,
            has_lapic: lapic.is_some(),
            mp_state: if !has_irqchip || is_bsp {
                MpState::Runnable
            } else {
                MpState::Uninitialized
            },
            cpuid: zeroed_box(),
            cpuid_nent: 0,
            mcg_cap: 0,
            mcg_ctl: 0,
            mce_banks: alloc::vec![0; KVM_MAX_MCE_BANKS as usize * 4].into_boxed_slice(),
            events: Events::default(),
            vapic_addr: 0,
            debug: kvm_kstat::debug::KvmDebugVcpu::new_boxed(id),
        };
        {
            let mut d = shared.devices().lock();
            let slots = (index as usize).saturating_add(1);
            d.lapics.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            let more = slots.saturating_sub(d.lapic_of.len());
            d.lapic_of.try_reserve(more).map_err(|_| Errno::ENOMEM)?;
        }
        let vmx_vcpu = vmx.create_vcpu(&mut vm.vmx, &core)?;
        vm.prepare_vcpu_slots(vmx)?;
        {
            let mut d = shared.devices().lock();
            let slot = lapic.map(|l| {
                d.lapics.push(l);
                d.lapics.len() - 1
            });
            let i = index as usize;
            if d.lapic_of.len() <= i {
                d.lapic_of.resize(i + 1, None);
            }
            if let Some(s) = d.lapic_of.get_mut(i) {
                *s = slot;
            }
        }
        let _ = shared
            .debug()
            .lock()
            .get_mut()
            .set_vcpu(index as usize, &core.debug);
        Ok(Vcpu {
            core,
            vmx: vmx_vcpu,
        })
    }

    /// The backend-held state.
    pub fn core(&self) -> &VcpuCore<S> {
        &self.core
    }

    /// A VCPU request: backend-held state here, the rest to the VMX seam.
    pub(crate) fn request(&mut self, vmx: &X, req: VcpuRequest<'_>) -> Result<i32, Errno> {
        match self.core.request(req) {
            Ok(r) => r,
            Err(req) => vmx.vcpu_request(&mut self.core, &mut self.vmx, req),
        }
    }
}

impl<S: Services, X: VmxSeam<S>> Drop for Vcpu<S, X> {
    /// `kvm_arch_vcpu_free`: the LAPIC leaves the VM (its timer is
    /// cancelled by the model's drop of the platform timer).
    fn drop(&mut self) {
        // The VM's record must not point at the freed ring.
        let _ = self
            .core
            .shared
            .debug()
            .lock()
            .get_mut()
            .clear_vcpu(self.core.index as usize);
        if !self.core.has_lapic {
            return;
        }
        let mut d = self.core.shared.devices().lock();
        let i = self.core.index as usize;
        let Some(slot) = d.lapic_of.get_mut(i).and_then(Option::take) else {
            return;
        };
        if slot < d.lapics.len() {
            let _ = d.lapics.swap_remove(slot);
            // The LAPIC that moved into `slot` was the last one.
            let moved = d.lapics.len();
            for s in d.lapic_of.iter_mut().flatten() {
                if *s == moved {
                    *s = slot;
                }
            }
        }
    }
}

/// `kvm_lapic_state` bytes of a LAPIC (for tests and the VMX seam).
pub fn lapic_to_abi(st: &LapicState) -> kvm_lapic_state {
    kvm_lapic_state { regs: st.regs }
}

/// A zeroed `T` allocated in kmem directly, never built on the stack.
fn zeroed_box<T: kvm_ioctl::abi::Pod>() -> Box<T> {
    // SAFETY: all-zero bytes are a valid `T: Pod`.
    unsafe { Box::<T>::new_zeroed().assume_init() }
}
