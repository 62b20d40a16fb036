#!/usr/bin/env bash
# Installs the system packages the integration tests need, where missing:
# pmacct (nfacctd, the reference for the print and MySQL drop-in checks) and
# mariadb-server (scripts/mariadb.sh runs one of its own for outputs.mysql),
# nginx with its stream module (the UDP load balancer of examples/cluster),
# jq (the example scripts sum JSON lines with it), rabbitmq-server
# (scripts/rabbitmq.sh runs a broker of its own for the AMQP tests) and
# python3-pika (the pmacct-style AMQP consumer of tests/amqp) and
# victoria-metrics (scripts/victoriametrics.sh runs one of its own for
# outputs.influxdb; InfluxDB itself is built by scripts/influxdb.sh).
# Runs as root (CI and the development machines are root); otherwise it
# says what to install and leaves it to the user.
set -euo pipefail

need=()
command -v nfacctd >/dev/null 2>&1 || [ -x /usr/sbin/nfacctd ] || need+=(pmacct)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server mariadb-client)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v jq >/dev/null 2>&1 || need+=(jq)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || need+=(python3-pika)
[ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
command -v curl >/dev/null 2>&1 || need+=(curl) # scripts/influxdb.sh and victoriametrics.sh

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/deps.sh: please install: ${need[*]} (apt-get install -y ${need[*]})" >&2
  exit 0
fi
echo "scripts/deps.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts no daemon we use; tests run nfacctd in the foreground.
