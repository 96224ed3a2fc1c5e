# bcvk: `make demo` sets up a fresh Debian 12 machine and boots the sample
# image; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
VERSION := $(shell cat VERSION)
GO ?= go
GOFLAGS_BUILD := -trimpath -buildvcs=false -ldflags "-s -w -X github.com/bcvk/bcvk/pkg/version.Version=$(VERSION)"
BASE_IMAGE ?= localhost/bcvk-base:trixie
RUNNER_IMAGE ?= localhost/bcvk-runner:$(VERSION)
RUNNER_PACKAGES ?= _output/runner-packages.txt
RUNNER_ARCHIVE ?= _output/bcvk-runner.oci.tar
SAMPLE_IMAGE ?= localhost/bcvk-sample:latest
SAMPLE_BOOTC_IMAGE ?= localhost/bcvk-sample-bootc:latest
NOKERNEL_IMAGE ?= localhost/bcvk-test-nokernel:latest
LARGE_IMAGE ?= localhost/bcvk-test-large:latest
CLOUDINIT_IMAGE ?= localhost/bcvk-test-cloudinit:latest

.PHONY: man
.PHONY: all build deps images demo-images base-image runner-image runner-archive sample-image large-image cloudinit-image libvirt-host demo test unit fuzz integration bench lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/bcvk ./cmd/bcvk
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/bcvk-inner ./cmd/bcvk-inner

# Host packages and containers.conf (needs root; skipped when all is there).
# An ordinary user's builds only check that root did this part.
deps:
	@if [ "$$(id -u)" = 0 ]; then hack/install-host-deps.sh; \
	else for c in podman mmdebstrap newuidmap; do command -v $$c >/dev/null || \
		{ echo "$$c is missing: run 'sudo make deps' first" >&2; exit 1; }; done; fi

base-image: deps
	hack/build-base-image.sh $(BASE_IMAGE)

# Reproducible: the same inputs give the same image ID (docs/images.md);
# skipped when up to date. Writes the package list $(RUNNER_PACKAGES).
runner-image: build base-image
	VERSION=$(VERSION) BCVK_RUNNER_PACKAGES=$(RUNNER_PACKAGES) hack/build-runner-image.sh $(RUNNER_IMAGE) $(BASE_IMAGE)

# The runner image as an OCI archive, for hosts without a registry:
# `podman load -i $(RUNNER_ARCHIVE)` gives $(RUNNER_IMAGE) with the same ID.
runner-archive: runner-image
	@mkdir -p $(dir $(RUNNER_ARCHIVE))
	rm -f $(RUNNER_ARCHIVE).tmp
	podman save --quiet --format oci-archive -o $(RUNNER_ARCHIVE).tmp $(RUNNER_IMAGE)
	mv $(RUNNER_ARCHIVE).tmp $(RUNNER_ARCHIVE)

# The plain sample image, the kernel-less one and the one with the bootc file
# layout, in one run (the second Debian build reuses the first one's downloads);
# each is skipped when up to date.
sample-image: deps
	hack/build-sample-image.sh $(SAMPLE_IMAGE) $(NOKERNEL_IMAGE) $(SAMPLE_BOOTC_IMAGE)

images: runner-image sample-image

# The large test image (80k files) is for the tests only, not the demo.
large-image: sample-image
	hack/build-large-image.sh $(LARGE_IMAGE) $(SAMPLE_IMAGE)

# The sample image with cloud-init, for the --cloud-init tests only.
cloudinit-image: sample-image
	hack/build-cloudinit-image.sh $(CLOUDINIT_IMAGE) $(SAMPLE_IMAGE)

# libvirtd and virtlogd for `bcvk libvirt` and its tests (no systemd here),
# with a virtiofsd taken from the runner image where the host has none.
libvirt-host: runner-image
	@if [ "$$(id -u)" = 0 ]; then BCVK_RUNNER_IMAGE=$(RUNNER_IMAGE) hack/libvirt-host.sh virtiofsd && hack/libvirt-host.sh start; \
	else echo "libvirt-host: not root, using the libvirtd that runs" >&2; fi

# The demo needs the plain sample image only (make images adds the other two).
demo-images: runner-image deps
	hack/build-sample-image.sh $(SAMPLE_IMAGE) "" ""

demo: demo-images
	bin/bcvk ephemeral run-ssh $(SAMPLE_IMAGE) -- sh -c 'uname -a; cat /etc/os-release | head -2; systemctl is-system-running'

# Unit tests under the race detector (it needs cgo and gcc in the tests only;
# bcvk itself is built without cgo).
unit:
	@command -v gcc >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; } || \
		{ echo "the race detector needs gcc: run 'sudo apt-get install gcc'" >&2; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -short -count=1 ./...

# The log is kept in _output/integration.log; the slowest tests are printed
# at the end, pass or fail.
integration: images large-image cloudinit-image libvirt-host
	@mkdir -p _output
	set -o pipefail; BCVK=$(CURDIR)/bin/bcvk BCVK_SAMPLE_IMAGE=$(SAMPLE_IMAGE) BCVK_SAMPLE_BOOTC_IMAGE=$(SAMPLE_BOOTC_IMAGE) BCVK_NOKERNEL_IMAGE=$(NOKERNEL_IMAGE) \
		BCVK_LARGE_IMAGE=$(LARGE_IMAGE) BCVK_CLOUDINIT_IMAGE=$(CLOUDINIT_IMAGE) \
		$(GO) test -count=1 -v -timeout 75m ./tests/... 2>&1 | tee _output/integration.log; \
		status=$$?; hack/slowest.sh _output/integration.log; exit $$status

# Every parser's fuzz test, briefly (FUZZTIME each).
fuzz:
	hack/fuzz.sh

# gofmt, go vet, actionlint (a tool in go.mod) on every workflow in
# .github/workflows and, through the workflows hack/lint-action writes from
# it, on action.yml; hack/lint-action also checks action.yml's structure and
# that docs/ci.md quotes the example workflows as they are. actionlint runs
# shellcheck on the workflows' scripts; shellcheck also checks the action's
# own script.
lint:
	@command -v shellcheck >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; } || \
		{ echo "lint needs shellcheck: run 'sudo apt-get install shellcheck'" >&2; exit 1; }
	@bad=$$(gofmt -l .); if [ -n "$$bad" ]; then echo "gofmt -l: not formatted (run gofmt -w):" >&2; echo "$$bad" >&2; exit 1; fi
	$(GO) vet ./...
	rm -rf _output/lint
	$(GO) run ./hack/lint-action -out _output/lint
	$(GO) tool actionlint .github/workflows/*.yml
	cd _output/lint && $(GO) tool actionlint .github/workflows/*.yml
	shellcheck hack/action-*.sh .github/example-image/example-tests

test: lint unit fuzz integration

bench: images libvirt-host
	hack/bench.sh
	hack/bench-extras.sh
	hack/bench-libvirt.sh

# Man pages and the command reference, generated from the command tree.
man: build
	bin/bcvk generate-docs --man _output/man --markdown docs/reference

clean:
	rm -rf bin
