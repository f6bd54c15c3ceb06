#!/usr/bin/env bash
# A local cluster of N validators on loopback, in one command:
#
#   examples/validators/local.sh N DIR
#
# Writes DIR/genesis.toml (a development network: faucet, 5% fee, 100 GRID minimum stake, storage
# kept a day, and the N validators, one vote each, on free ports of 127.0.0.1), starts one
# `gridmint coordinator` per validator with its data under DIR/v1 .. DIR/vN (logs in DIR/vI/log),
# prints their comma-separated URLs as the first line of its output, and stops them all on SIGTERM
# or Ctrl-C.
# Run again with the same DIR to restart the same cluster (its genesis and data are kept).
#
# Uses $GRIDMINT if set, else `gridmint` on the PATH, else builds target/release/gridmint.
set -euo pipefail

if [[ $# -ne 2 ]] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 N DIR   (N validators, data under DIR)" >&2
    exit 2
fi
n=$1
dir=$2
root="$(cd "$(dirname "$0")/../.." && pwd)"

if [[ -n ${GRIDMINT:-} ]]; then
    gm=$GRIDMINT
elif command -v gridmint >/dev/null 2>&1; then
    gm=gridmint
else
    (cd "$root" && cargo build --release --quiet --bin gridmint)
    gm="$root/target/release/gridmint"
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
genesis="$dir/genesis.toml"

if [[ ! -f $genesis ]]; then
    # Free ports, chosen by the kernel (each socket is closed before the validators start).
    read -r -a ports <<<"$(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$n")"
    accounts=()
    for i in $(seq 1 "$n"); do
        accounts+=("$("$gm" keys --validator --data-dir "$dir/v$i" --json |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["account"])')")
    done
    {
        echo "# A local development network of $n validators, written by examples/validators/local.sh."
        echo 'chain_id = "gridmint-local"'
        echo "treasury = \"${accounts[0]}\""
        echo 'fee_bps = 500'
        echo 'min_stake = "100"'
        echo 'unbonding_delay = "1m"'
        echo '[slash]'
        echo 'fraction_bps = 5000'
        echo 'requester_bps = 5000'
        echo 'treasury_bps = 2500'
        echo '[faucet]'
        echo 'amount = "1000"'
        # Storage kept a day after a job ends: a provider caught lying within it has its
        # results in completed jobs corrected (rules 19).
        echo '[storage]'
        echo 'deposit_per_kib = "100 base"'
        echo 'retention = "1d"'
        echo 'max_output = "64MiB"'
        for i in $(seq 0 $((n - 1))); do
            echo '[[validators]]'
            echo "account = \"${accounts[$i]}\""
            echo 'power = 1'
            echo "address = \"http://127.0.0.1:${ports[$i]}\""
            echo 'stake = "1000"'
        done
    } >"$genesis.tmp"
    mv "$genesis.tmp" "$genesis"
fi

mapfile -t urls < <(grep '^address = ' "$genesis" | sed -E 's/^address = "(.*)"$/\1/')
if [[ ${#urls[@]} -ne $n ]]; then
    echo "$genesis lists ${#urls[@]} validators, not $n" >&2
    exit 2
fi

pids=()
stop() {
    trap - TERM INT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
    exit 0
}
trap stop TERM INT

for i in $(seq 1 "$n"); do
    url=${urls[$((i - 1))]}
    "$gm" coordinator --genesis "$genesis" --data-dir "$dir/v$i" --listen "${url#http://}" \
        >>"$dir/v$i/log" 2>&1 &
    pids+=($!)
done

# Wait until every validator answers.
for url in "${urls[@]}"; do
    for _ in $(seq 1 300); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/v1/status", timeout=1)' "$url" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
done

(IFS=,; echo "${urls[*]}")
echo "$n validators running; data and logs under $dir; SIGTERM or Ctrl-C stops them" >&2
wait
