//! kstats of illumos-kvm (`kstat -m kvm`): the per-VM `vm` and per-VCPU
//! `vcpu-<vmid>` named kstats (inventory §3). The operators' issue fills in
//! the counters; this is the boundary they are published through.
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(test)]
extern crate std;

/// The kstat framework: on illumos `kstat_create_zone(..., KSTAT_FLAG_VIRTUAL,
/// GLOBAL_ZONEID)` + `kstat_install` over counters that live in the VM or
/// VCPU, `kstat_delete` on destroy; in tests, a recorder.
pub trait KstatSink {
    /// A handle to one installed kstat.
    type Handle;
    /// Install a named kstat `module:instance:name` of class `class` whose
    /// `ndata` named values live at `data` (a virtual kstat).
    fn install(
        &self,
        module: &core::ffi::CStr,
        instance: i32,
        name: &core::ffi::CStr,
        class: &core::ffi::CStr,
        ndata: u32,
        data: *mut core::ffi::c_void,
    ) -> Option<Self::Handle>;
    /// Remove a kstat from `install`.
    fn delete(&self, handle: Self::Handle);
}
