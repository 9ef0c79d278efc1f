//! The walker against a reference model written here from the SDM vol. 3
//! ch. 4 rules, over random page tables in every paging mode.

use std::collections::HashMap;

use kvm_mmu::platform::{GuestPhys, PteSize};
use kvm_mmu::walker::{
    Access, AccessKind, CpuFeatures, PageSize, PagingContext, PagingMode, PdpteError, PfErrorCode,
    Privilege, Translation, WalkError, load_pae_pdptes, translate,
};
use proptest::prelude::*;

const MMIO_BASE: u64 = 0xfec0_0000;
const MMIO_END: u64 = 0xff00_0000;

/// Guest-physical memory as a map of naturally aligned entries.
#[derive(Clone, Debug, Default, PartialEq)]
struct Mem {
    entries: HashMap<u64, u64>,
    fail_cmpxchg: u32,
}

impl GuestPhys for Mem {
    fn read_pte(&mut self, gpa: u64, _size: PteSize) -> Option<u64> {
        if (MMIO_BASE..MMIO_END).contains(&gpa) {
            return None;
        }
        Some(self.entries.get(&gpa).copied().unwrap_or(0))
    }
    fn cmpxchg_pte(&mut self, gpa: u64, size: PteSize, old: u64, new: u64) -> Option<bool> {
        let cur = self.read_pte(gpa, size)?;
        if self.fail_cmpxchg > 0 {
            // Another "VCPU" touches the entry: set its PWT bit.
            self.fail_cmpxchg -= 1;
            self.entries.insert(gpa, cur | 1 << 3);
            return Some(false);
        }
        if cur != old {
            return Some(false);
        }
        self.entries.insert(gpa, new);
        Some(true)
    }
}

fn mask(hi: u32, lo: u32) -> u64 {
    (lo..=hi).fold(0, |m, b| m | 1u64 << b)
}

/// The reference: SDM §4.3 (32-bit), §4.4 (PAE), §4.5 (4-level), §4.6
/// (rights), §4.7 (error code), §4.8 (A/D), each mode spelled out.
fn reference(
    mem: &mut Mem,
    ctx: &PagingContext,
    gva: u64,
    acc: Access,
) -> Result<Translation, WalkError> {
    let m = u32::from(ctx.features.maxphyaddr);
    let write = acc.kind == AccessKind::Write;
    let fetch = acc.kind == AccessKind::Fetch;
    let user = acc.privilege == Privilege::User;
    let long_or_pae = matches!(ctx.mode, PagingMode::Pae { .. } | PagingMode::Level4);
    let mut ec = PfErrorCode::empty();
    if write {
        ec |= PfErrorCode::WRITE;
    }
    if user {
        ec |= PfErrorCode::USER;
    }
    if fetch && (ctx.smep || (long_or_pae && ctx.nxe)) {
        ec |= PfErrorCode::FETCH;
    }
    let np = Err(WalkError::PageFault(ec));
    let rsvd = Err(WalkError::PageFault(
        ec | PfErrorCode::PRESENT | PfErrorCode::RSVD,
    ));
    let prot = Err(WalkError::PageFault(ec | PfErrorCode::PRESENT));

    // (address of entry, value) for every entry with rights bits.
    let mut chain: Vec<(u64, u64)> = Vec::new();
    let gpa;
    let size;
    let wide;
    match ctx.mode {
        PagingMode::Off => {
            return Ok(Translation {
                gpa: gva & 0xffff_ffff,
                size: PageSize::Size4K,
                user: true,
                writable: true,
                no_exec: false,
            });
        }
        PagingMode::Bits32 => {
            wide = PteSize::Four;
            let pde_at = (ctx.cr3 & 0xffff_f000) + ((gva >> 22) & 0x3ff) * 4;
            let Some(pde) = mem.read_pte(pde_at, wide) else {
                return np;
            };
            if pde & 1 == 0 {
                return np;
            }
            if ctx.pse && pde & 0x80 != 0 {
                let pa_hi_bits = if ctx.features.pse36 {
                    m.min(40) - 32
                } else {
                    0
                };
                if pde & mask(21, 13 + pa_hi_bits) != 0 {
                    return rsvd;
                }
                chain.push((pde_at, pde));
                gpa = (pde & 0xffc0_0000) | (((pde >> 13) & 0xff) << 32) | (gva & 0x3f_ffff);
                size = PageSize::Size4M;
            } else {
                chain.push((pde_at, pde));
                let pte_at = (pde & 0xffff_f000) + ((gva >> 12) & 0x3ff) * 4;
                let Some(pte) = mem.read_pte(pte_at, wide) else {
                    return np;
                };
                if pte & 1 == 0 {
                    return np;
                }
                chain.push((pte_at, pte));
                gpa = (pte & 0xffff_f000) | (gva & 0xfff);
                size = PageSize::Size4K;
            }
        }
        PagingMode::Pae { .. } | PagingMode::Level4 => {
            wide = PteSize::Eight;
            let frame = mask(m - 1, 12);
            let xd_rsvd = if ctx.nxe { 0 } else { 1 << 63 };
            let common = if matches!(ctx.mode, PagingMode::Level4) {
                mask(51, m)
            } else {
                mask(62, m)
            } | xd_rsvd;
            let mut table;
            let mut level;
            if let PagingMode::Pae { pdptes } = ctx.mode {
                let pdpte = pdptes[((gva >> 30) & 3) as usize];
                if pdpte & 1 == 0 {
                    return np;
                }
                table = pdpte & frame;
                level = 2;
            } else {
                let sext = ((gva << 16) as i64 >> 16) as u64;
                if sext != gva {
                    return Err(WalkError::NonCanonical);
                }
                table = ctx.cr3 & frame;
                level = 4;
            }
            loop {
                let at = table + ((gva >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
                let Some(e) = mem.read_pte(at, wide) else {
                    return np;
                };
                if e & 1 == 0 {
                    return np;
                }
                let ps = e & 0x80 != 0;
                let extra = match level {
                    4 => 0x80,
                    3 if ps && !matches!(ctx.mode, PagingMode::Level4) => 0,
                    3 if ps && !ctx.features.gbpages => 0x80,
                    3 if ps => mask(29, 13),
                    2 if ps => mask(20, 13),
                    _ => 0,
                };
                if e & (common | extra) != 0 {
                    return rsvd;
                }
                chain.push((at, e));
                if level == 1 {
                    gpa = (e & frame) | (gva & 0xfff);
                    size = PageSize::Size4K;
                    break;
                }
                if level == 2 && ps {
                    gpa = (e & frame & !0x1f_ffff) | (gva & 0x1f_ffff);
                    size = PageSize::Size2M;
                    break;
                }
                if level == 3 && ps {
                    gpa = (e & frame & !0x3fff_ffff) | (gva & 0x3fff_ffff);
                    size = PageSize::Size1G;
                    break;
                }
                table = e & frame;
                level -= 1;
            }
        }
    }

    let us = chain.iter().all(|&(_, e)| e & 4 != 0);
    let rw = chain.iter().all(|&(_, e)| e & 2 != 0);
    let xd = long_or_pae && ctx.nxe && chain.iter().any(|&(_, e)| e & (1 << 63) != 0);
    let smap_ok = match acc.privilege {
        Privilege::Supervisor { smap_override } => !ctx.smap || smap_override,
        Privilege::User => true,
    };
    let ok = if user {
        match acc.kind {
            AccessKind::Read => us,
            AccessKind::Write => us && rw,
            AccessKind::Fetch => us && !xd,
        }
    } else {
        match acc.kind {
            AccessKind::Read => !us || smap_ok,
            AccessKind::Write if us => smap_ok && (!ctx.wp || rw),
            AccessKind::Write => !ctx.wp || rw,
            AccessKind::Fetch if us => !ctx.smep && !xd,
            AccessKind::Fetch => !xd,
        }
    };
    if !ok {
        return prot;
    }
    // A on every entry, D on the leaf for a write; only on success.
    let n = chain.len();
    for (i, &(at, e)) in chain.iter().enumerate() {
        let mut v = e | 0x20;
        if i + 1 == n && write {
            v |= 0x40;
        }
        mem.entries.insert(at, v);
    }
    Ok(Translation {
        gpa,
        size,
        user: us,
        writable: rw,
        no_exec: xd,
    })
}

#[derive(Clone, Debug)]
struct EntrySpec {
    flags: u64,
    present: bool,
    xd: bool,
    addr: u8,
    high: u64,
    rsvd_bit: Option<u8>,
}

fn entry_spec() -> impl Strategy<Value = EntrySpec> {
    (
        0u64..0x200,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.3),
        0u8..12,
        prop::bool::weighted(0.15),
        0u64..0x10,
        prop::option::weighted(0.12, 0u8..64),
    )
        .prop_map(|(flags, present, xd, addr, hi, high, rsvd_bit)| EntrySpec {
            flags,
            present,
            xd,
            addr,
            high: if hi { high } else { 0 },
            rsvd_bit,
        })
}

impl EntrySpec {
    fn value(&self, wide: bool) -> u64 {
        let base = match self.addr {
            0..=7 => 0x1000 * (u64::from(self.addr) + 1),
            8 => MMIO_BASE,
            k => 0x4000_0000 * u64::from(k - 9),
        };
        let mut v = (self.flags & !1) | base | u64::from(self.present);
        if wide {
            v |= self.high << 32;
            if self.xd {
                v |= 1 << 63;
            }
        } else {
            // PSE-36 address bits 39:32 live in bits 20:13.
            v |= (self.high & 0xff) << 13;
        }
        if let Some(b) = self.rsvd_bit {
            v |= 1 << b;
        }
        if wide { v } else { v & 0xffff_ffff }
    }
}

#[derive(Clone, Debug)]
struct Case {
    mode: u8,
    wp: bool,
    pse: bool,
    nxe: bool,
    smep: bool,
    smap: bool,
    pse36: bool,
    gbpages: bool,
    maxphyaddr: u8,
    cr3: u8,
    gva: u64,
    canonical: bool,
    kind: u8,
    user: bool,
    ac: bool,
    entries: Vec<EntrySpec>,
    pdptes: Vec<EntrySpec>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            0u8..4,
            any::<[bool; 7]>(),
            prop::sample::select(vec![36u8, 39, 40, 46, 52]),
            0u8..9,
        ),
        (
            any::<u64>(),
            prop::bool::weighted(0.9),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
        ),
        prop::collection::vec(entry_spec(), 4),
        prop::collection::vec(entry_spec(), 4),
    )
        .prop_map(
            |((mode, f, maxphyaddr, cr3), (gva, canonical, kind, user, ac), entries, pdptes)| {
                Case {
                    mode,
                    wp: f[0],
                    pse: f[1],
                    nxe: f[2],
                    smep: f[3],
                    smap: f[4],
                    pse36: f[5],
                    gbpages: f[6],
                    maxphyaddr,
                    cr3,
                    gva,
                    canonical,
                    kind,
                    user,
                    ac,
                    entries,
                    pdptes,
                }
            },
        )
}

/// Build the context and lay the entries along the path of `gva`, so most
/// walks go deep; each level reads the table the previous entry names.
fn build(c: &Case) -> (Mem, PagingContext, u64, Access) {
    let wide = c.mode >= 2;
    let mut gva = if c.mode == 3 {
        c.gva
    } else {
        c.gva & 0xffff_ffff
    };
    if c.mode == 3 && c.canonical {
        gva = ((gva << 16) as i64 >> 16) as u64;
    }
    let cr3 = 0x1000 * (u64::from(c.cr3) + 1);
    let mut pdptes = [0u64; 4];
    for (p, s) in pdptes.iter_mut().zip(&c.pdptes) {
        // PDPTE registers were validated at load: keep only P and an address.
        *p = (s.value(true) & 0x000f_ffff_ffff_f000 & ((1 << c.maxphyaddr) - 1))
            | u64::from(s.present);
    }
    let mode = match c.mode {
        0 => PagingMode::Off,
        1 => PagingMode::Bits32,
        2 => PagingMode::Pae { pdptes },
        _ => PagingMode::Level4,
    };
    let ctx = PagingContext {
        mode,
        cr3,
        wp: c.wp,
        pse: c.pse,
        nxe: c.nxe,
        smep: c.smep,
        smap: c.smap,
        features: CpuFeatures {
            maxphyaddr: c.maxphyaddr,
            pse36: c.pse36,
            gbpages: c.gbpages,
        },
    };
    let mut mem = Mem::default();
    let (levels, mut table): (u32, u64) = match c.mode {
        1 => (2, cr3),
        2 => (
            2,
            pdptes[((gva >> 30) & 3) as usize] & 0x000f_ffff_ffff_f000,
        ),
        3 => (4, cr3),
        _ => (0, 0),
    };
    for (i, level) in (1..=levels).rev().enumerate() {
        let v = c.entries[i].value(wide);
        let at = if wide {
            table + ((gva >> (12 + 9 * (level - 1))) & 0x1ff) * 8
        } else {
            table + ((gva >> (12 + 10 * (level - 1))) & 0x3ff) * 4
        };
        mem.entries.entry(at).or_insert(v);
        let cur = mem.entries[&at];
        table = if wide {
            cur & 0x000f_ffff_ffff_f000
        } else {
            cur & 0xffff_f000
        };
    }
    let kind = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch][usize::from(c.kind)];
    let privilege = if c.user {
        Privilege::User
    } else {
        Privilege::Supervisor {
            smap_override: c.ac,
        }
    };
    (mem, ctx, gva, Access { kind, privilege })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12_000, ..ProptestConfig::default() })]
    #[test]
    fn walker_matches_sdm_model(c in case()) {
        let (mem, ctx, gva, acc) = build(&c);
        let mut a = mem.clone();
        let mut b = mem;
        let got = translate(&mut a, &ctx, gva, acc);
        let want = reference(&mut b, &ctx, gva, acc);
        prop_assert_eq!(got, want);
        prop_assert_eq!(a.entries, b.entries);
    }
}

fn ctx4() -> PagingContext {
    PagingContext {
        mode: PagingMode::Level4,
        cr3: 0x1000,
        wp: true,
        pse: false,
        nxe: true,
        smep: true,
        smap: true,
        features: CpuFeatures {
            maxphyaddr: 40,
            pse36: true,
            gbpages: true,
        },
    }
}

/// A 4-level mapping of gva 0 → 0x5000 with leaf flags `leaf`.
fn mem4(leaf: u64) -> Mem {
    let mut m = Mem::default();
    m.entries.insert(0x1000, 0x2007);
    m.entries.insert(0x2000, 0x3007);
    m.entries.insert(0x3000, 0x4007);
    m.entries.insert(0x4000, 0x5000 | leaf);
    m
}

const SUP: Privilege = Privilege::Supervisor {
    smap_override: false,
};

#[test]
fn every_fault_case_has_its_error_code() {
    let ctx = ctx4();
    let r =
        |leaf, kind, privilege| translate(&mut mem4(leaf), &ctx, 0x123, Access { kind, privilege });
    let pf = |bits: u32| Err(WalkError::PageFault(PfErrorCode::from_bits_truncate(bits)));
    // not present: P=0
    assert_eq!(r(0x6, AccessKind::Read, SUP), pf(0));
    assert_eq!(r(0x6, AccessKind::Write, Privilege::User), pf(0b110));
    // user access to a supervisor page
    assert_eq!(r(0x3, AccessKind::Read, Privilege::User), pf(0b101));
    // user write to a read-only page
    assert_eq!(r(0x5, AccessKind::Write, Privilege::User), pf(0b111));
    // supervisor write to a read-only page with CR0.WP = 1
    assert_eq!(r(0x1, AccessKind::Write, SUP), pf(0b011));
    // NX fetch
    assert_eq!(r(0x3 | 1 << 63, AccessKind::Fetch, SUP), pf(0b10001));
    // SMEP: supervisor fetch from a user page
    assert_eq!(r(0x7, AccessKind::Fetch, SUP), pf(0b10001));
    // SMAP: supervisor read of a user page without AC
    assert_eq!(r(0x7, AccessKind::Read, SUP), pf(0b001));
    assert!(
        r(
            0x7,
            AccessKind::Read,
            Privilege::Supervisor {
                smap_override: true
            }
        )
        .is_ok()
    );
    // reserved bit (bit 45 with MAXPHYADDR 40)
    assert_eq!(
        r(0x7 | 1 << 45, AccessKind::Read, Privilege::User),
        pf(0b1101)
    );
    // success sets A everywhere and D on the leaf
    let mut m = mem4(0x7);
    let t = translate(
        &mut m,
        &ctx,
        0x123,
        Access {
            kind: AccessKind::Write,
            privilege: Privilege::User,
        },
    )
    .unwrap();
    assert_eq!(t.gpa, 0x5123);
    assert_eq!(m.entries[&0x4000], 0x5067);
    assert_eq!(m.entries[&0x1000], 0x2027);
    // non-canonical
    let mut m = mem4(0x7);
    let acc = Access {
        kind: AccessKind::Read,
        privilege: Privilege::User,
    };
    assert_eq!(
        translate(&mut m, &ctx, 1 << 47, acc),
        Err(WalkError::NonCanonical)
    );
}

#[test]
fn ad_update_retries_then_gives_up() {
    let ctx = ctx4();
    let acc = Access {
        kind: AccessKind::Read,
        privilege: Privilege::User,
    };
    let mut m = mem4(0x7);
    m.fail_cmpxchg = 2;
    assert_eq!(
        translate(&mut m, &ctx, 0x10, acc).map(|t| t.gpa),
        Ok(0x5010)
    );
    assert_eq!(m.entries[&0x1000], 0x202f); // PWT from the racer, then A
    let mut m = mem4(0x7);
    m.fail_cmpxchg = 100;
    assert_eq!(
        translate(&mut m, &ctx, 0x10, acc),
        Err(WalkError::Contended)
    );
}

#[test]
fn pse36_and_from_registers() {
    let feats = CpuFeatures {
        maxphyaddr: 36,
        pse36: true,
        gbpages: false,
    };
    // CR0.PG|WP, CR4.PSE
    let ctx = PagingContext::from_registers(0x8001_0001, 0x1000, 0x10, 0, [0; 4], feats);
    assert_eq!(ctx.mode, PagingMode::Bits32);
    let mut m = Mem::default();
    // 4 MiB page at PA 0x3_0040_0000 (PA bits 35:32 = 3 in PDE bits 16:13)
    m.entries.insert(0x1000, 0x0040_0000 | 3 << 13 | 0x87);
    let acc = Access {
        kind: AccessKind::Read,
        privilege: Privilege::User,
    };
    let t = translate(&mut m, &ctx, 0x12_3456, acc).unwrap();
    assert_eq!((t.gpa, t.size), (0x3_0052_3456, PageSize::Size4M));
    // bit 17 is above MAXPHYADDR 36: reserved
    m.entries.insert(0x1000, 0x0040_0000 | 1 << 17 | 0x87);
    assert_eq!(
        translate(&mut m, &ctx, 0x12_3456, acc),
        Err(WalkError::PageFault(PfErrorCode::from_bits_truncate(
            0b1101
        )))
    );
    let pae = PagingContext::from_registers(0x8000_0001, 0, 0x20, 0, [1; 4], feats);
    assert!(matches!(pae.mode, PagingMode::Pae { .. }));
    let lm = PagingContext::from_registers(0x8000_0001, 0, 0x20, 0x500, [0; 4], feats);
    assert_eq!(lm.mode, PagingMode::Level4);
    let off = PagingContext::from_registers(0x1, 0, 0, 0, [0; 4], feats);
    let t = translate(&mut m, &off, 0x1_2345_6789, acc).unwrap();
    assert_eq!(t.gpa, 0x2345_6789);
}

/// The generator reaches every outcome in every mode (so the property test
/// above is not vacuous).
#[test]
fn generator_covers_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..8_000 {
        let c = case().new_tree(&mut runner).unwrap().current();
        let (mut mem, ctx, gva, acc) = build(&c);
        let outcome = match translate(&mut mem, &ctx, gva, acc) {
            Ok(t) => format!("{:?}", t.size),
            Err(WalkError::PageFault(code)) => format!("pf{:02x}", code.bits() & 0b1001),
            Err(e) => format!("{e:?}"),
        };
        seen.insert((c.mode.min(3), outcome));
    }
    let want: &[(u8, &str)] = &[
        (0, "Size4K"),
        (1, "Size4K"),
        (1, "Size4M"),
        (1, "pf00"),
        (1, "pf01"),
        (1, "pf09"),
        (2, "Size4K"),
        (2, "Size2M"),
        (2, "pf00"),
        (2, "pf01"),
        (2, "pf09"),
        (3, "Size4K"),
        (3, "Size2M"),
        (3, "Size1G"),
        (3, "pf00"),
        (3, "pf01"),
        (3, "pf09"),
        (3, "NonCanonical"),
    ];
    for (mode, o) in want {
        assert!(
            seen.contains(&(*mode, o.to_string())),
            "mode {mode} never gave {o}: {seen:?}"
        );
    }
}

#[test]
fn pae_pdpte_load() {
    let mut m = Mem::default();
    m.entries.insert(0x1020, 0x2001);
    m.entries.insert(0x1028, 0x3000); // not present: anything goes
    m.entries.insert(0x1030, 0x4001);
    assert_eq!(
        load_pae_pdptes(&mut m, 0x1020, 36),
        Ok([0x2001, 0x3000, 0x4001, 0])
    );
    m.entries.insert(0x1038, 0x5001 | 1 << 1); // bit 1 reserved
    assert_eq!(
        load_pae_pdptes(&mut m, 0x1020, 36),
        Err(PdpteError::Reserved)
    );
    m.entries.insert(0x1038, 0x5001 | 1 << 36); // above MAXPHYADDR
    assert_eq!(
        load_pae_pdptes(&mut m, 0x1020, 36),
        Err(PdpteError::Reserved)
    );
    assert_eq!(
        load_pae_pdptes(&mut m, 0x1020, 40).map(|p| p[3]),
        Ok(0x10_0000_5001)
    );
    assert_eq!(
        load_pae_pdptes(&mut m, MMIO_BASE, 40),
        Err(PdpteError::NotInRam)
    );
}
