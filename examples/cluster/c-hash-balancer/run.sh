#!/usr/bin/env bash
# Deployment (c) as plain processes on loopback: flowgen (6 exporters,
# 127.0.0.2-7) -> nginx (consistent hash by exporter, source address kept)
# -> 3 collectors, no sharing. Needs nginx with the stream module (Debian:
# nginx-light libnginx-mod-stream).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
NGINX=${NGINX:-$(command -v nginx || true)}
if [[ -z "$NGINX" || ! -f /usr/lib/nginx/modules/ngx_stream_module.so ]]; then
	echo "nginx with the stream module is needed (apt-get install nginx-light libnginx-mod-stream)" >&2
	exit 2
fi
build
for i in 1 2 3; do
	start collector$i "$here/collector.toml" NAME=collector$i STORE="$WORK/store" DATA_DIR="$WORK/collector$i/data" \
		METRICS=127.0.0.1:$((BASE+10+i)) LISTEN=127.0.0.1:$((BASE+i))
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
    hash \$remote_addr consistent;
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
sleep 1
totals=$("$FLOWGEN" -target 127.0.0.1:$BASE -exporters 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7 \
	-flows "${FLOWS:-300000}" -rate 100000 -source-ids 4 -template-interval 10s -template-every 0 -json)
sleep 0.5
stop "$NGINX_PID"
for pid in "$PID_collector1" "$PID_collector2" "$PID_collector3"; do stop "$pid"; done
for f in "$WORK"/store/*.jsonl; do
	echo "  $(basename "$f") exporters: $(jq -r .peer_ip_src "$f" | sort -u | tr '\n' ' ')"
done
check "$totals" "$WORK"/store/*.jsonl
