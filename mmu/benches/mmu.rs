//! `cargo bench -p kvm-mmu`: EPT-violation cost (4 KiB and 2 MiB leaves),
//! walker cost per translation, and EPT table memory per GiB of guest
//! memory. Runs over the test fakes, so it measures the MMU's own work plus
//! the fake backends (a Vec-backed table arena; `resolve_2m` is the default
//! 512-page contiguity check).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{FakeTables, FakeVmm, Layout};
use kvm_mmu::platform::{GuestPhys, HostMemKind, PteSize};
use kvm_mmu::walker::{
    Access, AccessKind, CpuFeatures, PagingContext, PagingMode, Privilege, translate,
};
use kvm_mmu::{EptViolation, MemoryRegion, Mmu};

const GIB: u64 = 1 << 30;
const MB2: u64 = 2 << 20;

/// Map all of a 1 GiB slot by faulting every `step`; returns (ns per fault,
/// table KiB for the GiB). Integer ns: the workspace denies float arithmetic.
fn fault_all(layout: Layout, step: u64) -> (u128, u64) {
    let tables = FakeTables::default();
    let mut mmu = Mmu::new(tables, FakeVmm::new()).expect("mmu");
    let hva = mmu
        .guest_memory_mut()
        .map(GIB, layout, HostMemKind::Ram, false);
    let r = MemoryRegion {
        flags: 0,
        guest_phys_addr: 0,
        memory_size: GIB,
        userspace_addr: hva,
    };
    let _ = mmu.set_user_memory_region(0, &r).expect("slot");
    let v = EptViolation {
        read: true,
        ..Default::default()
    };
    let start = Instant::now();
    let mut gpa = 0;
    while gpa < GIB {
        black_box(mmu.handle_ept_violation(gpa, v).expect("fault"));
        gpa += step;
    }
    let ns = start.elapsed().as_nanos() / u128::from(GIB / step);
    (ns, mmu.stats().table_pages * 4)
}

/// Page tables in a flat array: 4-level, all A/D already set.
struct Flat(Vec<u64>);

impl GuestPhys for Flat {
    fn read_pte(&mut self, gpa: u64, _: PteSize) -> Option<u64> {
        self.0.get((gpa / 8) as usize).copied()
    }
    fn cmpxchg_pte(&mut self, gpa: u64, _: PteSize, old: u64, new: u64) -> Option<bool> {
        let e = self.0.get_mut((gpa / 8) as usize)?;
        if *e != old {
            return Some(false);
        }
        *e = new;
        Some(true)
    }
}

fn walker() -> u128 {
    // PML4 at 0, PDPT at 0x1000, PD at 0x2000, 512 PTs from 0x3000 mapping
    // the first GiB with 4 KiB pages.
    let mut m = Flat(vec![0; (0x3000 + 512 * 0x1000) / 8]);
    m.0[0] = 0x1000 | 0x67;
    m.0[0x1000 / 8] = 0x2000 | 0x67;
    for i in 0..512u64 {
        m.0[(0x2000 / 8 + i) as usize] = (0x3000 + i * 0x1000) | 0x67;
        for j in 0..512u64 {
            m.0[((0x3000 + i * 0x1000) / 8 + j) as usize] = ((i * 512 + j) << 12) | 0x67;
        }
    }
    let ctx = PagingContext {
        mode: PagingMode::Level4,
        cr3: 0,
        wp: true,
        pse: false,
        nxe: true,
        smep: true,
        smap: true,
        features: CpuFeatures {
            maxphyaddr: 46,
            pse36: true,
            gbpages: true,
        },
    };
    let acc = Access {
        kind: AccessKind::Write,
        privilege: Privilege::User,
    };
    let n = 2_000_000u64;
    let start = Instant::now();
    let mut gva = 0u64;
    for _ in 0..n {
        black_box(translate(&mut m, &ctx, gva, acc).expect("walk"));
        gva = (gva + 0x1_3000 + 8) % GIB;
    }
    start.elapsed().as_nanos() / u128::from(n)
}

fn main() {
    let (ns4k, kib4k) = fault_all(Layout::Scrambled, 4096);
    let (ns2m, kib2m) = fault_all(Layout::Contiguous, MB2);
    println!("EPT violation → 4 KiB leaf: {ns4k} ns/fault");
    println!("EPT violation → 2 MiB leaf: {ns2m} ns/fault (incl. 512-page contiguity check)");
    println!("walker, 4-level, 4 KiB pages: {} ns/translation", walker());
    println!(
        "EPT table memory per GiB: {kib4k} KiB with 4 KiB leaves, {kib2m} KiB with 2 MiB leaves"
    );
}
