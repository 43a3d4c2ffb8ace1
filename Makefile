# Shortcuts for the README's two commands and their parts.
.PHONY: setup demo test unit e2e notebook

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

unit:
	scripts/test.sh -m "not e2e"

e2e:
	scripts/test.sh -m e2e

# JupyterLab on 127.0.0.1 with notebooks/compare.ipynb; installs the `notebook` extra (JupyterLab,
# pandas) into .venv on first use. SANDBOX_RESULTS=results/<experiment> picks the folder it reads.
# Options: PORT=8888, JUPYTER_ARGS=--no-browser.
PORT ?= 8888
notebook:
	@test -x .venv/bin/python || scripts/setup.sh
	@.venv/bin/python -c "import jupyterlab, pandas" 2>/dev/null || \
		{ echo "notebook: installing JupyterLab and pandas into .venv"; \
		  .venv/bin/python -m pip install -q -e ".[notebook]"; }
	.venv/bin/jupyter lab --ip 127.0.0.1 --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
		--LabApp.default_url=/lab/tree/notebooks/compare.ipynb $(JUPYTER_ARGS)
