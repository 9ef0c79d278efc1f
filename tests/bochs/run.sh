#!/usr/bin/env bash
# The Bochs smoke test: build the ROM and the test host, boot it under
# Bochs, and judge what it printed on port 0xE9.
#
#   tests/bochs/run.sh            exit status 0 on PASS
#
# Environment: EXPECT=pass (default), refused (with REFUSAL=<start of the
# expected refusal line>; for CPU models without VMX or EPT), guests (the
# host's own robustness guests and benchmarks, src/guests/) or bench (the
# benchmarks only), CPU, CPUS,
# MEGS, IPS, TIMEOUT (see lib.sh), PAYLOAD_IMAGE, OUT (output dir,
# default tests/bochs/build), NO_BUILD=1 to reuse the last build,
# CARGO_TARGET_DIR (default tests/bochs/target).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
OUT="${OUT:-$here/build}"
EXPECT="${EXPECT:-pass}"
export OUT

ensure_bochs || exit 2
if [ "${NO_BUILD:-0}" != 1 ]; then
  mkdir -p "$OUT"
  "$here/build.sh" > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; echo "bochs-smoke: BUILD FAILED" >&2; exit 2; }
fi
# EXPECT=guests|bench: the host runs its own guests (src/guests/) instead
# of the smoke run; no kvm-unit-tests image.
case "$EXPECT" in
  guests|bench) export PAYLOAD_MODE="$EXPECT" PAYLOAD_NAME="$EXPECT" PAYLOAD_IMAGE= ;;
esac
# Hand the host a kvm-unit-tests image when one is built (make kut): it
# checks that the image arrived and parses it. PAYLOAD_IMAGE= (empty) skips.
kut_image="$OUT/kut/x86_64/x86/sieve.flat"
if [ -z "${PAYLOAD_IMAGE+set}" ] && [ -f "$kut_image" ]; then
  export PAYLOAD_IMAGE="$kut_image" PAYLOAD_NAME=sieve
fi
run_dir="$OUT/run-${CPU:-corei7_skylake_x}"
tag=bochs-smoke
case "$EXPECT" in guests|bench) run_dir="$OUT/run-$EXPECT" tag="bochs-$EXPECT" ;; esac
bochs_run "$OUT/host.bin" "$OUT/rom.bin" "$OUT/vga-dummy.bin" "$run_dir" || exit 2
case "$EXPECT" in
  guests|bench) grep -E '^(guest|guests|bench|RESULT):' "$run_dir/e9.log" ;;
  *) cat "$run_dir/e9.log" ;;
esac

missing=0
need() {
  grep -qF -- "$1" "$run_dir/e9.log" || { echo "$tag: MISSING: $1" >&2; missing=1; }
}
case "$EXPECT" in
  pass)
    need "timer: local APIC"
    need "kvm_vmx::check_support: supported"
    need "VMXON ok"
    need "VMLAUNCH ok"
    need "exit: EXIT_REASON_CPUID"
    need "exit: EXIT_REASON_EPT_VIOLATION"
    need "exit: EXIT_REASON_HLT"
    need "guest: hello from the real-mode guest"
    need "guest: cpuid vendor: GenuineIntel"
    need "guest: guest done, halting"
    need "exit: EXIT_REASON_TRIPLE_FAULT"
    need "misbehaving guest: triple fault"
    need "vmm: KVM_CREATE_VM = 0"
    need "vmm: KVM_SET_USER_MEMORY_REGION = 0"
    need "vmm: KVM_CREATE_VCPU = 0"
    need "vmm: bring-up through the ioctl dispatcher ok"
    need "vmm: after close: 0 open minors; live EPT tables 0, shared/private blocks 0, kstats 0, timers 0"
    need "pages: every page returned to the allocator"
    need "VMXOFF ok"
    need "RESULT: PASS"
    if [ -n "${PAYLOAD_IMAGE:-}" ]; then
      sum32=$(od -An -v -tu4 "$PAYLOAD_IMAGE" | awk '{ for (i = 1; i <= NF; i++) s = (s + $i) % 4294967296 } END { printf "%#x", s }')
      need "payload: ${PAYLOAD_NAME:-$(basename "$PAYLOAD_IMAGE" .flat)} ($(basename "$PAYLOAD_IMAGE"), $(stat -c %s "$PAYLOAD_IMAGE") bytes, sum32 $sum32,"
      need "payload: ELF32 i386, entry"
    else
      echo "bochs-smoke: no payload (make kut builds the sieve.flat it would use): payload delivery not checked"
      need "payload: none"
    fi ;;
  guests|bench)
    # src/guests/: one line per guest (PASS, or XFAIL for a known driver
    # bug), one per benchmark figure, then RESULT: PASS.
    if [ "$EXPECT" = guests ]; then
      need "guests: "
      bad=$(grep -E '^guest: [^ ]+ (FAIL|XPASS)' "$run_dir/e9.log" || true)
      [ -z "$bad" ] || { echo "$tag: failing guests:" >&2; echo "$bad" >&2; missing=1; }
      n=$(sed -n 's/^guests: \([0-9]*\) run.*/\1/p' "$run_dir/e9.log")
      lines=$(grep -cE '^guest: [^ ]+ (PASS|XFAIL|FAIL|XPASS)' "$run_dir/e9.log" || true)
      [ -n "$n" ] && [ "$n" = "$lines" ] && [ "$n" -gt 0 ] \
        || { echo "$tag: $lines guest lines for '${n:-?}' guests run" >&2; missing=1; }
    fi
    grep -q '^bench: .* FAIL' "$run_dir/e9.log" && { echo "$tag: a benchmark guest failed" >&2; missing=1; }
    for b in cpuid io-out-vmm mmio-ioapic-ioregsel ept-first-touch-2m ept-first-touch-4k lapic-timer-oneshot; do
      grep -qE "^bench: $b [0-9]+ insns/op \(n=[0-9]+\)$" "$run_dir/e9.log" || { echo "$tag: MISSING: bench: $b" >&2; missing=1; }
    done
    need "RESULT: PASS" ;;
  refused)
    # A CPU the driver must refuse (CPU=ryzen, CPU=core2_penryn_t9600):
    # the shared check says why and the host stops cleanly.
    need "kvm_vmx::check_support: refused: ${REFUSAL:-kvm: }"
    need "RESULT: NO-VMX" ;;
  *) echo "bochs-smoke: unknown EXPECT=$EXPECT (pass | refused | guests | bench)" >&2; exit 2 ;;
esac
[ "$BOCHS_RC" = 124 ] && { echo "bochs-smoke: TIMEOUT after ${TIMEOUT:-60}s" >&2; missing=1; }
[ "$BOCHS_SHUTDOWN" = 1 ] || { echo "bochs-smoke: Bochs did not stop through the shutdown port; stderr:" >&2; tail -n 20 "$run_dir/stderr.log" >&2; missing=1; }
grep -q "RESULT: FAIL" "$run_dir/e9.log" && missing=1

echo "$tag: bochs ${BOCHS_WALL}s wall, ${BOCHS_INSNS} instructions (cpu=${CPU:-corei7_skylake_x} ips=${IPS:-50000000})"
if [ "$missing" = 0 ]; then
  echo "$tag: PASS ($EXPECT)"
  exit 0
fi
echo "$tag: FAIL ($EXPECT; logs in $run_dir)" >&2
exit 1
