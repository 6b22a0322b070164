#!/usr/bin/env bash
# Load benchmark: Outrider against nginx and haproxy, one worker each, in front of one fixed
# upstream (outrider-upstream-server), with wrk (HTTP/1.1 keep-alive) and h2load (h2c).
#
#   benches/load/run.sh [--quick] [--proxies "nginx haproxy outrider"] [--no-build]
#
# Installs what is missing from Debian apt (as root), builds the release binaries, pins the
# proxy to CPU 0, the upstream to CPU 1 and the load generator to the remaining CPUs (or shares
# CPU 1 with the upstream on a 2-CPU machine), and prints a table that is also written to
# benches/load/results.md. Everything listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS="$ROOT/benches/load/results.md"

QUICK=0
BUILD=1
PROXIES="nginx haproxy outrider"
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --proxies) PROXIES=${2:?--proxies needs a list}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then
  DURATION=3; WARMUP=1
else
  DURATION=10; WARMUP=2
fi
WRK_CONNECTIONS=64
H2_CONNECTIONS=16
H2_STREAMS=10
REQUEST_PATH=/bytes/1024
READY_TIMEOUT=10

log() { printf '==> %s\n' "$*" >&2; }

# --- processes we start, stopped on exit ------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/outrider-load.XXXXXX")
STARTED_PIDS=()
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    # Bounded: a process that ignores TERM for 5 s is killed.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# Set by free_port and start_proxy.
UPSTREAM_PORT=0 H1_PORT=0 H2_PORT=0 ADMIN_PORT=0 PROXY_PID=0

# --- tools ------------------------------------------------------------------------------------
ensure_tools() {
  local missing=() cmd pkg
  for pair in wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy curl:curl taskset:util-linux; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from apt: ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      echo "missing ${missing[*]} and not root: install them and run again" >&2
      exit 1
    fi
    # Try the existing package lists first; refresh them only if that fails.
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
  fi
  export PATH="$PATH:/usr/sbin:/sbin"
}

# --- ports ------------------------------------------------------------------------------------
# free_port VAR: sets VAR to a port nothing uses on this host and that this script has not
# handed out yet (a variable, not a command substitution, so the list survives).
USED_PORTS=" "
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    case "$USED_PORTS" in *" $port "*) continue ;; esac
    if ! ss -Htan "( sport = :$port )" 2>/dev/null | grep -q .; then
      USED_PORTS+="$port "
      printf -v "$1" '%s' "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# --- CPUs -------------------------------------------------------------------------------------
NCPU=$(nproc --all)
PROXY_CPU=0
if [ "$NCPU" -ge 3 ]; then
  UPSTREAM_CPU=1; LOAD_CPUS="2-$((NCPU - 1))"; LOAD_THREADS=$((NCPU - 2))
  PINNING="proxy CPU 0, upstream CPU 1, load generator CPUs $LOAD_CPUS"
elif [ "$NCPU" -eq 2 ]; then
  UPSTREAM_CPU=1; LOAD_CPUS=1; LOAD_THREADS=1
  PINNING="proxy CPU 0, upstream and load generator share CPU 1 (only 2 CPUs)"
else
  UPSTREAM_CPU=0; LOAD_CPUS=0; LOAD_THREADS=1
  PINNING="everything on CPU 0 (only 1 CPU): numbers are not meaningful"
fi
[ "$LOAD_THREADS" -gt 4 ] && LOAD_THREADS=4
CLK_TCK=$(getconf CLK_TCK)

# --- /proc measurements (the process and its children: nginx's worker is a child) -------------
tree_pids() {
  local pid=$1 child children=()
  [ -d "/proc/$pid" ] || return 0
  echo "$pid"
  # Each task's `children` file is one line of space-separated pids.
  read -r -a children < <(cat /proc/"$pid"/task/*/children 2>/dev/null | tr '\n' ' ') || true
  for child in "${children[@]}"; do tree_pids "$child"; done
}

cpu_ticks() {
  local total=0 pid stat rest
  for pid in $(tree_pids "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # The command name may contain spaces: fields are counted after its closing parenthesis.
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# Sum of a /proc/<pid>/status field (kB) over the tree.
mem_kb() {
  local field=$1 total=0 pid value
  for pid in $(tree_pids "$2"); do
    value=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${value:-0}))
  done
  echo "$total"
}

mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

# --- readiness --------------------------------------------------------------------------------
# Waits until $1 answers 200 or the deadline passes; sets READY_ERROR.
wait_ready() {
  local url=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT)) status
  READY_ERROR=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      READY_ERROR="exited"
      return 1
    fi
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$status" = 200 ] && return 0
    sleep 0.2
  done
  READY_ERROR="no 200 from $url within ${READY_TIMEOUT}s (last status: ${status:-none})"
  return 1
}

# --- proxy configs ----------------------------------------------------------------------------
write_nginx_conf() {
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # The default (1000) closes each client connection after 1000 requests; h2load does not
  # reconnect, so an h2c run would stop early.
  keepalive_requests 10000000;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream backend {
    server 127.0.0.1:$UPSTREAM_PORT;
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$H1_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  # Cleartext "listen ... http2" is h2c with prior knowledge (HTTP/1.1 is not served there).
  server {
    listen 127.0.0.1:$H2_PORT http2;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

write_haproxy_conf() {
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend h1
  bind 127.0.0.1:$H1_PORT
  default_backend upstream
frontend h2c
  bind 127.0.0.1:$H2_PORT proto h2
  default_backend upstream
backend upstream
  server up 127.0.0.1:$UPSTREAM_PORT
EOF
}

write_outrider_bootstrap() {
  cat >"$WORK/outrider.yaml" <<EOF
node: { id: load-bench, cluster: load-bench }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } }
static_resources:
  listeners:
  - name: bench
    address: { socket_address: { address: 127.0.0.1, port_value: $H1_PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            name: bench
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UPSTREAM_PORT } } }
EOF
}

# Starts proxy $1 pinned to the proxy CPU; sets PROXY_PID, H1_PORT, H2_PORT (0 when the proxy
# cannot serve h2c).
start_proxy() {
  local name=$1
  free_port H1_PORT; free_port H2_PORT
  case "$name" in
    nginx)
      write_nginx_conf
      taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        >"$WORK/nginx.log" 2>&1 &
      ;;
    haproxy)
      write_haproxy_conf
      taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
      ;;
    outrider)
      # Outrider serves HTTP/1.1 and h2c on one port (codec_type AUTO).
      H2_PORT=$H1_PORT
      free_port ADMIN_PORT
      write_outrider_bootstrap
      taskset -c "$PROXY_CPU" "$OUTRIDER_BIN" -c "$WORK/outrider.yaml" --concurrency 1 \
        --log-level warn >"$WORK/outrider.log" 2>&1 &
      ;;
  esac
  PROXY_PID=$!
  STARTED_PIDS+=("$PROXY_PID")
}

# --- load generators --------------------------------------------------------------------------
# Prints "rps p50_ms p99_ms errors".
run_wrk() {
  local url=$1 duration=$2 out
  out=$(taskset -c "$LOAD_CPUS" wrk -t"$LOAD_THREADS" -c"$WRK_CONNECTIONS" -d"${duration}s" \
    --timeout 5s --latency "$url" 2>&1) || true
  echo "$out" >>"$WORK/wrk.out"
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d\n", (rps == "" ? "0" : rps), (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99), errors }
  ' <<<"$out"
}

run_h2load() {
  local url=$1 duration=$2 logfile="$WORK/h2load-requests.log" out
  rm -f "$logfile"
  out=$(taskset -c "$LOAD_CPUS" h2load -t"$LOAD_THREADS" -c"$H2_CONNECTIONS" -m"$H2_STREAMS" \
    -D "$duration" --log-file="$logfile" "$url" 2>&1) || true
  echo "$out" >>"$WORK/h2load.out"
  local rps errors
  rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "req/s,") print $i }' <<<"$out")
  errors=$(awk '
    /^requests:/ { for (i = 1; i <= NF; i++) { if ($(i + 1) == "failed,") f = $i; if ($(i + 1) == "errored,") e = $i } }
    /^status codes:/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^[45]xx/) s += $i }
    END { print f + e + s }' <<<"$out")
  # h2load prints no percentiles: they come from its per-request log (3rd column: microseconds).
  local pcts="- -"
  if [ -s "$logfile" ]; then
    pcts=$(cut -f3 "$logfile" | sort -n | awk '
      { v[NR] = $1 }
      END {
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.2f %.2f", v[i50] / 1000, v[i99] / 1000
      }')
  fi
  echo "${rps:-0} $pcts ${errors:-0}"
}

# Runs one load ($1: wrk|h2load) against $2 and prints "rps p50 p99 errors cpu_s req_per_cpu_s".
measure() {
  local tool=$1 url=$2 before after result rps cpu
  "run_$tool" "$url" "$WARMUP" >/dev/null
  before=$(cpu_ticks "$PROXY_PID")
  result=$("run_$tool" "$url" "$DURATION")
  after=$(cpu_ticks "$PROXY_PID")
  rps=${result%% *}
  cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  awk -v r="$result" -v c="$cpu" -v d="$DURATION" -v rps="$rps" 'BEGIN {
    per = (c > 0) ? sprintf("%.0f", rps * d / c) : "-"
    printf "%s %s %s\n", r, c, per
  }'
}

# --- main -------------------------------------------------------------------------------------
ensure_tools
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
UPSTREAM_BIN="$TARGET_DIR/release/outrider-upstream-server"
OUTRIDER_BIN="$TARGET_DIR/release/outrider"
OUTRIDER_BUILD_ERROR=""
if [ "$BUILD" = 1 ]; then
  log "building release binaries"
  # The upstream is required; Outrider is measured only if it builds.
  cargo build --release -q -p outrider-upstream-server --bin outrider-upstream-server
  if ! cargo build --release -q -p outrider --bin outrider 2>"$WORK/outrider-build.log"; then
    OUTRIDER_BUILD_ERROR="release build failed: $(grep -m1 -E '^error' "$WORK/outrider-build.log" | cut -c1-100)"
  fi
fi
[ -x "$UPSTREAM_BIN" ] || { echo "missing $UPSTREAM_BIN (run without --no-build)" >&2; exit 1; }
[ -x "$OUTRIDER_BIN" ] || OUTRIDER_BUILD_ERROR=${OUTRIDER_BUILD_ERROR:-"no binary at $OUTRIDER_BIN"}

free_port UPSTREAM_PORT
log "upstream on 127.0.0.1:$UPSTREAM_PORT (CPU $UPSTREAM_CPU); $PINNING"
taskset -c "$UPSTREAM_CPU" "$UPSTREAM_BIN" --listen "127.0.0.1:$UPSTREAM_PORT" --name bench \
  >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
STARTED_PIDS+=("$UPSTREAM_PID")
wait_ready "http://127.0.0.1:$UPSTREAM_PORT$REQUEST_PATH" "$UPSTREAM_PID" || {
  echo "upstream did not start: $READY_ERROR" >&2; cat "$WORK/upstream.log" >&2; exit 1; }

declare -A ROW_H1 ROW_H2 ROW_MEM ROW_NOTE
for proxy in $PROXIES; do
  if [ "$proxy" = outrider ] && [ -n "$OUTRIDER_BUILD_ERROR" ]; then
    ROW_NOTE[$proxy]="not available ($OUTRIDER_BUILD_ERROR)"
    log "outrider: ${ROW_NOTE[$proxy]}"
    continue
  fi
  log "$proxy: starting (CPU $PROXY_CPU)"
  start_proxy "$proxy"
  if ! wait_ready "http://127.0.0.1:$H1_PORT$REQUEST_PATH" "$PROXY_PID"; then
    reason=$READY_ERROR
    if [ "$reason" = exited ]; then
      reason="exited: $(grep -v '^\s*$' "$WORK/$proxy.log" 2>/dev/null | tail -n 1 | cut -c1-160)"
    fi
    ROW_NOTE[$proxy]="not available ($reason)"
    log "$proxy: ${ROW_NOTE[$proxy]}"
    stop_pid "$PROXY_PID"
    continue
  fi
  idle_kb=$(mem_kb VmRSS "$PROXY_PID")
  log "$proxy: HTTP/1.1 with wrk (${DURATION}s, $WRK_CONNECTIONS connections)"
  ROW_H1[$proxy]=$(measure wrk "http://127.0.0.1:$H1_PORT$REQUEST_PATH")
  log "$proxy: h2c with h2load (${DURATION}s, $H2_CONNECTIONS connections x $H2_STREAMS streams)"
  ROW_H2[$proxy]=$(measure h2load "http://127.0.0.1:$H2_PORT$REQUEST_PATH")
  peak_kb=$(mem_kb VmHWM "$PROXY_PID")
  ROW_MEM[$proxy]="$(mib "$idle_kb")|$(mib "$peak_kb")"
  stop_pid "$PROXY_PID"
done

# --- report -----------------------------------------------------------------------------------
version_of() {
  case "$1" in
    nginx) nginx -v 2>&1 | sed 's/.*nginx\///' ;;
    haproxy) haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }' ;;
    outrider) git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?" ;;
  esac
}

load_row() {
  local proxy=$1 data=$2
  if [ -n "${ROW_NOTE[$proxy]:-}" ]; then
    printf '| %s | %s | | | | | |\n' "$proxy" "${ROW_NOTE[$proxy]}"
  elif [ -z "$data" ]; then
    printf '| %s | n/a | | | | | |\n' "$proxy"
  else
    # shellcheck disable=SC2086
    set -- $data
    printf '| %s | %.0f | %s ms | %s ms | %s | %s | %s |\n' "$proxy" "$1" "$2" "$3" "$4" "$5" "$6"
  fi
}

{
  echo "# Load benchmark results"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $NCPU CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))."
  echo "One worker per proxy; $PINNING. Upstream: outrider-upstream-server, \`GET $REQUEST_PATH\`."
  echo "Measured ${DURATION}s per run after ${WARMUP}s of warm-up$([ "$QUICK" = 1 ] && echo " (--quick: short runs, noisy numbers)")."
  echo "Versions: $(for p in $PROXIES; do printf '%s %s; ' "$p" "$(version_of "$p")"; done)$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'); h2load $(h2load --version 2>&1 | awk '{ print $NF }')."
  echo
  echo "## HTTP/1.1 keep-alive (wrk, $WRK_CONNECTIONS connections)"
  echo
  echo "| proxy | req/s | p50 | p99 | errors | proxy CPU-s | req per CPU-s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for p in $PROXIES; do load_row "$p" "${ROW_H1[$p]:-}"; done
  echo
  echo "## h2c, prior knowledge (h2load, $H2_CONNECTIONS connections x $H2_STREAMS streams)"
  echo
  echo "| proxy | req/s | p50 | p99 | errors | proxy CPU-s | req per CPU-s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for p in $PROXIES; do load_row "$p" "${ROW_H2[$p]:-}"; done
  echo
  echo "## Memory (proxy process and its children)"
  echo
  echo "| proxy | idle RSS | peak RSS (VmHWM) |"
  echo "|---|---:|---:|"
  for p in $PROXIES; do
    if [ -n "${ROW_MEM[$p]:-}" ]; then
      printf '| %s | %s | %s |\n' "$p" "${ROW_MEM[$p]%%|*}" "${ROW_MEM[$p]#*|}"
    else
      printf '| %s | %s | |\n' "$p" "${ROW_NOTE[$p]:-n/a}"
    fi
  done
} >"$WORK/results.md"

cp "$WORK/results.md" "$RESULTS"
cat "$RESULTS"
log "written to ${RESULTS#"$ROOT"/}"
