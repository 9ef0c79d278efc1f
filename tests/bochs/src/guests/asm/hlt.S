# HLT with interrupts off and no timer: the VCPU halts for good. The VMM
# must still get the CPU back at the end of its time slice, and the guest
# must not run past the HLT.
        .include "lib.inc"
        .globl _start
_start:
        SETUP
        mov eax, 0x4a17
        REPORT
        cli
        .globl hlt_hlt
hlt_hlt:
        hlt
        mov eax, 0xbad
        REPORT
        DONE
        EXC_STUBS
