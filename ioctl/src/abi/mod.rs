//! The user-visible ABI of illumos-kvm: every struct and constant of the C
//! driver's `sys/kvm.h`, `sys/kvm_x86.h` and `sys/kvm_para.h` (with the
//! `hyperv.h` it includes), the illumos
//! ioctl encoding (`sys/ioccom.h`) and the ioctl numbers.
//!
//! Field names are the C names (a Rust keyword becomes a raw identifier,
//! `r#type`). Anonymous C unions/structs become named Rust types
//! (`kvm_run_u`, `kvm_vcpu_events_exception`, ...) in a field called `u` (for
//! an anonymous union) or the C member name. Where C has *implicit* padding the
//! Rust type has an explicit `_tail_pad` field, so that no ABI type has
//! uninitialised bytes (the `Pod` invariant). Every struct is followed by
//! compile-time size/align/offset assertions; `tests/layout.rs` checks all of
//! them against the C headers compiled with gcc.
#![allow(non_camel_case_types)]

pub mod caps;
pub mod hyperv;
pub mod ioccom;
pub mod ioctls;
pub mod kvm;
pub mod para;
pub mod run;
pub mod x86;

pub use caps::Capability;
pub use ioctls::{ALL_IOCTLS, Ioctl};
pub use kvm::*;
pub use para::*;
pub use run::*;
pub use x86::*;

/// Compile-time layout assertions for one ABI type: size, alignment and the
/// offset of every listed field.
macro_rules! assert_layout {
    ($t:ty, size = $size:expr, align = $align:expr $(, $($field:tt).+ = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$t>() == $size);
            assert!(::core::mem::align_of::<$t>() == $align);
            $( assert!(::core::mem::offset_of!($t, $($field).+) == $off); )*
        };
    };
}
pub(crate) use assert_layout;

/// Plain old data: an ABI type whose bytes can be copied to and from user
/// space.
///
/// # Safety
/// Implement only for `#[repr(C)]` types (or integers/arrays) that
/// * consist solely of integers, arrays and other `Pod` types,
/// * have no implicit padding (every byte belongs to a field; C's implicit
///   padding is spelt out as explicit `_tail_pad` fields here), and
/// * accept every bit pattern as a valid value.
///
/// Unions among them are always created with [`Pod::zeroed`] or
/// [`Pod::from_bytes`] in this crate, so the bytes outside the active member
/// are initialised too.
pub unsafe trait Pod: Copy + 'static {
    /// The all-zero value.
    fn zeroed() -> Self {
        // SAFETY: by the trait contract every bit pattern, including all
        // zeroes, is a valid `Self`.
        unsafe { core::mem::zeroed() }
    }

    /// The bytes of `self`, as user space sees them.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self` has no padding (trait contract), so all
        // `size_of::<Self>()` bytes behind `self` are initialised, and the
        // slice borrows `self`.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The bytes of `self`, writable.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`; any bytes written leave a valid `Self`
        // because every bit pattern is valid (trait contract).
        unsafe {
            core::slice::from_raw_parts_mut(
                (self as *mut Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// A value read from exactly `size_of::<Self>()` bytes; `None` if
    /// `bytes` has another length.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        let mut v = Self::zeroed();
        v.as_bytes_mut().copy_from_slice(bytes);
        Some(v)
    }

    /// A value read from the first `size_of::<Self>()` bytes of `bytes`;
    /// `None` if `bytes` is shorter.
    fn from_prefix(bytes: &[u8]) -> Option<Self> {
        bytes
            .get(..core::mem::size_of::<Self>())
            .and_then(Self::from_bytes)
    }
}

// SAFETY: integers have no padding and accept every bit pattern.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: an array of `Pod` has no padding between elements (size is a
// multiple of alignment) and every bit pattern is valid element-wise.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Implements [`Pod`] for ABI types whose layout is asserted next to their
/// definition.
macro_rules! impl_pod {
    ($($t:ty),+ $(,)?) => {
        $(
            // SAFETY: `#[repr(C)]`, only integer/array/Pod fields, no
            // implicit padding (explicit `_tail_pad` fields where C pads;
            // checked by the layout test's coverage check), every bit
            // pattern valid.
            unsafe impl $crate::abi::Pod for $t {}
        )+
    };
}
pub(crate) use impl_pod;

/// `PAGESIZE` on illumos amd64.
pub const PAGESIZE: usize = 4096;

/// Every ABI struct with its size in bytes (the C `sizeof`), by C name.
/// Printed by `abi-table` and checked against gcc by `tests/layout.rs`.
pub const ALL_STRUCTS: &[(&str, usize)] = &[
    // kvm_x86.h
    ("kvm_pic_state", core::mem::size_of::<kvm_pic_state>()),
    ("kvm_ioapic_state", core::mem::size_of::<kvm_ioapic_state>()),
    ("kvm_regs", core::mem::size_of::<kvm_regs>()),
    ("kvm_lapic_state", core::mem::size_of::<kvm_lapic_state>()),
    ("kvm_segment", core::mem::size_of::<kvm_segment>()),
    ("kvm_dtable", core::mem::size_of::<kvm_dtable>()),
    ("kvm_sregs", core::mem::size_of::<kvm_sregs>()),
    ("kvm_fpu", core::mem::size_of::<kvm_fpu>()),
    ("kvm_msr_entry", core::mem::size_of::<kvm_msr_entry>()),
    ("kvm_msrs", core::mem::size_of::<kvm_msrs>()),
    ("kvm_msr_list", core::mem::size_of::<kvm_msr_list>()),
    ("kvm_cpuid_entry", core::mem::size_of::<kvm_cpuid_entry>()),
    ("kvm_cpuid", core::mem::size_of::<kvm_cpuid>()),
    ("kvm_cpuid_entry2", core::mem::size_of::<kvm_cpuid_entry2>()),
    ("kvm_cpuid2", core::mem::size_of::<kvm_cpuid2>()),
    (
        "kvm_pit_channel_state",
        core::mem::size_of::<kvm_pit_channel_state>(),
    ),
    (
        "kvm_debug_exit_arch",
        core::mem::size_of::<kvm_debug_exit_arch>(),
    ),
    (
        "kvm_guest_debug_arch",
        core::mem::size_of::<kvm_guest_debug_arch>(),
    ),
    ("kvm_pit_state", core::mem::size_of::<kvm_pit_state>()),
    ("kvm_pit_state2", core::mem::size_of::<kvm_pit_state2>()),
    (
        "kvm_reinject_control",
        core::mem::size_of::<kvm_reinject_control>(),
    ),
    ("kvm_vcpu_events", core::mem::size_of::<kvm_vcpu_events>()),
    // kvm.h
    (
        "kvm_memory_region",
        core::mem::size_of::<kvm_memory_region>(),
    ),
    (
        "kvm_userspace_memory_region",
        core::mem::size_of::<kvm_userspace_memory_region>(),
    ),
    ("kvm_irq_level", core::mem::size_of::<kvm_irq_level>()),
    ("kvm_irqchip", core::mem::size_of::<kvm_irqchip>()),
    ("kvm_pit_config", core::mem::size_of::<kvm_pit_config>()),
    ("kvm_run", core::mem::size_of::<kvm_run>()),
    (
        "kvm_coalesced_mmio_zone",
        core::mem::size_of::<kvm_coalesced_mmio_zone>(),
    ),
    (
        "kvm_coalesced_mmio",
        core::mem::size_of::<kvm_coalesced_mmio>(),
    ),
    (
        "kvm_coalesced_mmio_ring",
        core::mem::size_of::<kvm_coalesced_mmio_ring>(),
    ),
    ("kvm_interrupt", core::mem::size_of::<kvm_interrupt>()),
    ("kvm_dirty_log", core::mem::size_of::<kvm_dirty_log>()),
    ("kvm_signal_mask", core::mem::size_of::<kvm_signal_mask>()),
    (
        "kvm_tpr_access_ctl",
        core::mem::size_of::<kvm_tpr_access_ctl>(),
    ),
    ("kvm_vapic_addr", core::mem::size_of::<kvm_vapic_addr>()),
    ("kvm_mp_state", core::mem::size_of::<kvm_mp_state>()),
    ("kvm_guest_debug", core::mem::size_of::<kvm_guest_debug>()),
    (
        "kvm_irq_routing_irqchip",
        core::mem::size_of::<kvm_irq_routing_irqchip>(),
    ),
    (
        "kvm_irq_routing_msi",
        core::mem::size_of::<kvm_irq_routing_msi>(),
    ),
    (
        "kvm_irq_routing_entry",
        core::mem::size_of::<kvm_irq_routing_entry>(),
    ),
    ("kvm_irq_routing", core::mem::size_of::<kvm_irq_routing>()),
    ("kvm_x86_mce", core::mem::size_of::<kvm_x86_mce>()),
    ("kvm_clock_data", core::mem::size_of::<kvm_clock_data>()),
    // kvm_para.h
    ("kvm_steal_time", core::mem::size_of::<kvm_steal_time>()),
    (
        "kvm_mmu_op_header",
        core::mem::size_of::<kvm_mmu_op_header>(),
    ),
    (
        "kvm_mmu_op_write_pte",
        core::mem::size_of::<kvm_mmu_op_write_pte>(),
    ),
    (
        "kvm_mmu_op_flush_tlb",
        core::mem::size_of::<kvm_mmu_op_flush_tlb>(),
    ),
    (
        "kvm_mmu_op_release_pt",
        core::mem::size_of::<kvm_mmu_op_release_pt>(),
    ),
    (
        "kvm_vcpu_pv_apf_data",
        core::mem::size_of::<kvm_vcpu_pv_apf_data>(),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_round_trips_bytes() {
        let r = kvm_regs {
            rax: 1,
            rflags: 2,
            ..Default::default()
        };
        let b = r.as_bytes();
        assert_eq!(b.len(), 144);
        assert_eq!(b[0], 1);
        assert_eq!(b[136], 2);
        assert_eq!(kvm_regs::from_bytes(b), Some(r));
        assert_eq!(kvm_regs::from_bytes(&b[1..]), None);
        let mut long = b.to_vec();
        long.push(9);
        assert_eq!(kvm_regs::from_bytes(&long), None);
        assert_eq!(kvm_regs::from_prefix(&long), Some(r));
        assert_eq!(kvm_run::zeroed().as_bytes(), &[0u8; 288][..]);
    }

    #[test]
    fn tables_have_every_item_once() {
        assert_eq!(ALL_IOCTLS.len(), 58);
        assert_eq!(ALL_STRUCTS.len(), 50);
        for (i, (n, _)) in ALL_STRUCTS.iter().enumerate() {
            assert!(ALL_STRUCTS[..i].iter().all(|(m, _)| m != n), "{n}");
        }
        for (i, (n, v)) in ALL_IOCTLS.iter().enumerate() {
            assert!(ALL_IOCTLS[..i].iter().all(|(m, w)| m != n && w != v), "{n}");
        }
    }
}
