//! Replays what illumos-kvm-cmd's QEMU does (inventory §13.1 VM bring-up and
//! §13.2 per-VCPU thread) against the dispatcher, checking every return
//! value and errno that the ioctl layer decides. Run once with the fake
//! backend (every subsystem present) and once with `Unimplemented` (the
//! handle model works, subsystem ioctls answer ENOTSUP and change nothing).

mod common;
use common::*;
use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{PROT_READ, PROT_USER, PROT_WRITE};
use kvm_ioctl::{Dev, Driver, Errno, MapKind, Unimplemented};

const PAGE: u64 = 4096;
/// A scratch user buffer (argument structs).
const BUF: u64 = 0x7fff_0000_0000;
/// Guest RAM as QEMU mlocks it.
const RAM: u64 = 0x7f00_0000_0000;

fn check(d: &TestDriver, fd: Dev, cap: Capability, um: &mut FakeUser) -> i32 {
    ioctl(d, fd, Ioctl::CheckExtension, cap as u64, um).unwrap_or(0)
}

/// §13.1 on a fresh driver; returns (driver, vm fd, user memory).
fn bring_up() -> (TestDriver, Dev, FakeUser) {
    let d = driver();
    let mut um = FakeUser::new();
    um.map(BUF, 0x10000);
    // 1. open
    let sysfd = open(&d);
    assert_ne!(sysfd.minor(), 0, "self-cloning open gives a private minor");
    // 2. API version
    assert_eq!(ioctl(&d, sysfd, Ioctl::GetApiVersion, 0, &mut um), Ok(12));
    // 3. GSI count
    assert_eq!(check(&d, sysfd, Capability::IrqRouting, &mut um), 1024);
    // 4. CREATE_VM: vmfd = sysfd
    assert_eq!(ioctl(&d, sysfd, Ioctl::CreateVm, 0, &mut um), Ok(0));
    let vmfd = sysfd;
    // 5. TSS
    assert_eq!(check(&d, vmfd, Capability::SetTssAddr, &mut um), 1);
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::SetTssAddr, 0xfeff_d000, &mut um),
        Ok(0)
    );
    // 6. identity map
    assert_eq!(check(&d, vmfd, Capability::SetIdentityMapAddr, &mut um), 1);
    um.put(BUF, &0xfeff_c000u64);
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::SetIdentityMapAddr, BUF, &mut um),
        Ok(0)
    );
    // 7. PIT
    assert_eq!(check(&d, vmfd, Capability::Pit, &mut um), 1);
    assert_eq!(ioctl(&d, vmfd, Ioctl::CreatePit, 0, &mut um), Ok(0));
    // 8, 9. coalesced MMIO page offset, user memory
    assert_eq!(check(&d, sysfd, Capability::CoalescedMmio, &mut um), 2);
    assert_eq!(check(&d, sysfd, Capability::UserMemory, &mut um), 1);
    // 10. irqchip
    assert_eq!(check(&d, vmfd, Capability::Irqchip, &mut um), 1);
    assert_eq!(ioctl(&d, vmfd, Ioctl::CreateIrqchip, 0, &mut um), Ok(0));
    assert_eq!(check(&d, vmfd, Capability::IrqInjectStatus, &mut um), 1);
    // 11. [SET_NR_MMU_PAGES] only with -kvm-shadow-memory: unimplemented,
    // and MMU_SHADOW_CACHE_CONTROL no longer claims it.
    assert_eq!(
        check(&d, vmfd, Capability::MmuShadowCacheControl, &mut um),
        0
    );
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::SetNrMmuPages, 1000, &mut um),
        Err(Errno::EINVAL)
    );
    // 12. MSR index list: size probe with nmsrs 0, then fetch (x2 callers).
    for _ in 0..2 {
        um.put(
            BUF,
            &kvm_msr_list {
                nmsrs: 0,
                indices: [0],
            },
        );
        assert_eq!(
            ioctl(&d, sysfd, Ioctl::GetMsrIndexList, BUF, &mut um),
            Err(Errno::E2BIG)
        );
        let n = um.get::<u32>(BUF);
        assert_eq!(n, 15);
        um.put(BUF, &n);
        assert_eq!(
            ioctl(&d, sysfd, Ioctl::GetMsrIndexList, BUF, &mut um),
            Ok(0)
        );
        assert_eq!(um.get::<u32>(BUF + 4), 0x174);
        assert_eq!(um.get::<u32>(BUF + 4 + 4 * 14), 0x17b);
    }
    // 13. ADJUST_CLOCK: GET/SET_CLOCK are not implemented, so 0 (C said 1).
    assert_eq!(check(&d, sysfd, Capability::AdjustClock, &mut um), 0);
    // 14. boot CPU
    assert_eq!(check(&d, sysfd, Capability::SetBootCpuId, &mut um), 1);
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetBootCpuId, 0, &mut um), Ok(0));
    // 15. [REINJECT_CONTROL]: unimplemented and not claimed.
    assert_eq!(check(&d, vmfd, Capability::ReinjectControl, &mut um), 0);
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::ReinjectControl, 0, &mut um),
        Err(Errno::EINVAL)
    );
    // 16.
    assert_eq!(
        check(&d, sysfd, Capability::DestroyMemoryRegionWorks, &mut um),
        1
    );
    // 17. GSI routing: PIC master 0-7, slave 8-15, IOAPIC 0-23, irq0 -> pin 2.
    let mut routes = Vec::new();
    for gsi in 0..16u32 {
        let (chip, pin) = if gsi < 8 { (0, gsi) } else { (1, gsi - 8) };
        routes.push((gsi, chip, pin));
    }
    for gsi in 0..24u32 {
        routes.push((gsi, 2, if gsi == 0 { 2 } else { gsi }));
    }
    um.put(BUF, &(routes.len() as u32));
    um.put(BUF + 4, &0u32);
    for (i, (gsi, chip, pin)) in routes.iter().enumerate() {
        let mut e = kvm_irq_routing_entry::zeroed();
        e.gsi = *gsi;
        e.r#type = KVM_IRQ_ROUTING_IRQCHIP;
        e.u.irqchip = kvm_irq_routing_irqchip {
            irqchip: *chip,
            pin: *pin,
        };
        um.put(BUF + 8 + 48 * i as u64, &e);
    }
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetGsiRouting, BUF, &mut um), Ok(0));
    // 18.
    assert_eq!(check(&d, sysfd, Capability::VcpuEvents, &mut um), 1);
    // 19. RAM slot 0 (640K), slot 1 (high RAM), a ROM slot, then a remap
    // that deletes (size 0) and re-adds with dirty logging (VGA).
    um.map(RAM, 0);
    let mut region = |slot, gpa, size, flags, uaddr| {
        let r = kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: uaddr,
        };
        um.put(BUF, &r);
        ioctl(&d, vmfd, Ioctl::SetUserMemoryRegion, BUF, &mut um)
    };
    assert_eq!(region(0, 0, 0xa0000, 0, RAM), Ok(0));
    assert_eq!(region(1, 0x100000, 0x7f00000, 0, RAM + 0x100000), Ok(0));
    assert_eq!(region(2, 0xfffe0000, 0x20000, 0, RAM + 0x8000000), Ok(0));
    assert_eq!(
        region(
            3,
            0xa0000,
            0x20000,
            KVM_MEM_LOG_DIRTY_PAGES,
            RAM + 0x9000000
        ),
        Ok(0)
    );
    // Overlap and resize are refused.
    assert_eq!(region(4, 0x0, 0x1000, 0, RAM), Err(Errno::EEXIST));
    assert_eq!(region(1, 0x100000, 0x1000, 0, RAM), Err(Errno::EINVAL));
    assert_eq!(region(3, 0, 0, 0, 0), Ok(0));
    assert_eq!(
        region(
            3,
            0xa0000,
            0x20000,
            KVM_MEM_LOG_DIRTY_PAGES,
            RAM + 0x9000000
        ),
        Ok(0)
    );
    // 20. coalesced MMIO (VGA)
    let zone = kvm_coalesced_mmio_zone {
        addr: 0xa0000,
        size: 0x20000,
        pad: 0,
    };
    um.put(BUF, &zone);
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::RegisterCoalescedMmio, BUF, &mut um),
        Ok(0)
    );
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::UnregisterCoalescedMmio, BUF, &mut um),
        Ok(0)
    );
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::RegisterCoalescedMmio, BUF, &mut um),
        Ok(0)
    );
    // Runtime: IRQ_LINE_STATUS and the VGA dirty log.
    um.put(
        BUF,
        &kvm_irq_level {
            u: kvm_irq_level_u { irq: 4 },
            level: 1,
        },
    );
    assert_eq!(ioctl(&d, vmfd, Ioctl::IrqLineStatus, BUF, &mut um), Ok(0));
    assert_eq!(um.get::<kvm_irq_level>(BUF).status(), 1);
    um.map(BUF + 0x100000, 0x1000);
    let mut log = kvm_dirty_log::zeroed();
    log.slot = 3;
    log.u.dirty_bitmap = BUF + 0x100000;
    um.put(BUF, &log);
    assert_eq!(ioctl(&d, vmfd, Ioctl::GetDirtyLog, BUF, &mut um), Ok(0));
    assert_eq!(um.get::<u8>(BUF + 0x100000), 0x5a);
    log.slot = 0;
    um.put(BUF, &log);
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::GetDirtyLog, BUF, &mut um),
        Err(Errno::ENOENT)
    );

    let w = d.backend().world();
    let vm = &w.vms[&0];
    assert_eq!(vm.tss, Some(0xfeff_d000));
    assert_eq!(vm.identity, Some(0xfeff_c000));
    assert_eq!(vm.pit_flags, Some(KVM_PIT_SPEAKER_DUMMY));
    assert!(vm.irqchip);
    assert_eq!(vm.routes.len(), 40);
    assert_eq!(vm.slots.len(), 4);
    assert_eq!(vm.zones.len(), 1);
    (d, vmfd, um)
}

/// §13.2 for VCPU `cpu_index`; returns the VCPU fd.
fn vcpu_thread(d: &TestDriver, sysfd: Dev, cpu_index: u32, um: &mut FakeUser) -> Dev {
    // 1. fstat(sysfd).st_rdev; open; KVM_CLONE
    let vcpufd = open(d);
    assert_eq!(ioctl(d, vcpufd, Ioctl::Clone, sysfd.0, um), Ok(0));
    // 2. CREATE_VCPU returns the index
    assert_eq!(
        ioctl(d, vcpufd, Ioctl::CreateVcpu, u64::from(cpu_index), um),
        Ok(cpu_index as i32)
    );
    // 3. mmap size
    assert_eq!(ioctl(d, sysfd, Ioctl::GetVcpuMmapSize, 0, um), Ok(12288));
    // 4. mmap(NULL, 12288, RW, MAP_SHARED, vcpufd, 0)
    assert_eq!(
        d.segmap(vcpufd, 0, 12288, PROT_READ | PROT_WRITE | PROT_USER),
        Ok(())
    );
    let c1 = d.devmap(vcpufd, 0, 3 * PAGE, LP64).unwrap();
    assert_eq!(
        (c1.kind, c1.len, c1.cookie),
        (MapKind::VcpuRun, 8192, ('r', 0, cpu_index))
    );
    let c2 = d.devmap(vcpufd, 2 * PAGE, PAGE, LP64).unwrap();
    assert_eq!(
        (c2.kind, c2.len, c2.cookie),
        (MapKind::CoalescedRing, 4096, ('m', 0, 0))
    );
    // 5. SET_VAPIC_ADDR(0)
    um.put(BUF, &kvm_vapic_addr { vapic_addr: 0 });
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetVapicAddr, BUF, um), Ok(0));
    // 6. VAPIC: 0, so no TPR_ACCESS_REPORTING (unimplemented).
    assert_eq!(
        ioctl(
            d,
            vcpufd,
            Ioctl::CheckExtension,
            Capability::Vapic as u64,
            um
        ),
        Ok(0)
    );
    // 7. GET_SUPPORTED_CPUID with nent 1, 2, 4, ... until not E2BIG, x5.
    for _ in 0..5 {
        let mut nent = 1u32;
        loop {
            um.put(
                BUF,
                &kvm_cpuid2 {
                    nent,
                    padding: 0,
                    entries: [],
                },
            );
            match ioctl(d, sysfd, Ioctl::GetSupportedCpuid, BUF, um) {
                Err(Errno::E2BIG) => nent *= 2,
                r => {
                    assert_eq!(r, Ok(0));
                    break;
                }
            }
        }
        assert_eq!(nent, 16);
        assert_eq!(um.get::<u32>(BUF), 12);
        assert_eq!(um.get::<kvm_cpuid_entry2>(BUF + 8 + 40).eax, 0x1001);
    }
    // 8. MCE
    assert_eq!(
        ioctl(d, vcpufd, Ioctl::CheckExtension, Capability::Mce as u64, um),
        Ok(32)
    );
    assert_eq!(
        ioctl(d, sysfd, Ioctl::X86GetMceCapSupported, BUF, um),
        Ok(0)
    );
    let supported = um.get::<u64>(BUF);
    assert_eq!(supported, 1 << 8);
    um.put(BUF, &(supported | 10));
    assert_eq!(ioctl(d, vcpufd, Ioctl::X86SetupMce, BUF, um), Ok(0));
    // 9. SET_CPUID2 with QEMU's table (KVM signature leaves included).
    let leaves = [
        0u32,
        1,
        2,
        4,
        0xb,
        0xd,
        0x4000_0000,
        0x4000_0001,
        0x8000_0000,
        0x8000_0001,
    ];
    um.put(
        BUF,
        &kvm_cpuid2 {
            nent: leaves.len() as u32,
            padding: 0,
            entries: [],
        },
    );
    for (i, f) in leaves.iter().enumerate() {
        let e = kvm_cpuid_entry2 {
            function: *f,
            ..Default::default()
        };
        um.put(BUF + 8 + 40 * i as u64, &e);
    }
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetCpuid2, BUF, um), Ok(0));
    // 10. SET_SIGNAL_MASK, len 16
    um.put(BUF, &16u32);
    um.write(BUF + 4, &[0xff; 16]);
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetSignalMask, BUF, um), Ok(0));
    // 11. load registers
    let regs = kvm_regs {
        rip: 0xfff0,
        rflags: 2,
        ..Default::default()
    };
    um.put(BUF, &regs);
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetRegs, BUF, um), Ok(0));
    um.put(
        BUF,
        &kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        },
    );
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetFpu, BUF, um), Ok(0));
    let mut sregs = kvm_sregs::default();
    sregs.cs.selector = 0xf000;
    sregs.cs.base = 0xffff_0000;
    um.put(BUF, &sregs);
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetSregs, BUF, um), Ok(0));
    let mut msrs = kvm_msrs::zeroed();
    let list = [
        (0x174u32, 0u64),
        (0x175, 0),
        (0x176, 0),
        (0xc0000081, 0),
        (0x10, 0),
        (0x12, 0),
        (0x11, 0),
        (0x17a, 0),
        (0x17b, u64::MAX),
    ];
    msrs.nmsrs = list.len() as u32;
    for (i, (index, data)) in list.iter().enumerate() {
        msrs.entries[i] = kvm_msr_entry {
            index: *index,
            reserved: 0,
            data: *data,
        };
    }
    um.put(BUF, &msrs);
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetMsrs, BUF, um), Ok(9));
    let mp = if cpu_index == 0 {
        KVM_MP_STATE_RUNNABLE
    } else {
        KVM_MP_STATE_UNINITIALIZED
    };
    um.put(BUF, &kvm_mp_state { mp_state: mp });
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetMpState, BUF, um), Ok(0));
    um.put(BUF, &kvm_lapic_state { regs: [0; 1024] });
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetLapic, BUF, um), Ok(0));
    let ev = kvm_vcpu_events {
        flags: KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR,
        ..Default::default()
    };
    um.put(BUF, &ev);
    assert_eq!(ioctl(d, vcpufd, Ioctl::SetVcpuEvents, BUF, um), Ok(0));
    // Read back.
    assert_eq!(ioctl(d, vcpufd, Ioctl::GetRegs, BUF, um), Ok(0));
    assert_eq!(um.get::<kvm_regs>(BUF), regs);
    msrs.entries[0].data = 7;
    um.put(BUF, &msrs);
    assert_eq!(ioctl(d, vcpufd, Ioctl::GetMsrs, BUF, um), Ok(9));
    assert_eq!(um.get::<kvm_msrs>(BUF).entries[0].data, 0);
    // 12. device reset: SET_IRQCHIP x3 and GET/SET_PIT2 (on the VM fd).
    for chip in 0..3 {
        let mut c = kvm_irqchip::zeroed();
        c.chip_id = chip;
        um.put(BUF, &c);
        assert_eq!(ioctl(d, sysfd, Ioctl::SetIrqchip, BUF, um), Ok(0));
    }
    assert_eq!(ioctl(d, sysfd, Ioctl::GetPit2, BUF, um), Ok(0));
    let mut pit = um.get::<kvm_pit_state2>(BUF);
    pit.flags = KVM_PIT_FLAGS_HPET_LEGACY;
    um.put(BUF, &pit);
    assert_eq!(ioctl(d, sysfd, Ioctl::SetPit2, BUF, um), Ok(0));
    // §13.3: run. The BSP runs; an AP is uninitialised (EAGAIN).
    let want = if cpu_index == 0 {
        Ok(0)
    } else {
        Err(Errno::EAGAIN)
    };
    assert_eq!(ioctl(d, vcpufd, Ioctl::Run, 0, um), want);
    vcpufd
}

#[test]
fn qemu_bring_up_and_two_vcpus() {
    let (d, sysfd, mut um) = bring_up();
    let v0 = vcpu_thread(&d, sysfd, 0, &mut um);
    let v1 = vcpu_thread(&d, sysfd, 1, &mut um);
    // SET_BOOT_CPU_ID once VCPUs exist.
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::SetBootCpuId, 0, &mut um),
        Err(Errno::EBUSY)
    );
    let w = d.backend().world();
    let vm = &w.vms[&0];
    assert_eq!(vm.vcpus.len(), 2);
    assert!(vm.vcpus[0].bsp && !vm.vcpus[1].bsp);
    assert_eq!(vm.vcpus[0].runs, 1);
    assert_eq!(vm.vcpus[0].last_sigmask, Some([0xff; 16]));
    assert_eq!(vm.vcpus[0].mce_cap, (1 << 8) | 10);
    assert_eq!(vm.vcpus[0].cpuid.len(), 10);
    assert_eq!(vm.vcpus[1].regs.rip, 0xfff0);
    // Shutdown in QEMU's order: VCPU fds, then the VM fd; the VM goes with
    // the last close only.
    d.close(v0).unwrap();
    d.close(v1).unwrap();
    assert!(d.backend().world().vms.contains_key(&0));
    d.close(sysfd).unwrap();
    let w = d.backend().world();
    assert!(w.vms.is_empty());
    assert_eq!(w.destroyed, vec![0]);
    assert!(!w.hardware_on);
    assert_eq!(d.usage(), 0);
}

#[test]
fn closing_the_vm_fd_first_keeps_the_vm_for_its_vcpus() {
    let (d, sysfd, mut um) = bring_up();
    let v0 = vcpu_thread(&d, sysfd, 0, &mut um);
    d.close(sysfd).unwrap();
    assert!(d.backend().world().vms.contains_key(&0));
    assert_eq!(ioctl(&d, v0, Ioctl::Run, 0, &mut um), Ok(0));
    // The VCPU fd is also a VM fd (kds_kvmp set by KVM_CLONE).
    assert_eq!(
        ioctl(&d, v0, Ioctl::SetTssAddr, 0xfeff_d000, &mut um),
        Ok(0)
    );
    d.close(v0).unwrap();
    assert_eq!(d.backend().world().destroyed, vec![0]);
}

/// The same bring-up with no subsystem built: the handle model and the
/// system ioctls answer as above; every subsystem ioctl is ENOTSUP and the
/// capabilities that need one answer 0.
#[test]
fn qemu_bring_up_with_unimplemented_backend() {
    let d = Driver::new(FakePlatform::default(), Unimplemented);
    let mut um = FakeUser::new();
    um.map(BUF, 0x10000);
    let sysfd = open(&d);
    assert_eq!(ioctl(&d, sysfd, Ioctl::GetApiVersion, 0, &mut um), Ok(12));
    for cap in Capability::ALL {
        let r = ioctl(&d, sysfd, Ioctl::CheckExtension, *cap as u64, &mut um);
        assert!(r == Ok(0) || r == Err(Errno::EINVAL), "{cap:?} -> {r:?}");
    }
    assert_eq!(ioctl(&d, sysfd, Ioctl::CreateVm, 0, &mut um), Ok(0));
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::SetTssAddr, 0xfeff_d000, &mut um),
        Err(Errno::ENOTSUP)
    );
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::CreatePit, 0, &mut um),
        Err(Errno::ENOTSUP)
    );
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::CreatePit, 0, &mut um),
        Err(Errno::ENOTSUP),
        "no PIT recorded"
    );
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::CreateIrqchip, 0, &mut um),
        Err(Errno::ENOTSUP)
    );
    um.put(
        BUF,
        &kvm_msr_list {
            nmsrs: 0,
            indices: [0],
        },
    );
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::GetMsrIndexList, BUF, &mut um),
        Err(Errno::ENOTSUP)
    );
    let r = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: 0xa0000,
        userspace_addr: RAM,
    };
    um.put(BUF, &r);
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::SetUserMemoryRegion, BUF, &mut um),
        Err(Errno::ENOTSUP)
    );
    assert_eq!(ioctl(&d, sysfd, Ioctl::SetBootCpuId, 0, &mut um), Ok(0));
    let vcpufd = open(&d);
    assert_eq!(ioctl(&d, vcpufd, Ioctl::Clone, sysfd.0, &mut um), Ok(0));
    assert_eq!(ioctl(&d, vcpufd, Ioctl::CreateVcpu, 0, &mut um), Ok(0));
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::GetVcpuMmapSize, 0, &mut um),
        Ok(12288)
    );
    assert_eq!(
        d.segmap(vcpufd, 0, 12288, PROT_READ | PROT_WRITE | PROT_USER),
        Ok(())
    );
    assert_eq!(
        d.devmap(vcpufd, 0, 3 * PAGE, LP64).map(|c| c.kind),
        Ok(MapKind::VcpuRun)
    );
    um.put(
        BUF,
        &kvm_cpuid2 {
            nent: 64,
            padding: 0,
            entries: [],
        },
    );
    assert_eq!(
        ioctl(&d, sysfd, Ioctl::GetSupportedCpuid, BUF, &mut um),
        Err(Errno::ENOTSUP)
    );
    um.put(BUF, &16u32);
    assert_eq!(ioctl(&d, vcpufd, Ioctl::SetSignalMask, BUF, &mut um), Ok(0));
    assert_eq!(
        ioctl(&d, vcpufd, Ioctl::Run, 0, &mut um),
        Err(Errno::ENOTSUP)
    );
    assert_eq!(
        ioctl(&d, vcpufd, Ioctl::GetRegs, BUF, &mut um),
        Err(Errno::ENOTSUP)
    );
    let snap = d.snapshot();
    let vm = &snap.vms[&0];
    assert_eq!(
        (vm.handles, vm.vcpus.len(), vm.irqchip, vm.pit),
        (2, 1, false, false)
    );
    assert!(vm.memslots.is_empty());
    d.close(vcpufd).unwrap();
    d.close(sysfd).unwrap();
    assert_eq!(d.usage(), 0);
}
