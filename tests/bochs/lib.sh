# Shared by run.sh and kut.sh: making sure Bochs is there, and running one
# image under it non-interactively. Source it; it defines functions only.
#
# Debian's bochs (apt-get install bochs bochs-term; real binary
# /usr/bin/bochs-bin) is built with VMX and SVM. It has no "nogui" display
# and its debugger waits for a command at start, so Bochs runs with the
# "term" display inside a pseudo-terminal (`script`) and an -rc file that
# says "continue". It works with no stdin.

# ensure_bochs: sets BOCHS, installing Debian's package when it is missing.
ensure_bochs() {
  BOCHS="${BOCHS:-$(command -v bochs-bin || true)}"
  if [ -z "$BOCHS" ]; then
    if ! command -v apt-get >/dev/null; then
      echo "bochs-bin not found and no apt-get: install Bochs 2.7+ with VMX (Debian: bochs bochs-term) or set BOCHS=" >&2
      return 2
    fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing Debian's bochs (apt-get install -y bochs bochs-term)" >&2
    if ! $sudo apt-get install -y -qq bochs bochs-term >/dev/null 2>&1; then
      $sudo apt-get update -qq >/dev/null 2>&1 || true
      $sudo apt-get install -y -qq bochs bochs-term >/dev/null || return 2
    fi
    BOCHS="$(command -v bochs-bin || true)"
    [ -n "$BOCHS" ] || { echo "apt-get installed bochs but bochs-bin is missing" >&2; return 2; }
  fi
  for tool in script timeout; do
    command -v "$tool" >/dev/null || { echo "$tool not found (util-linux, coreutils)" >&2; return 2; }
  done
}

# ram_image HOST OUTDIR: prints the path of the RAM image Bochs loads at
# 1 MiB: HOST itself, or, when PAYLOAD_IMAGE is set, OUTDIR/ram.bin = HOST,
# zeros up to 8 MiB, a header page (src/payload.rs) from PAYLOAD_NAME,
# PAYLOAD_SMP, PAYLOAD_ARGS, then the image. One file, because Bochs only
# loads an optramimage larger than 128 KiB correctly when the ROM touches
# the following blocks in order (see rom/rom.S), which it does for 1-16 MiB.
ram_image() {
  local host="$1" out="$2" image="${PAYLOAD_IMAGE:-}"
  # PAYLOAD_MODE=guests|bench (the host's own guests) needs the header but
  # no image.
  case "${PAYLOAD_MODE:-}" in
    guests|bench) [ -n "$image" ] || image=/dev/null ;;
  esac
  if [ -z "$image" ]; then
    echo "$host"
    return 0
  fi
  [ -f "$image" ] || [ "$image" = /dev/null ] || { echo "payload image $image not found" >&2; return 1; }
  local window=$((0x800000 - 0x100000)) size
  [ "$(stat -c %s "$host")" -le "$window" ] || { echo "host image larger than 7 MiB" >&2; return 1; }
  size=$(stat -c %s "$image")
  [ "$size" -le $((0x800000 - 4096)) ] || { echo "payload image $image larger than 8 MiB - 4 KiB" >&2; return 1; }
  cp "$host" "$out/ram.bin"
  truncate -s "$window" "$out/ram.bin"
  printf 'kvm-bochs-payload v1\nname=%s\nfile=%s\nsize=%s\nsmp=%s\nargs=%s\nmode=%s\nmax_insns=%s\nx2apic=%s\nprofile=%s\n\0' \
    "${PAYLOAD_NAME:-$(basename "$image" .flat)}" "$(basename "$image")" "$size" \
    "${PAYLOAD_SMP:-1}" "${PAYLOAD_ARGS:-}" "${PAYLOAD_MODE:-smoke}" "${PAYLOAD_MAX_INSNS:-0}" "${PAYLOAD_X2APIC:-0}" "${PAYLOAD_PROFILE:-0}" >> "$out/ram.bin"
  truncate -s $((window + 4096)) "$out/ram.bin"
  cat "$image" >> "$out/ram.bin"
  echo "$out/ram.bin"
}

# bochs_run IMAGE ROM VGA OUTDIR
#   Boots the flat multiboot IMAGE (loaded at 1 MiB) with ROM; the port 0xE9
#   output goes to OUTDIR/e9.log. PAYLOAD_* (see ram_image) add a guest
#   image. Knobs: CPU (Bochs model, default
#   corei7_skylake_x), CPUS, MEGS, IPS, TIMEOUT (seconds).
#   Sets BOCHS_RC (timeout gives 124), BOCHS_WALL (seconds), BOCHS_INSNS
#   (the tick count of Bochs' last log line: instructions retired, exact
#   with one CPU) and BOCHS_SHUTDOWN (1 if the guest stopped via port 0x8900).
bochs_run() {
  local image="$1" rom="$2" vga="$3" out="$4"
  local cpu="${CPU:-corei7_skylake_x}" cpus="${CPUS:-1}" megs="${MEGS:-64}"
  local ips="${IPS:-50000000}" limit="${TIMEOUT:-60}"
  mkdir -p "$out"
  local ram
  ram="$(ram_image "$image" "$out")" || return 2
  cat > "$out/bochsrc" <<RC
megs: $megs
cpu: model=$cpu, count=$cpus, ips=$ips, reset_on_triple_fault=0
romimage: file=$rom
vgaromimage: file=$vga
optramimage1: file=$ram, address=0x100000
display_library: term
port_e9_hack: enabled=1
clock: sync=none, time0=utc
speaker: enabled=0
log: $out/bochs.log
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
RC
  printf 'c\nquit\n' > "$out/continue.rc"
  local start end
  start=$(date +%s%N)
  timeout -k 5 "$limit" script -qec "$BOCHS -q -f $out/bochsrc -rc $out/continue.rc" /dev/null \
    < /dev/null > "$out/stdout.log" 2> "$out/stderr.log"
  BOCHS_RC=$?
  end=$(date +%s%N)
  BOCHS_WALL=$(( (end - start) / 1000000 ))
  BOCHS_WALL="$((BOCHS_WALL / 1000)).$(printf '%03d' $((BOCHS_WALL % 1000)))"
  # Port 0xE9 bytes and Bochs' own terminal chatter share the pty: keep
  # what the ROM or the host printed, from its first line to Bochs' exit
  # banner.
  tr -d '\r' < "$out/stdout.log" | awk '
    /^(== kvm bochs test host|rom: |host: )/ { on = 1 }
    on && /^========================================/ { exit }
    on && !/^(<bochs|Next at|\(0\)|bx_dbg|ALSA lib)/ { print }' > "$out/e9.log"
  BOCHS_INSNS=$(tail -n 1 "$out/bochs.log" 2>/dev/null | sed -n 's/^0*\([0-9][0-9]*\)[a-z].*/\1/p')
  BOCHS_INSNS="${BOCHS_INSNS:-0}"
  BOCHS_SHUTDOWN=0
  if grep -q "Shutdown port: shutdown requested" "$out/stderr.log" "$out/bochs.log" 2>/dev/null; then
    BOCHS_SHUTDOWN=1
  fi
}
