# LAPIC timer interrupt, one-shot mode: N × (arm the timer for one APIC
# bus cycle by writing TMICT, STI; HLT until the interrupt, whose handler
# counts it and writes EOI) against the same loop writing guest RAM and
# no HLT. (The driver offers no TSC-deadline mode, as illumos-kvm:
# CPUID.1:ECX[24] is clear and WRMSR IA32_TSC_DEADLINE is #GP; periodic
# mode is clamped to 500 us, so a HLT loop would time the period.) The
# interrupt count (N + 1 with the warm-up) is reported last.
        .include "lib.inc"
        .include "bench.inc"
        .globl N
        .set N, 500
        .set TIMER_VECTOR, 0x40
        .set TMICT, APIC + 0x380
        .globl _start
_start:
        SETUP
        SET_GATE TIMER_VECTOR, timer_isr
        mov dword ptr [APIC + 0xf0], 0x1ff      # SVR: APIC on, spurious 0xff
        mov dword ptr [APIC + 0x3e0], 0xb       # TDCR: divide by 1
        mov dword ptr [APIC + 0x320], TIMER_VECTOR  # LVT timer: one-shot
        mov dword ptr [COUNT], 0
        # One interrupt before the timed loops (first touches, warm-up).
        cli
        mov dword ptr [TMICT], 1
        sti
        hlt
        LOOP_BEGIN N
        cli
        mov dword ptr [SCRATCH], 1
        sti
        nop
        LOOP_END
        LOOP_BEGIN N
        cli
        mov dword ptr [TMICT], 1
        sti
        hlt
        LOOP_END
        cli
        mov eax, dword ptr [COUNT]
        REPORT
        DONE
timer_isr:
        inc dword ptr [COUNT]
        mov dword ptr [APIC + 0xb0], 0          # EOI
        iretd
        EXC_STUBS
