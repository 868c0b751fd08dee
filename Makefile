# One-command setup: `make demo` and `make test` create .venv and install everything on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.14.1 pairs with torchvision 0.29.1 (timm needs torchvision); pip installs both first so
# that no other torch is pulled in by a dependency.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# The x86_64 torch build carries its CUDA libraries: the finished .venv takes about 7 GB.
VENV_NEED_GB ?= 7

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@free_gb=$$(df -Pk $(dir $(abspath $(VENV))) 2>/dev/null | awk 'NR==2 {print int($$4 / 1048576)}'); \
	echo "setup: $${free_gb:-?} GB free here; .venv needs about $(VENV_NEED_GB) GB"; \
	if [ -n "$$free_gb" ] && [ "$$free_gb" -lt "$(VENV_NEED_GB)" ]; then \
	  echo "setup: warning: the install may fail with 'No space left on device'; free disk space or set VENV=/a/larger/disk/venv" >&2; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[all]"
	touch $@

demo: setup
	$(PY) -m boardgraph demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/build_graph.py

clean:
	rm -rf $(VENV) .pytest_cache
