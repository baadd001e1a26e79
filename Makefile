# corral.qubes — developer entry points.
#
#   make rehearse   set up, start a fresh rehearsal dom0 and show it working (site.yml, whitelists)
#   make test       every test and quality gate (what CI runs)
#   make docs       the HTML docs site in docs/build/html
#
# Everything lives in the repository: the virtualenvs in .venv (Python 3.11, ansible-core 2.19)
# and .venv-r43 (the R4.3 dom0's Python 3.13 and ansible-core 2.18), the collection link in
# .collections, rehearsal state in .rehearsal, the docs site in docs/build.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
COLLECTIONS := .collections
LINK := $(COLLECTIONS)/ansible_collections/corral/qubes
# Three pytest workers on two cores: the tests wait on subprocesses and sockets part of the time (a sample of
# the functional tests: 67 s with two, 58 s with four).
PYTEST_WORKERS ?= 3
# The R4.3 dom0's Python: python3.13 from PATH or pyenv's newest 3.13 (.ci/run finds or installs one).
PYTHON_R43 ?= $(shell for p in python3.13 $$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do \
    "$$p" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v "$$p"; break; }; done)
VENV_R43 := .venv-r43
BIN_R43 := $(VENV_R43)/bin
DOCS_BUILD := docs/build
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)

.PHONY: all setup setup-r43 rehearse test lint yamllint ansible-lint changelog-lint docs-lint sanity pytest unit functional molecule molecule-dom0host molecule-xen molecule-xen-smoke \
    r43 r43-pytest r43-sanity artifact docs python-r43 bench bench-compare clean rootfs

all: test

$(BIN)/.installed: requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

$(LINK):
	mkdir -p $(dir $(LINK))
	ln -sfn ../../.. $(LINK)

# The venv imports the collection as ansible_collections.corral.qubes through .collections.
$(BIN)/.linked: $(BIN)/.installed | $(LINK)
	$(BIN)/python -c 'import site, os; open(os.path.join(site.getsitepackages()[0], "corral-qubes-dev.pth"), "w").write(os.path.abspath("$(COLLECTIONS)") + "\n")'
	touch $@

setup: $(BIN)/.linked

# The R4.3 leg's virtualenv, linked to the checkout the same way.
$(BIN_R43)/.installed: requirements-r43.txt constraints-r43.txt
	@test -n "$(PYTHON_R43)" || { echo "No Python 3.13 with venv found (PATH or pyenv); give PYTHON_R43=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON_R43) -m venv $(VENV_R43)
	$(BIN_R43)/python -m pip install --quiet --disable-pip-version-check -r requirements-r43.txt -c constraints-r43.txt
	$(BIN_R43)/python -c 'import site, os; open(os.path.join(site.getsitepackages()[0], "corral-qubes-dev.pth"), "w").write(os.path.abspath("$(COLLECTIONS)") + "\n")'
	touch $@

setup-r43: $(BIN_R43)/.installed | $(LINK)

python-r43:
	@echo $(PYTHON_R43)

rehearse: setup
	rm -f .rehearsal/calls.jsonl
	$(BIN)/python -m rehearsal demo --state .rehearsal/state --socket .rehearsal/qubesd.sock --call-log .rehearsal/calls.jsonl
	@echo; echo "== The reference layout (inventories/t420s) with ansible-playbook site.yml on another fresh rehearsal dom0"
	rm -f .rehearsal/site-calls.jsonl
	$(BIN)/python -m rehearsal run --fresh --state .rehearsal/site-state --socket .rehearsal/site.sock \
	    --call-log .rehearsal/site-calls.jsonl -- sh -c '\
	    echo "-- what would change (--check --diff; whole output in .rehearsal/site-check.txt):"; \
	    ansible-playbook site.yml --check --diff > .rehearsal/site-check.txt 2>&1; \
	    grep -E "^(changed|ok|failed|fatal|\[WARNING\])" .rehearsal/site-check.txt; \
	    echo "-- converge:"; ansible-playbook site.yml | tail -4 && \
	    echo "-- and again, nothing to do:"; ansible-playbook site.yml | tail -4 && \
	    echo "-- secure running behind sys-firewall, its whitelist enforced with real packets (needs root):" && \
	    ansible dom0 -m corral.qubes.qube -a "name=secure state=running" | head -1 && \
	    for target in "bank.example.com 443" "news.example.com 443" "10.139.1.1 53"; do \
	        printf "   secure -> %-22s " "$$target"; \
	        $(BIN)/python -m rehearsal probe --state .rehearsal/site-state secure $$target || true; done; \
	    echo "-- the clipboard matrix: copied in secure, pasted into personal, then into work:" && \
	    for target in personal work; do \
	        $(BIN)/python -m rehearsal clipboard copy secure "IBAN from the bank" && printf "   %-9s " "$$target:" && \
	        { $(BIN)/python -m rehearsal clipboard paste $$target 2>&1; echo; } | head -1; done'

test: lint sanity pytest molecule molecule-dom0host molecule-xen-smoke r43 artifact docs

lint: yamllint ansible-lint changelog-lint docs-lint

yamllint: setup
	$(BIN)/yamllint --strict .

# ANSIBLE_HOME inside the checkout: a copy of the collection installed in ~/.ansible by other tools
# would otherwise come first on the collections path and hide this checkout's plugins.
ansible-lint: setup
	ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home $(BIN)/ansible-lint --profile production

changelog-lint: setup
	$(BIN)/antsibull-changelog lint

docs-lint: setup
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

sanity: setup
	$(BIN)/python tests/run_sanity.py

# The qubes' base root filesystem (tests/functional/test_qube_roots.py), built once into ~/.cache/corral-qubes
# ($$CORRAL_CACHE); only as root, where the rehearsal can run qube roots.
rootfs: setup
	if [ "$$(id -u)" = 0 ]; then $(BIN)/python -m rehearsal rootfs build; fi

pytest: setup rootfs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 tests

unit: setup
	$(BIN)/python -m pytest tests/unit

functional: setup rootfs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/functional

# The Molecule scenario: a fresh rehearsal dom0, converge, idempotence, verify (testinfra).
molecule: setup rootfs
	NO_COLOR=1 $(BIN)/molecule test --scenario-name default

# The Molecule scenario on the dom0 host (as root): site.yml with the reference layout, YubiKey included, on the
# rehearsal dom0 in namespaces of its own, over ssh; verify over ssh (docs/yubikey.md). 2.5 to 4 min on 2 cores.
molecule-dom0host: setup rootfs
	NO_COLOR=1 ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home $(BIN)/molecule test --scenario-name dom0host

# The Molecule scenario on the nested Xen host (as root, QEMU needed): a reduced layout as real Xen domains,
# verified with xl in the host (docs/xen-host.md). 4.5 min with the host's image cached; not in make test for its time.
molecule-xen: setup rootfs
	NO_COLOR=1 ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home $(BIN)/molecule test --scenario-name xen

# Its CI smoke, in make test: the same host booted, one qube started as a Xen domain, converged again, stopped
# through the collection, each step read in Xen. 2 min with the image cached, 2 more to build it.
molecule-xen-smoke: setup rootfs
	NO_COLOR=1 ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home $(BIN)/molecule test --scenario-name xen-smoke

# The R4.3 dom0 stack: Python 3.13 with ansible-core 2.18 (Fedora 41's). The pytest suite (unit, and
# functional: every module, the roles, site.yml, the inventory plugin, ansible-doc of every plugin) but the
# tests of the rehearsal itself (tests/conftest.py), and ansible-test sanity for 3.13 (its own copy of the tree).
r43: r43-pytest r43-sanity

r43-pytest: setup-r43 rootfs
	$(BIN_R43)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 -m "not rehearsal_itself" tests

r43-sanity: setup-r43
	CORRAL_SANITY_DIR=$${TMPDIR:-/tmp}/corral-qubes-sanity-r43-$$(id -u) $(BIN_R43)/python tests/run_sanity.py --python 3.13

# The Galaxy artifact: built, checked, installed into an empty collections path of a fresh Python 3.13
# virtualenv with ansible-core 2.18 and the rehearsal package, and used from there (tests/run_artifact.py).
artifact: setup setup-r43
	$(BIN)/python tests/run_artifact.py --python $(BIN_R43)/python --constraints constraints-r43.txt

# The docs site: antsibull-docs renders the plugins, roles and the guides in docs/ (docs/docsite), Sphinx
# builds HTML offline (no intersphinx) with warnings as errors. Open docs/build/html/index.html.
docs: setup
	rm -rf $(DOCS_BUILD)
	$(BIN)/python tests/build_docs.py --dest $(DOCS_BUILD)

bench: setup setup-r43
	$(BIN)/python -m benchmarks.admin_api
	$(BIN)/python -m benchmarks.converge
	$(BIN)/python -m benchmarks.noop
	$(BIN_R43)/python -m benchmarks.noop --no-connection

# Side by side: the no-op of site.yml from the revision REV and from this checkout, in turns, on both stacks.
REV ?= HEAD
bench-compare: setup setup-r43
	$(BIN)/python -m benchmarks.compare $(REV)
	$(BIN_R43)/python -m benchmarks.compare $(REV)

clean:
	rm -rf $(VENV) $(VENV_R43) $(COLLECTIONS) .rehearsal .pytest_cache tests/output $(DOCS_BUILD)
