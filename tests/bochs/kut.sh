#!/usr/bin/env bash
# kvm-unit-tests plumbing for the Bochs harness.
#
#   kut.sh build        copy the source to a writable dir, configure and build
#                       the x86_64 and the i386 images (incremental)
#   kut.sh list         one line per section of x86/unittests.cfg:
#                       <name> file=<image> smp=<n> arch=<arch> extra_params=<...>
#   kut.sh table        the last run's results with expectations, as the
#                       markdown table of README.md "Results"
#   kut.sh run [NAME]   build, then one line per test (or only NAME):
#                       kut: <name> <PASS|FAIL|SKIP> pass=<n> fail=<n> skip=<n> insns=<n>
#                       Reasons go to stderr as "# <name>: <reason>".
#
# Environment: KUT_SRC (default <repo>/../shared/kvm-unit-tests),
# KUT_BUILD (default tests/bochs/build/kut), MAKE_JOBS (default 2).
#
# Each test is one Bochs run of the test host with the image as payload
# (PAYLOAD_MODE=kut): the host's VMM (src/vmm.rs) drives the driver through
# its ioctl dispatcher as QEMU does and runs the image. KUT_JOBS (2) runs
# in parallel, KUT_TIMEOUT (30 s of wall clock) and KUT_MAX_INSNS
# (300M guest+host instructions, checked between KVM_RUN calls) per run, KUT_MEGS (160) of Bochs RAM,
# KUT_IPS (Bochs instructions per emulated second: 50M, the clock of the
# guest's LAPIC timer and of the host's time slices).
#
# Expectations (kut-expect.txt, one line per section):
#   <name> | <PASS|XFAIL|FAIL|SKIP> | <options> | <expected FAIL lines> | <reason>
# options: budget=<insns> smp=<n> timeout=<s> ips=<n> args=<a,b> (override the defaults for
# that test, with the reason saying why); expected FAIL lines: `;`-separated
# substrings of the test's own "FAIL:" lines that an XFAIL test may print.
# After the run the guard compares: a PASS test that does not pass, an
# XFAIL test with an unexpected FAIL line or that did not finish, or a SKIP
# test that fails is a regression; `kut.sh run` then exits 1 (so does
# `make test`). Tests doing better than expected are reported, not failed.
# KUT_EXPECT=none turns the guard off.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
KUT_SRC="$(realpath -m "${KUT_SRC:-$repo/../shared/kvm-unit-tests}")"
KUT_BUILD="${KUT_BUILD:-$here/build/kut}"
MAKE_JOBS="${MAKE_JOBS:-2}"

die() { echo "kut.sh: $*" >&2; exit 2; }

check_source() {
  [ -f "$KUT_SRC/x86/unittests.cfg" ] && [ -x "$KUT_SRC/configure" ] || die \
    "kvm-unit-tests not found at $KUT_SRC (x86/unittests.cfg, configure): set KUT_SRC=/path/to/kvm-unit-tests (upstream: https://gitlab.com/kvm-unit-tests/kvm-unit-tests)"
}

# A fingerprint of the source tree: rebuild the copy when it changes.
source_stamp() {
  { echo "$KUT_SRC"; cat "$KUT_SRC/UPSTREAM_COMMIT" 2>/dev/null || true
    (cd "$KUT_SRC" && find . -type f -printf '%P %s %T@\n' | sort); } | md5sum | cut -d' ' -f1
}

# Some trees store symlinks as small files holding the link target (e.g.
# x86/sieve.c containing "../common/sieve.c"); make them real copies.
fix_link_files() {
  local dir="$1" f target
  while IFS= read -r -d '' f; do
    target="$(cat "$f")"
    case "$target" in *$'\n'*|"") continue ;; esac
    [ "$(wc -l < "$f")" = 0 ] || continue
    [ -f "$(dirname "$f")/$target" ] || continue
    cp "$(dirname "$f")/$target" "$f"
  done < <(find "$dir" -type f -size -256c -print0)
}

# build_arch ARCH: the tree for ARCH in $KUT_BUILD/ARCH, configured and built.
build_arch() {
  local arch="$1" dir="$KUT_BUILD/$1" stamp
  stamp="$(source_stamp)"
  if [ ! -f "$dir/.kut-stamp" ] || [ "$(cat "$dir/.kut-stamp")" != "$stamp" ]; then
    rm -rf "$dir"
    mkdir -p "$KUT_BUILD"
    cp -r "$KUT_SRC" "$dir"
    chmod -R u+w "$dir"
    fix_link_files "$dir"
    (cd "$dir" && ./configure --arch="$arch" > configure.log 2>&1) \
      || { cat "$dir/configure.log" >&2; die "configure --arch=$arch failed"; }
    echo "$stamp" > "$dir/.kut-stamp"
  fi
  (cd "$dir" && make -j"$MAKE_JOBS" > make.log 2>&1) \
    || { tail -n 30 "$dir/make.log" >&2; die "make (arch $arch) failed; log: $dir/make.log"; }
}

do_build() {
  check_source
  local start=$SECONDS
  build_arch x86_64
  build_arch i386
  echo "# kvm-unit-tests built in $((SECONDS - start))s: $(ls "$KUT_BUILD"/x86_64/x86/*.flat | wc -l) x86_64 images, $(ls "$KUT_BUILD"/i386/x86/*.flat | wc -l) i386 images in $KUT_BUILD" >&2
}

# Sections of unittests.cfg as name, file, smp, arch, test_args,
# qemu_params separated by US (0x1f: empty fields survive `read`):
# name, file, smp, arch,
# test_args, qemu_params (multi-line """ values joined).
sections() {
  awk '
    function flush() {
      if (name != "") printf "%s\037%s\037%s\037%s\037%s\037%s\n", name, file, smp, arch, args, params
    }
    function unquote(v) { gsub(/^["'\'']|["'\'']$/, "", v); return v }
    inml { line = $0
           if (line ~ /"""/) { sub(/""".*/, "", line); inml = 0 }
           params = params " " line; next }
    /^\[.*\]$/ { flush(); name = substr($0, 2, length($0) - 2)
                 file = ""; smp = 1; arch = "any"; args = ""; params = ""; next }
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    /^[a-z_]+[ \t]*=/ {
      key = $0; sub(/[ \t]*=.*/, "", key)
      val = $0; sub(/^[a-z_]+[ \t]*=[ \t]*/, "", val)
      if (val ~ /^"""/) { sub(/^"""/, "", val)
                          if (val ~ /"""/) sub(/""".*/, "", val); else inml = 1 }
      if (key == "file") file = val
      else if (key == "smp") smp = val
      else if (key == "arch") arch = val
      else if (key == "test_args") args = unquote(val)
      else if (key == "qemu_params" || key == "extra_params") params = (params == "" ? val : params " " val)
    }
    END { flush() }' "$KUT_SRC/x86/unittests.cfg"
}

do_list() {
  check_source
  sections | while IFS=$'\037' read -r name file smp arch args params; do
    extra="$params"
    [ -n "$args" ] && extra="${extra:+$extra }-append '$args'"
    echo "$name file=$file smp=$smp arch=$arch extra_params=$extra"
  done
}

# image_for FILE ARCH: the built image path (i386 sections use the i386 tree).
image_for() {
  local tree=x86_64
  [ "$2" = i386 ] && tree=i386
  echo "$KUT_BUILD/$tree/x86/$1"
}

EXPECT_FILE="${KUT_EXPECT:-$here/kut-expect.txt}"

# expect_field NAME N: field N (1-based, `|`-separated, trimmed) of NAME's
# line in the expectations file; empty if none.
expect_field() {
  [ -f "$EXPECT_FILE" ] || return 0
  awk -F'|' -v name="$1" -v n="$2" '
    /^[ \t]*#/ || NF < 2 { next }
    { k = $1; gsub(/^[ \t]+|[ \t]+$/, "", k) }
    k == name { v = $n; gsub(/^[ \t]+|[ \t]+$/, "", v); print v; exit }' "$EXPECT_FILE"
}

# option VALUE-LIST KEY: the value of KEY=... in a space-separated list.
option() {
  local kv
  for kv in $1; do
    case "$kv" in "$2="*) echo "${kv#*=}"; return 0 ;; esac
  done
}

# guard NAME: compare NAME's result with its expectation; prints a
# "# kut-guard:" line and returns 1 on a regression.
guard() {
  local name="$1" line status expect xfails log unexpected=0 l pat ok
  IFS=$'\t' read -r line _ < "$KUT_BUILD/runs/$name/result" || return 1
  status="$(echo "$line" | cut -d' ' -f3)"
  expect="$(expect_field "$name" 2)"
  xfails="$(expect_field "$name" 4)"
  log="$KUT_BUILD/runs/$name/e9.log"
  case "$expect" in
    "") echo "# kut-guard: $name: no expectation in $(basename "$EXPECT_FILE") (got $status)" >&2; return 0 ;;
    PASS) [ "$status" = PASS ] && return 0 ;;
    SKIP) case "$status" in SKIP) return 0 ;; PASS) echo "# kut-guard: $name: better than expected (SKIP): PASS" >&2; return 0 ;; esac ;;
    FAIL) [ "$status" = PASS ] && echo "# kut-guard: $name: better than expected (FAIL): PASS" >&2; return 0 ;;
    XFAIL)
      if [ "$status" = PASS ]; then
        echo "# kut-guard: $name: better than expected (XFAIL): PASS" >&2; return 0
      fi
      # It must have run to the end (isa-debug-exit) and failed only where
      # expected.
      if grep -q '^kut-exit: status ' "$log" 2>/dev/null; then
        while IFS= read -r l; do
          ok=0
          IFS=';' read -ra pats <<< "$xfails"
          for pat in "${pats[@]}"; do
            pat="$(echo "$pat" | sed 's/^ *//; s/ *$//')"
            [ -n "$pat" ] && case "$l" in *"$pat"*) ok=1 ;; esac
          done
          [ "$ok" = 1 ] || { unexpected=1; echo "# kut-guard: $name: unexpected ${l#com1: }" >&2; }
        done < <(grep '^com1: FAIL:' "$log" || true)
        [ "$unexpected" = 0 ] && return 0
      fi ;;
  esac
  echo "# kut-guard: $name: REGRESSION: expected $expect, got $status" >&2
  return 1
}

# run_one NAME FILE SMP ARCH ARGS: one Bochs run of the test host with the
# image as payload (mode=kut: the host's VMM runs it through the driver's
# ioctl dispatcher). Writes "<kut line>\t<reason>" to $KUT_BUILD/runs/NAME/result.
run_one() {
  local name="$1" file="$2" smp="$3" arch="$4" args="$5"
  local dir="$KUT_BUILD/runs/$name" image status reason pass fail skip line opts
  opts="$(expect_field "$name" 3)"
  local budget="${KUT_MAX_INSNS:-$(option "$opts" budget)}" timeout="${KUT_TIMEOUT:-$(option "$opts" timeout)}"
  smp="$(option "$opts" smp || true)"; smp="${smp:-$3}"
  local ips="${KUT_IPS:-$(option "$opts" ips || true)}"
  # args=a,b replaces the section's test_args (commas for spaces); @now
  # and the cfg's `date +%s` become the time now, as the shell running
  # QEMU would make them.
  local targs; targs="$(option "$opts" args || true)"
  [ -n "$targs" ] && args="${targs//,/ }"
  args="${args//@now/$(date +%s)}"
  args="${args//\`date +%s\`/$(date +%s)}"
  rm -rf "$dir"; mkdir -p "$dir"
  image="$(image_for "$file" "$arch")"
  if [ ! -f "$image" ]; then
    printf 'kut: %s SKIP pass=0 fail=0 skip=0 insns=0\timage %s was not built for arch %s\n' \
      "$name" "$file" "$arch" > "$dir/result"
    return 0
  fi
  (
    # lib.sh's bochs_run reads exit statuses itself (Bochs exits 1).
    set +e
    export PAYLOAD_IMAGE="$image" PAYLOAD_NAME="$name" PAYLOAD_SMP="$smp" \
      PAYLOAD_ARGS="$args" PAYLOAD_MODE=kut PAYLOAD_X2APIC="${KUT_X2APIC:-1}" PAYLOAD_PROFILE="${KUT_PROFILE:-0}" PAYLOAD_MAX_INSNS="${budget:-300000000}" MEGS="${KUT_MEGS:-160}" \
      TIMEOUT="${timeout:-30}"
    [ -n "$ips" ] && export IPS="$ips"
    bochs_run "$BOCHS_OUT/host.bin" "$BOCHS_OUT/rom.bin" "$BOCHS_OUT/vga-dummy.bin" "$dir"
    echo "$BOCHS_RC $BOCHS_INSNS $BOCHS_SHUTDOWN $BOCHS_WALL" > "$dir/bochs.status"
  )
  local rc insns shutdown wall
  read -r rc insns shutdown wall < "$dir/bochs.status" || { rc=2; insns=0; shutdown=0; wall=0; }
  local log="$dir/e9.log"
  set +e
  pass=$(grep -c '^com1: PASS:' "$log" || true)
  fail=$(grep -c '^com1: FAIL:' "$log" || true)
  skip=$(grep -c '^com1: SKIP:' "$log" || true)
  status=FAIL
  if grep -q '^kut-skip: ' "$log"; then
    status=SKIP; reason="$(sed -n 's/^kut-skip: //p' "$log" | head -n 1)"
  elif grep -q '^kut-exit: status ' "$log"; then
    local code
    code="$(sed -n 's/^kut-exit: status //p' "$log" | head -n 1)"
    case "$code" in
      1) if [ "$fail" = 0 ]; then status=PASS; reason="exit status 1"
         else reason="exit status 1 but $fail FAIL lines"; fi ;;
      77) status=SKIP; reason="the test skipped itself (exit status 77): $(grep -m1 '^com1: SKIP' "$log" | cut -c7- || true)" ;;
      *) reason="exit status $code; $(grep -m1 '^com1: FAIL' "$log" | cut -c7- || true)" ;;
    esac
  elif grep -q '^kut-error: ' "$log"; then
    reason="$(sed -n 's/^kut-error: //p' "$log" | head -n 1)"
  elif [ "$rc" = 124 ]; then
    reason="timeout after ${timeout:-30}s of Bochs wall clock"
  elif grep -q '^RESULT: FAIL' "$log"; then
    reason="host: $(sed -n 's/^RESULT: FAIL: //p' "$log" | head -n 1)"
  else
    reason="Bochs ended without a result (rc $rc, shutdown $shutdown); see $dir"
  fi
  line="kut: $name $status pass=$pass fail=$fail skip=$skip insns=$insns"
  printf '%s\t%s (%ss)\n' "$line" "$reason" "$wall" > "$dir/result"
}

# sections, the ones with the largest budget (kut-expect.txt) first, so
# the long runs overlap the many short ones.
sections_longest_first() {
  local name file smp arch args params b
  sections | while IFS=$'\037' read -r name file smp arch args params; do
    b="$(option "$(expect_field "$name" 3)" budget || true)"
    printf '%s\037%s\037%s\037%s\037%s\037%s\037%s\n' "${b:-300000000}" "$name" "$file" "$smp" "$arch" "$args" "$params"
  done | sort -t$'\037' -k1,1nr -s | cut -d$'\037' -f2-
}

do_run() {
  local only="${1:-}" found=0 n=0 jobs="${KUT_JOBS:-2}" running=0
  do_build
  if [ -n "$only" ] && ! sections | cut -d$'\037' -f1 | grep -qxF -- "$only"; then
    die "no section [$only] in $KUT_SRC/x86/unittests.cfg (kut.sh list shows them)"
  fi
  . "$here/lib.sh"
  ensure_bochs || die "Bochs is not available"
  BOCHS_OUT="${OUT:-$here/build}"
  mkdir -p "$BOCHS_OUT"
  "$here/build.sh" > "$BOCHS_OUT/build.log" 2>&1 \
    || { cat "$BOCHS_OUT/build.log" >&2; die "building the test host failed"; }
  mkdir -p "$KUT_BUILD"
  : > "$KUT_BUILD/results.txt"
  local names=() start=$SECONDS
  while IFS=$'\037' read -r name file smp arch args params; do
    [ -z "$only" ] || [ "$name" = "$only" ] || continue
    found=1
    n=$((n + 1))
    names+=("$name")
    if [ "$running" -ge "$jobs" ]; then
      wait -n || true
      running=$((running - 1))
    fi
    run_one "$name" "$file" "$smp" "$arch" "$args" < /dev/null &
    running=$((running + 1))
  done < <(sections_longest_first)
  wait || true
  [ "$found" = 1 ] || die "no test ran"
  local npass=0 nfail=0 nskip=0 name line reason
  for name in "${names[@]}"; do
    IFS=$'\t' read -r line reason < "$KUT_BUILD/runs/$name/result" \
      || { line="kut: $name FAIL pass=0 fail=0 skip=0 insns=0"; reason="no result"; }
    echo "$line"
    echo "# $name: $reason" >&2
    printf '%s\t%s\n' "$line" "$reason" >> "$KUT_BUILD/results.txt"
    case "$line" in
      *" PASS "*) npass=$((npass + 1)) ;;
      *" SKIP "*) nskip=$((nskip + 1)) ;;
      *) nfail=$((nfail + 1)) ;;
    esac
  done
  echo "# kut: $n tests in $((SECONDS - start))s: $npass passed, $nfail failed, $nskip skipped; results in $KUT_BUILD/results.txt, logs in $KUT_BUILD/runs/<name>/e9.log" >&2
  [ "${KUT_EXPECT:-}" = none ] && return 0
  local regressions=0
  for name in "${names[@]}"; do
    guard "$name" || regressions=$((regressions + 1))
  done
  if [ "$regressions" != 0 ]; then
    echo "# kut-guard: $regressions regression(s) against $(basename "$EXPECT_FILE")" >&2
    return 1
  fi
  echo "# kut-guard: every test as expected ($(basename "$EXPECT_FILE"))" >&2
}

# do_table: the README's results table from the last run's results.txt
# and the expectations: | test | expected | result | pass/fail/skip | insns | why |
do_table() {
  local res="$KUT_BUILD/results.txt" line reason name status counts insns e why
  [ -f "$res" ] || die "no $res: run kut.sh run first"
  echo "| test | expected | result | pass/fail/skip | instructions | reason |"
  echo "|---|---|---|---|---|---|"
  while IFS=$'\t' read -r line reason; do
    read -r _ name status p f s insns <<< "$line"
    counts="${p#pass=}/${f#fail=}/${s#skip=}"
    e="$(expect_field "$name" 2)"
    why="$(expect_field "$name" 5)"
    [ -n "$why" ] || why="$reason"
    echo "| $name | ${e:-?} | $status | $counts | ${insns#insns=} | ${why//|/\\|} |"
  done < "$res"
}

case "${1:-run}" in
  build) do_build ;;
  list) do_list ;;
  table) do_table ;;
  run) do_run "${2:-}" ;;
  *) die "usage: kut.sh build | list | run [NAME] | table" ;;
esac
