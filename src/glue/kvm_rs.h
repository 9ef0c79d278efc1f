/*
 * The extern "C" boundary between the DDI glue (kvm_glue.c) and the Rust
 * driver (src/entry.rs). Everything the kernel hands the driver crosses here,
 * with C-simple types; the Rust side re-declares each function with the same
 * signature and tests/glue_abi.rs checks both sides agree.
 *
 * Return values are 0 or an errno (<sys/errno.h>), never negative.
 */
#ifndef _KVM_RS_H
#define	_KVM_RS_H

#include <sys/types.h>
#include <sys/ddi.h>
#include <sys/sunddi.h>

/* _init, before mod_install(): set up the driver's global state. */
extern int kvm_rs_init(void);
/* _fini, after a successful mod_remove(): tear it down. */
extern void kvm_rs_fini(void);

/*
 * attach(9E): decide whether this CPU can run VMs (VMX, EPT, not locked off
 * by firmware). On refusal it has already logged one cmn_err line saying why.
 */
extern int kvm_rs_attach(void);
/* detach(9E): EBUSY while any VM exists. */
extern int kvm_rs_detach(void);

/*
 * open(9E) of *devp (must be the clone minor 0): on success *devp is the
 * device with the private minor this open now owns (self-cloning open).
 */
extern int kvm_rs_open(dev_t *devp, int flag, int otyp);
/* close(9E) of a private minor. */
extern int kvm_rs_close(dev_t dev, int flag, int otyp);
/*
 * ioctl(9E). `mode` carries the caller's data model (FMODELS bits: 32-bit
 * callers are refused, the ABI is LP64 only) and is passed on to
 * ddi_copyin/ddi_copyout.
 */
extern int kvm_rs_ioctl(dev_t dev, int cmd, intptr_t arg, int mode,
    int *rvalp);
/* segmap(9E) checks before ddi_devmap_segmap(). */
extern int kvm_rs_segmap(dev_t dev, offset_t off, size_t len, uint_t prot);
/*
 * devmap(9E): choose the umem cookie backing [off, off + *maplenp) of this
 * minor's mapping; the glue then calls devmap_umem_setup(). `model` is the
 * caller's data model, as devmap(9E) passes it.
 */
extern int kvm_rs_devmap(dev_t dev, offset_t off, size_t len, uint_t model,
    ddi_umem_cookie_t *cookiep, size_t *maplenp);

/*
 * A device timer of VCPU `vcpu` of VM `vm` expired (cyclic handler,
 * CY_LOW_LEVEL): wake the VCPU. Never sleeps, never allocates.
 */
extern void kvm_rs_timer_fired(uint32_t vm, uint32_t vcpu);

#endif /* _KVM_RS_H */
