# Two commands on a fresh machine: `make demo` (run the main job on the simulator's demo tenant) and `make test`.
# Everything runs from .venv at the repo root, built from requirements*.txt pinned by constraints.txt.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: venv demo test constraints clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip install --python $(PY) --quiet -r requirements-dev.txt -c constraints.txt -e .
	@touch $(STAMP)

demo: venv
	$(PY) scripts/demo.py

test: venv
	$(PY) -m pytest

# Re-freeze the known-good environment after changing requirements*.txt.
constraints: venv
	@{ echo "# A freeze of a known-good environment (make constraints regenerates it). Install with: -r requirements-dev.txt -c constraints.txt"; \
	  $(UV) pip freeze --python $(PY) --exclude-editable | grep -v '^uv=='; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
