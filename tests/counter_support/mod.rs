//! Helpers for `tests/kstat_counters.rs`: a VM with one VCPU driven through
//! the ioctl dispatcher over the scripted VMX CPU (`tests/run_support`),
//! and snapshots of its two kstats read the way the kstat framework reads
//! a virtual named kstat: `ks_ndata` `kstat_named_t` entries at `ks_data`,
//! found by module/instance/name in the fake kstat framework, never through
//! the driver's own types.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kvm_ioctl::abi::*;
use kvm_ioctl::{Dev, Errno};
use kvm_kstat::{DataType, KstatNamed};

use super::run_support::*;
use super::vm_support::Proc;

/// Where the test VMM keeps ioctl arguments.
pub const BUF: u64 = 0x7fff_0000_0000;
/// The guest RAM's address in the VMM (2 MiB aligned, so a 2 MiB guest
/// range can be one host large page: the fake maps hva = pa).
pub const RAM: u64 = 0x7f00_0000_0000;

pub const KVM_EXIT_IO: u32 = 2;
pub const KVM_EXIT_HLT: u32 = 5;
pub const KVM_EXIT_MMIO: u32 = 6;
pub const KVM_EXIT_INTR: u32 = 10;
pub const KVM_EXIT_INTERNAL_ERROR: u32 = 17;

/// One VM, one VCPU (id 0), `ram` bytes of guest RAM at GPA 0 in slot 0.
pub struct Vm {
    pub d: RunDriver,
    pub p: Proc,
    pub vmfd: Dev,
    pub fd: Dev,
    pub run: &'static mut [u8],
    pub ram: u64,
}

impl Vm {
    /// `irqchip`: KVM_CREATE_IRQCHIP before the VCPU (PIC, IOAPIC, LAPIC).
    pub fn new(irqchip: bool, ram: u64) -> Vm {
        let p = Proc::default();
        p.map(BUF, 0x10000);
        p.map(RAM, ram as usize);
        let d = driver(&p);
        let vmfd = open(&d);
        ioctl(&d, vmfd, Ioctl::CreateVm, 0, &p).unwrap();
        if irqchip {
            assert_eq!(ioctl(&d, vmfd, Ioctl::CreateIrqchip, 0, &p), Ok(0));
        }
        set_slot(&d, &p, vmfd, ram);
        let fd = open(&d);
        assert_eq!(ioctl(&d, fd, Ioctl::Clone, vmfd.0, &p), Ok(0));
        assert_eq!(ioctl(&d, fd, Ioctl::CreateVcpu, 0, &p), Ok(0));
        let run = run_pages(&d, fd);
        Vm {
            d,
            p,
            vmfd,
            fd,
            run,
            ram,
        }
    }

    /// KVM_SET_USER_MEMORY_REGION of slot 0 (`size` 0 deletes it).
    pub fn set_slot(&self, size: u64) {
        set_slot(&self.d, &self.p, self.vmfd, size);
    }

    /// Queue scripted VM exits.
    pub fn exits(&self, exits: Vec<Exit>) {
        script(&self.d).exits.extend(exits);
    }

    /// Answers of the host's `signal_pending`, in order.
    pub fn signals(&self, answers: &[bool]) {
        script(&self.d).signals.extend(answers.iter().copied());
    }

    pub fn run(&mut self) -> Result<i32, Errno> {
        ioctl(&self.d, self.fd, Ioctl::Run, 0, &self.p)
    }

    pub fn exit_reason(&self) -> u32 {
        u32::from_le_bytes(self.run[8..12].try_into().unwrap())
    }

    pub fn regs(&self) -> kvm_regs {
        assert_eq!(ioctl(&self.d, self.fd, Ioctl::GetRegs, BUF, &self.p), Ok(0));
        self.p.get(BUF)
    }

    pub fn set_regs(&self, r: &kvm_regs) {
        self.p.put(BUF, r);
        assert_eq!(ioctl(&self.d, self.fd, Ioctl::SetRegs, BUF, &self.p), Ok(0));
    }

    pub fn sregs(&self) -> kvm_sregs {
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::GetSregs, BUF, &self.p),
            Ok(0)
        );
        self.p.get(BUF)
    }

    pub fn set_sregs(&self, s: &kvm_sregs) {
        self.p.put(BUF, s);
        assert_eq!(
            ioctl(&self.d, self.fd, Ioctl::SetSregs, BUF, &self.p),
            Ok(0)
        );
    }

    /// Flat 32-bit protected mode, paging off, CPL 0, RIP = `rip`, IF set.
    pub fn protected_mode(&self, rip: u64) {
        let mut s = self.sregs();
        flat_protected_mode(&mut s);
        self.set_sregs(&s);
        let mut r = self.regs();
        r.rip = rip;
        r.rflags = 0x202;
        self.set_regs(&r);
    }

    /// EPT table pages the fake MMU allocator has handed out and not
    /// taken back (the oracle for `ept-table-pages`).
    pub fn table_pages(&self) -> u64 {
        self.d.backend().services().tables.live() as u64
    }

    /// Both kstats now.
    pub fn counters(&self) -> Counters {
        Counters::read(&self.d)
    }
}

/// KVM_SET_USER_MEMORY_REGION of slot 0: `size` bytes at GPA 0 backed by
/// [`RAM`] (`size` 0 deletes the slot).
pub fn set_slot(d: &RunDriver, p: &Proc, vmfd: Dev, size: u64) {
    p.put(
        BUF,
        &kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: RAM,
        },
    );
    assert_eq!(ioctl(d, vmfd, Ioctl::SetUserMemoryRegion, BUF, p), Ok(0));
}

/// One kstat as the framework holds it: (module `kvm`, instance, name) and
/// its `kstat_named_t` array.
pub struct KstatView {
    pub instance: i32,
    pub name: String,
    pub entries: Vec<(String, DataType, u64)>,
}

/// Every installed kstat of the driver, read through `ks_data`/`ks_ndata`.
pub fn kstats(d: &RunDriver) -> Vec<KstatView> {
    let s = d.backend().services();
    let live = s.kstats.live.lock().unwrap();
    live.values()
        .map(|rec| {
            // SAFETY: an installed virtual kstat's data is `ndata`
            // contiguous `kstat_named_t`s that live until `delete`, and the
            // record is still installed (we hold the framework's lock).
            let named = unsafe {
                std::slice::from_raw_parts(rec.data as *const KstatNamed, rec.ndata as usize)
            };
            KstatView {
                instance: rec.instance,
                name: rec.name.clone(),
                entries: named
                    .iter()
                    .map(|k| (k.name().to_string(), k.data_type().unwrap(), k.get()))
                    .collect(),
            }
        })
        .collect()
}

/// The `uint64` stats of the `vm` kstat (keys `vm:<name>`) and of VCPU 0's
/// `vcpu-<vm id>` kstat (keys `vcpu:<name>`). String stats are left out:
/// their value is a pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    pub fn read(d: &RunDriver) -> Counters {
        let mut m = BTreeMap::new();
        for k in kstats(d) {
            let prefix = if k.name == "vm" {
                "vm"
            } else if k.name.starts_with("vcpu-") && k.instance == 0 {
                "vcpu"
            } else {
                continue;
            };
            for (name, ty, v) in k.entries {
                if ty == DataType::Uint64 {
                    m.insert(format!("{prefix}:{name}"), v);
                }
            }
        }
        Counters(m)
    }

    /// The value of `key` (`vm:<name>` or `vcpu:<name>`); panics if absent.
    pub fn get(&self, key: &str) -> u64 {
        *self.0.get(key).unwrap_or_else(|| panic!("no stat {key}"))
    }

    /// Every stat whose value differs from `before`, with the signed change
    /// (gauges such as `lpages` go down too).
    pub fn moved_since(&self, before: &Counters) -> BTreeMap<String, i64> {
        assert_eq!(
            self.0.keys().collect::<Vec<_>>(),
            before.0.keys().collect::<Vec<_>>(),
            "the set of stats changed"
        );
        self.0
            .iter()
            .filter_map(|(k, &v)| {
                let b = before.0[k];
                (v != b).then(|| (k.clone(), v.wrapping_sub(b) as i64))
            })
            .collect()
    }
}

/// Asserts that exactly the stats in `want` moved between `before` and
/// `after`, each by the given amount.
#[track_caller]
pub fn assert_moved(before: &Counters, after: &Counters, want: &[(&str, i64)]) {
    let got = after.moved_since(before);
    let want: BTreeMap<String, i64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want, "stats that moved (left) vs expected (right)");
}

/// I/O exit qualification: size 1/2/4, IN or OUT, port (SDM table 27-5).
pub fn io_qual(port: u16, size: u64, input: bool) -> u64 {
    (u64::from(port) << 16) | (u64::from(input) << 3) | (size - 1)
}

/// An OUT to COM1 (0x3f8): no in-kernel device, so KVM_RUN returns with
/// KVM_EXIT_IO. The tests end a KVM_RUN with it.
pub fn out_to_user() -> Exit {
    Exit::new(
        kvm_vmx::exit_reason::ExitReason::IoInstruction,
        1,
        io_qual(0x3f8, 1, false),
    )
}
