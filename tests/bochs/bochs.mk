# The Bochs harness (tests/bochs/README.md). Included from the top-level
# Makefile; paths are relative to the repository root.
#
#   make bochs-smoke        build the ROM and the bare-metal test host, boot it
#                           under Bochs (installed if missing), run the VMX
#                           smoke guest; exit status 0 on PASS
#   make kut                build kvm-unit-tests (x86_64 + i386) and print one
#                           line per test: kut: <name> <PASS|FAIL|SKIP> ...
#   make kut KUT=<name>     just the section <name> of x86/unittests.cfg
#   make kut-list           the sections with file=, smp=, extra_params
#   make kut-profile KUT=<name> [KUT_PROFILE=<ticks>]
#                           run one section with the host's sampling profiler
#                           (src/profile.rs) and print where the host's
#                           instructions go (profile.py)
#   make bochs-guests       the host's own guests through the driver (triple
#                           fault, unmapped GPA, unknown MSR, ports, VMX
#                           instructions, VMCALL, HLT with IF=0; src/guests/)
#                           and the exit-cost benchmarks: one line each
#   make bochs-bench        just the benchmarks (bench: <name> <n> insns/op)
#   make bochs-refuse       boot on CPU models without VMX / EPT: the host must
#                           print the refusal of kvm_vmx::check_support
#   make bochs-clean        remove the harness' build output
#   make bochs-check        rustfmt --check and clippy -D warnings on the host
#
# KUT_SRC overrides where the kvm-unit-tests source is (default
# ../shared/kvm-unit-tests); CPU, IPS, MEGS, TIMEOUT tune the Bochs run.

BOCHS_DIR := tests/bochs
KUT ?=

.PHONY: bochs-smoke bochs-guests bochs-bench kut kut-list kut-profile bochs-clean bochs-check

bochs-smoke:
	@$(BOCHS_DIR)/run.sh

bochs-guests:
	@EXPECT=guests $(BOCHS_DIR)/run.sh

bochs-bench:
	@EXPECT=bench $(BOCHS_DIR)/run.sh

kut:
	@$(BOCHS_DIR)/kut.sh run $(KUT)

kut-list:
	@$(BOCHS_DIR)/kut.sh list

kut-profile:
	@test -n "$(KUT)" || { echo "make kut-profile KUT=<name>" >&2; exit 2; }
	@KUT_PROFILE=$${KUT_PROFILE:-4999} $(BOCHS_DIR)/kut.sh run $(KUT)
	@python3 $(BOCHS_DIR)/profile.py $(BOCHS_DIR)/build/kut/runs/$(KUT)/e9.log $(BOCHS_DIR)/build/host.elf

bochs-check:
	cd $(BOCHS_DIR) && $(CARGO) fmt -- --check
	@if command -v python3 >/dev/null; then python3 $(BOCHS_DIR)/src/guests/asm/gen.py --check; \
	  else echo "bochs-check: no python3: src/guests/code.rs not checked against asm/*.S"; fi
	cd $(BOCHS_DIR) && $(CARGO) clippy --quiet --release --target x86_64-unknown-linux-gnu -- -D warnings

bochs-clean:
	rm -rf $(BOCHS_DIR)/build $(BOCHS_DIR)/target

# CPUs the driver must refuse: the shared kvm_vmx::check_support decides on
# Bochs' models as on hardware (no VMX: AMD; VMX without EPT: Penryn).
.PHONY: bochs-refuse
bochs-refuse:
	@CPU=ryzen EXPECT=refused REFUSAL="kvm: no hardware support" $(BOCHS_DIR)/run.sh
	@CPU=core2_penryn_t9600 EXPECT=refused REFUSAL="kvm: insufficient hardware support (lacking EPT)" NO_BUILD=1 $(BOCHS_DIR)/run.sh
