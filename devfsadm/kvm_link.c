/*
 * kvm_link.c: the devfsadm(8) link module for kvm, installed as
 * /usr/lib/devfsadm/linkmod/JOY_kvm_link.so (the name the C driver's
 * packages use, so upgrades replace it).
 *
 * kvm's only /devices node is the clone minor /devices/pseudo/kvm@0:kvm
 * (every open gets a private minor without a node), so there is one rule:
 * for a ddi_pseudo minor of a node named "kvm", link /dev/<minor name>,
 * i.e. /dev/kvm -> ../devices/pseudo/kvm@0:kvm. Same behaviour as
 * illumos-kvm's kvm_link.c.
 */

#include <devfsadm.h>
#include <strings.h>

static int kvm_link(di_minor_t, di_node_t);

static devfsadm_create_t kvm_create_cbt[] = {
	{ "pseudo", "ddi_pseudo", NULL, TYPE_EXACT, ILEVEL_0, kvm_link }
};

DEVFSADM_CREATE_INIT_V0(kvm_create_cbt);

static int
kvm_link(di_minor_t minor, di_node_t node)
{
	const char *name = di_node_name(node);
	const char *mn;

	if (name == NULL || strcmp(name, "kvm") != 0)
		return (DEVFSADM_CONTINUE);

	if ((mn = di_minor_name(minor)) == NULL)
		return (DEVFSADM_CONTINUE);

	(void) devfsadm_mklink((char *)mn, node, minor, 0);
	return (DEVFSADM_CONTINUE);
}
