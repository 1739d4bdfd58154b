# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser demo test test-fast clean

setup: $(STAMP)

# Re-installs only when the project's requirements change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/zoo demo

# Headless Chromium for the leaderboard page test (tests/test_leaderboard.py fails without one, naming the
# package): Debian's `chromium` (+ fonts) through apt-get when it is missing and we are root or have
# password-less sudo; otherwise a message that says what to run.
APT := env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make: no Chromium and no apt-get here: install Chromium yourself, tests/test_leaderboard.py needs it" >&2; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
	    echo "make: Chromium is missing and installing it needs root: run 'sudo apt-get install chromium'" \
	         "(tests/test_leaderboard.py fails without it)" >&2; exit 0; fi; \
	echo "installing Debian's chromium for the leaderboard page test (apt-get)"; \
	{ $$SUDO $(APT) update >/dev/null && \
	  $$SUDO $(APT) install --no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null; } \
	|| echo "make: apt-get could not install chromium: run 'sudo apt-get install chromium'" \
	        "(tests/test_leaderboard.py fails without it)" >&2

# lint-imports: the one-way dependency contracts of pyproject.toml ([tool.importlinter])
test: setup browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: setup browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf runs data .pytest_cache
