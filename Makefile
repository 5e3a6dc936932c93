# evpipe — one binary, many subcommands. `make help` lists the targets.
BUILD    ?= build
CC       ?= cc
PKGS     := rdkafka libpq yajl libcurl yaml-0.1 libpcre2-8 xlsxwriter libmicrohttpd zlib libcrypto
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wwrite-strings -Werror
CFLAGS   ?= -O2 -g
# Recursive (=) so that `make deps` can install the libraries in the same run.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -I. -I$(BUILD) \
              -DEVPIPE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
CHECK_LIBS = $(shell pkg-config --libs check)
Q        := $(if $(V),,@)

# Every .c under these folders is part of the binary; main lives in evpipe.c.
LIB_SRCS := $(sort $(wildcard common/*.c transforms/*.c sinks/*.c consumers/*.c producers/*.c tools/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS)) $(BUILD)/migrations_embedded.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
INTEG_SRCS := $(sort $(wildcard tests/integration/test_*.c))
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRCS) $(INTEG_SRCS))
# Shared test code: testlib and every non-test_ .c file beside the suites.
TEST_SUPPORT := tests/testlib.c $(filter-out $(UNIT_SRCS) $(INTEG_SRCS),$(wildcard tests/unit/*.c tests/integration/*.c))
MIGRATIONS := $(sort $(wildcard migrations/*.sql))

.PHONY: all check check-unit check-asan bench fuzz deps demo clean help format
all: $(BUILD)/evpipe $(BUILD)/examples/publish_example

$(BUILD)/evpipe: $(BUILD)/evpipe.o $(LIB_OBJS)
	@echo "  LINK   $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libevpipe.a: $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC     $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The SQL migrations ship inside the binary (SPEC §2).
$(BUILD)/migrations_embedded.c: $(MIGRATIONS) tools/embed_migrations.sh
	@mkdir -p $(dir $@)
	$(Q)sh tools/embed_migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@
$(BUILD)/migrations_embedded.o: $(BUILD)/migrations_embedded.c
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/testlib.h $(TEST_SUPPORT) $(BUILD)/libevpipe.a
	@mkdir -p $(dir $@)
	@echo "  TEST   $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_SUPPORT) $(BUILD)/libevpipe.a $(LDLIBS) $(CHECK_LIBS)

# How an upstream C service links the publishing library (producers/evpub.h).
$(BUILD)/examples/publish_example: producers/example/publish_example.c $(BUILD)/libevpipe.a
	@mkdir -p $(dir $@)
	@echo "  EXAMPLE $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libevpipe.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libevpipe.a
	@mkdir -p $(dir $@)
	@echo "  BENCH  $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libevpipe.a $(LDLIBS)

# `make check` starts a private PostgreSQL and a mock Kafka cluster, runs every
# suite against them, and tears both down whatever happens.
check:
	@sh tools/deps.sh
	$(MAKE) --no-print-directory all $(TEST_BINS)
	BUILD=$(BUILD) sh tests/run.sh

check-unit: $(BUILD)/evpipe $(TEST_BINS)
	BUILD=$(BUILD) EVPIPE_TEST_UNIT_ONLY=1 sh tests/run.sh

check-asan:
	EVPIPE_TEST_SLOW=1 $(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -Wno-gnu-statement-expression" \
	  check

bench: $(BUILD)/evpipe $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
	BUILD=$(BUILD) sh bench/run.sh

fuzz:
	BUILD=build-fuzz sh fuzz/run.sh

deps:
	sh tools/deps.sh

demo:
	@sh tools/deps.sh
	$(MAKE) --no-print-directory $(BUILD)/evpipe
	BUILD=$(BUILD) sh tools/demo.sh

format:
	clang-format -i $(LIB_SRCS) $(wildcard */*.h) evpipe.c

clean:
	rm -rf build build-asan build-fuzz

help:
	@echo "make            build $(BUILD)/evpipe"
	@echo "make deps       install the Debian packages and the classifier data sets (tools/deps_data.sh)"
	@echo "make demo       run the pipeline end to end on embedded defaults"
	@echo "make check      build and run every test (private PostgreSQL + mock Kafka)"
	@echo "make check-asan the same under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench      benchmarks, printed as ratios against same-run baselines"
	@echo "make fuzz       run the libFuzzer targets (FUZZ_SECONDS, default 60)"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
