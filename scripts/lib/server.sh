# Shared by the scripts that run a test server of their own (mariadb.sh,
# rabbitmq.sh, influxdb.sh, victoriametrics.sh): free ports, pid files and
# stopping by pid. Source it after defining log().

# free_port prints a loopback TCP port nobody listens on (bounded tries).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  log "no free port found"
  return 1
}

# alive PIDFILE: the process the pid file names runs.
alive() {
  [ -f "$1" ] || return 1
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_gone PID SECONDS: wait until the process is gone; 1 if it is not.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.2
  done
}

# stop_pidfile PIDFILE NAME: SIGTERM to the pid in PIDFILE, SIGKILL after
# 60 s, then remove the file. Never by process name.
stop_pidfile() {
  if ! alive "$1"; then
    log "not running"
    return 0
  fi
  local pid
  pid=$(cat "$1")
  kill -TERM "$pid"
  if ! wait_gone "$pid" 60; then
    log "$2 (pid $pid) did not stop within 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$1"
  log "stopped (pid $pid)"
}
