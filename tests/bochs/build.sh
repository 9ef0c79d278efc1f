#!/usr/bin/env bash
# Build what a Bochs run needs, into $OUT (default tests/bochs/build):
#   rom.bin        the 64 KiB reset-vector ROM (rom/rom.S, GNU as)
#   vga-dummy.bin  Bochs insists on a VGA ROM file; this one is never run
#   host.bin       the test host: a flat multiboot image for 1 MiB
#   host.elf       the same with symbols (addr2line, objdump)
# The host is built with the stable toolchain the repository pins and kernel
# codegen flags; `--target` keeps those flags off build scripts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$here/build}"
mkdir -p "$OUT"
TRIPLE=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"

# ---- ROM ----
as --32 -o "$OUT/rom.o" "$here/rom/rom.S"
ld -m elf_i386 -nostdlib -T "$here/rom/rom.ld" -o "$OUT/rom.elf" "$OUT/rom.o"
objcopy -O binary "$OUT/rom.elf" "$OUT/rom.bin"
[ "$(stat -c %s "$OUT/rom.bin")" -eq 65536 ] || { echo "build.sh: rom.bin is not 64 KiB" >&2; exit 1; }
[ -f "$OUT/vga-dummy.bin" ] || head -c 512 /dev/zero > "$OUT/vga-dummy.bin"

# ---- host ----
export RUSTFLAGS="-C relocation-model=static -C code-model=kernel -C no-redzone=yes \
 -C target-feature=-sse,-sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2,+soft-float \
 -C force-frame-pointers=yes -C panic=abort \
 -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static -C link-arg=-no-pie \
 -C link-arg=-Wl,-T,$here/link.ld -C link-arg=-Wl,--build-id=none \
 -C link-arg=-Wl,-z,max-page-size=0x1000"
cargo build --quiet --release --target "$TRIPLE" --manifest-path "$here/Cargo.toml"
cp "$CARGO_TARGET_DIR/$TRIPLE/release/kvm-bochs-host" "$OUT/host.elf"
objcopy -O binary "$OUT/host.elf" "$OUT/host.bin"
# The host has no panic path today (clippy denies unwrap/expect/panic and
# indexing); report any that a change brings in.
panics=$(nm "$OUT/host.elf" | grep -c -E 'core..?panicking|slice_index_fail|_fail$' || true)
[ "$panics" = 0 ] || echo "build.sh: warning: $panics panic-path symbols in host.elf (nm $OUT/host.elf | grep panicking)" >&2
echo "build.sh: $OUT/rom.bin $OUT/host.bin ($(stat -c %s "$OUT/host.bin") bytes)"
