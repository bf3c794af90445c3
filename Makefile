# Each target creates or reuses the virtual environment .venv in the repository root.
# torch==2.13.0 is installed first: on a CPU machine pip finds the local CPU wheel, whereas a
# bare `torch` requirement would pull several GB of CUDA wheels.
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= runs/demo

.PHONY: demo test install clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,dlib,dask]'
	touch $@

# The clients extra and mmpose, for tests/test_export_clients.py. xtcocotools is compiled here against
# the installed numpy (its wheel is built for numpy 1); mmpose comes without its requirements, which name
# torchvision (and so another torch).
$(VENV)/.clients: $(VENV)/.installed
	$(PY) -m pip install --quiet cython
	$(PY) -m pip install --quiet --no-build-isolation --no-binary xtcocotools xtcocotools
	$(PY) -m pip install --quiet -e '.[clients]'
	$(PY) -m pip install --quiet --no-deps mmpose==1.3.2
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/lafin-aug demo --out $(OUT)

test: $(VENV)/.installed $(VENV)/.clients
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
