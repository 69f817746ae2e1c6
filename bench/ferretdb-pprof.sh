#!/bin/sh
# FerretDB with its Go pprof listener on, for profiling the embedded store under the bench:
#   FERRETDB_BIN=bench/ferretdb-pprof.sh FERRETDB_PPROF_ADDR=127.0.0.1:18719 node dist/bench/history-repro.js
#   go tool pprof -top <ferretdb binary> 'http://127.0.0.1:18719/debug/pprof/profile?seconds=15'
# The gateway starts FerretDB with --debug-addr=- (no listener); this swaps in FERRETDB_PPROF_ADDR.
# FERRETDB_REAL_BIN: the binary (default: the build cache of scripts/build-ferretdb.mjs).
real=${FERRETDB_REAL_BIN:-$HOME/.cache/iot-gateway/ferretdb-v1.24.2/bin/ferretdb}
for arg in "$@"; do
  shift
  if [ "$arg" = "--debug-addr=-" ]; then set -- "$@" "--debug-addr=${FERRETDB_PPROF_ADDR:-127.0.0.1:18719}"; else set -- "$@" "$arg"; fi
done
exec "$real" "$@"
