# The C API tests under clang's AddressSanitizer and UndefinedBehaviorSanitizer (included by the
# Makefile), besides valgrind in test-c.
#
#   make test-c-sanitizers  part of `make test`: test_capi.c compiled with ASan+UBSan, run against
#                           the release library (the C side and every heap call is checked; the
#                           Swift code itself is not instrumented). Reuses test-c's fixtures.
#   make test-sanitizers    the same test against a libKerf.so whose Swift and C code is built with
#                           AddressSanitizer too (.build-asan; a separate Swift build of minutes).

ASAN_SCRATCH := $(CURDIR)/.build-asan
# The ASan runtime comes with the test executable: the library leaves its symbols undefined.
ASAN_SWIFT_FLAGS := -c release -Xswiftc -static-stdlib -Xswiftc -sanitize=address -Xcc -fsanitize=address \
  -Xlinker --unresolved-symbols=ignore-in-object-files
CAPI_SAN_CFLAGS := -std=c99 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
  -fsanitize=address,undefined -fno-sanitize-recover=all -fuse-ld=bfd -I include
CAPI_SAN_ENV := SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The external-data checks rewrite their model in place: each run gets a fresh copy.
CAPI_ARGS = $(OUT)/digits_mlp.onnx $(OUT) $(OUT)/external-san/digits.onnx
CAPI_FIXTURE = $(PYTHON) Tests/CAPI/external_fixture.py $(OUT)/digits_mlp.onnx $(OUT)/external-san

.PHONY: test-c-sanitizers test-sanitizers

test-c-sanitizers: test-c
	$(CLANG) $(CAPI_SAN_CFLAGS) Tests/CAPI/test_capi.c -L .build/release -lKerf \
	  -Wl,-rpath,$(CURDIR)/.build/release -o $(OUT)/test_capi_asan
	echo "== C API tests under ASan+UBSan (release library)"
	$(CAPI_FIXTURE)
	$(CAPI_SAN_ENV) $(OUT)/test_capi_asan $(CAPI_ARGS)

test-sanitizers: test-c
	$(SWIFT_BUILD) --scratch-path $(ASAN_SCRATCH) --product Kerf $(ASAN_SWIFT_FLAGS)
	$(CLANG) $(CAPI_SAN_CFLAGS) Tests/CAPI/test_capi.c -L $(ASAN_SCRATCH)/release -lKerf \
	  -Wl,-rpath,$(ASAN_SCRATCH)/release -o $(OUT)/test_capi_asan_swift
	echo "== C API tests under ASan+UBSan (library built with ASan)"
	$(CAPI_FIXTURE)
	$(CAPI_SAN_ENV) $(OUT)/test_capi_asan_swift $(CAPI_ARGS)
