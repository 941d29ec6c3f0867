#!/bin/sh
# Installs what the dashboard's browser tests need, idempotently: Debian's
# Chromium (when missing) and playwright-core under webview/e2e/node_modules
# (when missing or older than package-lock.json). Playwright never downloads
# a browser: the tests drive /usr/bin/chromium.
set -eu
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "webview/e2e/setup.sh: chromium is missing; run as root or: sudo apt-get install -y chromium" >&2
		exit 1
	fi
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "webview/e2e/setup.sh: node and npm (Node.js 20 or later) are required" >&2
	exit 1
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# npm records what it installed in node_modules/.package-lock.json.
if [ -f package-lock.json ]; then
	if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
		[ package.json -nt node_modules/.package-lock.json ]; then
		npm ci --no-audit --no-fund
	fi
elif [ ! -d node_modules ]; then
	npm install --no-audit --no-fund
fi
