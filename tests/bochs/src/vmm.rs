//! The VMM: plays QEMU's part (inventory §13) against the driver, only
//! through `kvm_ioctl::Driver` — open, ioctl, devmap, close — exactly the
//! calls the illumos module receives from QEMU. It brings up a VM with
//! guest RAM, the in-kernel PIT/PIC/IOAPIC, GSI routing and its VCPUs,
//! loads a multiboot guest image (a kvm-unit-tests `.flat`) as QEMU's
//! `-kernel` does, and runs it: KVM_RUN in a loop, answering the exits a
//! minimal QEMU PC answers (COM1, fw_cfg, isa-debug-exit, unclaimed ports
//! and MMIO).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use ::kvm::vm::{NoVmx, VmBackend, VmxSeam};
use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{
    DATAMODEL_LP64, FREAD, FWRITE, OTYP_CHR, PROT_READ, PROT_USER, PROT_WRITE,
};
use kvm_ioctl::{Dev, Driver, Errno, KVM_VCPU_MMAP_SIZE, MapKind};

use crate::elf32;
use crate::payload::Payload;
use crate::platform::ioctl::{BarePlatform, HostUser};
use crate::platform::services::BareServices;
use crate::{print, println};

/// A VMX seam for the bare-metal services: `NoVmx` (bring-up only) or
/// the real one (`platform::timers::BareSeam`).
pub trait Seam: VmxSeam<BareServices> {}
impl<X: VmxSeam<BareServices>> Seam for X {}

/// The driver as the illumos module builds it, over the bare-metal
/// platform and services.
pub type BareDriver<X = NoVmx> = Driver<BarePlatform, VmBackend<BareServices, X>>;

/// The /dev/kvm major number this host pretends to have.
const KVM_MAJOR: u32 = 42;
const LP64: i32 = DATAMODEL_LP64;
const PAGE: u64 = 4096;

/// Where QEMU puts things (pc.c / the multiboot loader).
const TSS_ADDR: u64 = 0xfeff_d000;
const IDENTITY_MAP_ADDR: u64 = 0xfeff_c000;
/// The multiboot info and command line go in the page after the image's
/// last PT_LOAD byte (as QEMU's loader appends them to the kernel): a fixed
/// low address overwrote realmode.flat's code, which runs up to 0x9xxx.
const MBI_SIZE: u64 = 0x400;
const CMDLINE_MAX: usize = 0xc00;

/// Guest RAM the VMM "mmap"ed: `size` bytes at host address `hva`.
#[derive(Clone, Copy, Debug)]
pub struct GuestRam {
    pub hva: u64,
    pub size: u64,
}

/// Why the VMM stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Bring-up only (the smoke run): every ioctl up to KVM_RUN succeeded.
    BroughtUp,
    /// KVM_RUN is ENOTSUP: the backend has no VMX seam yet.
    NoVmxSeam,
    /// The guest wrote `code` to isa-debug-exit (QEMU exits with
    /// `code << 1 | 1`).
    DebugExit(u32),
    /// KVM_RUN returned an error.
    RunError(Errno),
    /// An exit the VMM cannot continue from: `KVM_EXIT_*` number, the
    /// first words of its `kvm_run` data, and the guest RIP.
    Exit(u32, [u64; 2], u64),
    /// The instruction/time budget ran out.
    Timeout,
}

/// A bring-up step failed: which and why.
#[derive(Clone, Copy, Debug)]
pub struct Failed {
    pub what: &'static str,
    pub errno: Option<Errno>,
}

fn failed(what: &'static str) -> Failed {
    Failed { what, errno: None }
}

/// What a run did.
pub struct Report {
    pub stop: Stop,
    pub vcpus: u32,
    pub runs: u64,
    pub io_exits: u64,
    pub mmio_exits: u64,
    pub serial_bytes: u64,
}

/// `ioctl(fd, cmd, arg)` from the (64-bit) VMM, printed with its result.
fn ioctl<X: Seam>(d: &BareDriver<X>, dev: Dev, cmd: Ioctl, arg: u64) -> Result<i32, Errno> {
    let r = d.ioctl(dev, cmd.cmd() as i32, arg, LP64, &mut HostUser);
    match r {
        Ok(v) => println!("vmm: {} = {v}", cmd.name()),
        Err(e) => println!("vmm: {} = {e:?} ({})", cmd.name(), e.code()),
    }
    r
}

/// Like `ioctl`, but anything except success ends the bring-up.
fn must<X: Seam>(d: &BareDriver<X>, dev: Dev, cmd: Ioctl, arg: u64) -> Result<i32, Failed> {
    ioctl(d, dev, cmd, arg).map_err(|e| Failed {
        what: cmd.name(),
        errno: Some(e),
    })
}

fn addr<T>(v: &T) -> u64 {
    v as *const T as u64
}

/// The address of an ioctl argument the driver writes.
fn addr_mut<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

fn open<X: Seam>(d: &BareDriver<X>) -> Result<Dev, Failed> {
    let mut dev = Dev::new(KVM_MAJOR, 0);
    match d.open(&mut dev, FREAD | FWRITE, OTYP_CHR) {
        Ok(()) => {
            println!("vmm: open(/dev/kvm) = minor {}", dev.minor());
            Ok(dev)
        }
        Err(e) => {
            println!("vmm: open(/dev/kvm) = {e:?}");
            Err(Failed {
                what: "open",
                errno: Some(e),
            })
        }
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

/// QEMU's routing table (qemu-kvm-x86.c): PIC master 0–7, slave 8–15,
/// IOAPIC 0–23 with IRQ0 on pin 2.
fn qemu_routes() -> Vec<kvm_irq_routing_entry> {
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
    v
}

/// A byte buffer for a variable-length ioctl argument (8-aligned).
fn buffer(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes.div_ceil(8)]
}

fn put<T: Pod>(buf: &mut [u64], at: usize, v: &T) {
    let bytes = v.as_bytes();
    let base = buf.as_mut_ptr().cast::<u8>();
    if at + bytes.len() <= buf.len() * 8 {
        // SAFETY: in bounds of `buf`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(at), bytes.len()) };
    }
}

fn get<T: Pod>(buf: &[u64], at: usize) -> T {
    let n = core::mem::size_of::<T>();
    let mut v = T::zeroed();
    if at + n <= buf.len() * 8 {
        // SAFETY: in bounds; `T: Pod` takes any bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                buf.as_ptr().cast::<u8>().add(at),
                (&mut v as *mut T).cast::<u8>(),
                n,
            )
        };
    }
    v
}

/// The paravirtual CPUID leaves QEMU adds to the table it sets
/// (illumos-kvm-cmd `kvm_arch_init_vcpu`): the hypervisor-present bit
/// (CPUID.1:ECX[31]), the "KVMKVMKVM" signature and the features it
/// advertises since OS-7102 (inventory §9.12): kvmclock with both MSR
/// sets and the stable bit, and NOP_IO_DELAY.
fn add_paravirt_leaves(table: &mut Vec<kvm_cpuid_entry2>) {
    for e in table.iter_mut().filter(|e| e.function == 1) {
        e.ecx |= 1 << 31;
    }
    table.retain(|e| e.function & 0xffff_ff00 != KVM_CPUID_SIGNATURE);
    table.push(kvm_cpuid_entry2 {
        function: KVM_CPUID_SIGNATURE,
        eax: KVM_CPUID_FEATURES,
        ebx: u32::from_le_bytes(*b"KVMK"),
        ecx: u32::from_le_bytes(*b"VMKV"),
        edx: u32::from_le_bytes(*b"M\0\0\0"),
        ..Default::default()
    });
    table.push(kvm_cpuid_entry2 {
        function: KVM_CPUID_FEATURES,
        eax: (1 << KVM_FEATURE_CLOCKSOURCE)
            | (1 << KVM_FEATURE_NOP_IO_DELAY)
            | (1 << KVM_FEATURE_CLOCKSOURCE2)
            | (1 << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT),
        ..Default::default()
    });
}

/// KVM_GET_SUPPORTED_CPUID as QEMU asks: nent doubled until not E2BIG.
fn supported_cpuid<X: Seam>(d: &BareDriver<X>, sys: Dev) -> Result<Vec<kvm_cpuid_entry2>, Failed> {
    let mut nent = 8usize;
    loop {
        let mut buf = buffer(8 + 40 * nent);
        put(&mut buf, 0, &(nent as u32));
        match ioctl(d, sys, Ioctl::GetSupportedCpuid, buf.as_mut_ptr() as u64) {
            Ok(_) => {
                let n: u32 = get(&buf, 0);
                return Ok((0..n as usize).map(|i| get(&buf, 8 + 40 * i)).collect());
            }
            Err(Errno::E2BIG) if nent < 256 => nent *= 2,
            Err(e) => {
                return Err(Failed {
                    what: "KVM_GET_SUPPORTED_CPUID",
                    errno: Some(e),
                });
            }
        }
    }
}

fn segment(selector: u16, ty: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        r#type: ty,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Flat 32-bit protected mode, paging off: 4 GiB code (0x08) and data
/// (0x10) segments, TR and LDTR usable, CR0 = PE|ET, the LAPIC enabled at
/// its default base as the BSP; no GDT/IDT (the caller sets them).
pub fn flat_protected_sregs() -> kvm_sregs {
    let data = segment(0x10, 3);
    let mut sregs = kvm_sregs {
        cs: segment(0x08, 0xb),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        ..Default::default()
    };
    sregs.tr = kvm_segment {
        limit: 0xffff,
        r#type: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.ldt = kvm_segment {
        limit: 0xffff,
        r#type: 2,
        present: 1,
        ..Default::default()
    };
    sregs.cr0 = 0x11; // PE | ET
    sregs.apic_base = 0xfee0_0000 | 0x900; // enabled, BSP
    sregs
}

/// The multiboot entry state (QEMU's multiboot option ROM): 32-bit flat
/// protected mode, paging off, EAX = magic, EBX = multiboot info.
fn entry_state(entry: u32, mbi_gpa: u64) -> (kvm_regs, kvm_sregs) {
    let regs = kvm_regs {
        rax: 0x2bad_b002,
        rbx: mbi_gpa,
        rip: u64::from(entry),
        rflags: 2,
        ..Default::default()
    };
    let mut sregs = flat_protected_sregs();
    sregs.gdt.limit = 0xffff;
    sregs.idt.limit = 0x3ff;
    (regs, sregs)
}

/// Copies the image's PT_LOAD segments to guest RAM and writes the
/// multiboot info and command line (`<file> <args>`, as QEMU's loader
/// passes `-kernel` and `-append`). Returns the entry point and the
/// multiboot info's address.
fn load(ram: GuestRam, payload: &Payload) -> Result<(u32, u64), Failed> {
    let image = elf32::parse(payload.image).map_err(|_| failed("payload is not an ELF32 image"))?;
    let image_end = image
        .segments()
        .iter()
        .map(|s| u64::from(s.paddr).saturating_add(u64::from(s.memsz)))
        .max()
        .unwrap_or(0);
    let mbi_gpa = image_end.div_ceil(PAGE) * PAGE;
    let cmdline_gpa = mbi_gpa + MBI_SIZE;
    if cmdline_gpa + CMDLINE_MAX as u64 > ram.size || mbi_gpa > u64::from(u32::MAX) {
        return Err(failed("no room for the multiboot info after the image"));
    }
    for seg in image.segments() {
        let (paddr, filesz, memsz) = (
            u64::from(seg.paddr),
            u64::from(seg.filesz),
            u64::from(seg.memsz),
        );
        if paddr.saturating_add(memsz) > ram.size || filesz > memsz {
            return Err(failed("a PT_LOAD segment does not fit in guest RAM"));
        }
        let off = seg.offset as usize;
        let src = payload
            .image
            .get(off..off + filesz as usize)
            .ok_or(failed("a PT_LOAD segment is outside the image"))?;
        // SAFETY: guest RAM is ours, identity mapped, and the segment fits.
        unsafe {
            core::ptr::copy_nonoverlapping(
                src.as_ptr(),
                (ram.hva + paddr) as usize as *mut u8,
                src.len(),
            );
        }
        // The bss part: guest RAM was carved from never-used memory,
        // which is zero (Bochs zero-fills RAM), so nothing to clear.
    }
    // Command line.
    let mut cmdline = [0u8; CMDLINE_MAX];
    let mut n = 0;
    for b in payload
        .file
        .bytes()
        .chain(core::iter::once(b' ').filter(|_| !payload.args.is_empty()))
        .chain(payload.args.bytes())
        .take(CMDLINE_MAX - 1)
    {
        if let Some(c) = cmdline.get_mut(n) {
            *c = b;
        }
        n += 1;
    }
    // Multiboot info: MEM | CMDLINE | MODS (none).
    let mut mbi = [0u32; 22];
    mbi[0] = 0x1 | 0x4 | 0x8;
    mbi[1] = 639;
    mbi[2] = ((ram.size - 0x10_0000) / 1024) as u32;
    mbi[4] = cmdline_gpa as u32;
    mbi[5] = 0;
    mbi[6] = 0;
    // SAFETY: both fit in guest RAM (checked above), past the image.
    unsafe {
        core::ptr::copy_nonoverlapping(
            mbi.as_ptr().cast::<u8>(),
            (ram.hva + mbi_gpa) as usize as *mut u8,
            core::mem::size_of_val(&mbi),
        );
        core::ptr::copy_nonoverlapping(
            cmdline.as_ptr(),
            (ram.hva + cmdline_gpa) as usize as *mut u8,
            CMDLINE_MAX,
        );
    }
    print!("vmm: loaded {} at entry {:#x}:", payload.file, image.entry);
    for seg in image.segments() {
        print!(" [{:#x}+{:#x}]", seg.paddr, seg.memsz);
    }
    println!(
        "; multiboot info at {mbi_gpa:#x}, mem_upper {} KiB, cmdline '{}'",
        mbi[2],
        core::str::from_utf8(cmdline.get(..n).unwrap_or(&[])).unwrap_or("?")
    );
    Ok((image.entry, mbi_gpa))
}

/// One VCPU as the VMM holds it: its fd and its mapped `kvm_run`.
struct VcpuFd {
    fd: Dev,
    run: *mut kvm_run,
}

/// The VM (all fds), closed on drop as QEMU's exit closes them.
struct Vm<'d, X: Seam> {
    d: &'d BareDriver<X>,
    sys: Dev,
    vcpus: Vec<VcpuFd>,
}

impl<X: Seam> Drop for Vm<'_, X> {
    fn drop(&mut self) {
        for v in self.vcpus.drain(..) {
            if let Err(e) = self.d.close(v.fd) {
                println!("vmm: close(vcpu minor {}) = {e:?}", v.fd.minor());
            }
        }
        if let Err(e) = self.d.close(self.sys) {
            println!("vmm: close(vm minor {}) = {e:?}", self.sys.minor());
        }
        println!("vmm: closed every fd; VM destroyed");
    }
}

/// Brings up the VM (inventory §13.1/§13.2) and, with `run`, runs the
/// payload. Every fd is closed before this returns.
pub fn run<X: Seam>(
    d: &BareDriver<X>,
    ram: GuestRam,
    payload: Option<&Payload>,
    smp: u32,
    go: bool,
) -> Result<Report, Failed> {
    let budget = payload.map_or(0, |p| p.max_insns);
    let sys = open(d)?;
    let mut vm = Vm {
        d,
        sys,
        vcpus: Vec::new(),
    };
    let api = must(d, sys, Ioctl::GetApiVersion, 0)?;
    if api != 12 {
        return Err(failed("KVM_GET_API_VERSION is not 12"));
    }
    for cap in [
        Capability::IrqRouting,
        Capability::SetTssAddr,
        Capability::SetIdentityMapAddr,
        Capability::UserMemory,
        Capability::Irqchip,
        Capability::Pit2,
    ] {
        let n = d
            .ioctl(
                sys,
                Ioctl::CheckExtension.cmd() as i32,
                cap as u64,
                LP64,
                &mut HostUser,
            )
            .unwrap_or(0);
        println!("vmm: KVM_CHECK_EXTENSION({cap:?}) = {n}");
    }
    must(d, sys, Ioctl::CreateVm, 0)?;
    // On illumos the VM lives on the same minor: vmfd = sysfd.
    let vmfd = sys;
    must(d, vmfd, Ioctl::SetTssAddr, TSS_ADDR)?;
    let ident = IDENTITY_MAP_ADDR;
    must(d, vmfd, Ioctl::SetIdentityMapAddr, addr(&ident))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        pad: [0; 15],
    };
    must(d, vmfd, Ioctl::CreatePit2, addr(&pit))?;
    must(d, vmfd, Ioctl::CreateIrqchip, 0)?;
    firmware_pic_setup(d, vmfd)?;
    let routes = qemu_routes();
    let mut buf = buffer(8 + 48 * routes.len());
    put(&mut buf, 0, &(routes.len() as u32));
    for (i, r) in routes.iter().enumerate() {
        put(&mut buf, 8 + 48 * i, r);
    }
    must(d, vmfd, Ioctl::SetGsiRouting, buf.as_ptr() as u64)?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: ram.size,
        userspace_addr: ram.hva,
    };
    must(d, vmfd, Ioctl::SetUserMemoryRegion, addr(&region))?;
    println!(
        "vmm: guest RAM {} MiB at host {:#x} (slot 0, gpa 0)",
        ram.size >> 20,
        ram.hva
    );

    let mut supported = supported_cpuid(d, sys)?;
    println!("vmm: {} supported CPUID entries", supported.len());
    // The CPU model is what the driver supports (it reports no PMU and
    // an emulated x2APIC); KUT_X2APIC=0 hides x2APIC, as `-cpu ...,-x2apic`.
    if !payload.is_some_and(|p| p.x2apic) {
        for e in supported.iter_mut().filter(|e| e.function == 1) {
            e.ecx &= !(1 << 21);
        }
        println!("vmm: CPUID: x2APIC hidden (KUT_X2APIC=0)");
    }
    add_paravirt_leaves(&mut supported);
    let entry = match payload {
        Some(p) => Some(load(ram, p)?),
        None => None,
    };

    for i in 0..smp {
        let fd = open(d)?;
        // Track it at once so it is closed on any error below.
        vm.vcpus.push(VcpuFd {
            fd,
            run: core::ptr::null_mut(),
        });
        must(d, fd, Ioctl::Clone, sys.0)?;
        let index = must(d, fd, Ioctl::CreateVcpu, u64::from(i))?;
        if index != i as i32 {
            return Err(failed("KVM_CREATE_VCPU returned another index"));
        }
        let size = must(d, fd, Ioctl::GetVcpuMmapSize, 0)?;
        if size as u64 != KVM_VCPU_MMAP_SIZE {
            return Err(failed("KVM_GET_VCPU_MMAP_SIZE is not 3 pages"));
        }
        // mmap(fd, 3 pages): segmap, then devmap until mapped.
        d.segmap(
            fd,
            0,
            KVM_VCPU_MMAP_SIZE,
            PROT_READ | PROT_WRITE | PROT_USER,
        )
        .map_err(|e| Failed {
            what: "segmap",
            errno: Some(e),
        })?;
        let run = d
            .devmap(fd, 0, KVM_VCPU_MMAP_SIZE, LP64)
            .map_err(|e| Failed {
                what: "devmap (kvm_run)",
                errno: Some(e),
            })?;
        let ring = d.devmap(fd, 2 * PAGE, PAGE, LP64).map_err(|e| Failed {
            what: "devmap (coalesced MMIO ring)",
            errno: Some(e),
        })?;
        if run.kind != MapKind::VcpuRun || ring.kind != MapKind::CoalescedRing {
            return Err(failed("devmap mapped the wrong areas"));
        }
        println!(
            "vmm: mmap(vcpu {i}) = kvm_run at {:#x} ({} bytes), coalesced ring at {:#x}",
            run.cookie, run.len, ring.cookie
        );
        if let Some(v) = vm.vcpus.last_mut() {
            v.run = run.cookie as usize as *mut kvm_run;
        }

        let mut buf = buffer(8 + 40 * supported.len());
        put(&mut buf, 0, &(supported.len() as u32));
        for (k, e) in supported.iter().enumerate() {
            put(&mut buf, 8 + 40 * k, e);
        }
        must(d, fd, Ioctl::SetCpuid2, buf.as_ptr() as u64)?;
        let mp = kvm_mp_state {
            mp_state: if i == 0 {
                KVM_MP_STATE_RUNNABLE
            } else {
                KVM_MP_STATE_UNINITIALIZED
            },
        };
        must(d, fd, Ioctl::SetMpState, addr(&mp))?;
        let mut lapic = buffer(1024);
        must(d, fd, Ioctl::GetLapic, lapic.as_mut_ptr() as u64)?;
        must(d, fd, Ioctl::SetLapic, lapic.as_ptr() as u64)?;
        if let (0, Some((entry, mbi_gpa))) = (i, entry) {
            let (regs, sregs) = entry_state(entry, mbi_gpa);
            // The register ioctls are the VMX seam's: ENOTSUP without it.
            let r = ioctl(d, fd, Ioctl::SetSregs, addr(&sregs));
            let r2 = ioctl(d, fd, Ioctl::SetRegs, addr(&regs));
            for r in [r, r2] {
                match r {
                    Ok(_) | Err(Errno::ENOTSUP) => {}
                    Err(e) => {
                        return Err(Failed {
                            what: "KVM_SET_REGS/SREGS",
                            errno: Some(e),
                        });
                    }
                }
            }
        }
    }
    println!("vmm: VM up: {smp} VCPU(s), irqchip, PIT2, GSI routing, guest RAM");

    let mut report = Report {
        stop: Stop::BroughtUp,
        vcpus: smp,
        runs: 0,
        io_exits: 0,
        mmio_exits: 0,
        serial_bytes: 0,
    };
    if !go {
        return Ok(report);
    }
    if vm.vcpus.is_empty() {
        return Err(failed("no VCPU"));
    }
    report.stop = run_loop(d, vm.sys, &vm.vcpus, smp, ram, budget, &mut report);
    Ok(report)
}

/// What the VMM's PC answers on I/O ports.
struct Pc {
    smp: u32,
    ram_size: u64,
    fw_cfg_key: u16,
    fw_cfg_off: u32,
    line: [u8; 256],
    line_len: usize,
    /// pc-testdev's "iomem": RAM behind MMIO exits (kvm-unit-tests'
    /// IORAM_BASE_PHYS, what emulator.flat runs its instructions on).
    ioram: Vec<u8>,
    /// pc-testdev's I/O port 0xe0-0xe3: reads give the last value written
    /// (emulator.flat's string I/O tests).
    testdev_port: u32,
}

/// pc-testdev's iomem window (QEMU hw/misc/pc-testdev.c, IOMEM_LEN).
const IORAM_BASE: u64 = 0xff00_0000;
const IORAM_LEN: usize = 0x1_0000;

impl Pc {
    fn fw_cfg_item(&self) -> u64 {
        match self.fw_cfg_key {
            0x00 => u64::from(u32::from_le_bytes(*b"QEMU")),
            0x03 => self.ram_size,
            0x05 | 0x0f => u64::from(self.smp),
            0x11 => self.ram_size,
            _ => 0,
        }
    }

    fn serial_out(&mut self, b: u8, report: &mut Report) {
        report.serial_bytes += 1;
        if b == b'\n' || self.line_len == self.line.len() {
            let text = self.line.get(..self.line_len).unwrap_or(&[]);
            println!("com1: {}", core::str::from_utf8(text).unwrap_or("<binary>"));
            self.line_len = 0;
            if b == b'\n' {
                return;
            }
        }
        if b != b'\r'
            && let Some(c) = self.line.get_mut(self.line_len)
        {
            *c = b;
            self.line_len += 1;
        }
    }

    fn flush(&mut self) {
        if self.line_len > 0 {
            let text = self.line.get(..self.line_len).unwrap_or(&[]);
            println!("com1: {}", core::str::from_utf8(text).unwrap_or("<binary>"));
            self.line_len = 0;
        }
    }

    /// An IN of `size` bytes from `port`.
    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        match port {
            0x3fd => 0x60, // LSR: transmitter empty
            0xe0..=0xe3 => self.testdev_port,
            0x3f8..=0x3ff => 0,
            0x511 => {
                let v = (self.fw_cfg_item() >> (8 * self.fw_cfg_off.min(7))) as u8;
                self.fw_cfg_off += 1;
                u32::from(v)
            }
            _ => match size {
                1 => 0xff,
                2 => 0xffff,
                _ => 0xffff_ffff,
            },
        }
    }

    /// An OUT; `Some(code)` for isa-debug-exit.
    fn port_out(&mut self, port: u16, value: u32, report: &mut Report) -> Option<u32> {
        match port {
            0x3f8 => self.serial_out(value as u8, report),
            0x510 => {
                self.fw_cfg_key = value as u16;
                self.fw_cfg_off = 0;
            }
            0xf4 => return Some(value),
            0xe0..=0xe3 => self.testdev_port = value,
            _ => {}
        }
        None
    }
}

/// What SeaBIOS leaves in the PIC pair before QEMU's multiboot loader
/// starts the guest (`pic_setup`: ICW1-4 with the master at vector 0x08
/// and the slave at 0x70), with only the cascade and IRQ 11 (the line
/// pc-testdev's port 0x200b drives, realmode.flat's `sti inhibit` test)
/// unmasked: there is no BIOS here, and an initialized PIC is part of the
/// machine the tests were written for.
fn firmware_pic_setup<X: Seam>(d: &BareDriver<X>, vmfd: Dev) -> Result<(), Failed> {
    for (chip, base, imr) in [(0u32, 0x08u8, 0xfbu8), (1, 0x70, 0xf7)] {
        let mut c = kvm_irqchip {
            chip_id: chip,
            pad: 0,
            chip: kvm_irqchip_chip { dummy: [0; 512] },
        };
        must(d, vmfd, Ioctl::GetIrqchip, addr_mut(&mut c))?;
        // SAFETY: chips 0 and 1 are the PICs: the union holds a pic state.
        let mut pic = unsafe { c.chip.pic };
        pic.irq_base = base;
        pic.imr = imr;
        pic.init_state = 0;
        pic.init4 = 1;
        c.chip.pic = pic;
        must(d, vmfd, Ioctl::SetIrqchip, addr(&c))?;
    }
    println!(
        "vmm: PIC pair initialized as SeaBIOS leaves it (bases 0x08/0x70, IRQ 2 and 11 unmasked)"
    );
    Ok(())
}

/// pc-testdev's IRQ ports: a write of `level` to 0x2000 + n drives ISA
/// IRQ n (QEMU hw/misc/pc-testdev.c `test_irq_line`).
const TESTDEV_IRQ_PORTS: core::ops::RangeInclusive<u16> = 0x2000..=0x2017;

/// Lets a pending host interrupt (the slice timer) in: one instruction
/// with IF=1 (the timer vector has a handler that EOIs; any other vector
/// reports and stops the host).
fn interrupt_window() {
    // SAFETY: see above.
    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
}

/// `sti` (profiling: the timer's handler only samples and re-arms).
pub fn interrupts_open() {
    // SAFETY: the only vector that fires is the timer's, whose handler
    // takes no lock.
    unsafe { core::arch::asm!("sti", "nop", options(nomem, nostack)) };
}

/// `cli`.
pub fn interrupts_close() {
    // SAFETY: masks interrupts; no memory effect.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// The slice of a VCPU that runs because another one kicked it.
const KICKED_SLICE_TICKS: u64 = 4_000;

/// Room for KVM_RUN's way into the guest before a kicked VCPU's slice
/// starts (the backstop timer's margin).
const KICKED_ENTRY_ROOM_TICKS: u64 = 100_000;

/// A VCPU's time slice in TSC ticks (= instructions under Bochs): 10 ms
/// at Bochs' 50 M "Hz".
const SLICE_TICKS: u64 = 500_000;

/// KVM_RUN until the guest ends, an exit stops it or `budget` TSC ticks
/// (= instructions under Bochs; 0: no limit) pass.
fn run_loop<X: Seam>(
    d: &BareDriver<X>,
    vmfd: Dev,
    vcpus: &[VcpuFd],
    smp: u32,
    ram: GuestRam,
    budget: u64,
    report: &mut Report,
) -> Stop {
    let start = crate::clock::now();
    let mut pc = Pc {
        smp,
        ram_size: ram.size,
        fw_cfg_key: 0,
        fw_cfg_off: 0,
        line: [0; 256],
        line_len: 0,
        ioram: vec![0; IORAM_LEN],
        testdev_port: 0,
    };
    // One host CPU: the VCPUs take turns, each KVM_RUN interrupted after a
    // time slice (the VMX host reports it as a pending signal).
    let mut turn = 0usize;
    // The VCPU whose slice a kick cut short, and the TSC its slice was to
    // end at: it goes on after the kicked VCPU's brief slice, as the
    // sender of an IPI goes on at once on a CPU of its own (else a sender
    // that then waits for the answer would wait a whole round of slices).
    let mut preempted: Option<(usize, u64)> = None;
    crate::platform::vmx_host::set_yield_on_block(vcpus.len() > 1);
    let stop = loop {
        // A VCPU another one kicked (an IPI, an NMI) runs next, briefly:
        // on real CPUs it would handle the event while the sender goes on.
        let now = crate::clock::now();
        let (index, slice, kicked) = match crate::platform::vmx_host::take_kicked() {
            Some(k) if (k as usize) < vcpus.len() => (k as usize, KICKED_SLICE_TICKS, true),
            _ => match preempted.take() {
                Some((i, end)) if end > now.saturating_add(KICKED_SLICE_TICKS) => {
                    (i, end - now, false)
                }
                _ => {
                    turn = turn.wrapping_add(1);
                    (
                        turn.wrapping_sub(1) % vcpus.len().max(1),
                        SLICE_TICKS,
                        false,
                    )
                }
            },
        };
        let Some(vcpu) = vcpus.get(index) else {
            break Stop::RunError(Errno::EINVAL);
        };
        crate::platform::vmx_host::set_current_vcpu(index as u32);
        if budget != 0 && crate::clock::now().wrapping_sub(start) > budget {
            println!("vmm: the guest ran out of its budget of {budget} instructions");
            for (i, v) in vcpus.iter().enumerate() {
                println!("vmm: VCPU {i}:");
                let _ = dump(d, v.fd);
            }
            break Stop::Timeout;
        }
        report.runs += 1;
        // The host's timer callback: device deadlines that passed while the
        // VMM ran fire now (a cyclic would have fired them on illumos).
        crate::platform::services::fire_due(crate::clock::ticks_to_ns(crate::clock::now()));
        // A guest that never exits is stopped by the host's LAPIC timer
        // at the end of the slice (external-interrupt exiting); the host
        // takes that interrupt in the windows around KVM_RUN.
        let slice_end = crate::clock::now() + slice;
        if kicked {
            crate::platform::vmx_host::set_slice_from_entry(slice);
        } else {
            crate::platform::vmx_host::set_slice_end(slice_end);
        }
        let r = if crate::profile::active() {
            // The profiler's timer (every few thousand ticks) also ends a
            // spinning guest's slice; interrupts are open in the driver
            // except around VM entry (`BareVmxHost::interrupts_*`).
            crate::profile::in_run(true);
            interrupts_open();
            let r = d.ioctl(vcpu.fd, Ioctl::Run.cmd() as i32, 0, LP64, &mut HostUser);
            interrupts_close();
            crate::profile::in_run(false);
            r
        } else {
            // A kicked VCPU's slice starts at its VM entry (the VMX
            // preemption timer ends it): the backstop timer leaves room
            // for KVM_RUN's way in, or it would fire before the entry.
            crate::timer::arm_after(if kicked {
                slice + KICKED_ENTRY_ROOM_TICKS
            } else {
                slice
            });
            interrupt_window();
            let r = d.ioctl(vcpu.fd, Ioctl::Run.cmd() as i32, 0, LP64, &mut HostUser);
            interrupt_window();
            r
        };
        crate::platform::vmx_host::set_slice_end(0);
        if !kicked && crate::platform::vmx_host::kick_pending() {
            preempted = Some((index, slice_end));
        }
        match r {
            Ok(_) => {}
            Err(Errno::ENOTSUP) => {
                println!(
                    "vmm: KVM_RUN = ENOTSUP: the VMX seam is not wired yet (kvm::vm::NoVmx answers the run and register ioctls)"
                );
                break Stop::NoVmxSeam;
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(e) => {
                println!("vmm: KVM_RUN = {e:?}");
                break Stop::RunError(e);
            }
        }
        // SAFETY: the kvm_run page devmap gave us, alive while the fd is.
        let run = unsafe { &mut *vcpu.run };
        let reason = run.exit_reason;
        if reason == ExitReason::Io as u32 {
            report.io_exits += 1;
            // SAFETY: the union member of KVM_EXIT_IO.
            let io = unsafe { run.u.io };
            let data = (vcpu.run as u64 + io.data_offset) as usize as *mut u8;
            let size = usize::from(io.size.clamp(1, 4));
            let mut code = None;
            for k in 0..io.count as usize {
                // SAFETY: the PIO data lies in the 2-page kvm_run area.
                let p = unsafe { data.add(k * size) };
                if io.direction == KVM_EXIT_IO_OUT {
                    let mut v = [0u8; 4];
                    // SAFETY: as above.
                    unsafe { core::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), size) };
                    let value = u32::from_le_bytes(v);
                    if TESTDEV_IRQ_PORTS.contains(&io.port) {
                        let line = kvm_irq_level {
                            u: kvm_irq_level_u {
                                irq: u32::from(io.port - 0x2000),
                            },
                            level: value & 1,
                        };
                        let _ = ioctl(d, vmfd, Ioctl::IrqLine, addr(&line));
                    }
                    code = code.or(pc.port_out(io.port, value, report));
                } else {
                    let v = pc.port_in(io.port, io.size).to_le_bytes();
                    // SAFETY: as above.
                    unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), p, size) };
                }
            }
            if let Some(code) = code {
                break Stop::DebugExit(code);
            }
        } else if reason == ExitReason::Mmio as u32 {
            report.mmio_exits += 1;
            // SAFETY: the union member of KVM_EXIT_MMIO.
            let mmio = unsafe { &mut run.u.mmio };
            let len = (mmio.len as usize).min(8);
            let off = mmio.phys_addr.wrapping_sub(IORAM_BASE) as usize;
            match pc.ioram.get_mut(off..off.saturating_add(len)) {
                Some(cells) if mmio.phys_addr >= IORAM_BASE => {
                    if mmio.is_write != 0 {
                        cells.iter_mut().zip(mmio.data).for_each(|(c, b)| *c = b);
                    } else {
                        mmio.data.iter_mut().zip(cells).for_each(|(b, c)| *b = *c);
                    }
                }
                _ if mmio.is_write == 0 => mmio.data = [0xff; 8],
                _ => {}
            }
        } else if reason == ExitReason::Intr as u32 || reason == ExitReason::IrqWindowOpen as u32 {
            continue;
        } else {
            // SAFETY: reading the union's raw bytes.
            let raw = unsafe { run.u.padding };
            let w = |i: usize| {
                u64::from_le_bytes(
                    raw.get(i..i + 8)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or([0; 8]),
                )
            };
            println!(
                "vmm: KVM_RUN exit reason {reason}: stopping (exit data {:#x} {:#x} {:#x})",
                w(0),
                w(8),
                w(16)
            );
            let rip = dump(d, vcpu.fd);
            break Stop::Exit(reason, [w(0), w(8)], rip);
        }
    };
    pc.flush();
    stop
}

/// KVM_GET_REGS/SREGS/MP_STATE of a stopped VCPU, for the log.
fn dump<X: Seam>(d: &BareDriver<X>, fd: Dev) -> u64 {
    let mut regs = kvm_regs::default();
    let mut sregs = kvm_sregs::default();
    let mut mp = kvm_mp_state { mp_state: 0 };
    if ioctl(d, fd, Ioctl::GetMpState, addr_mut(&mut mp)).is_ok() {
        println!("vmm: mp_state {}", mp.mp_state);
    }
    if ioctl(d, fd, Ioctl::GetRegs, addr_mut(&mut regs)).is_ok() {
        println!(
            "vmm: rip {:#x} rsp {:#x} rflags {:#x} rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x}",
            regs.rip,
            regs.rsp,
            regs.rflags,
            regs.rax,
            regs.rbx,
            regs.rcx,
            regs.rdx,
            regs.rsi,
            regs.rdi
        );
    }
    if ioctl(d, fd, Ioctl::GetSregs, addr_mut(&mut sregs)).is_ok() {
        println!(
            "vmm: cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} cs {:#x}/{:#x}/type {:#x} l {} db {} gdt {:#x}/{:#x} idt {:#x}/{:#x} tr {:#x}/type {:#x}",
            sregs.cr0,
            sregs.cr2,
            sregs.cr3,
            sregs.cr4,
            sregs.efer,
            sregs.cs.selector,
            sregs.cs.base,
            sregs.cs.r#type,
            sregs.cs.l,
            sregs.cs.db,
            sregs.gdt.base,
            sregs.gdt.limit,
            sregs.idt.base,
            sregs.idt.limit,
            sregs.tr.selector,
            sregs.tr.r#type
        );
    }
    regs.rip
}

/// `KVM_EXIT_*` names for the log.
pub fn exit_name(reason: u32) -> &'static str {
    match reason {
        0 => "KVM_EXIT_UNKNOWN",
        1 => "KVM_EXIT_EXCEPTION",
        2 => "KVM_EXIT_IO",
        4 => "KVM_EXIT_DEBUG",
        5 => "KVM_EXIT_HLT",
        6 => "KVM_EXIT_MMIO",
        8 => "KVM_EXIT_SHUTDOWN (triple fault)",
        9 => "KVM_EXIT_FAIL_ENTRY",
        17 => "KVM_EXIT_INTERNAL_ERROR",
        _ => "KVM_EXIT_?",
    }
}
