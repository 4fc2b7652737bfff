#!/usr/bin/env bash
# Run the benchmarks written up in BENCHMARKS.md (what `make bench` runs; about 18 minutes on
# 2 cores). Builds bin/ first, then runs the bench program, which starts the real bin/coordinator
# against an in-process fake OpenAI-compatible server and offline.
#   scripts/bench.sh                      # every scenario
#   scripts/bench.sh -quick               # smoke version, under 30s
#   scripts/bench.sh -scenario latency    # one of latency, limits, scale
# Raw JSON results go to bench-results/ (gitignored), with the printed Markdown tables beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build
mkdir -p bench-results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
go run ./cmd/bench -bin bin -results bench-results "$@" | tee "bench-results/tables-$stamp.md"
