#!/bin/sh
# Installs what the IDE tests and `make vsix` need, idempotently:
#   - the extension's npm packages, exactly as package-lock.json pins them
#     (typescript, vscode-languageclient, vscode-jsonrpc for the Node
#     end-to-end client, @vscode/vsce);
#   - Debian's Neovim, for the headless LSP-client test (skipped with
#     `setup.sh npm`).
# Run it again at will: it does nothing when everything is in place.
set -eu
cd "$(dirname "$0")"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi

[ "${1:-all}" = npm ] && exit 0
if ! command -v nvim >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1; then
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q neovim ||
			{ $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q neovim; }
	else
		echo "setup.sh: install Neovim (nvim) to run TestIDENeovim" >&2
	fi
fi
