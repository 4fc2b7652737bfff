#!/usr/bin/env bash
# Categorize a small sample the way a CI job would, and act on the exit code.
#   scripts/ci-categorize.sh [INPUT]
# Runs twice: offline (no key), then against a local OpenAI-compatible server (bin/fakeai)
# standing in for the API. Exit codes of coordinator: 0 all records done, 1 some failed,
# 2 usage or input error, 130 interrupted.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
INPUT=${1:-testdata/trials.jsonl}
WORK=$(mktemp -d)
trap 'kill "${FAKE_PID:-}" 2>/dev/null; rm -rf "$WORK"' EXIT

check_run() { # name, exit code, out dir
  local name=$1 code=$2 out=$3
  case $code in
    0)   echo "ok: $name: every record categorized ($(($(wc -l <"$out/final_results.csv") - 1)) rows)";;
    1)   echo "FAIL: $name: some records failed:"; cat "$out/final_failures.csv"; exit 1;;
    2)   echo "FAIL: $name: usage or input error"; exit 2;;
    130) echo "FAIL: $name: interrupted"; exit 130;;
    *)   echo "FAIL: $name: unexpected exit code $code"; exit "$code";;
  esac
}

# 1. Offline: the embedded default categorizer, no API key.
env -u OPENAI_API_KEY "$BIN/coordinator" --workers 4 --input "$INPUT" --out "$WORK/offline" --progress-every 2s
check_run offline $? "$WORK/offline"

# 2. Against a local OpenAI-compatible server, with the key passed in the environment only.
export FAKEAI_API_KEY=ci-key-$$
"$BIN/fakeai" --addr 127.0.0.1:0 >"$WORK/fakeai.out" 2>"$WORK/fakeai.err" &
FAKE_PID=$!
for _ in $(seq 50); do grep -q '^listening on ' "$WORK/fakeai.out" && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/fakeai.out" | head -1)
[ -n "$URL" ] || { echo "FAIL: fakeai did not start"; cat "$WORK/fakeai.err"; exit 1; }
OPENAI_API_KEY=$FAKEAI_API_KEY "$BIN/coordinator" --workers 4 --input "$INPUT" --out "$WORK/api" --base-url "$URL" --progress-every 2s
check_run api $? "$WORK/api"

# 3. Bad input must be refused with exit 2 and leave the output folder untouched.
echo '{"not": "a record with an id"}' >"$WORK/bad.jsonl"
before=$(ls -l "$WORK/api" | md5sum)
env -u OPENAI_API_KEY "$BIN/coordinator" --workers 2 --input "$WORK/bad.jsonl" --out "$WORK/api" 2>"$WORK/bad.err"
code=$?
[ "$code" = 2 ] || { echo "FAIL: bad input gave exit $code, want 2"; cat "$WORK/bad.err"; exit 1; }
[ "$before" = "$(ls -l "$WORK/api" | md5sum)" ] || { echo "FAIL: bad input touched the output folder"; exit 1; }
echo "ok: bad input refused with exit 2: $(tail -1 "$WORK/bad.err")"

# The key must not have leaked into any file the run wrote.
if grep -rl "$FAKEAI_API_KEY" "$WORK/api" "$WORK/offline"; then echo "FAIL: API key found in output files"; exit 1; fi
echo "ok: no API key in output files"
