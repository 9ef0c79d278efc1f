/*
 * kvm_vmx_glue.h: kernel services the VMX run loop needs that must be C.
 */
#ifndef _KVM_VMX_GLUE_H
#define	_KVM_VMX_GLUE_H

#include <sys/types.h>

#endif /* _KVM_VMX_GLUE_H */
