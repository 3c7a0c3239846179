# Build and test tooling for the karto.supabase_mail collection.
# `make help` lists the targets. Everything runs from .venv, which `make venv` creates.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Requirement files the venv is built from; the stamp is redone when any of them changes.
REQUIREMENTS := requirements.txt requirements-dev.txt tests/tools/requirements-tools.txt
STAMP := $(VENV)/.requirements-stamp

BUILD := $(CURDIR)/build
# ANSIBLE_COLLECTIONS_PATH for everything that runs Ansible against the checkout:
# build/collections/ansible_collections/karto/supabase_mail -> the checkout (symlink).
COLLECTIONS_ROOT := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS_ROOT)/ansible_collections/karto/supabase_mail
COLLECTION_FQCN := karto.supabase_mail

PYTEST_ARGS ?=
INTEGRATION_WORKERS ?= 2
SANITY_ARGS ?=
# e.g. BENCH_ARGS="--size tiny" (the size tests/integration/test_benchmarks.py runs)
BENCH_ARGS ?=

# Tools in .venv come first.
export PATH := $(BIN):$(PATH)
# lint, docs-check and demo find the collection only in build/collections (never in
# ~/.ansible/collections or /usr/share/ansible/collections). unit/integration tests set
# ANSIBLE_COLLECTIONS_PATH themselves (tests/collection_path.py, a temp dir per process).
lint docs-check demo: export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS_ROOT)
ifneq ($(CI),)
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export NO_COLOR := 1
endif
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv test unit integration integration-heavy sanity lint docs-check demo clean distclean collection-link mail-server module-docs bench

help:
	@echo "Targets:"
	@echo "  venv         create/refresh .venv from $(REQUIREMENTS)"
	@echo "  test         unit, integration, sanity, lint, docs-check (in that order)"
	@echo "  unit         pytest tests/unit"
	@echo "  integration  pytest -n $(INTEGRATION_WORKERS) tests/integration tests/sandbox/tests (real ansible-playbook against the sandbox)"
	@echo "  integration-heavy  only the long suites (marker heavy): rotation, teardown, 20 projects, secrets scan"
	@echo "  sanity       ansible-test sanity, offline (tests/tools/sanity.sh)"
	@echo "  lint         ansible-lint (production profile, offline) + shellcheck .ci/run"
	@echo "  docs-check   ansible-doc for every module; galaxy build + install + ansible-doc from the artifact"
	@echo "  demo         bash scripts/demo.sh"
	@echo "  bench        measure task cost, requests and wall time against the sandbox (benchmarks/run.py $(BENCH_ARGS))"
	@echo "  module-docs  regenerate docs/modules.md and docs/ru/modules.md from the modules' documentation"
	@echo "  mail-server  install Debian's postfix + dovecot-core if missing (the sandbox's mailbox server)"
	@echo "  clean        remove build/, tests/output/, caches; distclean also removes .venv"

# ---------------------------------------------------------------------------- venv

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	@if [ -x "$(BIN)/python" ] && ! "$(BIN)/python" -c 'import sys' >/dev/null 2>&1; then \
	    echo "venv: $(VENV) is broken, recreating"; rm -rf "$(VENV)"; fi
	@if [ ! -x "$(BIN)/python" ]; then \
	    echo "venv: creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	    $(PYTHON) -m venv "$(VENV)"; fi
	@echo "venv: installing $(REQUIREMENTS)"
	@# The sed drops pip's noise about missing directories of local extra indexes (pip.conf).
	"$(BIN)/python" -m pip install --quiet --progress-bar off $(addprefix -r ,$(filter-out requirements.txt,$(REQUIREMENTS))) 2>&1 \
	    | sed '/is ignored: it is neither a file nor a directory/d'
	"$(BIN)/python" -m pip check
	@touch "$@"

collection-link: venv
	@mkdir -p "$(dir $(COLLECTION_LINK))"
	@ln -sfn "$(CURDIR)" "$(COLLECTION_LINK)"

# ---------------------------------------------------------------------------- tests

test: unit integration sanity lint docs-check
	@echo "make test: all checks passed"

# The tests make the checkout importable/runnable as the collection themselves
# (tests/collection_path.py: a per-process temp dir with the symlink). pytest's exit code
# (1 failures, 5 no tests collected, ...) fails the target.
unit: venv
	"$(BIN)/python" -m pytest tests/unit $(PYTEST_ARGS)

# --dist loadfile: a file's tests run on one worker, so a module-scoped fixture (the bad-input table,
# the teardown world) is built once, not once per worker. --no-loadscope-reorder keeps the collection's
# order (tests/conftest.py puts the long files first) instead of xdist's most-tests-first, which handed
# the one-test rotation files out last and left one worker running them alone.
integration: venv mail-server
	"$(BIN)/python" -m pytest -n $(INTEGRATION_WORKERS) --dist loadfile --no-loadscope-reorder tests/integration tests/sandbox/tests $(PYTEST_ARGS)

# Only the long end-to-end suites (marker `heavy`: rotation with a fault at each step, teardown of every
# provider, the 20-project inventory, the secrets scan in every encoding), which `make integration` also runs.
integration-heavy: venv mail-server
	"$(BIN)/python" -m pytest -n $(INTEGRATION_WORKERS) --dist loadfile --no-loadscope-reorder -m heavy tests/integration $(PYTEST_ARGS)

sanity: venv
	bash tests/tools/sanity.sh $(SANITY_ARGS)

# offline: true (.ansible-lint) keeps ansible-lint off the network, and then it does not
# install the collection it lints either: playbooks/roles find karto.supabase_mail.* through
# ANSIBLE_COLLECTIONS_PATH (build/collections).
lint: collection-link
	"$(BIN)/ansible-lint"
	"$(BIN)/shellcheck" .ci/run $(wildcard tests/tools/*.sh)

# ansible-doc exits 0 even for a module it cannot load: tests/tools/docs_check.py checks
# the output instead. Then the artifact is built, installed offline into build/installed
# and every module is rendered again from there (proves the tarball is complete).
docs-check: collection-link
	"$(BIN)/python" tests/tools/docs_check.py --collections-path "$(COLLECTIONS_ROOT)" \
	    --output-dir "$(BUILD)/ansible-doc" --label checkout
	@rm -rf "$(BUILD)/dist" "$(BUILD)/installed"
	"$(BIN)/ansible-galaxy" collection build --force --output-path "$(BUILD)/dist" .
	ANSIBLE_COLLECTIONS_PATH="$(BUILD)/installed" "$(BIN)/ansible-galaxy" collection install \
	    --offline --force -p "$(BUILD)/installed" "$(BUILD)"/dist/karto-supabase_mail-*.tar.gz
	"$(BIN)/python" tests/tools/docs_check.py --collections-path "$(BUILD)/installed" --label artifact

demo: collection-link mail-server
	bash scripts/demo.sh

# Prints its table and writes benchmarks/results/latest.md (the README's Benchmarks section quotes it).
bench: venv mail-server
	"$(BIN)/python" -m benchmarks.run $(BENCH_ARGS)

# The module reference is generated from DOCUMENTATION/EXAMPLES/RETURN (ansible-doc --json);
# tests/unit/test_module_docs.py fails until it is regenerated after a module's doc changes.
module-docs: venv
	"$(BIN)/python" -m scripts.module_docs

# The sandbox's mailbox server is a private Postfix + Dovecot (tests/sandbox/mailbox_server.py):
# Debian's packages, installed unconfigured and without starting any service when missing.
mail-server:
	bash tests/tools/install-mail-server.sh

# ---------------------------------------------------------------------------- housekeeping

clean:
	rm -rf build tests/output .pytest_cache .ansible
	rm -f karto-supabase_mail-*.tar.gz
	find . -path ./.venv -prune -o -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also drops ansible-test's per-test venvs and staged copy (see tests/tools/sanity.sh).
distclean: clean
	rm -rf "$(VENV)" "$${ANSIBLE_TEST_HOME:-/tmp/karto-supabase-mail-ansible-test-$$(id -u)}"
