# stereo-automl: every target installs what it needs into ./.venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TORCH_INDEX ?=
# Two pytest workers by default (loadscope: a module's tests stay on one worker; WORKERS=0 for one process).
# The tests marked `serial` run after, alone: Ray's machine-wide memory monitor in tests/automl/e2e/test_oom_sweep.py
# killed an innocent trial when the other worker's sweep took memory meanwhile. PYTEST_ARGS goes to both runs;
# the second may then select nothing, which only counts as a failure when PYTEST_ARGS is empty.
WORKERS ?= 2
XDIST := $(if $(filter 0,$(WORKERS)),-p no:xdist,-n $(WORKERS) --dist loadscope)
SERIAL_RUN = $(BIN)/python -m pytest -p no:xdist -m serial $(1) $(PYTEST_ARGS); rc=$$?; \
	test $$rc = 0 || { test $$rc = 5 && test -n "$(strip $(PYTEST_ARGS))"; }

.PHONY: setup test test-fast test-shuffled demo demo-pareto bench bench-search lint schemas clean chromium postgres ui-snapshot

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned. The pin keeps the CPU build only where the index serves it (CI, dev machines);
	# from plain PyPI give TORCH_INDEX=https://download.pytorch.org/whl/cpu or it resolves to the CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# headless Chromium for the real-browser UI test and `make ui-snapshot` (Debian's package; ~25 s once).
# Without root or apt it says so and goes on: that test then skips with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { SUDO=$$(test "$$(id -u)" = 0 || echo sudo -n); export DEBIAN_FRONTEND=noninteractive; \
	    ($$SUDO apt-get install -y --no-install-recommends chromium || \
	     ($$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium)) >/dev/null 2>&1 \
	    || echo "make chromium: could not install chromium (needs apt and root); the browser test will skip"; }

# PostgreSQL for the tracking-server test (`automl server`, tests/automl/e2e/test_cluster.py): Debian's package
# when initdb is absent (~20 s once). Without root or apt it says so and goes on: that test then skips.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { SUDO=$$(test "$$(id -u)" = 0 || echo sudo -n); export DEBIAN_FRONTEND=noninteractive; \
	    ($$SUDO apt-get install -y --no-install-recommends postgresql || \
	     ($$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends postgresql)) >/dev/null 2>&1 \
	    || echo "make postgres: could not install postgresql (needs apt and root); the tracking-server test will skip"; }

test: setup chromium postgres
	$(BIN)/python -m pytest $(XDIST) -m "not serial" $(PYTEST_ARGS)
	@$(call SERIAL_RUN,)

# the unit tests only (no Ray sweep, no subprocess, no real training: the tests marked slow are left out),
# for the edit-test loop; `make test` and CI run everything
test-fast: setup
	$(BIN)/python -m pytest -p no:xdist -m "not slow" -q $(PYTEST_ARGS)

# the suite in a seeded random order (modules shuffled, tests shuffled inside each): SEED=n repeats one
SEED ?= $(shell date +%s)
test-shuffled: setup chromium postgres
	$(BIN)/python -m pytest $(XDIST) -m "not serial" -p random_order --random-order --random-order-seed=$(SEED) $(PYTEST_ARGS)
	@$(call SERIAL_RUN,-p random_order --random-order --random-order-seed=$(SEED))

demo: setup
	$(BIN)/python -m automl.demo

# issue 13 §4: the demo model through a deploy-only sweep (valid_iters x resolution, ONNX Runtime latency):
# the Pareto front of deploy/epe x deploy/latency_ms and where its plot is (<= 3 min on 2 cores)
demo-pareto: setup
	$(BIN)/python -m automl.demo pareto

# PNG screenshots of the MLflow UI (latest sweep's runs view, compare view, parent description) for
# docs/automl.md: from the demo's store (STORE=... for another), run `make demo` first
STORE ?= demo_runs/results
ui-snapshot: setup chromium
	$(BIN)/python -m automl.ui.browser --store $(STORE) --out docs/img

bench: setup
	$(BIN)/python -m bench.run_all

# search efficiency, 6 algorithms x 10 seeds (<= 40 min on 2 cores); resumes; ANALYZE=1 redoes tables + plot only
bench-search: setup
	$(BIN)/python -m bench.search_efficiency $(if $(ANALYZE),--analyze-only)

lint: setup
	$(BIN)/ruff check stereo automl tests bench

schemas: setup
	$(BIN)/python -m stereo.config.jsonschema --out schemas
	for s in skills/*/; do $(BIN)/python -m stereo.config.jsonschema --skill-dir $$s; done
	$(BIN)/python -m stereo.config.reference_doc --out docs/spec_reference.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
