#!/usr/bin/env bash
# `make demo`: a local tansu broker, `lockstep run` printing alerts as they are raised,
# and a simulated feed of IAM, vault, MDM and SIEM events. Ctrl-C stops everything it
# started. DEMO_SECONDS=N stops it after N seconds instead (for unattended runs).
set -euo pipefail
bin=${1:?usage: demo.sh LOCKSTEP_BINARY TANSU_BINARY}
tansu=${2:?usage: demo.sh LOCKSTEP_BINARY TANSU_BINARY}
port=19092
config=config/demo.toml
work=target/demo
mkdir -p "$work"
rm -rf "$work/state"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "demo: port $port is in use; stop what listens there (config/demo.toml uses it)" >&2
  exit 1
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "demo: starting tansu on 127.0.0.1:$port (memory storage)"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >"$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
for topic in lockstep.iam lockstep.vault lockstep.mdm lockstep.siem; do
  "$tansu" topic create "$topic" --broker "tcp://127.0.0.1:$port" --partitions 2 >/dev/null
done
for topic in lockstep.alerts lockstep.cases lockstep.dead-letters; do
  "$tansu" topic create "$topic" --broker "tcp://127.0.0.1:$port" --partitions 1 >/dev/null
done

echo "demo: starting lockstep run (state in $work/state, log in $work/lockstep.log)"
echo "demo: alerts appear below as they are raised"
echo "------------------------------------------------------------------------------"
"$bin" run --config "$config" --state "$work/state" --print 2>"$work/lockstep.log" &
pids+=($!)
sleep 1

"$bin" simulate --live --config "$config" --seed 7 --accounts 120 --months 4 --consistency --rate 1500 2>"$work/feed.log"
echo "------------------------------------------------------------------------------"
echo "demo: $(cat "$work/feed.log")"
echo "demo: lockstep keeps running: alerts on topic lockstep.alerts, cases on lockstep.cases;"
echo "demo: the API at http://127.0.0.1:9464/v1/cases?state=breached (and /metrics);"
echo "demo: try: $bin lineage svc-000002@corp.example --api http://127.0.0.1:9464"
echo "demo: rotations a vault secret did not follow and identities IAM never registered (SPEC §4c):"
echo "demo:   the rotation_missed and unregistered_identity lines above; for one of them,"
echo "demo:   $bin lineage <its rotated_entity> --api http://127.0.0.1:9464 shows which holders followed the rotation"
echo "demo: the inventory — what exists, where, since when, created by whom; here the entities"
echo "demo: active in one system and revoked in another (drift):"
"$bin" inventory --api http://127.0.0.1:9464 --drift --format table 2>&1 | head -12 || true
echo "demo: try: $bin inventory --api http://127.0.0.1:9464 --unregistered"
echo "demo: Ctrl-C stops everything."
if [ -n "${DEMO_SECONDS:-}" ]; then sleep "$DEMO_SECONDS"; else wait; fi
