#!/usr/sbin/dtrace -Zs
/*
 * whyexit.d: print the reason of every VM exit.
 *
 *   dtrace -L tools/dlib -Zs tools/whyexit.d
 *
 * kvm-vexit: arg0 = guest RIP, arg1 = basic exit reason (exitno.d names it).
 */

#pragma D option quiet

kvm-vexit
{
	printf("Exited: %s\n", strexitno[arg1]);
}
