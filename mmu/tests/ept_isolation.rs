//! Isolation: after random slot creates, moves, deletes, dirty-log calls and
//! faults at random guest-physical addresses, every present EPT leaf maps a
//! host page of a current slot at the right offset, and nothing else is
//! mapped. Slots are checked against an independent model of the
//! `KVM_SET_USER_MEMORY_REGION` rules.

mod common;

use std::collections::BTreeMap;

use common::{FakeTables, FakeVmm, Layout};
use kvm_mmu::ept::{EptMemType, EptPageSize, EptPerms};
use kvm_mmu::platform::{GuestMemory, HostMemKind};
use kvm_mmu::{EptViolation, FaultOutcome, Invept, MemoryRegion, Mmu, MmuError, SlotId};
use proptest::prelude::*;

const MB2: u64 = 2 << 20;
const TSS: u32 = 32;

#[derive(Clone, Debug)]
enum Op {
    Set {
        slot: u32,
        gpa: u64,
        npages: u64,
        layout: Layout,
        misalign: bool,
        log: bool,
    },
    Delete {
        slot: u32,
    },
    Fault {
        gpa: u64,
        write: bool,
    },
    FaultInSlot {
        slot: u32,
        frac: u64,
        write: bool,
    },
    DirtyLog {
        slot: u32,
    },
    InveptDone,
    /// Re-set an existing slot with the same size: new place and/or flags.
    Reset {
        slot: u32,
        gpa: Option<u64>,
        log: bool,
    },
}

fn slot_no() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..6, 1 => Just(TSS)]
}

fn op() -> impl Strategy<Value = Op> {
    let set = (
        slot_no(),
        0u64..24,
        prop_oneof![Just(0u64), 0u64..512],
        prop_oneof![Just(1u64), Just(512), Just(1024), Just(1536), 1u64..1100],
        prop_oneof![3 => Just(Layout::Contiguous), 1 => Just(Layout::Scrambled)],
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(slot, g2m, off, npages, layout, misalign, log)| Op::Set {
            slot,
            gpa: g2m * MB2 + off * 4096,
            npages,
            layout,
            misalign,
            log,
        });
    prop_oneof![
        3 => set,
        1 => slot_no().prop_map(|slot| Op::Delete { slot }),
        3 => (0u64..(52 << 20), any::<bool>()).prop_map(|(gpa, write)| Op::Fault { gpa, write }),
        6 => (slot_no(), any::<u64>(), any::<bool>())
            .prop_map(|(slot, frac, write)| Op::FaultInSlot { slot, frac, write }),
        1 => slot_no().prop_map(|slot| Op::DirtyLog { slot }),
        1 => Just(Op::InveptDone),
        2 => (slot_no(), prop::option::weighted(0.3, (0u64..24).prop_map(|g| g * MB2)), any::<bool>())
            .prop_map(|(slot, gpa, log)| Op::Reset { slot, gpa, log }),
    ]
}

#[derive(Clone, Copy, Debug)]
struct ModelSlot {
    gpa: u64,
    npages: u64,
    hva: u64,
    log: bool,
}

impl ModelSlot {
    fn end(&self) -> u64 {
        self.gpa + self.npages * 4096
    }
}

#[derive(Default)]
struct Model {
    slots: BTreeMap<u32, ModelSlot>,
}

impl Model {
    fn set(&mut self, slot: u32, s: ModelSlot) -> Result<(), MmuError> {
        if s.npages == 0 {
            self.slots.remove(&slot);
            return Ok(());
        }
        let old = self.slots.get(&slot).copied();
        if old.is_some_and(|o| o.npages != s.npages) {
            return Err(MmuError::Resize);
        }
        let overlap = self
            .slots
            .iter()
            .any(|(&n, o)| n < 32 && n != slot && s.gpa < o.end() && o.gpa < s.end());
        if overlap {
            return Err(MmuError::Overlap);
        }
        let hva = old.map_or(s.hva, |o| o.hva);
        self.slots.insert(slot, ModelSlot { hva, ..s });
        Ok(())
    }
    /// Lookup order: user slots first (BTreeMap order puts 32 last).
    fn lookup(&self, gpa: u64) -> Option<(u32, ModelSlot)> {
        self.slots
            .iter()
            .find(|(_, s)| gpa >= s.gpa && gpa < s.end())
            .map(|(&n, &s)| (n, s))
    }
}

type TestMmu = Mmu<FakeTables, FakeVmm>;

fn check_invariants(mmu: &TestMmu, model: &Model, arena: &FakeTables) -> Result<(), TestCaseError> {
    let mut bad = None;
    let mut leaves = 0;
    mmu.ept().for_each_leaf(mmu.tables(), |gpa, e, size| {
        leaves += 1;
        if bad.is_some() {
            return;
        }
        let n = size.bytes() / 4096;
        for i in 0..n {
            let p = gpa + i * 4096;
            let Some((no, s)) = model.lookup(p) else {
                bad = Some(format!(
                    "leaf {gpa:#x} {size:?} maps {p:#x}, outside every slot"
                ));
                return;
            };
            let want = mmu
                .guest_memory()
                .resolve(s.hva + (p - s.gpa))
                .map(|h| h.pa);
            if want != Some(e.addr() + i * 4096) {
                bad = Some(format!(
                    "gpa {p:#x} (slot {no}) maps {:#x}, want {want:x?}",
                    e.addr() + i * 4096
                ));
                return;
            }
            if s.log && size == EptPageSize::Size2M {
                bad = Some(format!("2M leaf at {gpa:#x} in logging slot {no}"));
                return;
            }
            if s.log && e.perms().contains(EptPerms::W) {
                let id = SlotId::any(no).unwrap();
                let dirty = mmu.slots().get(id).and_then(|m| m.dirty_bitmap()).unwrap();
                if !dirty.is_set((p - s.gpa) / 4096) {
                    bad = Some(format!("writable {p:#x} not in the dirty log of slot {no}"));
                    return;
                }
            }
        }
        if e.mem_type() != Some(EptMemType::WriteBack) || !e.ignores_pat() {
            bad = Some(format!("leaf {gpa:#x} not WB+IPAT: {:#x}", e.raw()));
        }
    });
    if let Some(msg) = bad {
        return Err(TestCaseError::fail(msg));
    }
    let st = mmu.stats();
    prop_assert_eq!(st.table_pages as usize, arena.live());
    let mut lp = 0;
    mmu.ept().for_each_leaf(mmu.tables(), |_, _, s| {
        lp += u64::from(s == EptPageSize::Size2M)
    });
    prop_assert_eq!(st.lpages, lp);
    // slots agree with the model
    for n in (0..6).chain([TSS]) {
        let got = mmu.slots().get(SlotId::any(n).unwrap()).map(|s| {
            (
                s.base_gfn() * 4096,
                s.npages(),
                s.userspace_addr(),
                s.is_logging(),
            )
        });
        let want = model.slots.get(&n).map(|s| (s.gpa, s.npages, s.hva, s.log));
        prop_assert_eq!(got, want, "slot {}", n);
    }
    Ok(())
}

/// What a run exercised (so the property is not vacuous).
#[derive(Default, Debug)]
struct Coverage {
    created: u32,
    moved: u32,
    overlap: u32,
    resize: u32,
    deleted_mapped: u32,
    mmio: u32,
    max_lpages: u64,
    split: u32,
    logging_faults: u32,
    freed_after_invept: u32,
}

fn run(ops: Vec<Op>) -> Result<Coverage, TestCaseError> {
    let mut cov = Coverage::default();
    let arena = FakeTables::default();
    let mut mmu = Mmu::new(arena.clone(), FakeVmm::new()).unwrap();
    let mut model = Model::default();
    let mut pending = false;
    for op in ops {
        match op {
            Op::Set {
                slot,
                gpa,
                npages,
                layout,
                misalign,
                log,
            } => {
                // The VMM maps fresh memory for it (ignored on a move).
                let hva = mmu_vmm(&mut mmu).map(npages * 4096, layout, HostMemKind::Ram, misalign);
                let r = MemoryRegion {
                    flags: u32::from(log),
                    guest_phys_addr: gpa,
                    memory_size: npages * 4096,
                    userspace_addr: hva,
                };
                let before = model.slots.get(&slot).copied();
                let lp_before = mmu.stats().lpages;
                let got = mmu.set_memory_region(SlotId::any(slot).unwrap(), &r);
                let want = model.set(
                    slot,
                    ModelSlot {
                        gpa,
                        npages,
                        hva,
                        log,
                    },
                );
                match (&want, before) {
                    (Ok(()), None) => cov.created += 1,
                    (Ok(()), Some(b)) if b.gpa != gpa => cov.moved += 1,
                    (Err(MmuError::Overlap), _) => cov.overlap += 1,
                    (Err(MmuError::Resize), _) => cov.resize += 1,
                    _ => {}
                }
                if log && before.is_some_and(|b| !b.log) && mmu.stats().lpages < lp_before {
                    cov.split += 1;
                }
                prop_assert_eq!(got.is_ok(), want.is_ok(), "{:?} vs {:?}", got, want);
                if let (Err(g), Err(w)) = (got, want) {
                    prop_assert_eq!(g, w);
                }
                pending |= got == Ok(Invept::Needed);
            }
            Op::Delete { slot } => {
                let r = MemoryRegion {
                    flags: 0,
                    guest_phys_addr: 0,
                    memory_size: 0,
                    userspace_addr: 0,
                };
                let got = mmu.set_memory_region(SlotId::any(slot).unwrap(), &r);
                let del = ModelSlot {
                    gpa: 0,
                    npages: 0,
                    hva: 0,
                    log: false,
                };
                model.set(slot, del).unwrap();
                if got.unwrap() == Invept::Needed {
                    pending = true;
                    cov.deleted_mapped += 1;
                }
            }
            Op::Reset { slot, gpa, log } => {
                let Some(old) = model.slots.get(&slot).copied() else {
                    continue;
                };
                let gpa = gpa.unwrap_or(old.gpa);
                let r = MemoryRegion {
                    flags: u32::from(log),
                    guest_phys_addr: gpa,
                    memory_size: old.npages * 4096,
                    userspace_addr: old.hva,
                };
                let lp_before = mmu.stats().lpages;
                let got = mmu.set_memory_region(SlotId::any(slot).unwrap(), &r);
                let want = model.set(slot, ModelSlot { gpa, log, ..old });
                prop_assert_eq!(got.map(|_| ()), want);
                pending |= got == Ok(Invept::Needed);
                if want.is_ok() && gpa != old.gpa {
                    cov.moved += 1;
                }
                if log && !old.log && mmu.stats().lpages < lp_before {
                    cov.split += 1;
                }
            }
            Op::Fault { gpa, write } => {
                if model.lookup(gpa).is_none() {
                    cov.mmio += 1;
                }
                fault(&mut mmu, &model, gpa, write, &mut pending)?;
            }
            Op::FaultInSlot { slot, frac, write } => {
                if let Some(s) = model.slots.get(&slot).copied() {
                    let gpa = s.gpa + (frac % (s.npages * 4096));
                    if model.lookup(gpa).is_some_and(|(_, s)| s.log) {
                        cov.logging_faults += 1;
                    }
                    fault(&mut mmu, &model, gpa, write, &mut pending)?;
                }
            }
            Op::DirtyLog { slot } => {
                let mut out = vec![0u64; 64];
                match mmu.get_dirty_log(slot, &mut out) {
                    Ok(inv) => pending |= inv == Invept::Needed,
                    Err(e) => {
                        let logging = slot < 32 && model.slots.get(&slot).is_some_and(|s| s.log);
                        prop_assert!(!logging, "{:?}", e);
                    }
                }
            }
            Op::InveptDone => {
                if pending {
                    let before = arena.live();
                    mmu.invept_done();
                    if arena.live() < before {
                        cov.freed_after_invept += 1;
                    }
                    pending = false;
                }
            }
        }
        check_invariants(&mmu, &model, &arena)?;
        cov.max_lpages = cov.max_lpages.max(mmu.stats().lpages);
    }
    drop(mmu);
    prop_assert_eq!(arena.live(), 0, "table pages leaked");
    Ok(cov)
}

/// The VMM is owned by the MMU; tests reach it to add mappings (the real
/// VMM maps memory before calling the ioctl).
fn mmu_vmm(mmu: &mut TestMmu) -> &mut FakeVmm {
    mmu.guest_memory_mut()
}

fn fault(
    mmu: &mut TestMmu,
    model: &Model,
    gpa: u64,
    write: bool,
    pending: &mut bool,
) -> Result<(), TestCaseError> {
    let v = EptViolation {
        read: !write,
        write,
        fetch: false,
    };
    let out = mmu.handle_ept_violation(gpa, v);
    match model.lookup(gpa) {
        None => prop_assert_eq!(out, Ok(FaultOutcome::Mmio)),
        Some((_, s)) => {
            let Ok(FaultOutcome::Mapped { invept, .. }) = out else {
                return Err(TestCaseError::fail(format!("fault at {gpa:#x}: {out:?}")));
            };
            *pending |= invept == Invept::Needed;
            let (e, size) = mmu
                .ept()
                .lookup(mmu.tables(), gpa)
                .expect("mapped after fault");
            let base = gpa & !(size.bytes() - 1);
            let want = mmu
                .guest_memory()
                .resolve(s.hva + (gpa & !0xfff) - s.gpa)
                .unwrap()
                .pa;
            prop_assert_eq!(e.addr() + ((gpa & !0xfff) - base), want);
            if write {
                prop_assert!(e.perms().contains(EptPerms::W));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn ept_maps_only_current_slots(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn isolation_generator_covers_every_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Coverage::default();
    for _ in 0..40 {
        let ops = prop::collection::vec(op(), 1..60)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let c = run(ops).unwrap();
        total.created += c.created;
        total.moved += c.moved;
        total.overlap += c.overlap;
        total.resize += c.resize;
        total.deleted_mapped += c.deleted_mapped;
        total.mmio += c.mmio;
        total.max_lpages = total.max_lpages.max(c.max_lpages);
        total.split += c.split;
        total.logging_faults += c.logging_faults;
        total.freed_after_invept += c.freed_after_invept;
    }
    let t = &total;
    let all = [
        t.created,
        t.moved,
        t.overlap,
        t.resize,
        t.deleted_mapped,
        t.mmio,
        t.split,
    ];
    assert!(all.iter().all(|&n| n > 0), "{total:?}");
    assert!(
        t.max_lpages > 0 && t.logging_faults > 0 && t.freed_after_invept > 0,
        "{total:?}"
    );
}

#[test]
fn two_meg_leaves_need_contiguous_backing() {
    let arena = FakeTables::default();
    let mut mmu = Mmu::new(arena.clone(), FakeVmm::new()).unwrap();
    let c = mmu
        .guest_memory_mut()
        .map(4 * MB2, Layout::Contiguous, HostMemKind::Ram, true);
    let s = mmu
        .guest_memory_mut()
        .map(2 * MB2, Layout::Scrambled, HostMemKind::Ram, false);
    let r = |gpa, size, hva| MemoryRegion {
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: hva,
    };
    assert_eq!(
        mmu.set_user_memory_region(0, &r(0, 4 * MB2, c)),
        Ok(Invept::NotNeeded)
    );
    assert_eq!(
        mmu.set_user_memory_region(1, &r(8 * MB2, 2 * MB2, s)),
        Ok(Invept::NotNeeded)
    );
    let rd = EptViolation {
        read: true,
        ..Default::default()
    };
    let o = mmu.handle_ept_violation(MB2 + 0x1234, rd).unwrap();
    assert_eq!(
        o,
        FaultOutcome::Mapped {
            size: EptPageSize::Size2M,
            invept: Invept::NotNeeded
        }
    );
    let o = mmu.handle_ept_violation(8 * MB2 + 0x1234, rd).unwrap();
    assert_eq!(
        o,
        FaultOutcome::Mapped {
            size: EptPageSize::Size4K,
            invept: Invept::NotNeeded
        }
    );
    assert_eq!(mmu.stats().lpages, 1);
    // root + PDPT + PD + one PT
    assert_eq!(mmu.stats().table_pages, 4);
    assert_eq!(
        mmu.handle_ept_violation(64 * MB2, rd),
        Ok(FaultOutcome::Mmio)
    );
    assert_eq!(mmu.stats().mmio_faults, 1);
    // delete: unmapped, INVEPT asked, tables freed only after it
    let del = r(0, 0, 0);
    assert_eq!(mmu.set_user_memory_region(0, &del), Ok(Invept::Needed));
    assert_eq!(mmu.stats().lpages, 0);
    assert!(mmu.ept().lookup(mmu.tables(), MB2).is_none());
    assert_eq!(mmu.set_user_memory_region(1, &del), Ok(Invept::Needed));
    assert_eq!(arena.live(), 4);
    mmu.invept_done();
    assert_eq!(arena.live(), 1);
    assert_eq!(mmu.eptp() & 0x3f, 0x1e);
}

#[test]
fn device_memory_is_uncached_and_missing_pages_fault() {
    let mut mmu = Mmu::new(FakeTables::default(), FakeVmm::new()).unwrap();
    let d = mmu
        .guest_memory_mut()
        .map(MB2, Layout::Contiguous, HostMemKind::Device, false);
    let r = MemoryRegion {
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 2 * MB2,
        userspace_addr: d,
    };
    assert_eq!(mmu.set_user_memory_region(0, &r), Ok(Invept::NotNeeded));
    let rd = EptViolation {
        read: true,
        ..Default::default()
    };
    mmu.handle_ept_violation(0x5000, rd).unwrap();
    let (e, _) = mmu.ept().lookup(mmu.tables(), 0x5000).unwrap();
    assert_eq!(e.mem_type(), Some(EptMemType::Uncacheable));
    assert!(!e.ignores_pat());
    // the second MiB of the slot has no VMM memory behind it
    assert_eq!(
        mmu.handle_ept_violation(MB2 + 0x5000, rd),
        Err(MmuError::HostFault)
    );
}

#[test]
fn table_allocation_failure_is_enomem_and_leaks_nothing() {
    let arena = FakeTables::default();
    let mut mmu = Mmu::new(arena.clone(), FakeVmm::new()).unwrap();
    let h = mmu
        .guest_memory_mut()
        .map(MB2, Layout::Scrambled, HostMemKind::Ram, false);
    let r = MemoryRegion {
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MB2,
        userspace_addr: h,
    };
    assert_eq!(mmu.set_user_memory_region(0, &r), Ok(Invept::NotNeeded));
    arena.0.borrow_mut().fail_after = Some(2);
    let rd = EptViolation {
        read: true,
        ..Default::default()
    };
    assert_eq!(
        mmu.handle_ept_violation(0x3000, rd),
        Err(MmuError::NoMemory)
    );
    arena.0.borrow_mut().fail_after = None;
    assert!(mmu.handle_ept_violation(0x3000, rd).is_ok());
    assert_eq!(mmu.stats().table_pages as usize, arena.live());
    drop(mmu);
    assert_eq!(arena.live(), 0);
}
