# VMCALL is KVM's hypercall: an unknown number returns -KVM_ENOSYS
# (-1000, kvm_para.h) in EAX, KVM_HC_VAPIC_POLL_IRQ (1) returns 0; no
# exception either way.
        .include "lib.inc"
        .globl _start
_start:
        SETUP
        mov eax, 0xdead
        vmcall
        REPORT
        mov eax, 1
        vmcall
        REPORT
        DONE
        EXC_STUBS
