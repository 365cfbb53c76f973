# Builds and installs the C library: libnorman.so, libnorman.a, norman.h and norman.pc.
#   make                                  # cargo build --release -p norman --lib
#   make install PREFIX=/usr/local        # (DESTDIR honoured; PROFILE=debug installs a debug build)
# Then: cc app.c $(pkg-config --cflags --libs norman)
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PROFILE ?= release
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BUILD_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
OUT := $(CARGO_TARGET_DIR)/$(PROFILE)

.PHONY: all build install uninstall
all: build

build:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) $(CARGO) build --locked $(BUILD_FLAGS) -p norman --lib

install: build
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 $(OUT)/libnorman.so $(DESTDIR)$(LIBDIR)/libnorman.so
	install -m 0644 $(OUT)/libnorman.a $(DESTDIR)$(LIBDIR)/libnorman.a
	install -m 0644 include/norman.h $(DESTDIR)$(INCLUDEDIR)/norman.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' norman.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/norman.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libnorman.so $(DESTDIR)$(LIBDIR)/libnorman.a \
	      $(DESTDIR)$(INCLUDEDIR)/norman.h $(DESTDIR)$(LIBDIR)/pkgconfig/norman.pc
