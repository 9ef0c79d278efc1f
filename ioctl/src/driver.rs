//! The handle model of the C driver (inventory §1.2–1.3): per-open minors,
//! VMs bound to minors, VCPUs bound to clone minors, destruction by the last
//! close, and the segmap/devmap checks. Port of kvm.c `kvm_open`,
//! `kvm_close`, `kvm_segmap`, `kvm_devmap` and the handle-model ioctls.
//!
//! There is no global mutable state: the driver crate owns one
//! `Driver<P, B>` (e.g. in its soft state), and every object lives in it.
//! Lock order: driver state → VM → VCPU.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::KVM_MEMORY_SLOTS;
use crate::abi::PAGESIZE;
use crate::backend::{Backend, SigSet, VmId};
use crate::errno::Errno;
use crate::platform::{
    DataModel, Dev, FEXCL, FNDELAY, FREAD, FWRITE, KVM_MINOR_BASE, Lock, LockFamily, Minor,
    OTYP_CHR, PROT_EXEC, PROT_USER, Platform,
};
use crate::validate::{MemSlot, MemSlots};

/// The lock type of platform `P` around `T`.
pub(crate) type LockOf<P, T> = <<P as Platform>::Locks as LockFamily>::Lock<T>;

/// A VCPU (`struct kvm_vcpu` as far as the handle model goes).
pub(crate) struct VcpuObj<P: Platform, B: Backend> {
    /// Index in the VM's VCPU array (`online_vcpus` at creation); the value
    /// KVM_CREATE_VCPU returns.
    pub(crate) index: u32,
    /// The id user space asked for.
    pub(crate) id: u32,
    /// The `kvm_run`+PIO umem cookie (fixed at creation, so devmap never
    /// waits for a running VCPU).
    pub(crate) cookie: B::MapCookie,
    /// KVM_SET_SIGNAL_MASK's mask (`sigset_active`/`sigset`); its own lock,
    /// so setting it never waits for KVM_RUN.
    pub(crate) sigmask: LockOf<P, Option<SigSet>>,
    /// The backend's VCPU; held for the whole of KVM_RUN.
    pub(crate) state: LockOf<P, VcpuState<B>>,
}

pub(crate) struct VcpuState<B: Backend> {
    pub(crate) backend: B::Vcpu,
}

/// A VM (`struct kvm` as far as the handle model goes).
pub(crate) struct VmObj<P: Platform, B: Backend> {
    pub(crate) id: VmId,
    /// The coalesced-MMIO ring's umem cookie (fixed at creation).
    pub(crate) ring_cookie: B::MapCookie,
    /// Minors bound to this VM (1 + C's `kvm_clones`). Changed only under
    /// the driver-state lock.
    pub(crate) handles: AtomicU32,
    pub(crate) state: LockOf<P, VmState<P, B>>,
}

pub(crate) struct VmState<P: Platform, B: Backend> {
    /// VCPUs in creation order (dropped before `backend`).
    pub(crate) vcpus: Vec<Arc<VcpuObj<P, B>>>,
    /// KVM_SET_BOOT_CPU_ID (`bsp_vcpu_id`, default 0).
    pub(crate) bsp_vcpu_id: u32,
    /// User memslots, for overlap/resize/dirty-log checks.
    pub(crate) memslots: MemSlots,
    /// KVM_CREATE_IRQCHIP succeeded (`irqchip_in_kernel`).
    pub(crate) irqchip: bool,
    /// KVM_CREATE_PIT(2) succeeded (`kvm->arch.vpit != NULL`).
    pub(crate) pit: bool,
    pub(crate) backend: B::Vm,
}

/// Per-minor state (`kvm_devstate_t`: `kds_kvmp`, `kds_vcpu`).
pub(crate) struct Handle<P: Platform, B: Backend> {
    pub(crate) vm: Option<Arc<VmObj<P, B>>>,
    pub(crate) vcpu: Option<Arc<VcpuObj<P, B>>>,
}

impl<P: Platform, B: Backend> Clone for Handle<P, B> {
    fn clone(&self) -> Self {
        Handle {
            vm: self.vm.clone(),
            vcpu: self.vcpu.clone(),
        }
    }
}

pub(crate) struct DriverState<P: Platform, B: Backend> {
    /// Soft state by minor.
    pub(crate) minors: BTreeMap<Minor, Handle<P, B>>,
    /// Open minors (`kvm_usage_count`).
    pub(crate) usage: u32,
    /// Next `kvmid`.
    pub(crate) next_kvmid: VmId,
}

/// The /dev/kvm driver: all VMs, VCPUs and open minors.
pub struct Driver<P: Platform, B: Backend> {
    pub(crate) platform: P,
    pub(crate) backend: B,
    pub(crate) state: LockOf<P, DriverState<P, B>>,
}

/// Which area a devmap call maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Pages 0–1: the VCPU's `kvm_run` and PIO page.
    VcpuRun,
    /// Page 2: the VM's coalesced-MMIO ring.
    CoalescedRing,
}

/// What one `kvm_devmap` call maps: `devmap_umem_setup(dhp, dip, NULL,
/// cookie, 0, len, PROT_READ | PROT_WRITE | PROT_USER, DEVMAP_DEFAULTS,
/// NULL)` and `*maplen = len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevmapChunk<C> {
    /// Which area.
    pub kind: MapKind,
    /// The umem cookie to map from offset 0.
    pub cookie: C,
    /// Bytes mapped (`*maplen`).
    pub len: usize,
}

/// A consistent view of the handle model, for tests and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Open minors: minor → (VM id, VCPU index).
    pub minors: BTreeMap<Minor, (Option<VmId>, Option<u32>)>,
    /// Live VMs by id.
    pub vms: BTreeMap<VmId, VmSnapshot>,
    /// `kvm_usage_count`.
    pub usage: u32,
    /// The id the next VM gets.
    pub next_kvmid: VmId,
}

/// One VM in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSnapshot {
    /// Minors bound to it.
    pub handles: u32,
    /// (index, id, signal mask) of each VCPU.
    pub vcpus: Vec<(u32, u32, Option<SigSet>)>,
    /// Boot CPU id.
    pub bsp_vcpu_id: u32,
    /// User memslots.
    pub memslots: Vec<(u32, MemSlot)>,
    /// In-kernel irqchip created.
    pub irqchip: bool,
    /// PIT created.
    pub pit: bool,
}

impl<P: Platform, B: Backend> Driver<P, B> {
    /// A driver with no open minors (port of the state `kvm_attach` sets up).
    pub fn new(platform: P, backend: B) -> Self {
        Driver {
            platform,
            backend,
            state: Lock::new(DriverState {
                minors: BTreeMap::new(),
                usage: 0,
                next_kvmid: 0,
            }),
        }
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Number of open minors (`kvm_usage_count`); detach requires 0.
    pub fn usage(&self) -> u32 {
        self.state.with(|s| s.usage)
    }

    /// Port of `kvm_open` (kvm.c:1881): the self-cloning open. `flag` must
    /// have FREAD|FWRITE and neither FEXCL nor FNDELAY, `otyp` must be
    /// OTYP_CHR (else EINVAL); `dev` must be minor 0 (else ENXIO). A fresh
    /// minor is allocated and written back into `dev`. The first open
    /// enables the hardware (`kvm_hvm_incr`); its failure is ENXIO.
    pub fn open(&self, dev: &mut Dev, flag: i32, otyp: i32) -> Result<(), Errno> {
        if flag & (FEXCL | FNDELAY) != 0 {
            return Err(Errno::EINVAL);
        }
        if otyp != OTYP_CHR {
            return Err(Errno::EINVAL);
        }
        if flag & FREAD == 0 || flag & FWRITE == 0 {
            return Err(Errno::EINVAL);
        }
        if dev.minor() != KVM_MINOR_BASE {
            return Err(Errno::ENXIO);
        }
        let minor = self.platform.alloc_minor().ok_or(Errno::ENXIO)?;
        if minor == KVM_MINOR_BASE {
            self.platform.free_minor(minor);
            return Err(Errno::ENXIO);
        }
        let r = self.state.with(|s| {
            if s.minors.contains_key(&minor) {
                return Err(Errno::ENXIO);
            }
            if s.usage == 0 {
                self.backend.hardware_enable().map_err(|_| Errno::ENXIO)?;
            }
            s.usage = s.usage.checked_add(1).ok_or(Errno::ENXIO)?;
            s.minors.insert(
                minor,
                Handle {
                    vm: None,
                    vcpu: None,
                },
            );
            Ok(())
        });
        if let Err(e) = r {
            self.platform.free_minor(minor);
            return Err(e);
        }
        *dev = Dev::new(dev.major(), minor);
        Ok(())
    }

    /// Port of `kvm_close` (kvm.c:1916): unbinds the minor; the VM (with
    /// all its VCPUs) is destroyed when its last minor closes, whichever
    /// that is. The last close overall disables the hardware. ENXIO for a
    /// minor that is not open (the C driver VERIFYs instead).
    pub fn close(&self, dev: Dev) -> Result<(), Errno> {
        let minor = dev.minor();
        self.state.with(|s| {
            let h = s.minors.remove(&minor).ok_or(Errno::ENXIO)?;
            drop(h.vcpu);
            if let Some(vm) = h.vm {
                // Only changed under this lock; never 0 for a bound VM.
                let left = vm.handles.load(Ordering::Relaxed).saturating_sub(1);
                vm.handles.store(left, Ordering::Relaxed);
                // At 0, this was the last reference: dropping it destroys
                // the VM (kvm_destroy_vm), its VCPUs first, then the
                // backend state. Otherwise only the count drops (C's
                // `kvm_clones--`).
                drop(vm);
            }
            s.usage = s.usage.saturating_sub(1);
            if s.usage == 0 {
                self.backend.hardware_disable();
            }
            Ok::<(), Errno>(())
        })?;
        self.platform.free_minor(minor);
        Ok(())
    }

    /// Port of `kvm_segmap` (kvm.c:2695): the checks before
    /// `ddi_devmap_segmap`. ENXIO for a minor that is not open; EINVAL for
    /// PROT_EXEC, no PROT_USER, a length other than 3 pages, no VCPU on
    /// this minor, or an offset other than 0.
    pub fn segmap(&self, dev: Dev, off: i64, len: u64, prot: u32) -> Result<(), Errno> {
        let h = self.handle(dev)?;
        if prot & PROT_EXEC != 0 || prot & PROT_USER == 0 {
            return Err(Errno::EINVAL);
        }
        if len != crate::KVM_VCPU_MMAP_SIZE {
            return Err(Errno::EINVAL);
        }
        if h.vcpu.is_none() {
            return Err(Errno::EINVAL);
        }
        if off != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Port of `kvm_devmap` (kvm.c:2644): the framework calls it until the
    /// 3 pages are mapped. Call 1 (`off` 0, `len` 3 pages) maps the VCPU's
    /// 2-page `kvm_run`+PIO area; call 2 (`off` 2 pages, `len` 1 page) maps
    /// the VM's coalesced-MMIO ring. ENXIO for a minor that is not open;
    /// EINVAL for a 32-bit caller, no VM or VCPU, or any other (off, len)
    /// (the C driver only looked at `len`).
    pub fn devmap(
        &self,
        dev: Dev,
        off: u64,
        len: u64,
        model: i32,
    ) -> Result<DevmapChunk<B::MapCookie>, Errno> {
        let h = self.handle(dev)?;
        if self.platform.data_model(model) == DataModel::Ilp32 {
            return Err(Errno::EINVAL);
        }
        let vm = h.vm.as_ref().ok_or(Errno::EINVAL)?;
        let vcpu = h.vcpu.as_ref().ok_or(Errno::EINVAL)?;
        let page = PAGESIZE as u64;
        if off == 0 && len == crate::KVM_VCPU_MMAP_SIZE {
            let cookie = vcpu.cookie;
            return Ok(DevmapChunk {
                kind: MapKind::VcpuRun,
                cookie,
                len: 2 * PAGESIZE,
            });
        }
        if off == crate::KVM_COALESCED_MMIO_PAGE_OFFSET * page && len == page {
            let cookie = vm.ring_cookie;
            return Ok(DevmapChunk {
                kind: MapKind::CoalescedRing,
                cookie,
                len: PAGESIZE,
            });
        }
        Err(Errno::EINVAL)
    }

    /// The handle of an open minor (ENXIO otherwise; minor 0 is never open).
    pub(crate) fn handle(&self, dev: Dev) -> Result<Handle<P, B>, Errno> {
        self.state
            .with(|s| s.minors.get(&dev.minor()).cloned().ok_or(Errno::ENXIO))
    }

    /// Port of `kvm_dev_ioctl_create_vm` (kvm.c:1485): EINVAL if the minor
    /// already has a VM; binds a new VM to it and returns its id.
    pub(crate) fn create_vm(&self, minor: Minor) -> Result<i32, Errno> {
        self.state.with(|s| {
            let id = s.next_kvmid;
            let rv = i32::try_from(id).map_err(|_| Errno::ENOMEM)?;
            let h = s.minors.get(&minor).ok_or(Errno::ENXIO)?;
            if h.vm.is_some() {
                return Err(Errno::EINVAL);
            }
            let backend = self.backend.create_vm(id)?;
            let ring_cookie = self.backend.ring_map_cookie(&backend);
            let vm = Arc::new(VmObj {
                id,
                ring_cookie,
                handles: AtomicU32::new(1),
                state: Lock::new(VmState {
                    vcpus: Vec::new(),
                    bsp_vcpu_id: 0,
                    memslots: [None; KVM_MEMORY_SLOTS],
                    irqchip: false,
                    pit: false,
                    backend,
                }),
            });
            if let Some(h) = s.minors.get_mut(&minor) {
                h.vm = Some(vm);
            }
            s.next_kvmid = id.wrapping_add(1);
            Ok(rv)
        })
    }

    /// Port of the KVM_CLONE case of `kvm_ioctl` (kvm.c:2080): binds the VM
    /// of `parent` to `dev`'s minor. EBUSY if this minor already has a VM or
    /// VCPU, ENODEV if `parent` has another major, EINVAL if `parent` is not
    /// open, ESRCH if it has no VM.
    pub(crate) fn clone_vm(&self, dev: Dev, parent: Dev) -> Result<i32, Errno> {
        self.state.with(|s| {
            let h = s.minors.get(&dev.minor()).ok_or(Errno::ENXIO)?;
            if h.vm.is_some() || h.vcpu.is_some() {
                return Err(Errno::EBUSY);
            }
            if parent.major() != dev.major() {
                return Err(Errno::ENODEV);
            }
            let p = s.minors.get(&parent.minor()).ok_or(Errno::EINVAL)?;
            let vm = p.vm.clone().ok_or(Errno::ESRCH)?;
            let n = vm.handles.load(Ordering::Relaxed);
            vm.handles
                .store(n.checked_add(1).ok_or(Errno::ENOMEM)?, Ordering::Relaxed);
            if let Some(h) = s.minors.get_mut(&dev.minor()) {
                h.vm = Some(vm);
            }
            Ok(0)
        })
    }

    /// Port of the KVM_CREATE_VCPU case (kvm.c:2242) and
    /// `kvm_vm_ioctl_create_vcpu` (kvm.c:1415): EINVAL without a VM, EEXIST
    /// if this minor already has a VCPU, EINVAL for an id >= 64 (added) or
    /// when 64 VCPUs exist, EEXIST for an id in use. The VCPU goes at index
    /// `online_vcpus`, which is returned, and is bound to this minor by
    /// that index (the C driver used `vcpus[id]`: wrong unless ids are
    /// created 0, 1, 2, ... in order).
    pub(crate) fn create_vcpu(&self, minor: Minor, id: u64) -> Result<i32, Errno> {
        self.state.with(|s| {
            let h = s.minors.get(&minor).ok_or(Errno::ENXIO)?;
            let vm = h.vm.clone().ok_or(Errno::EINVAL)?;
            if h.vcpu.is_some() {
                return Err(Errno::EEXIST);
            }
            let id = u32::try_from(id).map_err(|_| Errno::EINVAL)?;
            if id >= crate::KVM_MAX_VCPUS {
                return Err(Errno::EINVAL);
            }
            let vcpu = vm.state.with(|v| {
                let index = u32::try_from(v.vcpus.len()).map_err(|_| Errno::EINVAL)?;
                if index >= crate::KVM_MAX_VCPUS {
                    return Err(Errno::EINVAL);
                }
                if v.vcpus.iter().any(|c| c.id == id) {
                    return Err(Errno::EEXIST);
                }
                let is_bsp = v.bsp_vcpu_id == id;
                let backend = self
                    .backend
                    .create_vcpu(&mut v.backend, index, id, is_bsp)?;
                let vcpu = Arc::new(VcpuObj {
                    index,
                    id,
                    cookie: self.backend.vcpu_map_cookie(&backend),
                    sigmask: Lock::new(None),
                    state: Lock::new(VcpuState { backend }),
                });
                v.vcpus.push(vcpu.clone());
                Ok(vcpu)
            })?;
            let index = vcpu.index;
            if let Some(h) = s.minors.get_mut(&minor) {
                h.vcpu = Some(vcpu);
            }
            i32::try_from(index).map_err(|_| Errno::EINVAL)
        })
    }

    /// A consistent view of the handle model (driver, VM and signal-mask
    /// locks; never a VCPU's run lock, so a running VCPU does not block it).
    pub fn snapshot(&self) -> Snapshot {
        self.state.with(|s| {
            let mut vms = BTreeMap::new();
            let mut minors = BTreeMap::new();
            for (m, h) in &s.minors {
                minors.insert(
                    *m,
                    (
                        h.vm.as_ref().map(|v| v.id),
                        h.vcpu.as_ref().map(|c| c.index),
                    ),
                );
                if let Some(vm) = &h.vm {
                    if vms.contains_key(&vm.id) {
                        continue;
                    }
                    let snap = vm.state.with(|v| VmSnapshot {
                        handles: vm.handles.load(Ordering::Relaxed),
                        vcpus: v
                            .vcpus
                            .iter()
                            .map(|c| (c.index, c.id, c.sigmask.with(|m| *m)))
                            .collect(),
                        bsp_vcpu_id: v.bsp_vcpu_id,
                        memslots: v
                            .memslots
                            .iter()
                            .enumerate()
                            .filter_map(|(i, m)| Some((u32::try_from(i).ok()?, (*m)?)))
                            .collect(),
                        irqchip: v.irqchip,
                        pit: v.pit,
                    });
                    vms.insert(vm.id, snap);
                }
            }
            Snapshot {
                minors,
                vms,
                usage: s.usage,
                next_kvmid: s.next_kvmid,
            }
        })
    }
}
