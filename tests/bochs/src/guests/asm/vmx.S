# VMX instructions in a guest that has no VMX (CPUID.1:ECX.VMX clear,
# CR4.VMXE clear): #UD for each, which the guest's handler reports and
# resumes after.
        .include "lib.inc"
        .set VMXREGION, 0x4000
        .globl _start
_start:
        SETUP
        ON_FAULT 1f
        .globl vmx_vmxon
vmx_vmxon:
        vmxon [VMXREGION]
1:      ON_FAULT 1f
        .globl vmx_vmclear
vmx_vmclear:
        vmclear [VMXREGION]
1:      ON_FAULT 1f
        .globl vmx_vmptrld
vmx_vmptrld:
        vmptrld [VMXREGION]
1:      ON_FAULT 1f
        .globl vmx_vmptrst
vmx_vmptrst:
        vmptrst [VMXREGION]
1:      ON_FAULT 1f
        mov ecx, 0x6c00
        .globl vmx_vmread
vmx_vmread:
        vmread eax, ecx
1:      ON_FAULT 1f
        .globl vmx_vmwrite
vmx_vmwrite:
        vmwrite ecx, eax
1:      ON_FAULT 1f
        .globl vmx_vmlaunch
vmx_vmlaunch:
        vmlaunch
1:      ON_FAULT 1f
        .globl vmx_vmresume
vmx_vmresume:
        vmresume
1:      ON_FAULT 1f
        .globl vmx_vmxoff
vmx_vmxoff:
        vmxoff
1:      ON_FAULT 1f
        mov eax, 1
        .globl vmx_invept
vmx_invept:
        invept eax, [VMXREGION]
1:      ON_FAULT 1f
        .globl vmx_invvpid
vmx_invvpid:
        invvpid eax, [VMXREGION]
1:      mov dword ptr [RESUME], 0
        mov eax, 0x600d
        REPORT
        DONE
        EXC_STUBS
