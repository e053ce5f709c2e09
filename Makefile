# make workbook : create the environment if missing, run every notebook at the CPU preset, then render docs/ and the
#                 README's results from data/results/ and the executed notebooks as HTML (docs/notebooks/)
# make test     : create the environment if missing, then run the unit tests and every notebook at the smoke preset
# make test-extended : the tests marked `extended` (every notebook on the paper-scale rehearsal path, a Dask cluster);
#                 .ci/run runs both
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= cpu
# GPU users: TORCH_SPEC="torch" (or a CUDA wheel spec) and CONSTRAINTS= to keep your own torch build
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS ?= -c constraints/cpu.txt

.PHONY: env workbook test test-extended clean-cache lab lock

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet $(CONSTRAINTS) -e ".[notebooks,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (provenance-workbook)" >/dev/null
	touch $@

workbook: env
	$(PY) -m provlib run --preset $(PRESET)
	test "$(PRESET)" != cpu || $(PY) -m provlib report --html outputs/cpu/notebooks

test: env
	$(PY) -m pytest -m "not extended"

test-extended: env
	$(PY) -m pytest -m extended

lab: env
	$(VENV)/bin/jupyter lab notebooks/

clean-cache:
	rm -rf data/cache outputs

# re-lock constraints/cpu.txt to what the environment holds now (then check tests/test_notebooks.py's smoke values)
lock: env
	{ sed -n '/^torch==/q;p' constraints/cpu.txt; echo "$(TORCH_SPEC)"; $(PY) -m pip freeze --exclude-editable | grep -iv '^torch=='; } > constraints/cpu.txt.new
	mv constraints/cpu.txt.new constraints/cpu.txt
