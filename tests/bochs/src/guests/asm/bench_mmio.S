# MMIO emulated in the kernel: N × a write of IOREGSEL of the in-kernel
# IOAPIC (0xfec00000) against the same write to guest RAM.
        .include "lib.inc"
        .include "bench.inc"
        .globl N
        .set N, 1000
        .set IOREGSEL, 0xfec00000
        .globl _start
_start:
        SETUP
        mov dword ptr [IOREGSEL], 1
        LOOP_BEGIN N
        mov dword ptr [SCRATCH], 1
        LOOP_END
        LOOP_BEGIN N
        mov dword ptr [IOREGSEL], 1
        LOOP_END
        # IOREGSEL reads back what was written last: proves the writes
        # reached the IOAPIC.
        mov dword ptr [IOREGSEL], 0x10
        mov eax, dword ptr [IOREGSEL]
        REPORT
        DONE
        EXC_STUBS
