# The lab package: `make run` for the whole tour, `make test` for the checks.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= data
ZIP    ?= submission.zip
DATA_MIRROR ?=
export DATA_MIRROR

.PHONY: help install data numpy cnn evaluate bench run test zip check-zip clean distclean

help:
	@echo "make run        install, data, numpy part, evaluate model.pt, zip, check-zip (minutes)"
	@echo "make test       install, data, pytest  (the test command; CI runs exactly this)"
	@echo "make install    virtualenv in $(VENV) with requirements.txt"
	@echo "make data       Fashion-MNIST, MNIST (and both real-photo sets from a mirror) into $(DATA)/ (DATA_MIRROR=dir)"
	@echo "make numpy      train the NumPy network, redraw its two figures"
	@echo "make cnn        retrain MyNet and overwrite model.pt (tens of minutes)"
	@echo "make evaluate   test accuracy, shift suite and both real-photo sets of model.pt, redraw the report figure"
	@echo "make bench      training-step and classify timings on this machine (run it on a quiet machine)"
	@echo "make zip        submission.zip with exactly the five files BRUTE wants"
	@echo "make check-zip  emulate the grader on submission.zip"
	@echo "make clean      remove generated files (keeps $(VENV) and $(DATA)); distclean removes those too"

install:
	@if [ -f $(VENV)/.installed ] && [ $(VENV)/.installed -nt requirements.txt ]; then \
		echo "==> install: $(VENV) is up to date"; \
	else \
		echo "==> install: creating $(VENV) with requirements.txt" && \
		$(PYTHON) -m venv $(VENV) && \
		$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt && \
		touch $(VENV)/.installed; \
	fi

data: install
	@echo "==> data: Fashion-MNIST and MNIST into $(DATA)/$(if $(DATA_MIRROR), (mirror $(DATA_MIRROR)))"
	$(PY) tools/fetch_data.py --out $(DATA)

numpy: install data
	@echo "==> numpy: training the NumPy network (4 vs 9), saving numpy_nn_*.png"
	$(PY) numpy_nn.py --no-show

cnn: install data
	@echo "==> cnn: training MyNet, writing model.pt and pytorch_cnn_training.png"
	$(PY) pytorch_cnn.py --history training_history.json
	$(PY) tools/plot_training.py training_history.json --out pytorch_cnn_training.png

evaluate: install data
	@echo "==> evaluate: model.pt on the Fashion-MNIST test set, the shift suite and the real photos"
	$(PY) tools/evaluate.py model.pt

bench: install data
	@echo "==> bench: timings of MyNet on this machine"
	$(PY) tools/bench.py

run: install data numpy evaluate zip check-zip

test: install data
	@echo "==> test: pytest"
	$(PY) -m pytest tests

zip: install
	@echo "==> zip: building $(ZIP)"
	$(PY) tools/submission.py zip --out $(ZIP)

check-zip: install data
	@echo "==> check-zip: emulating the grader on $(ZIP)"
	$(PY) tools/submission.py check $(ZIP) --data $(DATA)

clean:
	@echo "==> clean: removing generated files"
	rm -rf submission.zip training_history.json .pytest_cache __pycache__ tests/__pycache__ tools/__pycache__ logs

distclean: clean
	@echo "==> distclean: removing $(VENV) and $(DATA)"
	rm -rf $(VENV) $(DATA)
