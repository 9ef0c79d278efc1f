# Port I/O to ports nothing claims: each access a KVM_EXIT_IO with its
# port, size, direction and (OUT) data; INs complete with what the VMM
# answers, which the guest reports back. String I/O (REP OUTSB/INSW)
# moves every element.
        .include "lib.inc"
        .globl _start
_start:
        SETUP
        mov al, 0x5a
        out 0x77, al
        mov dx, 0x1234
        mov ax, 0xbeef
        out dx, ax
        mov dx, 0xabcd
        mov eax, 0xdeadbeef
        out dx, eax
        mov dx, 0x0123
        xor eax, eax
        in al, dx
        REPORT
        mov dx, 0x4567
        xor eax, eax
        in ax, dx
        REPORT
        in eax, 0x99
        REPORT
        mov dword ptr [SCRATCH], 0x64636261
        mov esi, SCRATCH
        mov ecx, 4
        mov dx, 0x3333
        cld
        rep outsb
        mov dword ptr [SCRATCH], 0
        mov edi, SCRATCH
        mov ecx, 2
        mov dx, 0x4444
        rep insw
        mov eax, dword ptr [SCRATCH]
        REPORT
        DONE
        EXC_STUBS
