#!/usr/sbin/dtrace -s
/*
 * kvm-badioctl.d: only the kvm ioctls that fail, with their errno.
 *
 *   dtrace -L tools/dlib -s tools/kvm-badioctl.d
 *
 * (The C driver's version cleared its state with the predicate
 * `/self->cmd = 0/`, an assignment; here every return clears it.)
 */

#pragma D option quiet
#pragma D option switchrate=100hz

fbt::kvm_ioctl:entry
{
	self->cmd = (unsigned)arg1;
	self->traced = 1;
}

syscall::ioctl:return
/self->traced && errno != 0/
{
	printf("%d: %s (0x%x, tid %d): errno %d\n", timestamp,
	    kvmioctl[self->cmd], self->cmd, tid, errno);
}

syscall::ioctl:return
/self->traced/
{
	self->cmd = 0;
	self->traced = 0;
}
