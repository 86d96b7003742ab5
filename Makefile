# Onepane: `make demo` starts it with the demo company; `make test` runs the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv

.PHONY: install demo serve test lint bench lock clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(PY) -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

demo: install
	$(VENV)/bin/onepane up --demo

serve: install
	$(VENV)/bin/onepane serve

test: install
	$(PY) -m pytest -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) bench/ingest.py
	$(PY) bench/lookup.py
	$(PY) bench/collectors.py
	$(PY) bench/cost.py
	$(PY) bench/gate.py
	$(PY) bench/drift.py
	$(PY) bench/dashboards.py
	$(PY) bench/overload.py
	$(PY) bench/crash.py --rounds 10

lock:
	$(UV) pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .onepane bench/out
