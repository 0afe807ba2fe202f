# tfmcourse — one Makefile for readers, students, instructors and CI.
#   make book        build the Jupyter Book (creates .venv on first use) and print where to open it
#   make test        run every test: unit tests, hidden suites, notebooks, release, book build + browser check
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# CPU wheel of torch that these machines have locally; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# nbgrader shells out to tools installed in the venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv book publish test test-fast test-book browser exercises release bench clean parity

help:
	@echo "make book        build the book into _build/html"
	@echo "make publish DEST=DIR   build the book and copy the site to DIR (or user@host:DIR)"
	@echo "make test        run the whole test suite (what CI runs)"
	@echo "make test-fast   unit tests and hidden suites only (no notebooks, no book)"
	@echo "make exercises   regenerate exercises/ from solutions/ with nbgrader"
	@echo "make parity      nbgrader vs tfmcourse grade on 10 mutants per chapter (slow)"
	@echo "make release     write the student release to _build/release"
	@echo "make bench       tfmcourse bench (GPU sizes on CUDA, CPU sizes otherwise)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[book,grading,data,dev]"
	@touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Open file://$(CURDIR)/_build/html/index.html"
	@if [ -z "$$CI" ] && command -v xdg-open >/dev/null && [ -n "$$DISPLAY" ]; then xdg-open _build/html/index.html; fi

# Publish the built site anywhere that serves static files (GitHub Pages is done by
# .github/workflows/book.yml): a local folder, or user@host:DIR over rsync.
publish:
	@test -n "$(DEST)" || { echo "usage: make publish DEST=DIR  (or DEST=user@host:DIR, copied with rsync)" >&2; exit 2; }
	$(MAKE) book
	@case "$(DEST)" in \
	    *:*) rsync -a --delete _build/html/ "$(DEST)/" ;; \
	    *) mkdir -p "$(DEST)" && cp -a _build/html/. "$(DEST)/" ;; \
	esac
	@echo "Published _build/html to $(DEST)"

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not book and not notebooks"

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not book" --durations=25
	$(MAKE) test-book

browser: $(STAMP)
	tools/install_browser.sh

test-book: book browser
	TFMCOURSE_REQUIRE_BROWSER=1 $(PY) -m pytest -q -n 2 -m book

parity: $(STAMP)
	TFM_PARITY_SAMPLE=10 TFM_PARITY_CHAPTERS=all $(PY) -m pytest -q -n 2 tests/test_nbgrader_roundtrip.py

exercises: $(STAMP)
	$(PY) -m tfmcourse.exercises

release: $(STAMP)
	$(VENV)/bin/tfmcourse release _build/release --force

bench: $(STAMP)
	$(VENV)/bin/tfmcourse bench

clean:
	rm -rf _build .pytest_cache
