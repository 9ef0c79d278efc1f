//! The smoke guest: 16-bit real-mode code run at guest-physical 0x8000
//! with CR0.PE = 0 (unrestricted guest). It
//!   1. prints a greeting on COM1 (polling the line status register, as a
//!      serial driver does: every IN and OUT is an I/O exit);
//!   2. executes CPUID leaf 0 and prints the vendor the host answered;
//!   3. writes gpa 0x20000, which is not mapped yet (EPT violation; the host
//!      maps a page on first touch and the write is retried);
//!   4. runs BENCH_ROUNDS CPUID exits, then BENCH_ROUNDS OUTs to an unclaimed
//!      port, each loop bracketed by a write to the POST port 0x80 so the
//!      host can time it;
//!   5. says goodbye and halts (HLT exit ends the run).
//!
//! The second program misbehaves: it loads an empty IDT and executes INT3,
//! so the #BP, the #GP and the #DF it raises in turn find no vector: a
//! triple fault, which VMX reports as exit reason 2.
//!
//! Both programs are position-dependent: they must be loaded at
//! `GUEST_ENTRY`.

use super::ept::Ept;
use super::{SmokeError, SmokeResult};
use crate::pages::{self, PAGE_SIZE};
use core::arch::global_asm;

/// Iterations of each micro-benchmark loop.
pub const BENCH_ROUNDS: u64 = 1000;
/// The POST-code port the guest marks benchmark phases on.
pub const MARKER_PORT: u16 = 0x80;
/// The unclaimed port the I/O benchmark writes.
pub const BENCH_IO_PORT: u16 = 0x81;
/// Value the guest writes at `GUEST_PROBE_GPA` (byte) and +4 (dword).
pub const PROBE_BYTE: u8 = 0x5a;
pub const PROBE_DWORD: u32 = 0xc0ff_ee42;

global_asm!(
    r#"
    .section .rodata.smoke_guest, "a"
    .code16
    .set GBASE, {base}
    .set COM1, 0x3f8
    .globl smoke_guest_start
    .globl smoke_guest_end
smoke_guest_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw ${stack}, %sp
    movw $(g_hello - smoke_guest_start + GBASE), %si
    call g_puts

    xorl %eax, %eax
    cpuid
    movl %ebx, (g_vendor - smoke_guest_start + GBASE)
    movl %edx, (g_vendor - smoke_guest_start + GBASE + 4)
    movl %ecx, (g_vendor - smoke_guest_start + GBASE + 8)
    movw $(g_cpuid - smoke_guest_start + GBASE), %si
    call g_puts

    movw ${probe_seg}, %ax
    movw %ax, %es
    movb ${probe_byte}, %es:0
    movl ${probe_dword}, %es:4
    xorw %ax, %ax
    movw %ax, %es

    movb $1, %al
    outb %al, ${marker}
    movw ${rounds}, %di
2:
    xorl %eax, %eax
    cpuid
    decw %di
    jnz 2b
    movb $2, %al
    outb %al, ${marker}
    movw ${rounds}, %di
3:
    outb %al, ${bench_port}
    decw %di
    jnz 3b
    movb $3, %al
    outb %al, ${marker}

    movw $(g_bye - smoke_guest_start + GBASE), %si
    call g_puts
4:
    hlt
    jmp 4b

g_puts:
    lodsb
    testb %al, %al
    jz 5f
    call g_putc
    jmp g_puts
5:
    ret

g_putc:
    movb %al, %ah
    movw $(COM1 + 5), %dx
6:
    inb %dx, %al
    testb $0x20, %al
    jz 6b
    movb %ah, %al
    movw $COM1, %dx
    outb %al, %dx
    ret

g_hello:
    .asciz "hello from the real-mode guest (EPT, unrestricted guest)\n"
g_cpuid:
    .ascii "cpuid vendor: "
g_vendor:
    .ascii "????????????"
    .asciz "\n"
g_bye:
    .asciz "guest done, halting\n"
smoke_guest_end:

    .globl fault_guest_start
    .globl fault_guest_end
fault_guest_start:
    cli
    lidt (f_empty_idt - fault_guest_start + GBASE)
    int3
7:
    hlt
    jmp 7b
f_empty_idt:
    .word 0
    .long 0
fault_guest_end:
    .code64
    "#,
    base = const super::GUEST_ENTRY,
    stack = const super::GUEST_STACK_TOP,
    probe_seg = const super::GUEST_PROBE_GPA >> 4,
    probe_byte = const PROBE_BYTE,
    probe_dword = const PROBE_DWORD,
    marker = const MARKER_PORT,
    bench_port = const BENCH_IO_PORT,
    rounds = const BENCH_ROUNDS,
    options(att_syntax)
);

unsafe extern "C" {
    static smoke_guest_start: u8;
    static smoke_guest_end: u8;
    static fault_guest_start: u8;
    static fault_guest_end: u8;
}

/// Which guest program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// Serial output, CPUID, first touch, benchmarks, HLT.
    Hello,
    /// Empty IDT + INT3: triple fault.
    TripleFault,
}

/// The program's bytes.
pub fn image(program: Program) -> &'static [u8] {
    let (start, end) = match program {
        Program::Hello => (&raw const smoke_guest_start, &raw const smoke_guest_end),
        Program::TripleFault => (&raw const fault_guest_start, &raw const fault_guest_end),
    };
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: both symbols delimit the program in .rodata.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Copies the program into fresh guest pages mapped at `gpa` (page
/// aligned), as QEMU writes a kernel into guest RAM before the first run.
pub fn load(ept: &mut Ept, gpa: u64, program: Program) -> SmokeResult<()> {
    for (i, chunk) in image(program).chunks(PAGE_SIZE as usize).enumerate() {
        let page = pages::alloc().ok_or(SmokeError::new("no page for guest code", 0))?;
        // SAFETY: a fresh 4 KiB page; `chunk` is at most 4 KiB.
        unsafe {
            core::ptr::copy_nonoverlapping(chunk.as_ptr(), page.ptr::<u8>(), chunk.len());
        }
        let at = gpa + i as u64 * PAGE_SIZE;
        ept.map(at, page)
            .map_err(|_| SmokeError::new("mapping guest code", at))?;
    }
    Ok(())
}
