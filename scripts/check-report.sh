#!/usr/bin/env bash
# Check a run's report.html in a real browser (headless Chromium), the way a person would see it.
#   scripts/check-report.sh DIR [SCREENSHOT.png]
# Renders DIR/report.html to a screenshot (default DIR/report.png), dumps the DOM after rendering
# and checks that every section is there, that the charts rendered as SVG and that the page
# references nothing on the network. Exits 0 when all is well, 1 when a check fails, 2 on usage
# errors or when Chromium is missing and cannot be installed.
# Chromium is installed with apt-get when missing, only when running as root with apt-get (CI).
set -euo pipefail

usage() { echo "usage: $0 DIR [SCREENSHOT.png]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
DIR=$1
REPORT="$DIR/report.html"
[ -f "$REPORT" ] || { echo "FAIL: $REPORT does not exist (write it with report.Write, or run the coordinator)" >&2; exit 1; }
REPORT=$(cd "$(dirname "$REPORT")" && pwd)/report.html
SHOT=${2:-$DIR/report.png}
TIMEOUT=${CHECK_REPORT_TIMEOUT:-90}

find_chromium() {
  for c in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

if ! CHROME=$(find_chromium); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "chromium is missing: installing it with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q chromium >&2
  fi
  CHROME=$(find_chromium) || {
    echo "FAIL: chromium is not installed; install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2
    exit 2
  }
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# No network at all: every host name resolves to nothing.
FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-extensions --hide-scrollbars
  '--host-resolver-rules=MAP * ~NOTFOUND')

run_chrome() { # profile-name, args...
  local profile="$WORK/$1"; shift
  timeout "$TIMEOUT" "$CHROME" "${FLAGS[@]}" --user-data-dir="$profile" "$@"
}

fail=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

# One start renders the page, dumps the DOM and takes the screenshot; older Chromiums that do only
# one of them per start get a second start for the screenshot.
rm -f "$SHOT"
if ! run_chrome dom --dump-dom --screenshot="$SHOT" --window-size=1280,2000 "file://$REPORT" >"$WORK/dom.html" 2>"$WORK/dom.log"; then
  echo "FAIL: chromium could not render the page:" >&2; tail -20 "$WORK/dom.log" >&2; exit 1
fi
if [ ! -s "$SHOT" ] && ! run_chrome shot --screenshot="$SHOT" --window-size=1280,2000 "file://$REPORT" >"$WORK/shot.log" 2>&1; then
  echo "FAIL: chromium could not take a screenshot:" >&2; tail -20 "$WORK/shot.log" >&2; exit 1
fi

png_ok() { [ -s "$SHOT" ] && [ "$(head -c 8 "$SHOT" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
check "screenshot $SHOT is a PNG" png_ok
for id in summary categories timeline latency tokens cost failures; do
  check "section #$id is in the rendered page" grep -q "id=\"$id\"" "$WORK/dom.html"
done
check "the status badge is shown" grep -q 'class="badge' "$WORK/dom.html"
check "charts rendered as inline SVG" grep -q '<svg' "$WORK/dom.html"
no_network() { ! grep -Eiq '(src|href|action|poster)=["'"'"']?[[:space:]]*(https?:)?//|url\([[:space:]]*["'"'"']?(https?:)?//|@import' "$WORK/dom.html"; }
check "no resource is loaded from the network (src/href/url/@import)" no_network
no_tags() { ! grep -Eiq '<(script|link|iframe|img|object|embed)[[:space:]>]' "$WORK/dom.html"; }
check "no script, stylesheet link, frame or image element" no_tags

if [ "$fail" != 0 ]; then
  echo "report check failed: $REPORT (rendered DOM: keep it with CHECK_REPORT_KEEP=1)" >&2
  if [ "${CHECK_REPORT_KEEP:-}" = 1 ]; then cp "$WORK/dom.html" "$DIR/report.dom.html"; fi
  exit 1
fi
echo "report ok: $REPORT (screenshot $SHOT)"
