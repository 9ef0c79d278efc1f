# EPT violation on first touch: a write to each of N2M 2 MiB regions of
# guest RAM never touched before (slot 0: 2 MiB EPT pages), then to each
# of N4K pages of a dirty-logged memslot (4 KiB EPT pages); the second
# pass over the same addresses, now mapped, is the baseline.
        .include "lib.inc"
        .include "bench.inc"
        .set BASE2M, 0x400000
        .globl N2M
        .set N2M, 12
        .set BASE4K, 0x2000000
        .globl N4K
        .set N4K, 256
        .globl _start
_start:
        SETUP
        mov ebx, BASE2M
        LOOP_BEGIN N2M
        mov [ebx], eax
        add ebx, 0x200000
        LOOP_END
        mov ebx, BASE2M
        LOOP_BEGIN N2M
        mov [ebx], eax
        add ebx, 0x200000
        LOOP_END
        mov ebx, BASE4K
        LOOP_BEGIN N4K
        mov [ebx], eax
        add ebx, 0x1000
        LOOP_END
        mov ebx, BASE4K
        LOOP_BEGIN N4K
        mov [ebx], eax
        add ebx, 0x1000
        LOOP_END
        DONE
        EXC_STUBS
