# Fuzzing Kerf's loader and runtime with libFuzzer (included by the Makefile).
#
#   make fuzz        a long run (FUZZ_SECONDS, default 1 h) against a libKerf.so built with
#                    coverage instrumentation and AddressSanitizer (in .build-fuzz); prints the
#                    executions, the time and executions per second. A crash stops it and leaves
#                    the input in .build-fuzz/artifacts/.
#   make test-fuzz   part of `make test`: replays the seeds and every committed regression input,
#                    then fuzzes for FUZZ_SHORT_SECONDS against the release library (no coverage
#                    feedback from the Swift code: a crash finder that costs no extra Swift build).
#
# A crash found: minimize it (.build-fuzz/fuzz_load -minimize_crash=1 -runs=10000 CRASH), commit
# the minimized input to Tests/Fuzz/regressions/ under a name saying what it broke, fix Kerf and
# add a Swift or Python test that fails without the fix. See RELIABILITY.md.

FUZZ_SECONDS ?= 3600
FUZZ_SHORT_SECONDS ?= 60
FUZZ_FLAGS := -max_len=65536 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -dict=Tests/Fuzz/onnx.dict
FUZZ_SCRATCH := $(CURDIR)/.build-fuzz
FUZZ_LIB_DIR := $(FUZZ_SCRATCH)/release
# swiftc has no -sanitize=fuzzer-no-link: -sanitize=fuzzer on a library instruments it and leaves
# libFuzzer's and ASan's symbols undefined, for the fuzzer executable to provide (hence
# --unresolved-symbols, which overrides the package's -zdefs for this build only; gold has no -z undefs).
FUZZ_SWIFT_FLAGS := -c release -Xswiftc -static-stdlib -Xswiftc -sanitize=fuzzer,address \
  -Xcc -fsanitize=fuzzer-no-link,address -Xlinker --unresolved-symbols=ignore-in-object-files
# The toolchain's clang: it ships libFuzzer and the sanitizer runtimes (Debian's gcc has neither).
CLANG ?= $(dir $(realpath $(shell command -v swift)))clang
SWIFT_BUILD ?= swift build
# ld.bfd: gold warns about every ASan symbol it cannot export.
FUZZ_CFLAGS := -std=c99 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -fuse-ld=bfd -I include
# Swift's own crash handler would catch the trap before libFuzzer saves the input.
FUZZ_ENV := SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:handle_abort=1
FUZZ_SEEDS = $(sort $(wildcard Tests/Fuzz/seeds/*.onnx))
FUZZ_REGRESSIONS = $(shell find Tests/Fuzz/regressions -type f ! -name '*.md' | sort)

.PHONY: fuzz fuzz-build test-fuzz

## fuzz-build: the instrumented library and the harness in .build-fuzz
fuzz-build: deps
	$(SWIFT_BUILD) --scratch-path $(FUZZ_SCRATCH) --product Kerf $(FUZZ_SWIFT_FLAGS)
	$(CLANG) $(FUZZ_CFLAGS) Tests/Fuzz/fuzz_load.c -L $(FUZZ_LIB_DIR) -lKerf \
	  -Wl,-rpath,$(FUZZ_LIB_DIR) -o $(FUZZ_SCRATCH)/fuzz_load

## fuzz: a long libFuzzer run (FUZZ_SECONDS); the corpus grows in .build-fuzz/corpus
fuzz: fuzz-build
	mkdir -p $(FUZZ_SCRATCH)/corpus $(FUZZ_SCRATCH)/artifacts
	echo "== fuzzing for $(FUZZ_SECONDS) s on $$(lscpu | sed -n 's/^Model name: *//p'); log: $(FUZZ_SCRATCH)/fuzz.log"
	start=$$(date +%s)
	$(FUZZ_ENV) nice -n 10 $(FUZZ_SCRATCH)/fuzz_load $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
	  -artifact_prefix=$(FUZZ_SCRATCH)/artifacts/ $(FUZZ_SCRATCH)/corpus Tests/Fuzz/seeds Tests/Fuzz/regressions \
	  > $(FUZZ_SCRATCH)/fuzz.log 2>&1 || { tail -n 60 $(FUZZ_SCRATCH)/fuzz.log; \
	  echo "FAIL: the fuzzer stopped on a finding; input in $(FUZZ_SCRATCH)/artifacts/"; exit 1; }
	bash Tests/Fuzz/summarize.sh $(FUZZ_SCRATCH)/fuzz.log $$(( $$(date +%s) - start ))

## test-fuzz: replay seeds and regressions, then a short run against the release library
test-fuzz: release
	mkdir -p $(OUT)/fuzz-corpus $(OUT)/fuzz-artifacts
	$(CLANG) $(FUZZ_CFLAGS) Tests/Fuzz/fuzz_load.c -L .build/release -lKerf \
	  -Wl,-rpath,$(CURDIR)/.build/release -o $(OUT)/fuzz_load
	echo "== replaying $(words $(FUZZ_SEEDS)) seeds (each must run) and $(words $(FUZZ_REGRESSIONS)) regression inputs"
	$(FUZZ_ENV) KERF_FUZZ_REQUIRE_RUN=1 $(OUT)/fuzz_load $(FUZZ_FLAGS) $(FUZZ_SEEDS) > $(OUT)/fuzz-replay.log 2>&1 \
	  || { tail -n 60 $(OUT)/fuzz-replay.log; echo "FAIL: a seed does not run (or crashes Kerf)"; exit 1; }
	$(if $(FUZZ_REGRESSIONS),$(FUZZ_ENV) $(OUT)/fuzz_load $(FUZZ_FLAGS) $(FUZZ_REGRESSIONS) > $(OUT)/fuzz-replay.log 2>&1 \
	  || { tail -n 60 $(OUT)/fuzz-replay.log; echo "FAIL: a committed fuzz input crashes Kerf"; exit 1; })
	echo "== fuzzing for $(FUZZ_SHORT_SECONDS) s"
	start=$$(date +%s)
	$(FUZZ_ENV) $(OUT)/fuzz_load $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SHORT_SECONDS) \
	  -artifact_prefix=$(OUT)/fuzz-artifacts/ $(OUT)/fuzz-corpus Tests/Fuzz/seeds Tests/Fuzz/regressions \
	  > $(OUT)/fuzz.log 2>&1 || { tail -n 60 $(OUT)/fuzz.log; \
	  echo "FAIL: the fuzzer stopped on a finding; input in $(OUT)/fuzz-artifacts/"; exit 1; }
	bash Tests/Fuzz/summarize.sh $(OUT)/fuzz.log $$(( $$(date +%s) - start ))
