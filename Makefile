# rosbag_assets: `make demo` and `make test` work on a fresh machine, offline (package registries only).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WEIGHTS ?= yolo11n.pt
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export YOLO_AUTOINSTALL := 0

.PHONY: install demo dev test test-fast lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Run monitoring fails runs whose process died or never started (instead of leaving them STARTED forever);
# pools bound concurrent steps (the detector runs in pool `gpu`, limited to 1 here: Dagster keeps per-pool
# limits in the instance's storage, not in dagster.yaml, so `dagster instance concurrency set` writes it).
$(DAGSTER_HOME)/dagster.yaml: Makefile | $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@printf '%s\n' 'telemetry:' '  enabled: false' \
		'run_monitoring:' '  enabled: true' '  start_timeout_seconds: 180' '  cancel_timeout_seconds: 180' \
		'  max_resume_run_attempts: 0' '  poll_interval_seconds: 30' \
		'concurrency:' '  pools:' '    default_limit: 4' > $@
	$(VENV)/bin/dagster instance concurrency set gpu 1

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m rosbag_assets.demo --root var/demo --weights '$(WEIGHTS)'

# The output root is also served on 127.0.0.1:$(OUTPUT_PORT) so previews show in place in the UI.
OUTPUT_PORT ?= 3001
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	out=$${ROSBAG_ASSETS_OUTPUT_ROOT:-$(CURDIR)/var/demo/output}; mkdir -p "$$out"; \
	$(PY) -m http.server --bind 127.0.0.1 --directory "$$out" $(OUTPUT_PORT) >/dev/null 2>&1 & server=$$!; \
	trap 'kill $$server' EXIT; \
	ROSBAG_ASSETS_LANDING_ROOT=$${ROSBAG_ASSETS_LANDING_ROOT:-$(CURDIR)/var/demo/landing} \
	ROSBAG_ASSETS_OUTPUT_ROOT="$$out" \
	ROSBAG_ASSETS_OUTPUT_URL=$${ROSBAG_ASSETS_OUTPUT_URL:-http://127.0.0.1:$(OUTPUT_PORT)} \
	ROSBAG_ASSETS_ALLOW_FALLBACK=$${ROSBAG_ASSETS_ALLOW_FALLBACK:-1} \
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p $${PORT:-3000} -w workspace.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check rosbag_assets rosbag_assets_tests $(wildcard bench)
	YOLO_OFFLINE=1 $(PY) -m pytest -q

bench: $(STAMP)
	YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 $(PY) -m bench.run $(BENCH_ARGS)

test-fast: $(STAMP)
	YOLO_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check rosbag_assets rosbag_assets_tests $(wildcard bench)
	$(VENV)/bin/ruff format --check rosbag_assets rosbag_assets_tests $(wildcard bench)

clean:
	rm -rf var .dagster_home .pytest_cache
