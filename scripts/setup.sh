#!/usr/bin/env bash
# One-time setup of the workstation install on Debian/Ubuntu: the system packages (Python, a C
# toolchain, GStreamer and what pygobject needs to build), a .venv with pipa-edge and its
# workstation extras. `make demo` and `make test` share it: one install, one stamp. Re-running is
# fast: each step is skipped when already done.
# Usage: scripts/setup.sh            (an old "dev" argument is accepted and ignored)
# A device (Jetson, inference box) needs only `pip install '.[device]'`: see runtime/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
EXTRAS="train,runtime,dev,trt-rtx"

# What a stock Debian 12 image lacks for this: Python with venv + headers, a C toolchain and
# pkg-config (pygobject and pycairo compile against gobject-introspection and cairo), GStreamer.
APT_PKGS="python3 python3-venv python3-dev build-essential pkg-config ca-certificates \
libgirepository1.0-dev libcairo2-dev \
gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base \
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
gstreamer1.0-tools"

say() { printf '\033[1;36m[setup]\033[0m %s\n' "$*"; }
die() { printf 'pipa-edge setup: %s\n' "$*" >&2; exit 2; }

# 1. System packages.
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

# 2. The build needs, probed directly (also where dpkg is absent): each missing one names its package.
check_build_needs() {
  command -v "$PY" >/dev/null 2>&1 || die "no '$PY' on PATH: set PYTHON=/path/to/python3 (Debian: apt-get install python3)"
  "$PY" -c 'import ensurepip' 2>/dev/null || die "$PY cannot create a venv (Debian: apt-get install python3-venv)"
  "$PY" -c 'import os, sys, sysconfig as s; sys.exit(not os.path.isfile(os.path.join(s.get_paths()["include"], "Python.h")))' \
    || die "no Python.h for $PY: pygobject cannot compile (Debian: apt-get install python3-dev)"
  command -v cc >/dev/null 2>&1 || die "no C compiler: pygobject cannot compile (Debian: apt-get install build-essential)"
  command -v pkg-config >/dev/null 2>&1 || die "no pkg-config (Debian: apt-get install pkg-config)"
  pkg-config --exists gobject-introspection-1.0 \
    || die "gobject-introspection-1.0 not found by pkg-config (Debian: apt-get install libgirepository1.0-dev)"
  pkg-config --exists cairo || die "cairo not found by pkg-config (Debian: apt-get install libcairo2-dev)"
}

# 3. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  check_build_needs
  say "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

# 4. The package: one install of the workstation extras for demo and test; a stamp of the inputs
#    makes re-runs instant.
stamp="$VENV/.pipa-edge-setup"
sig=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ]; then
  say "environment up to date ($VENV, extras: $EXTRAS)"
  exit 0
fi
"$VENV/bin/python" -c 'import gi' 2>/dev/null || check_build_needs  # pygobject still to be built
say "installing pipa-edge[$EXTRAS] into $VENV (first time: a few minutes; torch comes from local disk)"
"$VENV/bin/pip" install -q --progress-bar off -e ".[$EXTRAS]"
rm -f "$VENV"/.pipa-edge-setup.*  # stamps of the old per-target scheme
echo "$sig" > "$stamp"
say "done"
