//! Host state around guest execution: the "shared" syscall MSRs the guest
//! runs with and the host gets back lazily, KERNEL_GS_BASE, and the host
//! selectors/LDT/TR a VM exit does not restore.
//!
//! Ports `vmx_msr_index[]`, `setup_msrs`, `update_transition_efer`,
//! `vmx_save_host_state`, `__vmx_load_host_state`, `reload_tss`
//! (kvm_vmx.c) and `kvm_set_shared_msr`/`kvm_on_user_return` (kvm_x86.c).
//! SDM vol. 3 §28.5 (what VM exits load: TR limit 0x67, LDTR unusable, no
//! KERNEL_GS_BASE/STAR/LSTAR/CSTAR/SFMASK switching).

/// MSR numbers (SDM vol. 4).
pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_CSTAR: u32 = 0xc000_0083;
pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const MSR_TSC_AUX: u32 = 0xc000_0103;

/// The shared MSRs, in the original's slot order (`vmx_msr_index`).
pub const SHARED_MSRS: [u32; 6] = [
    MSR_SYSCALL_MASK,
    MSR_LSTAR,
    MSR_CSTAR,
    MSR_EFER,
    MSR_TSC_AUX,
    MSR_STAR,
];

/// EFER bits.
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NX: u64 = 1 << 11;

/// One shared MSR of a VCPU (`shared_msr_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestMsr {
    /// Slot in [`SHARED_MSRS`].
    pub slot: u8,
    pub data: u64,
    /// Bits that must be switched (others keep the host's value).
    pub mask: u64,
}

/// A VCPU's shared MSRs: the first `count` exist on this host, the first
/// `active` are loaded before entry (`nmsrs`, `save_nmsrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestMsrs {
    pub msrs: [GuestMsr; 6],
    pub count: usize,
    pub active: usize,
}

impl GuestMsrs {
    /// `vmx_vcpu_setup`: the MSRs the host can read and write
    /// (`host_has(msr)`: rdmsr_safe and wrmsr_safe succeed).
    pub fn new(host_has: impl Fn(u32) -> bool) -> GuestMsrs {
        let mut g = GuestMsrs::default();
        for (slot, msr) in SHARED_MSRS.iter().enumerate() {
            if host_has(*msr)
                && let Some(e) = g.msrs.get_mut(g.count)
            {
                *e = GuestMsr {
                    slot: slot as u8,
                    data: 0,
                    mask: u64::MAX,
                };
                g.count += 1;
            }
        }
        g
    }

    /// `__find_msr_index`: position of `msr` among the existing ones.
    pub fn find(&self, msr: u32) -> Option<usize> {
        self.msrs
            .iter()
            .take(self.count)
            .position(|e| SHARED_MSRS.get(usize::from(e.slot)) == Some(&msr))
    }

    /// The guest value of `msr`, if it is a shared MSR this host has.
    pub fn get(&self, msr: u32) -> Option<u64> {
        self.find(msr)
            .and_then(|i| self.msrs.get(i))
            .map(|e| e.data)
    }

    /// Set the guest value of `msr`; false if it is not one of ours.
    pub fn set(&mut self, msr: u32, data: u64) -> bool {
        match self.find(msr).and_then(|i| self.msrs.get_mut(i)) {
            Some(e) => {
                e.data = data;
                true
            }
            None => false,
        }
    }

    fn move_up(&mut self, msr: u32) {
        let Some(from) = self.find(msr).filter(|f| *f >= self.active) else {
            return;
        };
        // A swap through `get` (no bounds-check panic in the kernel).
        let (Some(a), Some(b)) = (
            self.msrs.get(from).copied(),
            self.msrs.get(self.active).copied(),
        ) else {
            return;
        };
        if let Some(x) = self.msrs.get_mut(from) {
            *x = b;
        }
        if let Some(x) = self.msrs.get_mut(self.active) {
            *x = a;
        }
        self.active += 1;
    }

    /// `setup_msrs`: which MSRs the guest's mode needs switched. In long
    /// mode the SYSCALL MSRs (STAR only with EFER.SCE, TSC_AUX only with
    /// RDTSCP for the guest); EFER always, with `update_transition_efer`.
    pub fn setup(&mut self, long_mode: bool, rdtscp: bool, guest_efer: u64, host_efer: u64) {
        self.active = 0;
        if long_mode {
            self.move_up(MSR_SYSCALL_MASK);
            self.move_up(MSR_LSTAR);
            self.move_up(MSR_CSTAR);
            if rdtscp {
                self.move_up(MSR_TSC_AUX);
            }
            if guest_efer & EFER_SCE != 0 {
                self.move_up(MSR_STAR);
            }
        }
        if let Some(i) = self.find(MSR_EFER) {
            let (data, mask) = transition_efer(guest_efer, host_efer);
            if let Some(e) = self.msrs.get_mut(i) {
                e.data = data;
                e.mask = mask;
            }
            self.move_up(MSR_EFER);
        }
    }

    /// The MSRs to load before entry.
    pub fn active(&self) -> &[GuestMsr] {
        self.msrs.get(..self.active).unwrap_or(&[])
    }
}

/// `update_transition_efer`: the EFER the guest runs with and the bits
/// that matter. NX is emulated, LMA/LME are switched by VM entry/exit, SCE
/// only matters in long mode; those keep the host's values.
pub fn transition_efer(guest: u64, host: u64) -> (u64, u64) {
    let mut ignore = EFER_NX | EFER_SCE | EFER_LMA | EFER_LME;
    if guest & EFER_LMA != 0 {
        ignore &= !EFER_SCE;
    }
    ((guest & !ignore) | (host & ignore), !ignore)
}

/// RDMSR/WRMSR on the current CPU.
pub trait MsrHw {
    fn rdmsr(&mut self, msr: u32) -> u64;
    fn wrmsr(&mut self, msr: u32, value: u64);
}

/// One CPU's shared-MSR cache (`kvm_shared_msrs`): host values saved once,
/// written back when the thread returns to userspace or leaves the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSharedMsrs {
    pub host: [u64; 6],
    pub curr: [u64; 6],
    /// Slots whose host value is saved.
    pub host_saved: u8,
    /// The user-return notifier is registered.
    pub registered: bool,
}

impl CpuSharedMsrs {
    /// `kvm_set_shared_msr`: load `value` (under `mask`) into the MSR of
    /// `slot`. Returns true when the caller must register the user-return
    /// notifier (first switched MSR since the last return).
    pub fn set(&mut self, hw: &mut impl MsrHw, slot: usize, value: u64, mask: u64) -> bool {
        let (Some(msr), Some(host), Some(curr)) = (
            SHARED_MSRS.get(slot).copied(),
            self.host.get_mut(slot),
            self.curr.get_mut(slot),
        ) else {
            return false;
        };
        let bit = 1u8 << slot;
        if self.host_saved & bit == 0 {
            let v = hw.rdmsr(msr);
            *host = v;
            *curr = v;
            self.host_saved |= bit;
        }
        if (value ^ *curr) & mask == 0 {
            return false;
        }
        *curr = value;
        hw.wrmsr(msr, value);
        if self.registered {
            false
        } else {
            self.registered = true;
            true
        }
    }

    /// `kvm_on_user_return`: put the host values back.
    pub fn on_user_return(&mut self, hw: &mut impl MsrHw) {
        for (slot, msr) in SHARED_MSRS.iter().enumerate() {
            if let (Some(h), Some(c)) = (self.host.get(slot), self.curr.get_mut(slot))
                && *h != *c
            {
                hw.wrmsr(*msr, *h);
                *c = *h;
            }
        }
        self.registered = false;
        self.host_saved = 0;
    }
}

/// The host CPU state a VM exit does not restore.
pub trait HostCpu: MsrHw {
    /// Current LDT, FS and GS selectors.
    fn ldt_selector(&mut self) -> u16;
    fn fs_selector(&mut self) -> u16;
    fn gs_selector(&mut self) -> u16;
    fn load_fs(&mut self, sel: u16);
    fn load_ldt(&mut self, sel: u16);
    /// Load GS keeping the GS base (`kvm_load_gs` + `wrmsr(GS_BASE)` with
    /// interrupts off, in a function DTrace's FBT skips).
    fn load_gs_keep_base(&mut self, sel: u16, gs_base: u64);
    /// Mark the kernel TSS available and `ltr` it again (its limit came back
    /// as 0x67).
    fn reload_tss(&mut self);
    /// `reset_gdtr_limit`.
    fn reset_gdtr_limit(&mut self);
}

/// `vcpu_vmx.host_state` plus the KERNEL_GS_BASE pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostSwitch {
    pub loaded: bool,
    pub ldt_sel: u16,
    pub fs_sel: u16,
    pub gs_sel: u16,
    pub fs_reload_needed: bool,
    pub gs_ldt_reload_needed: bool,
    pub host_kernel_gs_base: u64,
    pub guest_kernel_gs_base: u64,
}

/// The host fields `vmx_save_host_state` writes into the VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSelectors {
    /// HOST_FS_SELECTOR / HOST_GS_SELECTOR: 0 when the live one has RPL or
    /// TI set, which host-state checks reject (SDM §26.2.3).
    pub fs: u16,
    pub gs: u16,
    pub fs_base: u64,
    pub gs_base: u64,
}

impl HostSwitch {
    /// `vmx_save_host_state`: before entry (preemption off). Returns the
    /// host selector fields for the VMCS, `None` if already saved.
    pub fn save(
        &mut self,
        cpu: &mut impl HostCpu,
        shared: &mut CpuSharedMsrs,
        msrs: &GuestMsrs,
        long_mode: bool,
    ) -> (Option<HostSelectors>, bool) {
        if self.loaded {
            return (None, false);
        }
        self.loaded = true;
        self.ldt_sel = cpu.ldt_selector();
        self.gs_ldt_reload_needed = self.ldt_sel != 0;
        self.fs_sel = cpu.fs_selector();
        self.fs_reload_needed = self.fs_sel & 7 != 0;
        self.gs_sel = cpu.gs_selector();
        if self.gs_sel & 7 != 0 {
            self.gs_ldt_reload_needed = true;
        }
        let sel = HostSelectors {
            fs: if self.fs_reload_needed {
                0
            } else {
                self.fs_sel
            },
            gs: if self.gs_sel & 7 != 0 { 0 } else { self.gs_sel },
            fs_base: cpu.rdmsr(MSR_FS_BASE),
            gs_base: cpu.rdmsr(MSR_GS_BASE),
        };
        if long_mode {
            self.host_kernel_gs_base = cpu.rdmsr(MSR_KERNEL_GS_BASE);
            cpu.wrmsr(MSR_KERNEL_GS_BASE, self.guest_kernel_gs_base);
        }
        let mut register = false;
        for m in msrs.active() {
            register |= shared.set(cpu, usize::from(m.slot), m.data, m.mask);
        }
        (Some(sel), register)
    }

    /// `__vmx_load_host_state`: back to the host's selectors, LDT, TSS and
    /// KERNEL_GS_BASE (on `vcpu_put`, or before touching those MSRs).
    /// `host_gs_base`: the VMCS HOST_GS_BASE. Returns whether anything was
    /// restored (the `host-state-reload` counter).
    pub fn load(&mut self, cpu: &mut impl HostCpu, host_gs_base: u64, long_mode: bool) -> bool {
        if !self.loaded {
            return false;
        }
        self.loaded = false;
        if self.fs_reload_needed {
            cpu.load_fs(self.fs_sel);
        }
        if self.gs_ldt_reload_needed {
            cpu.load_ldt(self.ldt_sel);
            cpu.load_gs_keep_base(self.gs_sel, host_gs_base);
        }
        cpu.reload_tss();
        if long_mode {
            self.guest_kernel_gs_base = cpu.rdmsr(MSR_KERNEL_GS_BASE);
            cpu.wrmsr(MSR_KERNEL_GS_BASE, self.host_kernel_gs_base);
        }
        cpu.reset_gdtr_limit();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    #[derive(Default)]
    struct Cpu {
        msrs: BTreeMap<u32, u64>,
        writes: Vec<(u32, u64)>,
        log: Vec<&'static str>,
        ldt: u16,
        fs: u16,
        gs: u16,
    }
    impl MsrHw for Cpu {
        fn rdmsr(&mut self, msr: u32) -> u64 {
            self.msrs.get(&msr).copied().unwrap_or(0)
        }
        fn wrmsr(&mut self, msr: u32, value: u64) {
            self.msrs.insert(msr, value);
            self.writes.push((msr, value));
        }
    }
    impl HostCpu for Cpu {
        fn ldt_selector(&mut self) -> u16 {
            self.ldt
        }
        fn fs_selector(&mut self) -> u16 {
            self.fs
        }
        fn gs_selector(&mut self) -> u16 {
            self.gs
        }
        fn load_fs(&mut self, _: u16) {
            self.log.push("load_fs");
        }
        fn load_ldt(&mut self, _: u16) {
            self.log.push("load_ldt");
        }
        fn load_gs_keep_base(&mut self, _: u16, _: u64) {
            self.log.push("load_gs");
        }
        fn reload_tss(&mut self) {
            self.log.push("reload_tss");
        }
        fn reset_gdtr_limit(&mut self) {
            self.log.push("gdtr");
        }
    }

    #[test]
    fn efer_transition_keeps_host_bits() {
        // 32-bit guest without NX; host with SCE|LME|LMA|NX.
        let host = EFER_SCE | EFER_LME | EFER_LMA | EFER_NX;
        let (data, mask) = transition_efer(0, host);
        assert_eq!(data, host);
        assert_eq!(mask, !(EFER_NX | EFER_SCE | EFER_LMA | EFER_LME));
        // Long-mode guest without SCE: SCE is the guest's (clear).
        let (data, mask) = transition_efer(EFER_LME | EFER_LMA, host);
        assert_eq!(data & EFER_SCE, 0);
        assert_eq!(mask & EFER_SCE, EFER_SCE);
    }

    #[test]
    fn setup_orders_what_the_mode_needs() {
        let mut g = GuestMsrs::new(|m| m != MSR_TSC_AUX);
        assert_eq!(g.count, 5);
        g.setup(false, false, 0, 0xd01);
        assert_eq!(g.active().len(), 1, "EFER only outside long mode");
        assert_eq!(SHARED_MSRS[usize::from(g.active()[0].slot)], MSR_EFER);
        g.setup(true, true, EFER_SCE | EFER_LMA | EFER_LME, 0xd01);
        let active: Vec<u32> = g
            .active()
            .iter()
            .map(|m| SHARED_MSRS[usize::from(m.slot)])
            .collect();
        assert_eq!(
            active,
            [MSR_SYSCALL_MASK, MSR_LSTAR, MSR_CSTAR, MSR_STAR, MSR_EFER]
        );
        assert!(g.set(MSR_LSTAR, 0xffff_8000_0000_1000));
        assert_eq!(g.get(MSR_LSTAR), Some(0xffff_8000_0000_1000));
        assert!(!g.set(MSR_TSC_AUX, 1), "host lacks it");
    }

    #[test]
    fn shared_msrs_switch_lazily_and_restore_on_return() {
        let mut cpu = Cpu::default();
        cpu.msrs.insert(MSR_LSTAR, 0xaaaa);
        let mut s = CpuSharedMsrs::default();
        assert!(
            s.set(&mut cpu, 1, 0xbbbb, u64::MAX),
            "first switch registers"
        );
        assert_eq!(cpu.msrs[&MSR_LSTAR], 0xbbbb);
        // Same value again: no WRMSR.
        let n = cpu.writes.len();
        assert!(!s.set(&mut cpu, 1, 0xbbbb, u64::MAX));
        assert_eq!(cpu.writes.len(), n);
        s.on_user_return(&mut cpu);
        assert_eq!(cpu.msrs[&MSR_LSTAR], 0xaaaa);
        assert!(!s.registered && s.host_saved == 0);
        // Out-of-range slot: ignored.
        assert!(!s.set(&mut cpu, 9, 1, 1));
    }

    #[test]
    fn host_state_save_and_load() {
        let mut cpu = Cpu {
            ldt: 0,
            fs: 0x2b,
            gs: 0,
            ..Cpu::default()
        };
        cpu.msrs.insert(MSR_KERNEL_GS_BASE, 0x1111);
        cpu.msrs.insert(MSR_GS_BASE, 0xffff_fe00_0000_0000);
        let mut hs = HostSwitch {
            guest_kernel_gs_base: 0x2222,
            ..HostSwitch::default()
        };
        let mut shared = CpuSharedMsrs::default();
        let msrs = GuestMsrs::new(|_| true);
        let (sel, _) = hs.save(&mut cpu, &mut shared, &msrs, true);
        let sel = sel.unwrap();
        assert_eq!(sel.fs, 0, "RPL 3 selector may not be a host selector");
        assert_eq!(sel.gs_base, 0xffff_fe00_0000_0000);
        assert_eq!(cpu.msrs[&MSR_KERNEL_GS_BASE], 0x2222);
        assert_eq!(
            hs.save(&mut cpu, &mut shared, &msrs, true).0,
            None,
            "already saved"
        );
        // The guest changes its KERNEL_GS_BASE (SWAPGS, pass-through).
        cpu.msrs.insert(MSR_KERNEL_GS_BASE, 0x3333);
        assert!(hs.load(&mut cpu, sel.gs_base, true));
        assert_eq!(hs.guest_kernel_gs_base, 0x3333);
        assert_eq!(cpu.msrs[&MSR_KERNEL_GS_BASE], 0x1111);
        assert_eq!(cpu.log, ["load_fs", "reload_tss", "gdtr"]);
        assert!(!hs.load(&mut cpu, 0, true));
    }
}
