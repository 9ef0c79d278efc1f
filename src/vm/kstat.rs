//! The `vm` and `vcpu-<vmid>` kstats as installed objects: the data lives in
//! a box the kstat's `ks_data` points at (`KSTAT_FLAG_VIRTUAL`), and
//! dropping the guard deletes the kstat before the data goes (port of the
//! `kstat_create_zone`/`kstat_install` in `kvm_create_vm`/
//! `kvm_arch_vcpu_create` and the `kstat_delete` in `kvm_destroy_vm`/
//! `kvm_arch_vcpu_free`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ffi::{CStr, c_void};

use kvm_ioctl::Errno;
use kvm_kstat::{KstatSink, Published};

use super::services::Services;

type HandleOf<S> = <<S as Services>::Kstats as KstatSink>::Handle;

/// An installed named kstat over `Published<T>`.
pub struct Installed<S: Services, T> {
    data: Box<Published<T>>,
    handle: spin::Mutex<Option<HandleOf<S>>>,
    services: Arc<S>,
}

impl<S: Services, T> Installed<S, T> {
    /// Installs `kvm:<instance>:<name>` (class `misc`) over `data`, with
    /// `ndata` entries. ENOMEM if the framework refuses (the C driver
    /// failed the VM/VCPU creation then too).
    pub fn install(
        services: &Arc<S>,
        instance: i32,
        name: &CStr,
        ndata: u32,
        data: Box<Published<T>>,
    ) -> Result<Self, Errno> {
        let ptr = core::ptr::from_ref::<Published<T>>(&data)
            .cast_mut()
            .cast::<c_void>();
        let size = data.data_size();
        let handle = services
            .kstats()
            .install(instance, name, ndata, ptr, size)
            .ok_or(Errno::ENOMEM)?;
        Ok(Installed {
            data,
            handle: spin::Mutex::new(Some(handle)),
            services: services.clone(),
        })
    }

    /// The counters (`kstat_named_t` array).
    pub fn stats(&self) -> &T {
        &self.data.stats
    }
}

impl<S: Services, T> Drop for Installed<S, T> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.get_mut().take() {
            self.services.kstats().delete(h);
        }
    }
}
