/*
 * kvm_services.c: the kernel services of kvm_glue.h. Each one is a thin
 * wrapper over illumos interfaces the C driver used in the same way
 * (kvm.c hva_to_pfn, kvm_mmu.c page_address, kvm_create_vm kstats,
 * kvm_x86.c kvm_arch_prepare_memory_region, kvm_lapic.c cyclics).
 */

#include <sys/types.h>
#include <sys/param.h>
#include <sys/errno.h>
#include <sys/systm.h>
#include <sys/kmem.h>
#include <sys/proc.h>
#include <sys/zone.h>
#include <sys/kstat.h>
#include <sys/mman.h>
#include <sys/cpuvar.h>
#include <sys/cyclic.h>
#include <sys/atomic.h>
#include <sys/vmsystm.h>
#include <vm/as.h>
#include <vm/hat.h>
#include <vm/seg_kpm.h>

#include "kvm_glue.h"
#include "kvm_rs.h"

extern caddr_t smmap64(caddr_t, size_t, int, int, int, off_t);
extern int memcntl(caddr_t, size_t, int, caddr_t, int, int);

uint64_t
kvm_glue_kva2pa(const void *va)
{
	uintptr_t a = (uintptr_t)va;
	pfn_t pfn = hat_getpfnum(kas.a_hat, (caddr_t)a);

	return (((uint64_t)pfn << PAGESHIFT) | (a & PAGEOFFSET));
}

int
kvm_glue_user_page(uint64_t hva, uint64_t *pfnp, int *is_ram)
{
	pfn_t pfn = hat_getpfnum(curproc->p_as->a_hat, (caddr_t)(uintptr_t)hva);

	if (pfn == PFN_INVALID)
		return (-1);
	*pfnp = pfn;
	*is_ram = pf_is_memory(pfn);
	return (0);
}

void *
kvm_glue_pfn2kva(uint64_t pfn)
{
	return (hat_kpm_mapin_pfn((pfn_t)pfn));
}

void
kvm_glue_caller(uint64_t *pid, char *zone, size_t zonelen)
{
	proc_t *p = curproc;

	*pid = (uint64_t)p->p_pid;
	if (zonelen > 0)
		(void) strlcpy(zone, p->p_zone->zone_name, zonelen);
}

void *
kvm_glue_kstat_install(int instance, const char *name, uint32_t ndata,
    void *data, size_t data_size)
{
	kstat_t *ksp;

	ksp = kstat_create_zone("kvm", instance, (char *)name, "misc",
	    KSTAT_TYPE_NAMED, ndata, KSTAT_FLAG_VIRTUAL, GLOBAL_ZONEID);
	if (ksp == NULL)
		return (NULL);
	ksp->ks_data = data;
	ksp->ks_data_size = data_size;
	kstat_install(ksp);
	return (ksp);
}

void
kvm_glue_kstat_delete(void *ksp)
{
	kstat_delete((kstat_t *)ksp);
}

uint64_t
kvm_glue_map_private(size_t len, int *errp)
{
	caddr_t addr;
	int err;

	addr = smmap64(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANON, -1, 0);
	if ((uintptr_t)addr == (uintptr_t)-1) {
		*errp = ENOMEM;
		return (0);
	}
	/* Locked so the pages exist and stay: the MMU only does HAT lookups. */
	err = memcntl(addr, len, MC_LOCK, 0, PROT_READ | PROT_WRITE, 0);
	if (err != 0) {
		(void) as_unmap(curproc->p_as, addr, len);
		*errp = EAGAIN;
		return (0);
	}
	*errp = 0;
	return ((uint64_t)(uintptr_t)addr);
}

void
kvm_glue_unmap_private(uint64_t addr, size_t len)
{
	(void) as_unmap(curproc->p_as, (caddr_t)(uintptr_t)addr, len);
}

typedef struct kvm_glue_timer {
	cyclic_id_t	kgt_id;
	uint32_t	kgt_vm;
	uint32_t	kgt_vcpu;
} kvm_glue_timer_t;

static void
kvm_glue_timer_fire(void *arg)
{
	kvm_glue_timer_t *t = arg;

	kvm_rs_timer_fired(t->kgt_vm, t->kgt_vcpu);
}

void *
kvm_glue_timer_create(uint32_t vm, uint32_t vcpu)
{
	kvm_glue_timer_t *t = kmem_zalloc(sizeof (*t), KM_SLEEP);

	t->kgt_id = CYCLIC_NONE;
	t->kgt_vm = vm;
	t->kgt_vcpu = vcpu;
	return (t);
}

void
kvm_glue_timer_cancel(void *arg)
{
	kvm_glue_timer_t *t = arg;

	mutex_enter(&cpu_lock);
	if (t->kgt_id != CYCLIC_NONE) {
		cyclic_remove(t->kgt_id);
		t->kgt_id = CYCLIC_NONE;
	}
	mutex_exit(&cpu_lock);
}

void
kvm_glue_timer_arm(void *arg, int64_t deadline_ns)
{
	kvm_glue_timer_t *t = arg;
	cyc_handler_t hdlr;
	cyc_time_t when;

	hdlr.cyh_func = kvm_glue_timer_fire;
	hdlr.cyh_arg = t;
	hdlr.cyh_level = CY_LOW_LEVEL;
	when.cyt_when = deadline_ns;
	when.cyt_interval = CY_INFINITY;

	mutex_enter(&cpu_lock);
	if (t->kgt_id != CYCLIC_NONE)
		cyclic_remove(t->kgt_id);
	t->kgt_id = cyclic_add(&hdlr, &when);
	mutex_exit(&cpu_lock);
}

void
kvm_glue_timer_destroy(void *arg)
{
	kvm_glue_timer_cancel(arg);
	kmem_free(arg, sizeof (kvm_glue_timer_t));
}
