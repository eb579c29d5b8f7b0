#!/usr/bin/env bash
# Render reset_report.html in headless Chromium and save a screenshot, to check that the page
# draws (no network, no scripts) and to look at it.
#
# Usage: bash scripts/report-screenshot.sh [REPORT.html] [OUT.png]
#   default: run rstscope over testdata/ and a few shared captures into /tmp/rstscope-report
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
    apt-get install -y -qq chromium >/dev/null
fi
REPORT=${1:-}
OUT=${2:-/tmp/rstscope-report/report.png}
if [ -z "$REPORT" ]; then
    cargo build -q -p rstscope
    mkdir -p /tmp/rstscope-report
    inputs=(testdata)
    [ -d ../shared/captures/esnet-curated ] && inputs+=(../shared/captures/esnet-curated)
    target/debug/rstscope -q --sensor-from prefix -o /tmp/rstscope-report "${inputs[@]}" || true
    REPORT=/tmp/rstscope-report/reset_report.html
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1100,2200 \
    --screenshot="$OUT" "file://$(realpath "$REPORT")" 2>/dev/null
test -s "$OUT"
echo "screenshot: $OUT"
