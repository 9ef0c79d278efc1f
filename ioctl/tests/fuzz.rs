//! Property-based fuzzing of the dispatcher: arbitrary (minor state, cmd,
//! arg bytes, data model) sequences, including open/close/segmap/devmap,
//! never panic, and every call that returns an error leaves the handle
//! model (`Driver::snapshot`) and the backend's state unchanged.
//!
//! `cargo test -p kvm-ioctl --test fuzz` runs a CI-size sample (a few
//! thousand cases, a few seconds). The full run of at least 1,000,000
//! cases:
//!
//! ```text
//! cargo test --release -p kvm-ioctl --test fuzz -- --ignored --nocapture
//! ```
//!
//! or any count with `KVM_IOCTL_FUZZ_CASES=<n> cargo test --release -p
//! kvm-ioctl --test fuzz fuzz_dispatcher -- --nocapture`.

mod common;
use common::*;
use kvm_ioctl::Dev;
use kvm_ioctl::abi::*;
use kvm_ioctl::platform::{OTYP_CHR, PROT_READ, PROT_USER, PROT_WRITE};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const BUF: u64 = 0x10_0000;
const BUF_LEN: usize = 0x1_0000;
/// A 64-byte mapping: structs placed at its end run off it.
const SHORT: u64 = 0x80_0000;
const RO: u64 = 0x90_0000;

/// The fds a case starts with.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// One fresh open.
    Fresh,
    /// A VM fd.
    Vm,
    /// A VM fd with irqchip, PIT, a dirty-logged slot, and a BSP VCPU fd.
    Devices,
    /// VM fd + VCPU fd (BSP) + a clone without VCPU + an AP VCPU fd.
    Full,
    /// VM fd + a fresh fd (to be cloned).
    Spare,
}

#[derive(Clone, Debug)]
enum Arg {
    /// The bytes at BUF; arg = BUF.
    Buf(Vec<u8>),
    /// The bytes at the end of a 64-byte mapping.
    Short(Vec<u8>),
    /// A read-only page holding the bytes.
    ReadOnly(Vec<u8>),
    /// A raw value.
    Value(u64),
    /// The dev_t of fd `k`.
    DevOf(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Ioctl {
        fd: usize,
        cmd: u32,
        arg: Arg,
        ilp32: bool,
    },
    Open,
    Close {
        fd: usize,
    },
    Segmap {
        fd: usize,
        off: i64,
        len: u64,
        prot: u32,
    },
    Devmap {
        fd: usize,
        off: u64,
        len: u64,
        ilp32: bool,
    },
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..96),
        // A small count/id/flags in the first word, so limits are crossed
        // both ways.
        4 => (0u32..130, prop::collection::vec(any::<u8>(), 0..1700)).prop_map(|(n, mut v)| {
            v.resize(v.len().max(4), 0);
            v[..4].copy_from_slice(&n.to_ne_bytes());
            v
        }),
        2 => (0usize..1700).prop_map(|n| vec![0; n]),
    ]
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        6 => bytes().prop_map(Arg::Buf),
        1 => bytes().prop_map(Arg::Short),
        1 => bytes().prop_map(Arg::ReadOnly),
        2 => prop_oneof![Just(0u64), 0u64..80, any::<u64>(), Just(0xfeff_d000)].prop_map(Arg::Value),
        1 => (0usize..6).prop_map(Arg::DevOf),
    ]
}

fn cmd() -> impl Strategy<Value = u32> {
    let known: Vec<u32> = ALL_IOCTLS.iter().map(|(_, v)| *v).collect();
    prop_oneof![
        10 => prop::sample::select(known.clone()),
        1 => any::<u32>(),
        // A known number with another size or direction.
        1 => (prop::sample::select(known), any::<u8>(), 0u32..4)
            .prop_map(|(c, s, d)| (c & 0x0000_ffff) | (u32::from(s) << 16) | ((1 << d) << 28)),
    ]
}

/// Bytes of an ABI value.
fn b<T: Pod>(v: &T) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// A plausible argument for `ioctl`: mostly valid, with limits crossed
/// both ways, so that the success paths are exercised too.
fn template(ioctl: Ioctl) -> BoxedStrategy<Arg> {
    use Ioctl as I;
    let buf = |s: BoxedStrategy<Vec<u8>>| s.prop_map(Arg::Buf).boxed();
    let zeros = |n: usize| Just(Arg::Buf(vec![0; n])).boxed();
    let small = |hi: u64| (0..hi).prop_map(Arg::Value).boxed();
    match ioctl {
        I::GetApiVersion
        | I::CreateVm
        | I::GetVcpuMmapSize
        | I::CreateIrqchip
        | I::CreatePit
        | I::Nmi
        | I::Run => Just(Arg::Value(0)).boxed(),
        I::CheckExtension => small(53),
        I::Clone => prop_oneof![3 => Just(0usize), 1 => 0usize..5]
            .prop_map(Arg::DevOf)
            .boxed(),
        I::CreateVcpu | I::SetBootCpuId => small(70),
        I::SetTssAddr => any::<u64>().prop_map(|a| Arg::Value(a & !0xfff)).boxed(),
        I::GetMsrIndexList => buf((0u32..20)
            .prop_map(|n| {
                let mut v = b(&n);
                v.resize(100, 0);
                v
            })
            .boxed()),
        I::GetSupportedCpuid | I::SetCpuid2 | I::GetCpuid2 => buf((0u32..48, 0usize..48)
            .prop_map(|(n, m)| {
                let mut v = b(&kvm_cpuid2 {
                    nent: n,
                    padding: 0,
                    entries: [],
                });
                v.resize(8 + 40 * m, 0);
                v
            })
            .boxed()),
        I::X86GetMceCapSupported | I::SetIdentityMapAddr => {
            buf(any::<u64>().prop_map(|x| b(&x)).boxed())
        }
        I::GetDirtyLog => buf((
            prop_oneof![3 => Just(1u32), 1 => 0u32..4],
            prop::bool::weighted(0.8),
        )
            .prop_map(|(slot, ok)| {
                let mut l = kvm_dirty_log::zeroed();
                l.slot = slot;
                l.u.dirty_bitmap = if ok { BUF + 0x8000 } else { 0x99 };
                b(&l)
            })
            .boxed()),
        I::SetUserMemoryRegion => buf((0u32..34, 0u32..3, 0u64..64, 0u64..8, 0u64..4)
            .prop_map(|(slot, flags, gpage, npages, upage)| {
                b(&kvm_userspace_memory_region {
                    slot,
                    flags,
                    guest_phys_addr: gpage << 12,
                    memory_size: npages << 12,
                    userspace_addr: 0x7f00_0000_0000 + (upage << 12),
                })
            })
            .boxed()),
        I::IrqLine | I::IrqLineStatus => buf((0u32..30, 0u32..2)
            .prop_map(|(irq, level)| {
                b(&kvm_irq_level {
                    u: kvm_irq_level_u { irq },
                    level,
                })
            })
            .boxed()),
        I::GetIrqchip | I::SetIrqchip => buf((0u32..4)
            .prop_map(|id| {
                let mut c = kvm_irqchip::zeroed();
                c.chip_id = id;
                b(&c)
            })
            .boxed()),
        I::CreatePit2 => buf((0u32..3)
            .prop_map(|f| {
                b(&kvm_pit_config {
                    flags: f,
                    pad: [0; 15],
                })
            })
            .boxed()),
        I::RegisterCoalescedMmio | I::UnregisterCoalescedMmio => buf((0u64..16, 0u32..0x4000)
            .prop_map(|(a, size)| {
                b(&kvm_coalesced_mmio_zone {
                    addr: a << 12,
                    size,
                    pad: 0,
                })
            })
            .boxed()),
        I::SetGsiRouting => buf((
            0u32..6,
            prop::collection::vec((0u32..30, 1u32..3, 0u32..4, 0u32..26), 0..6),
        )
            .prop_map(|(nr, es)| {
                let mut v = b(&nr);
                v.extend_from_slice(&[0; 4]);
                for (gsi, ty, chip, pin) in es {
                    let mut e = kvm_irq_routing_entry::zeroed();
                    e.gsi = gsi;
                    e.r#type = ty;
                    e.u.irqchip = kvm_irq_routing_irqchip { irqchip: chip, pin };
                    v.extend_from_slice(e.as_bytes());
                }
                v
            })
            .boxed()),
        I::GetPit2 | I::SetPit2 => buf((0u32..3)
            .prop_map(|f| {
                b(&kvm_pit_state2 {
                    flags: f,
                    ..Default::default()
                })
            })
            .boxed()),
        I::GetRegs | I::SetRegs => zeros(144),
        I::GetSregs | I::SetSregs => zeros(312),
        I::GetFpu | I::SetFpu => zeros(416),
        I::GetLapic | I::SetLapic => zeros(1024),
        I::GetVcpuEvents | I::GetMpState => zeros(64),
        I::Interrupt => buf((0u32..300)
            .prop_map(|irq| b(&kvm_interrupt { irq }))
            .boxed()),
        I::GetMsrs | I::SetMsrs => buf((0u32..110, 0u32..4)
            .prop_map(|(n, idx)| {
                let mut m = kvm_msrs::zeroed();
                m.nmsrs = n;
                for (i, e) in m.entries.iter_mut().enumerate() {
                    e.index = 0x174 + (i as u32 % (idx + 1));
                }
                b(&m)
            })
            .boxed()),
        I::SetSignalMask => prop_oneof![
            Just(Arg::Value(0)),
            (0u32..20).prop_map(|len| {
                let mut v = b(&len);
                v.resize(20, 0xff);
                Arg::Buf(v)
            }),
            Just(Arg::Buf({
                let mut v = b(&16u32);
                v.resize(20, 1);
                v
            })),
        ]
        .boxed(),
        I::SetVapicAddr => buf(any::<u64>().prop_map(|x| b(&x)).boxed()),
        I::SetMpState => buf((0u32..6)
            .prop_map(|m| b(&kvm_mp_state { mp_state: m }))
            .boxed()),
        I::X86SetupMce => {
            buf(
                prop_oneof![0u64..40, (0u64..40).prop_map(|n| n | 1 << 8), any::<u64>()]
                    .prop_map(|x| b(&x))
                    .boxed(),
            )
        }
        I::SetVcpuEvents => buf((0u32..5)
            .prop_map(|f| {
                b(&kvm_vcpu_events {
                    flags: f,
                    ..Default::default()
                })
            })
            .boxed()),
        _ => arg().boxed(),
    }
}

/// A template with 0-3 random bytes overwritten.
fn mutated(ioctl: Ioctl) -> impl Strategy<Value = Arg> {
    let flips = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ];
    (template(ioctl), flips).prop_map(|(arg, flips)| match arg {
        Arg::Buf(mut v) if !v.is_empty() && !flips.is_empty() => {
            for (i, x) in flips {
                let at = i.index(v.len());
                v[at] = x;
            }
            Arg::Buf(v)
        }
        other => other,
    })
}

fn ioctl_op() -> impl Strategy<Value = Op> {
    let any_op =
        (0usize..6, cmd(), arg(), prop::bool::weighted(0.05)).prop_map(|(fd, cmd, arg, ilp32)| {
            Op::Ioctl {
                fd,
                cmd,
                arg,
                ilp32,
            }
        });
    let known = prop::sample::select(Ioctl::ALL.to_vec()).prop_flat_map(|i| {
        (prop_oneof![3 => 0usize..4, 1 => 0usize..6], mutated(i)).prop_map(move |(fd, arg)| {
            Op::Ioctl {
                fd,
                cmd: i.cmd(),
                arg,
                ilp32: false,
            }
        })
    });
    prop_oneof![1 => any_op, 2 => known]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => ioctl_op(),
        1 => Just(Op::Open),
        1 => (0usize..6).prop_map(|fd| Op::Close { fd }),
        1 => (0usize..6, prop_oneof![Just(0i64), any::<i64>()], prop_oneof![Just(12288u64), any::<u64>()], 0u32..16)
            .prop_map(|(fd, off, len, prot)| Op::Segmap { fd, off, len, prot }),
        1 => (0usize..6, prop_oneof![Just(0u64), Just(8192), any::<u64>()],
            prop_oneof![Just(12288u64), Just(4096), any::<u64>()], prop::bool::weighted(0.1))
            .prop_map(|(fd, off, len, ilp32)| Op::Devmap { fd, off, len, ilp32 }),
    ]
}

fn case() -> impl Strategy<Value = (Setup, Vec<Op>)> {
    (
        prop_oneof![
            Just(Setup::Fresh),
            Just(Setup::Vm),
            Just(Setup::Devices),
            Just(Setup::Full),
            Just(Setup::Spare)
        ],
        prop::collection::vec(op(), 1..8),
    )
}

fn build(setup: Setup) -> (TestDriver, Vec<Dev>, FakeUser) {
    let d = driver();
    let mut um = FakeUser::new();
    um.map(BUF, BUF_LEN);
    um.map(SHORT, 64);
    um.map_ro(RO, 4096);
    let mut fds = vec![open(&d)];
    let vm = fds[0];
    let must = |cmd, arg, um: &mut FakeUser, fd| ioctl(&d, fd, cmd, arg, um).unwrap();
    match setup {
        Setup::Fresh => {}
        Setup::Vm => {
            must(Ioctl::CreateVm, 0, &mut um, vm);
        }
        Setup::Spare => {
            must(Ioctl::CreateVm, 0, &mut um, vm);
            fds.push(open(&d));
        }
        Setup::Devices | Setup::Full => {
            must(Ioctl::CreateVm, 0, &mut um, vm);
            if let Setup::Devices = setup {
                must(Ioctl::CreateIrqchip, 0, &mut um, vm);
                must(Ioctl::CreatePit, 0, &mut um, vm);
                let r = kvm_userspace_memory_region {
                    slot: 1,
                    flags: KVM_MEM_LOG_DIRTY_PAGES,
                    guest_phys_addr: 0x10_0000,
                    memory_size: 0x10_0000,
                    userspace_addr: 0x7f00_0000_0000,
                };
                um.put(BUF, &r);
                must(Ioctl::SetUserMemoryRegion, BUF, &mut um, vm);
            }
            let ids: &[u64] = if let Setup::Full = setup {
                &[0, 1]
            } else {
                &[0]
            };
            for id in ids {
                let v = open(&d);
                must(Ioctl::Clone, vm.0, &mut um, v);
                must(Ioctl::CreateVcpu, *id, &mut um, v);
                fds.push(v);
            }
            if let Setup::Full = setup {
                let c = open(&d);
                must(Ioctl::Clone, vm.0, &mut um, c);
                fds.push(c);
            }
        }
    }

    (d, fds, um)
}

fn place(um: &mut FakeUser, arg: &Arg, fds: &[Dev]) -> u64 {
    match arg {
        Arg::Buf(b) => {
            um.write(BUF, b);
            BUF
        }
        Arg::Short(b) => {
            let n = b.len().min(64);
            let at = SHORT + 64 - n as u64;
            um.write(at, &b[..n]);
            at
        }
        Arg::ReadOnly(b) => {
            let n = b.len().min(4096);
            um.write(RO, &b[..n]);
            RO
        }
        Arg::Value(v) => *v,
        Arg::DevOf(k) => fds.get(*k).map_or(Dev::new(KVM_MAJOR, 4242).0, |d| d.0),
    }
}

fn fd(fds: &[Dev], k: usize) -> Dev {
    // Index past the list: a minor that is not open.
    fds.get(k)
        .copied()
        .unwrap_or(Dev::new(KVM_MAJOR, 1000 + k as u32))
}

fn check_case(setup: Setup, ops: &[Op]) {
    let (d, mut fds, mut um) = build(setup);
    for op in ops {
        let before = (d.snapshot(), d.backend().world());
        let failed = match op {
            Op::Ioctl {
                fd: k,
                cmd,
                arg,
                ilp32,
            } => {
                let a = place(&mut um, arg, &fds);
                let mode = if *ilp32 { ILP32 } else { LP64 };
                d.ioctl(fd(&fds, *k), *cmd as i32, a, mode, &mut um)
                    .is_err()
            }
            Op::Open => {
                let mut dev = Dev::new(KVM_MAJOR, 0);
                let r = d.open(&mut dev, RDWR, OTYP_CHR);
                if r.is_ok() {
                    fds.push(dev);
                }
                r.is_err()
            }
            Op::Close { fd: k } => {
                let dev = fd(&fds, *k);
                let r = d.close(dev);
                if r.is_ok() {
                    fds.retain(|x| *x != dev);
                }
                r.is_err()
            }
            Op::Segmap {
                fd: k,
                off,
                len,
                prot,
            } => d.segmap(fd(&fds, *k), *off, *len, *prot).is_err(),
            Op::Devmap {
                fd: k,
                off,
                len,
                ilp32,
            } => {
                let mode = if *ilp32 { ILP32 } else { LP64 };
                d.devmap(fd(&fds, *k), *off, *len, mode).is_err()
            }
        };
        if failed {
            assert_eq!(
                (d.snapshot(), d.backend().world()),
                before,
                "{op:?} failed but changed state"
            );
        }
    }
    // Everything closes cleanly and the VM goes away.
    for dev in fds {
        d.close(dev).unwrap();
    }
    assert_eq!(d.usage(), 0);
    assert!(d.backend().world().vms.is_empty());
}

/// The same ops against the `Unimplemented` backend: no panic, and an error
/// leaves the handle model unchanged.
fn check_case_unimplemented(setup: Setup, ops: &[Op]) {
    let d = kvm_ioctl::Driver::new(FakePlatform::default(), kvm_ioctl::Unimplemented);
    let mut um = FakeUser::new();
    um.map(BUF, BUF_LEN);
    um.map(SHORT, 64);
    um.map_ro(RO, 4096);
    let mut fds = vec![open(&d)];
    let vm = fds[0];
    if !matches!(setup, Setup::Fresh) {
        ioctl(&d, vm, Ioctl::CreateVm, 0, &mut um).unwrap();
    }
    if matches!(setup, Setup::Devices | Setup::Full) {
        let v = open(&d);
        ioctl(&d, v, Ioctl::Clone, vm.0, &mut um).unwrap();
        ioctl(&d, v, Ioctl::CreateVcpu, 0, &mut um).unwrap();
        fds.push(v);
    }
    for op in ops {
        let before = d.snapshot();
        let failed = match op {
            Op::Ioctl {
                fd: k,
                cmd,
                arg,
                ilp32,
            } => {
                let a = place(&mut um, arg, &fds);
                let mode = if *ilp32 { ILP32 } else { LP64 };
                d.ioctl(fd(&fds, *k), *cmd as i32, a, mode, &mut um)
                    .is_err()
            }
            Op::Open => {
                let mut dev = Dev::new(KVM_MAJOR, 0);
                let r = d.open(&mut dev, RDWR, OTYP_CHR);
                if r.is_ok() {
                    fds.push(dev);
                }
                r.is_err()
            }
            Op::Close { fd: k } => {
                let dev = fd(&fds, *k);
                let r = d.close(dev);
                if r.is_ok() {
                    fds.retain(|x| *x != dev);
                }
                r.is_err()
            }
            Op::Segmap {
                fd: k,
                off,
                len,
                prot,
            } => d.segmap(fd(&fds, *k), *off, *len, *prot).is_err(),
            Op::Devmap {
                fd: k,
                off,
                len,
                ilp32,
            } => {
                let mode = if *ilp32 { ILP32 } else { LP64 };
                d.devmap(fd(&fds, *k), *off, *len, mode).is_err()
            }
        };
        if failed {
            assert_eq!(d.snapshot(), before, "{op:?} failed but changed state");
        }
    }
    for dev in fds {
        d.close(dev).unwrap();
    }
    assert_eq!(d.usage(), 0);
}

fn run(cases: u32) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let r = runner.run(
        &(case(), prop::bool::weighted(0.1)),
        |((setup, ops), unimpl)| {
            if unimpl {
                check_case_unimplemented(setup, &ops);
            } else {
                check_case(setup, &ops);
            }
            Ok(())
        },
    );
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// CI-size run; `KVM_IOCTL_FUZZ_CASES` overrides the count.
#[test]
fn fuzz_dispatcher() {
    let cases = std::env::var("KVM_IOCTL_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    run(cases);
}

/// The acceptance run: 1,000,000 cases (`--ignored`, use `--release`).
#[test]
#[ignore]
fn fuzz_dispatcher_million() {
    run(1_000_000);
}

/// `SEGMAP` sanity inside the fuzz harness itself (the setups map).
#[test]
fn setups_are_mappable() {
    for s in [Setup::Devices, Setup::Full] {
        let (d, fds, _) = build(s);
        assert_eq!(
            d.segmap(fds[1], 0, 12288, PROT_READ | PROT_WRITE | PROT_USER),
            Ok(())
        );
    }
}
