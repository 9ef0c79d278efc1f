//! EPT paging structures: entry format, building on EPT violation, lookup,
//! invalidation, write protection and teardown. Port of the TDP side of
//! kvm_mmu.c (`__direct_map`, `mmu_set_spte`, `kvm_mmu_zap_all`,
//! `kvm_mmu_slot_remove_write_access`) for a 4-level EPT, written from the
//! SDM vol. 3 §29.3 (EPT translation mechanism; §28.3 in older editions):
//! * §29.3.2: entry formats (bits 2:0 R/W/X, 5:3 memory type, 6 IPAT,
//!   7 page size, 51:12 physical address);
//! * §29.3.3: EPT violations (not-present or insufficient permission) —
//!   a violation also invalidates cached mappings for the faulting address,
//!   so adding a mapping or a permission never needs INVEPT;
//! * §29.3.7 (memory type): WB (6) with IPAT for RAM, UC (0) for device
//!   memory;
//! * §29.4.3: removing or narrowing a mapping, or replacing a 2 MiB leaf by
//!   a table, needs INVEPT before the change is guaranteed to be seen.
//!
//! Table pages that were reachable are not freed on unlink: they wait in a
//! list until the driver confirms the INVEPT ([`Ept::invept_done`]), since a
//! CPU may still walk them through its paging-structure caches.
//!
//! Only 4 KiB and 2 MiB leaves are created (the original never mapped large
//! pages; 2 MiB leaves are counted in the `lpages` statistic). Guest-physical
//! addresses at or above 2^48 cannot be mapped with a 4-level EPT.

use alloc::vec::Vec;

use bitflags::bitflags;

use crate::MmuError;
use crate::memslot::GpaRange;
use crate::platform::TablePages;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// First guest-physical address a 4-level EPT cannot map.
pub const GPA_LIMIT: u64 = 1 << 48;
/// Bytes mapped by a 2 MiB leaf.
pub const SIZE_2M: u64 = 1 << 21;
/// Physical-address bits of an entry (51:12).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

bitflags! {
    /// Access permissions of an EPT entry (bits 2:0).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct EptPerms: u64 {
        /// Read.
        const R = 1 << 0;
        /// Write.
        const W = 1 << 1;
        /// Execute.
        const X = 1 << 2;
    }
}

const MT_SHIFT: u32 = 3;
const MT_MASK: u64 = 7 << MT_SHIFT;
const IPAT: u64 = 1 << 6;
const LARGE: u64 = 1 << 7;

/// EPT memory type of a leaf (bits 5:3; SDM §29.3.7) and of the EPTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum EptMemType {
    /// UC: device memory.
    Uncacheable = 0,
    /// WC.
    WriteCombining = 1,
    /// WT.
    WriteThrough = 4,
    /// WP.
    WriteProtected = 5,
    /// WB: RAM.
    WriteBack = 6,
}

impl EptMemType {
    fn from_bits(b: u64) -> Option<Self> {
        match b {
            0 => Some(EptMemType::Uncacheable),
            1 => Some(EptMemType::WriteCombining),
            4 => Some(EptMemType::WriteThrough),
            5 => Some(EptMemType::WriteProtected),
            6 => Some(EptMemType::WriteBack),
            _ => None,
        }
    }
}

/// Size of an EPT leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptPageSize {
    /// 4 KiB (level-1 entry).
    Size4K,
    /// 2 MiB (level-2 entry with bit 7).
    Size2M,
}

impl EptPageSize {
    /// Bytes mapped.
    pub const fn bytes(self) -> u64 {
        match self {
            EptPageSize::Size4K => 1 << 12,
            EptPageSize::Size2M => SIZE_2M,
        }
    }
    const fn level(self) -> u32 {
        match self {
            EptPageSize::Size4K => 1,
            EptPageSize::Size2M => 2,
        }
    }
}

/// Whether the caller must run INVEPT (single-context, on every CPU that may
/// cache this VM's EPT: `kvm_flush_remote_tlbs`/`kvm_reload_remote_mmus`)
/// before relying on a change, and then call [`crate::Mmu::invept_done`].
#[must_use = "a narrowed or removed EPT mapping needs INVEPT"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invept {
    /// Nothing cached can be stale.
    NotNeeded,
    /// Cached translations may be stale: INVEPT before resuming the guest.
    Needed,
}

impl Invept {
    /// Needed if either is.
    pub fn or(self, other: Invept) -> Invept {
        if self == Invept::Needed || other == Invept::Needed {
            Invept::Needed
        } else {
            Invept::NotNeeded
        }
    }
}

/// One EPT paging-structure entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptEntry(u64);

impl EptEntry {
    /// Not present.
    pub const EMPTY: EptEntry = EptEntry(0);

    /// A non-leaf entry pointing at table `pa` with all permissions (the
    /// leaves decide).
    pub fn table(pa: u64) -> EptEntry {
        EptEntry((pa & ADDR_MASK) | EptPerms::all().bits())
    }

    /// A leaf mapping host `pa`. RAM gets WB with IPAT; other types are
    /// used as given, without IPAT.
    pub fn leaf(pa: u64, perms: EptPerms, mt: EptMemType, size: EptPageSize) -> EptEntry {
        let mut v = (pa & ADDR_MASK) | perms.bits() | ((mt as u64) << MT_SHIFT);
        if mt == EptMemType::WriteBack {
            v |= IPAT;
        }
        if size == EptPageSize::Size2M {
            v |= LARGE;
        }
        EptEntry(v)
    }

    /// The raw value.
    pub fn raw(self) -> u64 {
        self.0
    }
    /// From a raw value.
    pub fn from_raw(v: u64) -> EptEntry {
        EptEntry(v)
    }
    /// Any of R/W/X set (SDM: an entry with bits 2:0 clear is not present).
    pub fn is_present(self) -> bool {
        self.0 & EptPerms::all().bits() != 0
    }
    /// Bit 7 (a leaf above level 1).
    pub fn is_large(self) -> bool {
        self.0 & LARGE != 0
    }
    /// Physical address (table or page).
    pub fn addr(self) -> u64 {
        self.0 & ADDR_MASK
    }
    /// R/W/X.
    pub fn perms(self) -> EptPerms {
        EptPerms::from_bits_truncate(self.0)
    }
    /// Memory type of a leaf, if valid.
    pub fn mem_type(self) -> Option<EptMemType> {
        EptMemType::from_bits((self.0 & MT_MASK) >> MT_SHIFT)
    }
    /// IPAT of a leaf.
    pub fn ignores_pat(self) -> bool {
        self.0 & IPAT != 0
    }
    fn with_perms(self, perms: EptPerms) -> EptEntry {
        EptEntry((self.0 & !EptPerms::all().bits()) | perms.bits())
    }
}

// An entry is exactly the 64-bit word the CPU reads.
static_assertions::assert_eq_size!(EptEntry, u64);
static_assertions::const_assert_eq!(ENTRIES as u64 * 8, 4096);

/// Bytes one entry at `level` maps.
const fn span(level: u32) -> u64 {
    1u64 << (12 + 9 * (level - 1))
}

/// Index of `gpa` in a table at `level`.
fn index(gpa: u64, level: u32) -> usize {
    // 9 bits: always < 512.
    ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// A VM's EPT (`vcpu->arch.mmu.root_hpa` and the `kvm_mmu_page`s under
/// it). All methods take the table backend explicitly; [`crate::Mmu`] owns
/// both and frees everything on drop.
#[derive(Debug)]
pub struct Ept {
    root: Option<u64>,
    table_pages: u64,
    lpages: u64,
    pending_free: Vec<u64>,
}

impl Ept {
    /// Allocate the root (PML4) table.
    pub fn new<T: TablePages>(t: &mut T) -> Result<Ept, MmuError> {
        let root = t.alloc_table().ok_or(MmuError::NoMemory)?;
        Ok(Ept {
            root: Some(root),
            table_pages: 1,
            lpages: 0,
            pending_free: Vec::new(),
        })
    }

    /// The EPT pointer for the VMCS (SDM §25.6.11): WB paging structures,
    /// 4-level walk, A/D flags off. 0 after [`Self::destroy`].
    pub fn eptp(&self) -> u64 {
        self.root
            .map_or(0, |r| r | ((EptMemType::WriteBack as u64) | (3 << 3)))
    }

    /// Table pages in use, waiting-for-INVEPT ones included.
    pub fn table_pages(&self) -> u64 {
        self.table_pages
    }

    /// 2 MiB leaves present (the `lpages` kstat).
    pub fn lpages(&self) -> u64 {
        self.lpages
    }

    /// The leaf mapping `gpa`, if any.
    pub fn lookup<T: TablePages>(&self, t: &T, gpa: u64) -> Option<(EptEntry, EptPageSize)> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut table = self.root?;
        let mut level = 4;
        loop {
            let e = EptEntry(t.read_entry(table, index(gpa, level)));
            if !e.is_present() {
                return None;
            }
            if level == 1 {
                return Some((e, EptPageSize::Size4K));
            }
            if e.is_large() {
                return (level == 2).then_some((e, EptPageSize::Size2M));
            }
            table = e.addr();
            level -= 1;
        }
    }

    /// Whether a 2 MiB leaf could go at `gpa` without displacing anything:
    /// the level-2 entry for it is absent (its parents may be).
    pub fn can_map_2m<T: TablePages>(&self, t: &T, gpa: u64) -> bool {
        if gpa >= GPA_LIMIT {
            return false;
        }
        let Some(mut table) = self.root else {
            return false;
        };
        let mut level = 4;
        while level > 2 {
            let e = EptEntry(t.read_entry(table, index(gpa, level)));
            if !e.is_present() {
                return true;
            }
            if e.is_large() {
                return false;
            }
            table = e.addr();
            level -= 1;
        }
        !EptEntry(t.read_entry(table, index(gpa, 2))).is_present()
    }

    /// `__direct_map` + `mmu_set_spte`: install `entry` as the leaf of size
    /// `size` for `gpa` (aligned down), allocating tables on the way. A
    /// 2 MiB leaf in the way of a 4 KiB one is split; a table in the way of
    /// a 2 MiB one is removed.
    pub fn map<T: TablePages>(
        &mut self,
        t: &mut T,
        gpa: u64,
        size: EptPageSize,
        entry: EptEntry,
    ) -> Result<Invept, MmuError> {
        if gpa >= GPA_LIMIT {
            return Err(MmuError::AddressOverflow);
        }
        let mut table = self.root.ok_or(MmuError::NoMemory)?;
        let mut level = 4;
        let mut inv = Invept::NotNeeded;
        let target = size.level();
        while level > target {
            let idx = index(gpa, level);
            let e = EptEntry(t.read_entry(table, idx));
            if e.is_present() && e.is_large() {
                // A 2 MiB leaf where a 4 KiB one goes: split, then look again
                // (the split may have dropped the leaf instead).
                inv = inv.or(self.split(t, table, idx, level, e));
                continue;
            }
            if e.is_present() {
                table = e.addr();
            } else {
                let new = t.alloc_table().ok_or(MmuError::NoMemory)?;
                self.table_pages += 1;
                t.write_entry(table, idx, EptEntry::table(new).raw());
                table = new;
            }
            level -= 1;
        }
        let idx = index(gpa, level);
        let old = EptEntry(t.read_entry(table, idx));
        if old.is_present() && level > 1 && !old.is_large() {
            // A table where a 2 MiB leaf goes: empty it and unlink it.
            self.pending_free
                .try_reserve(1)
                .map_err(|_| MmuError::NoMemory)?;
            let base = gpa & !(span(level) - 1);
            // Needed regardless (set below).
            let _ = self.zap_table(t, old.addr(), level - 1, base, base, base + span(level));
            self.unlink(t, table, idx, old.addr());
            inv = Invept::Needed;
        }
        let old = EptEntry(t.read_entry(table, idx));
        t.write_entry(table, idx, entry.raw());
        self.account(old, level, -1);
        self.account(entry, level, 1);
        let narrowed = old.is_present()
            && (old.addr() != entry.addr()
                || !entry.perms().contains(old.perms())
                || (old.raw() & (MT_MASK | IPAT | LARGE))
                    != (entry.raw() & (MT_MASK | IPAT | LARGE)));
        if narrowed {
            inv = Invept::Needed;
        }
        Ok(inv)
    }

    fn account(&mut self, e: EptEntry, level: u32, delta: i8) {
        if level == 2 && e.is_present() && e.is_large() {
            self.lpages = if delta > 0 {
                self.lpages.saturating_add(1)
            } else {
                self.lpages.saturating_sub(1)
            };
        }
    }

    /// Replace the large leaf `e` at `table[idx]` (level `level`) by a
    /// table of 512 4 KiB leaves with the same address range, permissions
    /// and memory type. If no page can be allocated the leaf is just removed
    /// (it refaults as 4 KiB).
    fn split<T: TablePages>(
        &mut self,
        t: &mut T,
        table: u64,
        idx: usize,
        level: u32,
        e: EptEntry,
    ) -> Invept {
        if level != 2 {
            // Never created; drop it.
            t.write_entry(table, idx, 0);
            return Invept::Needed;
        }
        let Some(child) = t.alloc_table() else {
            t.write_entry(table, idx, 0);
            self.account(e, level, -1);
            return Invept::Needed;
        };
        self.table_pages += 1;
        let perms = e.perms();
        let small = EptEntry((e.raw() & !LARGE & !ADDR_MASK) & !EptPerms::all().bits());
        let mut pa = e.addr();
        for i in 0..ENTRIES {
            t.write_entry(child, i, EptEntry(small.raw() | pa).with_perms(perms).raw());
            pa += 1 << 12;
        }
        t.write_entry(table, idx, EptEntry::table(child).raw());
        self.account(e, level, -1);
        Invept::Needed
    }

    /// Unlink table `child` from `table[idx]` and queue it for freeing after
    /// INVEPT. If the queue cannot grow, the (empty) table stays linked.
    fn unlink<T: TablePages>(&mut self, t: &mut T, table: u64, idx: usize, child: u64) {
        if self.pending_free.try_reserve(1).is_ok() {
            t.write_entry(table, idx, 0);
            self.pending_free.push(child);
        }
    }

    /// Remove every mapping of `[range.start, range.end)` (`kvm_mmu_zap_all`
    /// restricted to a slot). A 2 MiB leaf that only partly overlaps is
    /// removed whole (it refaults). Empty tables are unlinked.
    pub fn zap_range<T: TablePages>(&mut self, t: &mut T, range: GpaRange) -> Invept {
        let end = range.end.min(GPA_LIMIT);
        match self.root {
            Some(root) if range.start < end => self.zap_table(t, root, 4, 0, range.start, end),
            _ => Invept::NotNeeded,
        }
    }

    /// Zap `[start, end)` ∩ the table at `level` covering `[base, base +
    /// 512 * span)`. Recursion depth ≤ 4.
    fn zap_table<T: TablePages>(
        &mut self,
        t: &mut T,
        table: u64,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
    ) -> Invept {
        let sp = span(level);
        let mut inv = Invept::NotNeeded;
        let first = usize::try_from(start.saturating_sub(base) / sp).unwrap_or(ENTRIES);
        let last = usize::try_from(end.saturating_sub(base).div_ceil(sp))
            .unwrap_or(ENTRIES)
            .min(ENTRIES);
        for i in first..last {
            let e = EptEntry(t.read_entry(table, i));
            if !e.is_present() {
                continue;
            }
            let eb = base + (i as u64) * sp;
            if level == 1 || e.is_large() {
                t.write_entry(table, i, 0);
                self.account(e, level, -1);
                inv = Invept::Needed;
                continue;
            }
            let child = e.addr();
            let covered = start <= eb && eb + sp <= end;
            let sub = self.zap_table(t, child, level - 1, eb, start.max(eb), end.min(eb + sp));
            inv = inv.or(sub);
            if covered || table_is_empty(t, child) {
                self.unlink(t, table, i, child);
                inv = Invept::Needed;
            }
        }
        inv
    }

    /// `kvm_mmu_slot_remove_write_access`: clear W on every leaf in
    /// `range`, splitting 2 MiB leaves into 4 KiB ones so that only the
    /// pages written afterwards become writable again (dirty logging).
    pub fn write_protect_range<T: TablePages>(&mut self, t: &mut T, range: GpaRange) -> Invept {
        let end = range.end.min(GPA_LIMIT);
        match self.root {
            Some(root) if range.start < end => self.wp_table(t, root, 4, 0, range.start, end),
            _ => Invept::NotNeeded,
        }
    }

    fn wp_table<T: TablePages>(
        &mut self,
        t: &mut T,
        table: u64,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
    ) -> Invept {
        let sp = span(level);
        let mut inv = Invept::NotNeeded;
        let first = usize::try_from(start.saturating_sub(base) / sp).unwrap_or(ENTRIES);
        let last = usize::try_from(end.saturating_sub(base).div_ceil(sp))
            .unwrap_or(ENTRIES)
            .min(ENTRIES);
        for i in first..last {
            let mut e = EptEntry(t.read_entry(table, i));
            if !e.is_present() {
                continue;
            }
            let eb = base + (i as u64) * sp;
            if level > 1 && e.is_large() {
                // Split keeping W; the 4 KiB pass below clears it in range.
                inv = inv.or(self.split(t, table, i, level, e));
                e = EptEntry(t.read_entry(table, i));
                if !e.is_present() {
                    continue;
                }
            }
            if level == 1 {
                if e.perms().contains(EptPerms::W) {
                    t.write_entry(table, i, e.with_perms(e.perms() - EptPerms::W).raw());
                    inv = Invept::Needed;
                }
                continue;
            }
            let sub = self.wp_table(t, e.addr(), level - 1, eb, start.max(eb), end.min(eb + sp));
            inv = inv.or(sub);
        }
        inv
    }

    /// Free the tables unlinked since the last INVEPT.
    pub fn invept_done<T: TablePages>(&mut self, t: &mut T) {
        for pa in self.pending_free.drain(..) {
            t.free_table(pa);
            self.table_pages = self.table_pages.saturating_sub(1);
        }
    }

    /// Free every table (VM destroy: `kvm_mmu_destroy`). The guest must not
    /// run on this EPT any more. Idempotent.
    pub fn destroy<T: TablePages>(&mut self, t: &mut T) {
        self.invept_done(t);
        if let Some(root) = self.root.take() {
            self.free_tree(t, root, 4);
        }
        self.lpages = 0;
    }

    fn free_tree<T: TablePages>(&mut self, t: &mut T, table: u64, level: u32) {
        if level > 1 {
            for i in 0..ENTRIES {
                let e = EptEntry(t.read_entry(table, i));
                if e.is_present() && !e.is_large() {
                    self.free_tree(t, e.addr(), level - 1);
                }
            }
        }
        t.free_table(table);
        self.table_pages = self.table_pages.saturating_sub(1);
    }

    /// Call `f(gpa, entry, size)` for every present leaf, in address order.
    pub fn for_each_leaf<T: TablePages>(
        &self,
        t: &T,
        mut f: impl FnMut(u64, EptEntry, EptPageSize),
    ) {
        if let Some(root) = self.root {
            visit(t, root, 4, 0, &mut f);
        }
    }
}

fn visit<T: TablePages>(
    t: &T,
    table: u64,
    level: u32,
    base: u64,
    f: &mut impl FnMut(u64, EptEntry, EptPageSize),
) {
    for i in 0..ENTRIES {
        let e = EptEntry(t.read_entry(table, i));
        if !e.is_present() {
            continue;
        }
        let gpa = base + (i as u64) * span(level);
        match level {
            1 => f(gpa, e, EptPageSize::Size4K),
            2 if e.is_large() => f(gpa, e, EptPageSize::Size2M),
            _ if e.is_large() => {}
            _ => visit(t, e.addr(), level - 1, gpa, f),
        }
    }
}

fn table_is_empty<T: TablePages>(t: &T, table: u64) -> bool {
    (0..ENTRIES).all(|i| !EptEntry(t.read_entry(table, i)).is_present())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Tables {
        pages: HashMap<u64, Box<[u64; 512]>>,
        next: u64,
        fail: bool,
    }

    impl TablePages for Tables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.fail {
                return None;
            }
            self.next += 0x1000;
            self.pages.insert(self.next, Box::new([0; 512]));
            Some(self.next)
        }
        fn free_table(&mut self, pa: u64) {
            assert!(self.pages.remove(&pa).is_some());
        }
        fn read_entry(&self, table: u64, index: usize) -> u64 {
            self.pages[&table][index]
        }
        fn write_entry(&mut self, table: u64, index: usize, value: u64) {
            self.pages.get_mut(&table).unwrap()[index] = value;
        }
    }

    const RWX: EptPerms = EptPerms::all();

    fn leaf4k(pa: u64) -> EptEntry {
        EptEntry::leaf(pa, RWX, EptMemType::WriteBack, EptPageSize::Size4K)
    }

    #[test]
    fn entry_encoding() {
        let e = EptEntry::leaf(0x1234_5000, RWX, EptMemType::WriteBack, EptPageSize::Size2M);
        assert_eq!(e.raw(), 0x1234_5000 | 0x7 | 6 << 3 | 1 << 6 | 1 << 7);
        assert!(e.is_present() && e.is_large() && e.ignores_pat());
        let u = EptEntry::leaf(
            0x9000,
            EptPerms::R,
            EptMemType::Uncacheable,
            EptPageSize::Size4K,
        );
        assert_eq!(u.raw(), 0x9001);
        assert_eq!(u.mem_type(), Some(EptMemType::Uncacheable));
        assert_eq!(EptEntry::from_raw(2 << 3 | 1).mem_type(), None);
        assert_eq!(EptEntry::table(0xabc_d000).raw(), 0xabc_d007);
        assert!(!EptEntry::EMPTY.is_present());
        assert_eq!(Invept::NotNeeded.or(Invept::Needed), Invept::Needed);
    }

    #[test]
    fn map_lookup_zap_partial() {
        let mut t = Tables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        assert_eq!(ept.eptp() & 0xfff, 0x1e);
        for i in 0..4u64 {
            let inv = ept.map(
                &mut t,
                i << 12,
                EptPageSize::Size4K,
                leaf4k(0x10_0000 + (i << 12)),
            );
            assert_eq!(inv, Ok(Invept::NotNeeded));
        }
        assert_eq!(ept.table_pages(), 4);
        // widening perms on the same page: no INVEPT; narrowing: INVEPT
        let ro = EptEntry::leaf(
            0x10_0000,
            EptPerms::R,
            EptMemType::WriteBack,
            EptPageSize::Size4K,
        );
        assert_eq!(
            ept.map(&mut t, 0, EptPageSize::Size4K, ro),
            Ok(Invept::Needed)
        );
        assert_eq!(
            ept.map(&mut t, 0, EptPageSize::Size4K, leaf4k(0x10_0000)),
            Ok(Invept::NotNeeded)
        );
        // zap the middle two: tables stay (not empty)
        let inv = ept.zap_range(
            &mut t,
            GpaRange {
                start: 0x1000,
                end: 0x3000,
            },
        );
        assert_eq!(inv, Invept::Needed);
        assert!(ept.lookup(&t, 0x1000).is_none() && ept.lookup(&t, 0x3000).is_some());
        assert_eq!(ept.table_pages(), 4);
        // zapping an empty range changes nothing
        assert_eq!(
            ept.zap_range(
                &mut t,
                GpaRange {
                    start: 0x1000,
                    end: 0x3000
                }
            ),
            Invept::NotNeeded
        );
        // zap the rest: PT, PD, PDPT unlinked, freed only after INVEPT
        assert_eq!(
            ept.zap_range(
                &mut t,
                GpaRange {
                    start: 0,
                    end: 1 << 40
                }
            ),
            Invept::Needed
        );
        assert_eq!((ept.table_pages(), t.pages.len()), (4, 4));
        ept.invept_done(&mut t);
        assert_eq!((ept.table_pages(), t.pages.len()), (1, 1));
        ept.destroy(&mut t);
        assert!(t.pages.is_empty());
        assert_eq!(ept.eptp(), 0);
    }

    #[test]
    fn split_and_write_protect() {
        let mut t = Tables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        let big = EptEntry::leaf(0x4000_0000, RWX, EptMemType::WriteBack, EptPageSize::Size2M);
        assert_eq!(
            ept.map(&mut t, SIZE_2M, EptPageSize::Size2M, big),
            Ok(Invept::NotNeeded)
        );
        assert_eq!(ept.lpages(), 1);
        assert!(!ept.can_map_2m(&t, SIZE_2M) && ept.can_map_2m(&t, 0));
        // write-protect half of it: split, W cleared only in range
        let r = GpaRange {
            start: SIZE_2M,
            end: SIZE_2M + SIZE_2M / 2,
        };
        assert_eq!(ept.write_protect_range(&mut t, r), Invept::Needed);
        assert_eq!(ept.lpages(), 0);
        let (lo, sz) = ept.lookup(&t, SIZE_2M + 0x5000).unwrap();
        assert_eq!(
            (lo.addr(), lo.perms(), sz),
            (0x4000_5000, EptPerms::R | EptPerms::X, EptPageSize::Size4K)
        );
        let (hi, _) = ept.lookup(&t, SIZE_2M + SIZE_2M - 1).unwrap();
        assert_eq!((hi.addr(), hi.perms()), (0x401f_f000, RWX));
        assert_eq!(hi.raw() & 0x1f8, lo.raw() & 0x1f8 & !0x80);
        // a split that cannot allocate drops the leaf instead
        let big2 = EptEntry::leaf(0x8000_0000, RWX, EptMemType::WriteBack, EptPageSize::Size2M);
        let _ = ept
            .map(&mut t, 4 * SIZE_2M, EptPageSize::Size2M, big2)
            .unwrap();
        t.fail = true;
        let r = GpaRange {
            start: 4 * SIZE_2M,
            end: 5 * SIZE_2M,
        };
        assert_eq!(ept.write_protect_range(&mut t, r), Invept::Needed);
        assert!(ept.lookup(&t, 4 * SIZE_2M).is_none());
        assert_eq!(ept.lpages(), 0);
        // a 2 MiB leaf over an existing table replaces it
        t.fail = false;
        let big3 = EptEntry::leaf(0xc000_0000, RWX, EptMemType::WriteBack, EptPageSize::Size2M);
        assert_eq!(
            ept.map(&mut t, SIZE_2M, EptPageSize::Size2M, big3),
            Ok(Invept::Needed)
        );
        ept.invept_done(&mut t);
        assert_eq!(
            ept.lookup(&t, SIZE_2M + 0x5000).map(|(e, s)| (e.addr(), s)),
            Some((0xc000_0000, EptPageSize::Size2M))
        );
        assert_eq!(ept.table_pages() as usize, t.pages.len());
        // a 4 KiB leaf inside a 2 MiB one splits it
        assert_eq!(
            ept.map(
                &mut t,
                SIZE_2M + 0x3000,
                EptPageSize::Size4K,
                leaf4k(0x7000)
            ),
            Ok(Invept::Needed)
        );
        assert_eq!(
            ept.lookup(&t, SIZE_2M + 0x4000).map(|(e, _)| e.addr()),
            Some(0xc000_4000)
        );
        assert_eq!(
            ept.map(&mut t, GPA_LIMIT, EptPageSize::Size4K, leaf4k(0)),
            Err(MmuError::AddressOverflow)
        );
        let mut n = 0;
        ept.for_each_leaf(&t, |_, _, _| n += 1);
        assert_eq!(n, 512);
        ept.destroy(&mut t);
        assert!(t.pages.is_empty());
    }
}
