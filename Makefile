# prefixlb: one binary, build/prefixlb. `make test` runs every test (normal and
# ASan+UBSan builds); `make asan` runs the tests under the sanitizers only.
# SANITIZE=1 builds into build-asan/ instead of build/.
#
# Two passes, so that the first `make -j2` on a bare Debian 12 works: the first
# pass runs scripts/setup (the Debian packages, pkg-config among them, and the
# tokenizer data; `setup --check` takes a few ms when all is there) and nothing
# else, then runs make again for the goals; that second make computes the
# pkg-config flags and compiles, after setup. (With setup as one prerequisite
# among others, -j2 compiled in parallel with the installation, and the flags
# were read when make started, before pkg-config and the -dev packages existed.)
# Goals that need no package (clean, check-core) skip the first pass.

NO_SETUP_GOALS := clean check-core
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(NO_SETUP_GOALS),$(MAKECMDGOALS)),)
PREFIXLB_SETUP_DONE := 1
endif
endif

ifeq ($(PREFIXLB_SETUP_DONE),)
# ---- first pass: setup, then the real make --------------------------------
GOALS := $(or $(MAKECMDGOALS),all)
.PHONY: setup-then-build
$(GOALS): setup-then-build
	@:
setup-then-build:
	@scripts/setup --check >/dev/null 2>&1 || scripts/setup
	@$(MAKE) --no-print-directory PREFIXLB_SETUP_DONE=1 $(MAKECMDGOALS)
else
# ---- second pass: the build ------------------------------------------------

CC      ?= cc
PKGS    := libuv jansson libpcre2-8 libxxhash libzmq msgpack
ifeq ($(SANITIZE),1)
BUILD   ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2
endif
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP $(SANFLAGS)
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
LDFLAGS += $(SANFLAGS)
# `prefixlb --version`: the tree's git describe, if it is a git checkout
PREFIXLB_VERSION := $(shell git describe --always --dirty 2>/dev/null)

LIB_SRC  := $(wildcard src/core/*.c src/proto/*.c src/net/*.c src/cmd/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/main.o
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ITEST_SRC := $(wildcard tests/integ/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/integ/%.c=$(BUILD)/itests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test asan unit demo arena bench soak clean fmt check-core fuzz FORCE
all: $(BUILD)/prefixlb

# scripts/setup has run in the first pass
deps:

$(BUILD)/prefixlb: $(MAIN_OBJ) $(BUILD)/libprefixlb.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# main.o carries the version; it is rebuilt when the version changes (the
# stamp is rewritten only then)
$(BUILD)/version.txt: FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = "$(PREFIXLB_VERSION)" ] || echo "$(PREFIXLB_VERSION)" > $@
$(MAIN_OBJ): $(BUILD)/version.txt
$(MAIN_OBJ): CFLAGS += $(if $(PREFIXLB_VERSION),-DPREFIXLB_VERSION='"$(PREFIXLB_VERSION)"')

$(BUILD)/libprefixlb.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libprefixlb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libprefixlb.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/itests/%: tests/integ/%.c tests/integ/itest.h $(BUILD)/libprefixlb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libprefixlb.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/libprefixlb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libprefixlb.a $(LDFLAGS) $(LDLIBS)

# Everything the test runner needs for one build flavour.
unit: $(BUILD)/prefixlb $(TEST_BIN) $(ITEST_BIN) $(BENCH_BIN)

test:
	@scripts/test

asan:
	@scripts/test --asan-only

bench: all $(BENCH_BIN)
	@scripts/bench

# DURATION=600 (s) by default; see bench/soak.sh
soak: all
	@bench/soak.sh

demo: all
	@scripts/demo

# every routing policy over the arena's workloads in virtual time, 3 seeds
# (~1 min of CPU per 10 policies on 2 cores); tables on stdout, plots in build/arena
arena: all
	@$(BUILD)/prefixlb lab --virtual --scenario arena --seed 1,2,3 --out $(BUILD)/arena

# libFuzzer harnesses (clang), each run FUZZ_SECONDS (default 60) by scripts/fuzz.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
build-fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(@D)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Isrc -o $@ $< $(LIB_SRC) \
		$(shell pkg-config --cflags $(PKGS)) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@scripts/fuzz

# The pure core must not do I/O, read clocks or use global randomness.
check-core:
	@! grep -nE '#include <(uv|curl/curl|sys/socket|netinet/in|arpa/inet|time|unistd|fcntl)\.h>|\b(time|rand|srand|random|clock_gettime|gettimeofday|fopen|socket)\(' src/core/*.c src/core/*.h src/proto/*.c src/proto/*.h 2>/dev/null || (echo "src/core or src/proto does I/O or reads a clock (see above)"; exit 1)

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
endif
