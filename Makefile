# affectlab: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The pinned CPU build of torch first, so the package's range is already satisfied.
	$(BIN)/pip install -q torch==2.13.0
	# mlflow: mlflow-skinny for tests/test_tracking.py (about 90 MiB, half a minute)
	$(BIN)/pip install -q -e ".[test,ray,docs,mlflow]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/affectlab demo

test: $(STAMP)
	# headless Chromium for tests/test_html_report.py (Debian's package; skipped without apt)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && \
		apt-get install -y -q chromium >/dev/null 2>&1) || true
	$(BIN)/ruff check src tests benchmarks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site

bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/features.py

clean:
	rm -rf $(VENV) .affectlab_cache runs .site
