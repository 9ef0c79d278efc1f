//! The hardware the support check reads: CPUID and RDMSR.

/// The four registers CPUID returns for one leaf/subleaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Read access to the CPU identification the driver decides on.
///
/// The illumos implementation executes `cpuid` and `rdmsr`; tests answer
/// with the values of real (or deliberately broken) CPUs. Implementations
/// are only asked for an MSR once CPUID has said it exists (the check reads
/// `IA32_FEATURE_CONTROL` and the `IA32_VMX_*` MSRs only after CPUID.1:ECX.VMX
/// is set), because `rdmsr` of an absent MSR raises #GP on hardware.
pub trait CpuFeatures {
    /// CPUID with EAX = `leaf`, ECX = `subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
    /// RDMSR of `msr`.
    fn read_msr(&self, msr: u32) -> u64;
}
