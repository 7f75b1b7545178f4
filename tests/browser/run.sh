#!/usr/bin/env bash
# Runs the dashboard browser test: checks node, npm and Chromium, installs
# playwright-core from package-lock.json (npm ci) and runs the test.
#
#   BULWARK_READY_FILE=/tmp/ready.json tests/browser/run.sh
#   BULWARK_ADMIN_URL=http://127.0.0.1:9901 BULWARK_ADMIN_TOKEN=... tests/browser/run.sh
#   tests/browser/run.sh --install   # first apt-get install chromium if it is missing
#
# Exit status: 0 passed, 1 failed, 2 missing tools or target.
set -euo pipefail
cd "$(dirname "$0")"

CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
export CHROMIUM_PATH

die() { echo "run.sh: $*" >&2; exit 2; }

if [[ "${1:-}" == "--install" && ! -x "$CHROMIUM_PATH" ]]; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi

command -v node >/dev/null || die "node is missing: apt-get install -y nodejs npm (Node 20 or newer)"
command -v npm >/dev/null || die "npm is missing: apt-get install -y npm"
major=$(node -p 'process.versions.node.split(".")[0]')
(( major >= 20 )) || die "Node $(node --version) is too old: playwright-core needs Node 20 or newer"
[[ -x "$CHROMIUM_PATH" ]] || die "Chromium not found at $CHROMIUM_PATH: apt-get install -y chromium (or run.sh --install, or set CHROMIUM_PATH)"
if [[ -z "${BULWARK_READY_FILE:-}" && ( -z "${BULWARK_ADMIN_URL:-}" || -z "${BULWARK_ADMIN_TOKEN:-}" ) ]]; then
	die "no target: set BULWARK_READY_FILE, or BULWARK_ADMIN_URL and BULWARK_ADMIN_TOKEN"
fi

echo "run.sh: node $(node --version), npm $(npm --version), $("$CHROMIUM_PATH" --version 2>/dev/null | head -n1)"
npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec dashboard.test.mjs
