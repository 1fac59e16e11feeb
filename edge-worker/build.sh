#!/usr/bin/env bash
# Build the deployable edge worker bundle, reproducibly:
#   edge-worker/build/index.js       (esbuild-bundled JS glue, minified)
#   edge-worker/build/index_bg.wasm  (the shell + core, wasm-opt'ed)
# wrangler.toml's `main` points at index.js; `wrangler deploy` uploads both as they are.
#
# worker-build, wasm-bindgen, wasm-opt and esbuild come from the tool cache (scripts/test-edge
# installs them; versions below) and nothing is downloaded here. The same sources and tool
# versions give byte-identical output from any checkout: the lockfile is enforced, the crates are
# compiled from a copy at one fixed path ($MCPBOX_CACHE/edge-src), paths are remapped out of the
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
# Cargo hashes a path crate's absolute location into its symbol names, so the wasm would differ
# between checkouts. Build from a copy at one fixed place instead (only what the bundle needs:
# the shell, the core and `contract`, under a root manifest that lists just those).
src="$CACHE/edge-src"
# Paths of the sources, the cargo registry and the target dir must not end up in the wasm (panic
# messages).
export RUSTFLAGS="--remap-path-prefix=$src=/mcpbox --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$CARGO_TARGET_DIR=/target"
export SOURCE_DATE_EPOCH=0

[ "$(worker-build --version 2>/dev/null)" = "$WORKER_BUILD_VERSION" ] \
  || fail "worker-build $WORKER_BUILD_VERSION is missing from $CACHE/bin (scripts/test-edge installs it)"
"$WASM_BINDGEN_BIN" --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION" \
  || fail "wasm-bindgen $WASM_BINDGEN_VERSION (the version in Cargo.lock) is missing from $CACHE/bin"
[ -x "$WASM_OPT_BIN" ] || fail "wasm-opt (npm binaryen) is missing from $NODE_TOOLS"
[ -x "$ESBUILD_BIN" ] || fail "esbuild (from npm wrangler) is missing from $NODE_TOOLS"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || fail "the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown"

root="$(dirname "$here")"
mkdir -p "$src"
exec 9>"$src.lock"
flock 9  # one build at a time uses the copy
rm -rf "$src/contract" "$src/edge-worker"
mkdir -p "$src/edge-worker"
cp -r "$root/contract" "$src/contract"
cp -r "$here/Cargo.toml" "$here/Cargo.lock" "$here/src" "$here/core" "$src/edge-worker/"
sed 's|^members = .*|members = ["contract", "edge-worker/core"]|' "$root/Cargo.toml" > "$src/Cargo.toml"

(cd "$src/edge-worker" && worker-build --release -- --locked)
for file in index.js index_bg.wasm; do
  [ -s "$src/edge-worker/build/$file" ] || fail "build/$file was not produced"
done
rm -rf "$here/build"
mkdir -p "$here/build"
cp "$src/edge-worker/build/index.js" "$src/edge-worker/build/index_bg.wasm" "$here/build/"
cd "$here"
sha256sum build/index.js build/index_bg.wasm
