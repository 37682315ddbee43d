# parallelrun: plain GNU Makefile.
#
#   make            build build/parallelrun and libparallelrun.{a,so}
#   make deps       apt-get install what is missing (Debian 12)
#   make demo       deps + build + run jobs/demo.yaml
#   make test       unit + bats tests; last line "N passed, N failed"
#   make check      the same under ASan + UBSan (in build-asan/)
#   make bench      benchmarks against xargs, GNU parallel and a floor
#   make install    PREFIX=/usr/local DESTDIR=
#   make format     clang-format the sources; format-check only checks
#
# WERROR=1 turns warnings into errors (CI does), SANITIZE=1 builds with
# ASan + UBSan, BUILD=dir chooses the output directory. The settings a
# build was made with are kept in $(BUILD)/.make-settings: changing CC,
# CFLAGS, OPT, SANITIZE, WERROR or LDFLAGS rebuilds everything. PREFIX is
# compiled into nothing; `make install` writes parallelrun.pc with the
# PREFIX it is given.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
PKG_CONFIG ?= pkg-config
PKGS      := yaml-0.1 hiredis inih

DEB_PKGS  := build-essential pkg-config libyaml-dev libhiredis-dev \
             libinih-dev redis-server redis-tools bats python3 python3-numpy \
             python3-h5py parallel hyperfine time clang libclang-rt-14-dev \
             valgrind cppcheck iproute2 procps
DEB_PKGS  += scdoc man-db bash-completion zsh

OPT       ?= -O2 -g
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wwrite-strings -Wformat=2
ifeq ($(WERROR),1)
WARN      += -Werror
endif
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
SAN       :=
ifeq ($(SANITIZE),1)
SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
endif
# -fvisibility=hidden: libparallelrun.so exports only what
# include/parallelrun.h marks PRUN_API.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -pthread \
             $(OPT) $(WARN) $(SAN) \
             -Iinclude -iquote lib $(PKG_CFLAGS) \
             -DPRUN_VERSION='"$(VERSION)"' $(CFLAGS)
ALL_LDFLAGS = $(SAN) -pthread $(LDFLAGS)
LIBS      = $(PKG_LIBS) -lm
# The shared library is the child-side API only: the objects that API
# needs, linked against hiredis alone. -z defs makes a missing object a
# link error instead of a library that fails when a child loads it.
SO_LIBS    = $(shell $(PKG_CONFIG) --libs hiredis 2>/dev/null) -lm
SO_LDFLAGS = -shared -Wl,-soname,libparallelrun.so.0 -Wl,-z,defs \
             -Wl,--as-needed

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
SO_OBJS   := $(patsubst %,$(BUILD)/lib/%.o,api_segment coord coord_keeper coord_lock \
               coord_pool coord_sync coord_url wq wq_pool \
               segcache segment_load segment_publish segmeta sha256 util)
CMD_SRCS  := $(sort $(wildcard cmd/*.c))
CMD_OBJS  := $(CMD_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
EX_SRCS   := $(sort $(wildcard examples/c/*.c))
EX_BINS   := $(EX_SRCS:examples/c/%.c=$(BUILD)/examples/%)

BIN       := $(BUILD)/parallelrun
STATICLIB := $(BUILD)/libparallelrun.a
SHAREDLIB := $(BUILD)/libparallelrun.so

.PHONY: all deps demo test unit check bench install uninstall clean format \
        format-check examples valgrind export-check FORCE

all: $(BIN) $(STATICLIB) $(SHAREDLIB) examples

# Everything built depends on the settings it was built with. The file is
# rewritten (and so made newer than every target) only when they change.
SETTINGS     := $(BUILD)/.make-settings
SETTINGS_NOW := CC=$(CC) CFLAGS=$(ALL_CFLAGS) LDFLAGS=$(ALL_LDFLAGS) \
                LIBS=$(LIBS)
ifeq ($(filter-out clean format format-check deps lint check fuzz% uninstall,\
                   $(or $(MAKECMDGOALS),all)),)
else ifneq ($(strip $(SETTINGS_NOW)),$(strip $(file <$(SETTINGS))))
ifneq ($(findstring n,$(firstword -$(MAKEFLAGS))),)
# make -n changes nothing, but shows what the new settings rebuild.
$(SETTINGS): FORCE
else
$(shell mkdir -p $(BUILD))
$(file >$(SETTINGS),$(strip $(SETTINGS_NOW)))
endif
endif
FORCE:

$(BUILD)/%.o: %.c $(SETTINGS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(STATICLIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHAREDLIB): $(SO_OBJS) $(SETTINGS)
	$(CC) $(SO_LDFLAGS) $(ALL_LDFLAGS) -o $@ $(SO_OBJS) $(SO_LIBS)

$(BIN): $(CMD_OBJS) $(STATICLIB) $(SETTINGS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CMD_OBJS) $(STATICLIB) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(STATICLIB) $(SETTINGS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(STATICLIB) $(ALL_LDFLAGS) $(LIBS)

$(BUILD)/examples/%: examples/c/%.c $(STATICLIB) $(SETTINGS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATICLIB) $(ALL_LDFLAGS) $(LIBS)

examples: $(EX_BINS)

$(SETTINGS):
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(strip $(SETTINGS_NOW))' > $@

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "all Debian packages present"; fi

demo: deps
	$(MAKE) all
	$(BIN) run jobs/demo.yaml

unit: $(UNIT_BINS)

test: deps
	@$(MAKE) --no-print-directory all unit
	@BUILD=$(BUILD) tests/run.sh


check:
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT='-O1 -g' test

bench: all
	@bench/run.sh

# memcheck over a representative run (segments, embedded Redis, retries, a
# timeout, pool mode): every process of the run must report no error and
# no definitely lost bytes.
valgrind: all
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind/home
	@head -c 100000 /dev/urandom > tests/fixtures/valgrind/data.bin
	@# The job fails on purpose (a timeout): its exit status is not the gate.
	@HOME=$$PWD/$(BUILD)/valgrind/home PARALLELRUN_CONFIG=/dev/null \
	  PARALLELRUN_STATE_DIR=$$PWD/$(BUILD)/valgrind/home/state \
	  PARALLELRUN_EMBEDDED_LINGER=0 \
	  valgrind --leak-check=full --errors-for-leak-kinds=definite \
	  --log-file=$(BUILD)/valgrind/vg.%p.log \
	  $(BIN) run tests/fixtures/valgrind/run.yaml >/dev/null 2>&1 || true
	@rm -f tests/fixtures/valgrind/data.bin
	@grep -h "ERROR SUMMARY\|definitely lost" $(BUILD)/valgrind/vg.*.log | sort | uniq -c
	@! grep -l "ERROR SUMMARY: [1-9]\|definitely lost: [1-9]" $(BUILD)/valgrind/vg.*.log

# The Python package goes where Debian's python3 looks without help:
# /usr/lib/python3/dist-packages for PREFIX=/usr, else
# PREFIX/lib/python3.X/dist-packages (/usr/local's is on its sys.path).
PYTHON    ?= /usr/bin/python3
PYVER      = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)
PYDIR     ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/parallelrun
	install -m 644 $(STATICLIB) $(DESTDIR)$(PREFIX)/lib/libparallelrun.a
	install -m 755 $(SHAREDLIB) \
	  $(DESTDIR)$(PREFIX)/lib/libparallelrun.so.$(VERSION)
	ln -sf libparallelrun.so.$(VERSION) \
	  $(DESTDIR)$(PREFIX)/lib/libparallelrun.so.0
	ln -sf libparallelrun.so.0 $(DESTDIR)$(PREFIX)/lib/libparallelrun.so
	install -m 644 include/parallelrun.h $(DESTDIR)$(PREFIX)/include/
	@# Written here, with this PREFIX (and never DESTDIR, a staging root).
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: parallelrun' \
	  'Description: child-side API of the parallelrun job runner' \
	  'Version: $(VERSION)' 'Requires.private: hiredis' \
	  'Libs: -L$${libdir} -lparallelrun' 'Libs.private: -lm -pthread' \
	  'Cflags: -I$${includedir}' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/parallelrun.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/parallelrun.pc
	install -d $(DESTDIR)$(PYDIR)/parallelrun
	install -m 644 python/parallelrun/__init__.py $(DESTDIR)$(PYDIR)/parallelrun/
	printf 'LIBDIR = %s\nBINDIR = %s\n' "'$(PREFIX)/lib'" "'$(PREFIX)/bin'" \
	  > $(DESTDIR)$(PYDIR)/parallelrun/_config.py

# ---- Man pages and shell completion ------------------------------------
#
#   make man        docs/man/*.scd -> $(BUILD)/man/ (scdoc)
#   make man-check  the pages render with man -l without a warning
# make install also puts them under $(PREFIX)/share/man, the bash
# completion where bash-completion looks for it and the zsh one in
# share/zsh/site-functions (in zsh's default fpath for /usr/local).

MAN_SRCS  := $(sort $(wildcard docs/man/*.scd))
MAN_PAGES := $(MAN_SRCS:docs/man/%.scd=$(BUILD)/man/%)
SCDOC     ?= scdoc

.PHONY: man man-check install-extra

# Plain `make` builds the pages when scdoc is there (`make deps` installs it).
ifneq ($(shell command -v $(SCDOC) 2>/dev/null),)
all: man
endif

man: $(MAN_PAGES)

$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	$(SCDOC) < $< > $@.tmp && mv $@.tmp $@

man-check: man
	@for p in $(MAN_PAGES); do \
	  w=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l $$p 2>&1 >/dev/null); \
	  if [ -n "$$w" ]; then echo "$$p: $$w"; exit 1; fi; \
	done; echo "man pages render without warnings"

install: install-extra

install-extra: man
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 644 $(BUILD)/man/parallelrun.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(BUILD)/man/parallelrun-job.5 \
	  $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 completion/parallelrun.bash \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/parallelrun
	install -m 644 completion/_parallelrun \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_parallelrun

uninstall: uninstall-extra

uninstall-extra:
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/parallelrun.1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5/parallelrun-job.5 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/parallelrun \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_parallelrun

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/parallelrun \
	  $(DESTDIR)$(PREFIX)/lib/libparallelrun.* \
	  $(DESTDIR)$(PREFIX)/include/parallelrun.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/parallelrun.pc
	rm -rf $(DESTDIR)$(PYDIR)/parallelrun

FORMAT_SRCS = $(wildcard lib/*.[ch] cmd/*.[ch] include/*.h tests/unit/*.[ch] \
              examples/c/*.c bench/*.c)

format:
	clang-format -i $(FORMAT_SRCS)

format-check:
	@clang-format --dry-run -Werror $(FORMAT_SRCS) && echo "formatted"

clean:
	rm -rf build build-asan

-include $(LIB_OBJS:.o=.d) $(CMD_OBJS:.o=.d)

# Each name PRUN_API declares in include/parallelrun.h is exported by the
# shared library, and nothing else is (tests/cli/install.bats runs this).
export-check: $(SHAREDLIB)
	@grep -oE '^PRUN_API [^(]*\bprun_[a-z_]+\(' include/parallelrun.h | \
	  grep -oE 'prun_[a-z_]+' | sort > $(BUILD)/exports.want
	@nm -D --defined-only $(SHAREDLIB) | awk '{ print $$3 }' | sort \
	  > $(BUILD)/exports.have
	@diff -u $(BUILD)/exports.want $(BUILD)/exports.have && \
	  echo "$$(wc -l < $(BUILD)/exports.have) symbols exported"

# ---- Fuzzing -------------------------------------------------------------
#
#   make fuzz-build          build the libFuzzer harnesses of tests/fuzz/
#   make fuzz FUZZ_SECONDS=N run each for N seconds (default 60)
#
# The library is compiled again with clang and the fuzzer's coverage
# instrumentation into build-fuzz/. Each harness runs on a copy of its seed
# corpus (build-fuzz/corpus/NAME, which keeps what it finds from one run to
# the next) and its dictionary tests/fuzz/fuzz_NAME.dict if there is one;
# tests/fuzz/corpus is never written. A crash, leak, timeout or
# sanitizer report leaves its input in build-fuzz/crash/NAME/ (emptied at
# the start of each run) and fails.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_NAMES   := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,\
                  $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g -pthread $(WARN) \
                -Iinclude -iquote lib $(PKG_CFLAGS) \
                -DPRUN_VERSION='"$(VERSION)"'
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_FLAGS   := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz fuzz-build fuzz-clean

$(FUZZ_BUILD)/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
	  -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< \
	  $(FUZZ_OBJS) $(LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@fail=0; for n in $(FUZZ_NAMES); do \
	  c=$(FUZZ_BUILD)/corpus/$$n; a=$(FUZZ_BUILD)/crash/$$n; \
	  rm -rf $$a; mkdir -p $$c $$a; cp tests/fuzz/corpus/$$n/* $$c/; \
	  d=; [ -f tests/fuzz/fuzz_$$n.dict ] && d=-dict=tests/fuzz/fuzz_$$n.dict; \
	  echo "fuzz_$$n: $(FUZZ_SECONDS)s"; \
	  if ! $(FUZZ_BUILD)/fuzz_$$n $(FUZZ_FLAGS) $$d \
	      -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$$a/ $$c \
	      >$(FUZZ_BUILD)/fuzz_$$n.log 2>&1 || [ -n "$$(ls -A $$a)" ]; then \
	    tail -n 40 $(FUZZ_BUILD)/fuzz_$$n.log; \
	    echo "fuzz_$$n: FAILED, inputs in $$a/"; fail=1; \
	  else \
	    grep -E '^stat::number_of_executed_units' \
	      $(FUZZ_BUILD)/fuzz_$$n.log | sed "s/^/  /"; \
	  fi; \
	done; exit $$fail

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(FUZZ_OBJS:.o=.d)

# ---- Static analysis -------------------------------------------------------
#
#   make lint    cppcheck over lib/ and cmd/; any finding fails. Suppressions
#                live in .cppcheck-suppressions, each with its reason.

CPPCHECK ?= cppcheck

.PHONY: lint

lint:
	$(CPPCHECK) --enable=warning,portability,performance --error-exitcode=1 \
	  --inline-suppr --suppressions-list=.cppcheck-suppressions \
	  -I include -I lib --std=c11 -D_GNU_SOURCE -q lib cmd
