#!/bin/bash
# bench/lb.sh: routing decision cost (src/core/lb.c), 8 and 1,000 endpoints.
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/bench/bench_lb"
"$B/bench/bench_lb"
