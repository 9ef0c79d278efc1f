#!/usr/sbin/dtrace -Zs
/*
 * kvm-cr.d: count guest control-register accesses that exit, by operation
 * and register, every 10 seconds.
 *
 * kvm-cr: arg0 = control register, arg1 = general register,
 *         arg2 = access type (0 mov to CR, 1 mov from CR, 2 clts, 3 lmsw).
 */

#pragma D option quiet

inline int CR_ACCESS_MOV_TO = 0;
inline int CR_ACCESS_MOV_FROM = 1;
inline int CR_ACCESS_CLTS = 2;
inline int CR_ACCESS_LMSW = 3;

inline string strcr[int32_t r] =
    r == 0 ? "CR0" :
    r == 3 ? "CR3" :
    r == 4 ? "CR4" :
    r == 8 ? "CR8" :
    "<unknown>";

inline string strcrop[int32_t r] =
    r == CR_ACCESS_MOV_TO ? "mov to cr" :
    r == CR_ACCESS_MOV_FROM ? "mov from cr" :
    r == CR_ACCESS_CLTS ? "clts" :
    r == CR_ACCESS_LMSW ? "lmsw" :
    "<unknown>";

kvm-cr
{
	@[strcrop[arg2], strcr[arg0]] = count();
}

tick-10sec
{
	printf("%-15s %-12s %8s\n", "OPERATION", "REGISTER", "COUNT");
	printa("%15s %12s %@8d\n", @);
	printf("\n");
	trunc(@);
}
