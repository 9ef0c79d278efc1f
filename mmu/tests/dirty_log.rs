//! Dirty logging: random writes through the MMU (guest writes via the EPT,
//! kernel writes via `write_guest`, walker A/D updates), then
//! `KVM_GET_DIRTY_LOG` returns exactly the written pages, and the next call
//! only the newer ones.

mod common;

use std::collections::BTreeSet;

use common::{FakeTables, FakeVmm, Layout};
use kvm_mmu::ept::{EptPageSize, EptPerms};
use kvm_mmu::platform::HostMemKind;
use kvm_mmu::walker::{
    Access, AccessKind, CpuFeatures, PagingContext, PagingMode, Privilege, translate,
};
use kvm_mmu::{EptViolation, FaultOutcome, Invept, MemoryRegion, Mmu, MmuError};
use proptest::prelude::*;

const MB2: u64 = 2 << 20;
type TestMmu = Mmu<FakeTables, FakeVmm>;

/// What the CPU does for a guest access: use the EPT leaf if it allows the
/// access, else take an EPT violation and retry.
fn guest_access(mmu: &mut TestMmu, gpa: u64, write: Option<u8>) {
    for _ in 0..4 {
        if let Some((e, size)) = mmu.ept().lookup(mmu.tables(), gpa) {
            let pa = e.addr() + (gpa & (size.bytes() - 1));
            match write {
                Some(b) if e.perms().contains(EptPerms::W) => {
                    mmu.guest_memory().write_pa(pa, &[b]);
                    return;
                }
                None if e.perms().contains(EptPerms::R) => return,
                _ => {}
            }
        }
        let v = EptViolation {
            read: write.is_none(),
            write: write.is_some(),
            fetch: false,
        };
        match mmu.handle_ept_violation(gpa, v).unwrap() {
            FaultOutcome::Mapped { invept, .. } => {
                if invept == Invept::Needed {
                    mmu.invept_done();
                }
            }
            FaultOutcome::Mmio => panic!("MMIO at {gpa:#x}"),
        }
    }
    panic!("access at {gpa:#x} never completed");
}

fn region(gpa: u64, size: u64, hva: u64, log: bool) -> MemoryRegion {
    MemoryRegion {
        flags: u32::from(log),
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: hva,
    }
}

/// Two slots: 0 = 8 MiB contiguous at 0 (2 MiB leaves before logging),
/// 1 = 1 MiB + 12 KiB scrambled at 16 MiB.
fn setup() -> (TestMmu, FakeTables, [(u64, u64); 2]) {
    let arena = FakeTables::default();
    let mut mmu = Mmu::new(arena.clone(), FakeVmm::new()).unwrap();
    let a = mmu
        .guest_memory_mut()
        .map(4 * MB2, Layout::Contiguous, HostMemKind::Ram, false);
    let b = mmu
        .guest_memory_mut()
        .map(0x10_3000, Layout::Scrambled, HostMemKind::Ram, true);
    let slots = [(0, 4 * MB2), (8 * MB2, 0x10_3000)];
    assert_eq!(
        mmu.set_user_memory_region(0, &region(0, 4 * MB2, a, false)),
        Ok(Invept::NotNeeded)
    );
    assert_eq!(
        mmu.set_user_memory_region(1, &region(8 * MB2, 0x10_3000, b, true)),
        Ok(Invept::NotNeeded)
    );
    (mmu, arena, slots)
}

fn pages_of(bitmap: &[u64]) -> BTreeSet<u64> {
    let mut s = BTreeSet::new();
    for (w, &word) in bitmap.iter().enumerate() {
        for b in 0..64 {
            if word & (1 << b) != 0 {
                s.insert(w as u64 * 64 + b);
            }
        }
    }
    s
}

#[derive(Clone, Debug)]
enum Op {
    GuestWrite { slot: usize, off: u64, byte: u8 },
    GuestRead { slot: usize, off: u64 },
    KernelWrite { slot: usize, off: u64, len: u16 },
    GetLog { slot: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..2, any::<u64>(), any::<u8>()).prop_map(|(slot, off, byte)| Op::GuestWrite { slot, off, byte }),
        4 => (0usize..2, any::<u64>()).prop_map(|(slot, off)| Op::GuestRead { slot, off }),
        2 => (0usize..2, any::<u64>(), 1u16..6000).prop_map(|(slot, off, len)| Op::KernelWrite { slot, off, len }),
        1 => (0usize..2).prop_map(|slot| Op::GetLog { slot }),
    ]
}

fn run(pre: Vec<(u64, bool)>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (mut mmu, arena, slots) = setup();
    // Before logging starts on slot 0: map some of it (2 MiB leaves).
    for (off, write) in pre {
        guest_access(&mut mmu, off % slots[0].1, write.then_some(1));
    }
    let hva0 = mmu.slots().iter().next().unwrap().userspace_addr();
    let inv = mmu
        .set_user_memory_region(0, &region(0, slots[0].1, hva0, true))
        .unwrap();
    if inv == Invept::Needed {
        mmu.invept_done();
    }
    let mut mapped_2m = 0;
    mmu.ept().for_each_leaf(mmu.tables(), |_, _, s| {
        mapped_2m += u32::from(s == EptPageSize::Size2M)
    });
    prop_assert_eq!(mapped_2m, 0, "logging slot kept 2 MiB leaves");

    let mut expect: [BTreeSet<u64>; 2] = Default::default();
    for op in ops
        .into_iter()
        .chain([Op::GetLog { slot: 0 }, Op::GetLog { slot: 1 }])
    {
        match op {
            Op::GuestWrite { slot, off, byte } => {
                let (base, size) = slots[slot];
                let off = off % size;
                guest_access(&mut mmu, base + off, Some(byte));
                expect[slot].insert(off / 4096);
                let mut got = [0u8];
                mmu.read_guest(base + off, &mut got).unwrap();
                prop_assert_eq!(got[0], byte);
            }
            Op::GuestRead { slot, off } => {
                let (base, size) = slots[slot];
                guest_access(&mut mmu, base + off % size, None);
            }
            Op::KernelWrite { slot, off, len } => {
                let (base, size) = slots[slot];
                let len = u64::from(len).min(size);
                let off = off % (size - len + 1);
                mmu.write_guest(base + off, &vec![0xa5; len as usize])
                    .unwrap();
                for p in off / 4096..=(off + len - 1) / 4096 {
                    expect[slot].insert(p);
                }
            }
            Op::GetLog { slot } => {
                let words = mmu.dirty_log_words(slot as u32).unwrap();
                prop_assert_eq!(words as u64, (slots[slot].1 / 4096).div_ceil(64));
                let mut out = vec![u64::MAX; words];
                let inv = mmu.get_dirty_log(slot as u32, &mut out).unwrap();
                if inv == Invept::Needed {
                    mmu.invept_done();
                }
                prop_assert_eq!(pages_of(&out), std::mem::take(&mut expect[slot]));
                // After the call no page of the slot is writable in the EPT.
                let (base, size) = slots[slot];
                let mut writable = 0;
                mmu.ept().for_each_leaf(mmu.tables(), |gpa, e, _| {
                    if gpa >= base && gpa < base + size && e.perms().contains(EptPerms::W) {
                        writable += 1;
                    }
                });
                prop_assert_eq!(writable, 0);
            }
        }
    }
    prop_assert_eq!(mmu.stats().table_pages as usize, arena.live());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn get_dirty_log_returns_exactly_the_written_pages(
        pre in prop::collection::vec((any::<u64>(), any::<bool>()), 0..8),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(pre, ops)?;
    }
}

#[test]
fn enabling_logging_splits_2m_leaves() {
    let (mut mmu, _arena, slots) = setup();
    guest_access(&mut mmu, 0x1234, Some(7));
    guest_access(&mut mmu, MB2 + 5, None);
    assert_eq!(mmu.stats().lpages, 2);
    let hva0 = mmu.slots().iter().next().unwrap().userspace_addr();
    let r = region(0, slots[0].1, hva0, true);
    assert_eq!(mmu.set_user_memory_region(0, &r), Ok(Invept::Needed));
    assert_eq!(mmu.stats().lpages, 0);
    // the split kept the mappings, read-only
    let (e, size) = mmu.ept().lookup(mmu.tables(), 0x1234).unwrap();
    assert_eq!(size, EptPageSize::Size4K);
    assert_eq!(e.perms(), EptPerms::R | EptPerms::X);
    // nothing dirty yet: empty log, no INVEPT
    let mut out = vec![0; mmu.dirty_log_words(0).unwrap()];
    assert_eq!(mmu.get_dirty_log(0, &mut out), Ok(Invept::NotNeeded));
    assert!(out.iter().all(|&w| w == 0));
    guest_access(&mut mmu, 0x1234, Some(8));
    assert_eq!(mmu.get_dirty_log(0, &mut out), Ok(Invept::Needed));
    assert_eq!(out[0], 2);
    // turning logging off drops the bitmap
    let r = region(0, slots[0].1, hva0, false);
    assert_eq!(mmu.set_user_memory_region(0, &r), Ok(Invept::NotNeeded));
    assert_eq!(mmu.get_dirty_log(0, &mut out), Err(MmuError::NotLogging));
}

#[test]
fn dirty_log_errors() {
    let (mut mmu, _arena, _) = setup();
    let mut out = [0u64; 1];
    assert_eq!(mmu.get_dirty_log(32, &mut out), Err(MmuError::BadSlot));
    assert_eq!(mmu.get_dirty_log(5, &mut out), Err(MmuError::NotLogging));
    assert_eq!(mmu.get_dirty_log(0, &mut out), Err(MmuError::NotLogging));
    assert_eq!(
        mmu.get_dirty_log(1, &mut out),
        Err(MmuError::BufferTooSmall)
    );
    assert_eq!(MmuError::NotLogging.errno(), kvm_mmu::Errno::NoEnt);
    // kernel access outside any slot
    assert_eq!(mmu.write_guest(64 * MB2, &[1]), Err(MmuError::NoSlot));
    let mut b = [0u8; 2];
    assert_eq!(mmu.read_guest(4 * MB2 - 1, &mut b), Err(MmuError::NoSlot));
}

/// The walker through the MMU: page tables in guest RAM, A/D updates by
/// compare-exchange, which count as kernel writes for the dirty log.
#[test]
fn walker_ad_updates_are_logged() {
    let (mut mmu, _arena, _) = setup();
    let base = 8 * MB2; // slot 1 logs
    let w = |mmu: &mut TestMmu, gpa: u64, v: u64| mmu.write_guest(gpa, &v.to_le_bytes()).unwrap();
    w(&mut mmu, base, (base + 0x1000) | 7);
    w(&mut mmu, base + 0x1000, (base + 0x2000) | 7);
    w(&mut mmu, base + 0x2000, (base + 0x3000) | 7);
    w(&mut mmu, base + 0x3000 + 8, (base + 0x5000) | 7);
    let mut out = vec![0; mmu.dirty_log_words(1).unwrap()];
    let _ = mmu.get_dirty_log(1, &mut out).unwrap();
    assert_eq!(out[0], 0b1111);
    let ctx = PagingContext {
        mode: PagingMode::Level4,
        cr3: base,
        wp: true,
        pse: false,
        nxe: true,
        smep: false,
        smap: false,
        features: CpuFeatures {
            maxphyaddr: 40,
            pse36: true,
            gbpages: true,
        },
    };
    let acc = Access {
        kind: AccessKind::Write,
        privilege: Privilege::User,
    };
    let t = translate(&mut mmu, &ctx, 0x1abc, acc).unwrap();
    assert_eq!(t.gpa, base + 0x5abc);
    let mut leaf = [0u8; 8];
    mmu.read_guest(base + 0x3008, &mut leaf).unwrap();
    assert_eq!(u64::from_le_bytes(leaf), (base + 0x5000) | 0x67);
    let _ = mmu.get_dirty_log(1, &mut out).unwrap();
    assert_eq!(out[0], 0b1111, "A/D updates mark the table pages dirty");
    // a second walk changes nothing
    translate(&mut mmu, &ctx, 0x1abc, acc).unwrap();
    let _ = mmu.get_dirty_log(1, &mut out).unwrap();
    assert_eq!(out[0], 0);
    // a page table outside every slot reads as not present
    w(&mut mmu, base + 0x2008, 0x4000_0000 | 7);
    let r = translate(&mut mmu, &ctx, 0x20_0000, acc);
    let code = kvm_mmu::walker::PfErrorCode::WRITE | kvm_mmu::walker::PfErrorCode::USER;
    assert_eq!(r, Err(kvm_mmu::walker::WalkError::PageFault(code)));
}
