# Builds and installs the C library: libnorman.so.X.Y.Z with its SONAME link and libnorman.so,
# libnorman.a, norman.h and norman.pc, stripped.
#   make                                  # cargo build --release -p norman --lib
#   make install PREFIX=/usr/local        # (DESTDIR honoured; PROFILE=debug installs a debug build)
#   make install RPATH=0                  # norman.pc without -Wl,-rpath (for a libdir ld.so searches)
# Then: cc app.c $(pkg-config --cflags --libs norman)
# `cargo cinstall` (cargo-c, [package.metadata.capi] in Cargo.toml) installs the same files.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
# 1: norman.pc's Libs carry -Wl,-rpath,${libdir}, so programs linked through it (C, Go's cgo) find
# the library at run time without ld.so.conf, ldconfig or LD_LIBRARY_PATH.
RPATH ?= 1
PROFILE ?= release
CARGO ?= cargo
STRIP ?= strip
CARGO_TARGET_DIR ?= target
COMMA := ,
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR := $(word 1,$(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
# As build.rs (the SONAME) and cargo-c: MAJOR, or 0.MINOR while MAJOR is 0.
SOVERSION := $(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))
SONAME := libnorman.so.$(SOVERSION)
BUILD_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
OUT := $(CARGO_TARGET_DIR)/$(PROFILE)
# The system libraries a static link of libnorman.a needs, as rustc prints them for the link probe
# (tools/static-libs: a staticlib of the same crates; cargo replays the note when nothing changed).
STATIC_LIBS_FILE := $(OUT)/norman-static-libs.txt

.PHONY: all build static-libs install uninstall
all: build

build:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) $(CARGO) build --locked $(BUILD_FLAGS) -p norman --lib

static-libs:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) $(CARGO) rustc --locked --quiet $(BUILD_FLAGS) -p norman-static-libs \
	    --lib -- --print native-static-libs 2>&1 | sed -n 's/^note: native-static-libs: //p' > $(STATIC_LIBS_FILE).tmp
	@test -s $(STATIC_LIBS_FILE).tmp || { echo "rustc printed no native-static-libs" >&2; exit 1; }
	mv $(STATIC_LIBS_FILE).tmp $(STATIC_LIBS_FILE)

install: build static-libs
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 $(OUT)/libnorman.so $(DESTDIR)$(LIBDIR)/libnorman.so.$(VERSION)
	$(STRIP) --strip-unneeded $(DESTDIR)$(LIBDIR)/libnorman.so.$(VERSION)
	ln -sf libnorman.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libnorman.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libnorman.so
	install -m 0644 $(OUT)/libnorman.a $(DESTDIR)$(LIBDIR)/libnorman.a
	$(STRIP) --strip-debug $(DESTDIR)$(LIBDIR)/libnorman.a
	install -m 0644 include/norman.h $(DESTDIR)$(INCLUDEDIR)/norman.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@RPATH@|$(if $(filter 1,$(RPATH)),-Wl$(COMMA)-rpath$(COMMA)$${libdir} ,)|' \
	    -e "s|@LIBS_PRIVATE@|$$(cat $(STATIC_LIBS_FILE))|" norman.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/norman.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libnorman.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libnorman.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libnorman.a \
	      $(DESTDIR)$(INCLUDEDIR)/norman.h $(DESTDIR)$(LIBDIR)/pkgconfig/norman.pc
