# RDMSR/WRMSR of MSRs the CPU does not have: #GP(0) on the instruction,
# reported by the guest's own #GP handler, which resumes after it. A
# known MSR (IA32_APIC_BASE) reads without a fault first.
        .include "lib.inc"
        .globl _start
_start:
        SETUP
        mov ecx, 0x1b
        rdmsr
        REPORT
        ON_FAULT 1f
        mov ecx, 0x12345678
        .globl msr_rdmsr
msr_rdmsr:
        rdmsr
1:      ON_FAULT 2f
        mov ecx, 0x12345678
        xor eax, eax
        xor edx, edx
        .globl msr_wrmsr
msr_wrmsr:
        wrmsr
2:      ON_FAULT 3f
        mov ecx, 0xc0001234
        .globl msr_rdmsr_amd
msr_rdmsr_amd:
        rdmsr
3:      ON_FAULT 4f
        # x2APIC ID register while the APIC is in xAPIC mode (x2APIC not
        # even in CPUID): #GP on hardware.
        mov ecx, 0x802
        .globl msr_rdmsr_x2apic
msr_rdmsr_x2apic:
        rdmsr
4:      mov dword ptr [RESUME], 0
        mov eax, 0x600d
        REPORT
        DONE
        EXC_STUBS
