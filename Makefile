# Two commands set everything up themselves: `make repro` (the pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline: the four original MNIST .gz files; online, leave unset and torchvision downloads them.
SHARED_MNIST := $(wildcard ../shared/datasets/mnist/raw)
export BAL_MNIST_RAW ?= $(if $(SHARED_MNIST),$(abspath $(SHARED_MNIST)),)
# Offline: Fashion-MNIST's four original files from Debian's dataset-fashion-mnist (make fashion-mnist installs it).
DEBIAN_FASHION := /usr/share/datasets/fashion-mnist
export BAL_FASHION_MNIST_RAW ?= $(if $(wildcard $(DEBIAN_FASHION)),$(DEBIAN_FASHION),)
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup fashion-mnist label-studio repro test smoke plots clean

setup: $(VENV)/.installed

# constraints.txt pins every package to the version behind the committed results (torch decides the rounding).
$(VENV)/.installed: pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Debian's package of the original Fashion-MNIST files, where apt can install it (root, no internet needed
# beyond Debian's mirror); elsewhere torchvision downloads the files.
fashion-mnist:
	@test -d $(DEBIAN_FASHION) || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || \
		echo "dataset-fashion-mnist not installed: Fashion-MNIST comes from torchvision's download, its data tests skip"

# Label Studio (tools/labels.py, tests/test_label_studio.py) in its own virtualenv, as teams run it: its
# dependencies (Django, about 1 GB) must not bend constraints.txt. Its round-trip test skips without it.
LABEL_STUDIO_VENV := .venv-label-studio
label-studio: $(LABEL_STUDIO_VENV)/bin/label-studio
$(LABEL_STUDIO_VENV)/bin/label-studio:
	test -d $(LABEL_STUDIO_VENV) || $(PYTHON) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet label-studio==1.23.2

# First a warning where this CPU would emulate bfloat16 training (tools/preflight.py).
# The stages of the grids (learn, survey, shift, simulate, study, single) are independent: tools/grid.py runs JOBS of them side by
# side on Dask (one torch thread each; --scheduler or --slurm for more machines, README), then dvc repro
# the rest (aggregate, study_summary, figures).
JOBS ?= $(shell nproc)
repro: setup fashion-mnist
	python tools/preflight.py
	dvc repro --glob 'prepare*@*'  # the built-in datasets' prepare@* and your own files' prepare_own@*
	python tools/grid.py --jobs $(JOBS)  # the grids' out-of-date stages on a Dask LocalCluster
	dvc repro

test: setup
	pytest

smoke: setup
	pytest -m smoke -s

# `dvc plots show` with vega inlined (DVC's default page loads it from a CDN and is blank offline).
PLOTS_TEMPLATE := .dvc/tmp/plots_offline.html
$(PLOTS_TEMPLATE):
	tools/offline_plots_template.sh $@

plots: setup $(PLOTS_TEMPLATE)
	dvc plots show --html-template $(PLOTS_TEMPLATE)

clean:
	rm -rf $(VENV) dvc_plots
