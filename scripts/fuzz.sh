#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time, starting from the committed corpus
# (fuzz/corpus/<target>). Stable Rust: libFuzzer's coverage without a sanitizer.
#
#   scripts/fuzz.sh [seconds per target]       (default 20)
#
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run. To keep what a
# longer local run found: `cargo fuzz cmin --sanitizer none -O <target>`, then commit
# fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-20}
target_dir=${CARGO_TARGET_DIR:-../target}/fuzz
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
flags=(--sanitizer none -O --target-dir "$target_dir")
cargo fuzz build "${flags[@]}"
for target in $(cargo fuzz list); do
  echo "== fuzz $target for ${seconds}s"
  # A scratch copy of the corpus: what this run finds is not written into the checkout.
  scratch=$(mktemp -d)
  cp -r "corpus/$target/." "$scratch/"
  cargo fuzz run "${flags[@]}" "$target" "$scratch" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY" || true
  rm -rf "$scratch"
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz target $target crashed; inputs in fuzz/artifacts/$target/"
    exit 1
  fi
done
