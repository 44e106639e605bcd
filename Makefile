# Builds the BPF object and the native helpers. TypeScript is built by `tsc -p .`.
# vmlinux.h is generated from the running kernel's BTF (see README: "Why vmlinux.h is generated").
BUILD   ?= build
CLANG   ?= clang
BPFTOOL ?= bpftool
ARCH    := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(BUILD) -Ibpf
TOOLS_CFLAGS := -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Itools

BPF_OBJS := $(BUILD)/sockbypass.bpf.o $(BUILD)/sockbypass-netns-blind.bpf.o $(BUILD)/layout.bpf.o \
            $(BUILD)/test-extra-map.bpf.o
# Each tools/*.c but common.c is one tool; sbload is the folder tools/sbload/.
TOOLS    := $(patsubst tools/%.c,$(BUILD)/%,$(filter-out tools/common.c,$(wildcard tools/*.c))) $(BUILD)/sbload
TOOLS_LIBS := -lcrypto -lpthread

all: $(BPF_OBJS) $(TOOLS)

$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/sockbypass.bpf.o: bpf/sockbypass.bpf.c bpf/sockbypass.h $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/layout.bpf.o: bpf/layout.bpf.c bpf/sockbypass.h $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# A variant whose key ignores the network namespace. It exists only so the isolation
# test can show that it would catch a netns-blind key; nothing ships or loads it otherwise.
$(BUILD)/sockbypass-netns-blind.bpf.o: bpf/sockbypass.bpf.c bpf/sockbypass.h $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -DSOCKBYPASS_TEST_NETNS_BLIND -c $< -o $@

# The data plane plus one map, for the test that a new map is pinned and kept by --replace.
$(BUILD)/test-extra-map.bpf.o: test/bpf/extra-map.bpf.c bpf/sockbypass.bpf.c bpf/sockbypass.h $(BUILD)/vmlinux.h
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/sbload: $(wildcard tools/sbload/*.c) tools/common.c $(wildcard tools/*.h tools/sbload/*.h)
	@mkdir -p $(BUILD)
	$(CC) $(TOOLS_CFLAGS) $(filter %.c,$^) -o $@ $(TOOLS_LIBS)

$(BUILD)/%: tools/%.c tools/common.c $(wildcard tools/*.h)
	@mkdir -p $(BUILD)
	$(CC) $(TOOLS_CFLAGS) $< tools/common.c -o $@ $(TOOLS_LIBS)

clean:
	rm -rf $(BUILD)

.PHONY: all clean
