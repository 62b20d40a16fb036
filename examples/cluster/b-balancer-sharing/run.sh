#!/usr/bin/env bash
# Deployment (b) as plain processes on loopback: flowgen (3 exporters,
# 127.0.0.2-4, data before templates) -> nginx (UDP round robin, source
# address kept) -> 3 collectors sharing templates through a replicator.
# Needs nginx with the stream module (Debian: nginx-light libnginx-mod-stream).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
NGINX=${NGINX:-$(command -v nginx || true)}
if [[ -z "$NGINX" || ! -f /usr/lib/nginx/modules/ngx_stream_module.so ]]; then
	echo "nginx with the stream module is needed (apt-get install nginx-light libnginx-mod-stream)" >&2
	exit 2
fi
build
start replicator "$here/replicator.toml" DATA_DIR="$WORK/replicator/data" METRICS=127.0.0.1:$((BASE+10)) LISTEN=127.0.0.1:$((BASE+9)) \
	COLLECTOR1=127.0.0.1:$((BASE+1)) COLLECTOR2=127.0.0.1:$((BASE+2)) COLLECTOR3=127.0.0.1:$((BASE+3))
for i in 1 2 3; do
	start collector$i "$here/collector.toml" NAME=collector$i STORE="$WORK/store" DATA_DIR="$WORK/collector$i/data" \
		METRICS=127.0.0.1:$((BASE+10+i)) LISTEN=127.0.0.1:$((BASE+i)) TEMPLATES_RECEIVER=127.0.0.1:$((BASE+9))
done
# The same nginx.conf, on loopback: every 127/8 address is local, so the
# exporter's address can be bound without "transparent".
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
worker_processes 1;
events {}
stream {
  upstream collectors {
    server 127.0.0.1:$((BASE+1));
    server 127.0.0.1:$((BASE+2));
    server 127.0.0.1:$((BASE+3));
  }
  server {
    listen 127.0.0.1:$BASE udp;
    proxy_pass collectors;
    proxy_bind \$remote_addr;
    proxy_responses 0;
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
sleep 1.5 # nginx up, the replicator's first probes answered
totals=$("$FLOWGEN" -target 127.0.0.1:$BASE -exporters 127.0.0.2,127.0.0.3,127.0.0.4 -flows "${FLOWS:-300000}" -rate 100000 \
	-source-ids 4 -template-interval 10s -template-every 0 -template-delay 5 -json)
sleep 0.5
stop "$NGINX_PID"
stop "$PID_replicator"
for pid in "$PID_collector1" "$PID_collector2" "$PID_collector3"; do stop "$pid"; done
check "$totals" "$WORK"/store/*.jsonl
