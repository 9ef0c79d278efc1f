# Accesses to a guest-physical address with no memslot and no device
# (MMIO_BASE, 1 GiB: above guest RAM, below the PCI hole's devices).
# Expected: one KVM_EXIT_MMIO per access with its address, length and
# direction; writes carry the data, reads complete with what the VMM
# answers, which the guest reports back.
        .include "lib.inc"
        .set MMIO_BASE, 0x40000000
        .globl _start
_start:
        SETUP
        mov byte ptr [MMIO_BASE], 0x5a
        mov word ptr [MMIO_BASE + 0x102], 0xbeef
        mov dword ptr [MMIO_BASE + 0x204], 0xdeadbeef
        movzx eax, byte ptr [MMIO_BASE + 0x301]
        REPORT
        movzx eax, word ptr [MMIO_BASE + 0x402]
        REPORT
        mov eax, dword ptr [MMIO_BASE + 0x504]
        REPORT
        DONE
        EXC_STUBS
