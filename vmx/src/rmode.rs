//! Real mode without unrestricted guest: the original's vm86 path.
//!
//! CPUs with EPT but without "unrestricted guest" (Nehalem) cannot run a
//! guest with CR0.PE or CR0.PG clear; the C driver runs such a guest in
//! virtual-8086 mode with a private TSS (whose interrupt redirection bitmap
//! sends INTn to the guest's real-mode IVT) and, under EPT, an identity
//! page table. Ports `enter_rmode`, `enter_pmode`, `fix_rmode_seg`,
//! `fix_pmode_dataseg`, `vmx_get_rflags`/`vmx_set_rflags`,
//! `init_rmode_tss`, `init_rmode_identity_map`, the vm86 branches of event
//! injection and `fixup_rmode_irq`, and `handle_rmode_exception`
//! (kvm_vmx.c). SDM vol. 3 §20.2 (virtual-8086 mode), §20.3.3 (interrupt
//! redirection), §26.3.1.2 (segment checks in virtual-8086 mode).

use x86::vmx::vmcs::{control, guest};

use crate::setup::{
    BP_VECTOR, BR_VECTOR, CR4_VME, DB_VECTOR, DE_VECTOR, DF_VECTOR, GP_VECTOR, MF_VECTOR,
    OF_VECTOR, PAGE_SIZE, Page, SS_VECTOR, UD_VECTOR,
};
use crate::vmcs::Vmcs;

/// RFLAGS.IOPL (both bits) and RFLAGS.VM.
pub const RFLAGS_IOPL: u64 = 3 << 12;
pub const RFLAGS_VM: u64 = 1 << 17;
/// Flags the guest owns while in vm86 (`RMODE_GUEST_OWNED_EFLAGS_BITS`).
pub const RMODE_GUEST_OWNED_RFLAGS: u64 = !(RFLAGS_IOPL | RFLAGS_VM);

/// TSS layout (`kvm_x86host.h`).
pub const TSS_IOPB_BASE_OFFSET: usize = 0x66;
pub const TSS_BASE_SIZE: usize = 0x68;
pub const TSS_REDIRECTION_SIZE: usize = 256 / 8;
pub const TSS_IOPB_SIZE: usize = 65536 / 8;
/// The private TSS: base, redirection bitmap, I/O bitmap and the
/// terminating 0xff byte (three pages of guest memory).
pub const RMODE_TSS_SIZE: usize = TSS_BASE_SIZE + TSS_REDIRECTION_SIZE + TSS_IOPB_SIZE + 1;
/// Where the EPT identity page table lives by default
/// (`VMX_EPT_IDENTITY_PAGETABLE_ADDR`).
pub const EPT_IDENTITY_PAGETABLE_ADDR: u64 = 0xfffb_c000;

/// `init_rmode_tss` on the three pages (zeroed here): I/O bitmap base
/// after the redirection bitmap, all ports allowed (IOPL 3 governs), the
/// end-of-bitmap byte 0xff.
pub fn init_rmode_tss(pages: [&mut Page; 3]) {
    let [p0, p1, p2] = pages;
    p0.fill(0);
    p1.fill(0);
    p2.fill(0);
    let iopb = ((TSS_BASE_SIZE + TSS_REDIRECTION_SIZE) as u16).to_le_bytes();
    if let Some(dst) = p0.get_mut(TSS_IOPB_BASE_OFFSET..TSS_IOPB_BASE_OFFSET + 2) {
        dst.copy_from_slice(&iopb);
    }
    if let Some(b) = p2.get_mut(RMODE_TSS_SIZE - 2 * PAGE_SIZE - 1) {
        *b = 0xff;
    }
}

/// `init_rmode_identity_map`: a 32-bit page directory of 4 MiB pages
/// mapping the low 4 GiB 1:1 (present, writable, user, accessed, dirty,
/// PS), for the guest's "paging off" under EPT.
pub fn init_identity_map(page: &mut Page) {
    const FLAGS: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40 | 0x80;
    for (i, chunk) in page.chunks_exact_mut(4).enumerate() {
        let pde = ((i as u32) << 22) | FLAGS;
        chunk.copy_from_slice(&pde.to_le_bytes());
    }
}

/// A segment register as it was before entering vm86.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedSegment {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub ar: u32,
}

/// An event injected through the vm86 soft-interrupt path, to fix up if
/// the CPU did not report it (`rmode.irq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmodeIrq {
    pub pending: bool,
    pub vector: u8,
    pub rip: u64,
}

/// `vcpu_vmx.rmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmodeState {
    pub vm86_active: bool,
    pub save_rflags: u64,
    pub tr: SavedSegment,
    pub es: SavedSegment,
    pub ds: SavedSegment,
    pub fs: SavedSegment,
    pub gs: SavedSegment,
    pub irq: RmodeIrq,
}

/// `vmx_get_rflags`: in vm86 the guest sees its own IOPL and VM.
pub fn get_rflags(v: &impl Vmcs, rm: &RmodeState) -> u64 {
    let rflags = v.read(guest::RFLAGS);
    if rm.vm86_active {
        (rflags & RMODE_GUEST_OWNED_RFLAGS) | (rm.save_rflags & !RMODE_GUEST_OWNED_RFLAGS)
    } else {
        rflags
    }
}

/// `vmx_set_rflags`.
pub fn set_rflags(v: &mut impl Vmcs, rm: &mut RmodeState, rflags: u64) {
    let mut hw = rflags;
    if rm.vm86_active {
        rm.save_rflags = rflags;
        hw |= RFLAGS_IOPL | RFLAGS_VM;
    }
    v.write(guest::RFLAGS, hw);
}

struct SegFields {
    selector: u32,
    base: u32,
    limit: u32,
    ar: u32,
}

const ES: SegFields = SegFields {
    selector: guest::ES_SELECTOR,
    base: guest::ES_BASE,
    limit: guest::ES_LIMIT,
    ar: guest::ES_ACCESS_RIGHTS,
};
const DS: SegFields = SegFields {
    selector: guest::DS_SELECTOR,
    base: guest::DS_BASE,
    limit: guest::DS_LIMIT,
    ar: guest::DS_ACCESS_RIGHTS,
};
const FS: SegFields = SegFields {
    selector: guest::FS_SELECTOR,
    base: guest::FS_BASE,
    limit: guest::FS_LIMIT,
    ar: guest::FS_ACCESS_RIGHTS,
};
const GS: SegFields = SegFields {
    selector: guest::GS_SELECTOR,
    base: guest::GS_BASE,
    limit: guest::GS_LIMIT,
    ar: guest::GS_ACCESS_RIGHTS,
};

/// `fix_rmode_seg`: save a data segment and make it a vm86 one
/// (selector = base >> 4, limit 64 KiB, DPL 3 data).
fn fix_rmode_seg(v: &mut impl Vmcs, f: &SegFields) -> SavedSegment {
    let save = SavedSegment {
        selector: v.read(f.selector) as u16,
        base: v.read(f.base),
        limit: v.read32(f.limit),
        ar: v.read32(f.ar),
    };
    v.write(f.selector, save.base >> 4);
    v.write(f.base, save.base & 0xf_ffff);
    v.write(f.limit, 0xffff);
    v.write(f.ar, 0xf3);
    save
}

/// `fix_pmode_dataseg`: restore a data segment the guest did not reload in
/// real mode, else make the current one a flat data segment at its RPL.
fn fix_pmode_dataseg(v: &mut impl Vmcs, f: &SegFields, save: &SavedSegment) {
    if v.read(f.base) == save.base && save.base & (1 << 4) != 0 {
        v.write(f.selector, u64::from(save.selector));
        v.write(f.base, save.base);
        v.write(f.limit, u64::from(save.limit));
        v.write(f.ar, u64::from(save.ar));
    } else {
        let dpl = (v.read(f.selector) & 3) << 5;
        v.write(f.ar, 0x93 | dpl);
    }
}

/// `enter_rmode`: CR0.PE cleared without unrestricted guest. `tss_base` is
/// the guest-physical address of the private TSS (`rmode_tss_base`). The
/// caller resets the MMU context and initialises the TSS and identity map.
pub fn enter_rmode(v: &mut impl Vmcs, rm: &mut RmodeState, tss_base: u64) {
    rm.vm86_active = true;
    rm.tr = SavedSegment {
        selector: v.read(guest::TR_SELECTOR) as u16,
        base: v.read(guest::TR_BASE),
        limit: v.read32(guest::TR_LIMIT),
        ar: v.read32(guest::TR_ACCESS_RIGHTS),
    };
    v.write(guest::TR_BASE, tss_base);
    v.write(guest::TR_LIMIT, (RMODE_TSS_SIZE - 1) as u64);
    v.write(guest::TR_ACCESS_RIGHTS, 0x8b);

    let flags = v.read(guest::RFLAGS);
    rm.save_rflags = flags;
    v.write(guest::RFLAGS, flags | RFLAGS_IOPL | RFLAGS_VM);
    v.write(guest::CR4, v.read(guest::CR4) | CR4_VME);

    v.write(guest::SS_SELECTOR, v.read(guest::SS_BASE) >> 4);
    v.write(guest::SS_LIMIT, 0xffff);
    v.write(guest::SS_ACCESS_RIGHTS, 0xf3);
    v.write(guest::CS_ACCESS_RIGHTS, 0xf3);
    v.write(guest::CS_LIMIT, 0xffff);
    if v.read(guest::CS_BASE) == 0xffff_0000 {
        v.write(guest::CS_BASE, 0xf_0000);
    }
    v.write(guest::CS_SELECTOR, v.read(guest::CS_BASE) >> 4);

    rm.es = fix_rmode_seg(v, &ES);
    rm.ds = fix_rmode_seg(v, &DS);
    rm.gs = fix_rmode_seg(v, &GS);
    rm.fs = fix_rmode_seg(v, &FS);
}

/// `enter_pmode`: CR0.PE set again. Restores TR, the guest's IOPL/VM and
/// CR4.VME, and turns the segments into protected-mode ones.
pub fn enter_pmode(v: &mut impl Vmcs, rm: &mut RmodeState) {
    rm.vm86_active = false;
    v.write(guest::TR_BASE, rm.tr.base);
    v.write(guest::TR_LIMIT, u64::from(rm.tr.limit));
    v.write(guest::TR_ACCESS_RIGHTS, u64::from(rm.tr.ar));

    let flags = (v.read(guest::RFLAGS) & RMODE_GUEST_OWNED_RFLAGS)
        | (rm.save_rflags & !RMODE_GUEST_OWNED_RFLAGS);
    v.write(guest::RFLAGS, flags);
    let cr4 = (v.read(guest::CR4) & !CR4_VME) | (v.read(control::CR4_READ_SHADOW) & CR4_VME);
    v.write(guest::CR4, cr4);

    let (es, ds, gs, fs) = (rm.es, rm.ds, rm.gs, rm.fs);
    fix_pmode_dataseg(v, &ES, &es);
    fix_pmode_dataseg(v, &DS, &ds);
    fix_pmode_dataseg(v, &GS, &gs);
    fix_pmode_dataseg(v, &FS, &fs);

    v.write(guest::SS_SELECTOR, 0);
    v.write(guest::SS_ACCESS_RIGHTS, 0x93);
    v.write(guest::CS_SELECTOR, v.read(guest::CS_SELECTOR) & !3);
    v.write(guest::CS_ACCESS_RIGHTS, 0x9b);
}

/// The vm86 injection of `vector` (exception, interrupt or NMI alike): a
/// software interrupt with instruction length 1, RIP moved back one byte,
/// so the TSS redirection bitmap sends it through the real-mode IVT.
/// `soft_len`: the length of a software INTn/INT3/INTO being re-injected.
pub fn inject(v: &mut impl Vmcs, rm: &mut RmodeState, vector: u8, soft_len: Option<u32>) {
    let rip = v.read(guest::RIP);
    let rip = match soft_len {
        Some(len) => rip.wrapping_add(u64::from(len)),
        None => rip,
    };
    rm.irq = RmodeIrq {
        pending: true,
        vector,
        rip,
    };
    let info = crate::qualification::InterruptionInfo::new(
        vector,
        crate::qualification::EventType::SoftwareInterrupt,
        false,
    );
    v.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        u64::from(info.encode()),
    );
    v.write(control::VMENTRY_INSTRUCTION_LEN, 1);
    v.write(guest::RIP, rip.wrapping_sub(1));
}

/// `fixup_rmode_irq`: when delivery through the TSS failed without the CPU
/// reporting it, report it as an external interrupt to re-inject. Returns
/// the IDT-vectoring information to use.
pub fn fixup_irq(v: &mut impl Vmcs, rm: &mut RmodeState, idt_vectoring_info: u32) -> u32 {
    rm.irq.pending = false;
    if v.read(guest::RIP).wrapping_add(1) != rm.irq.rip {
        return idt_vectoring_info;
    }
    v.write(guest::RIP, rm.irq.rip);
    const VALID: u32 = 1 << 31;
    const TYPE_MASK: u32 = 7 << 8;
    if idt_vectoring_info & VALID != 0 {
        idt_vectoring_info & !TYPE_MASK
    } else {
        VALID | u32::from(rm.irq.vector)
    }
}

/// `handle_rmode_exception`: which intercepted exceptions vm86 hands back
/// to the real-mode guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmodeException {
    /// #GP/#SS with error code 0 (e.g. an address-size prefix): emulate.
    Emulate,
    /// Deliver to the guest's IVT.
    Reflect,
    /// Userspace debugging wants it (`KVM_EXIT_DEBUG`).
    Debug,
    /// Not one real mode knows: the normal exception path.
    NotHandled,
}

/// Classify an exception taken in vm86 (`handle_rmode_exception`);
/// `host_debug` is userspace single-stepping / hardware breakpoints,
/// `sw_bp` its software breakpoints.
pub fn classify_exception(
    vector: u8,
    error_code: u32,
    host_debug: bool,
    sw_bp: bool,
) -> RmodeException {
    if (vector == GP_VECTOR || vector == SS_VECTOR) && error_code == 0 {
        return RmodeException::Emulate;
    }
    match vector {
        DB_VECTOR if host_debug => RmodeException::Debug,
        DB_VECTOR => RmodeException::Reflect,
        BP_VECTOR if sw_bp => RmodeException::Debug,
        BP_VECTOR | DE_VECTOR | OF_VECTOR | BR_VECTOR | UD_VECTOR | DF_VECTOR | SS_VECTOR
        | GP_VECTOR | MF_VECTOR => RmodeException::Reflect,
        _ => RmodeException::NotHandled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeVmcs;
    use std::boxed::Box;

    #[test]
    fn tss_and_identity_map_contents() {
        let mut p: [Box<Page>; 3] = [
            Box::new([1; 4096]),
            Box::new([1; 4096]),
            Box::new([1; 4096]),
        ];
        let [a, b, c] = &mut p;
        init_rmode_tss([&mut **a, &mut **b, &mut **c]);
        assert_eq!(RMODE_TSS_SIZE, 0x2089);
        assert_eq!(&p[0][0x66..0x68], &[0x88, 0]);
        assert_eq!(p[2][0x88], 0xff, "last byte of the I/O bitmap area");
        assert_eq!(p[0].iter().filter(|b| **b != 0).count(), 1);
        assert_eq!(p[1].iter().filter(|b| **b != 0).count(), 0);
        let mut pd: Box<Page> = Box::new([0; 4096]);
        init_identity_map(&mut pd);
        assert_eq!(&pd[0..4], &0xe7u32.to_le_bytes());
        assert_eq!(&pd[4..8], &0x0040_00e7u32.to_le_bytes());
        assert_eq!(&pd[4092..4096], &0xffc0_00e7u32.to_le_bytes());
    }

    #[test]
    fn enter_and_leave_vm86() {
        let mut v = FakeVmcs::new();
        let mut rm = RmodeState::default();
        v.write(guest::CS_BASE, 0xffff_0000);
        v.write(guest::CS_SELECTOR, 0xf000);
        v.write(guest::DS_BASE, 0x1_2340);
        v.write(guest::DS_ACCESS_RIGHTS, 0x93);
        v.write(guest::RFLAGS, 0x202);
        v.write(guest::TR_BASE, 0);
        v.write(guest::TR_ACCESS_RIGHTS, 0x8b);
        enter_rmode(&mut v, &mut rm, 0xfffb_d000);
        assert!(rm.vm86_active);
        assert_eq!(v.get(guest::TR_BASE), Some(0xfffb_d000));
        assert_eq!(v.get(guest::TR_LIMIT), Some(0x2088));
        assert_eq!(v.get(guest::RFLAGS), Some(0x202 | RFLAGS_IOPL | RFLAGS_VM));
        assert_eq!(get_rflags(&v, &rm), 0x202, "the guest sees its own flags");
        assert_eq!(v.get(guest::CS_BASE), Some(0xf_0000));
        assert_eq!(v.get(guest::CS_SELECTOR), Some(0xf000));
        assert_eq!(v.get(guest::DS_SELECTOR), Some(0x1234));
        assert_eq!(v.get(guest::DS_ACCESS_RIGHTS), Some(0xf3));
        assert_eq!(v.get(guest::CR4).unwrap() & CR4_VME, CR4_VME);
        // The guest writes IF off while in vm86; leaving restores its
        // IOPL/VM (0) and keeps its IF.
        set_rflags(&mut v, &mut rm, 0x2);
        enter_pmode(&mut v, &mut rm);
        assert!(!rm.vm86_active);
        assert_eq!(v.get(guest::RFLAGS), Some(0x2));
        assert_eq!(v.get(guest::CS_ACCESS_RIGHTS), Some(0x9b));
        assert_eq!(v.get(guest::SS_ACCESS_RIGHTS), Some(0x93));
        assert_eq!(v.get(guest::TR_BASE), Some(0));
        assert_eq!(v.get(guest::CR4).unwrap() & CR4_VME, 0);
    }

    #[test]
    fn vm86_injection_and_fixup() {
        let mut v = FakeVmcs::new();
        let mut rm = RmodeState {
            vm86_active: true,
            ..RmodeState::default()
        };
        v.write(guest::RIP, 0x7c00);
        inject(&mut v, &mut rm, 0x08, None);
        assert_eq!(
            v.get(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            Some(0x8000_0408)
        );
        assert_eq!(v.get(control::VMENTRY_INSTRUCTION_LEN), Some(1));
        assert_eq!(v.get(guest::RIP), Some(0x7bff));
        // Delivery failed silently: RIP still one before; re-inject as an
        // external interrupt.
        let idt = fixup_irq(&mut v, &mut rm, 0);
        assert_eq!(idt, 0x8000_0008);
        assert_eq!(v.get(guest::RIP), Some(0x7c00));
        assert!(!rm.irq.pending);
    }

    #[test]
    fn rmode_exception_classes() {
        assert_eq!(
            classify_exception(GP_VECTOR, 0, false, false),
            RmodeException::Emulate
        );
        assert_eq!(
            classify_exception(GP_VECTOR, 8, false, false),
            RmodeException::Reflect
        );
        assert_eq!(
            classify_exception(DB_VECTOR, 0, true, false),
            RmodeException::Debug
        );
        assert_eq!(
            classify_exception(BP_VECTOR, 0, false, true),
            RmodeException::Debug
        );
        assert_eq!(
            classify_exception(DE_VECTOR, 0, false, false),
            RmodeException::Reflect
        );
        assert_eq!(
            classify_exception(14, 0, false, false),
            RmodeException::NotHandled
        );
    }
}
