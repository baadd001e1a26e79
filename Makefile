# corral.qubes — developer entry points.
#
#   make rehearse   set up, start a fresh rehearsal dom0 and show it working (site.yml, whitelists)
#   make test       every test and quality gate (what CI runs)
#
# Everything lives in the repository: the virtualenv in .venv, the collection
# link in .collections, rehearsal state in .rehearsal.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
COLLECTIONS := .collections
LINK := $(COLLECTIONS)/ansible_collections/corral/qubes
PYTEST_WORKERS ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)

.PHONY: all setup rehearse test lint yamllint ansible-lint changelog-lint docs-lint sanity pytest unit functional molecule bench clean

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

test: lint sanity pytest molecule

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

pytest: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

unit: setup
	$(BIN)/python -m pytest tests/unit

functional: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/functional

# The Molecule scenario: a fresh rehearsal dom0, converge, idempotence, verify (testinfra).
molecule: setup
	NO_COLOR=1 $(BIN)/molecule test --scenario-name default

bench: setup
	$(BIN)/python -m benchmarks.admin_api
	$(BIN)/python -m benchmarks.converge

clean:
	rm -rf $(VENV) $(COLLECTIONS) .rehearsal .pytest_cache tests/output
