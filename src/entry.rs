//! The `kvm_rs_*` functions the DDI glue calls (`src/glue/kvm_rs.h`).
//!
//! Each one converts C-simple arguments into Rust types, calls the
//! `kvm_ioctl::Driver` and converts the result back to 0 or an errno.
//! Nothing here may panic: a panic is a host crash.
//!
//! The driver value lives in kmem from attach to detach. The DDI framework
//! calls no cb_ops entry point before attach has succeeded or after detach,
//! and detach only happens with no minor open (`Driver::usage() == 0`), so a
//! plain atomic pointer is enough to publish it.

use alloc::boxed::Box;
use core::ffi::{c_int, c_uint, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use kvm_ioctl::{Dev, DevmapChunk, Driver, Errno};

use crate::ddi::{DevT, Offset};
use crate::illumos::platform::{IllumosPlatform, IoctlUser};
use crate::illumos::services::{IllumosServices, UmemCookie};
use crate::illumos::vmx_host::IllumosVmxHost;
use crate::illumos::{cpu::HostCpu, log};
use crate::vm::VmBackend;
use crate::vm::vmx::RealVmx;

/// The subsystems behind the ioctls: memslots, dirty log, irqchip, PIT,
/// coalesced MMIO, LAPIC state, CPUID, and the VMX run loop (KVM_RUN, the
/// register ioctls) over HMA, context ops and the kernel trampoline.
type KernelBackend = VmBackend<IllumosServices, RealVmx<IllumosVmxHost>>;
type KernelDriver = Driver<IllumosPlatform, KernelBackend>;

/// The attached driver, or null.
static DRIVER: AtomicPtr<KernelDriver> = AtomicPtr::new(ptr::null_mut());

fn driver() -> Option<&'static KernelDriver> {
    let p = DRIVER.load(Ordering::Acquire);
    // SAFETY: non-null only between attach and detach, and the framework
    // calls no entry point outside that window (module comment).
    unsafe { p.as_ref() }
}

fn errno(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// What a devmap chunk maps, as `devmap_umem_setup` takes it.
trait UmemChunk {
    /// The `ddi_umem_cookie_t` and length, or `None` when the backend has
    /// no memory to map.
    fn umem(&self) -> Option<(*mut c_void, usize)>;
}

impl UmemChunk for DevmapChunk<UmemCookie> {
    fn umem(&self) -> Option<(*mut c_void, usize)> {
        (!self.cookie.0.is_null()).then_some((self.cookie.0, self.len))
    }
}

/// `_init`: nothing to set up before `mod_install`; state is made at attach.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_init() -> c_int {
    0
}

/// `_fini` after a successful `mod_remove` (detach has already run).
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_fini() {}

/// attach(9E): refuse, with one logged line, on a CPU without VMX, without
/// EPT or with VMX locked off by the firmware (`kvm_vmx::check_support`);
/// then create the minor id space and the driver state.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_attach() -> c_int {
    if let Err(refusal) = kvm_vmx::check_support(&HostCpu) {
        log::warn_str(refusal.message());
        return Errno::ENOTSUP.code();
    }
    let Some(platform) = IllumosPlatform::new() else {
        log::warn_str("kvm: cannot create the minor id space");
        return Errno::ENOMEM.code();
    };
    // Probes the VMCS configuration and the MSR list now (CPUID/RDMSR).
    let vmx = RealVmx::new(IllumosVmxHost::new());
    let backend = VmBackend::with_vmx(IllumosServices::new(), vmx);
    let driver = Box::into_raw(Box::new(Driver::new(platform, backend)));
    if DRIVER
        .compare_exchange(ptr::null_mut(), driver, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: `driver` was never published.
        drop(unsafe { Box::from_raw(driver) });
        return Errno::EBUSY.code();
    }
    0
}

/// detach(9E): EBUSY while any minor is open; else free the driver state.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_detach() -> c_int {
    match driver() {
        None => 0,
        Some(d) if d.usage() != 0 => Errno::EBUSY.code(),
        Some(_) => {
            let p = DRIVER.swap(ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: published by attach from `Box::into_raw`, and no
                // entry point can be running (no minor is open).
                drop(unsafe { Box::from_raw(p) });
            }
            // No VCPU thread is left: free the VCPUs' kick objects.
            IllumosVmxHost::new().teardown();
            0
        }
    }
}

/// A device timer of VCPU `vcpu` of VM `vm` expired (cyclic handler at
/// `CY_LOW_LEVEL`, `src/glue/kvm_services.c`): wake that VCPU so its thread
/// runs the device model. `kick` never sleeps or allocates.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_timer_fired(vm: u32, vcpu: u32) {
    use crate::vm::vmx::host::VmxHost;
    IllumosVmxHost::new().kick(vm, vcpu);
}

/// open(9E): the self-cloning open of minor 0; `*devp` becomes the new
/// private minor.
///
/// # Safety
/// `devp` is the `dev_t *` open(9E) received.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvm_rs_open(devp: *mut DevT, flag: c_int, otyp: c_int) -> c_int {
    let Some(d) = driver() else {
        return Errno::ENXIO.code();
    };
    // SAFETY: the framework passes a valid `dev_t *`.
    let Some(devp) = (unsafe { devp.as_mut() }) else {
        return Errno::EINVAL.code();
    };
    let mut dev = Dev(*devp);
    let r = d.open(&mut dev, flag, otyp);
    if r.is_ok() {
        *devp = dev.0;
    }
    errno(r)
}

/// close(9E): the last close of a VM's minors destroys the VM.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_close(dev: DevT, _flag: c_int, _otyp: c_int) -> c_int {
    match driver() {
        Some(d) => errno(d.close(Dev(dev))),
        None => Errno::ENXIO.code(),
    }
}

/// ioctl(9E): dispatch `cmd`; its return value goes to `*rvalp`.
///
/// # Safety
/// `rvalp` is the `int *` ioctl(9E) received.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvm_rs_ioctl(
    dev: DevT,
    cmd: c_int,
    arg: isize,
    mode: c_int,
    rvalp: *mut c_int,
) -> c_int {
    let Some(d) = driver() else {
        return Errno::ENXIO.code();
    };
    let mut user = IoctlUser { mode };
    match d.ioctl(Dev(dev), cmd, arg as u64, mode, &mut user) {
        Ok(rv) => {
            // SAFETY: the framework passes a valid `int *`.
            if let Some(out) = unsafe { rvalp.as_mut() } {
                *out = rv;
            }
            0
        }
        Err(e) => e.code(),
    }
}

/// segmap(9E): may this mapping be made? The glue then calls
/// `ddi_devmap_segmap`.
#[unsafe(no_mangle)]
pub extern "C" fn kvm_rs_segmap(dev: DevT, off: Offset, len: usize, prot: c_uint) -> c_int {
    match driver() {
        Some(d) => errno(d.segmap(Dev(dev), off, len as u64, prot)),
        None => Errno::ENXIO.code(),
    }
}

/// devmap(9E): which umem cookie backs the mapping at `off`, and how much
/// of it this call maps.
///
/// # Safety
/// `cookiep` and `maplenp` are writable pointers from the glue.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvm_rs_devmap(
    dev: DevT,
    off: Offset,
    len: usize,
    model: c_uint,
    cookiep: *mut *mut c_void,
    maplenp: *mut usize,
) -> c_int {
    let Some(d) = driver() else {
        return Errno::ENXIO.code();
    };
    let Ok(off) = u64::try_from(off) else {
        return Errno::EINVAL.code();
    };
    let chunk = match d.devmap(Dev(dev), off, len as u64, model as c_int) {
        Ok(c) => c,
        Err(e) => return e.code(),
    };
    let Some((cookie, maplen)) = chunk.umem() else {
        return Errno::ENOTSUP.code();
    };
    // SAFETY: the glue passes pointers to its locals.
    match unsafe { (cookiep.as_mut(), maplenp.as_mut()) } {
        (Some(c), Some(l)) => {
            *c = cookie;
            *l = maplen;
            0
        }
        _ => Errno::EINVAL.code(),
    }
}
