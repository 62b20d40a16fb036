#!/usr/bin/env bash
# A VictoriaMetrics of its own (Debian's victoria-metrics package) for the
# integration tests of outputs.influxdb, which writes to it with the same
# line protocol as to InfluxDB:
#
#   scripts/victoriametrics.sh start    install victoria-metrics where missing
#                                       and start it on 127.0.0.1
#   scripts/victoriametrics.sh stop     stop the server this script started (by its pid)
#   scripts/victoriametrics.sh status   say whether it runs; exit 1 when it does not
#   scripts/victoriametrics.sh env      print the env file the tests read
#
# It never touches the system service. It listens on loopback only (HTTP:
# the write and query APIs); VictoriaMetrics has no users, so loopback is its
# access control here. No deduplication: outputs.influxdb rewrites a bin's
# running total at every refresh and VictoriaMetrics keeps every rewrite, so
# queries take max_over_time over a bin (the final total), which is exact;
# the -dedup.minScrapeInterval of Debian's 1.79 keeps an arbitrary one of
# samples with equal timestamps. -search.latencyOffset=0s and
# -search.disableCache let a test see what it just wrote.
# Everything lives under $FLOWLINE_VM_DIR (default /tmp/flowline-victoriametrics):
# data/, the pid file, vm.log, the port, and `env`, which the tests read:
#
#   FLOWLINE_TEST_VM_URL=http://127.0.0.1:PORT
#   FLOWLINE_TEST_VM_SCRIPT / _DIR
set -euo pipefail

DIR=${FLOWLINE_VM_DIR:-/tmp/flowline-victoriametrics}
PIDFILE="$DIR/vm.pid"
PORTFILE="$DIR/port"
ENVFILE="$DIR/env"
BIN=/usr/bin/victoria-metrics
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "scripts/victoriametrics.sh: $*" >&2; }

# shellcheck source=lib/server.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/server.sh"

running() { alive "$PIDFILE"; }

stop() { stop_pidfile "$PIDFILE" victoria-metrics; }

install_server() {
  [ -x "$BIN" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "please install victoria-metrics (apt-get install -y victoria-metrics)"
    return 1
  fi
  log "installing victoria-metrics"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends victoria-metrics >/dev/null
}

start() {
  install_server
  mkdir -p "$DIR"
  if running; then
    log "already running (pid $(cat "$PIDFILE"), port $(cat "$PORTFILE"))"
    write_env
    return 0
  fi
  [ -s "$PORTFILE" ] || free_port >"$PORTFILE"
  local port
  port=$(cat "$PORTFILE")
  "$BIN" -httpListenAddr="127.0.0.1:$port" -storageDataPath="$DIR/data" -retentionPeriod=100y \
    -search.latencyOffset=0s -search.disableCache \
    -loggerLevel=WARN </dev/null >>"$DIR/vm.log" 2>&1 &
  local pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      log "victoria-metrics did not answer within 60s:"; tail -n 30 "$DIR/vm.log" >&2 || true
      kill -TERM "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  echo "$pid" >"$PIDFILE"
  write_env
  log "running: pid $pid, 127.0.0.1:$port, env in $ENVFILE"
}

write_env() {
  cat >"$ENVFILE" <<EOT
FLOWLINE_TEST_VM_URL=http://127.0.0.1:$(cat "$PORTFILE")
FLOWLINE_TEST_VM_SCRIPT=$SELF
FLOWLINE_TEST_VM_DIR=$DIR
EOT
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
  if running; then echo "running: pid $(cat "$PIDFILE"), port $(cat "$PORTFILE")"; else echo "not running"; exit 1; fi ;;
env) cat "$ENVFILE" ;;
*) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
