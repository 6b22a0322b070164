#!/bin/bash
# Instructions per request (user space) of an outrider binary under callgrind: deterministic,
# unlike wall-clock A/B on a shared 2-CPU machine (±10 % run to run). Needs valgrind and
# h2load (benches/load/run.sh installs h2load), a release build of outrider-upstream-server,
# and a bootstrap with a listener on 127.0.0.1:19000 routing to 127.0.0.1:19100 (admin on any
# port). Usage: benches/load/callgrind.sh BINARY BOOTSTRAP [REQUESTS] [h1|h2c]
# (h2c: 4 connections x 10 streams, prior knowledge; default h1: 4 keep-alive connections)
# Compare two binaries with the same REQUESTS: the difference of the totals over REQUESTS is the
# difference per request (start-up costs the same for both).
set -euo pipefail
B=$1
BOOT=$2
N=${3:-20000}
case "${4:-h1}" in
  h1) LOAD=(--h1 -c 4) ;;
  h2c) LOAD=(-c 4 -m 10) ;;
  *) echo "protocol: h1 or h2c" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UPSTREAM="$ROOT/target/release/outrider-upstream-server"
if [ ! -x "$UPSTREAM" ]; then
  # Without it every request would be a 503, and the count that of the error path.
  echo "missing $UPSTREAM: cargo build --release -p outrider-upstream-server" >&2
  exit 1
fi
OUT=$(mktemp -d)
"$UPSTREAM" --listen 127.0.0.1:19100 --name u --threads 1 > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null || true' EXIT
sleep 0.5
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$B" -c "$BOOT" --concurrency 1 -l warn > "$OUT/proxy.log" 2>&1 &
for _ in $(seq 100); do curl -s -o /dev/null localhost:19000/ && break; sleep 0.3; done
# The status codes show that the requests were proxied (all 2xx), not answered with errors.
h2load "${LOAD[@]}" -n "$N" http://127.0.0.1:19000/bytes/1024 2>&1 | grep -E "^(requests|status codes):"
pkill -INT -f "valgrind.*$(basename "$B") -c" || true
sleep 5
callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | grep "PROGRAM TOTALS"
echo "profile: $OUT/callgrind.out"
