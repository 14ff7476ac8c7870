#!/usr/bin/env bash
# Installs everything the tests and the demo need on a stock Debian 12 machine, as root.
# - Debian bookworm packages: runc (sid's needs a newer glibc), openssl, wabt (Rego fixture).
# - Debian sid packages, downloaded with a private apt configuration and unpacked into
#   .cache/sid (never a system upgrade): containerd 2.1, docker-registry, notation, cosign,
#   oras, crane, busybox-static.
# Idempotent: a second run with everything present takes well under a second.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache="$here/.cache"
sid="$cache/sid"
stamp="$sid/.complete-v1"
SID_PACKAGES=(containerd docker-registry notation cosign oras crane busybox-static)
HOST_PACKAGES=(runc openssl wabt iproute2 ca-certificates)

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
echo "install-deps: ok ($("$sid/usr/bin/containerd" --version | awk '{print $3}'))" >&2
