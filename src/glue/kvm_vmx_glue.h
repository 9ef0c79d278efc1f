/*
 * kvm_vmx_glue.h: kernel services the VMX run loop needs that must be C,
 * because they are macros (CPU, curthread, kpreempt_disable, CPUSET_*,
 * issig(JUSTLOOKING), KCS_SEL...) or reach into kernel structures (cpu_t,
 * kthread_t context ops, on_trap_data_t). Implemented in kvm_vmx_glue.c;
 * declared again in src/illumos/sys.rs (section "VMX host") and used by
 * src/illumos/vmx_host.rs. Everything else of the VMX host (VMX
 * instructions, MSRs, descriptor tables, HMA FPU/VPID, SMT, condition
 * variables, poke_cpu) is called from Rust directly.
 */
#ifndef _KVM_VMX_GLUE_H
#define	_KVM_VMX_GLUE_H

#include <sys/types.h>

/*
 * The Rust side keeps per-CPU state in a static table of this many entries,
 * indexed by cpu_id; kvm_vmx_glue.c checks NCPU against it at compile time.
 */
#define	KVM_VMX_MAX_CPUS	256

/* CPU->cpu_id. Stable only while preemption is disabled. */
extern uint32_t kvm_vmx_glue_cpu_id(void);

/* kpreempt_disable() / kpreempt_enable() (macros in <sys/disp.h>). */
extern void kvm_vmx_glue_preempt_disable(void);
extern void kvm_vmx_glue_preempt_enable(void);

/* CPU->cpu_runrun || CPU->cpu_kprunrun: the dispatcher wants this CPU. */
extern int kvm_vmx_glue_runrun(void);

/* issig(JUSTLOOKING): a signal is pending for curthread. */
extern int kvm_vmx_glue_issig(void);

/* thread_affinity_set(curthread, CPU_BEST) + thread_affinity_clear. */
extern void kvm_vmx_glue_migrate(void);

/*
 * Context operations on curthread (2021 gate: installctx/removectx; see the
 * comment in kvm_vmx_glue.c for the ctxop_* interface of newer illumos).
 * kvm_vmx_glue_ctx_prealloc may sleep (KM_SLEEP); install does not
 * allocate and may be called with preemption disabled. remove returns
 * nonzero if the op was found (it then calls freef(arg, 0)).
 */
extern void *kvm_vmx_glue_ctx_prealloc(void);
extern void kvm_vmx_glue_ctx_install(void *prealloc, void *arg,
    void (*save)(void *), void (*restore)(void *),
    void (*freef)(void *, int));
extern int kvm_vmx_glue_ctx_remove(void *arg, void (*save)(void *),
    void (*restore)(void *), void (*freef)(void *, int));

/*
 * Run func(a1, a2, 0) on every CPU in the system (including this one) and
 * wait for all of them: xc_sync over CPUSET_ALL, preemption disabled.
 */
extern void kvm_vmx_glue_xcall_all(int (*func)(uintptr_t, uintptr_t,
    uintptr_t), uint64_t a1, uint64_t a2);

/* KCS_SEL, KDS_SEL and KTSS_SEL (<sys/segments.h>). */
extern void kvm_vmx_glue_host_selectors(uint16_t *cs, uint16_t *ds,
    uint16_t *tr);

/*
 * rdmsr under on_trap(OT_DATA_ACCESS): 0 and *val, or -1 if the MSR does
 * not exist (#GP caught), as illumos-kvm's native_read_msr_safe.
 */
extern int kvm_vmx_glue_rdmsr_safe(uint32_t msr, uint64_t *val);

extern uint64_t kvm_vmx_glue_curthread(void);

#endif /* _KVM_VMX_GLUE_H */
