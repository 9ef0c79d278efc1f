# Triple fault: an IDT with limit 0, then #UD. The #UD cannot be
# delivered (#GP), nor the #GP (#DF), nor the #DF: shutdown. Expected:
# the marker, then KVM_EXIT_SHUTDOWN.
        .include "lib.inc"
        .globl _start
_start:
        SETUP_SEGMENTS
        mov eax, 0x7f1e0001
        REPORT
        mov word ptr [IDTR], 0
        mov dword ptr [IDTR + 2], 0
        lidt [IDTR]
        ud2
        mov eax, 0xbad
        REPORT
        DONE
