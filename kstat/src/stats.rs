//! The two kvm kstats and the names `kstat -m kvm` and `kvmstat` see
//! (inventory §3; C: `kvm_stats_t` and `kvm_vcpu_stats_t` in kvm_impl.h).

use alloc::boxed::Box;
use core::ffi::CStr;

use crate::named::{DataType, KstatNamed};

/// `ZONENAME_MAX` (`<sys/zone.h>`), with its NUL.
pub const ZONENAME_MAX: usize = 64;

/// A zone name copy the `zonename` string stat points at.
#[repr(C)]
pub struct ZoneName([u8; ZONENAME_MAX]);

impl ZoneName {
    /// Copy `name` (cut to 63 bytes; interior NULs end it).
    pub fn new(name: &[u8]) -> Self {
        let mut buf = [0u8; ZONENAME_MAX];
        for (dst, &src) in buf
            .iter_mut()
            .take(ZONENAME_MAX - 1)
            .zip(name.iter().take_while(|&&b| b != 0))
        {
            *dst = src;
        }
        Self(buf)
    }

    /// The stored name with its NUL.
    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"")
    }
}

macro_rules! kstat_struct {
    (
        $(#[$meta:meta])*
        $name:ident, $table:ident {
            $( $(#[$fmeta:meta])* $field:ident = $kname:literal : $kty:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: KstatNamed, )*
        }

        /// (name, type) of every stat, in the order of the kstat's array.
        pub const $table: &[(&str, DataType)] = &[ $( ($kname, DataType::$kty), )* ];

        impl $name {
            /// Every stat named and typed (`kstat_named_init`), values 0.
            pub const fn new() -> Self {
                Self { $( $field: KstatNamed::new($kname, DataType::$kty), )* }
            }

            /// The stats in array order, as the kstat framework walks them.
            pub fn entries(&self) -> impl Iterator<Item = &KstatNamed> {
                [ $( &self.$field, )* ].into_iter()
            }

            /// `ks_ndata`.
            pub const NDATA: u32 = $table.len() as u32;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

kstat_struct! {
    /// Per VM: module `kvm`, instance = VM id, name `vm`, class `misc`.
    VmStats, VM_STAT_TABLE {
        /// Process that created the VM.
        pid = "pid": Uint64,
        mmu_pte_write = "mmu-pte-write": Uint64,
        mmu_pte_zapped = "mmu-pte-zapped": Uint64,
        mmu_pte_updated = "mmu-pte-updated": Uint64,
        mmu_flooded = "mmu-flooded": Uint64,
        mmu_cache_miss = "mmu-cache-miss": Uint64,
        mmu_recycled = "mmu-recycled": Uint64,
        remote_tlb_flush = "remote-tlb-flush": Uint64,
        /// Large (2 MiB) EPT mappings in use.
        lpages = "lpages": Uint64,
        mmu_unsync_page = "mmu-unsync-page": Uint64,
        /// EPT paging-structure pages in use (× 4 KiB = the VM's table
        /// memory). Not in the C driver, which had no such accounting.
        ept_table_pages = "ept-table-pages": Uint64,
        zonename = "zonename": String,
    }
}

kstat_struct! {
    /// Per VCPU: module `kvm`, instance = VCPU id, name `vcpu-<vm id>`,
    /// class `misc`. The C driver named its first entry twice and lost
    /// `id`; here `id` (the VM id) and `pid` are both exported.
    VcpuStats, VCPU_STAT_TABLE {
        /// The VM this VCPU belongs to (its `vm` kstat's instance).
        id = "id": Uint64,
        /// Process that created the VM.
        pid = "pid": Uint64,
        nmi_injections = "nmi-injections": Uint64,
        irq_injections = "irq-injections": Uint64,
        fpu_reload = "fpu-reload": Uint64,
        host_state_reload = "host-state-reload": Uint64,
        insn_emulation = "insn-emulation": Uint64,
        insn_emulation_fail = "inst-emulation-fail": Uint64,
        exits = "exits": Uint64,
        halt_exits = "halt-exits": Uint64,
        irq_exits = "irq-exits": Uint64,
        io_exits = "io-exits": Uint64,
        mmio_exits = "mmio-exits": Uint64,
        nmi_window_exits = "nmi-window-exits": Uint64,
        irq_window_exits = "irq-window-exits": Uint64,
        request_irq_exits = "request-irq-exits": Uint64,
        signal_exits = "signal-exits": Uint64,
        halt_wakeup = "halt-wakeup": Uint64,
        invlpg = "invlpg": Uint64,
        pf_guest = "pf-guest": Uint64,
        pf_fixed = "pf-fixed": Uint64,
        hypercalls = "hypercalls": Uint64,
        zonename = "zonename": String,
    }
}

/// A stats array plus the zone name its string stat points at. Boxed, so
/// the pointer stays valid while the kstat is installed.
#[repr(C)]
pub struct Published<T> {
    pub stats: T,
    zone: ZoneName,
}

impl<T> Published<T> {
    /// `stats` and a copy of `zone`, built in kmem: a kstat array is ~1 KB,
    /// and `Box::new(value)` may build the value on the kernel stack first.
    /// `make` runs here, so the array it builds never sits in the
    /// caller's (larger) frame.
    #[inline(never)]
    fn boxed(make: fn() -> T, zone: &[u8]) -> Box<Self> {
        let mut b = Box::<Self>::new_uninit();
        let p = b.as_mut_ptr();
        // SAFETY: both fields are written before `assume_init`; `p` points
        // into the fresh allocation.
        unsafe {
            core::ptr::addr_of_mut!((*p).stats).write(make());
            core::ptr::addr_of_mut!((*p).zone).write(ZoneName::new(zone));
            b.assume_init()
        }
    }
}

impl Published<VmStats> {
    /// The `vm` kstat data for a VM created by `pid` in zone `zone`.
    pub fn vm(pid: u64, zone: &[u8]) -> Box<Self> {
        let mut b = Self::boxed(VmStats::new, zone);
        b.stats.pid.set(pid);
        let Self { stats, zone } = &mut *b;
        stats.zonename.set_str(zone.as_cstr());
        b
    }
}

impl Published<VcpuStats> {
    /// The `vcpu-<vm id>` kstat data of a VCPU of VM `vm_id` (created by
    /// `pid` in zone `zone`).
    pub fn vcpu(vm_id: u64, pid: u64, zone: &[u8]) -> Box<Self> {
        let mut b = Self::boxed(VcpuStats::new, zone);
        b.stats.id.set(vm_id);
        b.stats.pid.set(pid);
        let Self { stats, zone } = &mut *b;
        stats.zonename.set_str(zone.as_cstr());
        b
    }
}

impl<T> Published<T> {
    /// `ks_data_size`: the named array plus the string's bytes, as the C
    /// driver adds `strlen(zonename) + 1`.
    pub fn data_size(&self) -> usize {
        core::mem::size_of::<T>() + self.zone.as_cstr().to_bytes_with_nul().len()
    }
}

/// The kstat name of VM `vm_id`'s VCPUs: `vcpu-<vm id>`.
pub fn vcpu_kstat_name(vm_id: u64) -> [u8; crate::named::KSTAT_STRLEN] {
    let mut out = [0u8; crate::named::KSTAT_STRLEN];
    let mut digits = [0u8; 20];
    let mut n = vm_id;
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    let prefix = b"vcpu-";
    for (slot, &b) in out
        .iter_mut()
        .zip(prefix.iter().chain(digits.iter().take(len).rev()))
    {
        *slot = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Inventory §3.1, in the C driver's array order.
    const VM_EXPECTED: &[&str] = &[
        "pid",
        "mmu-pte-write",
        "mmu-pte-zapped",
        "mmu-pte-updated",
        "mmu-flooded",
        "mmu-cache-miss",
        "mmu-recycled",
        "remote-tlb-flush",
        "lpages",
        "mmu-unsync-page",
        // Added by the port (per-VM memory accounting, MMU issue).
        "ept-table-pages",
        "zonename",
    ];

    /// Inventory §3.2 plus the `id` the C driver lost.
    const VCPU_EXPECTED: &[&str] = &[
        "id",
        "pid",
        "nmi-injections",
        "irq-injections",
        "fpu-reload",
        "host-state-reload",
        "insn-emulation",
        "inst-emulation-fail",
        "exits",
        "halt-exits",
        "irq-exits",
        "io-exits",
        "mmio-exits",
        "nmi-window-exits",
        "irq-window-exits",
        "request-irq-exits",
        "signal-exits",
        "halt-wakeup",
        "invlpg",
        "pf-guest",
        "pf-fixed",
        "hypercalls",
        "zonename",
    ];

    /// The stats illumos `kvmstat` reads (usr/src/cmd/kvmstat/kvmstat.c,
    /// `fields[]`), each as `value.ui64`; it fails if one is missing.
    const KVMSTAT_READS: &[&str] = &[
        "pid",
        "exits",
        "halt-exits",
        "irq-exits",
        "irq-window-exits",
        "io-exits",
        "mmio-exits",
        "irq-injections",
        "insn-emulation",
        "pf-fixed",
    ];

    fn names_and_types(
        entries: impl Iterator<Item = &'static KstatNamed>,
    ) -> Vec<(String, DataType)> {
        entries
            .map(|e| (e.name().to_string(), e.data_type().unwrap()))
            .collect()
    }
    use std::string::{String, ToString};

    #[test]
    fn vm_kstat_has_the_inventory_names_and_types_in_order() {
        let s: &'static VmStats = std::boxed::Box::leak(std::boxed::Box::new(VmStats::new()));
        let got = names_and_types(s.entries());
        let want: Vec<_> = VM_EXPECTED
            .iter()
            .map(|n| {
                let t = if *n == "zonename" {
                    DataType::String
                } else {
                    DataType::Uint64
                };
                (n.to_string(), t)
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(VmStats::NDATA as usize, VM_EXPECTED.len());
    }

    #[test]
    fn vcpu_kstat_has_the_inventory_names_and_types_in_order() {
        let s: &'static VcpuStats = std::boxed::Box::leak(std::boxed::Box::new(VcpuStats::new()));
        let got = names_and_types(s.entries());
        let want: Vec<_> = VCPU_EXPECTED
            .iter()
            .map(|n| {
                let t = if *n == "zonename" {
                    DataType::String
                } else {
                    DataType::Uint64
                };
                (n.to_string(), t)
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_stat_kvmstat_reads_exists_as_uint64() {
        for name in KVMSTAT_READS {
            assert!(
                VCPU_STAT_TABLE
                    .iter()
                    .any(|(n, t)| n == name && *t == DataType::Uint64),
                "kvmstat reads {name}"
            );
        }
    }

    #[test]
    fn entries_are_a_contiguous_kstat_named_array() {
        // The framework walks ks_data as kstat_named_t[ks_ndata].
        let s = VcpuStats::new();
        let base = &s as *const VcpuStats as usize;
        for (i, e) in s.entries().enumerate() {
            assert_eq!(e as *const KstatNamed as usize, base + 48 * i);
        }
        assert_eq!(core::mem::size_of::<VcpuStats>(), 48 * VCPU_EXPECTED.len());
    }

    #[test]
    fn published_vcpu_points_zonename_at_its_own_copy_and_sizes_it() {
        let p = Published::vcpu(7, 4242, b"global");
        assert_eq!(p.stats.id.get(), 7);
        assert_eq!(p.stats.pid.get(), 4242);
        let ptr = p.stats.zonename.get() as usize as *const core::ffi::c_char;
        let z = unsafe { CStr::from_ptr(ptr) };
        assert_eq!(z.to_bytes(), b"global");
        assert_eq!(p.stats.zonename.str_buflen(), 7);
        assert_eq!(p.data_size(), 48 * 23 + 7);
    }

    #[test]
    fn published_vm_records_pid_and_zone() {
        let p = Published::vm(99, b"zone-with-a-name\0ignored");
        assert_eq!(p.stats.pid.get(), 99);
        assert_eq!(p.stats.zonename.str_buflen(), 17);
        assert_eq!(p.data_size(), 48 * 12 + 17);
    }

    #[test]
    fn vcpu_kstat_name_is_vcpu_dash_vm_id() {
        let n = vcpu_kstat_name(0);
        assert_eq!(CStr::from_bytes_until_nul(&n).unwrap(), c"vcpu-0");
        let n = vcpu_kstat_name(1234567);
        assert_eq!(CStr::from_bytes_until_nul(&n).unwrap(), c"vcpu-1234567");
        let n = vcpu_kstat_name(u64::MAX);
        assert_eq!(
            CStr::from_bytes_until_nul(&n).unwrap(),
            c"vcpu-18446744073709551615"
        );
    }

    #[test]
    fn zone_names_are_cut_to_zonename_max() {
        let long = [b'z'; 100];
        let z = ZoneName::new(&long);
        assert_eq!(z.as_cstr().to_bytes().len(), ZONENAME_MAX - 1);
    }
}
