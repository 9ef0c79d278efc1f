//! The bare-metal test host the Bochs harness boots (see ../README.md).
//!
//! Boot (`boot.rs`) brings the CPU to long mode with the first 4 GiB
//! identity mapped and calls `kmain`, which sets up the platform the driver
//! crates run on (console, descriptors, page allocator, heap, TSC clock),
//! asks the shared `kvm_vmx::check_support` whether the CPU will do and
//! enters VMX operation. A smoke run then runs the VMX smoke guests and
//! brings a VM up and down through the driver's ioctl dispatcher
//! (`vmm.rs`); a kvm-unit-tests run (`mode=kut` in the payload header) runs
//! the payload under the driver's real VMX seam instead. The last line is
//! `RESULT: PASS`, `RESULT: KUT-DONE` or `RESULT: FAIL: <why>`.
#![no_std]
#![no_main]

mod boot;
mod clock;
mod console;
mod cpu;
mod descriptors;
mod elf32;
mod guests;
mod heap;
mod io;
mod mem;
mod multiboot;
mod pages;
mod payload;
mod platform;
mod power;
mod profile;
mod rtc;
mod sync;
mod timer;
mod vmm;
mod vmx_insn;
mod vmx_smoke;
mod vmxon;

use core::panic::PanicInfo;
use cpu::BareMetalCpu;
use kvm_vmx::VmxSupport;

const ONE_MIB: u64 = 1 << 20;

/// Entered from `boot.rs` in long mode on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn kmain(multiboot_magic: u32, multiboot_info: u32) -> ! {
    let boot_ticks = clock::now();
    descriptors::init();
    println!("== kvm bochs test host (no_std Rust, multiboot, long mode) ==");
    println!("boot: kmain reached {boot_ticks} TSC ticks after reset");
    let (vendor, brand) = cpu::identity();
    println!(
        "cpu: {} {}",
        cpu::cpuid_str(&vendor),
        cpu::cpuid_str(&brand)
    );

    let Some(boot) = multiboot::parse(multiboot_magic, multiboot_info) else {
        power::fail("no multiboot memory information");
    };
    let (image_start, image_end) = boot::image_extent();
    let ram_end = ONE_MIB + u64::from(boot.mem_upper_kib) * 1024;
    let pool = pages::init(
        image_end,
        ram_end,
        payload::HEADER_ADDR,
        payload::RESERVED_END,
    );
    println!(
        "memory: {} MiB; host image {image_start:#x}-{image_end:#x}; page pool {:#x}-{:#x} ({} pages, payload window {:#x}-{:#x} reserved)",
        ram_end / ONE_MIB,
        pool.start,
        pool.end,
        pool.pages,
        payload::HEADER_ADDR,
        payload::RESERVED_END
    );
    let arenas = carve_arenas(ram_end);
    report_payload(ram_end);

    match clock::calibrate() {
        clock::Calibration::Pit { tsc_ticks } => println!(
            "tsc: {} Hz (PIT channel 2, 2 ms = {tsc_ticks} ticks)",
            clock::tsc_hz()
        ),
        clock::Calibration::Fallback => {
            println!("tsc: PIT did not answer; assuming {} Hz", clock::tsc_hz())
        }
    }

    rtc::init();
    println!("rtc: {} s since the epoch", rtc::boot_epoch_seconds());

    test_timer();

    let support = match kvm_vmx::check_support(&BareMetalCpu) {
        Ok(support) => {
            print_support(&support);
            support
        }
        Err(refusal) => {
            println!("kvm_vmx::check_support: refused: {}", refusal.message());
            println!("RESULT: NO-VMX");
            power::shutdown();
        }
    };

    let vmx = match vmxon::enable(&support) {
        Ok(vmx) => vmx,
        Err(e) => {
            power::fail(e.message());
        }
    };
    println!(
        "VMXON ok: region {:#x}, VMCS revision {:#x}, IA32_FEATURE_CONTROL {:#x} -> {:#x}",
        vmx.region(),
        vmx.revision,
        vmx.feature_control.0,
        vmx.feature_control.1
    );

    let payload = payload::find(ram_end);
    if let Some(p) = payload.as_ref().filter(|p| p.mode == "kut") {
        // A kvm-unit-tests run: the VMM runs the guest, nothing else.
        run_kut(p, arenas);
    }
    if let Some(p) = payload
        .as_ref()
        .filter(|p| p.mode == "guests" || p.mode == "bench")
    {
        // The harness' own guests and benchmarks (guests/mod.rs).
        guests::run(p.mode, arenas.guest_ram);
    }
    let smoke = vmx_smoke::run(&vmx, &support, vmx_smoke::Program::Hello);
    let fault = vmx_smoke::run(&vmx, &support, vmx_smoke::Program::TripleFault);
    bring_up_vmm(payload.as_ref(), arenas);
    if let Err(e) = vmx.disable() {
        println!("VMXOFF failed: {e:?}");
        power::fail("VMXOFF");
    }
    println!("VMXOFF ok");

    match smoke {
        Ok(vmx_smoke::Outcome::Halted(report)) => print_report(&report),
        Ok(vmx_smoke::Outcome::TripleFault { rip, .. }) => {
            println!("smoke: the guest triple-faulted at rip {rip:#x}");
            power::fail("smoke guest died");
        }
        Err(e) => {
            println!("smoke: {} (detail {:#x})", e.what, e.detail);
            power::fail(e.what);
        }
    }
    match fault {
        Ok(vmx_smoke::Outcome::TripleFault { rip, exits }) => println!(
            "misbehaving guest: triple fault at rip {rip:#x} after {exits} exits; VM stopped as hardware shuts down, host carries on"
        ),
        Ok(vmx_smoke::Outcome::Halted(_)) => power::fail("the faulting guest halted instead"),
        Err(e) => {
            println!("misbehaving guest: {} (detail {:#x})", e.what, e.detail);
            power::fail(e.what);
        }
    }
    let leaked = pages::in_use();
    if leaked != 0 {
        println!("pages: {leaked} pages not returned");
        power::fail("page leak");
    }
    println!("pages: every page returned to the allocator");
    println!("tsc: {} ticks since reset", clock::now());
    println!("RESULT: PASS");
    power::shutdown()
}

/// The contiguous arenas carved off the top of RAM before anything else
/// is allocated: the heap, then guest RAM.
#[derive(Clone, Copy)]
struct Arenas {
    guest_ram: Option<vmm::GuestRam>,
}

/// Heap arena size.
const HEAP_BYTES: u64 = 4 << 20;
/// Pages the allocator keeps for the host (EPT tables, VMCS, ...).
const POOL_KEEP: u64 = 8 << 20;
/// QEMU's default guest RAM (`-m 128`) is the most the VMM gives a guest.
const GUEST_RAM_MAX: u64 = 128 << 20;
const TWO_MIB: u64 = 2 << 20;

fn carve_arenas(ram_end: u64) -> Arenas {
    let heap_start = match pages::carve_top(HEAP_BYTES, pages::PAGE_SIZE) {
        Some(start) => start,
        None => power::fail("no room for the heap"),
    };
    heap::init(heap_start, HEAP_BYTES);
    platform::user::init(ram_end);
    let room = ram_end
        .saturating_sub(payload::RESERVED_END + HEAP_BYTES + POOL_KEEP)
        .min(GUEST_RAM_MAX)
        / TWO_MIB
        * TWO_MIB;
    let guest_ram = (room >= 8 << 20)
        .then(|| pages::carve_top(room, TWO_MIB))
        .flatten()
        .map(|hva| vmm::GuestRam { hva, size: room });
    if let Some(r) = guest_ram {
        platform::user::register(r.hva, r.size);
    }
    let (_, _, heap) = heap::usage();
    match guest_ram {
        Some(r) => println!(
            "arenas: heap {} KiB at {:#x}; guest RAM {} MiB at {:#x}",
            heap / 1024,
            heap_start,
            r.size >> 20,
            r.hva
        ),
        None => println!("arenas: heap {} KiB; no room for guest RAM", heap / 1024),
    }
    Arenas { guest_ram }
}

/// The VMM brings a VM up through the ioctl dispatcher (no KVM_RUN) and
/// tears it down: part of every smoke run.
fn bring_up_vmm(payload: Option<&payload::Payload>, arenas: Arenas) {
    let Some(ram) = arenas.guest_ram else {
        power::fail("no guest RAM for the VMM");
    };
    let driver = vmm::BareDriver::new(
        platform::ioctl::BarePlatform::new(),
        kvm::vm::VmBackend::new(platform::services::BareServices::new()),
    );
    match vmm::run(&driver, ram, payload, 1, false) {
        Ok(r) => println!(
            "vmm: bring-up through the ioctl dispatcher ok ({} VCPU, {:?})",
            r.vcpus, r.stop
        ),
        Err(e) => {
            println!("vmm: bring-up failed at {}: {:?}", e.what, e.errno);
            power::fail("VMM bring-up");
        }
    }
    check_vmm_leaks(&driver);
}

fn check_vmm_leaks<X: vmm::Seam>(driver: &vmm::BareDriver<X>) {
    let (tables, blocks, kstats, timers) = platform::services::live();
    let (heap_used, heap_peak, _) = heap::usage();
    println!(
        "vmm: after close: {} open minors; live EPT tables {tables}, shared/private blocks {blocks}, kstats {kstats}, timers {timers}; heap {heap_used} bytes in use (peak {heap_peak})",
        driver.usage()
    );
    if driver.usage() != 0 || tables != 0 || blocks != 0 || kstats != 0 || timers != 0 {
        power::fail("the VM left resources behind");
    }
}

/// `mode=kut`: run the payload under the VMM and report how it ended.
fn run_kut(p: &payload::Payload, arenas: Arenas) -> ! {
    let Some(ram) = arenas.guest_ram else {
        power::fail("no guest RAM for the VMM");
    };
    // The real VMX seam (kvm::vm::vmx::RealVmx) over the bare-metal
    // VmxHost: KVM_RUN runs the guest on this CPU.
    let seam = platform::timers::BareSeam(kvm::vm::vmx::RealVmx::new(
        platform::vmx_host::BareVmxHost::new(),
    ));
    let driver = vmm::BareDriver::new(
        platform::ioctl::BarePlatform::new(),
        kvm::vm::VmBackend::with_vmx(platform::services::BareServices::new(), seam),
    );
    let start = clock::now();
    profile::start(p.profile);
    let result = vmm::run(&driver, ram, Some(p), p.smp.max(1), true);
    profile::stop();
    let ticks = clock::now() - start;
    match result {
        Ok(r) => {
            println!(
                "vmm: {} KVM_RUN calls, {} I/O exits, {} MMIO exits, {} serial bytes, {ticks} ticks",
                r.runs, r.io_exits, r.mmio_exits, r.serial_bytes
            );
            match r.stop {
                vmm::Stop::DebugExit(code) => {
                    println!("kut-exit: status {}", (code << 1) | 1)
                }
                vmm::Stop::NoVmxSeam => println!(
                    "kut-skip: KVM_RUN is ENOTSUP: VMX seam not wired into the backend yet"
                ),
                vmm::Stop::Exit(reason, data, rip) => println!(
                    "kut-error: {} ({reason}) at guest rip {rip:#x}, exit data {:#x} {:#x}",
                    vmm::exit_name(reason),
                    data[0],
                    data[1]
                ),
                vmm::Stop::Timeout => println!(
                    "kut-error: instruction budget ({} insns) exhausted",
                    p.max_insns
                ),
                other => println!("kut-error: {other:?}"),
            }
        }
        Err(e) => println!("kut-error: bring-up failed at {}: {:?}", e.what, e.errno),
    }
    check_vmm_leaks(&driver);
    if p.profile != 0 {
        profile::dump(p.profile);
    }
    println!("RESULT: KUT-DONE");
    power::shutdown()
}

/// The one-shot timer must interrupt 100 us after it is armed.
fn test_timer() {
    let Some(mode) = timer::init() else {
        println!("timer: no local APIC");
        return;
    };
    let hz = clock::tsc_hz();
    let want = hz / 10_000;
    match timer::self_test(want, hz / 100) {
        Some(took) => println!(
            "timer: local APIC {mode}, armed for 100 us ({want} ticks): interrupt after {took} ticks"
        ),
        None => power::fail("the local APIC timer did not interrupt within 10 ms"),
    }
    if timer::self_test(want, hz / 100).is_none() {
        power::fail("the local APIC timer did not fire a second time");
    }
}

/// Describes the guest image the runner delivered (if any). Running it is
/// the driver core's job; for now the host proves it arrived intact.
fn report_payload(ram_end: u64) {
    let Some(p) = payload::find(ram_end) else {
        println!("payload: none");
        return;
    };
    println!(
        "payload: {} ({}, {} bytes, sum32 {:#x}, smp={}, args='{}')",
        p.name,
        p.file,
        p.image.len(),
        payload::sum32(p.image),
        p.smp,
        p.args
    );
    match elf32::parse(p.image) {
        Ok(image) => {
            print!(
                "payload: ELF32 i386, entry {:#x}, multiboot flags ",
                image.entry
            );
            match image.multiboot_flags {
                Some(flags) => print!("{flags:#x}"),
                None => print!("none"),
            }
            print!(", PT_LOAD");
            for seg in image.segments() {
                print!(
                    " [{:#x} file {:#x} mem {:#x}]",
                    seg.paddr, seg.filesz, seg.memsz
                );
            }
            println!();
        }
        Err(e) => println!("payload: not a loadable image: {e:?}"),
    }
}

fn print_support(s: &VmxSupport) {
    println!(
        "kvm_vmx::check_support: supported: VMCS revision {:#x}, {} bytes; true controls {}; VPID {}; unrestricted guest {}; EPT 2M {} 1G {} A/D {}",
        s.vmcs_revision,
        s.vmcs_size,
        yes(s.true_controls),
        yes(s.vpid),
        yes(s.unrestricted_guest),
        yes(s.ept_2m_pages),
        yes(s.ept_1g_pages),
        yes(s.ept_accessed_dirty)
    );
}

fn print_report(r: &vmx_smoke::Report) {
    println!(
        "smoke: {} VM exits (CPUID {}, I/O {}, EPT violation {}, HLT 1), {} guest lines, {} ticks in the guest loop ({} us)",
        r.exits,
        r.cpuid_exits,
        r.io_exits,
        r.ept_violations,
        r.guest_lines,
        r.guest_ticks,
        clock::ticks_to_ns(r.guest_ticks) / 1000
    );
    println!(
        "bench: TSC ticks per loop iteration (under Bochs = instructions retired): CPUID exit round trip {} (4 in the guest), OUT to an unclaimed port {} (3 in the guest)",
        r.cpuid_round_trip, r.io_round_trip
    );
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    println!("HOST PANIC: {info}");
    power::fail("panic")
}

/// compiler_builtins' unwind tables name the personality routine; with
/// panic=abort nothing unwinds, so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
