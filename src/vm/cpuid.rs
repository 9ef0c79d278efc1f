//! KVM_GET_SUPPORTED_CPUID: port of `kvm_dev_ioctl_get_supported_cpuid` and
//! `do_cpuid_ent` (kvm_x86.c:1693–1884, inventory §2.2) over the host CPU
//! of [`kvm_vmx::CpuFeatures`].
//!
//! Leaves 0..=min(max basic, 0xB), then 0x80000000..=min(max extended,
//! 0x8000001A); leaf 0 and 0x80000000 clamp EAX to those limits; leaf 1 and
//! 0x80000001 keep only the features the C lists (XSAVE, OSXSAVE, AVX,
//! PCLMULQDQ, RDRAND, TSC-deadline and the rest masked off) and leaf 1 gets
//! X2APIC (emulated); leaf 2 repeats `EAX[7:0]` times (stateful); leaves 4
//! and 0xB list subleaves until the type field is 0; every other leaf is
//! the host's value. NX follows the host's EFER.NX, GBPAGES the EPT 1 GiB
//! capability, RDTSCP the VMX "enable RDTSCP" control.
//!
//! The table stops when `out` is full; the dispatcher then answers E2BIG
//! (the produced count must be below the caller's `nent`), as the C did.

use kvm_ioctl::abi::{
    KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_CPUID_FLAG_STATE_READ_NEXT, KVM_CPUID_FLAG_STATEFUL_FUNC,
    kvm_cpuid_entry2,
};
use kvm_vmx::CpuFeatures;

const fn bit(n: u32) -> u32 {
    1 << n
}

/// CPUID.1:EDX the C passes through (`kvm_supported_word0_x86_features`):
/// FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36
/// CLFLSH MMX FXSR XMM XMM2 SELFSNOOP.
pub const WORD0: u32 = bit(0)
    | bit(1)
    | bit(2)
    | bit(3)
    | bit(4)
    | bit(5)
    | bit(6)
    | bit(7)
    | bit(8)
    | bit(9)
    | bit(11)
    | bit(12)
    | bit(13)
    | bit(14)
    | bit(15)
    | bit(16)
    | bit(17)
    | bit(19)
    | bit(23)
    | bit(24)
    | bit(25)
    | bit(26)
    | bit(27);

/// CPUID.80000001H:EDX before the conditional bits (`word1`): FPU..APIC,
/// SYSCALL, MTRR PGE MCA CMOV PAT PSE36, MMXEXT MMX FXSR FXSR_OPT, LM,
/// 3DNOWEXT 3DNOW.
pub const WORD1: u32 = 0x3ff
    | bit(11)
    | bit(12)
    | bit(13)
    | bit(14)
    | bit(15)
    | bit(16)
    | bit(17)
    | bit(22)
    | bit(23)
    | bit(24)
    | bit(25)
    | bit(29)
    | bit(30)
    | bit(31);
/// NX (0x80000001:EDX).
pub const F_NX: u32 = bit(20);
/// GBPAGES (0x80000001:EDX).
pub const F_GBPAGES: u32 = bit(26);
/// RDTSCP (0x80000001:EDX).
pub const F_RDTSCP: u32 = bit(27);

/// CPUID.1:ECX (`word4`): SSE3 SSSE3 CX16 SSE4.1 SSE4.2 X2APIC MOVBE POPCNT
/// AES.
pub const WORD4: u32 =
    bit(0) | bit(9) | bit(13) | bit(19) | bit(20) | bit(21) | bit(22) | bit(23) | bit(25);
/// CPUID.(EAX=7,ECX=0):EBX: the structured extended features a guest may
/// use without the VMM's help: FSGSBASE BMI1 SMEP BMI2 ERMS RDSEED ADX
/// SMAP CLFLUSHOPT. The C driver passed the host's leaf 7 through
/// unfiltered, offering features nothing virtualises (TSC_ADJUST's MSR,
/// INVPCID without its VM-execution control, TSX, MPX, AVX2/AVX-512
/// without XSAVE); kvm-unit-tests' tsc_adjust #GPs on it.
pub const LEAF7_EBX: u32 =
    bit(0) | bit(3) | bit(7) | bit(8) | bit(9) | bit(18) | bit(19) | bit(20) | bit(23);

/// X2APIC (1:ECX), always set: the LAPIC model emulates it.
pub const F_X2APIC: u32 = bit(21);

/// CPUID.80000001H:ECX (`word6`): LAHF_LM CMP_LEGACY SVM CR8_LEGACY ABM
/// SSE4A MISALIGNSSE 3DNOWPREFETCH SSE5.
pub const WORD6: u32 =
    bit(0) | bit(1) | bit(2) | bit(4) | bit(5) | bit(6) | bit(7) | bit(8) | bit(11);

const MSR_EFER: u32 = 0xc000_0080;
const EFER_NX: u64 = 1 << 11;
const MSR_IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
const MSR_IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
const MSR_IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;

/// The host features that depend on MSRs: (NX, 1 GiB EPT pages, RDTSCP
/// control). The VMX MSRs are read only if CPUID.1:ECX.VMX says they exist
/// and the secondary controls do.
fn msr_features(cpu: &impl CpuFeatures) -> (bool, bool, bool) {
    let nx = cpu.read_msr(MSR_EFER) & EFER_NX != 0;
    if cpu.cpuid(1, 0).ecx & bit(5) == 0 {
        return (nx, false, false);
    }
    let proc = cpu.read_msr(MSR_IA32_VMX_PROCBASED_CTLS) >> 32;
    if proc & (1 << 31) == 0 {
        return (nx, false, false);
    }
    let proc2 = cpu.read_msr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32;
    let rdtscp = proc2 & (1 << 3) != 0;
    let ept = proc2 & (1 << 1) != 0;
    let gb = ept && cpu.read_msr(MSR_IA32_VMX_EPT_VPID_CAP) & (1 << 17) != 0;
    (nx, gb, rdtscp)
}

/// Appends entries to `out` while room is left.
struct Table<'a> {
    out: &'a mut [kvm_cpuid_entry2],
    n: usize,
}

impl Table<'_> {
    fn full(&self) -> bool {
        self.n >= self.out.len()
    }

    /// `do_cpuid_1_ent` into the next slot; `None` when full.
    fn push(&mut self, cpu: &impl CpuFeatures, function: u32, index: u32) -> Option<usize> {
        let slot = self.out.get_mut(self.n)?;
        let r = cpu.cpuid(function, index);
        *slot = kvm_cpuid_entry2 {
            function,
            index,
            flags: 0,
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
            padding: [0; 3],
        };
        self.n += 1;
        Some(self.n - 1)
    }

    fn get(&mut self, i: usize) -> Option<&mut kvm_cpuid_entry2> {
        self.out.get_mut(i)
    }
}

/// Port of `do_cpuid_ent`: leaf `function` (and its extra entries).
fn do_cpuid_ent(
    t: &mut Table<'_>,
    cpu: &impl CpuFeatures,
    function: u32,
    feat: (bool, bool, bool),
) {
    let Some(i) = t.push(cpu, function, 0) else {
        return;
    };
    let (nx, gb, rdtscp) = feat;
    match function {
        0 => {
            if let Some(e) = t.get(i) {
                e.eax = e.eax.min(0xb);
            }
        }
        1 => {
            if let Some(e) = t.get(i) {
                e.edx &= WORD0;
                e.ecx &= WORD4;
                e.ecx |= F_X2APIC;
            }
        }
        2 => {
            let times = t.get(i).map_or(0, |e| e.eax & 0xff);
            if let Some(e) = t.get(i) {
                e.flags |= KVM_CPUID_FLAG_STATEFUL_FUNC | KVM_CPUID_FLAG_STATE_READ_NEXT;
            }
            let mut k = 1;
            while k < times && !t.full() {
                if let Some(j) = t.push(cpu, function, 0)
                    && let Some(e) = t.get(j)
                {
                    e.flags |= KVM_CPUID_FLAG_STATEFUL_FUNC;
                }
                k += 1;
            }
        }
        4 | 0xb => {
            if let Some(e) = t.get(i) {
                e.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
            }
            let mut prev = i;
            let mut sub = 1u32;
            while !t.full() {
                let more = t.get(prev).is_some_and(|e| {
                    if function == 4 {
                        e.eax & 0x1f != 0
                    } else {
                        e.ecx & 0xff00 != 0
                    }
                });
                if !more {
                    break;
                }
                let Some(j) = t.push(cpu, function, sub) else {
                    break;
                };
                if let Some(e) = t.get(j) {
                    e.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
                }
                prev = j;
                sub += 1;
            }
        }
        7 => {
            // Sub-leaf 0 only (EAX = 0: no more sub-leaves), filtered.
            if let Some(e) = t.get(i) {
                e.eax = 0;
                e.ebx &= LEAF7_EBX;
                e.ecx = 0;
                e.edx = 0;
            }
        }
        0xa => {
            // Architectural performance monitoring: the C driver passed the
            // host's leaf through, but no PMU MSR is virtualised (RDMSR of
            // IA32_PMCx #GPs), so a truthful answer is "no PMU" (version 0),
            // as QEMU's `pmu=off`. Found by kvm-unit-tests' `pmu` on Bochs.
            if let Some(e) = t.get(i) {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
        }
        0x8000_0000 => {
            if let Some(e) = t.get(i) {
                e.eax = e.eax.min(0x8000_001a);
            }
        }
        0x8000_0001 => {
            let word1 = WORD1
                | if nx { F_NX } else { 0 }
                | if gb { F_GBPAGES } else { 0 }
                | if rdtscp { F_RDTSCP } else { 0 };
            if let Some(e) = t.get(i) {
                e.edx &= word1;
                e.ecx &= WORD6;
            }
        }
        _ => {}
    }
}

/// Port of `kvm_dev_ioctl_get_supported_cpuid`: fills `out` and returns
/// how many entries were produced (`out.len()` when it ran out of room).
pub fn supported_cpuid(cpu: &impl CpuFeatures, out: &mut [kvm_cpuid_entry2]) -> usize {
    let feat = msr_features(cpu);
    let mut t = Table { out, n: 0 };
    do_cpuid_ent(&mut t, cpu, 0, feat);
    let limit = t.out.first().map_or(0, |e| e.eax);
    let mut f = 1;
    while f <= limit && !t.full() {
        do_cpuid_ent(&mut t, cpu, f, feat);
        f += 1;
    }
    if t.full() {
        return t.n;
    }
    let ext = t.n;
    do_cpuid_ent(&mut t, cpu, 0x8000_0000, feat);
    let limit = t.out.get(ext).map_or(0, |e| e.eax);
    let mut f = 0x8000_0001u32;
    while f <= limit && !t.full() {
        do_cpuid_ent(&mut t, cpu, f, feat);
        f += 1;
    }
    t.n
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_vmx::CpuidResult;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    struct Cpu(BTreeMap<(u32, u32), CpuidResult>);
    impl CpuFeatures for Cpu {
        fn cpuid(&self, leaf: u32, sub: u32) -> CpuidResult {
            self.0.get(&(leaf, sub)).copied().unwrap_or_default()
        }
        fn read_msr(&self, msr: u32) -> u64 {
            match msr {
                MSR_EFER => EFER_NX,
                _ => 0,
            }
        }
    }

    fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
        CpuidResult { eax, ebx, ecx, edx }
    }

    fn cpu() -> Cpu {
        let mut m = BTreeMap::new();
        m.insert((0, 0), r(0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69));
        m.insert((1, 0), r(0x306a9, 0, 0xffff_ffff, 0xffff_ffff));
        m.insert((2, 0), r(0x7603_6301, 0, 0, 0));
        m.insert((4, 0), r(0x121, 1, 2, 3));
        m.insert((4, 1), r(0x122, 1, 2, 3));
        m.insert((4, 2), r(0, 0, 0, 0));
        m.insert((7, 0), r(2, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff));
        m.insert((0xb, 0), r(1, 2, 0x100, 0));
        m.insert((0xb, 1), r(4, 8, 0x201, 0));
        m.insert((0x8000_0000, 0), r(0x8000_0008, 0, 0, 0));
        m.insert((0x8000_0001, 0), r(0, 0, 0xffff_ffff, 0xffff_ffff));
        Cpu(m)
    }

    #[test]
    fn leaves_are_clamped_filtered_and_expanded_as_the_c_does() {
        let mut out = [kvm_cpuid_entry2::default(); 40];
        let n = supported_cpuid(&cpu(), &mut out);
        let got: Vec<(u32, u32)> = out[..n].iter().map(|e| (e.function, e.index)).collect();
        // 0, 1, 2, 3, 4.0, 4.1, 4.2, 5..=0xa, 0xb.0, 0xb.1, 0xb.2, 8000_0000..=8000_0008
        let mut want = vec![(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2)];
        want.extend((5..=0xa).map(|f| (f, 0)));
        want.extend([(0xb, 0), (0xb, 1), (0xb, 2)]);
        want.extend((0x8000_0000..=0x8000_0008).map(|f| (f, 0)));
        assert_eq!(got, want);
        assert_eq!(out[0].eax, 0xb, "leaf 0 clamped to 0xB");
        assert_eq!(out[1].edx, WORD0);
        assert_eq!(out[1].ecx, WORD4);
        assert_eq!(out[1].ecx & (1 << 26), 0, "XSAVE masked");
        assert_eq!(
            out[2].flags,
            KVM_CPUID_FLAG_STATEFUL_FUNC | KVM_CPUID_FLAG_STATE_READ_NEXT
        );
        assert_eq!(out[4].flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
        let ext1 = out[..n].iter().find(|e| e.function == 0x8000_0001).unwrap();
        assert_eq!(ext1.edx, WORD1 | F_NX, "NX from EFER; no VMX: no GB/RDTSCP");
        assert_eq!(ext1.ecx, WORD6);
        let l7 = out[..n].iter().find(|e| e.function == 7).unwrap();
        assert_eq!((l7.eax, l7.ecx, l7.edx), (0, 0, 0));
        assert_eq!(
            l7.ebx & (1 << 1),
            0,
            "no TSC_ADJUST (no IA32_TSC_ADJUST MSR)"
        );
        assert_eq!(l7.ebx & (1 << 10), 0, "no INVPCID");
        assert_eq!(l7.ebx & (1 << 5), 0, "no AVX2 without XSAVE");
        assert_ne!(l7.ebx & (1 << 7), 0, "SMEP is the guest's own");
    }

    #[test]
    fn a_full_table_reports_its_size_so_the_dispatcher_says_e2big() {
        for room in 1..25 {
            let mut out = vec![kvm_cpuid_entry2::default(); room];
            assert_eq!(supported_cpuid(&cpu(), &mut out), room);
        }
        let mut out = vec![kvm_cpuid_entry2::default(); 40];
        assert_eq!(supported_cpuid(&cpu(), &mut out), 25);
    }
}
