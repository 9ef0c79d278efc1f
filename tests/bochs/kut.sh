#!/usr/bin/env bash
# kvm-unit-tests plumbing for the Bochs harness.
#
#   kut.sh build        copy the source to a writable dir, configure and build
#                       the x86_64 and the i386 images (incremental)
#   kut.sh list         one line per section of x86/unittests.cfg:
#                       <name> file=<image> smp=<n> arch=<arch> extra_params=<...>
#   kut.sh run [NAME]   build, then one line per test (or only NAME):
#                       kut: <name> <PASS|FAIL|SKIP> pass=<n> fail=<n> skip=<n> insns=<n>
#                       Reasons go to stderr as "# <name>: <reason>".
#
# Environment: KUT_SRC (default <repo>/../shared/kvm-unit-tests),
# KUT_BUILD (default tests/bochs/build/kut), MAKE_JOBS (default 2).
#
# Running the images needs the VMX driver core (issue 7) linked into the
# Bochs test host; until then every test is reported SKIP, but only after
# its image was really built.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
KUT_SRC="$(realpath -m "${KUT_SRC:-$repo/../shared/kvm-unit-tests}")"
KUT_BUILD="${KUT_BUILD:-$here/build/kut}"
MAKE_JOBS="${MAKE_JOBS:-2}"
SKIP_REASON="VMX core not built yet"

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

do_run() {
  local only="${1:-}" found=0 n=0
  do_build
  if [ -n "$only" ] && ! sections | cut -d$'\037' -f1 | grep -qxF -- "$only"; then
    die "no section [$only] in $KUT_SRC/x86/unittests.cfg (kut.sh list shows them)"
  fi
  mkdir -p "$KUT_BUILD"
  : > "$KUT_BUILD/results.txt"
  while IFS=$'\037' read -r name file smp arch args params; do
    [ -z "$only" ] || [ "$name" = "$only" ] || continue
    found=1
    n=$((n + 1))
    image="$(image_for "$file" "$arch")"
    if [ -f "$image" ]; then
      reason="$SKIP_REASON (image $(basename "$image") built, smp=$smp)"
    else
      reason="image $file was not built for arch $arch"
    fi
    line="kut: $name SKIP pass=0 fail=0 skip=0 insns=0"
    echo "$line"
    echo "# $name: $reason" >&2
    printf '%s\t%s\n' "$line" "$reason" >> "$KUT_BUILD/results.txt"
  done < <(sections)
  [ "$found" = 1 ] || die "no test ran"
  echo "# kut: $n tests, 0 passed, 0 failed, $n skipped ($SKIP_REASON); results in $KUT_BUILD/results.txt" >&2
}

case "${1:-run}" in
  build) do_build ;;
  list) do_list ;;
  run) do_run "${2:-}" ;;
  *) die "usage: kut.sh build | list | run [NAME]" ;;
esac
