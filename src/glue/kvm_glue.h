/*
 * kvm_glue.h: kernel services the Rust driver calls that must be C, because
 * they reach into kernel structures (curproc, kas, zones, kstat_t, cyclics,
 * cpu_lock) whose layouts only the illumos headers know. Implemented in
 * kvm_services.c; declared again in src/illumos/sys.rs.
 */
#ifndef _KVM_GLUE_H
#define	_KVM_GLUE_H

#include <sys/types.h>

/* Physical address of a kernel (kmem) address: hat_getpfnum(kas.a_hat). */
extern uint64_t kvm_glue_kva2pa(const void *va);

/*
 * The page behind user address `hva` of the calling process (the VMM):
 * hat_getpfnum(curproc->p_as->a_hat). Returns 0 and sets *pfn and *is_ram
 * (pf_is_memory), or -1 if nothing is mapped there.
 */
extern int kvm_glue_user_page(uint64_t hva, uint64_t *pfn, int *is_ram);

/* A kernel address for page frame `pfn` through segkpm. */
extern void *kvm_glue_pfn2kva(uint64_t pfn);

/* curproc->p_pid and curproc->p_zone->zone_name (cut to zonelen - 1). */
extern void kvm_glue_caller(uint64_t *pid, char *zone, size_t zonelen);

/*
 * A virtual named kstat kvm:instance:name, class misc, in the global zone,
 * over `ndata` kstat_named_t at `data` with ks_data_size `data_size`;
 * installed. NULL if kstat_create_zone refused.
 */
extern void *kvm_glue_kstat_install(int instance, const char *name,
    uint32_t ndata, void *data, size_t data_size);
extern void kvm_glue_kstat_delete(void *ksp);

/*
 * Anonymous private memory in the calling process, locked and zeroed (the
 * private memslots: smmap64 + memcntl(MC_LOCK)); returns its address, or 0
 * with *errp set.
 */
extern uint64_t kvm_glue_map_private(size_t len, int *errp);
extern void kvm_glue_unmap_private(uint64_t addr, size_t len);

/*
 * A one-shot timer on a cyclic (CY_LOW_LEVEL) that wakes VCPU `vcpu` of VM
 * `vm` when it fires (kvm_rs_timer_fired); the VCPU thread then runs the
 * device model, as the C driver's kvm_timer_fire left the work to it.
 */
extern void *kvm_glue_timer_create(uint32_t vm, uint32_t vcpu);
extern void kvm_glue_timer_arm(void *timer, int64_t deadline_ns);
extern void kvm_glue_timer_cancel(void *timer);
extern void kvm_glue_timer_destroy(void *timer);

#endif /* _KVM_GLUE_H */
