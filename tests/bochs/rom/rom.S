/*
 * rom.S - the 64 KiB system ROM Bochs runs from the reset vector.
 *
 * It is not a BIOS: Bochs itself copies the test host's flat image to 1 MiB
 * (bochsrc "optramimage1"), so this ROM only plays a multiboot (v1) loader:
 *
 *   1. real mode at F000:FFF0 -> A20 on, flat GDT, 32-bit protected mode,
 *      then touch RAM in 128 KiB steps up to 16 MiB (see below);
 *   2. memory size from the CMOS (what a BIOS would report through e820):
 *      0x30/0x31 = KiB above 1 MiB (up to 64 MiB), 0x34/0x35 = 64 KiB blocks
 *      above 16 MiB;
 *   3. find the multiboot header in the image's first 8 KiB, check its
 *      checksum and that it carries the address fields (flag 16);
 *   4. zero the image's bss, fill a multiboot_info (flags = MEM) and jump to
 *      the entry point with EAX = 0x2BADB002, EBX = &multiboot_info.
 *
 * Errors are printed on port 0xE9 and end the simulation through Bochs'
 * shutdown port (0x8900).
 */
        .set    IMAGE_BASE,     0x00100000
        .set    HEADER_SCAN,    0x2000
        .set    MB_MAGIC,       0x1badb002
        .set    MB_BOOT_MAGIC,  0x2badb002
        .set    MB_AOUT_KLUDGE, 0x00010000
        .set    MB_INFO,        0x00009000
        .set    MB_INFO_MEM,    0x00000001
        .set    STACK_TOP,      0x00008000
        .set    ROM_BASE,       0x000f0000
        .set    RAM_BLOCK,      0x00020000      /* Bochs' BX_MEM_BLOCK_LEN */
        .set    IMAGE_TOUCH_END, 0x01000000     /* images may reach 16 MiB */

        .section .text
        .code16
rom_start16:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $STACK_TOP, %sp
        inb     $0x92, %al              /* system control port A: fast A20 */
        orb     $0x02, %al
        andb    $0xfe, %al              /* never the reset bit */
        outb    %al, $0x92
        lgdtl   %cs:(rom_gdtr - rom_start16)
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $rom_start32

        .code32
rom_start32:
        movl    $0x10, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs
        movl    %eax, %ss

        /*
         * Bochs allocates guest RAM in 128 KiB blocks on first touch, in
         * touch order, and loads an optramimage with one read() into the
         * block of its start address: whatever does not fit spills into
         * the blocks allocated next. So before anything else touches RAM
         * (no stack yet), touch the blocks after the image's first one in
         * address order: the spill lands where it belongs and images may
         * be larger than 128 KiB.
         */
        movl    $(IMAGE_BASE + RAM_BLOCK), %esi
.Ltouch:
        movb    (%esi), %al
        addl    $RAM_BLOCK, %esi
        cmpl    $IMAGE_TOUCH_END, %esi
        jb      .Ltouch

        movl    $STACK_TOP, %esp

        /* ---- memory size from the CMOS, in KiB above 1 MiB -> %edi ---- */
        movb    $0x35, %al
        call    cmos_read
        movb    %al, %ah
        movb    $0x34, %al
        call    cmos_read               /* %ax = 64 KiB blocks above 16 MiB */
        movzwl  %ax, %edi
        testl   %edi, %edi
        jz      .Lsmall_mem
        shll    $6, %edi                /* KiB above 16 MiB */
        addl    $(15 * 1024), %edi      /* plus 1..16 MiB */
        jmp     .Lmem_done
.Lsmall_mem:
        movb    $0x31, %al
        call    cmos_read
        movb    %al, %ah
        movb    $0x30, %al
        call    cmos_read
        movzwl  %ax, %edi
.Lmem_done:

        /* ---- find the multiboot header -> %esi ---- */
        movl    $IMAGE_BASE, %esi
.Lscan:
        cmpl    $MB_MAGIC, (%esi)
        jne     .Lnext
        movl    (%esi), %eax
        addl    4(%esi), %eax
        addl    8(%esi), %eax
        jz      .Lfound
.Lnext:
        addl    $4, %esi
        cmpl    $(IMAGE_BASE + HEADER_SCAN), %esi
        jb      .Lscan
        movl    $msg_no_header, %esi
        jmp     rom_fail

.Lfound:
        testl   $MB_AOUT_KLUDGE, 4(%esi)
        jnz     .Lhave_addresses
        movl    $msg_no_aout, %esi
        jmp     rom_fail
.Lhave_addresses:
        /* zero [load_end_addr, bss_end_addr) */
        movl    24(%esi), %ecx          /* bss_end_addr */
        testl   %ecx, %ecx
        jz      .Lbss_done
        movl    20(%esi), %ebx          /* load_end_addr */
        subl    %ebx, %ecx
        jbe     .Lbss_done
        pushl   %edi
        movl    %ebx, %edi
        xorl    %eax, %eax
        movl    %ecx, %edx
        andl    $3, %ecx
        rep stosb                       /* Bochs counts each iteration: */
        movl    %edx, %ecx              /* bytes up to a dword boundary, */
        shrl    $2, %ecx                /* then dwords */
        rep stosl
        popl    %edi
.Lbss_done:
        /* multiboot_info: flags, mem_lower, mem_upper; the rest zero */
        movl    $MB_INFO, %ebx
        pushl   %edi
        movl    %ebx, %edi
        movl    $32, %ecx
        xorl    %eax, %eax
        rep stosl
        popl    %edi
        movl    $MB_INFO_MEM, 0(%ebx)
        movl    $640, 4(%ebx)
        movl    %edi, 8(%ebx)
        movl    28(%esi), %ecx          /* entry_addr */
        movl    $MB_BOOT_MAGIC, %eax
        jmp     *%ecx

/* %al = CMOS register -> %al = value */
cmos_read:
        outb    %al, $0x70
        inb     $0x71, %al
        ret

/* print the NUL-terminated string at %esi on port 0xE9, then shut down */
rom_fail:
        lodsb
        testb   %al, %al
        jz      .Lshutdown
        outb    %al, $0xe9
        jmp     rom_fail
.Lshutdown:
        movl    $msg_shutdown, %esi
        movw    $0x8900, %dx
.Lshutdown_loop:
        lodsb
        testb   %al, %al
        jz      .Lhalt
        outb    %al, %dx
        jmp     .Lshutdown_loop
.Lhalt:
        cli
        hlt
        jmp     .Lhalt

msg_no_header:  .asciz "rom: no multiboot header in the first 8 KiB at 1 MiB\n"
msg_no_aout:    .asciz "rom: multiboot header without address fields (flag 16)\n"
msg_shutdown:   .asciz "Shutdown"

        .p2align 3
rom_gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: 32-bit code, flat */
        .quad   0x00cf92000000ffff      /* 0x10: data, flat */
rom_gdtr:
        .word   rom_gdtr - rom_gdt - 1
        .long   rom_gdt

        .section .reset, "ax"
        .code16
rom_reset:
        ljmp    $(ROM_BASE >> 4), $0    /* F000:0000 = rom_start16 */
        .fill   16 - (. - rom_reset), 1, 0xf4
