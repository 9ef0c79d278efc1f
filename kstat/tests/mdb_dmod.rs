//! The `kvm` mdb module's walkers and dcmds (`mdb/kvm_mdb.c`) run on Linux
//! over the real Rust debug records.
//!
//! The dmod is compiled as `make mdb` compiles it (gcc against the illumos
//! SDK's `<mdb/mdb_modapi.h>` and the header `mdb-offsets` generates) and
//! linked with `mdb/test/mdb_fake.c`, a fake of the mdb module API over a
//! memory image. The image is the bytes of real `DebugVm`/`KvmDebugVcpu`/
//! `KvmVmList` values of this process, at their real addresses, so every
//! pointer the dmod follows is one the Rust code wrote. Each walker and dcmd
//! is run as `mdb` would run it and its output compared with lines written
//! out here.
//!
//! Skipped, with one printed line, without gcc or the SDK (`ILLUMOS_SDK`,
//! default `../shared/illumos-sdk` beside the checkout).

use std::fmt::Write as _;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kvm_kstat::debug::{DebugVm, FIELDS, GSI_NONE, KvmDebugVcpu, KvmVmList, VM_LIST_SYMBOL};
use kvm_kstat::ringbuf::{RingbufEntry, Tag};

/// The flags `mdb/mdb.mk` compiles the dmod with (keep in sync), minus the
/// include path of the generated header.
fn dmod_cflags(sdk: &Path) -> Vec<String> {
    let s = sdk.display();
    let mut v: Vec<String> = [
        "-nostdinc",
        "-D__sun",
        "-D_KERNEL",
        "-D_TS_ERRNO",
        "-D_ELF64",
        "-Ui386",
        "-U__i386",
        "-DKVM_MDB_GATE_HEADERS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend([
        "-isystem".into(),
        format!("{s}/usr/src/head"),
        format!("-I{s}/usr/src/uts/common"),
        format!("-I{s}/usr/src/uts/intel"),
        format!("-I{s}/usr/src/uts/i86pc"),
        "-isystem".into(),
        format!("{s}/usr/src/cmd/mdb/common"),
    ]);
    v.extend(
        [
            "-m64",
            "-fPIC",
            "-O2",
            "-ffreestanding",
            "-fno-strict-aliasing",
            "-std=gnu99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-Wno-missing-field-initializers",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kstat/ has a parent")
        .to_path_buf()
}

fn sdk() -> Option<PathBuf> {
    let sdk = match std::env::var_os("ILLUMOS_SDK") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join("../shared/illumos-sdk"),
    };
    sdk.join("usr/src/cmd/mdb/common/mdb/mdb_modapi.h")
        .is_file()
        .then_some(sdk)
}

fn have_gcc() -> bool {
    Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build the fake-mdb executable once: generated header, dmod object, fake.
fn fake_mdb() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let Some(sdk) = sdk() else {
            println!("skipped: the mdb module tests need ../shared/illumos-sdk (set ILLUMOS_SDK)");
            return None;
        };
        if !have_gcc() {
            println!("skipped: the mdb module tests need gcc");
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mdb_dmod");
        std::fs::create_dir_all(&dir).expect("tmpdir");
        let header = Command::new(env!("CARGO_BIN_EXE_mdb-offsets"))
            .output()
            .expect("run mdb-offsets");
        assert!(header.status.success());
        std::fs::write(dir.join("kvm_mdb_offsets.h"), &header.stdout).expect("write header");
        let root = repo_root();
        let dmod_o = dir.join("kvm_mdb.o");
        run(Command::new("gcc")
            .args(dmod_cflags(&sdk))
            .arg(format!("-I{}", dir.display()))
            .arg("-c")
            .arg(root.join("mdb/kvm_mdb.c"))
            .arg("-o")
            .arg(&dmod_o));
        // The fake uses the same illumos API header, without -D_KERNEL.
        let fake_o = dir.join("mdb_fake.o");
        let mut fake_flags = dmod_cflags(&sdk);
        fake_flags.retain(|f| f != "-D_KERNEL" && f != "-ffreestanding");
        run(Command::new("gcc")
            .args(fake_flags)
            .arg("-c")
            .arg(root.join("mdb/test/mdb_fake.c"))
            .arg("-o")
            .arg(&fake_o));
        let exe = dir.join("mdb_fake");
        run(Command::new("gcc")
            .arg("-o")
            .arg(&exe)
            .arg(&fake_o)
            .arg(&dmod_o));
        Some(exe)
    })
    .as_deref()
}

/// A memory image: symbols and segments (see mdb_fake.c for the format).
#[derive(Default)]
struct Image {
    syms: Vec<(String, u64, u64)>,
    segs: Vec<(u64, Vec<u8>)>,
}

impl Image {
    /// Copy `*v` at its own address.
    fn add<T>(&mut self, v: &T) {
        // SAFETY: the records have no padding (kvm_kstat::debug asserts
        // their sizes are the sums of their fields), so all bytes are
        // initialised.
        let bytes =
            unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
        self.segs.push((v as *const T as u64, bytes.to_vec()));
    }

    fn write(&self, path: &Path) {
        let mut b = Vec::new();
        b.extend_from_slice(b"KVMMDBIM");
        b.extend_from_slice(&(self.syms.len() as u32).to_ne_bytes());
        b.extend_from_slice(&(self.segs.len() as u32).to_ne_bytes());
        for (name, value, size) in &self.syms {
            b.extend_from_slice(&value.to_ne_bytes());
            b.extend_from_slice(&size.to_ne_bytes());
            b.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            b.extend_from_slice(name.as_bytes());
        }
        for (addr, bytes) in &self.segs {
            b.extend_from_slice(&addr.to_ne_bytes());
            b.extend_from_slice(&(bytes.len() as u64).to_ne_bytes());
            b.extend_from_slice(bytes);
        }
        std::fs::write(path, b).expect("write image");
    }
}

const SLOT0_UADDR: u64 = 0x7fff_8000_0000;
const SLOT1_UADDR: u64 = 0x7ffe_c010_0000;
const VCPU0_EVENTS: u64 = 600;

fn thread_of(i: u64) -> u64 {
    0xffff_fe00_1234_5000 + (i % 4) * 0x1000
}

/// The synthetic VMs: VM 1 (pid 4242) with two memslots, the default GSI
/// map and two VCPUs (VCPU 0's ring wrapped: 600 events; VCPU 1's: 3
/// events), and an empty VM 2, on a list of their own.
struct Fixture {
    list: Box<KvmVmList>,
    vm1: Box<DebugVm>,
    vm2: Box<DebugVm>,
    vcpu0: Box<KvmDebugVcpu>,
    vcpu1: Box<KvmDebugVcpu>,
}

impl Fixture {
    fn new() -> Self {
        let list = Box::new(KvmVmList::new());
        let mut vm1 = Box::new(DebugVm::new(1, 4242));
        let mut vm2 = Box::new(DebugVm::new(2, 5000));
        // 640K of low memory, then 127M from 1M.
        vm1.set_memslot(0, 0, 0xa0, 0, SLOT0_UADDR).unwrap();
        vm1.set_memslot(1, 0x100, 0x7f00, 0, SLOT1_UADDR).unwrap();
        // The default routing (kvm_irq_comm.c): GSI 0-7 on the master PIC,
        // 8-15 on the slave, 0-23 on the IOAPIC.
        for pin in 0..8 {
            vm1.set_gsi(0, pin, pin as u32).unwrap();
            vm1.set_gsi(1, pin, pin as u32 + 8).unwrap();
        }
        for pin in 0..24 {
            vm1.set_gsi(2, pin, pin as u32).unwrap();
        }
        let vcpu0 = Box::new(KvmDebugVcpu::new(0));
        let vcpu1 = Box::new(KvmDebugVcpu::new(1));
        for i in 0..VCPU0_EVENTS {
            let tag = Tag::ALL[(i % 12) as usize];
            vcpu0.record(
                tag,
                (i % 4) as u32,
                thread_of(i),
                1_000_000 + i * 37,
                i * 0x10,
            );
        }
        vcpu1.record(Tag::VcpuLoad, 1, 0xffff_fe00_0bad_c000, 77, 1);
        vcpu1.record(Tag::Vmptrld, 1, 0xffff_fe00_0bad_c000, 78, 0x1_2345_6000);
        vcpu1.record(
            Tag::EmuXadd,
            2,
            0xffff_fe00_0bad_c000,
            79,
            0xffff_ffff_8000_1000,
        );
        vm1.set_vcpu(0, &vcpu0).unwrap();
        vm1.set_vcpu(1, &vcpu1).unwrap();
        // SAFETY: the boxes stay put and alive for the fixture's life and
        // are unlinked in Drop; one thread.
        unsafe {
            list.link(&mut *vm1);
            list.link(&mut *vm2);
        }
        Fixture {
            list,
            vm1,
            vm2,
            vcpu0,
            vcpu1,
        }
    }

    fn image(&self) -> Image {
        let mut img = Image::default();
        img.syms.push((
            VM_LIST_SYMBOL.to_str().unwrap().to_string(),
            addr(&*self.list),
            size_of::<KvmVmList>() as u64,
        ));
        img.add(&*self.list);
        img.add(&*self.vm1);
        img.add(&*self.vm2);
        img.add(&*self.vcpu0);
        img.add(&*self.vcpu1);
        img
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe {
            self.list.unlink(&mut *self.vm1);
            self.list.unlink(&mut *self.vm2);
        }
    }
}

fn addr<T>(v: &T) -> u64 {
    v as *const T as u64
}

struct Out {
    status: i32,
    stdout: Vec<String>,
    stderr: String,
}

/// Run the fake mdb over `img` with `args`.
fn mdb(exe: &Path, img: &Image, name: &str, args: &[String]) -> Out {
    let dir = exe.parent().unwrap();
    let path = dir.join(format!("{name}.img"));
    img.write(&path);
    let o = Command::new(exe)
        .arg(&path)
        .args(args)
        .output()
        .expect("run mdb_fake");
    Out {
        status: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn hex(v: u64) -> String {
    format!("{v:x}")
}

const RING_HEADER: &str =
    "            ADDR         TIMESTAMP CPU           THREAD TAG              PAYLOAD";

fn ring_line(addr: u64, tsc: u64, cpu: u32, thread: u64, tag: &str, payload: u64) -> String {
    format!("{addr:>16x} {tsc:>17} {cpu:>3} {thread:>16x} {tag:<7} {payload:>16x}")
}

/// The dmod's tag names, as the C driver's `::kvm_ringbuf_entry` printed
/// them (plus `xadd`, which it printed as `????`).
const TAG_NAMES: [&str; 12] = [
    "save", "restore", "vmptrld", "migrate", "clear", "load", "put", "reload", "efail-0",
    "efail-1", "efail-2", "xadd",
];

#[test]
fn walk_kvm_visits_every_vm_in_creation_order() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let o = mdb(exe, &f.image(), "walk_kvm", &args(&["walk", "kvm"]));
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(o.stdout, [hex(addr(&*f.vm1)), hex(addr(&*f.vm2))]);

    // A local walk is refused.
    let o = mdb(
        exe,
        &f.image(),
        "walk_kvm_local",
        &args(&["walk", "kvm", &hex(addr(&*f.vm1))]),
    );
    assert_eq!(o.status, 1);
    assert_eq!(o.stderr, "mdb: kvm does not support local walks\n");
}

#[test]
fn walk_kvm_refuses_a_missing_symbol_or_another_layout() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let mut img = f.image();
    img.syms.clear();
    let o = mdb(exe, &img, "walk_kvm_nosym", &args(&["walk", "kvm"]));
    assert_eq!(o.status, 1);
    assert_eq!(o.stderr, "mdb: unable to locate kvm_vm_list\n");

    // The list head says layout version 7: the module must not walk.
    let mut img = f.image();
    let off = FIELDS
        .iter()
        .find(|x| x.record == "VMLIST" && x.field == "VERSION")
        .unwrap()
        .offset;
    let seg = img
        .segs
        .iter_mut()
        .find(|(a, _)| *a == addr(&*f.list))
        .unwrap();
    seg.1[off..off + 4].copy_from_slice(&7u32.to_ne_bytes());
    let o = mdb(exe, &img, "walk_kvm_layout", &args(&["walk", "kvm"]));
    assert_eq!(o.status, 1);
    assert_eq!(o.stdout, Vec::<String>::new());
    assert_eq!(
        o.stderr,
        "mdb: the driver's debug records are layout 7 (VM record 328 bytes); \
         this module reads layout 1 (328 bytes)\n"
    );
}

#[test]
fn walk_kvm_memory_slot_yields_the_slots_in_use() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let slots = f.vm1.memslots();
    let o = mdb(
        exe,
        &f.image(),
        "walk_slots",
        &args(&["walk", "kvm_memory_slot", &hex(addr(&*f.vm1))]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        [
            hex(addr(slots.get(0).unwrap())),
            hex(addr(slots.get(1).unwrap()))
        ]
    );
    // VM 2 has no slots.
    let o = mdb(
        exe,
        &f.image(),
        "walk_slots2",
        &args(&["walk", "kvm_memory_slot", &hex(addr(&*f.vm2))]),
    );
    assert_eq!((o.status, o.stdout.len()), (0, 0), "{}", o.stderr);
    let o = mdb(
        exe,
        &f.image(),
        "walk_slots_global",
        &args(&["walk", "kvm_memory_slot"]),
    );
    assert_eq!(o.status, 1);
    assert_eq!(
        o.stderr,
        "mdb: kvm_memory_slot does not support global walks\n"
    );
}

#[test]
fn gpa2qva_translates_through_the_memslots() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let vm = hex(addr(&*f.vm1));
    let img = f.image();
    // In slot 1: 1M + 0x234 is page 0 of the slot.
    let o = mdb(
        exe,
        &img,
        "gpa_1",
        &args(&["dcmd", "kvm_gpa2qva", "0x100234", &vm]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(o.stdout, ["7ffec0100234"]);
    // Last byte of slot 1 (gfn 0x7fff), the VM given as an immediate.
    let o = mdb(
        exe,
        &img,
        "gpa_2",
        &args(&["dcmd", "kvm_gpa2qva", "7ffffff", &format!("${vm}")]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(o.stdout, [hex(SLOT1_UADDR + (0x7eff << 12) + 0xfff)]);
    // In slot 0.
    let o = mdb(
        exe,
        &img,
        "gpa_3",
        &args(&["dcmd", "kvm_gpa2qva", "9f123", &vm]),
    );
    assert_eq!(o.stdout, ["7fff8009f123"]);
    // The hole between 640K and 1M, and past the end: unknown.
    for (i, gpa) in ["a0000", "8000000"].iter().enumerate() {
        let o = mdb(
            exe,
            &img,
            &format!("gpa_miss{i}"),
            &args(&["dcmd", "kvm_gpa2qva", gpa, &vm]),
        );
        assert_eq!(o.status, 1);
        assert_eq!(o.stdout, Vec::<String>::new());
        assert_eq!(
            o.stderr,
            format!("mdb: 0x{gpa} is unknown for kvm 0x{vm}\n")
        );
    }
    // No address or no VM: usage.
    let o = mdb(
        exe,
        &img,
        "gpa_usage",
        &args(&["dcmd", "kvm_gpa2qva", "-", &vm]),
    );
    assert_eq!(o.status, 2);
    let o = mdb(
        exe,
        &img,
        "gpa_usage2",
        &args(&["dcmd", "kvm_gpa2qva", "1000"]),
    );
    assert_eq!(o.status, 2);
}

fn gsi_lines(vm: &DebugVm) -> Vec<String> {
    let mut v = Vec::new();
    for chip in 0..3 {
        for pin in 0..24 {
            v.push(format!(
                "{chip:>3} {pin:>7}    0x{:x}",
                vm.gsi(chip, pin).unwrap()
            ));
        }
    }
    v
}

#[test]
fn gsiroutes_prints_the_chip_map() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let o = mdb(
        exe,
        &f.image(),
        "gsi",
        &args(&["dcmd", "kvm_gsiroutes", &hex(addr(&*f.vm1))]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(o.stdout.len(), 1 + 72);
    assert_eq!(o.stdout[0], "CHIP    PORT   GSI");
    assert_eq!(o.stdout[1], "  0       0    0x0");
    assert_eq!(o.stdout[8], "  0       7    0x7");
    assert_eq!(o.stdout[9], "  0       8    0xffffffff");
    assert_eq!(o.stdout[1 + 24 + 3], "  1       3    0xb");
    assert_eq!(o.stdout[1 + 48 + 23], "  2      23    0x17");
    assert_eq!(o.stdout[1..], gsi_lines(&f.vm1)[..]);
    assert_eq!(f.vm1.gsi(1, 20), Some(GSI_NONE));

    // `::walk kvm | ::kvm_gsiroutes`: one header, then both VMs.
    let o = mdb(
        exe,
        &f.image(),
        "gsi_pipe",
        &args(&["pipe", "kvm", "-", "kvm_gsiroutes"]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    let mut want = vec!["CHIP    PORT   GSI".to_string()];
    want.extend(gsi_lines(&f.vm1));
    want.extend(gsi_lines(&f.vm2));
    assert_eq!(o.stdout, want);

    // Not a VM record: refused by its magic.
    let vcpu1 = addr(&*f.vcpu1);
    let o = mdb(
        exe,
        &f.image(),
        "gsi_bad",
        &args(&["dcmd", "kvm_gsiroutes", &hex(vcpu1)]),
    );
    assert_eq!(o.status, 1);
    // Bytes 8..12 of the ring are entry 0's thread, low half.
    assert_eq!(
        o.stderr,
        format!("mdb: {vcpu1:x} is not a kvm VM record (magic 0xbadc000)\n")
    );
}

#[test]
fn walk_kvm_vcpu_yields_the_vcpu_records() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let o = mdb(
        exe,
        &f.image(),
        "vcpus",
        &args(&["walk", "kvm_vcpu", &hex(addr(&*f.vm1))]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(o.stdout, [hex(addr(&*f.vcpu0)), hex(addr(&*f.vcpu1))]);
    let o = mdb(
        exe,
        &f.image(),
        "vcpus2",
        &args(&["walk", "kvm_vcpu", &hex(addr(&*f.vm2))]),
    );
    assert_eq!((o.status, o.stdout.len()), (0, 0), "{}", o.stderr);
}

#[test]
fn ringbuf_walk_and_dcmd_print_the_last_512_events_in_order() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let ring = addr(&*f.vcpu0); // the ring is at offset 0 of the record
    let slot_addr = |i: u64| ring + (i % 512) * size_of::<RingbufEntry>() as u64;

    let o = mdb(
        exe,
        &f.image(),
        "ring_walk",
        &args(&["walk", "kvm_ringbuf_entry", &hex(ring)]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    let want: Vec<String> = (VCPU0_EVENTS - 512..VCPU0_EVENTS)
        .map(|i| hex(slot_addr(i)))
        .collect();
    assert_eq!(o.stdout, want);
    // The oldest surviving event (88) sits in slot 88, the newest (599) in
    // slot 87.
    assert_eq!(o.stdout[0], hex(ring + 88 * 32));
    assert_eq!(o.stdout[511], hex(ring + 87 * 32));

    // `ring::walk kvm_ringbuf_entry | ::kvm_ringbuf_entry`
    let o = mdb(
        exe,
        &f.image(),
        "ring_pipe",
        &args(&["pipe", "kvm_ringbuf_entry", &hex(ring), "kvm_ringbuf_entry"]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    let mut want = vec![RING_HEADER.to_string()];
    for i in VCPU0_EVENTS - 512..VCPU0_EVENTS {
        want.push(ring_line(
            slot_addr(i),
            1_000_000 + i * 37,
            (i % 4) as u32,
            thread_of(i),
            TAG_NAMES[(i % 12) as usize],
            i * 0x10,
        ));
    }
    assert_eq!(o.stdout, want);
    // Event 88 is tag 88 % 12 + 1 = 5 (clear), on CPU 0.
    assert_eq!(
        o.stdout[1],
        format!(
            "{:>16x}           1003256   0 fffffe0012345000 clear                580",
            ring + 88 * 32
        )
    );
}

#[test]
fn ringbuf_of_a_young_vcpu_and_unwritten_entries() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let ring = addr(&*f.vcpu1);
    let o = mdb(
        exe,
        &f.image(),
        "ring1_pipe",
        &args(&["pipe", "kvm_ringbuf_entry", &hex(ring), "kvm_ringbuf_entry"]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        [
            RING_HEADER.to_string(),
            ring_line(ring, 77, 1, 0xffff_fe00_0bad_c000, "load", 1),
            ring_line(
                ring + 32,
                78,
                1,
                0xffff_fe00_0bad_c000,
                "vmptrld",
                0x1_2345_6000
            ),
            ring_line(
                ring + 64,
                79,
                2,
                0xffff_fe00_0bad_c000,
                "xadd",
                0xffff_ffff_8000_1000
            ),
        ]
    );
    // A slot never written: tag 0 prints as ????.
    let o = mdb(
        exe,
        &f.image(),
        "ring1_empty",
        &args(&["dcmd", "kvm_ringbuf_entry", &hex(ring + 5 * 32)]),
    );
    assert_eq!(o.status, 0, "{}", o.stderr);
    let mut want = String::new();
    write!(
        want,
        "{:>16x}                 0   0                0 ????                   0",
        ring + 160
    )
    .unwrap();
    assert_eq!(o.stdout, [RING_HEADER.to_string(), want]);
    // Without an address: usage; a global walk: refused.
    let o = mdb(
        exe,
        &f.image(),
        "ring_usage",
        &args(&["dcmd", "kvm_ringbuf_entry", "-"]),
    );
    assert_eq!(o.status, 2);
    let o = mdb(
        exe,
        &f.image(),
        "ring_global",
        &args(&["walk", "kvm_ringbuf_entry"]),
    );
    assert_eq!(o.status, 1);
    assert_eq!(
        o.stderr,
        "mdb: kvm_ringbuf_entry does not support global walks\n"
    );
}

#[test]
fn every_walker_and_dcmd_is_registered() {
    let Some(exe) = fake_mdb() else { return };
    let f = Fixture::new();
    let img = f.image();
    for w in ["kvm", "kvm_memory_slot", "kvm_vcpu", "kvm_ringbuf_entry"] {
        // An unknown walker makes the fake exit 98 ("no such walker").
        let o = mdb(exe, &img, &format!("reg_{w}"), &args(&["walk", w, "0"]));
        assert_ne!(o.status, 98, "walker {w}: {}", o.stderr);
    }
    for d in ["kvm_gpa2qva", "kvm_gsiroutes", "kvm_ringbuf_entry"] {
        let o = mdb(exe, &img, &format!("reg_{d}"), &args(&["dcmd", d, "-"]));
        assert_eq!(o.status, 2, "dcmd {d} without address: usage");
    }
}

#[test]
fn ringbuf_walk_at_the_wrap_boundary() {
    let Some(exe) = fake_mdb() else { return };
    for n in [511u64, 512, 513] {
        let vcpu = Box::new(KvmDebugVcpu::new(0));
        for i in 0..n {
            vcpu.record(Tag::Reload, 0, 0, i, i);
        }
        let mut img = Image::default();
        img.add(&*vcpu);
        let ring = addr(&*vcpu);
        let o = mdb(
            exe,
            &img,
            &format!("ring_boundary_{n}"),
            &args(&["walk", "kvm_ringbuf_entry", &hex(ring)]),
        );
        assert_eq!(o.status, 0, "{}", o.stderr);
        // Events max(0, n - 512) .. n, event i in slot i % 512.
        let want: Vec<String> = (n.saturating_sub(512)..n)
            .map(|i| hex(ring + (i % 512) * 32))
            .collect();
        assert_eq!(o.stdout, want, "{n} events");
    }
}
