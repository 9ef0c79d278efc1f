//! The ioctl dispatcher: port of kvm.c `kvm_ioctl` (kvm.c:1943) with every
//! input validated and copied in before anything changes. Handlers of
//! subsystems go through [`Backend`]; the handle model and the system
//! ioctls are decided here.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::abi::*;
use crate::backend::{Backend, SigSet, VcpuRequest, VmRequest};
use crate::driver::{Driver, Handle, VcpuObj, VmObj, VmState};
use crate::errno::Errno;
use crate::platform::{DataModel, Dev, Lock, Platform, UserMemory};
use crate::validate;
use crate::{KVM_MAX_CPUID_ENTRIES, KVM_MAX_IO_MSRS, KVM_MAX_IRQ_ROUTES, KVM_MAX_VCPUS};
use alloc::sync::Arc;

/// Reads a `T` from user address `uaddr` (EFAULT on failure).
fn copyin<T: Pod, U: UserMemory + ?Sized>(um: &mut U, uaddr: u64) -> Result<T, Errno> {
    let mut v = T::zeroed();
    um.copyin(uaddr, v.as_bytes_mut())?;
    Ok(v)
}

/// A zeroed `T` built in kmem, never on the 20 KiB kernel stack
/// (`Box::new(value)` may build the value on the stack first).
fn zeroed_box<T: Pod>() -> Box<T> {
    // SAFETY: every bit pattern, all zeroes included, is a valid `T: Pod`.
    unsafe { Box::<T>::new_zeroed().assume_init() }
}

/// Reads a `T` from user address `uaddr` straight into kmem (for the large
/// ABI structs: `kvm_msrs` is 1608 bytes, `kvm_lapic_state` 1024).
fn copyin_box<T: Pod, U: UserMemory + ?Sized>(um: &mut U, uaddr: u64) -> Result<Box<T>, Errno> {
    let mut v = zeroed_box::<T>();
    um.copyin(uaddr, v.as_bytes_mut())?;
    Ok(v)
}

/// Writes `v` to user address `uaddr` (EFAULT on failure).
fn copyout<T: Pod, U: UserMemory + ?Sized>(um: &mut U, v: &T, uaddr: u64) -> Result<(), Errno> {
    um.copyout(v.as_bytes(), uaddr)?;
    Ok(())
}

/// `uaddr + off`; a wrap is a bad address.
fn uoff(uaddr: u64, off: usize) -> Result<u64, Errno> {
    uaddr.checked_add(off as u64).ok_or(Errno::EFAULT)
}

/// The bytes of a slice of ABI values.
fn slice_bytes<T: Pod>(s: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` has no padding and arrays of it have none between
    // elements, so every byte of the slice is initialised; the returned
    // slice borrows `s`.
    unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<u8>(), core::mem::size_of_val(s)) }
}

/// The bytes of a slice of ABI values, writable.
fn slice_bytes_mut<T: Pod>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as `slice_bytes`; any bytes written leave valid `T`s (Pod).
    unsafe {
        core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), core::mem::size_of_val(s))
    }
}

/// `n` zeroed ABI values read from user address `uaddr`.
fn copyin_vec<T: Pod, U: UserMemory + ?Sized>(
    um: &mut U,
    uaddr: u64,
    n: usize,
) -> Result<Vec<T>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Errno::ENOMEM)?;
    v.resize(n, T::zeroed());
    um.copyin(uaddr, slice_bytes_mut(&mut v))?;
    Ok(v)
}

fn vm_of<P: Platform, B: Backend>(h: &Handle<P, B>) -> Result<&Arc<VmObj<P, B>>, Errno> {
    h.vm.as_ref().ok_or(Errno::EINVAL)
}

fn vcpu_of<P: Platform, B: Backend>(h: &Handle<P, B>) -> Result<&Arc<VcpuObj<P, B>>, Errno> {
    h.vcpu.as_ref().ok_or(Errno::EINVAL)
}

impl<P: Platform, B: Backend> Driver<P, B> {
    /// Port of `kvm_ioctl` (kvm.c:1943). `cmd` and `arg` are the raw ioctl
    /// arguments, `mode` the ioctl `mode` (for the data model), `um` the
    /// caller's address space. `Ok(rval)` is `*rvalp`; `Err(e)` the errno.
    ///
    /// * ENXIO for a minor that is not open; EINVAL for a 32-bit caller
    ///   (the ABI is LP64; the C driver only refused 32-bit mmap).
    /// * Every ioctl of inventory §1.5 is handled; the ten of §1.6 and any
    ///   other number fire the `kvm-bad-ioctl` probe and fail with EINVAL.
    /// * VM ioctls need a VM on this minor, VCPU ioctls a VCPU (else EINVAL);
    ///   that is checked before copyin (the C driver sometimes copied in
    ///   first, so with both faults it answered EFAULT).
    /// * Subsystem requests go to the backend only after validation; an
    ///   error from any step leaves the driver state unchanged.
    pub fn ioctl<U: UserMemory + ?Sized>(
        &self,
        dev: Dev,
        cmd: i32,
        arg: u64,
        mode: i32,
        um: &mut U,
    ) -> Result<i32, Errno> {
        let h = self.handle(dev)?;
        if self.platform.data_model(mode) == DataModel::Ilp32 {
            return Err(Errno::EINVAL);
        }
        let cmd = cmd as u32;
        let Some(ioctl) = Ioctl::from_cmd(cmd) else {
            self.platform.probe_bad_ioctl(cmd);
            return Err(Errno::EINVAL);
        };
        match ioctl {
            // ---- system ioctls (any minor)
            Ioctl::GetApiVersion => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(KVM_API_VERSION)
            }
            Ioctl::CreateVm => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                self.create_vm(dev.minor())
            }
            Ioctl::Clone => self.clone_vm(dev, Dev(arg)),
            Ioctl::CheckExtension => self.check_extension(arg),
            Ioctl::GetVcpuMmapSize => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(crate::KVM_VCPU_MMAP_SIZE as i32)
            }
            Ioctl::GetMsrIndexList => self.get_msr_index_list(arg, um),
            Ioctl::GetSupportedCpuid => self.get_supported_cpuid(arg, um),
            Ioctl::X86GetMceCapSupported => {
                copyout(um, &crate::MCG_CTL_P, arg)?;
                Ok(0)
            }
            Ioctl::CreateVcpu => self.create_vcpu(dev.minor(), arg),
            // ---- VM ioctls
            Ioctl::GetDirtyLog => self.get_dirty_log(vm_of(&h)?, arg, um),
            Ioctl::SetUserMemoryRegion => {
                let vm = vm_of(&h)?;
                let mem: kvm_userspace_memory_region = copyin(um, arg)?;
                vm.state.with(|v| {
                    let new = validate::check_memory_region(&v.memslots, &mem)?;
                    let slot = v.memslots.get_mut(mem.slot as usize).ok_or(Errno::EINVAL)?;
                    self.backend
                        .vm_request(&mut v.backend, VmRequest::SetUserMemoryRegion(&mem))?;
                    *slot = new;
                    Ok(0)
                })
            }
            Ioctl::SetTssAddr => self.vm_request(vm_of(&h)?, VmRequest::SetTssAddr(arg)),
            Ioctl::SetIdentityMapAddr => {
                let vm = vm_of(&h)?;
                let addr: u64 = copyin(um, arg)?;
                self.vm_request(vm, VmRequest::SetIdentityMapAddr(addr))
            }
            Ioctl::CreateIrqchip => vm_of(&h)?.state.with(|v| {
                if v.irqchip {
                    return Err(Errno::EEXIST);
                }
                self.backend
                    .vm_request(&mut v.backend, VmRequest::CreateIrqchip)?;
                v.irqchip = true;
                Ok(0)
            }),
            Ioctl::IrqLine | Ioctl::IrqLineStatus => {
                let vm = vm_of(&h)?;
                let mut level: kvm_irq_level = copyin(um, arg)?;
                let with_status = ioctl == Ioctl::IrqLineStatus;
                if with_status {
                    // Probe that the result can be written before the line
                    // changes (no state change on EFAULT).
                    copyout(um, &level, arg)?;
                }
                let status = vm.state.with(|v| {
                    if !v.irqchip {
                        return Err(Errno::ENXIO);
                    }
                    let req = VmRequest::IrqLine {
                        irq: level.irq(),
                        level: level.level,
                    };
                    self.backend.vm_request(&mut v.backend, req)
                })?;
                if with_status {
                    level.u.status = status;
                    copyout(um, &level, arg)?;
                }
                Ok(0)
            }
            Ioctl::GetIrqchip => {
                let vm = vm_of(&h)?;
                // Fix: the C driver never copied `chip_id` in.
                let mut chip: Box<kvm_irqchip> = copyin_box(um, arg)?;
                vm.state.with(|v| {
                    if !v.irqchip {
                        return Err(Errno::ENXIO);
                    }
                    let id = IrqchipId::try_from(chip.chip_id).map_err(|_| Errno::EINVAL)?;
                    self.backend
                        .vm_request(&mut v.backend, VmRequest::GetIrqchip(id, &mut chip))
                })?;
                copyout(um, &*chip, arg)?;
                Ok(0)
            }
            Ioctl::SetIrqchip => {
                let vm = vm_of(&h)?;
                let chip: Box<kvm_irqchip> = copyin_box(um, arg)?;
                vm.state.with(|v| {
                    if !v.irqchip {
                        return Err(Errno::ENXIO);
                    }
                    let id = IrqchipId::try_from(chip.chip_id).map_err(|_| Errno::EINVAL)?;
                    self.backend
                        .vm_request(&mut v.backend, VmRequest::SetIrqchip(id, &chip))
                })
            }
            Ioctl::CreatePit | Ioctl::CreatePit2 => {
                let vm = vm_of(&h)?;
                let flags = if ioctl == Ioctl::CreatePit2 {
                    let config: kvm_pit_config = copyin(um, arg)?;
                    validate::check_pit_config_flags(config.flags)?;
                    config.flags
                } else {
                    KVM_PIT_SPEAKER_DUMMY
                };
                vm.state.with(|v| {
                    if v.pit {
                        return Err(Errno::EEXIST);
                    }
                    self.backend
                        .vm_request(&mut v.backend, VmRequest::CreatePit { flags })?;
                    v.pit = true;
                    Ok(0)
                })
            }
            Ioctl::RegisterCoalescedMmio => {
                let vm = vm_of(&h)?;
                let zone: kvm_coalesced_mmio_zone = copyin(um, arg)?;
                if zone.addr.checked_add(u64::from(zone.size)).is_none() {
                    return Err(Errno::EINVAL);
                }
                self.vm_request(vm, VmRequest::RegisterCoalescedMmio(&zone))
            }
            Ioctl::UnregisterCoalescedMmio => {
                let vm = vm_of(&h)?;
                // Fix: a copyin failure is EFAULT (the C driver returned 0).
                let zone: kvm_coalesced_mmio_zone = copyin(um, arg)?;
                self.vm_request(vm, VmRequest::UnregisterCoalescedMmio(&zone))
            }
            Ioctl::SetGsiRouting => self.set_gsi_routing(vm_of(&h)?, arg, um),
            Ioctl::SetBootCpuId => {
                let vm = vm_of(&h)?;
                if arg >= u64::from(KVM_MAX_VCPUS) {
                    return Err(Errno::EINVAL);
                }
                // Fix: the C driver returned EBUSY with `kvm->lock` held.
                vm.state.with(|v| {
                    if !v.vcpus.is_empty() {
                        return Err(Errno::EBUSY);
                    }
                    v.bsp_vcpu_id = arg as u32;
                    Ok(arg as i32)
                })
            }
            Ioctl::GetPit2 => {
                let vm = vm_of(&h)?;
                let mut pit = kvm_pit_state2::zeroed();
                self.with_pit(vm, |b, v| b.vm_request(v, VmRequest::GetPit2(&mut pit)))?;
                copyout(um, &pit, arg)?;
                Ok(0)
            }
            Ioctl::SetPit2 => {
                let vm = vm_of(&h)?;
                let pit: kvm_pit_state2 = copyin(um, arg)?;
                validate::check_pit_state_flags(pit.flags)?;
                self.with_pit(vm, |b, v| b.vm_request(v, VmRequest::SetPit2(&pit)))
            }
            // ---- VCPU ioctls
            Ioctl::Run => {
                let vcpu = vcpu_of(&h)?;
                let sigmask = vcpu.sigmask.with(|m| *m);
                let req = VcpuRequest::Run {
                    sigmask: sigmask.as_ref(),
                };
                self.vcpu_request(vcpu, req)
            }
            Ioctl::GetRegs => {
                let vcpu = vcpu_of(&h)?;
                let mut regs = kvm_regs::zeroed();
                self.vcpu_request(vcpu, VcpuRequest::GetRegs(&mut regs))?;
                copyout(um, &regs, arg)?;
                Ok(0)
            }
            Ioctl::SetRegs => {
                let vcpu = vcpu_of(&h)?;
                let regs: kvm_regs = copyin(um, arg)?;
                self.vcpu_request(vcpu, VcpuRequest::SetRegs(&regs))
            }
            Ioctl::GetSregs => {
                let vcpu = vcpu_of(&h)?;
                let mut sregs = zeroed_box::<kvm_sregs>();
                self.vcpu_request(vcpu, VcpuRequest::GetSregs(&mut sregs))?;
                copyout(um, &*sregs, arg)?;
                Ok(0)
            }
            Ioctl::SetSregs => {
                let vcpu = vcpu_of(&h)?;
                let sregs: Box<kvm_sregs> = copyin_box(um, arg)?;
                self.vcpu_request(vcpu, VcpuRequest::SetSregs(&sregs))
            }
            Ioctl::Interrupt => {
                let vcpu = vcpu_of(&h)?;
                let vm = vm_of(&h)?;
                let irq: kvm_interrupt = copyin(um, arg)?;
                if irq.irq >= KVM_NR_INTERRUPTS as u32 {
                    return Err(Errno::EINVAL);
                }
                if vm.state.with(|v| v.irqchip) {
                    return Err(Errno::ENXIO);
                }
                self.vcpu_request(vcpu, VcpuRequest::Interrupt(irq.irq))
            }
            Ioctl::GetMsrs | Ioctl::SetMsrs => {
                let vcpu = vcpu_of(&h)?;
                let mut msrs: Box<kvm_msrs> = copyin_box(um, arg)?;
                // Fix: the C driver accepted up to 255 entries into its
                // 100-entry buffer.
                if msrs.nmsrs > KVM_MAX_IO_MSRS {
                    return Err(Errno::E2BIG);
                }
                let n = msrs.nmsrs as usize;
                let entries = msrs.entries.get_mut(..n).ok_or(Errno::E2BIG)?;
                if ioctl == Ioctl::SetMsrs {
                    return self.vcpu_request(vcpu, VcpuRequest::SetMsrs(entries));
                }
                let done = self.vcpu_request(vcpu, VcpuRequest::GetMsrs(entries))?;
                copyout(um, &*msrs, arg)?;
                Ok(done)
            }
            Ioctl::SetCpuid2 => {
                let vcpu = vcpu_of(&h)?;
                let hdr: kvm_cpuid2 = copyin(um, arg)?;
                if hdr.nent as usize > KVM_MAX_CPUID_ENTRIES {
                    return Err(Errno::E2BIG);
                }
                // Copied into a buffer first: the C driver copied straight
                // into the VCPU's table, half-updating it on EFAULT.
                let entries: Vec<kvm_cpuid_entry2> =
                    copyin_vec(um, uoff(arg, 8)?, hdr.nent as usize)?;
                self.vcpu_request(vcpu, VcpuRequest::SetCpuid2(&entries))
            }
            Ioctl::GetCpuid2 => {
                let vcpu = vcpu_of(&h)?;
                let mut hdr: kvm_cpuid2 = copyin(um, arg)?;
                let mut table = zeroed_box::<[kvm_cpuid_entry2; KVM_MAX_CPUID_ENTRIES]>();
                let n = self.vcpu_request(vcpu, VcpuRequest::GetCpuid2(&mut table))?;
                let n = usize::try_from(n)
                    .map_err(|_| Errno::EINVAL)?
                    .min(KVM_MAX_CPUID_ENTRIES);
                // Fix: the C driver copied the entries into its 8-byte
                // header buffer (heap overflow) and its E2BIG test compared
                // the count with itself.
                if (hdr.nent as usize) < n {
                    return Err(Errno::E2BIG);
                }
                let entries = table.get(..n).ok_or(Errno::EINVAL)?;
                um.copyout(slice_bytes(entries), uoff(arg, 8)?)?;
                hdr.nent = n as u32;
                copyout(um, &hdr, arg)?;
                Ok(0)
            }
            Ioctl::SetSignalMask => {
                let vcpu = vcpu_of(&h)?;
                let mask = if arg == 0 {
                    None
                } else {
                    let hdr: kvm_signal_mask = copyin(um, arg)?;
                    if hdr.len as usize != core::mem::size_of::<SigSet>() {
                        return Err(Errno::EINVAL);
                    }
                    // Fix: a fault here is EFAULT (the C driver said EINVAL).
                    let set: SigSet = copyin(um, uoff(arg, 4)?)?;
                    Some(set)
                };
                vcpu.sigmask.with(|m| *m = mask);
                Ok(0)
            }
            Ioctl::GetFpu => {
                let vcpu = vcpu_of(&h)?;
                let mut fpu = zeroed_box::<kvm_fpu>();
                self.vcpu_request(vcpu, VcpuRequest::GetFpu(&mut fpu))?;
                copyout(um, &*fpu, arg)?;
                Ok(0)
            }
            Ioctl::SetFpu => {
                let vcpu = vcpu_of(&h)?;
                let fpu: Box<kvm_fpu> = copyin_box(um, arg)?;
                self.vcpu_request(vcpu, VcpuRequest::SetFpu(&fpu))
            }
            Ioctl::GetLapic => {
                let vcpu = vcpu_of(&h)?;
                let mut lapic = zeroed_box::<kvm_lapic_state>();
                self.vcpu_request(vcpu, VcpuRequest::GetLapic(&mut lapic))?;
                copyout(um, &*lapic, arg)?;
                Ok(0)
            }
            Ioctl::SetLapic => {
                let vcpu = vcpu_of(&h)?;
                let lapic: Box<kvm_lapic_state> = copyin_box(um, arg)?;
                self.vcpu_request(vcpu, VcpuRequest::SetLapic(&lapic))
            }
            Ioctl::SetVapicAddr => {
                let vcpu = vcpu_of(&h)?;
                let va: kvm_vapic_addr = copyin(um, arg)?;
                self.vcpu_request(vcpu, VcpuRequest::SetVapicAddr(va.vapic_addr))
            }
            Ioctl::GetMpState => {
                let vcpu = vcpu_of(&h)?;
                let mut mp = kvm_mp_state::zeroed();
                self.vcpu_request(vcpu, VcpuRequest::GetMpState(&mut mp))?;
                copyout(um, &mp, arg)?;
                Ok(0)
            }
            Ioctl::SetMpState => {
                let vcpu = vcpu_of(&h)?;
                let mp: kvm_mp_state = copyin(um, arg)?;
                let state = MpState::try_from(mp.mp_state).map_err(|_| Errno::EINVAL)?;
                self.vcpu_request(vcpu, VcpuRequest::SetMpState(state))
            }
            Ioctl::Nmi => {
                vm_of(&h)?;
                self.vcpu_request(vcpu_of(&h)?, VcpuRequest::Nmi)
            }
            Ioctl::X86SetupMce => {
                let vcpu = vcpu_of(&h)?;
                let cap: u64 = copyin(um, arg)?;
                validate::check_mce_cap(cap)?;
                self.vcpu_request(vcpu, VcpuRequest::X86SetupMce(cap))
            }
            Ioctl::GetVcpuEvents => {
                let vcpu = vcpu_of(&h)?;
                let mut ev = kvm_vcpu_events::zeroed();
                self.vcpu_request(vcpu, VcpuRequest::GetVcpuEvents(&mut ev))?;
                copyout(um, &ev, arg)?;
                Ok(0)
            }
            Ioctl::SetVcpuEvents => {
                let vcpu = vcpu_of(&h)?;
                let ev: kvm_vcpu_events = copyin(um, arg)?;
                validate::check_vcpu_events_flags(ev.flags)?;
                self.vcpu_request(vcpu, VcpuRequest::SetVcpuEvents(&ev))
            }
            // ---- §1.6: defined in kvm.h, not implemented by the original.
            Ioctl::SetNrMmuPages
            | Ioctl::GetNrMmuPages
            | Ioctl::GetPit
            | Ioctl::SetPit
            | Ioctl::ReinjectControl
            | Ioctl::SetClock
            | Ioctl::GetClock
            | Ioctl::SetCpuid
            | Ioctl::TprAccessReporting
            | Ioctl::X86SetMce => {
                self.platform.probe_bad_ioctl(cmd);
                Err(Errno::EINVAL)
            }
        }
    }

    fn vm_request(&self, vm: &VmObj<P, B>, req: VmRequest<'_>) -> Result<i32, Errno> {
        vm.state
            .with(|v| self.backend.vm_request(&mut v.backend, req))
    }

    fn vcpu_request(&self, vcpu: &VcpuObj<P, B>, req: VcpuRequest<'_>) -> Result<i32, Errno> {
        vcpu.state
            .with(|c| self.backend.vcpu_request(&mut c.backend, req))
    }

    /// Runs `f` on the VM's backend if it has a PIT; ENXIO otherwise (fix:
    /// the C driver dereferenced a NULL `vpit` in KVM_GET/SET_PIT2).
    fn with_pit(
        &self,
        vm: &VmObj<P, B>,
        f: impl FnOnce(&B, &mut B::Vm) -> Result<i32, Errno>,
    ) -> Result<i32, Errno> {
        vm.state.with(|v: &mut VmState<P, B>| {
            if !v.pit {
                return Err(Errno::ENXIO);
            }
            f(&self.backend, &mut v.backend)
        })
    }

    /// Port of `kvm_dev_ioctl_check_extension_generic` (kvm.c:1501) and
    /// `kvm_dev_ioctl_check_extension` (kvm_x86.c:1529), made truthful:
    /// * the seven capabilities the C driver claimed without implementing
    ///   their ioctls (MMU_SHADOW_CACHE_CONTROL, REINJECT_CONTROL,
    ///   ASSIGN_DEV_IRQ, IOEVENTFD, XEN_HVM, ADJUST_CLOCK, PCI_SEGMENT)
    ///   answer 0;
    /// * VAPIC answers 0 (it would make QEMU call the unimplemented
    ///   KVM_TPR_ACCESS_REPORTING); IOMMU 0 as before;
    /// * every other capability answers the C value if the backend
    ///   `supports` it, else 0;
    /// * PV_MMU, USER_NMI, S390_PSW, PPC_SEGSTATE and unknown numbers are
    ///   EINVAL, as in the C driver.
    fn check_extension(&self, arg: u64) -> Result<i32, Errno> {
        use Capability as C;
        let cap = Capability::from_number(arg).ok_or(Errno::EINVAL)?;
        let answer = match cap {
            C::PvMmu | C::UserNmi | C::S390Psw | C::PpcSegstate => return Err(Errno::EINVAL),
            C::MmuShadowCacheControl
            | C::ReinjectControl
            | C::AssignDevIrq
            | C::Ioeventfd
            | C::XenHvm
            | C::AdjustClock
            | C::PciSegment
            | C::Vapic
            | C::Iommu => return Ok(0),
            C::IrqRouting => KVM_MAX_IRQ_ROUTES as i32,
            C::CoalescedMmio => crate::KVM_COALESCED_MMIO_PAGE_OFFSET as i32,
            C::NrVcpus => KVM_MAX_VCPUS as i32,
            C::NrMemslots => crate::KVM_MEMORY_SLOTS as i32,
            C::Mce => crate::KVM_MAX_MCE_BANKS as i32,
            C::UserMemory
            | C::DestroyMemoryRegionWorks
            | C::JoinMemoryRegionsWorks
            | C::SetBootCpuId
            | C::InternalErrorData
            | C::Irqchip
            | C::Hlt
            | C::SetTssAddr
            | C::ExtCpuid
            | C::Clocksource
            | C::Pit
            | C::NopIoDelay
            | C::MpState
            | C::SyncMmu
            | C::IrqInjectStatus
            | C::Pit2
            | C::PitState2
            | C::SetIdentityMapAddr
            | C::VcpuEvents
            | C::Hyperv
            | C::HypervVapic
            | C::HypervSpin
            | C::X86RobustSinglestep => 1,
        };
        Ok(if self.backend.supports(cap) {
            answer
        } else {
            0
        })
    }

    /// Port of `kvm_vm_ioctl_get_msr_index_list` (kvm_x86.c:2182): writes
    /// the count into `nmsrs`; E2BIG if the caller's `nmsrs` was smaller,
    /// else the indices follow.
    fn get_msr_index_list<U: UserMemory + ?Sized>(
        &self,
        arg: u64,
        um: &mut U,
    ) -> Result<i32, Errno> {
        let hdr: kvm_msr_list = copyin(um, arg)?;
        let list = self.backend.msr_index_list()?;
        let total = u32::try_from(list.len()).map_err(|_| Errno::E2BIG)?;
        let room = hdr.nmsrs;
        um.copyout(&total.to_ne_bytes(), arg)?;
        if room < total {
            return Err(Errno::E2BIG);
        }
        um.copyout(slice_bytes(list), uoff(arg, 4)?)?;
        Ok(0)
    }

    /// Port of the KVM_GET_SUPPORTED_CPUID case (kvm.c:2285) and
    /// `kvm_dev_ioctl_get_supported_cpuid` (kvm_x86.c:1838): `nent` >= 1
    /// (else E2BIG), at most 40 entries are produced, and E2BIG unless the
    /// produced count is strictly below the caller's `nent` (QEMU doubles
    /// `nent` until it succeeds). The entries, then `nent`, are copied out.
    fn get_supported_cpuid<U: UserMemory + ?Sized>(
        &self,
        arg: u64,
        um: &mut U,
    ) -> Result<i32, Errno> {
        let hdr: kvm_cpuid2 = copyin(um, arg)?;
        if hdr.nent < 1 {
            return Err(Errno::E2BIG);
        }
        let room = (hdr.nent as usize).min(KVM_MAX_CPUID_ENTRIES);
        let mut table = zeroed_box::<[kvm_cpuid_entry2; KVM_MAX_CPUID_ENTRIES]>();
        let out = table.get_mut(..room).ok_or(Errno::E2BIG)?;
        let n = self.backend.supported_cpuid(out)?;
        if n >= room {
            return Err(Errno::E2BIG);
        }
        let entries = table.get(..n).ok_or(Errno::E2BIG)?;
        um.copyout(slice_bytes(entries), uoff(arg, 8)?)?;
        um.copyout(&(n as u32).to_ne_bytes(), arg)?;
        Ok(0)
    }

    /// Port of `kvm_vm_ioctl_get_dirty_log` (kvm_x86.c:2232): EINVAL for a
    /// slot >= 32, ENOENT for a slot without dirty logging. The user bitmap
    /// is first probed with zeroes so that a bad address fails before the
    /// log is reset.
    fn get_dirty_log<U: UserMemory + ?Sized>(
        &self,
        vm: &VmObj<P, B>,
        arg: u64,
        um: &mut U,
    ) -> Result<i32, Errno> {
        let log: kvm_dirty_log = copyin(um, arg)?;
        vm.state.with(|v| {
            let slot = v.memslots.get(log.slot as usize).ok_or(Errno::EINVAL)?;
            let s = slot.ok_or(Errno::ENOENT)?;
            if s.flags & KVM_MEM_LOG_DIRTY_PAGES == 0 {
                return Err(Errno::ENOENT);
            }
            let n = s.dirty_bitmap_bytes().ok_or(Errno::ENOMEM)?;
            let mut bitmap: Vec<u8> = Vec::new();
            bitmap.try_reserve_exact(n).map_err(|_| Errno::ENOMEM)?;
            bitmap.resize(n, 0);
            um.copyout(&bitmap, log.dirty_bitmap())?;
            let req = VmRequest::GetDirtyLog {
                slot: log.slot,
                bitmap: &mut bitmap,
            };
            self.backend.vm_request(&mut v.backend, req)?;
            um.copyout(&bitmap, log.dirty_bitmap())?;
            Ok(0)
        })
    }

    /// Port of the KVM_SET_GSI_ROUTING case (kvm.c:2430): `nr` in 1..1024
    /// and `flags` 0 (EINVAL), then the entries are validated. Fixes: the
    /// header is read once (the C driver read `nr` twice and trusted the
    /// second copy) and `nr` is checked before the entries are copied in
    /// (the C driver copied `nr` entries into a 1024-entry buffer first).
    fn set_gsi_routing<U: UserMemory + ?Sized>(
        &self,
        vm: &VmObj<P, B>,
        arg: u64,
        um: &mut U,
    ) -> Result<i32, Errno> {
        let nr: u32 = copyin(um, arg)?;
        let flags: u32 = copyin(um, uoff(arg, 4)?)?;
        if nr == 0 || nr >= KVM_MAX_IRQ_ROUTES || flags != 0 {
            return Err(Errno::EINVAL);
        }
        let entries: Vec<kvm_irq_routing_entry> = copyin_vec(um, uoff(arg, 8)?, nr as usize)?;
        validate::check_routing(&entries)?;
        self.vm_request(vm, VmRequest::SetGsiRouting(&entries))
    }
}
