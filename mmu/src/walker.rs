//! The guest page-table walker: port of `walk_addr` and `gva_to_gpa` of
//! `kvm_paging_tmpl.h` (both the `PTTYPE 32` and `PTTYPE 64` instances),
//! rewritten from the SDM vol. 3 ch. 4 rules rather than from the C:
//! * §4.1–4.5: the paging modes (none, 32-bit with PSE/PSE-36, PAE,
//!   4-level) and their entry formats and reserved bits;
//! * §4.6: access rights (U/S, R/W with CR0.WP, XD with EFER.NXE,
//!   SMEP, SMAP with EFLAGS.AC);
//! * §4.7: the page-fault error code (P, W/R, U/S, RSVD, I/D);
//! * §4.8: accessed and dirty flags.
//!
//! Differences from the C, all towards the SDM: the walk sets A (and D)
//! only when the translation succeeds (the C set A level by level even when
//! a lower level then faulted); SMEP/SMAP and CR0.WP for supervisor writes
//! are honoured; the I/D bit is reported only when SMEP or PAE-with-NXE is
//! on; PSE-36 address bits are limited by MAXPHYADDR. 5-level paging and
//! protection keys are not supported (the port never exposes them).

use bitflags::bitflags;

use crate::platform::{GuestPhys, PteSize};

bitflags! {
    /// The #PF error code (SDM §4.7).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PfErrorCode: u32 {
        /// P: 0 = not-present page, 1 = protection (or reserved-bit) fault.
        const PRESENT = 1 << 0;
        /// W/R: the access was a write.
        const WRITE = 1 << 1;
        /// U/S: the access was a user-mode access.
        const USER = 1 << 2;
        /// RSVD: a reserved bit was set in some paging-structure entry.
        const RSVD = 1 << 3;
        /// I/D: instruction fetch (only with SMEP or PAE/4-level with NXE).
        const FETCH = 1 << 4;
    }
}

bitflags! {
    /// Bits common to the guest's paging-structure entries (SDM tables
    /// 4-4..4-20).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PteFlags: u64 {
        /// Present.
        const P = 1 << 0;
        /// Read/write.
        const RW = 1 << 1;
        /// User/supervisor.
        const US = 1 << 2;
        /// Page-level write-through.
        const PWT = 1 << 3;
        /// Page-level cache disable.
        const PCD = 1 << 4;
        /// Accessed.
        const A = 1 << 5;
        /// Dirty (leaves only).
        const D = 1 << 6;
        /// Page size (PDE/PDPTE) or PAT (PTE).
        const PS = 1 << 7;
        /// Global (leaves only).
        const G = 1 << 8;
        /// Execute-disable (PAE and 4-level with EFER.NXE).
        const XD = 1 << 63;
    }
}

/// Which paging structures translate linear addresses (CR0.PG, CR4.PAE,
/// EFER.LMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0 (real mode or protected mode without paging): linear =
    /// physical, truncated to 32 bits.
    Off,
    /// 32-bit paging (CR4.PAE = 0).
    Bits32,
    /// PAE paging with the four PDPTEs the CPU loaded with CR3 (see
    /// [`load_pae_pdptes`]).
    Pae {
        /// PDPTE registers.
        pdptes: [u64; 4],
    },
    /// 4-level paging (IA-32e mode).
    Level4,
}

/// CPUID facts the walk depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// MAXPHYADDR (CPUID 8000_0008H:EAX bits 7:0); clamped to 32..=52.
    pub maxphyaddr: u8,
    /// CPUID.01H:EDX.PSE-36.
    pub pse36: bool,
    /// CPUID.80000001H:EDX.Page1GB.
    pub gbpages: bool,
}

/// Everything about the VCPU's paging state a walk needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingContext {
    /// The paging mode.
    pub mode: PagingMode,
    /// CR3.
    pub cr3: u64,
    /// CR0.WP.
    pub wp: bool,
    /// CR4.PSE (32-bit paging only).
    pub pse: bool,
    /// EFER.NXE.
    pub nxe: bool,
    /// CR4.SMEP.
    pub smep: bool,
    /// CR4.SMAP.
    pub smap: bool,
    /// CPUID facts.
    pub features: CpuFeatures,
}

const CR0_PG: u64 = 1 << 31;
const CR0_WP: u64 = 1 << 16;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

impl PagingContext {
    /// Decode the control registers. `pdptes` are the VCPU's PDPTE registers
    /// (used only in PAE mode).
    pub fn from_registers(
        cr0: u64,
        cr3: u64,
        cr4: u64,
        efer: u64,
        pdptes: [u64; 4],
        features: CpuFeatures,
    ) -> Self {
        let mode = if cr0 & CR0_PG == 0 {
            PagingMode::Off
        } else if cr4 & CR4_PAE == 0 {
            PagingMode::Bits32
        } else if efer & EFER_LMA != 0 {
            PagingMode::Level4
        } else {
            PagingMode::Pae { pdptes }
        };
        PagingContext {
            mode,
            cr3,
            wp: cr0 & CR0_WP != 0,
            pse: cr4 & CR4_PSE != 0,
            nxe: efer & EFER_NXE != 0,
            smep: cr4 & CR4_SMEP != 0,
            smap: cr4 & CR4_SMAP != 0,
            features,
        }
    }

    fn maxphyaddr(&self) -> u32 {
        u32::from(self.features.maxphyaddr).clamp(32, 52)
    }

    /// Whether XD bits are honoured (SDM §4.6: PAE/4-level with NXE).
    fn nx_active(&self) -> bool {
        self.nxe && matches!(self.mode, PagingMode::Pae { .. } | PagingMode::Level4)
    }
}

/// The kind of access being translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Fetch,
}

/// Who makes the access (SDM §4.6 "supervisor-mode" vs "user-mode" access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// CPL 3 and not an implicit supervisor access.
    User,
    /// CPL < 3, or an implicit supervisor access (GDT, TSS, ...).
    Supervisor {
        /// SMAP does not apply: an explicit access with EFLAGS.AC = 1.
        smap_override: bool,
    },
}

/// One access to translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Read, write or fetch.
    pub kind: AccessKind,
    /// User or supervisor.
    pub privilege: Privilege,
}

/// Size of the page a translation went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB (PAE/4-level PDE with PS).
    Size2M,
    /// 4 MiB (32-bit PDE with PS).
    Size4M,
    /// 1 GiB (4-level PDPTE with PS).
    Size1G,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The guest-physical address.
    pub gpa: u64,
    /// Size of the page.
    pub size: PageSize,
    /// U/S = 1 at every level (user-mode address).
    pub user: bool,
    /// R/W = 1 at every level.
    pub writable: bool,
    /// XD in effect at some level.
    pub no_exec: bool,
}

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// Deliver #PF with this error code (CR2 = the linear address).
    PageFault(PfErrorCode),
    /// Non-canonical address in 4-level paging: #GP (or #SS), not #PF.
    NonCanonical,
    /// The A/D update lost the compare-exchange race too many times (another
    /// VCPU keeps rewriting the entry): re-execute the instruction.
    Contended,
}

/// Bits `hi..=lo` set.
const fn bits(hi: u32, lo: u32) -> u64 {
    if hi < lo || hi > 63 {
        0
    } else {
        (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
    }
}

/// Reserved bits of the PDPTE registers loaded in PAE mode (SDM table 4-8).
pub fn pae_pdpte_reserved(maxphyaddr: u8) -> u64 {
    let m = u32::from(maxphyaddr).clamp(32, 52);
    bits(63, m) | bits(8, 5) | bits(2, 1)
}

/// Why [`load_pae_pdptes`] refused CR3: either way the MOV to CR3 (or CR0,
/// CR4) raises #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdpteError {
    /// A present PDPTE has reserved bits set.
    Reserved,
    /// The PDPT is not in guest RAM.
    NotInRam,
}

/// Read the four PDPTEs at CR3 bits 31:5 (what MOV CR3 does in PAE mode,
/// SDM §4.4.1; `load_pdptrs` in kvm_x86.c).
pub fn load_pae_pdptes<M: GuestPhys>(
    mem: &mut M,
    cr3: u64,
    maxphyaddr: u8,
) -> Result<[u64; 4], PdpteError> {
    let base = cr3 & bits(31, 5);
    let rsvd = pae_pdpte_reserved(maxphyaddr);
    let mut out = [0u64; 4];
    for (i, slot) in (0u64..).zip(out.iter_mut()) {
        let v = mem
            .read_pte(base + i * 8, PteSize::Eight)
            .ok_or(PdpteError::NotInRam)?;
        if v & PteFlags::P.bits() != 0 && v & rsvd != 0 {
            return Err(PdpteError::Reserved);
        }
        *slot = v;
    }
    Ok(out)
}

/// How many times a walk restarts after losing an A/D compare-exchange.
const MAX_RETRIES: u32 = 8;

/// One paging-structure entry the walk used.
#[derive(Clone, Copy, Default)]
struct Used {
    gpa: u64,
    value: u64,
}

/// The entries of one walk (at most 4; fixed size on the stack).
struct Path {
    used: [Used; 4],
    len: usize,
}

impl Path {
    fn push(&mut self, u: Used) {
        if let Some(slot) = self.used.get_mut(self.len) {
            *slot = u;
            self.len += 1;
        }
    }
    fn entries(&self) -> &[Used] {
        self.used.get(..self.len).unwrap_or(&[])
    }
}

enum Step {
    Fault(PfErrorCode),
    Done(Translation, Path),
}

/// `gva_to_gpa`: translate linear address `gva` for `access`, setting the
/// accessed (and, for writes, dirty) flags with compare-exchange on success
/// (`walk_addr`).
pub fn translate<M: GuestPhys>(
    mem: &mut M,
    ctx: &PagingContext,
    gva: u64,
    access: Access,
) -> Result<Translation, WalkError> {
    if ctx.mode == PagingMode::Off {
        return Ok(Translation {
            gpa: gva & 0xffff_ffff,
            size: PageSize::Size4K,
            user: true,
            writable: true,
            no_exec: false,
        });
    }
    if ctx.mode == PagingMode::Level4 {
        let top = gva >> 47;
        if top != 0 && top != (1 << 17) - 1 {
            return Err(WalkError::NonCanonical);
        }
    }
    let size = if ctx.mode == PagingMode::Bits32 {
        PteSize::Four
    } else {
        PteSize::Eight
    };
    let mut retries = 0;
    loop {
        let (t, path) = match walk_once(mem, ctx, gva, access, size) {
            Step::Fault(code) => return Err(WalkError::PageFault(code | base_code(ctx, access))),
            Step::Done(t, path) => (t, path),
        };
        match set_accessed_dirty(mem, &path, access, size) {
            Some(true) => return Ok(t),
            Some(false) => {}
            // The table vanished from RAM between the read and the update.
            None => return Err(WalkError::PageFault(base_code(ctx, access))),
        }
        retries += 1;
        if retries >= MAX_RETRIES {
            return Err(WalkError::Contended);
        }
    }
}

/// W/R, U/S and I/D bits of the error code (SDM §4.7).
fn base_code(ctx: &PagingContext, access: Access) -> PfErrorCode {
    let mut code = PfErrorCode::empty();
    if access.kind == AccessKind::Write {
        code |= PfErrorCode::WRITE;
    }
    if access.privilege == Privilege::User {
        code |= PfErrorCode::USER;
    }
    if access.kind == AccessKind::Fetch && (ctx.smep || ctx.nx_active()) {
        code |= PfErrorCode::FETCH;
    }
    code
}

/// Reserved bits of a present entry at `level` (1 = PTE) with `ps` its PS
/// bit, in the current mode (SDM tables 4-4..4-20).
fn reserved_mask(ctx: &PagingContext, level: u32, ps: bool) -> u64 {
    let m = ctx.maxphyaddr();
    match ctx.mode {
        PagingMode::Off => 0,
        PagingMode::Bits32 => {
            if level == 2 && ps && ctx.pse {
                // 4 MiB page: PA bits 39:32 in bits 20:13 (PSE-36), bit 21
                // and the bits above MAXPHYADDR reserved.
                let high = if ctx.features.pse36 {
                    m.min(40) - 32
                } else {
                    0
                };
                bits(21, 13 + high)
            } else {
                0
            }
        }
        PagingMode::Pae { .. } => {
            let mut r = bits(62, m);
            if !ctx.nxe {
                r |= PteFlags::XD.bits();
            }
            if level == 2 && ps {
                r |= bits(20, 13);
            }
            r
        }
        PagingMode::Level4 => {
            let mut r = bits(51, m);
            if !ctx.nxe {
                r |= PteFlags::XD.bits();
            }
            match (level, ps) {
                (4, _) => r |= PteFlags::PS.bits(),
                (3, true) if !ctx.features.gbpages => r |= PteFlags::PS.bits(),
                (3, true) => r |= bits(29, 13),
                (2, true) => r |= bits(20, 13),
                _ => {}
            }
            r
        }
    }
}

fn walk_once<M: GuestPhys>(
    mem: &mut M,
    ctx: &PagingContext,
    gva: u64,
    access: Access,
    size: PteSize,
) -> Step {
    let m = ctx.maxphyaddr();
    let addr_mask = bits(m - 1, 12);
    let (mut level, mut table) = match ctx.mode {
        PagingMode::Off => (0, 0),
        PagingMode::Bits32 => (2, ctx.cr3 & bits(31, 12)),
        PagingMode::Pae { pdptes } => {
            let idx = usize::try_from((gva >> 30) & 3).unwrap_or(0);
            let pdpte = pdptes.get(idx).copied().unwrap_or(0);
            if pdpte & PteFlags::P.bits() == 0 {
                return Step::Fault(PfErrorCode::empty());
            }
            (2, pdpte & addr_mask)
        }
        PagingMode::Level4 => (4, ctx.cr3 & addr_mask),
    };
    let mut path = Path {
        used: [Used::default(); 4],
        len: 0,
    };
    let (leaf_gpa, page) = loop {
        let (shift, idx_mask) = match size {
            PteSize::Four => (12 + 10 * (level - 1), 0x3ff),
            PteSize::Eight => (12 + 9 * (level - 1), 0x1ff),
        };
        let index = (gva >> shift) & idx_mask;
        let gpa = table + index * size.bytes();
        let Some(value) = mem.read_pte(gpa, size) else {
            return Step::Fault(PfErrorCode::empty());
        };
        if value & PteFlags::P.bits() == 0 {
            return Step::Fault(PfErrorCode::empty());
        }
        let ps = value & PteFlags::PS.bits() != 0;
        if value & reserved_mask(ctx, level, ps) != 0 {
            return Step::Fault(PfErrorCode::PRESENT | PfErrorCode::RSVD);
        }
        path.push(Used { gpa, value });
        let leaf = match (ctx.mode, level) {
            (_, 1) => Some(PageSize::Size4K),
            (PagingMode::Bits32, 2) if ps && ctx.pse => Some(PageSize::Size4M),
            (PagingMode::Pae { .. } | PagingMode::Level4, 2) if ps => Some(PageSize::Size2M),
            (PagingMode::Level4, 3) if ps => Some(PageSize::Size1G),
            _ => None,
        };
        if let Some(page) = leaf {
            let gpa = match page {
                PageSize::Size4K => {
                    let frame = if size == PteSize::Four {
                        value & bits(31, 12)
                    } else {
                        value & addr_mask
                    };
                    frame | (gva & 0xfff)
                }
                PageSize::Size2M => (value & addr_mask & !bits(20, 0)) | (gva & bits(20, 0)),
                PageSize::Size1G => (value & addr_mask & !bits(29, 0)) | (gva & bits(29, 0)),
                PageSize::Size4M => {
                    let high = (value >> 13) & 0xff;
                    (value & bits(31, 22)) | (high << 32) | (gva & bits(21, 0))
                }
            };
            break (gpa, page);
        }
        table = if size == PteSize::Four {
            value & bits(31, 12)
        } else {
            value & addr_mask
        };
        level -= 1;
    };

    // Access rights over the whole path (SDM §4.6.1). PAE PDPTEs carry no
    // rights and are not in `path`.
    let all = |f: PteFlags| path.entries().iter().all(|u| u.value & f.bits() != 0);
    let user_page = all(PteFlags::US);
    let writable = all(PteFlags::RW);
    let no_exec = ctx.nx_active()
        && path
            .entries()
            .iter()
            .any(|u| u.value & PteFlags::XD.bits() != 0);
    let allowed = match (access.privilege, access.kind) {
        (Privilege::User, AccessKind::Read) => user_page,
        (Privilege::User, AccessKind::Write) => user_page && writable,
        (Privilege::User, AccessKind::Fetch) => user_page && !no_exec,
        (Privilege::Supervisor { smap_override }, AccessKind::Read) => {
            !(user_page && ctx.smap && !smap_override)
        }
        (Privilege::Supervisor { smap_override }, AccessKind::Write) => {
            (!ctx.wp || writable) && !(user_page && ctx.smap && !smap_override)
        }
        (Privilege::Supervisor { .. }, AccessKind::Fetch) => !(no_exec || user_page && ctx.smep),
    };
    if !allowed {
        return Step::Fault(PfErrorCode::PRESENT);
    }
    Step::Done(
        Translation {
            gpa: leaf_gpa,
            size: page,
            user: user_page,
            writable,
            no_exec,
        },
        path,
    )
}

/// Set A on every entry used and D on the leaf for writes (SDM §4.8), each
/// with compare-exchange against the value the walk read (`cmpxchg_gpte`).
/// `Some(false)`: an entry changed under us, walk again.
fn set_accessed_dirty<M: GuestPhys>(
    mem: &mut M,
    path: &Path,
    access: Access,
    size: PteSize,
) -> Option<bool> {
    let entries = path.entries();
    let last = entries.len().saturating_sub(1);
    for (i, u) in entries.iter().enumerate() {
        let mut new = u.value | PteFlags::A.bits();
        if i == last && access.kind == AccessKind::Write {
            new |= PteFlags::D.bits();
        }
        if new != u.value && !mem.cmpxchg_pte(u.gpa, size, u.value, new)? {
            return Some(false);
        }
    }
    Some(true)
}
