#!/usr/bin/env bash
# Regenerates src/gen/ from proto/ with ts-proto. The output is committed, so a fresh clone
# needs neither protoc nor this script; run it after editing a .proto
# (needs Debian's protobuf-compiler: apt-get install protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "gen-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
rm -rf src/gen && mkdir -p src/gen
mapfile -t files < <(cd proto && find . -name '*.proto' | sed 's#^\./##' | sort)
protoc \
  --plugin=protoc-gen-ts_proto=./node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=src/gen \
  --ts_proto_opt=esModuleInterop=true,forceLong=number,env=node,outputServices=grpc-js,outputServices=generic-definitions,useOptionals=messages,oneof=unions-value,useDate=false \
  -I proto "${files[@]}"
echo "gen-proto: generated $(find src/gen -name '*.ts' | wc -l) files from ${#files[@]} protos"
