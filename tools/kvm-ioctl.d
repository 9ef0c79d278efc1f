#!/usr/sbin/dtrace -s
/*
 * kvm-ioctl.d: every kvm ioctl with its result.
 *
 *   dtrace -L tools/dlib -s tools/kvm-ioctl.d
 *
 * Names come from dlib/kvmioctl.d (generated from the Rust ioctl table).
 */

#pragma D option quiet
#pragma D option switchrate=100hz

fbt::kvm_ioctl:entry
{
	self->cmd = (unsigned)arg1;
	self->traced = 1;
}

syscall::ioctl:return
/self->traced/
{
	printf("%d: %s (0x%x, tid %d): return %d, errno %d\n", timestamp,
	    kvmioctl[self->cmd], self->cmd, tid, (int)arg1, errno);
	self->cmd = 0;
	self->traced = 0;
}
