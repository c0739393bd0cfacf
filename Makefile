# mqlab - a teaching lab kit for MQTT.
#
#   make            build ./mqlab
#   make run        install what is missing (as root), build, start the tour
#   make test       unit tests (CUnit) and integration tests against real brokers
#   make test-repeat  grade solutions and known-bad submissions 3 times each
#   make sanitize   unit tests and a sample of the integration tests built
#                   with AddressSanitizer (leaks too) and UBSan
#   make bench      grading time of the solutions, start time of `mqlab list`
#   make slides     render slides/*.md to build/slides/*.html
#   make fuzz       the WebSocket codec under libFuzzer (FUZZ_SECONDS=60)
#   make deps       install the Debian packages (or print the command)
#   make autograder LAB=NN  a Gradescope autograder bundle for lab NN:
#                   build/autograder-NN-name.zip (gradescope/bundle.py)
#   make install PREFIX=/usr/local DESTDIR=   the binary, man page, bash
#                   completion, slides and docs (what the .deb carries)
#   dpkg-buildpackage -us -uc -b   ../mqlab_*.deb (debian/)
#   make clean

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := lua5.4 libmosquitto openssl sqlite3
# From debian-packages.txt, the only copy of the list; read when needed.
DEB_PKGS = $(shell sh tests/deps.sh --list)

# BUILD and BIN may be set to build elsewhere (several builds side by side).
BUILD ?= build
BIN   ?= mqlab

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_CFLAGS := $(shell pkg-config --cflags cunit 2>/dev/null)
CUNIT_LIBS   := $(shell pkg-config --libs cunit 2>/dev/null)

# The kit's own flags live in ALL_CFLAGS, as in git's Makefile. CFLAGS,
# CPPFLAGS, LDFLAGS and LDLIBS belong to whoever runs make: they come
# after the kit's, so `make CFLAGS=-fsanitize=address` adds a flag (or
# overrides one: the last -O wins) and never drops -std, -D_GNU_SOURCE,
# the include paths or the libraries. CFLAGS reaches the linker too, as
# -fsanitize and -flto must.
KIT_CFLAGS  = -O2 -g -std=c11 -Wall -Wextra -Wshadow -Wwrite-strings -D_GNU_SOURCE \
              -MMD -MP -Irunner -I$(BUILD) $(PKG_CFLAGS)
ALL_CFLAGS  = $(KIT_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(CFLAGS) $(LDFLAGS)
ALL_LDLIBS  = $(PKG_LIBS) -lm -lpthread $(LDLIBS)
# What the objects of BUILD were built with: when it changes (a new
# CFLAGS), everything is rebuilt instead of linking stale objects.
TRACK_FLAGS = $(subst ','\'',$(strip $(CC) $(ALL_CFLAGS) $(CUNIT_CFLAGS) $(ALL_LDFLAGS) $(ALL_LDLIBS)))

# make sanitize: a build of its own (./mqlab is never touched), its unit
# tests, then the integration tests named in SAN_TESTS (a grading, Ctrl-C,
# the proxy, the sweep, a class and its exports) with that binary. UBSan
# stops at the first error; LeakSanitizer stays on, with the libraries'
# own leaks in tests/lsan.supp.
SAN_BUILD ?= $(BUILD)/sanitize
SAN_BIN   ?= $(SAN_BUILD)/mqlab
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             -fno-omit-frame-pointer -g -O1
SAN_TESTS ?= contract sigint watch trace trace-web proxy-api sweep class new-lab own-labs
# ASan and LSan reports go to files, one per process, so that a report
# from an mqlab whose exit code no test looks at still fails the target.
# UBSan ignores log_path when built with ASan: it prints on stderr and
# halts the process (exit 1), which the tests do see.
SAN_LOGS  := $(abspath $(SAN_BUILD))/reports
SAN_ENV   := ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1:log_path=$(SAN_LOGS)/asan \
             UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
             LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0

# The C modules (no Lua headers), the Lua side (host, lab engine and one
# binding per module), then the command line.
CORE_SRC := runner/util.c runner/cleanup.c runner/verdict.c runner/topics.c \
            runner/store.c runner/programs.c runner/broker.c runner/mqtt.c \
            runner/report.c runner/packet.c runner/proxy.c runner/px_rules.c runner/px_trace.c runner/trace.c \
            runner/pki.c runner/tlsprobe.c runner/impostor.c runner/net.c runner/ws.c runner/http.c runner/hist.c \
            runner/bench.c runner/benchcmd.c runner/benchmerge.c runner/sandbox.c runner/policy.c runner/worker.c \
            runner/json.c runner/browser.c
LUA_SRC  := runner/host.c runner/lab.c runner/lua_mqtt.c runner/lua_topics.c \
            runner/lua_broker.c runner/lua_programs.c runner/lua_kit.c \
            runner/lua_proxy.c runner/lua_http.c runner/lua_tls.c runner/lua_sqlite.c runner/lua_bench.c \
            runner/lua_browser.c runner/class.c
SRC      := $(CORE_SRC) $(LUA_SRC)
OBJ      := $(SRC:runner/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
# The command line: main.c dispatches to one file per command family.
CLI_SRC  := runner/main.c runner/cli.c runner/cmd_workspace.c runner/cmd_grade.c runner/cmd_tools.c \
            runner/cmd_author.c runner/cmd_start.c runner/cmd_watch.c runner/cmd_classroom.c
MAIN_OBJ := $(CLI_SRC:runner/%.c=$(BUILD)/%.o)

# Files compiled into the binary: the Lua prelude and kit modules, the
# labs (lab files, instructions, starter files), the broker templates and
# the pages the kit serves (runner/web: mqlab trace --web).
EMBED := $(sort $(wildcard runner/lua/*.lua) $(shell find labs broker-config runner/newlab runner/web -type f 2>/dev/null | grep -v '~$$'))

TEST_SRC := $(wildcard tests/unit/*.c)
TEST_OBJ := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%.o)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all run test test-repeat sanitize bench slides deps install clean check-pkgs fuzz autograder FORCE

all: $(BIN) certs/ca.crt

# The kit's PKI for the TLS labs, made on this machine (never committed).
certs/ca.crt: | $(BIN)
	@$(abspath $(BIN)) certs certs

check-pkgs:
	@pkg-config --exists $(PKGS) cunit || { \
	  echo "mqlab: missing development packages. Run 'make deps' (as root) or:"; \
	  echo "  sudo apt-get install -y" $(DEB_PKGS); exit 3; }

$(BIN): $(OBJ) $(MAIN_OBJ)
	@echo "LINK $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/%.o: runner/%.c $(BUILD)/flags | $(BUILD)/.dir check-pkgs
	@echo "CC $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/embed: runner/tools/embed.c | $(BUILD)/.dir check-pkgs
	@echo "CC $<"
	$(Q)$(CC) -O2 -Wall -Wextra $(shell pkg-config --cflags lua5.4) -o $@ $< $(shell pkg-config --libs lua5.4)

$(BUILD)/embedded.c: $(BUILD)/embed $(EMBED) Makefile
	@echo "EMBED $(words $(EMBED)) files"
	$(Q)$(BUILD)/embed $@ $(EMBED)

$(BUILD)/embedded.o: $(BUILD)/embedded.c $(BUILD)/flags
	@echo "CC $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c $(BUILD)/flags | $(BUILD)/.dir
	@echo "CC $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(CUNIT_CFLAGS) -c -o $@ $<

$(BUILD)/unit-tests: $(TEST_OBJ) $(OBJ)
	@echo "LINK $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LDLIBS) $(CUNIT_LIBS)

$(BUILD)/.dir:
	$(Q)mkdir -p $(BUILD)/tests
	$(Q)touch $@

# Rewritten only when the flags differ, so its date says when they changed.
$(BUILD)/flags: FORCE | $(BUILD)/.dir
	@flags='$(TRACK_FLAGS)'; \
	if [ x"$$flags" != x"$$(cat $@ 2>/dev/null)" ]; then \
	  [ ! -f $@ ] || echo "new build flags: rebuilding $(BUILD)"; \
	  echo "$$flags" > $@; \
	fi

deps:
	@sh tests/deps.sh

# make run links mqlab into PREFIX/bin (RUN_PREFIX: /usr/local as root,
# else ~/.local), so that `mqlab` works as typed in a new shell; the
# binary stays here, beside its certs/.
RUN_PREFIX ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)
run:
	@sh tests/deps.sh
	@$(MAKE) --no-print-directory all
	@install -d $(DESTDIR)$(RUN_PREFIX)/bin
	@ln -sf $(abspath $(BIN)) $(DESTDIR)$(RUN_PREFIX)/bin/mqlab
	@echo "mqlab is linked as $(RUN_PREFIX)/bin/mqlab"
	@$(abspath $(BIN)) tour

test: $(BIN) $(BUILD)/unit-tests
	@sh tests/deps.sh --npm
	@echo "== unit tests (CUnit)"
	@$(BUILD)/unit-tests
	@echo "== integration tests (real brokers on 127.0.0.1)"
	@MQLAB_BIN=$(abspath $(BIN)) sh tests/integration/run.sh

sanitize:
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) BIN=$(SAN_BIN) CFLAGS="$(SAN_FLAGS) $(CFLAGS)" \
	  $(SAN_BIN) $(SAN_BUILD)/unit-tests
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@echo "== unit tests (ASan, LSan, UBSan)"
	@$(SAN_ENV) $(SAN_BUILD)/unit-tests || { cat $(SAN_LOGS)/* 2>/dev/null; exit 1; }
	@echo "== integration tests: $(SAN_TESTS) (ASan, LSan, UBSan)"
	@$(SAN_ENV) MQLAB_BIN=$(abspath $(SAN_BIN)) sh tests/integration/run.sh $(SAN_TESTS) || \
	  { cat $(SAN_LOGS)/* 2>/dev/null; exit 1; }
	@if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
	  cat $(SAN_LOGS)/*; echo "sanitize: the reports above are in $(SAN_LOGS)"; exit 1; fi
	@echo "sanitize: no reports"

test-repeat: $(BIN)
	@MQLAB_BIN=$(abspath $(BIN)) REPEAT=3 sh tests/integration/run.sh

bench: $(BIN) $(BUILD)/unit-tests
	@UNIT_TESTS=$(BUILD)/unit-tests sh bench/run.sh

slides:
	@python3 slides/render.py $(BUILD)/slides

# make fuzz: the WebSocket codec (runner/ws.c, and the little it links:
# net.c, util.c, OpenSSL) under libFuzzer with ASan and UBSan, for
# FUZZ_SECONDS. The committed seeds stay as they are: what libFuzzer
# finds goes to $(FUZZ_DIR)/corpus, a crash to $(FUZZ_DIR)/crash-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -g -O1 -std=c11 -Wall -Wextra -D_GNU_SOURCE -Irunner \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC     := tests/fuzz/ws_fuzz.c runner/ws.c runner/net.c runner/util.c

$(FUZZ_DIR)/ws_fuzz: $(FUZZ_SRC) runner/ws.h runner/net.h runner/util.h
	@mkdir -p $(FUZZ_DIR)/corpus
	@echo "CC $@ ($(FUZZ_CC), libFuzzer)"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRC) $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto) || \
	  { echo "make fuzz needs clang with libFuzzer: apt-get install clang libclang-rt-14-dev"; exit 3; }

fuzz: $(FUZZ_DIR)/ws_fuzz
	@echo "== ws_fuzz for $(FUZZ_SECONDS) s (log: $(FUZZ_DIR)/ws_fuzz.log)"
	@$(FUZZ_DIR)/ws_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  -artifact_prefix=$(abspath $(FUZZ_DIR))/ $(FUZZ_DIR)/corpus tests/fuzz/ws_seeds \
	  > $(FUZZ_DIR)/ws_fuzz.log 2>&1; rc=$$?; \
	grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' $(FUZZ_DIR)/ws_fuzz.log; \
	if [ $$rc -ne 0 ]; then tail -40 $(FUZZ_DIR)/ws_fuzz.log; echo "fuzz: FOUND something (exit $$rc)"; exit 1; fi; \
	echo "fuzz: nothing found in $(FUZZ_SECONDS) s; corpus: $$(ls $(FUZZ_DIR)/corpus | wc -l) inputs"

# make autograder LAB=03: Gradescope's setup.sh and run_autograder with the
# kit's source, zipped (MQLAB_LANG=es for feedback in Spanish).
autograder:
	@[ -n "$(LAB)" ] || { echo "make autograder: say which lab: make autograder LAB=NN"; exit 2; }
	@python3 gradescope/bundle.py '$(subst ','\'',$(LAB))' $(BUILD)

# make install: the binary (labs and Lua files are inside it), the man
# page (en, es), bash completion, and the slides (Markdown and HTML) and the
# instructor docs. debian/rules runs it with PREFIX=/usr, so the .deb
# carries exactly these files. It never makes certs/: an installed mqlab
# keeps its PKI in ~/.local/share/mqlab/certs (see mqlab certs --help).
DOCDIR  ?= $(PREFIX)/share/doc/mqlab
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SLIDES_MD := $(filter-out slides/README.md,$(wildcard slides/*.md))

# mqlab(1), in English and Spanish, from the binary's own --help.
$(BUILD)/man/mqlab.1: $(BIN) runner/tools/manpage.py
	@echo "MAN $@"
	$(Q)python3 runner/tools/manpage.py $(BIN) en $@

$(BUILD)/man/es/mqlab.1: $(BIN) runner/tools/manpage.py
	@echo "MAN $@"
	$(Q)python3 runner/tools/manpage.py $(BIN) es $@

$(BUILD)/slides/index.html: slides/render.py $(SLIDES_MD) | $(BUILD)/.dir
	@echo "SLIDES $(words $(SLIDES_MD)) decks"
	$(Q)python3 slides/render.py $(BUILD)/slides >/dev/null

install: $(BIN) $(BUILD)/slides/index.html $(BUILD)/man/mqlab.1 $(BUILD)/man/es/mqlab.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/es/man1 $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/slides/html
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mqlab
	install -m 0644 $(BUILD)/man/mqlab.1 $(DESTDIR)$(MANDIR)/man1/mqlab.1
	install -m 0644 $(BUILD)/man/es/mqlab.1 $(DESTDIR)$(MANDIR)/es/man1/mqlab.1
	install -m 0644 docs/mqlab.bash-completion $(DESTDIR)$(BASHCOMPDIR)/mqlab
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 docs/authoring.md docs/trace-web.png $(DESTDIR)$(DOCDIR)/docs/
	install -m 0644 slides/README.md $(SLIDES_MD) $(DESTDIR)$(DOCDIR)/slides/
	install -m 0644 $(BUILD)/slides/*.html $(DESTDIR)$(DOCDIR)/slides/html/

clean:
	rm -rf $(BUILD) $(BIN)

FORCE:

-include $(OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
