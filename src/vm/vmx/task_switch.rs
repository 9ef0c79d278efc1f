//! A task switch the CPU left to the VMM (a VMX task-switch exit): port of
//! kvm_x86.c:`kvm_task_switch`'s driver side. The emulator's
//! [`kvm_x86_emulate::task_switch`] runs over the same [`Ops`] as
//! instruction emulation (guest paging, supervisor accesses to the TSSs
//! and descriptor tables, segment loads queued); its result is committed
//! to the VCPU and the VMCS only when the switch happened (registers, TR,
//! LDTR, segments, CR0.TS, CR3), the exception it raised is queued either
//! way. The C returned to user space with an internal error when it could
//! not read or write guest memory; here a TSS or descriptor table outside
//! RAM is that case, and page faults are the guest's.

use kvm_vmx::env::{TaskSwitchOutcome, TaskSwitchRequest};
use kvm_vmx::qualification::TaskSwitchSource;
use kvm_vmx::vcpu::VmxVcpu;
use kvm_vmx::vmcs::Vmcs;
use kvm_x86_emulate::{
    SegmentCache, TaskSwitch, TaskSwitchOutcome as Switch, TaskSwitchReason, task_switch,
};
use x86::vmx::vmcs::{control, guest};

use super::super::services::Services;
use super::emul::{CrWrites, Ops, SegLoads};
use super::env::{DynVmcs, RunCtx, queue_exception};
use super::host::VmxHost;

/// What the switch loaded besides the registers and segments.
struct Loaded {
    tr: Option<(u16, u64, u32, u32)>,
    ldtr: Option<SegmentCache>,
    crs: CrWrites,
}

impl<S: Services, H: VmxHost> RunCtx<'_, S, H> {
    /// `kvm_task_switch`: perform `request` from the guest's current task.
    /// Its own frame (not `run_emulator`'s: the kernel stack is small).
    #[inline(never)]
    pub(super) fn run_task_switch(
        &mut self,
        vcpu: &mut VmxVcpu,
        v: &mut dyn Vmcs,
        request: TaskSwitchRequest,
    ) -> TaskSwitchOutcome {
        let mut ctx = Self::guest_context(vcpu, v);
        let cr0 = v.read(control::CR0_READ_SHADOW);
        let cr4 = kvm_vmx::cr::guest_cr4(v, vcpu.config.ept());
        let paging = Self::paging_context(vcpu, v);
        let shared = self.core.shared().clone();
        let mut seg_loads = SegLoads::default();
        let ts = TaskSwitch {
            selector: request.selector,
            reason: match request.source {
                TaskSwitchSource::Call => TaskSwitchReason::Call,
                TaskSwitchSource::Iret => TaskSwitchReason::Iret,
                TaskSwitchSource::Jmp => TaskSwitchReason::Jmp,
                TaskSwitchSource::Gate => TaskSwitchReason::Gate,
            },
            error_code: request.error_code,
            external: request.external,
            // The CPU checked the privileges before the exit (SDM vol. 3
            // §26.4.2).
            check_dpl: false,
        };
        let (result, loaded) = {
            let mut ops = Ops {
                shared: &shared,
                vcpu_index: self.core.index(),
                vcpu: self.core as *const _ as usize,
                v: &*v,
                paging,
                cpl: ((v.read(guest::SS_ACCESS_RIGHTS) >> 5) & 3) as u8,
                cr: [cr0, 0, vcpu.regs.cr2, vcpu.cr3, cr4],
                mmio: None,
                answers: Default::default(),
                pio_page: &mut [],
                pio_out: None,
                pio_in: None,
                pio_in_needed: None,
                xmm: None,
                mmio_more: None,
                tr_load: None,
                ldtr_load: None,
                cr_writes: CrWrites::default(),
                seg_loads: &mut seg_loads,
                ring: None,
                efer: vcpu.efer,
            };
            let r = task_switch(&mut ctx, &mut ops, &ts);
            let loaded = Loaded {
                tr: ops.tr_load,
                ldtr: ops.ldtr_load,
                crs: ops.cr_writes,
            };
            (r, loaded)
        };
        let fault = match result {
            Err(_) => {
                self.emulation_failed(vcpu, v, c"task switch");
                return TaskSwitchOutcome::Failed;
            }
            Ok(Switch::Fault(e)) => {
                // Before the commit point: the old task is untouched.
                queue_exception(vcpu, e);
                return TaskSwitchOutcome::Faulted;
            }
            Ok(Switch::Switched) => None,
            Ok(Switch::FaultInNewTask(e)) => Some(e),
        };
        Self::commit_registers(vcpu, v, &ctx.regs);
        if let Some((sel, base, limit, ar)) = loaded.tr {
            v.write(guest::TR_SELECTOR, u64::from(sel));
            v.write(guest::TR_BASE, base);
            v.write(guest::TR_LIMIT, u64::from(limit));
            v.write(guest::TR_ACCESS_RIGHTS, u64::from(ar));
        }
        if let Some(c) = loaded.ldtr {
            v.write(guest::LDTR_SELECTOR, u64::from(c.selector));
            v.write(guest::LDTR_BASE, c.base);
            v.write(guest::LDTR_LIMIT, u64::from(c.limit));
            v.write(guest::LDTR_ACCESS_RIGHTS, u64::from(c.access_rights));
        }
        seg_loads.commit(v);
        self.commit_crs(vcpu, v, &loaded.crs);
        // The new task starts without the old one's STI/MOV-SS shadow.
        kvm_vmx::inject::set_interrupt_shadow(&mut DynVmcs(v), 0);
        if let Some(e) = fault {
            queue_exception(vcpu, e);
        }
        TaskSwitchOutcome::Switched
    }
}
