# Shared helpers of the run.sh scripts: build the binaries, start processes
# on loopback, stop them by PID, and compare the printed sums with flowgen's
# totals. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/flowline-cluster.XXXXXX)}
# BASE is the first of the loopback ports the scripts use (BASE..BASE+20).
BASE=${BASE:-$((20000 + RANDOM % 30000))}
PIDS=()
OK=0

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ $OK == 1 && -z "${KEEP:-}" ]]; then
		rm -rf "$WORK"
	else
		echo "logs and files kept in $WORK"
	fi
}
trap cleanup EXIT

build() {
	if [[ -z "${FLOWLINE:-}" ]]; then
		FLOWLINE=$WORK/flowline
		(cd "$ROOT" && go build -o "$FLOWLINE" ./cmd/flowline)
	fi
	if [[ -z "${FLOWGEN:-}" ]]; then
		FLOWGEN=$WORK/flowgen
		(cd "$ROOT" && go build -o "$FLOWGEN" ./cmd/flowgen)
	fi
}

# start NAME CONFIG [VAR=value...]: runs flowline with the environment given
# and waits (at most 20 s) until its pipeline runs. The PID is in PID_<NAME>.
start() {
	local name=$1 config=$2
	shift 2
	mkdir -p "$WORK/$name"
	(cd "$WORK/$name" && exec env "$@" "$FLOWLINE" run --config "$config" >"$WORK/$name/log" 2>&1) &
	local pid=$!
	PIDS+=("$pid")
	printf -v "PID_${name//-/_}" '%s' "$pid"
	for _ in $(seq 200); do
		if grep -q "pipeline running" "$WORK/$name/log"; then
			sleep 0.3
			if kill -0 "$pid" 2>/dev/null; then
				echo "started $name (pid $pid)"
				return 0
			fi
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		sleep 0.1
	done
	echo "$name did not start:" >&2
	cat "$WORK/$name/log" >&2
	exit 1
}

# stop PID: SIGTERM by PID and wait (at most 30 s) for a clean exit.
stop() {
	local pid=$1
	kill -TERM "$pid"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "pid $pid did not stop" >&2
	exit 1
}

# check TOTALS_JSON FILE...: sums packets and bytes over the print files and
# compares them with flowgen's totals.
check() {
	local totals=$1
	shift
	local want_p want_b got_p got_b
	want_p=$(jq -r .flow_packets <<<"$totals")
	want_b=$(jq -r .flow_bytes <<<"$totals")
	got_p=$(cat "$@" | jq -s 'map(.packets) | add // 0')
	got_b=$(cat "$@" | jq -s 'map(.bytes) | add // 0')
	for f in "$@"; do
		echo "  $(basename "$f"): $(jq -s 'map(.packets) | add // 0' "$f") packets"
	done
	echo "flowgen sent $want_p packets, $want_b bytes; collectors stored $got_p packets, $got_b bytes"
	if [[ "$want_p" != "$got_p" || "$want_b" != "$got_b" ]]; then
		echo "MISMATCH" >&2
		exit 1
	fi
	echo "OK: totals exact"
	OK=1
}
