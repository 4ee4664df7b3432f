# youki-shim: build, demo, test, bench. Run as root (containers need
# namespaces, mounts and cgroups).

SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build release setup demo test fmt-check clippy test-only test-vm bench check-root

all: build

# Every binary: the youki CLI and containerd-shim-youki-v2.
build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

# Debian packages (busybox-static, runc, ...): scripts/debian-packages.txt
setup:
	scripts/setup.sh

# Runs a busybox container with youki (release build).
demo: check-root setup release
	scripts/demo.sh

# Everything CI runs: formatting, lints, unit and integration tests.
test: check-root setup fmt-check clippy test-only

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-only: check-root
	scripts/test.sh

# Only the kernel-facing tests on pure cgroup v2, in a qemu VM (part of test-only); see
# README "cgroup setups".
test-vm: check-root setup
	scripts/vm-test.sh

# youki vs runc: the CLI cycle, ctr run through the shims, idle shim memory, pods through
# CRI (time and shim memory per pod); see README "Benchmark".
bench: check-root setup release
	scripts/bench.sh

check-root:
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "make: the tests, demo and bench run containers: run as root" >&2; exit 1; \
	fi
