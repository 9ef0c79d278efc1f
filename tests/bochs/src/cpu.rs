//! CPU access for the host: CPUID, MSRs, control registers, the TSC, and the
//! `kvm_vmx::CpuFeatures` implementation the shared support check reads.

use core::arch::asm;
use kvm_vmx::{CpuFeatures, CpuidResult};

/// CPUID with EAX = `leaf`, ECX = `subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// RDMSR.
///
/// # Safety
/// `msr` must exist on this CPU (otherwise #GP, fatal in this host).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// WRMSR.
///
/// # Safety
/// `msr` must exist and accept `value`; the write may change how the CPU
/// behaves.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    let (lo, hi) = (value as u32, (value >> 32) as u32);
    // SAFETY: the caller guarantees the write is valid.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") lo, in("edx") hi, options(nostack, preserves_flags))
    }
}

/// RDTSC.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter (CR4.TSD is clear).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

macro_rules! read_control_register {
    ($read:ident, $reg:literal) => {
        #[doc = concat!("Reads ", $reg, ".")]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading a control register has no side effects at CPL 0.
            unsafe { asm!(concat!("mov {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) }
            v
        }
    };
}

macro_rules! control_register {
    ($read:ident, $write:ident, $reg:literal) => {
        read_control_register!($read, $reg);

        #[doc = concat!("Writes ", $reg, ".")]
        ///
        /// # Safety
        /// The value must keep the host running (paging, protection, VMX).
        pub unsafe fn $write(v: u64) {
            // SAFETY: the caller guarantees the new value is valid.
            unsafe { asm!(concat!("mov ", $reg, ", {}"), in(reg) v, options(nostack, preserves_flags)) }
        }
    };
}

control_register!(read_cr0, write_cr0, "cr0");
read_control_register!(read_cr3, "cr3");
control_register!(read_cr4, write_cr4, "cr4");

/// The CPU the host runs on, as `kvm_vmx::check_support` sees it. It reads
/// MSRs only when asked, and the check asks only for MSRs CPUID promised.
pub struct BareMetalCpu;

impl CpuFeatures for BareMetalCpu {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        cpuid(leaf, subleaf)
    }

    fn read_msr(&self, msr: u32) -> u64 {
        // SAFETY: the `CpuFeatures` contract: callers read only MSRs that
        // CPUID said exist (the VMX MSRs after CPUID.1:ECX.VMX).
        unsafe { rdmsr(msr) }
    }
}

/// The CPU's vendor and brand strings, for the banner.
pub fn identity() -> ([u8; 12], [u8; 48]) {
    let v = cpuid(0, 0);
    let mut vendor = [0u8; 12];
    for (dst, src) in vendor.chunks_exact_mut(4).zip([v.ebx, v.edx, v.ecx]) {
        dst.copy_from_slice(&src.to_le_bytes());
    }
    let mut brand = [0u8; 48];
    if cpuid(0x8000_0000, 0).eax >= 0x8000_0004 {
        for (chunk, leaf) in brand.chunks_exact_mut(16).zip(0x8000_0002u32..) {
            let r = cpuid(leaf, 0);
            for (dst, src) in chunk.chunks_exact_mut(4).zip([r.eax, r.ebx, r.ecx, r.edx]) {
                dst.copy_from_slice(&src.to_le_bytes());
            }
        }
    }
    (vendor, brand)
}

/// The printable part of a CPUID string (up to the first NUL, trimmed).
pub fn cpuid_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = bytes.get(..end).unwrap_or(&[]);
    core::str::from_utf8(s).unwrap_or("?").trim()
}
