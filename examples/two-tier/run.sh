#!/usr/bin/env bash
# The two-tier deployment as plain processes on loopback: a RabbitMQ broker of
# its own (scripts/rabbitmq.sh, its own node, ports and data directory), one
# central writer (inputs.amqp -> duckdb), two edge collectors (netflow ->
# aggregate -> outputs.amqp), flowgen sending to each edge. After the edges
# stop, the central's store must hold exactly what flowgen sent.
# FLOWS=300000 per edge by default; FLOWLINE/FLOWGEN reuse built binaries;
# AMQP_FORMAT=json publishes pmacct's JSON instead of binary batches.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../cluster/lib.sh"
build

export FLOWLINE_RABBITMQ_DIR=$WORK/rabbitmq FLOWLINE_RABBITMQ_NODE=flowline-example-$$@localhost
# No second listener for nfacctd here.
export FLOWLINE_RABBITMQ_PMACCT_ADDR=127.0.0.254
stop_broker() { "$ROOT/scripts/rabbitmq.sh" stop || true; cleanup; }
trap stop_broker EXIT
"$ROOT/scripts/rabbitmq.sh" start
url=$(grep '^FLOWLINE_TEST_AMQP_URL=' "$WORK/rabbitmq/env" | cut -d= -f2-)

start central "$here/central.toml" AMQP_URL="$url" DATA_DIR="$WORK/central/data" METRICS=127.0.0.1:$((BASE+10))
for _ in $(seq 100); do grep -q "msg=consuming" "$WORK/central/log" && break; sleep 0.1; done
start edge1 "$here/edge.toml" AMQP_URL="$url" AMQP_FORMAT="${AMQP_FORMAT:-flowline}" DATA_DIR="$WORK/edge1/data" \
	METRICS=127.0.0.1:$((BASE+11)) LISTEN=127.0.0.1:$((BASE+1))
start edge2 "$here/edge.toml" AMQP_URL="$url" AMQP_FORMAT="${AMQP_FORMAT:-flowline}" DATA_DIR="$WORK/edge2/data" \
	METRICS=127.0.0.1:$((BASE+12)) LISTEN=127.0.0.1:$((BASE+2))
"$FLOWGEN" -target 127.0.0.1:$((BASE+1)) -flows "${FLOWS:-300000}" -rate 100000 -seed 1 -json >"$WORK/totals1.json" &
gen1=$!
"$FLOWGEN" -target 127.0.0.1:$((BASE+2)) -flows "${FLOWS:-300000}" -rate 100000 -seed 2 -json >"$WORK/totals2.json"
wait "$gen1"
sleep 0.5
stop "$PID_edge1" # each edge publishes what its aggregate holds, then exits
stop "$PID_edge2"

# metric NAME ADDR: the sum of a metric's samples at ADDR's /metrics.
metric() {
	exec 3<>"/dev/tcp/${2%:*}/${2#*:}"
	printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }' <&3
	exec 3<&-
}
# The central is done when it acked every message it received and nothing
# came for a second.
prev=-1
for _ in $(seq 600); do
	recv=$(metric flowline_amqp_messages_received_total 127.0.0.1:$((BASE+10)))
	acked=$(metric flowline_amqp_messages_acked_total 127.0.0.1:$((BASE+10)))
	if [[ $recv -gt 0 && $recv == "$acked" && $recv == "$prev" ]]; then break; fi
	prev=$recv
	sleep 1
done
stop "$PID_central"

want_p=$(jq -s 'map(.flow_packets) | add' "$WORK"/totals*.json)
want_b=$(jq -s 'map(.flow_bytes) | add' "$WORK"/totals*.json)
got=$(cd "$WORK/central" && DATA_DIR="$WORK/central/data" AMQP_URL="$url" "$FLOWLINE" query --config "$here/central.toml" --format json \
	"SELECT sum(packets) AS p, sum(bytes) AS b, count(*) AS n FROM flows_all")
got_p=$(jq -r '.[0].p' <<<"$got")
got_b=$(jq -r '.[0].b' <<<"$got")
echo "flowgen sent $want_p packets, $want_b bytes to two edges; the central stored $got_p packets, $got_b bytes in $(jq -r '.[0].n' <<<"$got") rows"
if [[ "$want_p" != "$got_p" || "$want_b" != "$got_b" ]]; then
	echo "MISMATCH" >&2
	exit 1
fi
echo "OK: totals exact"
OK=1
