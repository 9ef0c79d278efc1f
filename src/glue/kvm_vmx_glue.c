/*
 * kvm_vmx_glue.c: kernel services of the VMX run loop (see kvm_vmx_glue.h).
 * Each is a thin wrapper over what illumos-kvm did in the same place:
 * kvm.c vcpu_load/vcpu_put (context ops, kpreempt), kvm_x86.c
 * vcpu_enter_guest (cpu_runrun, issig, smt/thread_affinity),
 * kvm.c kvm_xcall (xc_sync), kvm_vmx.c vmx_vcpu_setup (selectors) and
 * kvm_x86.c native_read_msr_safe (on_trap).
 */

#include <sys/types.h>
#include <sys/param.h>
#include <sys/debug.h>
#include <sys/systm.h>
#include <sys/thread.h>
#include <sys/proc.h>
#include <sys/disp.h>
#include <sys/cpuvar.h>
#include <sys/x_call.h>
#include <sys/segments.h>
#include <sys/ontrap.h>

#include "kvm_vmx_glue.h"

/* The Rust per-CPU table (src/illumos/vmx_host.rs) covers every cpu_id. */
CTASSERT(NCPU <= KVM_VMX_MAX_CPUS);

uint32_t
kvm_vmx_glue_cpu_id(void)
{
	return ((uint32_t)CPU->cpu_id);
}

/* curthread, for the VCPU event ring's thread column. */
uint64_t
kvm_vmx_glue_curthread(void)
{
	return ((uint64_t)(uintptr_t)curthread);
}

void
kvm_vmx_glue_preempt_disable(void)
{
	kpreempt_disable();
}

void
kvm_vmx_glue_preempt_enable(void)
{
	kpreempt_enable();
}

int
kvm_vmx_glue_runrun(void)
{
	return (CPU->cpu_runrun || CPU->cpu_kprunrun);
}

int
kvm_vmx_glue_issig(void)
{
	return (issig(JUSTLOOKING));
}

void
kvm_vmx_glue_migrate(void)
{
	thread_affinity_set(curthread, CPU_BEST);
	thread_affinity_clear(curthread);
}

/*
 * Context operations. This is the interface of the 2021 gate the SDK ships:
 *
 *	installctx(t, arg, save, restore, fork, lwp_create, exit, free, prealloc)
 *	removectx(t, arg, save, restore, fork, lwp_create, exit, free)
 *
 * where removectx() calls free(arg, 0) for the op it removes and thread exit
 * calls free(arg, isexec) for any op still installed. Newer illumos (2023+)
 * replaced them with
 *
 *	struct ctxop_template tpl = { .ct_rev = CTXOP_TPL_REV,
 *	    .ct_save = save, .ct_restore = restore, .ct_free = free };
 *	ctxop_t *op = ctxop_allocate(&tpl, arg);	(KM_SLEEP, once per VCPU)
 *	ctxop_attach(curthread, op);			(vcpu_load)
 *	ctxop_detach(curthread, op);			(vcpu_put)
 *	ctxop_free(op);					(VCPU destroy)
 *
 * (ct_free there takes only the argument; illumos-kvm kvm.c uses exactly
 * this). A port to such a kernel changes only these three functions: the
 * prealloc becomes ctxop_allocate, install ctxop_attach, remove
 * ctxop_detach followed by ctxop_free.
 */
void *
kvm_vmx_glue_ctx_prealloc(void)
{
	return (installctx_preallocate());
}

void
kvm_vmx_glue_ctx_install(void *prealloc, void *arg, void (*save)(void *),
    void (*restore)(void *), void (*freef)(void *, int))
{
	installctx(curthread, arg, save, restore, NULL, NULL, NULL, freef,
	    (struct ctxop *)prealloc);
}

int
kvm_vmx_glue_ctx_remove(void *arg, void (*save)(void *),
    void (*restore)(void *), void (*freef)(void *, int))
{
	return (removectx(curthread, arg, save, restore, NULL, NULL, NULL,
	    freef));
}

void
kvm_vmx_glue_xcall_all(int (*func)(uintptr_t, uintptr_t, uintptr_t),
    uint64_t a1, uint64_t a2)
{
	cpuset_t set;

	CPUSET_ALL(set);
	kpreempt_disable();
	xc_sync((xc_arg_t)a1, (xc_arg_t)a2, 0, CPUSET2BV(set),
	    (xc_func_t)func);
	kpreempt_enable();
}

void
kvm_vmx_glue_host_selectors(uint16_t *cs, uint16_t *ds, uint16_t *tr)
{
	*cs = KCS_SEL;
	*ds = KDS_SEL;
	*tr = KTSS_SEL;
}

int
kvm_vmx_glue_rdmsr_safe(uint32_t msr, uint64_t *val)
{
	on_trap_data_t otd;
	uint32_t lo, hi;
	int err = 0;

	if (on_trap(&otd, OT_DATA_ACCESS) == 0) {
		__asm__ __volatile__("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
		*val = ((uint64_t)hi << 32) | lo;
	} else {
		err = -1;
	}
	no_trap();
	return (err);
}
