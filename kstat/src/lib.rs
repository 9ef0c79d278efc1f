//! What operators see of illumos-kvm: SDT probes (`sdt`) and the kstats
//! (`kstat -m kvm`, `kvmstat`): the per-VM `vm` and
//! per-VCPU `vcpu-<vmid>` named kstats (inventory §3), laid out as
//! `kstat_named_t` arrays that live in the VM and VCPU (virtual kstats), and
//! the boundary they are published through.
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

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod debug;
pub mod named;
pub mod ringbuf;
pub mod sdt;
pub mod stats;

pub use named::{DataType, KstatNamed};
pub use stats::{Published, VCPU_STAT_TABLE, VM_STAT_TABLE, VcpuStats, VmStats};

/// Module and class of every kvm kstat.
pub const MODULE: &core::ffi::CStr = c"kvm";
pub const CLASS: &core::ffi::CStr = c"misc";
/// Name of the per-VM kstat.
pub const VM_KSTAT_NAME: &core::ffi::CStr = c"vm";

/// The kstat framework: on illumos `kstat_create_zone(..., KSTAT_TYPE_NAMED,
/// ndata, KSTAT_FLAG_VIRTUAL, GLOBAL_ZONEID)`, `ks_data`/`ks_data_size` set,
/// then `kstat_install`; `kstat_delete` on destroy. Tests record calls.
pub trait KstatSink {
    /// A handle to one installed kstat.
    type Handle;
    /// Install the virtual named kstat `MODULE:instance:name` (class
    /// [`CLASS`]) over `ndata` entries at `data`, `data_size` bytes including
    /// string contents. `None` if the framework refused.
    fn install(
        &self,
        instance: i32,
        name: &core::ffi::CStr,
        ndata: u32,
        data: *mut core::ffi::c_void,
        data_size: usize,
    ) -> Option<Self::Handle>;
    /// Remove a kstat from `install`.
    fn delete(&self, handle: Self::Handle);
}
