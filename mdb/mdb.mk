#
# mdb/mdb.mk: the kvm debugger module, included by the top-level Makefile
# (after its variables; paths are relative to the repository root):
#
#   make mdb        build/kvm_mdb_offsets.h (generated from the Rust records
#                   by `mdb-offsets`), build/kvm_mdb.o (mdb/kvm_mdb.c, 64-bit
#                   userland, against the illumos SDK), and a symbol check:
#                   it exports _mdb_init and imports only the mdb module API
#                   (mdb_*) and libc's string functions. On illumos also
#                   links build/kvm.so (install as /usr/lib/mdb/kvm/amd64/kvm.so).
#   make mdb-test   the dmod's walkers and dcmds run over a memory image of
#                   real Rust records, with a fake mdb (kstat/tests/mdb_dmod.rs;
#                   also part of `cargo test`).
#
# Uses, with defaults for standalone use (make -f mdb/mdb.mk mdb):
# BUILD, CARGO, CC, ILLUMOS_SDK, UNAME_S.
#

BUILD ?= build
CARGO ?= cargo
CC := $(if $(filter default,$(origin CC)),gcc,$(CC))
UNAME_S ?= $(shell uname -s)
ILLUMOS_SDK ?= $(wildcard ../shared/illumos-sdk)

MDB_OFFSETS_H := $(BUILD)/kvm_mdb_offsets.h
MDB_OBJ := $(BUILD)/kvm_mdb.o
MDB_SO := $(BUILD)/kvm.so

# The SDK (or an illumos-gate tree) has the API header as
# usr/src/cmd/mdb/common/mdb/mdb_modapi.h; an installed illumos as
# /usr/include/sys/mdb_modapi.h. kstat/tests/mdb_dmod.rs compiles with the
# same flags: keep the two in sync.
ifneq ($(ILLUMOS_SDK),)
  MDB_HAVE_HEADERS := $(wildcard $(ILLUMOS_SDK)/usr/src/cmd/mdb/common/mdb/mdb_modapi.h)
  MDB_INCLUDES := -nostdinc -DKVM_MDB_GATE_HEADERS \
	-isystem $(ILLUMOS_SDK)/usr/src/head \
	-I$(ILLUMOS_SDK)/usr/src/uts/common -I$(ILLUMOS_SDK)/usr/src/uts/intel \
	-I$(ILLUMOS_SDK)/usr/src/uts/i86pc \
	-isystem $(ILLUMOS_SDK)/usr/src/cmd/mdb/common
else ifeq ($(UNAME_S),SunOS)
  MDB_HAVE_HEADERS := $(wildcard /usr/include/sys/mdb_modapi.h)
  MDB_INCLUDES :=
endif

MDB_CFLAGS := -D__sun -D_KERNEL -D_TS_ERRNO -D_ELF64 -Ui386 -U__i386 \
	$(MDB_INCLUDES) -I$(BUILD) \
	-m64 -fPIC -O2 -ffreestanding -fno-strict-aliasing -std=gnu99 \
	-Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers

# What the dmod may import: the mdb module API, and these libc functions
# (mdb exports them to modules; see <mdb/mdb_modapi.h>).
MDB_LIBC_IMPORTS := memcpy memset memmove memcmp strcmp strncmp strlen \
	bcopy bzero bcmp

.PHONY: mdb mdb-test mdb-check-headers

mdb-check-headers:
	@if [ -z "$(MDB_HAVE_HEADERS)" ]; then \
	  echo "make mdb: <mdb/mdb_modapi.h> not found: set ILLUMOS_SDK=/path/to/illumos-sdk (default ../shared/illumos-sdk) or, on illumos, install the system headers" >&2; \
	  exit 2; \
	fi

# Regenerated every time (cheap), replaced only when it changed so the
# object is not rebuilt for nothing.
$(MDB_OFFSETS_H): FORCE
	@mkdir -p $(BUILD)
	$(CARGO) run --quiet -p kvm-kstat --bin mdb-offsets > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(MDB_OBJ): mdb/kvm_mdb.c $(MDB_OFFSETS_H) | mdb-check-headers
	$(CC) $(MDB_CFLAGS) -c $< -o $@

# Linking needs the illumos linker and libc; mdb provides the mdb_*
# symbols when it loads the module.
$(MDB_SO): $(MDB_OBJ)
	$(CC) -m64 -shared -nodefaultlibs -Wl,-ztext -o $@ $< -lc

mdb: $(MDB_OBJ) $(if $(filter SunOS,$(UNAME_S)),$(MDB_SO))
	@nm $(MDB_OBJ) | awk '$$2 == "T" && $$3 == "_mdb_init" { ok = 1 } END { exit !ok }' \
	  || { echo "mdb: $(MDB_OBJ) does not export _mdb_init" >&2; exit 1; }
	@bad=$$(nm -g --defined-only $(MDB_OBJ) | awk '{ print $$3 }' | grep -vxF _mdb_init || true); \
	  if [ -n "$$bad" ]; then echo "mdb: unexpected exports: $$bad" >&2; exit 1; fi
	@bad=$$(nm -u $(MDB_OBJ) | awk '{ print $$2 }' | grep -v '^mdb_' \
	  | grep -vxF $(foreach s,$(MDB_LIBC_IMPORTS),-e $(s)) || true); \
	  if [ -n "$$bad" ]; then echo "mdb: unexpected imports: $$bad" >&2; exit 1; fi
	@echo "mdb: $(MDB_OBJ) OK: exports only _mdb_init; imports $$(nm -u $(MDB_OBJ) | awk '{ print $$2 }' | tr '\n' ' ')"

mdb-test:
	$(CARGO) test --quiet -p kvm-kstat --test mdb_dmod

FORCE:
