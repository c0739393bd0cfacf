# mqlab - a teaching lab kit for MQTT.
#
#   make            build ./mqlab
#   make run        install what is missing (as root), build, start the tour
#   make test       unit tests (CUnit) and integration tests against real brokers
#   make test-repeat  grade solutions and known-bad submissions 3 times each
#   make bench      grading time of the solutions, start time of `mqlab list`
#   make slides     render slides/*.md to build/slides/*.html
#   make deps       install the Debian packages (or print the command)
#   make install PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := lua5.4 libmosquitto openssl sqlite3
DEB_PKGS := build-essential pkg-config mosquitto mosquitto-clients libmosquitto-dev \
            liblua5.4-dev lua5.4 libsqlite3-dev sqlite3 libssl-dev libcunit1-dev \
            python3 python3-paho-mqtt openssl

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_CFLAGS := $(shell pkg-config --cflags cunit 2>/dev/null)
CUNIT_LIBS   := $(shell pkg-config --libs cunit 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wwrite-strings -D_GNU_SOURCE \
           -MMD -MP -Irunner -I$(BUILD) $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -lpthread

# BUILD and BIN may be set to build elsewhere (several builds side by side).
BUILD ?= build
BIN   ?= mqlab

# The C modules (no Lua headers), the Lua side (host, lab engine and one
# binding per module), then the command line.
CORE_SRC := runner/util.c runner/cleanup.c runner/verdict.c runner/topics.c \
            runner/store.c runner/programs.c runner/broker.c runner/mqtt.c \
            runner/report.c runner/packet.c runner/proxy.c runner/trace.c \
            runner/tls.c runner/hist.c runner/bench.c runner/benchcmd.c \
            runner/sandbox.c runner/policy.c runner/worker.c
LUA_SRC  := runner/host.c runner/lab.c runner/lua_mqtt.c runner/lua_topics.c \
            runner/lua_broker.c runner/lua_programs.c runner/lua_kit.c \
            runner/lua_proxy.c runner/lua_tls.c runner/lua_sqlite.c runner/lua_bench.c
SRC      := $(CORE_SRC) $(LUA_SRC)
OBJ      := $(SRC:runner/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
MAIN_OBJ := $(BUILD)/main.o

# Files compiled into the binary: the Lua prelude and kit modules, the
# labs (lab files, instructions, starter files) and the broker templates.
EMBED := $(sort $(wildcard runner/lua/*.lua) $(shell find labs broker-config -type f 2>/dev/null | grep -v '~$$'))

TEST_SRC := $(wildcard tests/unit/*.c)
TEST_OBJ := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%.o)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all run test test-repeat bench slides deps install clean check-pkgs

all: $(BIN) certs/ca.crt

# The kit's PKI for the TLS labs, made on this machine (never committed).
certs/ca.crt: | $(BIN)
	@$(abspath $(BIN)) certs certs

check-pkgs:
	@pkg-config --exists $(PKGS) cunit || { \
	  echo "mqlab: missing development packages. Run 'make deps' (as root) or:"; \
	  echo "  sudo apt-get install -y $(DEB_PKGS)"; exit 3; }

$(BIN): $(OBJ) $(MAIN_OBJ)
	@echo "LINK $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: runner/%.c | $(BUILD)/.dir check-pkgs
	@echo "CC $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embed: runner/tools/embed.c | $(BUILD)/.dir check-pkgs
	@echo "CC $<"
	$(Q)$(CC) -O2 -Wall -Wextra $(shell pkg-config --cflags lua5.4) -o $@ $< $(shell pkg-config --libs lua5.4)

$(BUILD)/embedded.c: $(BUILD)/embed $(EMBED) Makefile
	@echo "EMBED $(words $(EMBED)) files"
	$(Q)$(BUILD)/embed $@ $(EMBED)

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	@echo "CC $<"
	$(Q)$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c | $(BUILD)/.dir
	@echo "CC $<"
	$(Q)$(CC) $(CFLAGS) $(CUNIT_CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(TEST_OBJ) $(OBJ)
	@echo "LINK $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CUNIT_LIBS)

$(BUILD)/.dir:
	$(Q)mkdir -p $(BUILD)/tests
	$(Q)touch $@

deps:
	@sh tests/deps.sh $(DEB_PKGS)

run:
	@sh tests/deps.sh $(DEB_PKGS)
	@$(MAKE) --no-print-directory $(BIN)
	@$(abspath $(BIN)) tour

test: $(BIN) $(BUILD)/unit-tests
	@echo "== unit tests (CUnit)"
	@$(BUILD)/unit-tests
	@echo "== integration tests (real brokers on 127.0.0.1)"
	@MQLAB_BIN=$(abspath $(BIN)) sh tests/integration/run.sh

test-repeat: $(BIN)
	@MQLAB_BIN=$(abspath $(BIN)) REPEAT=3 sh tests/integration/run.sh

bench: $(BIN)
	@sh bench/run.sh

slides:
	@python3 slides/render.py $(BUILD)/slides

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mqlab

clean:
	rm -rf $(BUILD) $(BIN)

-include $(OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
