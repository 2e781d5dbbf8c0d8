#!/usr/bin/env bash
# Fuzz smoke test for CI: builds the four libFuzzer targets of fuzz/ and runs each
# for a short, bounded time from a scratch copy of its committed seed corpus (plus
# its saved crash reproducers, fuzz/regressions/<target>/, if any). Fails on any
# crash, timeout (an input taking over 10 s) or OOM; the crashing input is left in
# fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
# Usage: scripts/fuzz_smoke.sh [target...]
#   FUZZ_SMOKE_SECONDS      seconds per target (default 20)
#   FUZZ_SMOKE_REGRESSIONS  0 to leave out fuzz/regressions/ (default 1: a saved
#                           reproducer whose bug is not fixed yet fails the run)
#   CARGO_TARGET_DIR        honoured as usual (the build is cached there)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SMOKE_SECONDS:-20}"
regressions="${FUZZ_SMOKE_REGRESSIONS:-1}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(ciphertext_envelope request_params policy keyring_file)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/encrypted-attr-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

start=$SECONDS
cargo +nightly fuzz build
printf 'fuzz_smoke: built in %ss\n' "$((SECONDS - start))"

for target in "${targets[@]}"; do
  # libFuzzer adds new inputs to the first corpus directory: a scratch copy, so
  # that the committed corpus stays as reviewed.
  mkdir -p "$scratch/$target" "$scratch/tmp-$target"
  cp fuzz/corpus/"$target"/* "$scratch/$target/"
  corpora=("$scratch/$target")
  if [ "$regressions" != 0 ] && [ -d "fuzz/regressions/$target" ]; then
    corpora+=("fuzz/regressions/$target")
  fi
  log="$scratch/$target.log"
  # TMPDIR: keyring_file writes its inputs to a file under the temp directory.
  if ! TMPDIR="$scratch/tmp-$target" cargo +nightly fuzz run "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    printf 'fuzz_smoke: %s FAILED; the input is in fuzz/artifacts/%s/\n' "$target" "$target" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  printf 'fuzz_smoke: %s ok, %s executions in %ss\n' "$target" "${runs:-?}" "$seconds"
done
printf 'fuzz_smoke: all targets passed in %ss\n' "$((SECONDS - start))"
