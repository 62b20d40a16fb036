#!/usr/bin/env bash
# A RabbitMQ broker of its own for the integration tests of inputs.amqp and
# outputs.amqp:
#
#   scripts/rabbitmq.sh start    install rabbitmq-server where missing and
#                                start a node on 127.0.0.1
#   scripts/rabbitmq.sh stop     stop the node this script started (by its pid)
#   scripts/rabbitmq.sh status   say whether it runs; exit 1 when it does not
#   scripts/rabbitmq.sh env      print the env file the tests read
#
# It never touches the system service. The node has its own name
# (flowline-test@localhost), its own Erlang port mapper (epmd, started by
# this script on a port of its own, loopback only, and stopped by its pid),
# its own AMQP and distribution ports on 127.0.0.1, no management plugin,
# and keeps everything under $FLOWLINE_RABBITMQ_DIR (default
# /tmp/flowline-rabbitmq): mnesia/ (the queues), log/, the Erlang cookie,
# the pid files, the ports, and `env`, which the tests read:
#
#   FLOWLINE_TEST_AMQP_URL=amqp://flowline:flowline@127.0.0.1:PORT/
#   FLOWLINE_TEST_AMQP_PORT / _USER / _PASSWORD / _SCRIPT / _DIR
#   FLOWLINE_TEST_AMQP_PMACCT_HOST=127.0.0.71 (port 5672, for nfacctd, whose
#   amqp plugin cannot be given a port; empty when that address was taken)
#   FLOWLINE_TEST_AMQPS_URL / _AMQP_CA: a TLS listener and the CA that signed
#   its certificate (made with openssl under tls/; empty without openssl)
#
# A restart (stop then start) keeps the data directory and the ports, so the
# outage test can stop the broker and bring the same one back with its
# durable queues and persistent messages.
set -euo pipefail

DIR=${FLOWLINE_RABBITMQ_DIR:-/tmp/flowline-rabbitmq}
NODE=${FLOWLINE_RABBITMQ_NODE:-flowline-test@localhost}
PIDFILE="$DIR/rabbitmq.pid"
EPMD_PIDFILE="$DIR/epmd.pid"
PORTFILE="$DIR/ports"
ENVFILE="$DIR/env"
USER_NAME=flowline
USER_PASS=flowline
PMACCT_ADDR=${FLOWLINE_RABBITMQ_PMACCT_ADDR:-127.0.0.71}
RMQ_BIN=/usr/lib/rabbitmq/bin
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "scripts/rabbitmq.sh: $*" >&2; }

# shellcheck source=lib/server.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/server.sh"

install_server() {
  if [ -x "$RMQ_BIN/rabbitmq-server" ] && command -v epmd >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "please install rabbitmq-server (apt-get install -y rabbitmq-server)"
    return 1
  fi
  log "installing rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # The package's own service is never started here (no systemd in CI; on a
  # machine with one, it keeps its own node, ports and data apart from ours).
  apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
}

running() { alive "$PIDFILE"; }

ports() {
  if [ ! -s "$PORTFILE" ]; then
    echo "AMQP_PORT=$(free_port)" >"$PORTFILE"
    echo "DIST_PORT=$(free_port)" >>"$PORTFILE"
    echo "EPMD_PORT=$(free_port)" >>"$PORTFILE"
  fi
  grep -q '^TLS_PORT=' "$PORTFILE" || echo "TLS_PORT=$(free_port)" >>"$PORTFILE"
  # shellcheck disable=SC1090
  . "$PORTFILE"
}

# tls_files makes a CA and a server certificate for localhost/127.0.0.1
# (once, with openssl) for the TLS listener; without openssl there is none.
tls_files() {
  command -v openssl >/dev/null 2>&1 || return 1
  local d="$DIR/tls"
  [ -s "$d/server.pem" ] && return 0
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flowline test CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile san.ext -out server.pem
    chmod 644 server.key
  ) >"$DIR/log/tls.log" 2>&1 || { log "could not make TLS files (see $DIR/log/tls.log)"; return 1; }
}

# node_env exports what rabbitmq-server and rabbitmqctl need to find this
# node and nothing of the system's.
node_env() {
  ports
  export HOME="$DIR" # the Erlang cookie lives in $HOME/.erlang.cookie
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export ERL_EPMD_PORT="$EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Erlang distribution (node <-> rabbitmqctl) on loopback only, too.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/log"
  export RABBITMQ_PID_FILE="$PIDFILE"
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq" # .conf is appended
  export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" # none: no management plugin
}

ctl() { "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"; }

start() {
  install_server
  mkdir -p "$DIR/log" "$DIR/mnesia"
  node_env
  if running; then
    log "already running (pid $(cat "$PIDFILE"), port $AMQP_PORT)"
    write_env
    return 0
  fi
  : >"$RABBITMQ_CONF_ENV_FILE"
  echo '[].' >"$RABBITMQ_ADVANCED_CONFIG_FILE"
  echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  # The user exists from the first boot on; loopback_users keeps the default
  # guest account to loopback (it is the default; said here to be plain).
  # pmacct's amqp plugin always connects to port 5672 (only amqp_host is
  # configurable): a second listener on a loopback address of its own serves
  # it, when nothing holds that address and port (a system broker on
  # 0.0.0.0:5672 would); the tests that run nfacctd need it.
  local pmacct_listener=""
  PMACCT_HOST=""
  if ! (exec 3<>"/dev/tcp/$PMACCT_ADDR/5672") 2>/dev/null; then
    pmacct_listener="listeners.tcp.2 = $PMACCT_ADDR:5672"
    PMACCT_HOST=$PMACCT_ADDR
  fi
  echo "$PMACCT_HOST" >"$DIR/pmacct_host"
  # A TLS listener for the tests of tls_ca and amqps:// URLs.
  local tls_listener=""
  if tls_files; then
    tls_listener="listeners.ssl.1 = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $DIR/tls/ca.pem
ssl_options.certfile = $DIR/tls/server.pem
ssl_options.keyfile = $DIR/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false"
    echo "$TLS_PORT" >"$DIR/tls_port"
  else
    rm -f "$DIR/tls_port"
  fi
  cat >"$DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
$pmacct_listener
$tls_listener
default_user = $USER_NAME
default_pass = $USER_PASS
default_vhost = /
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.file.level = warning
log.console = false
EOF
  if [ ! -s "$DIR/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
    chmod 400 "$DIR/.erlang.cookie"
  fi
  if ! alive "$EPMD_PIDFILE"; then
    epmd -address 127.0.0.1 -port "$EPMD_PORT" </dev/null >"$DIR/log/epmd.log" 2>&1 &
    echo $! >"$EPMD_PIDFILE"
  fi
  # rabbitmq-server execs erl: the pid of this background job is the node's.
  # It runs in $DIR, where an erl_crash.dump would land.
  (cd "$DIR" && exec "$RMQ_BIN/rabbitmq-server") </dev/null >"$DIR/log/console.log" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 120))
  until ctl await_startup --timeout 5 >/dev/null 2>&1; do
    if ! running; then
      log "rabbitmq-server exited:"; tail -n 30 "$DIR/log/console.log" >&2 || true; stop_epmd; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "rabbitmq-server did not start within 120s:"; tail -n 30 "$DIR/log/console.log" >&2 || true; return 1
    fi
    sleep 0.5
  done
  write_env
  log "running: pid $(cat "$PIDFILE"), 127.0.0.1:$AMQP_PORT, env in $ENVFILE"
}

write_env() {
  ports
  cat >"$ENVFILE" <<EOF
FLOWLINE_TEST_AMQP_URL=amqp://$USER_NAME:$USER_PASS@127.0.0.1:$AMQP_PORT/
FLOWLINE_TEST_AMQP_PORT=$AMQP_PORT
FLOWLINE_TEST_AMQP_USER=$USER_NAME
FLOWLINE_TEST_AMQP_PASSWORD=$USER_PASS
FLOWLINE_TEST_AMQP_SCRIPT=$SELF
FLOWLINE_TEST_AMQP_DIR=$DIR
FLOWLINE_TEST_AMQP_PMACCT_HOST=$(cat "$DIR/pmacct_host" 2>/dev/null)
FLOWLINE_TEST_AMQPS_URL=$([ -s "$DIR/tls_port" ] && echo "amqps://$USER_NAME:$USER_PASS@localhost:$(cat "$DIR/tls_port")/")
FLOWLINE_TEST_AMQP_CA=$([ -s "$DIR/tls_port" ] && echo "$DIR/tls/ca.pem")
EOF
}

stop_epmd() {
  if alive "$EPMD_PIDFILE"; then
    local pid
    pid=$(cat "$EPMD_PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$EPMD_PIDFILE"
}

stop() {
  if ! running; then
    log "not running"
    stop_epmd
    return 0
  fi
  node_env
  local pid
  pid=$(cat "$PIDFILE")
  # SIGTERM makes the node stop cleanly (it syncs its queues), as
  # `rabbitmqctl stop` would, without a second Erlang VM.
  kill -TERM "$pid"
  if ! wait_gone "$pid" 60; then
    log "rabbitmq (pid $pid) did not stop within 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$PIDFILE"
  stop_epmd
  log "stopped (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
  if running; then ports; echo "running: pid $(cat "$PIDFILE"), port $AMQP_PORT"; else echo "not running"; exit 1; fi ;;
env) cat "$ENVFILE" ;;
*) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
