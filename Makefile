# A thin index of the project's jobs; the logic lives in Rust.
# The pinned codex CLI (and the oldest supported one) install from npm into
# .codex/<version>/ (git-ignored) on first use.

CODEX_VERSION ?= 0.171.0
CODEX_OLDEST ?= 0.135.0
CODEX_ROOT := $(CURDIR)/.codex
codex_bin = $(CODEX_ROOT)/$(1)/node_modules/.bin/codex

export PLEXUM_TEST_CODEX ?= $(call codex_bin,$(CODEX_VERSION))
export PLEXUM_TEST_CODEX_OLDEST ?= $(call codex_bin,$(CODEX_OLDEST))

.PHONY: run test check bless record codex clean-codex fuzz bench install install-files uninstall compat

# The main job: a real codex turn against the bundled mock server, then a
# resumed second turn and a reply streamed over two seconds, rendered for a
# person. `make run TRANSPORT=app-server` shows the words as they come.
TRANSPORT ?= exec
run: codex
	cargo build --quiet
	PLEXUM_DEMO_TRANSPORT=$(TRANSPORT) cargo run --quiet --example demo

# Every test: fmt, clippy, unit tests, golden replays, and the real-codex
# suites against the pinned codex, then again against the oldest supported,
# each on both transports (the app_server:: suite picks app-server itself).
SUITES := e2e:: faults:: operator:: hosts:: security:: conversations::
test: codex check
	cargo build --quiet --examples
	cargo test --all-targets
	PLEXUM_TEST_TRANSPORT=app-server cargo test --test it -- $(SUITES)
	PLEXUM_TEST_CODEX=$(call codex_bin,$(CODEX_OLDEST)) cargo test --test it -- $(SUITES) app_server::
	PLEXUM_TEST_CODEX=$(call codex_bin,$(CODEX_OLDEST)) PLEXUM_TEST_TRANSPORT=app-server cargo test --test it -- $(SUITES)

# The real-codex suites against each of VERSIONS on both transports, as a
# table. `make compat VERSIONS=latest` asks npm for the newest release.
VERSIONS ?= $(CODEX_OLDEST) 0.145.0 0.150.0 0.160.0 0.169.0 $(CODEX_VERSION)
ifeq ($(VERSIONS),latest)
override VERSIONS := $(shell npm view @openai/codex version)
endif
compat:
	for v in $(VERSIONS); do $(MAKE) -s $(call codex_bin,$$v) || exit 1; done
	cargo build --quiet --examples
	target/debug/examples/compat $(VERSIONS)

check:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

# Rewrite the golden files from the current translation; review with
# `git diff fixtures/`.
bless:
	UPDATE_EXPECT=1 cargo test --test it golden

# Re-record fixtures/{codex,app-server}/<version>/ from the real codex of
# each of RECORD_VERSIONS against the mock server, on both transports; then
# `make bless` and review.
RECORD_VERSIONS ?= $(CODEX_OLDEST) $(CODEX_VERSION)
record:
	cargo build --quiet --examples
	for v in $(RECORD_VERSIONS); do for t in exec app-server; do \
	  $(MAKE) -s $(call codex_bin,$$v) && \
	  PLEXUM_TEST_TRANSPORT=$$t PLEXUM_TEST_CODEX=$(call codex_bin,$$v) cargo test --test it record_fixtures -- --ignored --nocapture || exit 1; \
	done; done

codex: $(call codex_bin,$(CODEX_VERSION)) $(call codex_bin,$(CODEX_OLDEST))

$(CODEX_ROOT)/%/node_modules/.bin/codex:
	mkdir -p $(CODEX_ROOT)/$*
	cd $(CODEX_ROOT)/$* && npm install --no-save --no-audit --no-fund --loglevel=error @openai/codex@$*

clean-codex:
	rm -rf $(CODEX_ROOT)

# Benchmarks against their budgets (release build; never timed asserts in tests).
# BENCH="transports" (or overhead, throughput, latency, startup, slow_host) runs some.
BENCH ?=
bench: codex
	cargo build --release --quiet --bins --example bench
	target/release/examples/bench $(BENCH)

# Fuzz the translator (cargo-fuzz; stable toolchain via RUSTC_BOOTSTRAP).
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	mkdir -p fuzz/corpus/translate
	RUSTC_BOOTSTRAP=1 cargo fuzz run translate fuzz/corpus/translate fixtures/codex/$(CODEX_VERSION) fixtures/codex/0.135.0 fixtures/app-server/$(CODEX_VERSION) -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536

# Install the release binary and, unless one exists, an example config.
PREFIX ?= $(HOME)/.local
CONFIG_DIR ?= $(HOME)/.plexum/plugins/plexum-openai-provider
BIN ?= target/release/plexum-openai-provider
install:
	cargo build --release
	$(MAKE) install-files

install-files:
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/plexum-openai-provider
	install -d $(DESTDIR)$(CONFIG_DIR)
	test -e $(DESTDIR)$(CONFIG_DIR)/config.json || install -m 644 src/config.example.json $(DESTDIR)$(CONFIG_DIR)/config.json

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/plexum-openai-provider
