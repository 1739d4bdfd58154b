# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

# Re-installs only when the project's requirements change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/zoo demo

# lint-imports: the one-way dependency contracts of pyproject.toml ([tool.importlinter])
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf runs data .pytest_cache
