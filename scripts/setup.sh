#!/usr/bin/env bash
# One-time setup for pipa-edge on Debian/Ubuntu: system GStreamer (when missing), a .venv with
# the package and its extras. Re-running is fast: each step is skipped when already done.
# Usage: scripts/setup.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
want_dev=${1:-}

APT_PKGS="gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base \
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
gstreamer1.0-tools libgirepository1.0-dev libcairo2-dev pkg-config"

say() { printf '\033[1;36m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (GStreamer + what pygobject needs to build).
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "pipa-edge setup: missing system packages. Run as root:" >&2
    echo "  sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 2
  fi
fi

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

# 3. The package. A stamp of the inputs makes re-runs instant.
extras="runtime"
[ "$want_dev" = "dev" ] && extras="runtime,dev,trt-rtx"
stamp="$VENV/.pipa-edge-setup.$extras"
sig=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ]; then
  say "environment up to date ($VENV, extras: $extras)"
  exit 0
fi
say "installing pipa-edge[$extras] into $VENV (first time: a few minutes; torch comes from local disk)"
"$VENV/bin/pip" install -q --progress-bar off -e ".[$extras]"
echo "$sig" > "$stamp"
say "done"
