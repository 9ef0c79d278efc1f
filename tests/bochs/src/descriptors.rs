//! The host's GDT task segment and IDT.
//!
//! VM exits need a non-null TR in the host state, so the boot GDT gets a
//! 64-bit TSS at selector 0x18. The IDT covers all 256 vectors: an
//! exception, or an interrupt nobody installed a handler for (`set_gate`),
//! is a harness bug, so the common handler prints the vector, error code
//! and RIP and ends the run. Interrupts are enabled only while the host
//! waits for its own timer (`timer.rs`).

use core::arch::{asm, global_asm};

/// Kernel code selector (boot GDT).
pub const CODE_SELECTOR: u16 = 0x08;
/// Kernel data selector (boot GDT).
pub const DATA_SELECTOR: u16 = 0x10;
/// Task register selector.
pub const TSS_SELECTOR: u16 = 0x18;

const TSS_BYTES: usize = 104;
const EXCEPTIONS: u64 = 32;
const VECTORS: usize = 256;

#[repr(C, align(16))]
struct Tss([u8; TSS_BYTES]);

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

#[repr(C, packed)]
struct TableRegister {
    limit: u16,
    base: u64,
}

static mut TSS: Tss = Tss([0; TSS_BYTES]);
static mut IDT: Idt = Idt([Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; VECTORS]);

unsafe extern "C" {
    static mut boot_gdt: [u64; 5];
    static exception_stubs: u8;
}

// One 8-byte stub per vector: `call exception_common` (5 bytes) padded to 8.
// The return address the call pushes tells the vector; the CPU has already
// pushed the error code (for the vectors that have one) and the frame.
global_asm!(
    r#"
    .section .text.exceptions, "ax"
    .balign 8
    .globl exception_stubs
exception_stubs:
    .rept 256
    .balign 8
    call exception_common
    .endr
exception_common:
    movq (%rsp), %rdi
    subq $exception_stubs, %rdi
    shrq $3, %rdi
    leaq 8(%rsp), %rsi
    andq $-16, %rsp
    call {handler}
    "#,
    handler = sym exception_handler,
    options(att_syntax)
);

/// An interrupt gate to `addr`.
fn gate(addr: u64) -> Gate {
    Gate {
        offset_low: addr as u16,
        selector: CODE_SELECTOR,
        ist: 0,
        type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
        offset_mid: (addr >> 16) as u16,
        offset_high: (addr >> 32) as u32,
        reserved: 0,
    }
}

/// Points `vector` (an interrupt, not an exception) at `handler`, which
/// must end with IRETQ.
pub fn set_gate(vector: u8, handler: u64) {
    let idt = (&raw mut IDT).cast::<Gate>();
    // SAFETY: a u8 vector is < VECTORS; one CPU, interrupts off while the
    // gate is written.
    unsafe { idt.add(usize::from(vector)).write_volatile(gate(handler)) };
}

/// Installs the TSS and the IDT. Call once, first thing in `kmain`.
pub fn init() {
    let tss = tss_base();
    let limit = (TSS_BYTES - 1) as u64;
    let low = (limit & 0xffff)
        | ((tss & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((tss >> 24) & 0xff) << 56);
    let high = tss >> 32;
    let gdt = (&raw mut boot_gdt).cast::<u64>();
    // SAFETY: entries 3 and 4 of the boot GDT are reserved for this TSS;
    // nothing else touches the GDT concurrently.
    unsafe {
        gdt.add(3).write_volatile(low);
        gdt.add(4).write_volatile(high);
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));
    }

    let stubs = (&raw const exception_stubs) as u64;
    let idt = (&raw mut IDT).cast::<Gate>();
    for vector in 0..VECTORS {
        // SAFETY: `vector` < VECTORS, the IDT's length.
        unsafe { idt.add(vector).write(gate(stubs + 8 * vector as u64)) };
    }
    let idtr = TableRegister {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: idt_base(),
    };
    // SAFETY: the IDT is static and fully initialized.
    unsafe { asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags)) };
}

/// Linear address of the TSS (host state for VM exits).
pub fn tss_base() -> u64 {
    (&raw const TSS) as u64
}

/// Linear address of the IDT (host state for VM exits).
pub fn idt_base() -> u64 {
    (&raw const IDT) as u64
}

/// Linear address of the GDT (host state for VM exits).
pub fn gdt_base() -> u64 {
    (&raw const boot_gdt) as u64
}

const fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Where every host exception and unexpected interrupt ends: report and
/// stop.
extern "C" fn exception_handler(vector: u64, frame: *const u64) -> ! {
    let (err, frame) = if has_error_code(vector) {
        // SAFETY: the CPU pushed an error code below the frame.
        (Some(unsafe { frame.read() }), unsafe { frame.add(1) })
    } else {
        (None, frame)
    };
    // SAFETY: the CPU pushed RIP, CS, RFLAGS, RSP, SS.
    let rip = unsafe { frame.read() };
    let what = if vector < EXCEPTIONS {
        "EXCEPTION"
    } else {
        "UNEXPECTED INTERRUPT"
    };
    crate::print!("HOST {what} vector={vector} rip={rip:#x}");
    if let Some(err) = err {
        crate::print!(" error={err:#x}");
    }
    if vector == 14 {
        let cr2: u64;
        // SAFETY: reading CR2 has no side effects.
        unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
        crate::print!(" cr2={cr2:#x}");
    }
    crate::println!();
    crate::power::fail("host exception")
}
