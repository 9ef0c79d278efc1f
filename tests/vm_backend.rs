//! `kvm::vm::VmBackend` driven through `kvm_ioctl::Driver` with a fake
//! process (user memory = guest RAM), fake kernel services and a recording
//! VMX seam: QEMU's bring-up (inventory §13.1/§13.2) end to end, interrupt
//! delivery into a LAPIC's IRR, irqchip/PIT state round trips, dirty
//! logging, kstats, teardown, and "an error changes nothing".

mod vm_support;

use std::collections::BTreeMap;

use kvm_ioctl::abi::*;
use kvm_ioctl::{Dev, Errno, MapKind, Snapshot};
use kvm_kstat::{VCPU_STAT_TABLE, VM_STAT_TABLE, VcpuStats, VmStats};
use vm_support::*;

/// Scratch user buffer for ioctl arguments.
const BUF: u64 = 0x7fff_0000_0000;
/// Where QEMU mapped (and locked) guest RAM.
const RAM: u64 = 0x7f00_0000_0000;
/// Guest RAM size.
const RAM_SIZE: u64 = 4 << 20;
/// The VGA window (slot 1, logging dirty pages).
const VGA: u64 = 0xa_0000;
const VGA_SIZE: u64 = 0x2_0000;

fn check(d: &TestDriver, fd: Dev, cap: Capability, p: &Proc) -> i32 {
    ioctl(d, fd, Ioctl::CheckExtension, cap as u64, p).unwrap_or(0)
}

fn region(slot: u32, flags: u32, gpa: u64, size: u64) -> kvm_userspace_memory_region {
    kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: RAM + gpa,
    }
}

fn irqchip_route(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut pad = [0u32; 8];
    pad[0] = chip;
    pad[1] = pin;
    kvm_irq_routing_entry {
        gsi,
        r#type: KVM_IRQ_ROUTING_IRQCHIP,
        flags: 0,
        pad: 0,
        u: kvm_irq_routing_entry_u { pad },
    }
}

fn msi_route(gsi: u32, address_lo: u32, data: u32) -> kvm_irq_routing_entry {
    let mut pad = [0u32; 8];
    pad[0] = address_lo;
    pad[2] = data;
    kvm_irq_routing_entry {
        gsi,
        r#type: KVM_IRQ_ROUTING_MSI,
        flags: 0,
        pad: 0,
        u: kvm_irq_routing_entry_u { pad },
    }
}

/// QEMU's table (qemu-kvm-x86.c:773): PIC master 0–7, slave 8–15, IOAPIC
/// 0–23 with the IRQ0 → pin 2 override, plus `extra`.
fn qemu_routes(extra: &[kvm_irq_routing_entry]) -> Vec<kvm_irq_routing_entry> {
    let mut v = Vec::new();
    for i in 0..8 {
        v.push(irqchip_route(i, KVM_IRQCHIP_PIC_MASTER, i));
    }
    for i in 8..16 {
        v.push(irqchip_route(i, KVM_IRQCHIP_PIC_SLAVE, i - 8));
    }
    for i in 0..24 {
        if i == 0 {
            v.push(irqchip_route(0, KVM_IRQCHIP_IOAPIC, 2));
        } else if i != 2 {
            v.push(irqchip_route(i, KVM_IRQCHIP_IOAPIC, i));
        }
    }
    v.extend_from_slice(extra);
    v
}

fn set_gsi_routing(
    d: &TestDriver,
    vmfd: Dev,
    p: &Proc,
    routes: &[kvm_irq_routing_entry],
) -> Result<i32, Errno> {
    p.put(BUF, &(routes.len() as u32));
    p.put(BUF + 4, &0u32);
    for (i, r) in routes.iter().enumerate() {
        p.put(BUF + 8 + 48 * i as u64, r);
    }
    ioctl(d, vmfd, Ioctl::SetGsiRouting, BUF, p)
}

fn get_lapic(d: &TestDriver, fd: Dev, p: &Proc) -> Result<Vec<u8>, Errno> {
    ioctl(d, fd, Ioctl::GetLapic, BUF, p)?;
    Ok(p.read(BUF, 1024))
}

fn set_lapic(d: &TestDriver, fd: Dev, p: &Proc, regs: &[u8]) -> Result<i32, Errno> {
    p.write(BUF, regs);
    ioctl(d, fd, Ioctl::SetLapic, BUF, p)
}

fn reg(regs: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(regs[off..off + 4].try_into().unwrap())
}

fn set_reg(regs: &mut [u8], off: usize, v: u32) {
    regs[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_irqchip(d: &TestDriver, vmfd: Dev, p: &Proc, id: u32) -> Result<Vec<u8>, Errno> {
    let mut chip = kvm_irqchip::zeroed();
    chip.chip_id = id;
    p.put(BUF, &chip);
    ioctl(d, vmfd, Ioctl::GetIrqchip, BUF, p)?;
    Ok(p.read(BUF, 520))
}

fn set_irqchip(d: &TestDriver, vmfd: Dev, p: &Proc, bytes: &[u8]) -> Result<i32, Errno> {
    p.write(BUF, bytes);
    ioctl(d, vmfd, Ioctl::SetIrqchip, BUF, p)
}

fn get_pit2(d: &TestDriver, vmfd: Dev, p: &Proc) -> Result<Vec<u8>, Errno> {
    ioctl(d, vmfd, Ioctl::GetPit2, BUF, p)?;
    Ok(p.read(BUF, 112))
}

fn irq_line(d: &TestDriver, vmfd: Dev, p: &Proc, irq: u32, level: u32) -> i32 {
    p.put(
        BUF,
        &kvm_irq_level {
            u: kvm_irq_level_u { irq },
            level,
        },
    );
    ioctl(d, vmfd, Ioctl::IrqLineStatus, BUF, p).expect("IRQ_LINE_STATUS");
    p.get::<kvm_irq_level>(BUF).status()
}

fn supported_cpuid(d: &TestDriver, sysfd: Dev, p: &Proc) -> Vec<kvm_cpuid_entry2> {
    // QEMU doubles nent until it stops being E2BIG.
    let mut nent = 1u32;
    loop {
        p.put(BUF, &nent);
        match ioctl(d, sysfd, Ioctl::GetSupportedCpuid, BUF, p) {
            Ok(0) => break,
            Err(Errno::E2BIG) => nent *= 2,
            other => panic!("GET_SUPPORTED_CPUID: {other:?}"),
        }
        assert!(nent <= 64);
    }
    let n: u32 = p.get(BUF);
    (0..n as u64).map(|i| p.get(BUF + 8 + 40 * i)).collect()
}

/// QEMU's VM bring-up (§13.1) and `nvcpus` VCPU threads (§13.2). Returns
/// (vm fd, VCPU fds).
fn bring_up(d: &TestDriver, p: &Proc, nvcpus: u32) -> (Dev, Vec<Dev>) {
    // 1-3: open, API version, GSI count.
    let sysfd = open(d);
    assert_eq!(ioctl(d, sysfd, Ioctl::GetApiVersion, 0, p), Ok(12));
    assert_eq!(check(d, sysfd, Capability::IrqRouting, p), 1024);
    // 4: CREATE_VM; vmfd = sysfd.
    let id = ioctl(d, sysfd, Ioctl::CreateVm, 0, p).unwrap();
    let vmfd = sysfd;
    // 5: TSS.
    assert_eq!(check(d, vmfd, Capability::SetTssAddr, p), 1);
    assert_eq!(ioctl(d, vmfd, Ioctl::SetTssAddr, 0xfeff_d000, p), Ok(0));
    // 6: identity map.
    assert_eq!(check(d, vmfd, Capability::SetIdentityMapAddr, p), 1);
    p.put(BUF, &0xfeff_c000u64);
    assert_eq!(ioctl(d, vmfd, Ioctl::SetIdentityMapAddr, BUF, p), Ok(0));
    // 7: PIT (not PIT2).
    assert_eq!(check(d, vmfd, Capability::Pit, p), 1);
    assert_eq!(ioctl(d, vmfd, Ioctl::CreatePit, 0, p), Ok(0));
    // 8, 9.
    assert_eq!(check(d, sysfd, Capability::CoalescedMmio, p), 2);
    assert_eq!(check(d, sysfd, Capability::UserMemory, p), 1);
    // 10: irqchip, inject status.
    assert_eq!(check(d, vmfd, Capability::Irqchip, p), 1);
    assert_eq!(ioctl(d, vmfd, Ioctl::CreateIrqchip, 0, p), Ok(0));
    assert_eq!(check(d, vmfd, Capability::IrqInjectStatus, p), 1);
    // 12: MSR index list is VMX's: not there yet.
    p.put(BUF, &0u32);
    assert_eq!(
        ioctl(d, sysfd, Ioctl::GetMsrIndexList, BUF, p),
        Err(Errno::ENOTSUP)
    );
    // 14: boot CPU.
    assert_eq!(check(d, vmfd, Capability::SetBootCpuId, p), 1);
    assert_eq!(ioctl(d, vmfd, Ioctl::SetBootCpuId, 0, p), Ok(0));
    // 16.
    assert_eq!(check(d, sysfd, Capability::DestroyMemoryRegionWorks, p), 1);
    // 17: GSI routing.
    assert_eq!(set_gsi_routing(d, vmfd, p, &qemu_routes(&[])), Ok(0));
    // 18.
    assert_eq!(check(d, sysfd, Capability::VcpuEvents, p), 1);
    // 19: guest RAM (locked, touched), VGA logging dirty pages.
    p.map(RAM, RAM_SIZE as usize);
    for (i, r) in [
        region(0, 0, 0, VGA),
        region(1, KVM_MEM_LOG_DIRTY_PAGES, VGA, VGA_SIZE),
        region(2, 0, VGA + VGA_SIZE, RAM_SIZE - VGA - VGA_SIZE),
    ]
    .iter()
    .enumerate()
    {
        p.put(BUF, r);
        assert_eq!(
            ioctl(d, vmfd, Ioctl::SetUserMemoryRegion, BUF, p),
            Ok(0),
            "slot {i}"
        );
    }
    // 20: coalesced MMIO for the VGA window.
    p.put(
        BUF,
        &kvm_coalesced_mmio_zone {
            addr: VGA,
            size: VGA_SIZE as u32,
            pad: 0,
        },
    );
    assert_eq!(ioctl(d, vmfd, Ioctl::RegisterCoalescedMmio, BUF, p), Ok(0));

    // §13.2 per VCPU.
    let mut vcpus = Vec::new();
    for i in 0..nvcpus {
        let fd = open(d);
        assert_eq!(ioctl(d, fd, Ioctl::Clone, sysfd.0, p), Ok(0));
        assert_eq!(
            ioctl(d, fd, Ioctl::CreateVcpu, u64::from(i), p),
            Ok(i as i32)
        );
        assert_eq!(ioctl(d, fd, Ioctl::GetVcpuMmapSize, 0, p), Ok(12288));
        let run = d.devmap(fd, 0, 3 * PAGE, LP64).unwrap();
        assert_eq!((run.kind, run.len), (MapKind::VcpuRun, 2 * PAGE as usize));
        let ring = d.devmap(fd, 2 * PAGE, PAGE, LP64).unwrap();
        assert_eq!(ring.kind, MapKind::CoalescedRing);
        assert_ne!(run.cookie, ring.cookie);
        // 5: vAPIC address 0.
        p.put(BUF, &kvm_vapic_addr { vapic_addr: 0 });
        assert_eq!(ioctl(d, fd, Ioctl::SetVapicAddr, BUF, p), Ok(0));
        assert_eq!(check(d, sysfd, Capability::Vapic, p), 0);
        // 7: supported CPUID (QEMU asks 5 times).
        let supported = supported_cpuid(d, sysfd, p);
        assert!(supported.len() > 10);
        // 8: MCE.
        assert_eq!(check(d, sysfd, Capability::Mce, p), 32);
        assert_eq!(ioctl(d, sysfd, Ioctl::X86GetMceCapSupported, BUF, p), Ok(0));
        let mcg_cap = p.get::<u64>(BUF) | 10;
        p.put(BUF, &mcg_cap);
        assert_eq!(ioctl(d, fd, Ioctl::X86SetupMce, BUF, p), Ok(0));
        // 9: SET_CPUID2 with QEMU's KVM leaves added.
        let mut table = supported.clone();
        table.truncate(38);
        table.push(kvm_cpuid_entry2 {
            function: 0x4000_0000,
            eax: 0x4000_0001,
            ebx: 0x4b4d_564b,
            ecx: 0x564b_4d56,
            edx: 0x4d,
            ..Default::default()
        });
        table.push(kvm_cpuid_entry2 {
            function: 0x4000_0001,
            eax: 0x7,
            ..Default::default()
        });
        p.put(
            BUF,
            &kvm_cpuid2 {
                nent: table.len() as u32,
                padding: 0,
                entries: [],
            },
        );
        for (k, e) in table.iter().enumerate() {
            p.put(BUF + 8 + 40 * k as u64, e);
        }
        assert_eq!(ioctl(d, fd, Ioctl::SetCpuid2, BUF, p), Ok(0));
        p.put(BUF, &40u32);
        assert_eq!(ioctl(d, fd, Ioctl::GetCpuid2, BUF, p), Ok(0));
        assert_eq!(p.get::<u32>(BUF), table.len() as u32);
        let back: Vec<kvm_cpuid_entry2> = (0..table.len() as u64)
            .map(|k| p.get(BUF + 8 + 40 * k))
            .collect();
        assert_eq!(back, table);
        // 10: signal mask.
        p.put(BUF, &16u32);
        p.write(BUF + 4, &[0xff; 16]);
        assert_eq!(ioctl(d, fd, Ioctl::SetSignalMask, BUF, p), Ok(0));
        // 11: MP state, LAPIC, events (the register ioctls are VMX's).
        p.put(BUF, &kvm_mp_state::default());
        assert_eq!(ioctl(d, fd, Ioctl::GetMpState, BUF, p), Ok(0));
        let want = if i == 0 {
            KVM_MP_STATE_RUNNABLE
        } else {
            KVM_MP_STATE_UNINITIALIZED
        };
        assert_eq!(p.get::<kvm_mp_state>(BUF).mp_state, want);
        p.put(BUF, &kvm_mp_state { mp_state: want });
        assert_eq!(ioctl(d, fd, Ioctl::SetMpState, BUF, p), Ok(0));
        let lapic = get_lapic(d, fd, p).unwrap();
        assert_eq!(reg(&lapic, 0x20) >> 24, i, "APIC ID = VCPU id");
        assert_eq!(reg(&lapic, 0x30) & 0xff, 0x14, "version");
        assert_eq!(set_lapic(d, fd, p, &lapic), Ok(0));
        assert_eq!(get_lapic(d, fd, p).unwrap(), lapic);
        p.put(BUF, &kvm_vcpu_events::default());
        assert_eq!(ioctl(d, fd, Ioctl::SetVcpuEvents, BUF, p), Ok(0));
        assert_eq!(ioctl(d, fd, Ioctl::GetVcpuEvents, BUF, p), Ok(0));
        assert_eq!(
            p.get::<kvm_vcpu_events>(BUF).flags,
            KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR
        );
        assert_eq!(ioctl(d, fd, Ioctl::SetRegs, BUF, p), Err(Errno::ENOTSUP));
        vcpus.push(fd);
    }
    // 12: device reset writes the saved state back.
    for chip in 0..3 {
        let bytes = get_irqchip(d, vmfd, p, chip).unwrap();
        assert_eq!(set_irqchip(d, vmfd, p, &bytes), Ok(0));
    }
    let pit = get_pit2(d, vmfd, p).unwrap();
    p.write(BUF, &pit);
    assert_eq!(ioctl(d, vmfd, Ioctl::SetPit2, BUF, p), Ok(0));
    // KVM_RUN waits for the VMX work.
    assert_eq!(ioctl(d, vcpus[0], Ioctl::Run, 0, p), Err(Errno::ENOTSUP));
    let _ = id;
    (vmfd, vcpus)
}

#[test]
fn qemu_bring_up_succeeds_end_to_end() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 2);
    let snap = d.snapshot();
    let vm = &snap.vms[&0];
    assert!(vm.irqchip && vm.pit);
    assert_eq!(vm.vcpus.len(), 2);
    assert_eq!(vm.memslots.len(), 3);
    let shared = vm_shared(&d, 0);
    // Private slots: TSS (3 pages), identity map (1 page) at QEMU's
    // addresses; both backed by private process memory.
    let slots: Vec<(u32, u64, u64)> = shared
        .mmu()
        .lock()
        .slots()
        .iter()
        .map(|s| (s.id().get(), s.base_gfn(), s.npages()))
        .collect();
    assert!(slots.contains(&(32, 0xfeffd, 3)), "{slots:x?}");
    assert!(slots.contains(&(34, 0xfeffc, 1)), "{slots:x?}");
    assert_eq!(services(&d).private.lock().unwrap().len(), 2);
    assert_eq!(shared.arch().tss_addr, Some(0xfeff_d000));
    // The real-mode helpers the VMX reset will call work on those slots.
    shared.init_rmode_tss().unwrap();
    shared.init_rmode_identity_map().unwrap();
    // A coalesced zone, the ring page and 2 kvm_run areas.
    assert_eq!(shared.coalesced().lock().zones().len(), 1);
    assert_eq!(
        services(&d)
            .shared_live
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    // PIC, ELCR, PIT, speaker on the PIO bus; IOAPIC on the MMIO bus.
    {
        let dev = shared.devices().lock();
        assert!(dev.pio.find(0x20, 1).is_some());
        assert!(dev.pio.find(0x42, 1).is_some());
        assert!(dev.pio.find(0x61, 1).is_some());
        assert!(dev.pio.find(0x4d1, 1).is_some());
        assert!(dev.mmio.find(0xfec0_0010, 4).is_some());
        assert_eq!(dev.lapics.len(), 2);
    }
    drop(shared);
    for fd in vcpus {
        d.close(fd).unwrap();
    }
    d.close(vmfd).unwrap();
    assert_eq!(d.usage(), 0);
}

#[test]
fn teardown_gives_everything_back() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 3);
    let s = services(&d);
    assert_eq!(s.kstats.live.lock().unwrap().len(), 4);
    assert!(s.tables.live() > 0);
    // The VM lives while any of its fds is open (here: the last VCPU's).
    d.close(vmfd).unwrap();
    d.close(vcpus[0]).unwrap();
    d.close(vcpus[1]).unwrap();
    assert_eq!(s.kstats.live.lock().unwrap().len(), 4);
    d.close(vcpus[2]).unwrap();
    assert!(s.kstats.live.lock().unwrap().is_empty());
    assert_eq!(s.shared_live.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(s.private.lock().unwrap().is_empty());
    assert_eq!(s.tables.live(), 0);
    assert!(!p.is_mapped(PRIVATE_BASE));
}

#[test]
fn irq_line_raises_an_interrupt_in_the_lapic_irr() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 1);
    // Software-enable the LAPIC (SVR bit 8).
    let mut lapic = get_lapic(&d, vcpus[0], &p).unwrap();
    set_reg(&mut lapic, 0xf0, 0x1ff);
    assert_eq!(set_lapic(&d, vcpus[0], &p, &lapic), Ok(0));
    // IOAPIC pin 4: vector 0x31, fixed, physical, edge, unmasked, dest 0.
    let mut chip = get_irqchip(&d, vmfd, &p, KVM_IRQCHIP_IOAPIC).unwrap();
    let off = 8 + 24 + 8 * 4;
    chip[off..off + 8].copy_from_slice(&0x31u64.to_le_bytes());
    assert_eq!(set_irqchip(&d, vmfd, &p, &chip), Ok(0));
    // GSI 4 reaches the PIC (unmasked: 1) and the IOAPIC (delivered: 1):
    // the C status adds them up.
    assert_eq!(irq_line(&d, vmfd, &p, 4, 1), 2);
    let regs = get_lapic(&d, vcpus[0], &p).unwrap();
    assert_ne!(reg(&regs, 0x210) & (1 << (0x31 - 32)), 0, "IRR has 0x31");
    // Raising the edge line again: the IOAPIC coalesces (0); the C PIC
    // answers 1 for a line whose edge it already latched (`pic_set_irq1`
    // only looks at IRR when `last_irr` was clear).
    assert_eq!(irq_line(&d, vmfd, &p, 4, 1), 1);
    assert_eq!(irq_line(&d, vmfd, &p, 4, 0), 2);
    // An unrouted GSI: -1.
    assert_eq!(irq_line(&d, vmfd, &p, 100, 1), -1);
    // An MSI route to APIC 0, vector 0x41: one LAPIC accepted it.
    let msi = msi_route(24, 0xfee0_0000, 0x41);
    assert_eq!(set_gsi_routing(&d, vmfd, &p, &qemu_routes(&[msi])), Ok(0));
    assert_eq!(irq_line(&d, vmfd, &p, 24, 1), 1);
    let regs = get_lapic(&d, vcpus[0], &p).unwrap();
    assert_ne!(reg(&regs, 0x220) & (1 << (0x41 - 64)), 0, "IRR has 0x41");
    // A masked IOAPIC pin with the PIC pin masked too: -1.
    let mut master = get_irqchip(&d, vmfd, &p, KVM_IRQCHIP_PIC_MASTER).unwrap();
    master[8 + 2] = 0xff; // imr
    assert_eq!(set_irqchip(&d, vmfd, &p, &master), Ok(0));
    assert_eq!(irq_line(&d, vmfd, &p, 5, 1), -1);
}

#[test]
fn irqchip_and_pit2_state_round_trips() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, _vcpus) = bring_up(&d, &p, 1);
    // set(get(x)) is the identity for each chip.
    for id in 0..3 {
        let a = get_irqchip(&d, vmfd, &p, id).unwrap();
        assert_eq!(set_irqchip(&d, vmfd, &p, &a), Ok(0));
        assert_eq!(get_irqchip(&d, vmfd, &p, id).unwrap(), a, "chip {id}");
    }
    // A programmed master PIC reads back byte for byte.
    let pic = kvm_pic_state {
        last_irr: 0,
        irr: 0x10,
        imr: 0xfb,
        isr: 0,
        priority_add: 3,
        irq_base: 0x08,
        read_reg_select: 1,
        poll: 0,
        special_mask: 0,
        init_state: 0,
        auto_eoi: 0,
        rotate_on_auto_eoi: 0,
        special_fully_nested_mode: 0,
        init4: 1,
        elcr: 0x08,
        elcr_mask: 0xf8,
    };
    let mut bytes = vec![0u8; 520];
    bytes[..4].copy_from_slice(&KVM_IRQCHIP_PIC_MASTER.to_le_bytes());
    bytes[8..24].copy_from_slice(pic.as_bytes());
    assert_eq!(set_irqchip(&d, vmfd, &p, &bytes), Ok(0));
    assert_eq!(
        get_irqchip(&d, vmfd, &p, KVM_IRQCHIP_PIC_MASTER).unwrap(),
        bytes
    );
    // A programmed IOAPIC too.
    let mut io = vec![0u8; 520];
    io[..4].copy_from_slice(&KVM_IRQCHIP_IOAPIC.to_le_bytes());
    io[8..16].copy_from_slice(&0xfec0_0000u64.to_le_bytes());
    io[16..20].copy_from_slice(&0x10u32.to_le_bytes()); // ioregsel
    io[20..24].copy_from_slice(&(2u32 << 24).to_le_bytes()); // id
    for pin in 0..24u64 {
        let e = 0x0100_0000_0001_8030u64 + pin; // masked, level, vector 0x30+pin
        let off = 32 + 8 * pin as usize;
        io[off..off + 8].copy_from_slice(&e.to_le_bytes());
    }
    assert_eq!(set_irqchip(&d, vmfd, &p, &io), Ok(0));
    assert_eq!(get_irqchip(&d, vmfd, &p, KVM_IRQCHIP_IOAPIC).unwrap(), io);

    // PIT2: set(get(x)) identity, then a programmed counter 0.
    let a = get_pit2(&d, vmfd, &p).unwrap();
    p.write(BUF, &a);
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetPit2, BUF, &p), Ok(0));
    assert_eq!(get_pit2(&d, vmfd, &p).unwrap(), a);
    let mut st = kvm_pit_state2::from_bytes(&a).unwrap();
    st.channels[0].count = 0x1234;
    st.channels[0].mode = 2;
    st.channels[0].rw_mode = 3;
    st.channels[0].read_state = 3;
    st.channels[0].write_state = 3;
    st.channels[0].gate = 1;
    st.channels[0].count_load_time = 1_000_000_000;
    p.put(BUF, &st);
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetPit2, BUF, &p), Ok(0));
    let b = get_pit2(&d, vmfd, &p).unwrap();
    assert_eq!(b, st.as_bytes());
    p.write(BUF, &b);
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetPit2, BUF, &p), Ok(0));
    assert_eq!(get_pit2(&d, vmfd, &p).unwrap(), b);
    // A periodic counter 0 armed the PIT's timer.
    let timers = services(&d).timers.lock().unwrap();
    assert!(
        timers
            .iter()
            .any(|(o, t)| matches!(o, ::kvm::vm::TimerOwner::Pit { vm: 0 }) && t.is_some())
    );
}

#[test]
fn dirty_log_reports_pages_written_through_the_mmu() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, _vcpus) = bring_up(&d, &p, 1);
    let shared = vm_shared(&d, 0);
    let log = |slot: u32| -> Result<u64, Errno> {
        p.put(
            BUF,
            &kvm_dirty_log {
                slot,
                padding1: 0,
                u: kvm_dirty_log_u {
                    dirty_bitmap: BUF + 0x1000,
                },
            },
        );
        ioctl(&d, vmfd, Ioctl::GetDirtyLog, BUF, &p)?;
        Ok(p.get(BUF + 0x1000))
    };
    assert_eq!(log(1), Ok(0));
    {
        let mut mmu = shared.mmu().lock();
        mmu.write_guest(VGA + 5 * PAGE + 7, b"hello").unwrap();
        mmu.write_guest(VGA + 17 * PAGE + 4094, &[1, 2, 3, 4])
            .unwrap(); // crosses into 18
        mmu.write_guest(0x1000, b"not logged").unwrap();
    }
    assert_eq!(p.read(RAM + VGA + 5 * PAGE + 7, 5), b"hello");
    assert_eq!(log(1), Ok((1 << 5) | (1 << 17) | (1 << 18)));
    assert_eq!(log(1), Ok(0), "the log was reset");
    assert_eq!(log(0), Err(Errno::ENOENT), "slot 0 does not log");
}

fn names<'a>(entries: impl Iterator<Item = &'a kvm_kstat::KstatNamed>) -> Vec<String> {
    entries.map(|e| e.name().to_string()).collect()
}

#[test]
fn kstats_are_installed_with_the_c_names_and_deleted_with_their_objects() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 2);
    let s = services(&d);
    let live: Vec<KstatRecord> = s.kstats.live.lock().unwrap().values().cloned().collect();
    let vm: Vec<_> = live.iter().filter(|r| r.name == "vm").collect();
    assert_eq!(vm.len(), 1);
    assert_eq!((vm[0].instance, vm[0].ndata), (0, VmStats::NDATA));
    assert_eq!(vm[0].size, 48 * 12 + "global".len() + 1);
    // SAFETY: the kstat's data lives as long as the VM, which is open.
    let stats = unsafe { &*(vm[0].data as *const VmStats) };
    let want: Vec<String> = VM_STAT_TABLE.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names(stats.entries()), want);
    assert_eq!(stats.pid.get(), 4242);
    let vc: Vec<_> = live.iter().filter(|r| r.name == "vcpu-0").collect();
    assert_eq!(vc.len(), 2);
    let mut inst: Vec<i32> = vc.iter().map(|r| r.instance).collect();
    inst.sort();
    assert_eq!(inst, vec![0, 1], "instance = VCPU id");
    for r in &vc {
        assert_eq!(r.ndata, VcpuStats::NDATA);
        // SAFETY: as above.
        let st = unsafe { &*(r.data as *const VcpuStats) };
        let want: Vec<String> = VCPU_STAT_TABLE.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names(st.entries()), want);
        assert_eq!((st.id.get(), st.pid.get()), (0, 4242));
    }
    // A second VM: `vm` instance 1, VCPUs named `vcpu-1`.
    let sys2 = open(&d);
    assert_eq!(ioctl(&d, sys2, Ioctl::CreateVm, 0, &p), Ok(1));
    let fd = open(&d);
    assert_eq!(ioctl(&d, fd, Ioctl::Clone, sys2.0, &p), Ok(0));
    assert_eq!(ioctl(&d, fd, Ioctl::CreateVcpu, 3, &p), Ok(0));
    let live: Vec<KstatRecord> = s.kstats.live.lock().unwrap().values().cloned().collect();
    assert!(live.iter().any(|r| r.name == "vm" && r.instance == 1));
    assert!(live.iter().any(|r| r.name == "vcpu-1" && r.instance == 3));
    for fd in [vmfd, vcpus[0], vcpus[1]] {
        d.close(fd).unwrap();
    }
    let live: Vec<KstatRecord> = s.kstats.live.lock().unwrap().values().cloned().collect();
    assert_eq!(live.len(), 2, "only VM 1's kstats are left: {live:?}");
}

#[test]
fn check_extension_is_truthful_and_supported_cpuid_is_filtered() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let sysfd = open(&d);
    for (cap, want) in [
        (Capability::Irqchip, 1),
        (Capability::Pit2, 1),
        (Capability::PitState2, 1),
        (Capability::MpState, 1),
        (Capability::SyncMmu, 1),
        (Capability::ExtCpuid, 1),
        (Capability::NrVcpus, 64),
        (Capability::NrMemslots, 32),
        // Run-loop capabilities wait for VMX.
        (Capability::Hlt, 0),
        (Capability::NopIoDelay, 0),
        (Capability::InternalErrorData, 0),
        (Capability::Hyperv, 0),
        (Capability::ReinjectControl, 0),
    ] {
        assert_eq!(check(&d, sysfd, cap, &p), want, "{cap:?}");
    }
    let t = supported_cpuid(&d, sysfd, &p);
    let leaf = |f: u32| t.iter().find(|e| e.function == f).unwrap();
    assert_eq!(leaf(0).eax, 0xb);
    assert_eq!(leaf(1).ecx & (1 << 21), 1 << 21, "X2APIC emulated");
    assert_eq!(
        leaf(1).ecx & (1 << 26 | 1 << 27 | 1 << 28),
        0,
        "no XSAVE/AVX"
    );
    assert_eq!(leaf(1).edx & (1 << 28), 0, "no HTT");
    let e1 = leaf(0x8000_0001);
    assert_ne!(e1.edx & (1 << 20), 0, "NX (EFER.NX)");
    assert_ne!(e1.edx & (1 << 26), 0, "GBPAGES (EPT 1G)");
    assert_ne!(e1.edx & (1 << 27), 0, "RDTSCP (VMX control)");
    assert_eq!(t.iter().filter(|e| e.function == 4).count(), 4);
    assert!(
        t.iter()
            .all(|e| e.function < 0xc || e.function >= 0x8000_0000)
    );
}

/// (LAPIC page, MP state, CPUID2 buffer, VCPU events) of one VCPU.
type VcpuSnap = (Result<Vec<u8>, Errno>, u32, Vec<u8>, Vec<u8>);

/// Everything an error must leave alone.
#[derive(Debug, PartialEq)]
struct State {
    handles: Snapshot,
    chips: Vec<Result<Vec<u8>, Errno>>,
    pit: Result<Vec<u8>, Errno>,
    vcpus: Vec<VcpuSnap>,
    slots: Vec<(u32, u64, u64, u64)>,
    zones: usize,
    kstats: BTreeMap<u64, KstatRecord>,
    private: BTreeMap<u64, u64>,
    shared_live: usize,
    lapics: usize,
}

fn state(d: &TestDriver, p: &Proc, vmfd: Dev, vm: usize, vcpus: &[Dev]) -> State {
    let shared = vm_shared(d, vm);
    let clear = || p.write(BUF, &[0; 0x1000]);
    let s = services(d);
    State {
        handles: d.snapshot(),
        chips: (0..3).map(|c| get_irqchip(d, vmfd, p, c)).collect(),
        pit: get_pit2(d, vmfd, p),
        vcpus: vcpus
            .iter()
            .map(|&fd| {
                clear();
                let lapic = get_lapic(d, fd, p);
                clear();
                ioctl(d, fd, Ioctl::GetMpState, BUF, p).unwrap();
                let mp = p.get::<u32>(BUF);
                clear();
                p.put(BUF, &40u32);
                ioctl(d, fd, Ioctl::GetCpuid2, BUF, p).unwrap();
                let cpuid = p.read(BUF, 8 + 40 * 40);
                clear();
                ioctl(d, fd, Ioctl::GetVcpuEvents, BUF, p).unwrap();
                let ev = p.read(BUF, 64);
                (lapic, mp, cpuid, ev)
            })
            .collect(),
        slots: shared
            .mmu()
            .lock()
            .slots()
            .iter()
            .map(|m| (m.id().get(), m.base_gfn(), m.npages(), m.userspace_addr()))
            .collect(),
        zones: shared.coalesced().lock().zones().len(),
        kstats: s.kstats.live.lock().unwrap().clone(),
        private: s.private.lock().unwrap().clone(),
        shared_live: s.shared_live.load(std::sync::atomic::Ordering::Relaxed),
        lapics: shared.devices().lock().lapics.len(),
    }
}

#[allow(clippy::too_many_arguments)]
fn unchanged(
    d: &TestDriver,
    p: &Proc,
    vmfd: Dev,
    vm: usize,
    vcpus: &[Dev],
    what: &str,
    f: impl FnOnce() -> Result<i32, Errno>,
    want: Errno,
) {
    let before = state(d, p, vmfd, vm, vcpus);
    assert_eq!(f(), Err(want), "{what}");
    let after = state(d, p, vmfd, vm, vcpus);
    assert_eq!(before, after, "{what} changed something");
}

#[test]
fn every_error_leaves_the_vm_and_vcpus_unchanged() {
    use std::sync::atomic::Ordering::Relaxed;
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 2);
    let s = services(&d);
    let u = |what: &str, f: &dyn Fn() -> Result<i32, Errno>, e: Errno| {
        unchanged(&d, &p, vmfd, 0, &vcpus, what, f, e);
    };
    u(
        "TSS over RAM",
        &|| ioctl(&d, vmfd, Ioctl::SetTssAddr, 0x1000, &p),
        Errno::EEXIST,
    );
    u(
        "misaligned TSS",
        &|| ioctl(&d, vmfd, Ioctl::SetTssAddr, 0xfeff_d001, &p),
        Errno::EINVAL,
    );
    u(
        "KVM_RUN",
        &|| ioctl(&d, vcpus[1], Ioctl::Run, 0, &p),
        Errno::ENOTSUP,
    );
    u(
        "GET_REGS",
        &|| ioctl(&d, vcpus[0], Ioctl::GetRegs, BUF, &p),
        Errno::ENOTSUP,
    );
    u(
        "SET_SREGS",
        &|| ioctl(&d, vcpus[0], Ioctl::SetSregs, BUF, &p),
        Errno::ENOTSUP,
    );
    u(
        "overlapping RAM slot",
        &|| {
            p.put(BUF + 0x2000, &region(5, 0, 0x1000, 0x1000));
            ioctl(&d, vmfd, Ioctl::SetUserMemoryRegion, BUF + 0x2000, &p)
        },
        Errno::EEXIST,
    );
    u(
        "bad GSI route",
        &|| set_gsi_routing(&d, vmfd, &p, &[irqchip_route(1, KVM_IRQCHIP_IOAPIC, 24)]),
        Errno::EINVAL,
    );
    u(
        "second PIT",
        &|| ioctl(&d, vmfd, Ioctl::CreatePit, 0, &p),
        Errno::EEXIST,
    );
    u(
        "second irqchip",
        &|| ioctl(&d, vmfd, Ioctl::CreateIrqchip, 0, &p),
        Errno::EEXIST,
    );
    // VCPU creation failing at each allocation.
    let fd = open(&d);
    assert_eq!(ioctl(&d, fd, Ioctl::Clone, vmfd.0, &p), Ok(0));
    s.shared_fail.store(true, Relaxed);
    u(
        "no kvm_run pages",
        &|| ioctl(&d, fd, Ioctl::CreateVcpu, 5, &p),
        Errno::ENOMEM,
    );
    s.shared_fail.store(false, Relaxed);
    s.kstats.fail.store(true, Relaxed);
    u(
        "no VCPU kstat",
        &|| ioctl(&d, fd, Ioctl::CreateVcpu, 5, &p),
        Errno::EINVAL,
    );
    s.kstats.fail.store(false, Relaxed);
    // Coalesced zones: 100 at most.
    for i in 1..100u64 {
        p.put(
            BUF + 0x2000,
            &kvm_coalesced_mmio_zone {
                addr: 0xe000_0000 + i * 0x1000,
                size: 0x1000,
                pad: 0,
            },
        );
        assert_eq!(
            ioctl(&d, vmfd, Ioctl::RegisterCoalescedMmio, BUF + 0x2000, &p),
            Ok(0)
        );
    }
    u(
        "101st zone",
        &|| ioctl(&d, vmfd, Ioctl::RegisterCoalescedMmio, BUF + 0x2000, &p),
        Errno::ENOBUFS,
    );

    // A second VM: a VCPU created before the irqchip has no LAPIC.
    let sys2 = open(&d);
    assert_eq!(ioctl(&d, sys2, Ioctl::CreateVm, 0, &p), Ok(1));
    p.put(BUF, &region(0, 0, 0, RAM_SIZE));
    assert_eq!(ioctl(&d, sys2, Ioctl::SetUserMemoryRegion, BUF, &p), Ok(0));
    let c0 = open(&d);
    assert_eq!(ioctl(&d, c0, Ioctl::Clone, sys2.0, &p), Ok(0));
    assert_eq!(ioctl(&d, c0, Ioctl::CreateVcpu, 0, &p), Ok(0));
    assert_eq!(ioctl(&d, sys2, Ioctl::CreateIrqchip, 0, &p), Ok(0));
    let u2 = |what: &str, f: &dyn Fn() -> Result<i32, Errno>, e: Errno| {
        unchanged(&d, &p, sys2, 1, &[c0], what, f, e);
    };
    u2(
        "SET_LAPIC without LAPIC",
        &|| set_lapic(&d, c0, &p, &[0; 1024]),
        Errno::EINVAL,
    );
    u2(
        "SET_VAPIC_ADDR without LAPIC",
        &|| ioctl(&d, c0, Ioctl::SetVapicAddr, BUF + 0x3000, &p),
        Errno::EINVAL,
    );
    u2(
        "GET_PIT2 without PIT",
        &|| ioctl(&d, sys2, Ioctl::GetPit2, BUF, &p),
        Errno::ENXIO,
    );
    // TSS memory cannot be had / TSS over RAM in a VM without a TSS yet.
    s.private_fail.store(true, Relaxed);
    u2(
        "no TSS memory",
        &|| ioctl(&d, sys2, Ioctl::SetTssAddr, 0xfeff_d000, &p),
        Errno::ENOMEM,
    );
    s.private_fail.store(false, Relaxed);
    u2(
        "first TSS over RAM",
        &|| ioctl(&d, sys2, Ioctl::SetTssAddr, 0x2000, &p),
        Errno::EEXIST,
    );
    // VM 1's identity map is already there (made with its first VCPU);
    // a third VM whose identity-map address is inside RAM cannot get a VCPU.
    let sys3 = open(&d);
    assert_eq!(ioctl(&d, sys3, Ioctl::CreateVm, 0, &p), Ok(2));
    p.put(BUF, &region(0, 0, 0, RAM_SIZE));
    assert_eq!(ioctl(&d, sys3, Ioctl::SetUserMemoryRegion, BUF, &p), Ok(0));
    assert_eq!(ioctl(&d, sys3, Ioctl::CreateIrqchip, 0, &p), Ok(0));
    p.put(BUF, &0x3000u64);
    assert_eq!(ioctl(&d, sys3, Ioctl::SetIdentityMapAddr, BUF, &p), Ok(0));
    let c3 = open(&d);
    assert_eq!(ioctl(&d, c3, Ioctl::Clone, sys3.0, &p), Ok(0));
    unchanged(
        &d,
        &p,
        sys3,
        2,
        &[],
        "identity map over RAM",
        || ioctl(&d, c3, Ioctl::CreateVcpu, 0, &p),
        Errno::EEXIST,
    );
    p.put(BUF, &0xfeff_c000u64);
    assert_eq!(ioctl(&d, sys3, Ioctl::SetIdentityMapAddr, BUF, &p), Ok(0));
    assert_eq!(ioctl(&d, c3, Ioctl::CreateVcpu, 0, &p), Ok(0));
    assert!(get_lapic(&d, c3, &p).is_ok());
}

#[test]
fn mp_state_events_mce_and_nmi_are_held_per_vcpu() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (_vmfd, vcpus) = bring_up(&d, &p, 2);
    let ap = vcpus[1];
    // SIPI_RECEIVED carries the SIPI vector of VCPU_EVENTS.
    let mut ev = kvm_vcpu_events {
        sipi_vector: 0x9a,
        flags: KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_NMI_PENDING,
        ..Default::default()
    };
    ev.exception.injected = 1;
    ev.exception.nr = 13;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0x18;
    ev.interrupt.injected = 1;
    ev.interrupt.nr = 0x30;
    ev.nmi.pending = 1;
    ev.nmi.masked = 1;
    p.put(BUF, &ev);
    assert_eq!(ioctl(&d, ap, Ioctl::SetVcpuEvents, BUF, &p), Ok(0));
    p.put(
        BUF,
        &kvm_mp_state {
            mp_state: KVM_MP_STATE_SIPI_RECEIVED,
        },
    );
    assert_eq!(ioctl(&d, ap, Ioctl::SetMpState, BUF, &p), Ok(0));
    assert_eq!(ioctl(&d, ap, Ioctl::GetMpState, BUF, &p), Ok(0));
    assert_eq!(p.get::<u32>(BUF), KVM_MP_STATE_SIPI_RECEIVED);
    assert_eq!(ioctl(&d, ap, Ioctl::GetVcpuEvents, BUF, &p), Ok(0));
    assert_eq!(p.get::<kvm_vcpu_events>(BUF), ev);
    // KVM_NMI sets nmi.pending (kvm_inject_nmi).
    p.put(BUF, &kvm_vcpu_events::default());
    assert_eq!(ioctl(&d, vcpus[0], Ioctl::SetVcpuEvents, BUF, &p), Ok(0));
    assert_eq!(ioctl(&d, vcpus[0], Ioctl::Nmi, 0, &p), Ok(0));
    assert_eq!(ioctl(&d, vcpus[0], Ioctl::GetVcpuEvents, BUF, &p), Ok(0));
    assert_eq!(p.get::<kvm_vcpu_events>(BUF).nmi.pending, 1);
    // KVM_INTERRUPT needs a VM without in-kernel irqchip.
    p.put(BUF, &kvm_interrupt { irq: 0x20 });
    assert_eq!(
        ioctl(&d, vcpus[0], Ioctl::Interrupt, BUF, &p),
        Err(Errno::ENXIO)
    );
}

/// Software-enables every VCPU's LAPIC (SVR = 0x1ff).
fn enable_lapics(d: &TestDriver, p: &Proc, vcpus: &[Dev]) {
    for &fd in vcpus {
        let mut regs = get_lapic(d, fd, p).unwrap();
        set_reg(&mut regs, 0xf0, 0x1ff);
        assert_eq!(set_lapic(d, fd, p, &regs), Ok(0));
    }
}

#[test]
fn pit_ticks_reach_the_lapic_and_wait_for_the_ack() {
    use kvm_devices::apic_bus::TriggerMode;
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 1);
    enable_lapics(&d, &p, &vcpus);
    // GSI 0 goes to IOAPIC pin 2 (QEMU's override): vector 0x30, edge.
    let mut chip = get_irqchip(&d, vmfd, &p, KVM_IRQCHIP_IOAPIC).unwrap();
    let off = 8 + 24 + 8 * 2;
    chip[off..off + 8].copy_from_slice(&0x30u64.to_le_bytes());
    assert_eq!(set_irqchip(&d, vmfd, &p, &chip), Ok(0));
    // Counter 0: rate generator, 1193 clocks (1 ms), loaded now.
    let mut st = kvm_pit_state2::from_bytes(&get_pit2(&d, vmfd, &p).unwrap()).unwrap();
    st.channels[0].count = 1193;
    st.channels[0].mode = 2;
    st.channels[0].rw_mode = 3;
    st.channels[0].gate = 1;
    st.channels[0].count_load_time = 1_000_000_000;
    p.put(BUF, &st);
    assert_eq!(ioctl(&d, vmfd, Ioctl::SetPit2, BUF, &p), Ok(0));
    // 3.5 ms later the cyclic fires.
    let s = services(&d);
    s.clock
        .0
        .store(1_003_500_000, std::sync::atomic::Ordering::Relaxed);
    let shared = vm_shared(&d, 0);
    let mut dev = shared.devices().lock();
    let pit = &mut dev.pit.as_mut().unwrap().pit;
    assert!(pit.on_timer(1_003_500_000));
    assert_eq!(pit.pending(), 3, "reinjection counts every tick");
    assert!(dev.inject_pit_timer_irqs());
    assert!(dev.lapics[0].irr_has(0x30));
    assert!(!dev.inject_pit_timer_irqs(), "one pulse per ack");
    // The guest takes the interrupt and EOIs it: the ack notifier runs.
    assert_eq!(dev.lapics[0].get_interrupt(), Some(0x30));
    dev.ioapic_eoi(0x30, TriggerMode::Edge);
    assert_eq!(dev.pit.as_ref().unwrap().pit.pending(), 2);
    assert!(dev.inject_pit_timer_irqs());
    assert!(dev.lapics[0].irr_has(0x30));
    // Masking IOAPIC pin 0 fires the PIT's mask notifier (the C registers
    // it on IRQ 0 and fires it with the pin): the backlog is dropped.
    dev.ioapic_mmio_write(0x00, 0x10);
    dev.ioapic_mmio_write(0x10, 0x31); // unmask pin 0 (was masked at reset)
    assert_eq!(dev.pit.as_ref().unwrap().pit.pending(), 2);
    dev.ioapic_mmio_write(0x10, 0x1_0031);
    assert_eq!(dev.pit.as_ref().unwrap().pit.pending(), 0);
}

#[test]
fn a_lapic_icr_write_sends_an_ipi_to_another_vcpu() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (_vmfd, vcpus) = bring_up(&d, &p, 2);
    enable_lapics(&d, &p, &vcpus);
    let shared = vm_shared(&d, 0);
    {
        let mut dev = shared.devices().lock();
        // ICR2: destination APIC 1; ICR: fixed, assert, vector 0x50.
        assert_eq!(dev.lapic_mmio_write(0, 0x310, 4, 1 << 24), Some(()));
        assert_eq!(dev.lapic_mmio_write(0, 0x300, 4, 0x4050), Some(()));
        assert_eq!(dev.lapic_mmio_write(7, 0x300, 4, 0x4050), None);
    }
    let regs = get_lapic(&d, vcpus[1], &p).unwrap();
    assert_ne!(reg(&regs, 0x220) & (1 << (0x50 - 64)), 0, "IRR has 0x50");
    let regs = get_lapic(&d, vcpus[0], &p).unwrap();
    assert_eq!(reg(&regs, 0x220), 0);
}

#[test]
fn flexpriority_gets_the_apic_access_page_and_zones_unregister_by_range() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    d.backend()
        .vmx()
        .apic_access
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (vmfd, _vcpus) = bring_up(&d, &p, 2);
    let shared = vm_shared(&d, 0);
    let slots: Vec<(u32, u64, u64)> = shared
        .mmu()
        .lock()
        .slots()
        .iter()
        .map(|s| (s.id().get(), s.base_gfn(), s.npages()))
        .collect();
    assert!(slots.contains(&(33, 0xfee00, 1)), "{slots:x?}");
    assert_eq!(services(&d).private.lock().unwrap().len(), 3, "made once");
    // Zones inside the range go; the others stay.
    for (addr, size) in [(0xd000_0000u64, 0x1000u32), (0xd000_2000, 0x100)] {
        p.put(BUF, &kvm_coalesced_mmio_zone { addr, size, pad: 0 });
        assert_eq!(
            ioctl(&d, vmfd, Ioctl::RegisterCoalescedMmio, BUF, &p),
            Ok(0)
        );
    }
    assert_eq!(shared.coalesced().lock().zones().len(), 3);
    p.put(
        BUF,
        &kvm_coalesced_mmio_zone {
            addr: 0xd000_0000,
            size: 0x1_0000,
            pad: 0,
        },
    );
    assert_eq!(
        ioctl(&d, vmfd, Ioctl::UnregisterCoalescedMmio, BUF, &p),
        Ok(0)
    );
    let zones = shared.coalesced().lock().zones().to_vec();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].addr, VGA);
}

/// What mdb's `::walk kvm`, `::kvm_gpa2qva` and `::kvm_gsiroutes` read: the
/// VM's record is on `kvm_vm_list`, with QEMU's memslots, GSI map and VCPUs;
/// it leaves the list with the VM.
#[test]
fn debugger_records_follow_the_vm() {
    let p = Proc::default();
    p.map(BUF, 0x10000);
    let d = driver(&p);
    let (vmfd, vcpus) = bring_up(&d, &p, 2);
    let shared = vm_shared(&d, 0);
    let rec: *const kvm_kstat::debug::KvmDebugVm = {
        let dbg = shared.debug().lock();
        let vm = dbg.get();
        assert!(vm.record().is_valid());
        assert_eq!(vm.record().pid(), 4242);
        assert_eq!(vm.nvcpus(), 2);
        // Slot 2: RAM above the VGA window, in pages.
        let s = vm.memslots().get(2).copied().unwrap();
        assert_eq!(
            (s.base_gfn, s.npages, s.userspace_addr),
            (
                (VGA + VGA_SIZE) >> 12,
                (RAM_SIZE - VGA - VGA_SIZE) >> 12,
                RAM + VGA + VGA_SIZE
            )
        );
        let vga = vm.memslots().get(1).copied().unwrap();
        assert_eq!(vga.flags, KVM_MEM_LOG_DIRTY_PAGES);
        // QEMU's routing: IRQ0 on IOAPIC pin 2, IRQ 9 on slave pin 1,
        // IOAPIC pin 0 unrouted.
        assert_eq!(vm.gsi(2, 2), Some(0));
        assert_eq!(vm.gsi(1, 1), Some(9));
        assert_eq!(vm.gsi(2, 0), Some(kvm_kstat::debug::GSI_NONE));
        vm.record()
    };
    assert!(::kvm::vm::debug::is_linked(rec));
    drop(shared);
    for fd in vcpus {
        assert_eq!(d.close(fd), Ok(()));
    }
    assert_eq!(d.close(vmfd), Ok(()));
    assert!(
        !::kvm::vm::debug::is_linked(rec),
        "unlinked when the VM is destroyed"
    );
}
