/*
 * kvm_vmx_glue.c: kernel services of the VMX run loop (see kvm_vmx_glue.h).
 */

#include <sys/types.h>
