#!/usr/bin/env bash
# End-to-end throughput: flowgen sends RATE flows/s for DURATION over loopback
# to flowline (netflow input, 5-tuple aggregation, print to a file), then to
# nfacctd with the same aggregation (when installed), one after the other on
# the same machine. It reports for each: flows sent, packets/bytes stored,
# loss, CPU time and peak memory (summed over its processes) of the collector.
#
#   scripts/bench-e2e.sh [RATE] [DURATION] [HOSTS]     (defaults: 1000000 10s 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1000000}
duration=${2:-10s}
hosts=${3:-1000}
work=$(mktemp -d /tmp/flowline-bench.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
make -s build >/dev/null

sum_file() { # prints "packets bytes" summed over pmacct JSON lines
  awk '{ if (match($0, /"packets": [0-9]+/)) p += substr($0, RSTART+11, RLENGTH-11);
         if (match($0, /"bytes": [0-9]+/)) b += substr($0, RSTART+9, RLENGTH-9) }
       END { printf "%d %d\n", p, b }' "$1"
}

# usage PID: prints "CPU-seconds peak-RSS-MiB" of PID and its child processes,
# read from /proc while they still run.
usage() {
  local pids=("$1") tick cpu=0 rss=0
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pids+=("$c"); done
  tick=$(getconf CLK_TCK)
  for p in "${pids[@]}"; do
    [ -r /proc/"$p"/stat ] || continue
    cpu=$(( cpu + $(awk '{print $14 + $15}' /proc/"$p"/stat) ))
    rss=$(( rss + $(awk '/VmHWM/ {print $2}' /proc/"$p"/status) ))
  done
  awk -v c="$cpu" -v t="$tick" -v r="$rss" 'BEGIN { printf "%.1f %d\n", c/t, r/1024 }'
}

report() { # name sentjson outfile usage
  local sent_p sent_b got_p got_b cpu rss
  sent_p=$(grep -o '"flow_packets":[0-9]*' "$2" | cut -d: -f2)
  sent_b=$(grep -o '"flow_bytes":[0-9]*' "$2" | cut -d: -f2)
  flows=$(grep -o '"flows":[0-9]*' "$2" | cut -d: -f2)
  read -r got_p got_b < <(sum_file "$3")
  read -r cpu rss <<<"$4"
  awk -v n="$1" -v f="$flows" -v sp="$sent_p" -v gp="$got_p" -v sb="$sent_b" -v gb="$got_b" -v c="$cpu" -v r="$rss" -v d="$duration" 'BEGIN {
    printf "%-9s sent %d flows (%d packets, %d bytes); stored %d packets, %d bytes; loss %.4f%%; CPU %ss; peak RSS %d MiB\n",
      n, f, sp, sb, gp, gb, 100*(1-gp/sp), c, r }'
}

# Flowline.
cat > "$work/flowline.toml" <<CONF
[agent]
  data_dir = "$work/data"
  metrics_address = ""
[[inputs.netflow]]
  address = "127.0.0.1:29995"
  sockets = 2
  read_buffer = "64MiB"
[[processors.aggregate]]
  primitives = ["src_host", "dst_host", "src_port", "dst_port", "tcpflags", "proto"]
  history = "1m"
  refresh = "5s"
[[outputs.print]]
  format = "json"
  file = "$work/flowline.jsonl"
CONF
./bin/flowline run --config "$work/flowline.toml" 2>"$work/flowline.log" &
pid=$!
sleep 1
./bin/flowgen -target 127.0.0.1:29995 -version 9 -rate "$rate" -duration "$duration" -hosts "$hosts" -json >"$work/flowline.sent"
sleep 1
use=$(usage "$pid")
kill -TERM "$pid"; wait "$pid" || true
report flowline "$work/flowline.sent" "$work/flowline.jsonl" "$use"

# nfacctd, the same aggregation, generous buffers.
nfacctd=$(command -v nfacctd || echo /usr/sbin/nfacctd)
if [ -x "$nfacctd" ]; then
  cat > "$work/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: 29996
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
  "$nfacctd" -f "$work/nfacctd.conf" >"$work/nfacctd.log" 2>&1 &
  pid=$!
  sleep 2
  ./bin/flowgen -target 127.0.0.1:29996 -version 9 -rate "$rate" -duration "$duration" -hosts "$hosts" -json >"$work/nfacctd.sent"
  sleep 7
  use=$(usage "$pid")
  kill -INT "$pid"; wait "$pid" || true
  report nfacctd "$work/nfacctd.sent" "$work/nfacctd.jsonl" "$use"
fi
