# Two commands on a fresh machine: `make demo` (run the main job on the simulator's demo tenant) and `make test`.
# Everything runs from .venv at the repo root, built from requirements*.txt pinned by constraints.txt.
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as on our CI machines)
# nothing ever does: every Airflow task process would then compile Airflow, pandas and pyarrow from source on
# import (measured: a sync task's start-up 1.3-2.8 s -> 0.5-1.2 s).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# Azurite (the Azure Storage emulator, from npm) for the abfs:// data-root tests, installed inside .venv.
AZURITE_VERSION := 3.35.0
NODE_BIN := $(CURDIR)/$(VENV)/node/node_modules/.bin
AZURITE := $(NODE_BIN)/azurite-blob

.PHONY: venv demo test constraints clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -r requirements-dev.txt -c constraints.txt -e .
	@touch $(STAMP)

demo: venv
	$(PY) scripts/demo.py

$(AZURITE): | venv
	@command -v npm >/dev/null || { echo "make: npm (Node.js) is needed to install Azurite for the abfs:// tests"; exit 1; }
	npm install --prefix $(VENV)/node --no-audit --no-fund --silent "azurite@$(AZURITE_VERSION)"

test: venv $(AZURITE)
	PATH="$(NODE_BIN):$$PATH" $(PY) -m pytest

# Re-freeze the known-good environment after changing requirements*.txt.
constraints: venv
	@{ echo "# A freeze of a known-good environment (make constraints regenerates it). Install with: -r requirements-dev.txt -c constraints.txt"; \
	  $(UV) pip freeze --python $(PY) --exclude-editable | grep -v '^uv=='; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
