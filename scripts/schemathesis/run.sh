#!/usr/bin/env bash
# schemathesis against a running genq: every operation of its /openapi.json, with all of
# schemathesis's checks (positive data accepted, negative data refused, documented status
# codes, content types and schemas, auth), once per token scope, on a fresh SQLite database,
# with a fixed seed and a bounded number of examples.
#
#   scripts/schemathesis/run.sh [path/to/genq]      (default: $CARGO_TARGET_DIR/debug/genq)
#
# SCHEMATHESIS_EXAMPLES (default 25) sets the examples per operation.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target}
genq=${1:-$target/debug/genq}
venv=${SCHEMATHESIS_VENV:-$target/schemathesis-venv}
version=4.32.5
examples=${SCHEMATHESIS_EXAMPLES:-25}

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

GENQ_DATABASE="sqlite://$work/genq.db" "$genq" serve --config "$here/genq.toml" \
  >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^genq listening on \(http:[^ ]*\).*/\1/p' "$work/out")
[ -n "$base" ] || { cat "$work/out" "$work/log"; echo "genq did not start"; exit 1; }

admin=schemathesis-admin-0123456789
# Batches of any size the document allows; the default limit (200) is a business rule.
curl -sf -X PUT "$base/v1/admin/limits/batch_max_items_per_request" \
  -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"value": 10000}' >/dev/null

st() {
  # From the temporary folder: schemathesis keeps its example database in the working one.
  (cd "$work" && "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    --checks all --max-examples "$examples" --seed 20261201 --no-shrink \
    --request-timeout 5 --warnings off "$@")
}
failed=0
# Changing the limits changes what other operations may accept: those go last. The event
# stream never ends by itself; tests/events.rs checks it.
for token in schemathesis-app-0123456789 schemathesis-worker-0123456789 "$admin"; do
  echo "== schemathesis as ${token%%-0123456789}"
  st -H "Authorization: Bearer $token" --exclude-path-regex '^/v1/admin/limits/' \
    --exclude-path /v1/events || failed=1
done
echo "== schemathesis as admin: the limits"
st -H "Authorization: Bearer $admin" --include-path-regex '^/v1/admin/limits/' || failed=1

if grep -q "panicked" "$work/log"; then
  grep -B2 -A5 "panicked" "$work/log"
  failed=1
fi
exit $failed
