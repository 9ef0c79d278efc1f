//! Fakes for the platform traits: a table-page arena and a VMM address
//! space made of mappings onto fake host physical memory.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kvm_mmu::MmuError;
use kvm_mmu::platform::{GuestMemory, HostMemKind, HostPage, PteSize, TablePages};

/// Where fake table pages live in "host physical" space.
pub const TABLE_BASE: u64 = 0x1_0000_0000;

#[derive(Default)]
pub struct TableArena {
    pages: Vec<Option<Box<[u64; 512]>>>,
    free: Vec<usize>,
    pub live: usize,
    pub allocs: usize,
    /// Allocation fails once `allocs` reaches this.
    pub fail_after: Option<usize>,
}

/// Shared handle so tests can look at the arena after the MMU is dropped.
#[derive(Clone, Default)]
pub struct FakeTables(pub Rc<RefCell<TableArena>>);

impl FakeTables {
    pub fn live(&self) -> usize {
        self.0.borrow().live
    }
    fn idx(pa: u64) -> usize {
        assert!(
            pa >= TABLE_BASE && pa.is_multiple_of(4096),
            "bad table pa {pa:#x}"
        );
        ((pa - TABLE_BASE) / 4096) as usize
    }
}

impl TablePages for FakeTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let mut a = self.0.borrow_mut();
        if a.fail_after.is_some_and(|n| a.allocs >= n) {
            return None;
        }
        a.allocs += 1;
        a.live += 1;
        let page = Box::new([0u64; 512]);
        let i = match a.free.pop() {
            Some(i) => {
                a.pages[i] = Some(page);
                i
            }
            None => {
                a.pages.push(Some(page));
                a.pages.len() - 1
            }
        };
        Some(TABLE_BASE + i as u64 * 4096)
    }
    fn free_table(&mut self, pa: u64) {
        let mut a = self.0.borrow_mut();
        let i = Self::idx(pa);
        assert!(a.pages[i].take().is_some(), "double free of {pa:#x}");
        a.free.push(i);
        a.live -= 1;
    }
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        let a = self.0.borrow();
        a.pages[Self::idx(table)]
            .as_ref()
            .expect("read of a freed table")[index]
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        let mut a = self.0.borrow_mut();
        a.pages[Self::idx(table)]
            .as_mut()
            .expect("write to a freed table")[index] = value;
    }
}

/// How a VMM mapping's pages sit in host physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One contiguous, 2 MiB-aligned run.
    Contiguous,
    /// Neighbouring pages swapped (never 2 MiB-contiguous).
    Scrambled,
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    hva: u64,
    len: u64,
    pa: u64,
    layout: Layout,
    kind: HostMemKind,
}

/// The VMM's address space: mappings of locked pages, with page contents
/// allocated lazily (keyed by host physical address).
#[derive(Default)]
pub struct FakeVmm {
    maps: Vec<Mapping>,
    next_pa: u64,
    next_hva: u64,
    data: RefCell<HashMap<u64, Box<[u8; 4096]>>>,
}

impl FakeVmm {
    pub fn new() -> Self {
        FakeVmm {
            next_pa: 0x4000_0000,
            next_hva: 0x7f00_0000_0000,
            ..Default::default()
        }
    }

    /// Map `len` bytes of fresh host memory; returns the hva. Addresses are
    /// offset by 4 KiB from 2 MiB alignment in the VMM on purpose when
    /// `misalign` is set (the MMU must not care).
    pub fn map(&mut self, len: u64, layout: Layout, kind: HostMemKind, misalign: bool) -> u64 {
        let hva = self.next_hva + if misalign { 4096 } else { 0 };
        self.next_hva += (len + (4 << 20)) & !((2 << 20) - 1);
        let pa = self.next_pa;
        self.next_pa += (len + (4 << 20)) & !((2 << 20) - 1);
        self.maps.push(Mapping {
            hva,
            len,
            pa,
            layout,
            kind,
        });
        hva
    }

    pub fn pa_of(&self, hva: u64) -> Option<(u64, HostMemKind)> {
        let m = self
            .maps
            .iter()
            .find(|m| hva >= m.hva && hva - m.hva < m.len)?;
        let page = (hva - m.hva) / 4096;
        let page = match m.layout {
            Layout::Contiguous => page,
            Layout::Scrambled => {
                let swapped = page ^ 1;
                if swapped * 4096 < m.len {
                    swapped
                } else {
                    page
                }
            }
        };
        Some((m.pa + page * 4096 + (hva & 0xfff), m.kind))
    }

    /// Host-physical access (what the CPU does through an EPT mapping).
    pub fn write_pa(&self, pa: u64, data: &[u8]) {
        let mut d = self.data.borrow_mut();
        let page = d.entry(pa & !0xfff).or_insert_with(|| Box::new([0; 4096]));
        let off = (pa & 0xfff) as usize;
        page[off..off + data.len()].copy_from_slice(data);
    }
    pub fn read_pa(&self, pa: u64, buf: &mut [u8]) {
        let d = self.data.borrow();
        let off = (pa & 0xfff) as usize;
        match d.get(&(pa & !0xfff)) {
            Some(p) => buf.copy_from_slice(&p[off..off + buf.len()]),
            None => buf.fill(0),
        }
    }
}

impl GuestMemory for FakeVmm {
    fn resolve(&self, hva: u64) -> Option<HostPage> {
        let (pa, kind) = self.pa_of(hva)?;
        Some(HostPage {
            pa: pa & !0xfff,
            kind,
        })
    }
    fn read(&self, hva: u64, buf: &mut [u8]) -> Result<(), MmuError> {
        assert!(
            (hva & 0xfff) as usize + buf.len() <= 4096,
            "read crosses a page"
        );
        let (pa, _) = self.pa_of(hva).ok_or(MmuError::HostFault)?;
        self.read_pa(pa, buf);
        Ok(())
    }
    fn write(&self, hva: u64, data: &[u8]) -> Result<(), MmuError> {
        assert!(
            (hva & 0xfff) as usize + data.len() <= 4096,
            "write crosses a page"
        );
        let (pa, _) = self.pa_of(hva).ok_or(MmuError::HostFault)?;
        self.write_pa(pa, data);
        Ok(())
    }
    fn cmpxchg(&self, hva: u64, size: PteSize, old: u64, new: u64) -> Result<bool, MmuError> {
        let (pa, _) = self.pa_of(hva).ok_or(MmuError::HostFault)?;
        let n = size.bytes() as usize;
        let mut cur = [0u8; 8];
        self.read_pa(pa, &mut cur[..n]);
        if u64::from_le_bytes(cur) != old {
            return Ok(false);
        }
        self.write_pa(pa, &new.to_le_bytes()[..n]);
        Ok(true)
    }
}
