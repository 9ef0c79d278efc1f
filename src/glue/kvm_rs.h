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
 * open(9E) of `minor` (must be the clone minor 0): on success *newminor is
 * the private minor this open now owns (self-cloning open).
 */
extern int kvm_rs_open(minor_t minor, int flag, int otyp, minor_t *newminor);
/* close(9E) of a private minor. */
extern int kvm_rs_close(minor_t minor, int flag, int otyp);
/*
 * ioctl(9E). `mode` is passed on to ddi_copyin/ddi_copyout; `ilp32` is set
 * when the caller is a 32-bit process (refused: the ABI is LP64 only).
 */
extern int kvm_rs_ioctl(minor_t minor, int cmd, intptr_t arg, int mode,
    int ilp32, int *rvalp);
/* segmap(9E) checks before ddi_devmap_segmap(). */
extern int kvm_rs_segmap(minor_t minor, offset_t off, size_t len,
    uint_t prot);
/*
 * devmap(9E): choose the umem cookie backing [off, off + *maplen) of this
 * minor's mapping; the glue then calls devmap_umem_setup().
 */
extern int kvm_rs_devmap(minor_t minor, offset_t off, size_t len, int ilp32,
    ddi_umem_cookie_t *cookiep, size_t *maplenp);

#endif /* _KVM_RS_H */
