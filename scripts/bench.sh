#!/usr/bin/env bash
# bench.sh: how fast does a Flowline pipeline go on this machine, at 0 loss?
#
# flowgen sends NetFlow at a given rate for N seconds over loopback to a
# collector running a chosen config; the script then prints the flows/s
# offered and stored, the loss, the collector's CPU per flow and its peak
# RSS, and for the store the bytes per flow on disk. The collector can be
# pinned to one core (-p: collector on CPU 0, flowgen on CPU 1), and a peer
# can run the same load in the same run (-P nfcapd | nfacctd).
#
#   scripts/bench.sh [-c PRESET|FILE] [-r RATE] [-d SECONDS] [-p] [-P PEER] [-v 5|9|10] [-H HOSTS] [-k]
#
# PRESET is one of
#   raw        no aggregate: the raw flow log of outputs.duckdb (every flow stored)
#   agg        5-tuple aggregate (1m bins) into outputs.duckdb
#   print      5-tuple aggregate into outputs.print (JSON)
#   rawprint   no aggregate into outputs.print (one JSON line per flow)
# or a config FILE whose netflow input listens on 127.0.0.1:$BENCH_PORT
# (data_dir is where the store is; print outputs must write to a file).
#
# -r flows/s (0: as fast as flowgen can, default 1000000), -d seconds
# (default 10), -v export version (default 9), -H client hosts (default
# 10000), -k keeps the work directory. Defaults: raw, 1000000, 10, unpinned.
# Results are for this machine only, and noisy on a shared one: repeat runs
# and take the median.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=raw rate=1000000 secs=10 pin= peer= version=9 hosts=10000 keep=${KEEP:-}
while getopts "c:r:d:pP:v:H:kh" o; do
  case $o in
    c) preset=$OPTARG ;; r) rate=$OPTARG ;; d) secs=$OPTARG ;; p) pin=1 ;;
    P) peer=$OPTARG ;; v) version=$OPTARG ;; H) hosts=$OPTARG ;; k) keep=1 ;;
    *) sed -n '2,27p' "$0"; exit 2 ;;
  esac
done
# A port no other run on this machine uses (several may run at once).
port=${BENCH_PORT:-}
if [ -z "$port" ]; then
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    ss -Hlun "sport = :$port or sport = :$((port + 1))" 2>/dev/null | grep -q . || break
  done
fi
work=$(mktemp -d /tmp/flowline-bench.XXXXXX)
trap '[ -n "$keep" ] && echo "work directory: $work" || rm -rf "$work"' EXIT
make -s build >/dev/null

collector_cpu=() generator_cpu=()
if [ -n "$pin" ]; then
  collector_cpu=(taskset -c 0) generator_cpu=(taskset -c 1)
fi

# usage PID: "CPU-seconds peak-RSS-MiB" of PID and its children, from /proc
# while they run.
usage() {
  local pids=("$1") tick cpu=0 rss=0
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pids+=("$c"); done
  tick=$(getconf CLK_TCK)
  for p in "${pids[@]}"; do
    [ -r /proc/"$p"/stat ] || continue
    cpu=$((cpu + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
    rss=$((rss + $(awk '/VmHWM/ {print $2}' /proc/"$p"/status)))
  done
  awk -v c="$cpu" -v t="$tick" -v r="$rss" 'BEGIN { printf "%.2f %d\n", c/t, r/1024 }'
}

jsonfield() { grep -o "\"$1\":[0-9.e+]*" "$2" | head -1 | cut -d: -f2; }

# sum_json FILE AGGREGATED: "flows packets bytes" over pmacct JSON lines
# (flows: the flows key, else one a line when unaggregated, else -1:
# unknown). Plain string search: regular expressions take minutes on the
# gigabytes an unaggregated run prints.
sum_json() {
  awk -v agg="$2" '{
      n++
      i = index($0, "\"packets\": "); if (i) p += substr($0, i + 11) + 0
      i = index($0, "\"bytes\": "); if (i) b += substr($0, i + 9) + 0
      i = index($0, "\"flows\": "); if (i) { f += substr($0, i + 9) + 0; nf++ }
    }
    END { if (nf == 0) f = agg ? -1 : n; printf "%d %d %d\n", f, p, b }' "$1"
}

config_for() { # preset -> config text
  local head="[agent]
  data_dir = \"$work/data\"
  metrics_address = \"\"
[[inputs.netflow]]
  address = \"127.0.0.1:$port\"
  sockets = 2
  read_buffer = \"64MiB\""
  local agg='[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = "30s"
  batch_size = 8192'
  case $1 in
    raw) printf '%s\n[[outputs.duckdb]]\n' "$head" ;;
    agg) printf '%s\n%s\n[[outputs.duckdb]]\n' "$head" "$agg" ;;
    print) printf '%s\n%s\n[[outputs.print]]\n  format = "json"\n  file = "%s/out.jsonl"\n' "$head" "$agg" "$work" ;;
    rawprint) printf '%s\n[[outputs.print]]\n  format = "json"\n  file = "%s/out.jsonl"\n' "$head" "$work" ;;
    *) [ -f "$1" ] || { echo "bench.sh: -c $1: neither a preset (raw, agg, print, rawprint) nor a file" >&2; exit 2; }
       cat "$1" ;;
  esac
}

report() { # name sent.json stored-flows stored-packets stored-bytes cpu rss disk-bytes
  local flows secs offered
  flows=$(jsonfield flows "$2"); secs=$(jsonfield seconds "$2")
  awk -v n="$1" -v f="$flows" -v s="$secs" -v sp="$(jsonfield flow_packets "$2")" -v sb="$(jsonfield flow_bytes "$2")" \
      -v gf="$3" -v gp="$4" -v gb="$5" -v c="$6" -v r="$7" -v d="$8" -v pin="${pin:+pinned}" 'BEGIN {
    if (gf < 0) gf = f * gp / sp # aggregated without a flows counter: by packets
    printf "%-9s offered %.0f flows/s (%d flows in %.1fs), stored %.0f flows/s; loss %.4f%% (packets %.4f%%, bytes %.4f%%)\n",
      n, f/s, f, s, gf/s, 100*(1-gf/f), 100*(1-gp/sp), 100*(1-gb/sb)
    printf "%-9s CPU %.2fs = %.3f us/flow%s; peak RSS %d MiB", n, c, 1e6*c/f, (pin ? " (pinned to one core)" : ""), r
    if (d > 0) printf "; %.1f bytes/flow on disk", d/gf
    printf "\n" }'
}

# Flowline.
config_for "$preset" >"$work/flowline.toml"
"${collector_cpu[@]}" ./bin/flowline run --config "$work/flowline.toml" 2>"$work/flowline.log" &
pid=$!
for _ in $(seq 50); do grep -q "pipeline running" "$work/flowline.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
"${generator_cpu[@]}" ./bin/flowgen -target "127.0.0.1:$port" -version "$version" -rate "$rate" -duration "${secs}s" -hosts "$hosts" -json >"$work/sent.json"
sleep 1
use=$(usage "$pid")
kill -TERM "$pid"
wait "$pid" || { echo "flowline exited with an error:"; tail -5 "$work/flowline.log"; }
read -r cpu rss <<<"$use"
if [ -f "$work/out.jsonl" ]; then
  agg=1; [ "$preset" = rawprint ] && agg=
  read -r gf gp gb < <(sum_json "$work/out.jsonl" "$agg")
  disk=0
else
  q=$(./bin/flowline query --config "$work/flowline.toml" --format csv \
      "SELECT coalesce(sum(flows),0) AS f, coalesce(sum(packets),0) AS p, coalesce(sum(bytes),0) AS b FROM flows_all" | tail -1)
  IFS=, read -r gf gp gb <<<"$q"
  disk=$(du -sb "$work/data" | cut -f1)
fi
report flowline "$work/sent.json" "$gf" "$gp" "$gb" "$cpu" "$rss" "$disk"
grep -i "drop\|loss\|lost" "$work/flowline.log" | tail -3 || true

# peer NAME START-COMMAND...: runs a peer collector on port+1 under the
# same load and prints "CPU-seconds peak-RSS-MiB" of it into $work/NAME.use.
peer() {
  local name=$1; shift
  "${collector_cpu[@]}" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  sleep 2
  "${generator_cpu[@]}" ./bin/flowgen -target "127.0.0.1:$((port + 1))" -version "$version" -rate "$rate" -duration "${secs}s" -hosts "$hosts" -json >"$work/$name.sent"
  sleep "$settle"
  usage "$pid" >"$work/$name.use"
  kill -"$stop" "$pid"; wait "$pid" || true
}

# A peer under the same load.
case $peer in
  "") ;;
  nfcapd)
    mkdir -p "$work/nfcapd"
    settle=1 stop=TERM peer nfcapd nfcapd -w "$work/nfcapd" -b 127.0.0.1 -p $((port + 1)) -t 3600 -B 67108864
    read -r cpu rss <"$work/nfcapd.use"
    read -r gf gp gb < <(nfdump -R "$work/nfcapd" -q -N -A proto -o "fmt:%fl %pkt %byt" | awk '{ f += $1; p += $2; b += $3 } END { printf "%d %d %d\n", f, p, b }')
    report nfcapd "$work/nfcapd.sent" "$gf" "$gp" "$gb" "$cpu" "$rss" "$(du -sb "$work/nfcapd" | cut -f1)"
    ;;
  nfacctd)
    cat >"$work/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $((port + 1))
nfacctd_pipe_size: 67108864
plugins: print
aggregate: src_host,dst_host,src_port,dst_port,tcpflags,proto
print_output: json
print_output_file: $work/nfacctd.jsonl
print_output_file_append: true
print_refresh_time: 5
print_history: 1m
plugin_buffer_size: 10240
plugin_pipe_size: 10240000
CONF
    settle=7 stop=INT peer nfacctd nfacctd -f "$work/nfacctd.conf"
    read -r cpu rss <"$work/nfacctd.use"
    read -r gf gp gb < <(sum_json "$work/nfacctd.jsonl" 1)
    report nfacctd "$work/nfacctd.sent" "$gf" "$gp" "$gb" "$cpu" "$rss" 0
    ;;
  *) echo "bench.sh: -P $peer: nfcapd or nfacctd" >&2; exit 2 ;;
esac
