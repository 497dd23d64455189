#!/usr/bin/env bash
# Runs every fuzz target — each adapter's, the canonical JSON and Avro decoders', the
# Avro container reader's — for FUZZ_SECONDS (default 60) each, seeded with the golden
# samples and simulated events: `make fuzz` (FUZZ_SECONDS=600 make fuzz for longer). Needs the nightly toolchain and cargo-fuzz; a crash leaves
# its input under fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/lockstep-fuzz-target}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
samples=../tests/fixtures/samples
declare -A seeds=(
  [cloudtrail]=$samples/aws_cloudtrail [gcp_audit]=$samples/gcp_audit
  [entra_audit]=$samples/azure_entra [okta]=$samples/okta
  [vault_audit]=$samples/vault_audit [jamf]=$samples/mdm_jamf
  [intune]=$samples/mdm_intune [k8s_audit]=$samples/kubernetes_audit
  [github_audit]=$samples/github_audit [ocsf]=../tests/fixtures/ocsf
  [canonical_json]=seeds/canonical [canonical_avro]=seeds/avro [avro_container]=seeds/container
)
# Seeds for the canonical decoders: simulated events as JSON lines, raw Avro datums and a
# container file, written by the lockstep binary of this tree.
lockstep=${LOCKSTEP_BIN:-$HOME/.cache/lockstep-target/release/lockstep}
mkdir -p seeds/canonical seeds/avro seeds/container
if [ -x "$lockstep" ]; then
  "$lockstep" simulate --seed 1 --accounts 3 --out seeds/canonical/events.jsonl 2>/dev/null
  "$lockstep" simulate --seed 1 --accounts 3 --out seeds/container/events.avro 2>/dev/null
fi
for target in "${!seeds[@]}"; do
  corpus=corpus/$target
  mkdir -p "$corpus"
  for file in "${seeds[$target]}"/*; do
    [ -f "$file" ] || continue
    case $file in
      *.jsonl) split -l 1 -d "$file" "$corpus/$(basename "$file")." ;;
      *) cp "$file" "$corpus/" ;;
    esac
  done
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked)" || true
  [ -z "$(ls -A "artifacts/$target" 2>/dev/null)" ] || { echo "fuzz: $target crashed, see fuzz/artifacts/$target"; exit 1; }
done
echo "fuzz: every target ran ${seconds}s without a crash"
