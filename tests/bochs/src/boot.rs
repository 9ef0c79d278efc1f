//! From the loader to Rust: the multiboot header, the 32-bit entry point, the
//! identity map, long mode and the call to `kmain`.
//!
//! The loader (our ROM, or any multiboot v1 loader such as QEMU's `-kernel`)
//! enters `boot_entry32` in 32-bit protected mode with paging off, EAX =
//! 0x2BADB002 and EBX = the multiboot information. We identity map the first
//! 4 GiB with 2 MiB pages (the top GiB, where the LAPIC and IOAPIC live,
//! uncached), enable PAE + EFER.LME + paging, and jump to 64-bit code on the
//! boot stack. Physical address == virtual address everywhere in the host.

use core::arch::global_asm;

/// Bytes of the boot stack (the only stack: one CPU, no interrupts).
pub const STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .set MB_MAGIC, 0x1badb002
    .set MB_FLAGS, 0x00010002           /* bit 1: memory info; bit 16: address fields */

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long multiboot_header              /* header_addr */
    .long __image_start                 /* load_addr */
    .long __load_end                    /* load_end_addr */
    .long __bss_end                     /* bss_end_addr */
    .long boot_entry32                  /* entry_addr */

    .section .text.boot32, "ax"
    .code32
    .globl boot_entry32
boot_entry32:
    cli
    cld
    movl $boot_stack_top, %esp
    movl %eax, boot_mb_magic
    movl %ebx, boot_mb_info

    /* long mode? (CPUID.80000001h:EDX.LM[29]) */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb .Lno_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc .Lno_long_mode

    /* 2048 PDEs of 2 MiB (4 GiB); the fourth GiB uncached (PCD|PWT) */
    xorl %ecx, %ecx
.Lpde:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax                     /* P | RW | PS */
    cmpl $1536, %ecx
    jb .Lpde_cached
    orl $0x18, %eax
.Lpde_cached:
    movl %eax, boot_pd(,%ecx,8)
    movl %ecx, %edx
    shrl $11, %edx
    movl %edx, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb .Lpde
    /* 4 PDPTEs -> the 4 page directories */
    xorl %ecx, %ecx
.Lpdpte:
    movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jb .Lpdpte
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4

    movl %cr4, %eax
    orl $0x20, %eax                     /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx              /* IA32_EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010021, %eax               /* PG | WP | NE | PE */
    movl %eax, %cr0
    lgdt boot_gdtr
    ljmp $0x08, $boot_entry64

.Lno_long_mode:
    movl $boot_msg_no_lm, %esi
.Lputs:
    lodsb
    testb %al, %al
    jz .Lquit
    outb %al, $0xe9
    jmp .Lputs
.Lquit:
    movl $boot_msg_shutdown, %esi
    movw $0x8900, %dx
.Lquit_loop:
    lodsb
    testb %al, %al
    jz .Lhalt32
    outb %al, %dx
    jmp .Lquit_loop
.Lhalt32:
    cli
    hlt
    jmp .Lhalt32

    .code64
boot_entry64:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_mb_magic, %edi
    movl boot_mb_info, %esi
    call kmain
.Lhalt64:
    cli
    hlt
    jmp .Lhalt64

    .section .rodata.boot, "a"
boot_msg_no_lm:
    .asciz "host: the CPU has no long mode\nRESULT: FAIL\n"
boot_msg_shutdown:
    .asciz "Shutdown"

    .section .data.boot_gdt, "aw"
    .balign 16
    .globl boot_gdt
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
    .quad 0, 0                          /* 0x18: TSS, filled in by descriptors.rs */
boot_gdt_end:
    .balign 8
    .globl boot_gdtr
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    .balign 16
boot_stack:
    .skip {stack_size}
boot_stack_top:
boot_mb_magic:
    .skip 4
boot_mb_info:
    .skip 4
"#,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static __image_start: u8;
    static __bss_end: u8;
}

/// The host image's physical extent: `[start, end)`, bss included.
pub fn image_extent() -> (u64, u64) {
    // Linker-defined symbols: only their addresses mean anything.
    let start = (&raw const __image_start) as u64;
    let end = (&raw const __bss_end) as u64;
    (start, end)
}
