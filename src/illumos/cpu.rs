//! `CpuFeatures` for the CPU the kernel thread runs on.

use kvm_vmx::{CpuFeatures, CpuidResult};

/// The executing CPU, read with `cpuid` and `rdmsr`.
pub struct HostCpu;

impl CpuFeatures for HostCpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    fn read_msr(&self, msr: u32) -> u64 {
        // SAFETY: ring 0; `check_support` reads only MSRs whose presence
        // CPUID has already established, so `rdmsr` does not #GP.
        unsafe { x86::msr::rdmsr(msr) }
    }
}
