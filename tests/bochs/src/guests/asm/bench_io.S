# I/O exit round trip through the VMM (KVM_EXIT_IO, KVM_RUN again):
# N × OUT to PORT_BENCH against the same loop with a NOP.
        .include "lib.inc"
        .include "bench.inc"
        .globl N
        .set N, 1000
        .globl _start
_start:
        SETUP
        out PORT_BENCH, al
        LOOP_BEGIN N
        nop
        LOOP_END
        LOOP_BEGIN N
        out PORT_BENCH, al
        LOOP_END
        DONE
        EXC_STUBS
