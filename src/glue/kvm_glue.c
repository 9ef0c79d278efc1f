/*
 * kvm_glue.c: the DDI shell of the kvm driver, and only that.
 *
 * What must be C stays here: the module linkage (modlinkage, modldrv,
 * dev_ops, cb_ops) compiled against the real illumos headers, attach/detach
 * of the /devices/pseudo/kvm@0:kvm minor node, and the calls that take
 * kernel structures by pointer (devmap_umem_setup, ddi_devmap_segmap).
 * Every decision (which CPUs are supported, the clone-open handle model,
 * ioctls, what a mapping may cover) is made by the Rust driver behind the
 * kvm_rs_* functions of kvm_rs.h.
 *
 * Port of the DDI half of illumos-kvm's kvm.c (kvm_attach, kvm_detach,
 * kvm_getinfo, kvm_open, kvm_close, kvm_ioctl, kvm_devmap, kvm_segmap,
 * _init/_fini/_info), GPL-2.0.
 */

#include <sys/types.h>
#include <sys/param.h>
#include <sys/errno.h>
#include <sys/file.h>
#include <sys/open.h>
#include <sys/stat.h>
#include <sys/cred.h>
#include <sys/conf.h>
#include <sys/modctl.h>
#include <sys/cmn_err.h>
#include <sys/mman.h>
#include <sys/model.h>
#include <sys/ddi.h>
#include <sys/sunddi.h>
#include <sys/devops.h>
#include <vm/seg_kpm.h>

#include "kvm_rs.h"

/* The clone minor: /dev/kvm. Every open gets a private minor above it. */
#define	KVM_MINOR_BASE	0

static dev_info_t *kvm_dip;

static int
kvm_attach(dev_info_t *dip, ddi_attach_cmd_t cmd)
{
	if (cmd != DDI_ATTACH)
		return (DDI_FAILURE);
	if (kvm_dip != NULL)
		return (DDI_FAILURE);

	/* Guest pages are reached through segkpm, as in the C driver. */
	if (kpm_enable == 0) {
		cmn_err(CE_WARN, "kvm: kpm_enable must be true");
		return (DDI_FAILURE);
	}

	/* VMX, EPT, firmware lock: Rust decides and logs the reason. */
	if (kvm_rs_attach() != 0)
		return (DDI_FAILURE);

	if (ddi_create_minor_node(dip, "kvm", S_IFCHR, KVM_MINOR_BASE,
	    DDI_PSEUDO, 0) == DDI_FAILURE) {
		cmn_err(CE_WARN, "kvm: cannot create the kvm minor node");
		return (DDI_FAILURE);
	}

	kvm_dip = dip;
	ddi_report_dev(dip);
	return (DDI_SUCCESS);
}

static int
kvm_detach(dev_info_t *dip, ddi_detach_cmd_t cmd)
{
	if (cmd != DDI_DETACH)
		return (DDI_FAILURE);
	if (kvm_dip == NULL || kvm_dip != dip)
		return (DDI_FAILURE);
	if (kvm_rs_detach() != 0)
		return (DDI_FAILURE);

	ddi_prop_remove_all(dip);
	ddi_remove_minor_node(dip, NULL);
	kvm_dip = NULL;
	return (DDI_SUCCESS);
}

/*
 * The C driver returned DDI_FAILURE for DEVT2DEVINFO even when it had
 * filled *result; report success whenever we are attached.
 */
/*ARGSUSED*/
static int
kvm_getinfo(dev_info_t *dip, ddi_info_cmd_t infocmd, void *arg, void **result)
{
	switch (infocmd) {
	case DDI_INFO_DEVT2DEVINFO:
		if (kvm_dip == NULL)
			return (DDI_FAILURE);
		*result = kvm_dip;
		return (DDI_SUCCESS);
	case DDI_INFO_DEVT2INSTANCE:
		*result = (void *)0;
		return (DDI_SUCCESS);
	default:
		return (DDI_FAILURE);
	}
}

/*ARGSUSED*/
static int
kvm_open(dev_t *devp, int flag, int otyp, cred_t *credp)
{
	return (kvm_rs_open(devp, flag, otyp));
}

/*ARGSUSED*/
static int
kvm_close(dev_t dev, int flag, int otyp, cred_t *credp)
{
	return (kvm_rs_close(dev, flag, otyp));
}

/*ARGSUSED*/
static int
kvm_ioctl(dev_t dev, int cmd, intptr_t arg, int mode, cred_t *credp,
    int *rvalp)
{
	return (kvm_rs_ioctl(dev, cmd, arg, mode, rvalp));
}

static int
kvm_devmap(dev_t dev, devmap_cookie_t dhp, offset_t off, size_t len,
    size_t *maplen, uint_t model)
{
	ddi_umem_cookie_t cookie;
	size_t mlen;
	int err;

	err = kvm_rs_devmap(dev, off, len, model, &cookie, &mlen);
	if (err != 0)
		return (err);

	err = devmap_umem_setup(dhp, kvm_dip, NULL, cookie, 0, mlen,
	    PROT_READ | PROT_WRITE | PROT_USER, DEVMAP_DEFAULTS, NULL);
	if (err == 0)
		*maplen = mlen;
	return (err);
}

static int
kvm_segmap(dev_t dev, off_t off, struct as *asp, caddr_t *addrp, off_t len,
    unsigned int prot, unsigned int maxprot, unsigned int flags,
    cred_t *credp)
{
	int err;

	if (len < 0)
		return (EINVAL);
	err = kvm_rs_segmap(dev, off, (size_t)len, prot);
	if (err != 0)
		return (err);

	return (ddi_devmap_segmap(dev, off, asp, addrp, len, prot, maxprot,
	    flags, credp));
}

static struct cb_ops kvm_cb_ops = {
	kvm_open,	/* open */
	kvm_close,	/* close */
	nodev,		/* strategy */
	nodev,		/* print */
	nodev,		/* dump */
	nodev,		/* read */
	nodev,		/* write */
	kvm_ioctl,	/* ioctl */
	kvm_devmap,	/* devmap */
	nodev,		/* mmap */
	kvm_segmap,	/* segmap */
	nochpoll,	/* poll */
	ddi_prop_op,	/* prop_op */
	NULL,		/* streamtab */
	D_NEW | D_MP | D_DEVMAP
};

static struct dev_ops kvm_ops = {
	DEVO_REV,
	0,		/* refcnt */
	kvm_getinfo,
	nulldev,	/* identify */
	nulldev,	/* probe */
	kvm_attach,
	kvm_detach,
	nodev,		/* reset */
	&kvm_cb_ops,
	(struct bus_ops *)0,
	NULL,		/* power */
	ddi_quiesce_not_needed
};

static struct modldrv modldrv = {
	&mod_driverops,
	"kvm driver (Rust)",
	&kvm_ops
};

static struct modlinkage modlinkage = {
	MODREV_1,
	{ &modldrv, NULL }
};

int
_init(void)
{
	int err;

	if ((err = kvm_rs_init()) != 0)
		return (err);
	if ((err = mod_install(&modlinkage)) != 0)
		kvm_rs_fini();
	return (err);
}

int
_fini(void)
{
	int err;

	if ((err = mod_remove(&modlinkage)) == 0)
		kvm_rs_fini();
	return (err);
}

int
_info(struct modinfo *modinfop)
{
	return (mod_info(&modlinkage, modinfop));
}
