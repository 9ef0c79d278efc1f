//! The handle model (inventory §1.2–1.3), the mmap contract, the system
//! ioctls, and one test per fixed C defect (§1.7 and the others found while
//! porting), each written so that the C behaviour would fail it.

mod common;
use common::*;
use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{
    FEXCL, FNDELAY, FREAD, OTYP_CHR, PROT_EXEC, PROT_READ, PROT_USER, PROT_WRITE,
};
use kvm_ioctl::{Dev, Errno, MapKind};

const PAGE: u64 = 4096;
const BUF: u64 = 0x1000_0000;

fn setup() -> (TestDriver, FakeUser) {
    let mut um = FakeUser::new();
    um.map(BUF, 0x10000);
    (driver(), um)
}

/// A VM fd plus a VCPU fd (id `id`) cloned from it.
fn vm_and_vcpu(d: &TestDriver, um: &mut FakeUser, id: u64) -> (Dev, Dev) {
    let vm = open(d);
    ioctl(d, vm, Ioctl::CreateVm, 0, um).unwrap();
    let vcpu = open(d);
    ioctl(d, vcpu, Ioctl::Clone, vm.0, um).unwrap();
    ioctl(d, vcpu, Ioctl::CreateVcpu, id, um).unwrap();
    (vm, vcpu)
}

#[test]
fn open_checks_flags_otyp_and_minor() {
    let d = driver();
    let mut dev = Dev::new(KVM_MAJOR, 0);
    assert_eq!(d.open(&mut dev, RDWR | FEXCL, OTYP_CHR), Err(Errno::EINVAL));
    assert_eq!(
        d.open(&mut dev, RDWR | FNDELAY, OTYP_CHR),
        Err(Errno::EINVAL)
    );
    assert_eq!(d.open(&mut dev, FREAD, OTYP_CHR), Err(Errno::EINVAL));
    assert_eq!(d.open(&mut dev, RDWR, 1), Err(Errno::EINVAL));
    let mut other = Dev::new(KVM_MAJOR, 5);
    assert_eq!(d.open(&mut other, RDWR, OTYP_CHR), Err(Errno::ENXIO));
    assert_eq!(d.usage(), 0);
    assert_eq!(d.backend().world().enables, 0);
    // Each open gets its own minor; the first enables the hardware once.
    let a = open(&d);
    let b = open(&d);
    assert_ne!(a.minor(), b.minor());
    assert_eq!((a.major(), b.major()), (KVM_MAJOR, KVM_MAJOR));
    assert_eq!(d.backend().world().enables, 1);
    d.close(a).unwrap();
    d.close(b).unwrap();
    assert!(!d.backend().world().hardware_on);
    assert_eq!(d.close(b), Err(Errno::ENXIO));
    assert_eq!(d.close(Dev::new(KVM_MAJOR, 0)), Err(Errno::ENXIO));
}

#[test]
fn create_vm_returns_increasing_ids_once_per_minor() {
    let (d, mut um) = setup();
    let a = open(&d);
    let b = open(&d);
    assert_eq!(
        ioctl(&d, a, Ioctl::CreateVm, 1, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, a, Ioctl::CreateVm, 0, &mut um), Ok(0));
    assert_eq!(
        ioctl(&d, a, Ioctl::CreateVm, 0, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, b, Ioctl::CreateVm, 0, &mut um), Ok(1));
    d.close(a).unwrap();
    let c = open(&d);
    assert_eq!(
        ioctl(&d, c, Ioctl::CreateVm, 0, &mut um),
        Ok(2),
        "ids are never reused"
    );
}

#[test]
fn clone_errno_rules() {
    let (d, mut um) = setup();
    let vm = open(&d);
    let novm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    let n = open(&d);
    // Another major: ENODEV. Parent not open: EINVAL. Parent without VM: ESRCH.
    assert_eq!(
        ioctl(
            &d,
            n,
            Ioctl::Clone,
            Dev::new(KVM_MAJOR + 1, vm.minor()).0,
            &mut um
        ),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        ioctl(&d, n, Ioctl::Clone, Dev::new(KVM_MAJOR, 999).0, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, n, Ioctl::Clone, novm.0, &mut um),
        Err(Errno::ESRCH)
    );
    assert_eq!(ioctl(&d, n, Ioctl::Clone, vm.0, &mut um), Ok(0));
    // Already has a VM: EBUSY; a VM owner can't clone either.
    assert_eq!(ioctl(&d, n, Ioctl::Clone, vm.0, &mut um), Err(Errno::EBUSY));
    assert_eq!(
        ioctl(&d, vm, Ioctl::Clone, vm.0, &mut um),
        Err(Errno::EBUSY)
    );
    // A clone of a clone shares the VM.
    let m = open(&d);
    assert_eq!(ioctl(&d, m, Ioctl::Clone, n.0, &mut um), Ok(0));
    assert_eq!(d.snapshot().vms[&0].handles, 3);
    // A clone can't create a VM of its own.
    assert_eq!(
        ioctl(&d, n, Ioctl::CreateVm, 0, &mut um),
        Err(Errno::EINVAL)
    );
}

#[test]
fn create_vcpu_rules() {
    let (d, mut um) = setup();
    let fresh = open(&d);
    assert_eq!(
        ioctl(&d, fresh, Ioctl::CreateVcpu, 0, &mut um),
        Err(Errno::EINVAL)
    );
    let (vm, v0) = vm_and_vcpu(&d, &mut um, 0);
    assert_eq!(
        ioctl(&d, v0, Ioctl::CreateVcpu, 1, &mut um),
        Err(Errno::EEXIST),
        "one per fd"
    );
    let v = open(&d);
    ioctl(&d, v, Ioctl::Clone, vm.0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, v, Ioctl::CreateVcpu, 0, &mut um),
        Err(Errno::EEXIST),
        "id in use"
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::CreateVcpu, 64, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::CreateVcpu, 1 << 32, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, v, Ioctl::CreateVcpu, 63, &mut um), Ok(1));
    // The VM fd itself may hold a VCPU too (C allows it).
    assert_eq!(ioctl(&d, vm, Ioctl::CreateVcpu, 7, &mut um), Ok(2));
    // 64 VCPUs at most.
    let mut ids = (1..63u64).filter(|i| *i != 7);
    for _ in 3..64 {
        let f = open(&d);
        ioctl(&d, f, Ioctl::Clone, vm.0, &mut um).unwrap();
        ioctl(&d, f, Ioctl::CreateVcpu, ids.next().unwrap(), &mut um).unwrap();
    }
    let f = open(&d);
    ioctl(&d, f, Ioctl::Clone, vm.0, &mut um).unwrap();
    assert_eq!(ids.next(), None, "ids 0..63 all in use");
    // The count limit comes first (as in C): EINVAL, not EEXIST.
    assert_eq!(
        ioctl(&d, f, Ioctl::CreateVcpu, 5, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(d.snapshot().vms[&0].vcpus.len(), 64);
}

/// §1.7: the C driver bound `vcpus[id]` instead of `vcpus[index]`, so a
/// VCPU created with id 5 first bound to an empty slot (NULL).
#[test]
fn defect_create_vcpu_binds_by_index_not_id() {
    let (d, mut um) = setup();
    let (vm, v5) = vm_and_vcpu(&d, &mut um, 5);
    let v0 = open(&d);
    ioctl(&d, v0, Ioctl::Clone, vm.0, &mut um).unwrap();
    assert_eq!(ioctl(&d, v0, Ioctl::CreateVcpu, 0, &mut um), Ok(1));
    let snap = d.snapshot();
    assert_eq!(snap.minors[&v5.minor()].1, Some(0));
    assert_eq!(snap.minors[&v0.minor()].1, Some(1));
    um.put(
        BUF,
        &kvm_regs {
            rax: 5,
            ..Default::default()
        },
    );
    ioctl(&d, v5, Ioctl::SetRegs, BUF, &mut um).unwrap();
    let w = d.backend().world();
    let vcpus = &w.vms[&0].vcpus;
    assert_eq!((vcpus[0].id, vcpus[0].regs.rax), (5, 5));
    assert_eq!((vcpus[1].id, vcpus[1].regs.rax), (0, 0));
}

#[test]
fn vm_destroyed_by_last_close_whichever_it_is() {
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let (d, mut um) = setup();
        let (vm, v0) = vm_and_vcpu(&d, &mut um, 0);
        let plain = open(&d);
        ioctl(&d, plain, Ioctl::Clone, vm.0, &mut um).unwrap();
        let fds = [vm, v0, plain];
        for (i, k) in order.iter().enumerate() {
            assert!(d.backend().world().destroyed.is_empty());
            d.close(fds[*k]).unwrap();
            if i < 2 {
                assert_eq!(d.snapshot().vms[&0].handles, 2 - i as u32);
            }
        }
        assert_eq!(d.backend().world().destroyed, vec![0]);
        assert!(d.snapshot().vms.is_empty());
    }
}

#[test]
fn scope_checks() {
    let (d, mut um) = setup();
    let fresh = open(&d);
    let (vm, _v) = vm_and_vcpu(&d, &mut um, 0);
    assert_eq!(
        ioctl(&d, fresh, Ioctl::SetTssAddr, 0, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, fresh, Ioctl::CreateIrqchip, 0, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, fresh, Ioctl::Run, 0, &mut um), Err(Errno::EINVAL));
    assert_eq!(
        ioctl(&d, vm, Ioctl::Run, 0, &mut um),
        Err(Errno::EINVAL),
        "VM fd has no VCPU"
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetRegs, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, vm, Ioctl::Nmi, 0, &mut um), Err(Errno::EINVAL));
    // System ioctls on any fd.
    assert_eq!(ioctl(&d, fresh, Ioctl::GetApiVersion, 0, &mut um), Ok(12));
    assert_eq!(
        ioctl(&d, fresh, Ioctl::GetApiVersion, 1, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, fresh, Ioctl::GetVcpuMmapSize, 0, &mut um),
        Ok(12288)
    );
    assert_eq!(
        ioctl(&d, fresh, Ioctl::GetVcpuMmapSize, 1, &mut um),
        Err(Errno::EINVAL)
    );
    // Unknown minor.
    assert_eq!(
        ioctl(
            &d,
            Dev::new(KVM_MAJOR, 4242),
            Ioctl::GetApiVersion,
            0,
            &mut um
        ),
        Err(Errno::ENXIO)
    );
}

#[test]
fn sixty_four_bit_callers_only() {
    let (d, mut um) = setup();
    let (_vm, v) = vm_and_vcpu(&d, &mut um, 0);
    assert_eq!(
        d.ioctl(v, Ioctl::GetApiVersion.cmd() as i32, 0, ILP32, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(d.devmap(v, 0, 3 * PAGE, ILP32), Err(Errno::EINVAL));
    assert!(d.devmap(v, 0, 3 * PAGE, LP64).is_ok());
}

#[test]
fn mmap_contract() {
    let (d, mut um) = setup();
    let rw = PROT_READ | PROT_WRITE | PROT_USER;
    let fresh = open(&d);
    let (vm, v) = vm_and_vcpu(&d, &mut um, 0);
    assert_eq!(
        d.segmap(Dev::new(KVM_MAJOR, 999), 0, 3 * PAGE, rw),
        Err(Errno::ENXIO)
    );
    assert_eq!(d.segmap(v, 0, 3 * PAGE, rw | PROT_EXEC), Err(Errno::EINVAL));
    assert_eq!(
        d.segmap(v, 0, 3 * PAGE, PROT_READ | PROT_WRITE),
        Err(Errno::EINVAL)
    );
    assert_eq!(d.segmap(v, 0, 2 * PAGE, rw), Err(Errno::EINVAL));
    assert_eq!(d.segmap(v, PAGE as i64, 3 * PAGE, rw), Err(Errno::EINVAL));
    assert_eq!(d.segmap(vm, 0, 3 * PAGE, rw), Err(Errno::EINVAL), "no VCPU");
    assert_eq!(d.segmap(fresh, 0, 3 * PAGE, rw), Err(Errno::EINVAL));
    assert_eq!(d.segmap(v, 0, 3 * PAGE, rw), Ok(()));
    assert_eq!(d.devmap(vm, 0, 3 * PAGE, LP64), Err(Errno::EINVAL));
    assert_eq!(d.devmap(fresh, 0, 3 * PAGE, LP64), Err(Errno::EINVAL));
    let first = d.devmap(v, 0, 3 * PAGE, LP64).unwrap();
    assert_eq!(
        (first.kind, first.len),
        (MapKind::VcpuRun, 2 * PAGE as usize)
    );
    let second = d
        .devmap(v, first.len as u64, 3 * PAGE - first.len as u64, LP64)
        .unwrap();
    assert_eq!(
        (second.kind, second.len),
        (MapKind::CoalescedRing, PAGE as usize)
    );
    assert_eq!(d.devmap(v, PAGE, PAGE, LP64), Err(Errno::EINVAL));
}

#[test]
fn check_extension_is_truthful() {
    let (d, mut um) = setup();
    let f = open(&d);
    let mut ck = |c: Capability| ioctl(&d, f, Ioctl::CheckExtension, c as u64, &mut um);
    // The seven the C driver claimed without their ioctls, and VAPIC.
    for c in [
        Capability::MmuShadowCacheControl,
        Capability::ReinjectControl,
        Capability::AssignDevIrq,
        Capability::Ioeventfd,
        Capability::XenHvm,
        Capability::AdjustClock,
        Capability::PciSegment,
        Capability::Vapic,
        Capability::Iommu,
    ] {
        assert_eq!(ck(c), Ok(0), "{c:?}");
    }
    assert_eq!(ck(Capability::PvMmu), Err(Errno::EINVAL));
    assert_eq!(ck(Capability::UserNmi), Err(Errno::EINVAL));
    assert_eq!(ck(Capability::NrVcpus), Ok(64));
    assert_eq!(ck(Capability::NrMemslots), Ok(32));
    assert_eq!(ck(Capability::Mce), Ok(32));
    assert_eq!(ck(Capability::CoalescedMmio), Ok(2));
    assert_eq!(ck(Capability::IrqRouting), Ok(1024));
    assert_eq!(ck(Capability::Pit2), Ok(1));
    assert_eq!(
        ioctl(&d, f, Ioctl::CheckExtension, 5, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, f, Ioctl::CheckExtension, u64::MAX, &mut um),
        Err(Errno::EINVAL)
    );
}

#[test]
fn unimplemented_ioctls_are_einval_with_the_probe() {
    let (d, mut um) = setup();
    let (vm, v) = vm_and_vcpu(&d, &mut um, 0);
    let six = [
        Ioctl::SetNrMmuPages,
        Ioctl::GetNrMmuPages,
        Ioctl::GetPit,
        Ioctl::SetPit,
        Ioctl::ReinjectControl,
        Ioctl::SetClock,
        Ioctl::GetClock,
        Ioctl::SetCpuid,
        Ioctl::TprAccessReporting,
        Ioctl::X86SetMce,
    ];
    for i in six {
        assert_eq!(ioctl(&d, vm, i, BUF, &mut um), Err(Errno::EINVAL), "{i:?}");
        assert_eq!(ioctl(&d, v, i, BUF, &mut um), Err(Errno::EINVAL), "{i:?}");
    }
    // Linux's numbers are not ours.
    assert_eq!(d.ioctl(v, 0xae80, 0, LP64, &mut um), Err(Errno::EINVAL));
    assert_eq!(d.platform().bad_ioctls.lock().unwrap().len(), 21);
}

#[test]
fn get_supported_cpuid_nent_rules() {
    let (d, mut um) = setup();
    let f = open(&d);
    for (nent, want) in [
        (0, Err(Errno::E2BIG)),
        (12, Err(Errno::E2BIG)),
        (13, Ok(0)),
        (1000, Ok(0)),
    ] {
        um.put(
            BUF,
            &kvm_cpuid2 {
                nent,
                padding: 0,
                entries: [],
            },
        );
        assert_eq!(
            ioctl(&d, f, Ioctl::GetSupportedCpuid, BUF, &mut um),
            want,
            "nent {nent}"
        );
    }
    assert_eq!(um.get::<u32>(BUF), 12);
    // Room for 40 at most: a host with more leaves is E2BIG however big nent.
    let mut d2 = driver();
    d2 = {
        let mut b = FakeBackend::new();
        b.cpuid_leaves = 45;
        drop(d2);
        kvm_ioctl::Driver::new(FakePlatform::default(), b)
    };
    let f = open(&d2);
    um.put(
        BUF,
        &kvm_cpuid2 {
            nent: 1000,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(
        ioctl(&d2, f, Ioctl::GetSupportedCpuid, BUF, &mut um),
        Err(Errno::E2BIG)
    );
    // Entries must fit in user memory.
    um.put(
        BUF + 0xfff8,
        &kvm_cpuid2 {
            nent: 100,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(
        ioctl(
            &d,
            open(&d),
            Ioctl::GetSupportedCpuid,
            BUF + 0xfff8,
            &mut um
        ),
        Err(Errno::EFAULT)
    );
}

#[test]
fn get_msr_index_list_rules() {
    let (d, mut um) = setup();
    let f = open(&d);
    um.put(BUF, &14u32);
    assert_eq!(
        ioctl(&d, f, Ioctl::GetMsrIndexList, BUF, &mut um),
        Err(Errno::E2BIG)
    );
    assert_eq!(um.get::<u32>(BUF), 15);
    assert_eq!(
        ioctl(&d, f, Ioctl::GetMsrIndexList, 0xdead_0000, &mut um),
        Err(Errno::EFAULT)
    );
}

/// §1.7: KVM_GET_CPUID2 copied the VCPU's entries into its 8-byte header
/// buffer (heap overflow) and never reported E2BIG.
#[test]
fn defect_get_cpuid2_overflow_and_e2big() {
    let (d, mut um) = setup();
    let (_vm, v) = vm_and_vcpu(&d, &mut um, 0);
    um.put(
        BUF,
        &kvm_cpuid2 {
            nent: 40,
            padding: 0,
            entries: [],
        },
    );
    for i in 0..40u64 {
        um.put(
            BUF + 8 + 40 * i,
            &kvm_cpuid_entry2 {
                function: i as u32,
                eax: 7,
                ..Default::default()
            },
        );
    }
    assert_eq!(ioctl(&d, v, Ioctl::SetCpuid2, BUF, &mut um), Ok(0));
    // Too small: E2BIG, and nothing past the header is written.
    um.map(0x2000_0000, 16);
    um.put(
        0x2000_0000,
        &kvm_cpuid2 {
            nent: 1,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::GetCpuid2, 0x2000_0000, &mut um),
        Err(Errno::E2BIG)
    );
    assert_eq!(um.read(0x2000_0008, 8), vec![0; 8]);
    // Big enough: all 40 come back, after the header.
    um.map(0x3000_0000, 8 + 40 * 40);
    um.put(
        0x3000_0000,
        &kvm_cpuid2 {
            nent: 40,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(ioctl(&d, v, Ioctl::GetCpuid2, 0x3000_0000, &mut um), Ok(0));
    assert_eq!(um.get::<u32>(0x3000_0000), 40);
    assert_eq!(
        um.get::<kvm_cpuid_entry2>(0x3000_0000 + 8 + 39 * 40)
            .function,
        39
    );
    // SET_CPUID2 limit.
    um.put(
        BUF,
        &kvm_cpuid2 {
            nent: 41,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::SetCpuid2, BUF, &mut um),
        Err(Errno::E2BIG)
    );
}

/// The C driver copied SET_CPUID2's entries straight into the VCPU's table,
/// so a fault half-way left it half-updated.
#[test]
fn defect_set_cpuid2_fault_changes_nothing() {
    let (d, mut um) = setup();
    let (_vm, v) = vm_and_vcpu(&d, &mut um, 0);
    um.map(0x4000_0000, 8 + 40 * 3);
    um.put(
        0x4000_0000,
        &kvm_cpuid2 {
            nent: 5,
            padding: 0,
            entries: [],
        },
    );
    let before = d.backend().world();
    assert_eq!(
        ioctl(&d, v, Ioctl::SetCpuid2, 0x4000_0000, &mut um),
        Err(Errno::EFAULT)
    );
    assert_eq!(d.backend().world(), before);
}

/// §1.7: KVM_GET_IRQCHIP never copied `chip_id` in.
#[test]
fn defect_get_irqchip_reads_chip_id() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    let mut c = kvm_irqchip::zeroed();
    c.chip_id = 2;
    um.put(BUF, &c);
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetIrqchip, BUF, &mut um),
        Err(Errno::ENXIO)
    );
    ioctl(&d, vm, Ioctl::CreateIrqchip, 0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, vm, Ioctl::CreateIrqchip, 0, &mut um),
        Err(Errno::EEXIST)
    );
    assert_eq!(ioctl(&d, vm, Ioctl::GetIrqchip, BUF, &mut um), Ok(0));
    let out = um.get::<kvm_irqchip>(BUF);
    assert_eq!(out.chip_id, 2);
    // SAFETY (test): plain bytes.
    assert_eq!(unsafe { out.chip.dummy[0] }, 0xc2);
    c.chip_id = 3;
    um.put(BUF, &c);
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetIrqchip, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetIrqchip, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetIrqchip, 0x99, &mut um),
        Err(Errno::EFAULT)
    );
}

/// §1.7: KVM_UNREGISTER_COALESCED_MMIO returned 0 on a copyin fault.
#[test]
fn defect_unregister_coalesced_mmio_efault() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, vm, Ioctl::UnregisterCoalescedMmio, 0x99, &mut um),
        Err(Errno::EFAULT)
    );
    // And the 100-zone limit.
    for i in 0..100u64 {
        um.put(
            BUF,
            &kvm_coalesced_mmio_zone {
                addr: i * 0x1000,
                size: 0x1000,
                pad: 0,
            },
        );
        assert_eq!(
            ioctl(&d, vm, Ioctl::RegisterCoalescedMmio, BUF, &mut um),
            Ok(0)
        );
    }
    assert_eq!(
        ioctl(&d, vm, Ioctl::RegisterCoalescedMmio, BUF, &mut um),
        Err(Errno::ENOBUFS)
    );
    um.put(
        BUF,
        &kvm_coalesced_mmio_zone {
            addr: u64::MAX,
            size: 2,
            pad: 0,
        },
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::RegisterCoalescedMmio, BUF, &mut um),
        Err(Errno::EINVAL)
    );
}

/// §1.7: KVM_GET/SET_PIT2 dereferenced a NULL PIT.
#[test]
fn defect_pit2_without_pit_is_enxio() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetPit2, BUF, &mut um),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetPit2, BUF, &mut um),
        Err(Errno::ENXIO)
    );
    um.put(
        BUF,
        &kvm_pit_config {
            flags: 2,
            pad: [0; 15],
        },
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::CreatePit2, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    um.put(
        BUF,
        &kvm_pit_config {
            flags: 0,
            pad: [0; 15],
        },
    );
    assert_eq!(ioctl(&d, vm, Ioctl::CreatePit2, BUF, &mut um), Ok(0));
    assert_eq!(
        ioctl(&d, vm, Ioctl::CreatePit, 0, &mut um),
        Err(Errno::EEXIST)
    );
    assert_eq!(ioctl(&d, vm, Ioctl::GetPit2, BUF, &mut um), Ok(0));
    assert_eq!(d.backend().world().vms[&0].pit_flags, Some(0));
}

/// §1.7: KVM_SET_BOOT_CPU_ID returned EBUSY with the VM lock held (the next
/// VM ioctl deadlocked).
#[test]
fn defect_set_boot_cpu_id_ebusy_releases_the_lock() {
    let (d, mut um) = setup();
    let (vm, _v) = vm_and_vcpu(&d, &mut um, 0);
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetBootCpuId, 0, &mut um),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetBootCpuId, 0, &mut um),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetTssAddr, 0xfeff_d000, &mut um),
        Ok(0)
    );
    let fresh = open(&d);
    ioctl(&d, fresh, Ioctl::CreateVm, 0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, fresh, Ioctl::SetBootCpuId, 64, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&d, fresh, Ioctl::SetBootCpuId, u64::MAX, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(ioctl(&d, fresh, Ioctl::SetBootCpuId, 3, &mut um), Ok(3));
    let v = open(&d);
    ioctl(&d, v, Ioctl::Clone, fresh.0, &mut um).unwrap();
    ioctl(&d, v, Ioctl::CreateVcpu, 3, &mut um).unwrap();
    assert!(d.backend().world().vms[&1].vcpus[0].bsp);
}

/// §1.7: `if (*rv == -1) return EINVAL` turned a legitimate -1 into an
/// error; a backend's -1 status passes through.
#[test]
fn defect_minus_one_is_not_einval() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    ioctl(&d, vm, Ioctl::CreateIrqchip, 0, &mut um).unwrap();
    um.put(
        BUF,
        &kvm_irq_level {
            u: kvm_irq_level_u { irq: 99 },
            level: 1,
        },
    );
    assert_eq!(ioctl(&d, vm, Ioctl::IrqLineStatus, BUF, &mut um), Ok(0));
    assert_eq!(um.get::<kvm_irq_level>(BUF).status(), -1);
    assert_eq!(ioctl(&d, vm, Ioctl::IrqLine, BUF, &mut um), Ok(0));
}

/// The C driver accepted `nmsrs` up to 255 into its fixed 100-entry buffer.
#[test]
fn defect_msrs_limit_is_the_buffer() {
    let (d, mut um) = setup();
    let (_vm, v) = vm_and_vcpu(&d, &mut um, 0);
    let mut msrs = kvm_msrs::zeroed();
    msrs.nmsrs = 100;
    um.put(BUF, &msrs);
    assert_eq!(ioctl(&d, v, Ioctl::SetMsrs, BUF, &mut um), Ok(100));
    msrs.nmsrs = 101;
    um.put(BUF, &msrs);
    let before = d.backend().world();
    assert_eq!(
        ioctl(&d, v, Ioctl::SetMsrs, BUF, &mut um),
        Err(Errno::E2BIG)
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::GetMsrs, BUF, &mut um),
        Err(Errno::E2BIG)
    );
    assert_eq!(d.backend().world(), before);
}

/// The C driver checked `nr` only after copying `nr` entries into its
/// 1024-entry buffer, and re-read `nr` from user memory.
#[test]
fn defect_gsi_routing_nr_checked_before_copyin() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    um.map(0x5000_0000, 8);
    for (nr, flags, want) in [
        (2000u32, 0u32, Errno::EINVAL),
        (1024, 0, Errno::EINVAL),
        (0, 0, Errno::EINVAL),
        (1, 1, Errno::EINVAL),
        (1, 0, Errno::EFAULT),
    ] {
        um.put(0x5000_0000, &nr);
        um.put(0x5000_0004, &flags);
        assert_eq!(
            ioctl(&d, vm, Ioctl::SetGsiRouting, 0x5000_0000, &mut um),
            Err(want),
            "nr {nr}"
        );
    }
}

/// The C driver answered EINVAL for a bad sigset address.
#[test]
fn defect_signal_mask_fault_is_efault() {
    let (d, mut um) = setup();
    let (_vm, v) = vm_and_vcpu(&d, &mut um, 0);
    um.map(0x6000_0000, 8);
    um.put(0x6000_0000, &16u32);
    assert_eq!(
        ioctl(&d, v, Ioctl::SetSignalMask, 0x6000_0000, &mut um),
        Err(Errno::EFAULT)
    );
    um.put(BUF, &8u32);
    assert_eq!(
        ioctl(&d, v, Ioctl::SetSignalMask, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    um.put(BUF, &16u32);
    um.write(BUF + 4, &[1; 16]);
    assert_eq!(ioctl(&d, v, Ioctl::SetSignalMask, BUF, &mut um), Ok(0));
    assert_eq!(d.snapshot().vms[&0].vcpus[0].2, Some([1; 16]));
    assert_eq!(ioctl(&d, v, Ioctl::SetSignalMask, 0, &mut um), Ok(0));
    assert_eq!(d.snapshot().vms[&0].vcpus[0].2, None);
}

#[test]
fn vcpu_input_validation() {
    let (d, mut um) = setup();
    let (vm, v) = vm_and_vcpu(&d, &mut um, 0);
    let before = d.backend().world();
    um.put(BUF, &kvm_mp_state { mp_state: 5 });
    assert_eq!(
        ioctl(&d, v, Ioctl::SetMpState, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    um.put(
        BUF,
        &kvm_vcpu_events {
            flags: 4,
            ..Default::default()
        },
    );
    assert_eq!(
        ioctl(&d, v, Ioctl::SetVcpuEvents, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    um.put(BUF, &0u64);
    assert_eq!(
        ioctl(&d, v, Ioctl::X86SetupMce, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    um.put(BUF, &kvm_interrupt { irq: 256 });
    assert_eq!(
        ioctl(&d, v, Ioctl::Interrupt, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    assert_eq!(d.backend().world(), before);
    um.put(BUF, &kvm_interrupt { irq: 32 });
    assert_eq!(ioctl(&d, v, Ioctl::Interrupt, BUF, &mut um), Ok(0));
    ioctl(&d, vm, Ioctl::CreateIrqchip, 0, &mut um).unwrap();
    assert_eq!(
        ioctl(&d, v, Ioctl::Interrupt, BUF, &mut um),
        Err(Errno::ENXIO)
    );
    assert_eq!(ioctl(&d, v, Ioctl::Nmi, 0, &mut um), Ok(0));
    // Read-only destination: EFAULT.
    um.map_ro(0x7000_0000, 4096);
    assert_eq!(
        ioctl(&d, v, Ioctl::GetRegs, 0x7000_0000, &mut um),
        Err(Errno::EFAULT)
    );
    assert_eq!(ioctl(&d, v, Ioctl::SetRegs, 0x7000_0000, &mut um), Ok(0));
}

#[test]
fn dirty_log_rules() {
    let (d, mut um) = setup();
    let vm = open(&d);
    ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    let mut log = kvm_dirty_log::zeroed();
    log.slot = 32;
    um.put(BUF, &log);
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetDirtyLog, BUF, &mut um),
        Err(Errno::EINVAL)
    );
    log.slot = 1;
    um.put(BUF, &log);
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetDirtyLog, BUF, &mut um),
        Err(Errno::ENOENT)
    );
    let r = kvm_userspace_memory_region {
        slot: 1,
        flags: KVM_MEM_LOG_DIRTY_PAGES,
        guest_phys_addr: 0,
        memory_size: 65 * 4096,
        userspace_addr: 0x1000_0000_0000,
    };
    um.put(BUF + 0x100, &r);
    assert_eq!(
        ioctl(&d, vm, Ioctl::SetUserMemoryRegion, BUF + 0x100, &mut um),
        Ok(0)
    );
    // A bitmap address that faults fails before the log is read and reset.
    log.u.dirty_bitmap = 0x99;
    um.put(BUF, &log);
    assert_eq!(
        ioctl(&d, vm, Ioctl::GetDirtyLog, BUF, &mut um),
        Err(Errno::EFAULT)
    );
    assert_eq!(d.backend().world().vms[&0].dirty_reads, 0);
    // 65 pages: two 64-bit words.
    um.map(0x8000_0000, 16);
    log.u.dirty_bitmap = 0x8000_0000;
    um.put(BUF, &log);
    assert_eq!(ioctl(&d, vm, Ioctl::GetDirtyLog, BUF, &mut um), Ok(0));
    assert_eq!(d.backend().world().vms[&0].dirty_reads, 1);
}

#[test]
fn driver_is_shared_between_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<TestDriver>();
    let (d, um) = setup();
    let (vm, _) = vm_and_vcpu(&d, &mut um.clone(), 0);
    std::thread::scope(|s| {
        for t in 1..5u64 {
            let d = &d;
            let mut um = um.clone();
            s.spawn(move || {
                let v = open(d);
                ioctl(d, v, Ioctl::Clone, vm.0, &mut um).unwrap();
                ioctl(d, v, Ioctl::CreateVcpu, t, &mut um).unwrap();
                for i in 0..200u64 {
                    um.put(
                        BUF,
                        &kvm_regs {
                            rax: i,
                            ..Default::default()
                        },
                    );
                    ioctl(d, v, Ioctl::SetRegs, BUF, &mut um).unwrap();
                    um.put(BUF, &16u32);
                    ioctl(d, v, Ioctl::SetSignalMask, BUF, &mut um).unwrap();
                    assert!(d.devmap(v, 0, 3 * PAGE, LP64).is_ok());
                    let _ = d.snapshot();
                }
                d.close(v).unwrap();
            });
        }
    });
    assert_eq!(d.snapshot().vms[&0].vcpus.len(), 5);
    assert_eq!(d.snapshot().vms[&0].handles, 2);
}
