//! Instruction tests over the mock `EmulatorOps`, in the cloud-hypervisor
//! style: raw bytes, the assembly in a comment, the state, one assertion.
//! They cover what the differential tests cannot run natively: other modes
//! and address sizes, the stack, port I/O, system instructions, faults,
//! pending I/O and REP progress.

mod common;

use common::gpr::{RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP};
use common::{RIP, flat_data_limits as flat_data, run};
use kvm_x86_emulate::{Exception, Mode, Outcome, Rflags, Seg, Unhandleable};

#[test] // mov rax, [rax+rax]
fn mov_r64_m64() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x48, 0x8b, 0x04, 0x00], |r, m| {
        r.gpr[RAX] = 0x100;
        m.map(0x200, &0x1122_3344_5566_7788u64.to_le_bytes());
    });
    assert_eq!(
        (out, ctx.regs.gpr[RAX], ctx.regs.rip),
        (Ok(Outcome::Done), 0x1122_3344_5566_7788, RIP + 4)
    );
}

#[test] // mov al, [0x0000000000002000] (moffs64)
fn mov_al_moffs64() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xa0, 0, 0x20, 0, 0, 0, 0, 0, 0], |r, m| {
        r.gpr[RAX] = 0xffff;
        m.map(0x2000, &[0x5a]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RAX], ctx.regs.rip),
        (Ok(Outcome::Done), 0xff5a, RIP + 9)
    );
}

#[test] // mov [0x3000], eax (moffs32, 32-bit mode, DS base 0x100)
fn mov_moffs32_eax_prot32() {
    let (_, m, out) = run(Mode::Prot32, &[0xa3, 0, 0x30, 0, 0], |r, m| {
        r.gpr[RAX] = 0xdead_beef;
        m.seg_base[3] = 0x100;
        m.map(0x3100, &[0; 4]);
    });
    assert_eq!(
        (out, m.region(0x3100)),
        (Ok(Outcome::Done), &0xdead_beefu32.to_le_bytes()[..])
    );
}

#[test] // real mode: mov ax, [bp+si+4] uses SS
fn real_mode_bp_si_uses_ss() {
    let (ctx, _, out) = run(Mode::Real, &[0x8b, 0x42, 0x04], |r, m| {
        r.gpr[RBP] = 0x10;
        r.gpr[RSI] = 0xfff0; // wraps at 16 bits: 0x10 + 0xfff0 + 4 = 4
        m.seg_base[2] = 0x5000;
        m.map(0x5004, &[0x34, 0x12]);
    });
    assert_eq!((out, ctx.regs.gpr[RAX]), (Ok(Outcome::Done), 0x1234));
}

#[test] // mov eax, [rip+0x10]
fn rip_relative() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x8b, 0x05, 0x10, 0, 0, 0], |r, m| {
        r.gpr[RAX] = u64::MAX;
        m.map(RIP + 6 + 0x10, &[1, 2, 3, 4]);
    });
    assert_eq!((out, ctx.regs.gpr[RAX]), (Ok(Outcome::Done), 0x0403_0201));
}

#[test] // push rax; the stack grows down by 8
fn push_r64() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x50], |r, m| {
        r.gpr[RAX] = 0x0102_0304_0506_0708;
        r.gpr[RSP] = 0x8008;
        m.map(0x8000, &[0; 8]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RSP], m.region(0x8000)),
        (
            Ok(Outcome::Done),
            0x8000,
            &0x0102_0304_0506_0708u64.to_le_bytes()[..]
        )
    );
}

#[test] // pop cx in 16-bit mode: SP wraps, upper RSP bits kept
fn pop_r16_real() {
    let (ctx, _, out) = run(Mode::Real, &[0x59], |r, m| {
        r.gpr[RSP] = 0xdead_0000_0000_fffe;
        r.gpr[RCX] = 0xffff_ffff;
        m.map(0xfffe, &[0xcd, 0xab]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RCX], ctx.regs.gpr[RSP]),
        (Ok(Outcome::Done), 0xffff_abcd, 0xdead_0000_0000_0000)
    );
}

#[test] // call rel32 then ret: RIP and the pushed return address
fn call_and_ret() {
    let (ctx, m, out) = run(Mode::Prot64, &[0xe8, 0x10, 0, 0, 0], |r, m| {
        r.gpr[RSP] = 0x8008;
        m.map(0x8000, &[0; 8]);
    });
    assert_eq!(
        (out, ctx.regs.rip, m.region(0x8000)),
        (
            Ok(Outcome::Done),
            RIP + 5 + 0x10,
            &(RIP + 5).to_le_bytes()[..]
        )
    );
    let (ctx, _, out) = run(Mode::Prot64, &[0xc2, 0x10, 0x00], |r, m| {
        r.gpr[RSP] = 0x8000;
        m.map(0x8000, &0x4444u64.to_le_bytes());
    });
    assert_eq!(
        (out, ctx.regs.rip, ctx.regs.gpr[RSP]),
        (Ok(Outcome::Done), 0x4444, 0x8018)
    );
}

#[test] // popf at CPL 3 with IOPL 0: IF and IOPL are kept
fn popf_cpl3_keeps_if_and_iopl() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x9d], |r, m| {
        r.gpr[RSP] = 0x8000;
        r.rflags = 2 | Rflags::IF.bits();
        m.cpl = 3;
        m.map(0x8000, &(0x3000u64 | 0xcd5).to_le_bytes());
    });
    assert_eq!(
        (out, ctx.regs.rflags),
        (Ok(Outcome::Done), 0xcd7 | Rflags::IF.bits())
    );
}

#[test] // in al, 0x60
fn in_al_imm8() {
    let (ctx, m, out) = run(Mode::Prot64, &[0xe4, 0x60], |r, m| {
        r.gpr[RAX] = 0x1111_2222_3333_4444;
        m.port_in = vec![0xab];
    });
    assert_eq!(
        (out, ctx.regs.gpr[RAX], m.port_reads.clone()),
        (Ok(Outcome::Done), 0x1111_2222_3333_44ab, vec![(0x60, 1)])
    );
}

#[test] // in eax, dx clears RAX[63:32] (a C driver defect)
fn in_eax_dx_zero_extends() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xed], |r, m| {
        r.gpr[RAX] = u64::MAX;
        r.gpr[RDX] = 0xcf8;
        m.port_in = vec![0x8000_0000];
    });
    assert_eq!((out, ctx.regs.gpr[RAX]), (Ok(Outcome::Done), 0x8000_0000));
}

#[test] // out dx, al at CPL 3 with IOPL 0 and a closed bitmap: #GP(0)
fn out_cpl3_gp() {
    let (ctx, m, out) = run(Mode::Prot32, &[0xee], |_, m| m.cpl = 3);
    assert_eq!(
        (out, ctx.regs.rip, m.port_out.len()),
        (
            Ok(Outcome::Exception(Exception::GeneralProtection(0))),
            RIP,
            0
        )
    );
}

#[test] // out dx, al at CPL 3 allowed by the TSS bitmap
fn out_cpl3_bitmap_allows() {
    let (_, m, out) = run(Mode::Prot32, &[0xee], |r, m| {
        m.cpl = 3;
        m.io_allowed = true;
        r.gpr[RAX] = 0x42;
        r.gpr[RDX] = 0x3f8;
    });
    assert_eq!(
        (out, m.port_out.clone()),
        (Ok(Outcome::Done), vec![(0x3f8, 1, 0x42)])
    );
}

#[test] // rep outsw: three words from DS:SI to port DX
fn rep_outsw() {
    let (ctx, m, out) = run(Mode::Real, &[0xf3, 0x6f], |r, m| {
        r.gpr[RCX] = 3;
        r.gpr[RSI] = 0x10;
        r.gpr[RDX] = 0x1f0;
        m.map(0x10, &[1, 0, 2, 0, 3, 0]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.gpr[RCX],
            ctx.regs.gpr[RSI],
            m.port_out.clone()
        ),
        (
            Ok(Outcome::Done),
            0,
            0x16,
            vec![(0x1f0, 2, 1), (0x1f0, 2, 2), (0x1f0, 2, 3)]
        )
    );
}

#[test] // rep insb into ES:DI
fn rep_insb() {
    let (ctx, m, out) = run(Mode::Prot64, &[0xf3, 0x6c], |r, m| {
        r.gpr[RCX] = 2;
        r.gpr[RDI] = 0x4000;
        m.port_in = vec![7, 8];
        m.map(0x4000, &[0; 2]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RDI], m.region(0x4000)),
        (Ok(Outcome::Done), 0x4002, &[7u8, 8][..])
    );
}

#[test] // rep stosb across an unmapped page: #PF, finished iterations kept
fn rep_stosb_page_fault_keeps_progress() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xf3, 0xaa], |r, m| {
        r.gpr[RCX] = 8;
        r.gpr[RDI] = 0x4ffd;
        m.map(0x4000, &[0; 0x1000]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RCX], ctx.regs.gpr[RDI], ctx.regs.rip),
        (
            Ok(Outcome::Exception(Exception::PageFault {
                addr: 0x5000,
                error_code: 2
            })),
            5,
            0x5000,
            RIP
        )
    );
}

#[test] // repe cmpsb with ZF clear on entry still compares (C defect), stops at the mismatch
fn repe_cmpsb_stops_after_mismatch() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xf3, 0xa6], |r, m| {
        r.gpr[RCX] = 10;
        r.gpr[RSI] = 0x4000;
        r.gpr[RDI] = 0x5000;
        m.map(0x4000, b"abcdef");
        m.map(0x5000, b"abXdef");
    });
    assert_eq!(
        (
            out,
            ctx.regs.gpr[RCX],
            ctx.regs.gpr[RSI],
            ctx.regs.rflags & Rflags::ZF.bits()
        ),
        (Ok(Outcome::Done), 7, 0x4003, 0)
    );
}

#[test] // repne scasb finds the byte (flags as AL - [RDI])
fn repne_scasb_finds() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xf2, 0xae], |r, m| {
        r.gpr[RAX] = b'd' as u64;
        r.gpr[RCX] = 100;
        r.gpr[RDI] = 0x5000;
        r.rflags |= Rflags::ZF.bits();
        m.map(0x5000, b"abcdef");
    });
    assert_eq!(
        (
            out,
            ctx.regs.gpr[RCX],
            ctx.regs.gpr[RDI],
            ctx.regs.rflags & Rflags::ZF.bits() != 0
        ),
        (Ok(Outcome::Done), 96, 0x5004, true)
    );
}

#[test] // mov eax, [mmio]: pending I/O leaves the state untouched
fn mmio_read_needs_io() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x8b, 0x03], |r, m| {
        r.gpr[RBX] = 0xfee0_0000;
        m.mmio.push((0xfee0_0000, 0x1000));
    });
    assert_eq!(
        (out, ctx.regs.rip, ctx.regs.gpr[RAX]),
        (Ok(Outcome::IoNeeded), RIP, 0)
    );
}

#[test] // cmp [rbx], eax: memory is read, never written (C defect)
fn cmp_mem_does_not_write() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x39, 0x03], |r, m| {
        r.gpr[RBX] = 0x4000;
        r.gpr[RAX] = 5;
        m.map(0x4000, &5u32.to_le_bytes());
    });
    assert_eq!(
        (
            out,
            m.writes.len(),
            ctx.regs.rflags & Rflags::ZF.bits() != 0
        ),
        (Ok(Outcome::Done), 0, true)
    );
}

#[test] // test [rbx], eax with a 32-bit register: RAX upper half kept, no write
fn test_mem_keeps_register() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x85, 0x03], |r, m| {
        r.gpr[RBX] = 0x4000;
        r.gpr[RAX] = 0xffff_ffff_0000_0001;
        m.map(0x4000, &1u32.to_le_bytes());
    });
    assert_eq!(
        (out, m.writes.len(), ctx.regs.gpr[RAX]),
        (Ok(Outcome::Done), 0, 0xffff_ffff_0000_0001)
    );
}

#[test] // lock add eax, ecx (register destination): #UD
fn lock_register_dest_ud() {
    let (_, _, out) = run(Mode::Prot64, &[0xf0, 0x01, 0xc8], |_, _| {});
    assert_eq!(out, Ok(Outcome::Exception(Exception::InvalidOpcode)));
}

#[test] // lock cmp [rbx], eax: CMP is not lockable, #UD
fn lock_cmp_ud() {
    let (_, _, out) = run(Mode::Prot64, &[0xf0, 0x39, 0x03], |_, _| {});
    assert_eq!(out, Ok(Outcome::Exception(Exception::InvalidOpcode)));
}

#[test] // lock xadd [rbx], ecx goes through cmpxchg
fn lock_xadd_is_atomic() {
    let (ctx, m, out) = run(Mode::Prot64, &[0xf0, 0x0f, 0xc1, 0x0b], |r, m| {
        r.gpr[RBX] = 0x4000;
        r.gpr[RCX] = 3;
        m.map(0x4000, &4u32.to_le_bytes());
    });
    assert_eq!(
        (out, ctx.regs.gpr[RCX], m.region(0x4000)),
        (Ok(Outcome::Done), 4, &7u32.to_le_bytes()[..])
    );
}

#[test] // hlt at CPL 3: #GP(0); at CPL 0: halt
fn hlt_privilege() {
    let (_, _, out) = run(Mode::Prot64, &[0xf4], |_, m| m.cpl = 3);
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
    let (ctx, _, out) = run(Mode::Prot64, &[0xf4], |_, _| {});
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Halt), RIP + 1));
}

#[test] // mov cr3, rax; mov rcx, cr3; mov cr1 is #UD
fn mov_cr() {
    let (_, m, out) = run(Mode::Prot64, &[0x0f, 0x22, 0xd8], |r, _| {
        r.gpr[RAX] = 0x1234_5000
    });
    assert_eq!((out, m.crs[3]), (Ok(Outcome::Done), 0x1234_5000));
    let (ctx, _, out) = run(Mode::Prot64, &[0x0f, 0x20, 0xd9], |_, m| m.crs[3] = 0x9000);
    assert_eq!((out, ctx.regs.gpr[RCX]), (Ok(Outcome::Done), 0x9000));
    let (_, _, out) = run(Mode::Prot64, &[0x0f, 0x22, 0xc8], |_, _| {});
    assert_eq!(out, Ok(Outcome::Exception(Exception::InvalidOpcode)));
}

#[test] // rdmsr / wrmsr
fn rdmsr_wrmsr() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x0f, 0x32], |r, m| {
        r.gpr[RCX] = 0x10;
        m.msrs.insert(0x10, 0x1122_3344_5566_7788);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RAX], ctx.regs.gpr[RDX]),
        (Ok(Outcome::Done), 0x5566_7788, 0x1122_3344)
    );
    let (_, m, out) = run(Mode::Prot64, &[0x0f, 0x30], |r, _| {
        r.gpr[RCX] = 0x20;
        r.gpr[RAX] = 0xffff_ffff_0000_0002;
        r.gpr[RDX] = 1;
    });
    assert_eq!(
        (out, m.msrs.get(&0x20).copied()),
        (Ok(Outcome::Done), Some(0x1_0000_0002))
    );
}

#[test] // lmsw ax cannot clear CR0.PE
fn lmsw_keeps_pe() {
    let (_, m, out) = run(Mode::Prot32, &[0x0f, 0x01, 0xf0], |r, m| {
        m.crs[0] = 0x8000_0011;
        r.gpr[RAX] = 0xe;
    });
    assert_eq!((out, m.crs[0]), (Ok(Outcome::Done), 0x8000_001f));
}

#[test] // mov ss, ax (real mode) opens an interrupt shadow; sti too
fn interrupt_shadows() {
    let (ctx, m, out) = run(Mode::Real, &[0x8e, 0xd0], |r, _| r.gpr[RAX] = 0x18);
    let loaded = m.loaded_selectors();
    assert_eq!(
        (out, ctx.shadow, loaded),
        (
            Ok(Outcome::Done),
            kvm_x86_emulate::InterruptShadow::MovSs,
            vec![(Seg::Ss, 0x18)]
        )
    );
    let (ctx, _, out) = run(Mode::Prot32, &[0xfb], |_, _| {});
    assert_eq!(
        (out, ctx.shadow),
        (Ok(Outcome::Done), kvm_x86_emulate::InterruptShadow::Sti)
    );
}

#[test] // 16 prefixes: longer than 15 bytes, #GP(0)
fn too_long_gp() {
    let mut code = vec![0x66; 15];
    code.push(0x90);
    let (_, _, out) = run(Mode::Prot64, &code, |_, _| {});
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // the instruction runs off the mapped code: #PF on the fetch
fn fetch_fault() {
    let (_, _, out) = run(Mode::Prot64, &[0x8b], |_, _| {});
    assert_eq!(
        out,
        Ok(Outcome::Exception(Exception::PageFault {
            addr: RIP + 1,
            error_code: 0
        }))
    );
}

#[test] // div ecx by zero: #DE, nothing changed
fn div_by_zero() {
    let (ctx, _, out) = run(Mode::Prot64, &[0xf7, 0xf1], |r, _| r.gpr[RAX] = 7);
    assert_eq!(
        (out, ctx.regs.gpr[RAX], ctx.regs.rip),
        (Ok(Outcome::Exception(Exception::DivideError)), 7, RIP)
    );
}

#[test] // mov eax, [rbx] with a non-canonical RBX: #GP(0)
fn non_canonical_gp() {
    let (_, _, out) = run(Mode::Prot64, &[0x8b, 0x03], |r, _| {
        r.gpr[RBX] = 0x8000_0000_0000_0000
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // cmpxchg16b [rbx] misaligned: #GP(0)
fn cmpxchg16b_alignment() {
    let (_, _, out) = run(Mode::Prot64, &[0x48, 0x0f, 0xc7, 0x0b], |r, m| {
        r.gpr[RBX] = 0x4008;
        m.map(0x4000, &[0; 32]);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // bt [rbx], ecx with ECX = -1: the bit is in the dword below RBX
fn bt_negative_offset() {
    let (ctx, _, out) = run(Mode::Prot64, &[0x0f, 0xa3, 0x0b], |r, m| {
        r.gpr[RBX] = 0x4004;
        r.gpr[RCX] = 0xffff_ffff;
        m.map(0x4000, &[0, 0, 0, 0x80, 0, 0, 0, 0]);
    });
    assert_eq!(
        (out, ctx.regs.rflags & Rflags::CF.bits()),
        (Ok(Outcome::Done), Rflags::CF.bits())
    );
}

#[test] // jmp short -2 in 16-bit mode at IP 0xffff wraps... (IP stays 16-bit)
fn jmp_wraps_ip_16() {
    let (ctx, _, out) = run(Mode::Real, &[0xeb, 0x10], |r, m| {
        r.rip = 0xfff0;
        m.map(0xfff0, &[0xeb, 0x10]);
    });
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), 0x0002));
}

#[test] // pusha / popa in 32-bit mode round-trip
fn pusha_popa() {
    let (ctx, m, out) = run(Mode::Prot32, &[0x60], |r, m| {
        for i in 0..8 {
            r.gpr[i] = 0x100 * i as u64 + 1;
        }
        r.gpr[RSP] = 0x8020;
        m.map(0x8000, &[0; 32]);
    });
    assert_eq!((out, ctx.regs.gpr[RSP]), (Ok(Outcome::Done), 0x8000));
    let stack = m.region(0x8000).to_vec();
    let (ctx, _, out) = run(Mode::Prot32, &[0x61], |r, m| {
        r.gpr[RSP] = 0x8000;
        m.map(0x8000, &stack);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RCX], ctx.regs.gpr[RDI], ctx.regs.gpr[RSP]),
        (Ok(Outcome::Done), 0x101, 0x701, 0x8020)
    );
}

#[test] // 0f 0b (UD2) is not emulated
fn unsupported_opcode() {
    let (_, _, out) = run(Mode::Prot64, &[0x0f, 0x0b], |_, _| {});
    assert_eq!(out, Err(Unhandleable::Opcode));
}

#[test] // mov eax, [rbx] across a page boundary: split into two reads
fn read_across_pages() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x8b, 0x03], |r, m| {
        r.gpr[RBX] = 0x4ffe;
        m.map(0x4000, &[0xaa; 0x1000]).map(0x5000, &[0xbb; 0x1000]);
    });
    assert_eq!(
        (out, ctx.regs.gpr[RAX], m.reads.clone()),
        (
            Ok(Outcome::Done),
            0xbbbb_aaaa,
            vec![(0x4ffe, 2), (0x5000, 2)]
        )
    );
}

#[test] // mov [rbx], eax with the second page unmapped: #PF at the page start
fn write_across_pages_faults_on_second() {
    let (_, _, out) = run(Mode::Prot64, &[0x89, 0x03], |r, m| {
        r.gpr[RBX] = 0x4fff;
        m.map(0x4000, &[0; 0x1000]);
    });
    assert_eq!(
        out,
        Ok(Outcome::Exception(Exception::PageFault {
            addr: 0x5000,
            error_code: 2
        }))
    );
}

#[test] // syscall in 64-bit mode: RCX/R11 saved, CS/SS from STAR, RIP from LSTAR, SFMASK applied
fn syscall_64() {
    let (ctx, m, out) = run(Mode::Prot64, &[0x0f, 0x05], |r, m| {
        r.rflags = 2 | Rflags::IF.bits() | Rflags::TF.bits();
        m.msrs.insert(0xc000_0080, 0x501); // LMA | LME | SCE
        m.msrs.insert(0xc000_0081, 0x0023_0010_0000_0000);
        m.msrs.insert(0xc000_0082, 0xffff_ffff_8100_0000);
        m.msrs
            .insert(0xc000_0084, Rflags::IF.bits() | Rflags::TF.bits());
    });
    assert_eq!(
        (
            out,
            ctx.regs.rip,
            ctx.regs.gpr[RCX],
            ctx.regs.gpr[11],
            ctx.regs.rflags,
            m.seg_sel[1],
            m.seg_sel[2]
        ),
        (
            Ok(Outcome::Done),
            0xffff_ffff_8100_0000,
            RIP + 2,
            2 | Rflags::IF.bits() | Rflags::TF.bits(),
            2,
            0x10,
            0x18
        )
    );
}

#[test] // syscall with EFER.SCE clear: #UD
fn syscall_disabled_ud() {
    let (_, _, out) = run(Mode::Prot64, &[0x0f, 0x05], |_, m| {
        m.msrs.insert(0xc000_0080, 0x500);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::InvalidOpcode)));
}

#[test] // sysenter from 32-bit user mode into a 64-bit kernel
fn sysenter_to_64() {
    let (ctx, m, out) = run(Mode::Prot32, &[0x0f, 0x34], |r, m| {
        r.rflags = 2 | Rflags::IF.bits();
        m.cpl = 3;
        m.msrs.insert(0xc000_0080, 0x500);
        m.msrs.insert(0x174, 0x10);
        m.msrs.insert(0x175, 0xffff_8000_0000_1000);
        m.msrs.insert(0x176, 0xffff_ffff_8100_0040);
    });
    assert_eq!(
        (
            out,
            ctx.mode,
            ctx.regs.rip,
            ctx.regs.gpr[RSP],
            ctx.regs.rflags,
            m.seg_sel[1],
            m.seg_sel[2]
        ),
        (
            Ok(Outcome::Done),
            Mode::Prot64,
            0xffff_ffff_8100_0040,
            0xffff_8000_0000_1000,
            2,
            0x10,
            0x18
        )
    );
}

#[test] // sysexit (32-bit) at CPL 0: CS = SYSENTER_CS+16 | 3, EIP = EDX, ESP = ECX
fn sysexit_32() {
    let (ctx, m, out) = run(Mode::Prot32, &[0x0f, 0x35], |r, m| {
        r.gpr[RDX] = 0x0804_8000;
        r.gpr[RCX] = 0xbfff_0000;
        m.msrs.insert(0x174, 0x10);
    });
    assert_eq!(
        (
            out,
            ctx.regs.rip,
            ctx.regs.gpr[RSP],
            m.seg_sel[1],
            m.seg_sel[2]
        ),
        (Ok(Outcome::Done), 0x0804_8000, 0xbfff_0000, 0x23, 0x2b)
    );
}

#[test] // sysexit at CPL 3: #GP(0)
fn sysexit_cpl3_gp() {
    let (_, _, out) = run(Mode::Prot32, &[0x0f, 0x35], |_, m| {
        m.cpl = 3;
        m.msrs.insert(0x174, 0x10);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // mov eax, [ebx] with the dword crossing DS's limit: #GP(0)
fn ds_limit_gp() {
    let (_, m, out) = run(Mode::Prot32, &[0x8b, 0x03], |r, m| {
        r.gpr[RBX] = 0xffe;
        m.limits[3] = Some(flat_data(0xfff));
        m.map(0, &[0; 0x2000]);
    });
    assert_eq!(
        (out, m.reads.len()),
        (Ok(Outcome::Exception(Exception::GeneralProtection(0))), 0)
    );
}

#[test] // push eax below an SS limit window of an expand-down stack: #SS(0)
fn ss_expand_down_ss_fault() {
    let (_, _, out) = run(Mode::Prot32, &[0x50], |r, m| {
        r.gpr[RSP] = 0x1002; // pushes to 0xffe..0x1001, below the limit 0x1000
        m.limits[2] = Some(kvm_x86_emulate::SegmentLimits {
            expand_down: true,
            ..flat_data(0x1000)
        });
        m.map(0, &[0; 0x2000]);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::StackFault(0))));
}

#[test] // mov [ebx], eax into a read-only data segment: #GP(0)
fn read_only_segment_gp() {
    let (_, _, out) = run(Mode::Prot32, &[0x89, 0x03], |_, m| {
        m.limits[3] = Some(kvm_x86_emulate::SegmentLimits {
            writable: false,
            ..flat_data(u32::MAX)
        });
        m.map(0, &[0; 0x10]);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // real mode: mov ax, [0xffff] runs past the 64 KiB limit: #GP(0)
fn real_mode_wrap_gp() {
    let (_, _, out) = run(Mode::Real, &[0x8b, 0x06, 0xff, 0xff], |_, m| {
        m.limits[3] = Some(kvm_x86_emulate::SegmentLimits {
            big: false,
            ..flat_data(0xffff)
        });
        m.map(0, &[0; 0x10000]);
    });
    assert_eq!(out, Ok(Outcome::Exception(Exception::GeneralProtection(0))));
}

#[test] // within the limit the access goes through
fn within_limit_ok() {
    let (ctx, _, out) = run(Mode::Prot32, &[0x8b, 0x03], |r, m| {
        r.gpr[RBX] = 0xffc;
        m.limits[3] = Some(flat_data(0xfff));
        m.map(0xffc, &[1, 2, 3, 4]);
    });
    assert_eq!((out, ctx.regs.gpr[RAX]), (Ok(Outcome::Done), 0x0403_0201));
}

#[test] // real mode: int 0x10 through the IVT at 0; FLAGS, CS, IP pushed, IF cleared
fn real_mode_int_n() {
    let (ctx, m, out) = run(Mode::Real, &[0xcd, 0x10], |r, m| {
        r.rflags = 2 | Rflags::IF.bits() | Rflags::CF.bits();
        r.gpr[RSP] = 0x510;
        m.seg_sel[1] = 0x0000;
        let mut ivt = vec![0u8; 0x400];
        ivt[0x40..0x44].copy_from_slice(&[0x34, 0x12, 0x00, 0xf0]); // F000:1234
        m.map(0, &ivt).map(0x500, &[0; 0x10]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.rip,
            m.seg_sel[1],
            ctx.regs.gpr[RSP],
            ctx.regs.rflags,
            m.region(0x500)[0xa..].to_vec()
        ),
        (
            Ok(Outcome::Done),
            0x1234,
            0xf000,
            0x50a,
            2 | Rflags::CF.bits(),
            vec![0x02, 0x10, 0, 0, 0x03, 0x02]
        )
    );
}

#[test] // real mode: iret pops IP, CS, FLAGS
fn real_mode_iret() {
    let (ctx, m, out) = run(Mode::Real, &[0xcf], |r, m| {
        r.gpr[RSP] = 0xfa;
        m.map(0xfa, &[0x02, 0x10, 0x00, 0x20, 0x03, 0x02]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.rip,
            m.seg_sel[1],
            ctx.regs.gpr[RSP],
            ctx.regs.rflags
        ),
        (Ok(Outcome::Done), 0x1002, 0x2000, 0x100, 0x203)
    );
}

#[test] // into with OF clear does nothing
fn into_without_of() {
    let (ctx, _, out) = run(Mode::Real, &[0xce], |_, _| {});
    assert_eq!((out, ctx.regs.rip), (Ok(Outcome::Done), RIP + 1));
}

#[test] // int3 outside real mode is left to the caller
fn int3_protected_unhandleable() {
    let (_, _, out) = run(Mode::Prot32, &[0xcc], |_, _| {});
    assert_eq!(out, Err(Unhandleable::Form));
}

#[test] // real mode: call far 1234:5678 pushes CS and IP
fn real_mode_call_far() {
    let (ctx, m, out) = run(Mode::Real, &[0x9a, 0x78, 0x56, 0x34, 0x12], |r, m| {
        r.gpr[RSP] = 0x100;
        m.seg_sel[1] = 0x0100;
        m.map(0xfc, &[0; 4]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.rip,
            m.seg_sel[1],
            ctx.regs.gpr[RSP],
            m.region(0xfc).to_vec()
        ),
        (
            Ok(Outcome::Done),
            0x5678,
            0x1234,
            0xfc,
            vec![0x05, 0x10, 0x00, 0x01]
        )
    );
}

#[test] // real mode: jmp far [bx] (FF /5)
fn real_mode_jmp_far_mem() {
    let (ctx, m, out) = run(Mode::Real, &[0xff, 0x2f], |r, m| {
        r.gpr[RBX] = 0x200;
        m.map(0x200, &[0x00, 0x7c, 0x00, 0x00]);
    });
    assert_eq!(
        (out, ctx.regs.rip, m.seg_sel[1]),
        (Ok(Outcome::Done), 0x7c00, 0)
    );
}

#[test] // enter 0x20, 0 in 64-bit mode
fn enter_level0() {
    let (ctx, m, out) = run(Mode::Prot64, &[0xc8, 0x20, 0x00, 0x00], |r, m| {
        r.gpr[RSP] = 0x8008;
        r.gpr[RBP] = 0x1111;
        m.map(0x8000, &[0; 8]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.gpr[RBP],
            ctx.regs.gpr[RSP],
            m.region(0x8000).to_vec()
        ),
        (
            Ok(Outcome::Done),
            0x8000,
            0x8000 - 0x20,
            0x1111u64.to_le_bytes().to_vec()
        )
    );
}

#[test] // enter 4, 2 in 32-bit mode copies one outer frame pointer
fn enter_nested() {
    let (ctx, m, out) = run(Mode::Prot32, &[0xc8, 0x04, 0x00, 0x02], |r, m| {
        r.gpr[RSP] = 0x9000;
        r.gpr[RBP] = 0x9100;
        let mut mem = vec![0u8; 0x200];
        mem[0xfc..0x100].copy_from_slice(&0xaabbccddu32.to_le_bytes()); // [ebp-4]
        m.map(0x9000, &mem).map(0x8ff0, &[0; 0x10]);
    });
    assert_eq!(
        (
            out,
            ctx.regs.gpr[RBP],
            ctx.regs.gpr[RSP],
            m.region(0x8ff0)[4..].to_vec()
        ),
        (
            Ok(Outcome::Done),
            0x8ffc,
            0x8ff4 - 4,
            [
                0x8ffcu32.to_le_bytes(),
                0xaabbccddu32.to_le_bytes(),
                0x9100u32.to_le_bytes()
            ]
            .concat()
        )
    );
}
