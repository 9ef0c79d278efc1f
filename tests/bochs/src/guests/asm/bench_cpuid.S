# CPUID exit round trip (handled in the kernel): N × (xor eax, eax;
# cpuid) against the same loop with a NOP for the CPUID.
        .include "lib.inc"
        .include "bench.inc"
        .globl N
        .set N, 1000
        .globl _start
_start:
        SETUP
        xor eax, eax
        cpuid
        LOOP_BEGIN N
        xor eax, eax
        nop
        LOOP_END
        LOOP_BEGIN N
        xor eax, eax
        cpuid
        LOOP_END
        DONE
        EXC_STUBS
