#!/usr/bin/env bash
# Build the deployable edge worker bundle, reproducibly:
#   edge-worker/build/index.js       (esbuild-bundled JS glue, minified)
#   edge-worker/build/index_bg.wasm  (the shell + core, wasm-opt'ed)
# wrangler.toml's `main` points at index.js; `wrangler deploy` uploads both as they are.
#
# worker-build, wasm-bindgen, wasm-opt and esbuild come from the tool cache (scripts/test-edge
# installs them; versions below) and nothing is downloaded here. The same sources and tool
# versions give byte-identical output: the lockfile is enforced, paths are remapped out of the
# binary, and the build prints the SHA-256 of both files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MCPBOX_CACHE:-$HOME/.cache/mcpbox}"
NODE_TOOLS="${MCPBOX_EDGE_NODE:-$CACHE/edge-node}/node_modules"
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION="$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$here/Cargo.lock")"

fail() { printf 'edge-worker/build.sh: %s\n' "$*" >&2; exit 1; }

export PATH="$CACHE/bin:$PATH"
export CARGO_TARGET_DIR="${MCPBOX_EDGE_TARGET:-$CACHE/target-edge}"
export WASM_BINDGEN_BIN="$CACHE/bin/wasm-bindgen"
export WASM_OPT_BIN="$NODE_TOOLS/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$NODE_TOOLS/@esbuild/linux-x64/bin/esbuild"
# Paths of this checkout and of the cargo registry must not end up in the wasm (panic messages).
export RUSTFLAGS="--remap-path-prefix=$here=/mcpbox/edge-worker --remap-path-prefix=$(dirname "$here")=/mcpbox --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$CARGO_TARGET_DIR=/target"
export SOURCE_DATE_EPOCH=0

[ "$(worker-build --version 2>/dev/null)" = "$WORKER_BUILD_VERSION" ] \
  || fail "worker-build $WORKER_BUILD_VERSION is missing from $CACHE/bin (scripts/test-edge installs it)"
"$WASM_BINDGEN_BIN" --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION" \
  || fail "wasm-bindgen $WASM_BINDGEN_VERSION (the version in Cargo.lock) is missing from $CACHE/bin"
[ -x "$WASM_OPT_BIN" ] || fail "wasm-opt (npm binaryen) is missing from $NODE_TOOLS"
[ -x "$ESBUILD_BIN" ] || fail "esbuild (from npm wrangler) is missing from $NODE_TOOLS"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || fail "the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown"

cd "$here"
worker-build --release -- --locked
for file in build/index.js build/index_bg.wasm; do
  [ -s "$file" ] || fail "$file was not produced"
done
sha256sum build/index.js build/index_bg.wasm
