#!/usr/bin/env bash
# A MariaDB server of its own for the integration tests of outputs.mysql:
#
#   scripts/mariadb.sh start    install mariadb-server where missing, initialize
#                               a data directory, start mariadbd on 127.0.0.1
#   scripts/mariadb.sh stop     stop the server this script started (by its pid)
#   scripts/mariadb.sh status   say whether it runs; exit 1 when it does not
#   scripts/mariadb.sh env      print the env file the tests read
#
# It never touches the system service. Everything lives under
# $FLOWLINE_MARIADB_DIR (default /tmp/flowline-mariadb): data/, the socket,
# the pid file, error.log, the port, and `env`, which the tests read:
#
#   FLOWLINE_TEST_MYSQL_DSN=flowline:flowline@tcp(127.0.0.1:PORT)/
#   FLOWLINE_TEST_MYSQL_HOST / _PORT / _USER / _PASSWORD / _SCRIPT / _DIR
#
# A restart (stop then start) keeps the data directory and the port, so the
# outage test can stop the server and bring the same one back.
set -euo pipefail

DIR=${FLOWLINE_MARIADB_DIR:-/tmp/flowline-mariadb}
DATA="$DIR/data"
SOCK="$DIR/mariadbd.sock"
PIDFILE="$DIR/mariadbd.pid"
PORTFILE="$DIR/port"
ENVFILE="$DIR/env"
USER_NAME=flowline
USER_PASS=flowline
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "scripts/mariadb.sh: $*" >&2; }

# shellcheck source=lib/server.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/server.sh"

running() { alive "$PIDFILE"; }

stop() { stop_pidfile "$PIDFILE" mariadbd; }

find_bin() {
  for b in "$@"; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
    for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
      if [ -x "$d/$b" ]; then echo "$d/$b"; return 0; fi
    done
  done
  return 1
}

install_server() {
  if find_bin mariadbd mysqld >/dev/null && find_bin mariadb-install-db mysql_install_db >/dev/null &&
    find_bin mariadb mysql >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "please install mariadb-server (apt-get install -y mariadb-server)"
    return 1
  fi
  log "installing mariadb-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null
}

client() { "$(find_bin mariadb mysql)" --no-defaults --protocol=socket -S "$SOCK" -uroot "$@"; }

start() {
  install_server
  mkdir -p "$DIR"
  if running; then
    log "already running (pid $(cat "$PIDFILE"), port $(cat "$PORTFILE"))"
    write_env
    return 0
  fi
  if [ ! -d "$DATA/mysql" ]; then
    rm -rf "$DATA"
    "$(find_bin mariadb-install-db mysql_install_db)" --no-defaults --user="$(id -un)" --datadir="$DATA" \
      --auth-root-authentication-method=socket --skip-test-db >"$DIR/install.log" 2>&1 ||
      { log "mariadb-install-db failed:"; cat "$DIR/install.log" >&2; return 1; }
  fi
  [ -s "$PORTFILE" ] || free_port >"$PORTFILE"
  local port
  port=$(cat "$PORTFILE")
  # Settings for a write-heavy flow store (see plugins/outputs/mysql/README.md):
  # group commit without a flush per commit, a large redo log, no binary log.
  "$(find_bin mariadbd mysqld)" --no-defaults --user="$(id -un)" --datadir="$DATA" \
    --socket="$SOCK" --port="$port" --bind-address=127.0.0.1 --pid-file="$PIDFILE" \
    --log-error="$DIR/error.log" --skip-log-bin --skip-name-resolve \
    --innodb-buffer-pool-size=512M --innodb-log-file-size=512M --innodb-log-buffer-size=64M \
    --innodb-flush-log-at-trx-commit=2 --innodb-io-capacity=2000 \
    --max-allowed-packet=64M --max-connections=200 </dev/null >/dev/null 2>&1 &
  local deadline=$((SECONDS + 90))
  until client -e 'SELECT 1' >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "mariadbd did not answer within 90s:"; tail -n 30 "$DIR/error.log" >&2 || true; return 1
    fi
    sleep 0.2
  done
  client -e "CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$USER_PASS';
    CREATE USER IF NOT EXISTS '$USER_NAME'@'localhost' IDENTIFIED BY '$USER_PASS';
    GRANT ALL ON *.* TO '$USER_NAME'@'127.0.0.1' WITH GRANT OPTION;
    GRANT ALL ON *.* TO '$USER_NAME'@'localhost' WITH GRANT OPTION;"
  write_env
  log "running: pid $(cat "$PIDFILE"), 127.0.0.1:$port, env in $ENVFILE"
}

write_env() {
  local port
  port=$(cat "$PORTFILE")
  cat >"$ENVFILE" <<EOF
FLOWLINE_TEST_MYSQL_DSN=$USER_NAME:$USER_PASS@tcp(127.0.0.1:$port)/
FLOWLINE_TEST_MYSQL_HOST=127.0.0.1
FLOWLINE_TEST_MYSQL_PORT=$port
FLOWLINE_TEST_MYSQL_USER=$USER_NAME
FLOWLINE_TEST_MYSQL_PASSWORD=$USER_PASS
FLOWLINE_TEST_MYSQL_SCRIPT=$SELF
FLOWLINE_TEST_MYSQL_DIR=$DIR
EOF
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
  if running; then echo "running: pid $(cat "$PIDFILE"), port $(cat "$PORTFILE")"; else echo "not running"; exit 1; fi ;;
env) cat "$ENVFILE" ;;
*) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
