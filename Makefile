#
# kvm for illumos, in Rust.
#
#   make              build/kvm: the kernel module (Rust staticlib + C glue,
#                     ld -r, then tools/kmodfix relaxes and audits it)
#   make test         everything CI runs: rustfmt, clippy, cargo test, the
#                     module build and its audit
#   make abi-table    the /dev/kvm contract as the Rust side defines it
#   make clean
#
# The kernel codegen flags live here and only here: `cargo test` builds for the
# same host triple and must not get them (see README.md, "Build").
#

SHELL := /bin/bash

CARGO ?= cargo
CC := gcc
LD := ld
OBJCOPY := objcopy

HOST_TRIPLE := x86_64-unknown-linux-gnu
BUILD := build
KMOD_TARGET_DIR := target/kmod
KMOD_STATICLIB := $(KMOD_TARGET_DIR)/$(HOST_TRIPLE)/release/libkvm.a
# Host tools land in cargo's own target dir (CARGO_TARGET_DIR if set).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
KMODFIX := $(TARGET_DIR)/tool/kmodfix
ALLOWLIST := tools/kmodfix/allowlist.txt

# The panic-call ratchet: call sites in build/kvm that can reach the panic
# handler. It may only go down; lower it when a change removes some. At 41
# (with the VM backend) every site is an internal assertion of core/alloc
# (BTreeMap rebalancing, sort order checks, capacity overflow), none a
# panic!/unwrap/index of ours; `objdump -dr build/kvm.o` lists them.
MAX_PANIC_CALLS ?= 41
# The stack-frame budget of one function: the amd64 kernel stack is 20 KiB
# for the whole call chain (KVM_RUN runs on the ioctl thread's stack).
MAX_FRAME ?= 2048

# Kernel code generation (docs: ../shared/docs/rust-in-the-illumos-kernel.md
# §0, §5.4): kernel code model, static relocations, no SIMD/x87 (soft-float;
# the kernel does not save FPU state for kernel code), no red zone (interrupts
# share the stack), frame pointers for mdb $C and DTrace stack(), no unwind
# tables. Fat LTO and one codegen unit come from [profile.release]; LTO also
# recompiles the precompiled core with these flags.
KERNEL_RUSTFLAGS := \
	-C code-model=kernel \
	-C relocation-model=static \
	-C target-feature=-mmx,-sse,-sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2,+soft-float \
	-C no-redzone=yes \
	-C force-frame-pointers=yes \
	-C force-unwind-tables=no \
	-C panic=abort

# illumos headers for the C glue: $(ILLUMOS_SDK) on Linux (default: the
# shared SDK beside this checkout); on illumos itself the system headers, or
# an illumos-gate tree through KERNEL_SOURCE.
UNAME_S := $(shell uname -s)
ifeq ($(UNAME_S),SunOS)
  ifdef KERNEL_SOURCE
    ILLUMOS_SDK ?= $(KERNEL_SOURCE)
  endif
endif
ILLUMOS_SDK ?= $(wildcard ../shared/illumos-sdk)

ifneq ($(ILLUMOS_SDK),)
  KERNEL_INCLUDES := -I$(ILLUMOS_SDK)/usr/src/uts/common \
	-I$(ILLUMOS_SDK)/usr/src/uts/intel -I$(ILLUMOS_SDK)/usr/src/uts/i86pc
  HAVE_HEADERS := $(wildcard $(ILLUMOS_SDK)/usr/src/uts/common/sys/modctl.h)
else ifeq ($(UNAME_S),SunOS)
  KERNEL_INCLUDES := -I/usr/include
  HAVE_HEADERS := $(wildcard /usr/include/sys/modctl.h)
endif

KERNEL_CFLAGS := -D__sun -D_KERNEL -D_MACHDEP -Dx86 -D_SYSCALL32 -D_DDI_STRICT \
	-Di86pc -nostdinc $(KERNEL_INCLUDES) -Isrc/glue \
	-m64 -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -ffreestanding \
	-fno-builtin -fno-pie -fno-strict-aliasing -fno-asynchronous-unwind-tables \
	-std=gnu99 -O2 -Wall -Werror -Wno-unknown-pragmas -Wno-format

.PHONY: all kmod test check-headers fmt-check clippy cargo-test kmod-test \
	bochs-test devfsadm abi-table clean FORCE

all: kmod

kmod: $(BUILD)/kvm

check-headers:
	@if [ -z "$(HAVE_HEADERS)" ]; then \
	  echo "make: illumos headers not found: set ILLUMOS_SDK=/path/to/illumos-sdk (default ../shared/illumos-sdk) or, on illumos, KERNEL_SOURCE=/path/to/illumos-gate" >&2; \
	  exit 2; \
	fi

$(BUILD):
	@mkdir -p $@

# The Rust half. `cargo rustc` so that only this invocation is a staticlib
# and only it sees the kernel flags; `--target` keeps them off build scripts.
$(KMOD_STATICLIB): FORCE
	RUSTFLAGS="$(KERNEL_RUSTFLAGS)" $(CARGO) rustc --quiet --release --lib -p kvm \
	  --features kernel --target $(HOST_TRIPLE) --target-dir $(KMOD_TARGET_DIR) \
	  --crate-type staticlib

GLUE_OBJS := $(BUILD)/kvm_glue.o $(BUILD)/kvm_services.o $(BUILD)/kvm_vmx_glue.o

$(BUILD)/%.o: src/glue/%.c src/glue/kvm_rs.h src/glue/kvm_glue.h src/glue/kvm_vmx_glue.h | check-headers $(BUILD)
	$(CC) $(KERNEL_CFLAGS) -c $< -o $@

$(KMODFIX): FORCE
	$(CARGO) build --quiet --profile tool -p kmodfix

# ld -r keeps what the glue reaches (the kvm_rs_* entry points and what they
# call) and the module entry points; --gc-sections drops the rest of the
# staticlib.
$(BUILD)/kvm.o: $(GLUE_OBJS) $(KMOD_STATICLIB) | $(BUILD)
	$(LD) -r --gc-sections -u _init -u _fini -u _info -o $@ \
	  $(GLUE_OBJS) $(KMOD_STATICLIB)

$(BUILD)/kvm: $(BUILD)/kvm.o $(KMODFIX) $(ALLOWLIST) FORCE
	$(KMODFIX) --allowlist $(ALLOWLIST) --max-panic-calls $(MAX_PANIC_CALLS) \
	  --max-frame $(MAX_FRAME) $< $@
	@# Every SDT probe in the object carries one of the C driver's names.
	@$(KMODFIX) --list-probes $@ > $(BUILD)/probes.txt
	@$(CARGO) run --quiet -p kvm-kstat --bin sdt-probes > $(BUILD)/probes-known.txt
	@unknown=$$(LC_ALL=C comm -23 $(BUILD)/probes.txt $(BUILD)/probes-known.txt); \
	  if [ -n "$$unknown" ]; then echo "sdt: probes not in the C driver's list: $$unknown" >&2; exit 1; fi
	@# ... each in its own wrapper with a stable name (kstat/src/sdt.rs), none
	@# elsewhere (the audit already refused sites in mangled functions).
	@$(KMODFIX) --list-probe-sites $@ > $(BUILD)/probe-sites.txt
	@$(CARGO) run --quiet -p kvm-kstat --bin sdt-probes -- --sites > $(BUILD)/probe-sites-known.txt
	@stray=$$(LC_ALL=C comm -23 $(BUILD)/probe-sites.txt $(BUILD)/probe-sites-known.txt); \
	  if [ -n "$$stray" ]; then echo "sdt: probe sites outside their kstat/src/sdt.rs wrappers: $$stray" >&2; exit 1; fi
	@echo "sdt: $$(wc -l < $(BUILD)/probes.txt) of $$(wc -l < $(BUILD)/probes-known.txt) probes placed in $@, all with the C driver's names, in $$(cut -d' ' -f1 $(BUILD)/probe-sites.txt | sort -u | wc -l) stable-named functions"

# The devfsadm link module: 32-bit userland. Linking JOY_kvm_link.so needs
# the illumos linker and libdevinfo; elsewhere we compile it and check that it
# exports the registration table and imports only what devfsadm provides.
USER_SDK_INCLUDES := -isystem $(ILLUMOS_SDK)/usr/src/lib/libdevinfo \
	-isystem $(ILLUMOS_SDK)/usr/src/lib/libnvpair \
	-isystem $(ILLUMOS_SDK)/usr/src/head -isystem $(ILLUMOS_SDK)/usr/src/uts/intel \
	-I$(ILLUMOS_SDK)/usr/src/uts/common
DEVFSADM_IMPORTS := devfsadm_mklink di_minor_name di_node_name strcmp _GLOBAL_OFFSET_TABLE_

$(BUILD)/kvm_link.o: devfsadm/kvm_link.c | check-headers $(BUILD)
	$(CC) -nostdinc -m32 -fpic -O2 -Wall -Werror -D__sun -D_TS_ERRNO \
	  $(USER_SDK_INCLUDES) -I$(ILLUMOS_SDK)/usr/src/cmd/devfsadm -c $< -o $@

devfsadm: $(BUILD)/kvm_link.o
	@nm $< | awk '$$2 == "D" && $$3 == "_devfsadm_create_reg" { ok = 1 } END { exit !ok }' \
	  || { echo "devfsadm: $< does not export _devfsadm_create_reg" >&2; exit 1; }
	@bad=$$(nm -u $< | awk '{ print $$2 }' | grep -vxF -e $(subst $(eval) , -e ,$(DEVFSADM_IMPORTS)) || true); \
	  if [ -n "$$bad" ]; then echo "devfsadm: unexpected imports: $$bad" >&2; exit 1; fi
	@echo "devfsadm: $< OK: exports _devfsadm_create_reg, imports only $(DEVFSADM_IMPORTS)"

# ---- tests ---------------------------------------------------------------

test: fmt-check clippy cargo-test kmod-test bochs-test

# The Bochs harness (tests/bochs): the shared crates on a VMX CPU.
KUT_SRC ?= ../shared/kvm-unit-tests
export KUT_SRC
bochs-test: bochs-check bochs-smoke bochs-guests bochs-refuse
	@if [ -f "$(KUT_SRC)/x86/unittests.cfg" ]; then \
	  $(MAKE) --no-print-directory kut; \
	else \
	  echo "make test: skipped kvm-unit-tests: $(KUT_SRC) not found (set KUT_SRC)"; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --quiet --workspace --all-targets -- -D warnings
	$(CARGO) clippy --quiet -p kvm --lib --features kernel -- -D warnings

cargo-test:
	$(CARGO) test --workspace

# The module build and audit need the illumos headers for the C glue.
kmod-test:
	@if [ -z "$(HAVE_HEADERS)" ]; then \
	  echo "make test: skipped the kernel module build and audit, the devfsadm and mdb module checks and the C-header layout tests: illumos headers not found (set ILLUMOS_SDK; default ../shared/illumos-sdk)"; \
	else \
	  $(MAKE) --no-print-directory kmod devfsadm mdb; \
	fi

abi-table:
	@$(CARGO) run --quiet -p kvm-ioctl --bin abi-table

clean:
	rm -rf $(BUILD) $(KMOD_TARGET_DIR)
	$(CARGO) clean

FORCE:

include tests/bochs/bochs.mk
include mdb/mdb.mk
