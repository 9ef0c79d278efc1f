//! KVM_GET/SET_REGS, KVM_GET/SET_SREGS and KVM_GET/SET_FPU
//! (`kvm_arch_vcpu_ioctl_get_regs` etc., kvm_x86.c) over `kvm_vmx::state`.

use kvm_ioctl::abi::{kvm_dtable, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_vmx::cr;
use kvm_vmx::env::ExitEnv;
use kvm_vmx::run::{Request, RunEnv};
use kvm_vmx::state::{self, DescriptorTable, Regs, Segment, SegmentRegister, TableRegister};
use kvm_vmx::vcpu::VmxVcpu;
use kvm_vmx::vmcs::Vmcs;

use super::env::{IDENTITY_MAP_DEFAULT, RunCtx};
use super::host::VmxHost;
use crate::vm::services::Services;

/// KVM_GET_REGS.
pub fn get_regs(vcpu: &VmxVcpu, v: &impl Vmcs, out: &mut kvm_regs) {
    let r = state::get_regs(vcpu, v);
    *out = kvm_regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: r.rflags,
    };
}

/// KVM_SET_REGS.
pub fn set_regs(vcpu: &mut VmxVcpu, v: &mut impl Vmcs, r: &kvm_regs) {
    let regs = Regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: r.rflags,
    };
    state::set_regs(vcpu, v, &regs);
}

fn seg_to_abi(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        r#type: s.type_,
        present: u8::from(s.present),
        dpl: s.dpl,
        db: u8::from(s.db),
        s: u8::from(s.s),
        l: u8::from(s.l),
        g: u8::from(s.g),
        avl: u8::from(s.avl),
        unusable: u8::from(s.unusable),
        padding: 0,
    }
}

fn seg_from_abi(s: &kvm_segment) -> Segment {
    Segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.r#type,
        present: s.present != 0,
        dpl: s.dpl,
        db: s.db != 0,
        s: s.s != 0,
        l: s.l != 0,
        g: s.g != 0,
        avl: s.avl != 0,
        unusable: s.unusable != 0,
    }
}

fn dt_to_abi(d: &DescriptorTable) -> kvm_dtable {
    kvm_dtable {
        base: d.base,
        limit: d.limit,
        padding: [0; 3],
    }
}

const SEGMENTS: [SegmentRegister; 8] = [
    SegmentRegister::Cs,
    SegmentRegister::Ds,
    SegmentRegister::Es,
    SegmentRegister::Fs,
    SegmentRegister::Gs,
    SegmentRegister::Ss,
    SegmentRegister::Tr,
    SegmentRegister::Ldtr,
];

fn abi_seg_mut(s: &mut kvm_sregs, r: SegmentRegister) -> &mut kvm_segment {
    match r {
        SegmentRegister::Cs => &mut s.cs,
        SegmentRegister::Ds => &mut s.ds,
        SegmentRegister::Es => &mut s.es,
        SegmentRegister::Fs => &mut s.fs,
        SegmentRegister::Gs => &mut s.gs,
        SegmentRegister::Ss => &mut s.ss,
        SegmentRegister::Tr => &mut s.tr,
        SegmentRegister::Ldtr => &mut s.ldt,
    }
}

fn abi_seg(s: &kvm_sregs, r: SegmentRegister) -> &kvm_segment {
    match r {
        SegmentRegister::Cs => &s.cs,
        SegmentRegister::Ds => &s.ds,
        SegmentRegister::Es => &s.es,
        SegmentRegister::Fs => &s.fs,
        SegmentRegister::Gs => &s.gs,
        SegmentRegister::Ss => &s.ss,
        SegmentRegister::Tr => &s.tr,
        SegmentRegister::Ldtr => &s.ldt,
    }
}

/// KVM_GET_SREGS.
pub fn get_sregs<S: Services, H: VmxHost>(
    vcpu: &VmxVcpu,
    v: &impl Vmcs,
    env: &mut RunCtx<'_, S, H>,
    out: &mut kvm_sregs,
) {
    for r in SEGMENTS {
        *abi_seg_mut(out, r) = seg_to_abi(&state::get_segment(v, r));
    }
    out.gdt = dt_to_abi(&state::get_table(v, TableRegister::Gdtr));
    out.idt = dt_to_abi(&state::get_table(v, TableRegister::Idtr));
    out.cr0 = cr::guest_cr0(v);
    out.cr2 = vcpu.regs.cr2;
    out.cr3 = vcpu.cr3;
    out.cr4 = cr::guest_cr4(v, vcpu.config.ept());
    out.cr8 = env.cr8();
    out.efer = vcpu.efer;
    out.apic_base = env.apic_base();
    out.interrupt_bitmap = Default::default();
    if let Some(i) = vcpu.events.interrupt
        && !i.soft
    {
        let n = usize::from(i.vector);
        if let Some(w) = out.interrupt_bitmap.get_mut(n / 64) {
            *w |= 1 << (n % 64);
        }
    }
}

/// KVM_SET_SREGS (`kvm_arch_vcpu_ioctl_set_sregs`).
pub fn set_sregs<S: Services, H: VmxHost>(
    vcpu: &mut VmxVcpu,
    v: &mut impl Vmcs,
    env: &mut RunCtx<'_, S, H>,
    s: &kvm_sregs,
) {
    state::set_table(
        v,
        TableRegister::Idtr,
        &DescriptorTable {
            base: s.idt.base,
            limit: s.idt.limit,
        },
    );
    state::set_table(
        v,
        TableRegister::Gdtr,
        &DescriptorTable {
            base: s.gdt.base,
            limit: s.gdt.limit,
        },
    );
    vcpu.regs.cr2 = s.cr2;
    if !env.irqchip_in_kernel() || env.core.has_lapic() {
        let _ = env.set_cr(
            vcpu,
            v as &mut dyn Vmcs,
            kvm_vmx::env::ControlRegister::Cr8,
            s.cr8 & 0xf,
        );
    }
    state::set_efer(vcpu, v, s.efer);
    if !env.core.has_lapic() {
        env.st.msrs.apic_base = s.apic_base;
    }
    let tss = env.core.shared().arch().tss_addr.unwrap_or(0);
    let _ = cr::set_cr0(vcpu, v, s.cr0, tss);
    cr::set_cr4(vcpu, v, s.cr4);
    let map = env.core.shared().arch().ept_identity_map_addr;
    let map = if map == 0 { IDENTITY_MAP_DEFAULT } else { map };
    cr::set_cr3(vcpu, v, s.cr3, map, None);
    vcpu.requests.set(Request::TlbFlush);
    for r in SEGMENTS {
        state::set_segment(v, r, &seg_from_abi(abi_seg(s, r)));
    }
    // The first pending interrupt of the bitmap (`kvm_queue_interrupt`).
    let pending = s
        .interrupt_bitmap
        .iter()
        .enumerate()
        .find(|(_, w)| **w != 0)
        .map(|(i, w)| i * 64 + w.trailing_zeros() as usize);
    if let Some(n) = pending
        && let Ok(vec) = u8::try_from(n)
    {
        vcpu.events.queue_interrupt(vec, false);
    }
    let _ = env.now_ns();
}

fn rd<const N: usize>(fx: &[u8; 512], off: usize) -> [u8; N] {
    let mut b = [0u8; N];
    if let Some(src) = fx.get(off..off.saturating_add(N)) {
        b.copy_from_slice(src);
    }
    b
}

fn wr(fx: &mut [u8; 512], off: usize, data: &[u8]) {
    if let Some(dst) = fx.get_mut(off..off.saturating_add(data.len())) {
        dst.copy_from_slice(data);
    }
}

/// FXSAVE image → `kvm_fpu`.
pub fn fpu_from_fxsave(fx: &[u8; 512], out: &mut kvm_fpu) {
    out.fcw = u16::from_le_bytes(rd(fx, 0));
    out.fsw = u16::from_le_bytes(rd(fx, 2));
    out.ftwx = rd::<1>(fx, 4)[0];
    out.last_opcode = u16::from_le_bytes(rd(fx, 6));
    out.last_ip = u64::from_le_bytes(rd(fx, 8));
    out.last_dp = u64::from_le_bytes(rd(fx, 16));
    out.mxcsr = u32::from_le_bytes(rd(fx, 24));
    for (i, r) in out.fpr.iter_mut().enumerate() {
        *r = rd(fx, 32 + 16 * i);
    }
    for (i, r) in out.xmm.iter_mut().enumerate() {
        *r = rd(fx, 160 + 16 * i);
    }
}

/// `kvm_fpu` into an FXSAVE image (other bytes kept).
pub fn fpu_to_fxsave(f: &kvm_fpu, fx: &mut [u8; 512]) {
    wr(fx, 0, &f.fcw.to_le_bytes());
    wr(fx, 2, &f.fsw.to_le_bytes());
    wr(fx, 4, &[f.ftwx]);
    wr(fx, 6, &f.last_opcode.to_le_bytes());
    wr(fx, 8, &f.last_ip.to_le_bytes());
    wr(fx, 16, &f.last_dp.to_le_bytes());
    wr(fx, 24, &f.mxcsr.to_le_bytes());
    for (i, r) in f.fpr.iter().enumerate() {
        wr(fx, 32 + 16 * i, r);
    }
    for (i, r) in f.xmm.iter().enumerate() {
        wr(fx, 160 + 16 * i, r);
    }
}
