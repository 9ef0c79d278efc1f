//! VM entry and the VM-exit landing point, as one naked function: it saves
//! the host's callee-saved registers, points HOST_RSP/HOST_RIP at itself,
//! loads the guest's GPRs and executes VMLAUNCH or VMRESUME. A VM exit lands
//! at label 2 with RSP = HOST_RSP, stores the guest's GPRs back and returns
//! 0 to the caller as if the call had just finished. A failed entry returns
//! 1 (VMfailInvalid) or 2 (VMfailValid). No SSE or x87 state is touched.

/// The guest registers the VMCS does not hold. Offsets are used by
/// `vm_enter`: do not reorder.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// Enters the guest of the current VMCS until its next VM exit.
///
/// # Safety
/// The current VMCS must be complete (controls, host and guest state);
/// `launched` must be 0 for its first entry after VMCLEAR and 1 afterwards.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn vm_enter(regs: *mut GuestRegs, launched: u64) -> u64 {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        // HOST_RSP = here (the saved `regs` is at [rsp]); HOST_RIP = 2f.
        "mov eax, {host_rsp}",
        "vmwrite rax, rsp",
        "lea rdx, [rip + 2f]",
        "mov eax, {host_rip}",
        "vmwrite rax, rdx",
        "test rsi, rsi",
        "mov rbx, [rdi + 8]",
        "mov rcx, [rdi + 16]",
        "mov rdx, [rdi + 24]",
        "mov rsi, [rdi + 32]",
        "mov rbp, [rdi + 48]",
        "mov r8, [rdi + 56]",
        "mov r9, [rdi + 64]",
        "mov r10, [rdi + 72]",
        "mov r11, [rdi + 80]",
        "mov r12, [rdi + 88]",
        "mov r13, [rdi + 96]",
        "mov r14, [rdi + 104]",
        "mov r15, [rdi + 112]",
        "mov rax, [rdi]",
        "mov rdi, [rdi + 40]",
        "jnz 3f",
        "vmlaunch",
        "jmp 4f",
        "3:",
        "vmresume",
        "4:",
        // Still here: the entry failed. CF = VMfailInvalid, ZF = VMfailValid.
        "mov eax, 1",
        "mov ecx, 2",
        "cmovz eax, ecx",
        "add rsp, 8",
        "jmp 5f",
        "2:",
        // VM exit: RSP = HOST_RSP, RFLAGS = 0x2, guest GPRs live.
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi], rax",
        "mov [rdi + 8], rbx",
        "mov [rdi + 16], rcx",
        "mov [rdi + 24], rdx",
        "mov [rdi + 32], rsi",
        "mov [rdi + 48], rbp",
        "mov [rdi + 56], r8",
        "mov [rdi + 64], r9",
        "mov [rdi + 72], r10",
        "mov [rdi + 80], r11",
        "mov [rdi + 88], r12",
        "mov [rdi + 96], r13",
        "mov [rdi + 104], r14",
        "mov [rdi + 112], r15",
        "pop rax",
        "mov [rdi + 40], rax",
        "add rsp, 8",
        "xor eax, eax",
        "5:",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        host_rsp = const x86::vmx::vmcs::host::RSP,
        host_rip = const x86::vmx::vmcs::host::RIP,
    )
}
