#!/usr/bin/env bash
# Deployment (a) as plain processes on loopback: flowgen -> replicator (rr)
# -> 2 collectors, each printing to its own file; checks the totals.
# FLOWS=300000 by default; FLOWLINE/FLOWGEN reuse built binaries.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
build
start collector1 "$here/collector.toml" NAME=collector1 STORE="$WORK/store" DATA_DIR="$WORK/collector1/data" METRICS=127.0.0.1:$((BASE+11)) LISTEN=127.0.0.1:$((BASE+1))
start collector2 "$here/collector.toml" NAME=collector2 STORE="$WORK/store" DATA_DIR="$WORK/collector2/data" METRICS=127.0.0.1:$((BASE+12)) LISTEN=127.0.0.1:$((BASE+2))
start replicator "$here/replicator.toml" DATA_DIR="$WORK/replicator/data" METRICS=127.0.0.1:$((BASE+10)) LISTEN=127.0.0.1:$((BASE)) \
	COLLECTOR1=127.0.0.1:$((BASE+1)) COLLECTOR2=127.0.0.1:$((BASE+2))
sleep 1 # the replicator's first probes
totals=$("$FLOWGEN" -target 127.0.0.1:$((BASE)) -flows "${FLOWS:-300000}" -rate 100000 -source-ids 4 \
	-template-interval 10s -template-every 0 -json)
sleep 0.5
stop "$PID_replicator"
stop "$PID_collector1"
stop "$PID_collector2"
check "$totals" "$WORK"/store/*.jsonl
