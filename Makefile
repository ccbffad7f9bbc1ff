# sp: Spatial Policy in C.  `make` builds build/sp and build/libsp.a; `make test` runs the suite.
CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
PKGS      = egl libpng hdf5 libcjson libcurl openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -fopenmp -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   += -lmujoco $(PKG_LIBS) -lgif -lvl -fopenmp -lpthread -lm $(EXTRA_LDLIBS)

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_SRC  := $(filter-out src/cli/% $(SKIP),$(LIB_SRC))
# SKIP: patterns of sources to leave out of a private build, e.g. SKIP='src/data/% tests/test_data%'
CLI_SRC  := $(filter-out $(SKIP),$(sort $(wildcard src/cli/*.c)))
TEST_SRC := $(filter-out $(SKIP),$(sort $(wildcard tests/*.c)))
BENCH_SRC:= $(sort $(wildcard bench/*.c))
GEN_SRC  := $(BUILD)/gen/builtin_scenes.c
SCENES   := $(sort $(wildcard src/sim/scenes/*.xml))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/builtin_scenes.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test asan test-asan bench bench-nn clean
all: $(BUILD)/sp $(BUILD)/libsp.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# nn core: math functions never set errno there, so sqrtf and friends vectorise (the files'
# optimize pragmas do not reach the builtins; AdamW's loop stayed scalar without this)
$(BUILD)/src/nn/%.o: CFLAGS += -fno-math-errno

# built-in MJCF scenes are embedded as C strings (see tools/embed.sh)
$(GEN_SRC): $(SCENES) tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh $@ $(SCENES)
$(BUILD)/gen/builtin_scenes.o: $(GEN_SRC)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/sp: $(CLI_OBJ) $(BUILD)/libsp.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsp.a $(LDLIBS)

# one Criterion binary holds every test file
$(BUILD)/sp_tests: $(TEST_OBJ) $(BUILD)/libsp.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libsp.a $(LDLIBS) -lcriterion

test: $(BUILD)/sp_tests $(BUILD)/sp
	SP_BIN=$(BUILD)/sp $(BUILD)/sp_tests $(TEST_ARGS)

# address + undefined-behaviour sanitizers, separate build tree
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	        EXTRA_LDLIBS="-fsanitize=address,undefined" build-asan/sp build-asan/sp_tests

# the test suite under ASan + UBSan (any UBSan report fails the run)
test-asan: asan
	SP_BIN=build-asan/sp UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LSAN_OPTIONS=suppressions=tests/lsan.supp build-asan/sp_tests $(TEST_ARGS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libsp.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libsp.a $(LDLIBS)

bench: $(BENCH_SRC:%.c=$(BUILD)/%)

# nn core vs PyTorch, side by side (see docs/nn.md)
bench-nn: $(BUILD)/bench/bench_nn
	/usr/bin/python3 bench/bench_nn.py $(BUILD)/bench/bench_nn

# tools/X.c: small programs that write fixtures and docs pictures
$(BUILD)/tools/%: $(BUILD)/tools/%.o $(BUILD)/libsp.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libsp.a $(LDLIBS)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
