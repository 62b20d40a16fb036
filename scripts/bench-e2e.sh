#!/usr/bin/env bash
# End-to-end throughput beside nfacctd: 5-tuple aggregation printed as JSON,
# by Flowline and then by nfacctd with the same aggregation, under the same
# flowgen load. A shorthand for scripts/bench.sh (see there for every option).
#
#   scripts/bench-e2e.sh [RATE] [DURATION] [HOSTS]     (defaults: 1000000 10s 1000)
set -euo pipefail
cd "$(dirname "$0")"
secs=${2:-10s}
exec ./bench.sh -c print -r "${1:-1000000}" -d "${secs%s}" -H "${3:-1000}" -P nfacctd
