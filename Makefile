# ryzlab - the front door.  `make report` and `make test` work on a fresh machine: they
# create .venv, install the package, build the kernel library, then do their job.

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
CC       ?= gcc

LIBDIR   ?= ryzlab/_lib
LIB      := $(LIBDIR)/libryzlab.so
OBJDIR   ?= build/obj

# Baseline x86-64 for everything; ISA flags only on the files that need them (see
# kernels_c/README.md).  -fno-tree-vectorize keeps the scalar kernels scalar.
CFLAGS_BASE   := -O3 -fPIC -fopenmp -std=gnu11 -Wall -Wextra -Werror=implicit-function-declaration $(EXTRA_CFLAGS)
CFLAGS_SCALAR := -fno-tree-vectorize
CFLAGS_AVX2   := -mavx2 -mfma
CFLAGS_AVX512 := -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512vbmi
LDFLAGS_LIB   := -shared -fopenmp $(EXTRA_LDFLAGS)

SRCS    := $(wildcard kernels_c/*.c)
OBJS    := $(patsubst kernels_c/%.c,$(OBJDIR)/%.o,$(SRCS))
HEADERS := $(wildcard kernels_c/*.h kernels_c/*.def)

isa_flags = $(if $(findstring avx512,$(1)),$(CFLAGS_AVX512),$(if $(findstring avx2,$(1)),$(CFLAGS_AVX2),$(if $(findstring scalar,$(1))$(findstring ref,$(1)),$(CFLAGS_SCALAR))))

.PHONY: all venv build test report quick-report lab peers sanitize clean help

all: build

help:
	@echo "make test      set up .venv, build the kernels, run the test suite"
	@echo "make report    set up, build, run all notebooks on defaults, write results/report.html"
	@echo "make quick-report  the same in --quick mode (about 2 minutes)"
	@echo "make lab       open JupyterLab on notebooks/"
	@echo "make peers     install llama.cpp (llama-cpp-python, built from source) for notebook 05"
	@echo "make build     build $(LIB) only"
	@echo "make sanitize  build with ASan+UBSan and run the test suite under it"
	@echo "make clean     remove build products (keeps .venv and results/)"

venv: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

build: $(LIB)

$(OBJDIR)/%.o: kernels_c/%.c $(HEADERS) Makefile
	@mkdir -p $(OBJDIR)
	$(CC) $(CFLAGS_BASE) $(call isa_flags,$*) -DRYZ_CFLAGS='"$(CFLAGS_BASE) (+ per-file ISA flags)"' -c $< -o $@

$(LIB): $(OBJS)
	@mkdir -p $(LIBDIR)
	$(CC) $(LDFLAGS_LIB) -o $@ $(OBJS)
	cp kernels_c/ryzlab.h $(LIBDIR)/ryzlab.h

test: $(STAMP) build
	$(BIN)/python -m pytest

report: $(STAMP) build
	$(BIN)/python -m ryzlab run
	$(BIN)/python -m ryzlab report

quick-report: $(STAMP) build
	$(BIN)/python -m ryzlab run --quick
	$(BIN)/python -m ryzlab report

lab: $(STAMP) build
	$(BIN)/pip install -q --disable-pip-version-check -e '.[lab]'
	$(BIN)/jupyter lab notebooks/

peers: $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[peers]'

# A separate ASan+UBSan build under build/sanitize, loaded through RYZLAB_LIB; the sanitizer
# runtimes must be loaded before Python, hence LD_PRELOAD.  Leak checking is off because
# CPython keeps allocations alive at exit.
SAN_DIR := build/sanitize
sanitize: $(STAMP)
	$(MAKE) build LIBDIR=$(SAN_DIR)/lib OBJDIR=$(SAN_DIR)/obj \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined"
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  RYZLAB_LIB=$(SAN_DIR)/lib/libryzlab.so RYZLAB_SANITIZE=1 \
	  $(BIN)/python -m pytest -x -q -p no:cacheprovider -m "not browser" --ignore=tests/test_notebooks.py

clean:
	rm -rf build $(LIBDIR)/*.so $(LIBDIR)/ryzlab.h
