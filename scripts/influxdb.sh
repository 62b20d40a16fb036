#!/usr/bin/env bash
# An InfluxDB 1.8.10 of its own for the integration tests of outputs.influxdb:
#
#   scripts/influxdb.sh start    build influxd where missing (cached), write a
#                                config and start it on 127.0.0.1
#   scripts/influxdb.sh stop     stop the server this script started (by its pid)
#   scripts/influxdb.sh status   say whether it runs; exit 1 when it does not
#   scripts/influxdb.sh env      print the env file the tests read
#
# The binary is built with the Go module proxy
# (go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10, about
# 2.5 minutes on 2 cores) into $FLOWLINE_CACHE (default /var/cache/flowline
# when writable, else $HOME/.cache/flowline) and reused by later runs.
#
# The server listens on loopback only (HTTP and its RPC port), with
# authentication on: the script creates the admin user flowline/flowline
# (InfluxDB lets the first user be created without credentials), which the
# tests send as the 1.8 compatibility token "flowline:flowline". It keeps
# everything under $FLOWLINE_INFLUXDB_DIR (default /tmp/flowline-influxdb):
# meta/, data/, wal/, influxd.conf, the pid file, influxd.log, the ports, and
# `env`, which the tests read:
#
#   FLOWLINE_TEST_INFLUXDB_URL=http://127.0.0.1:PORT
#   FLOWLINE_TEST_INFLUXDB_TOKEN=flowline:flowline
#   FLOWLINE_TEST_INFLUXDB_SCRIPT / _DIR
#
# A restart (stop then start) keeps the data directory and the ports, so the
# outage test can stop the server and bring the same one back.
set -euo pipefail

VERSION=1.8.10
DIR=${FLOWLINE_INFLUXDB_DIR:-/tmp/flowline-influxdb}
PIDFILE="$DIR/influxd.pid"
PORTFILE="$DIR/ports"
ENVFILE="$DIR/env"
CONF="$DIR/influxd.conf"
USER_NAME=flowline
USER_PASS=flowline
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "scripts/influxdb.sh: $*" >&2; }

# shellcheck source=lib/server.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/server.sh"

running() { alive "$PIDFILE"; }

stop() { stop_pidfile "$PIDFILE" influxd; }

cache_dir() {
  if [ -n "${FLOWLINE_CACHE:-}" ]; then
    echo "$FLOWLINE_CACHE"
  elif mkdir -p /var/cache/flowline 2>/dev/null && [ -w /var/cache/flowline ]; then
    echo /var/cache/flowline
  else
    echo "${HOME:-/tmp}/.cache/flowline"
  fi
}

BIN="$(cache_dir)/influxdb-$VERSION/influxd"

build() {
  [ -x "$BIN" ] && return 0
  command -v go >/dev/null 2>&1 || { log "go is needed to build influxd $VERSION"; return 1; }
  local bindir tmp
  bindir=$(dirname "$BIN")
  mkdir -p "$bindir"
  tmp=$(mktemp -d)
  log "building influxd $VERSION into $bindir (once; about 2.5 minutes)"
  # Outside the repository, so that Flowline's go.mod plays no part.
  if ! (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/influxdata/influxdb/cmd/influxd@v$VERSION") >"$tmp/build.log" 2>&1; then
    log "go install failed:"; tail -n 30 "$tmp/build.log" >&2; rm -rf "$tmp"; return 1
  fi
  mv "$tmp/influxd" "$BIN"
  rm -rf "$tmp"
}

http_port() { cut -d' ' -f1 "$PORTFILE"; }

write_conf() {
  local http rpc
  read -r http rpc <"$PORTFILE"
  cat >"$CONF" <<EOF
# Written by scripts/influxdb.sh: loopback only, authentication on.
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$DIR/meta"
[data]
  dir = "$DIR/data"
  wal-dir = "$DIR/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$http"
  auth-enabled = true
  log-enabled = false
  flux-enabled = false
  pprof-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
EOF
}

ping() { curl -fsS -o /dev/null "http://127.0.0.1:$(http_port)/ping" 2>/dev/null; }

start() {
  build
  mkdir -p "$DIR"
  if running; then
    log "already running (pid $(cat "$PIDFILE"), port $(http_port))"
    write_env
    return 0
  fi
  [ -s "$PORTFILE" ] || echo "$(free_port) $(free_port)" >"$PORTFILE"
  write_conf
  "$BIN" run -config "$CONF" </dev/null >>"$DIR/influxd.log" 2>&1 &
  local pid=$!
  local deadline=$((SECONDS + 60))
  until ping; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      log "influxd did not answer within 60s:"; tail -n 30 "$DIR/influxd.log" >&2 || true
      kill -TERM "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  echo "$pid" >"$PIDFILE"
  # The first user may be created without credentials; afterwards this
  # fails harmlessly (the user exists), which the check below confirms.
  curl -sS -o /dev/null -XPOST "http://127.0.0.1:$(http_port)/query" \
    --data-urlencode "q=CREATE USER $USER_NAME WITH PASSWORD '$USER_PASS' WITH ALL PRIVILEGES" || true
  if ! curl -fsS -o /dev/null -u "$USER_NAME:$USER_PASS" "http://127.0.0.1:$(http_port)/query" --data-urlencode "q=SHOW DATABASES"; then
    log "the user $USER_NAME cannot log in (a data directory from elsewhere? remove $DIR)"
    return 1
  fi
  write_env
  log "running: pid $pid, 127.0.0.1:$(http_port), env in $ENVFILE"
}

write_env() {
  cat >"$ENVFILE" <<EOF
FLOWLINE_TEST_INFLUXDB_URL=http://127.0.0.1:$(http_port)
FLOWLINE_TEST_INFLUXDB_TOKEN=$USER_NAME:$USER_PASS
FLOWLINE_TEST_INFLUXDB_SCRIPT=$SELF
FLOWLINE_TEST_INFLUXDB_DIR=$DIR
EOF
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
status)
  if running; then echo "running: pid $(cat "$PIDFILE"), port $(http_port)"; else echo "not running"; exit 1; fi ;;
env) cat "$ENVFILE" ;;
*) echo "usage: $0 start|stop|status|env|build" >&2; exit 2 ;;
esac
