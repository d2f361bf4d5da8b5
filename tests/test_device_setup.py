"""The install scripts, without a container: the apt list covers what the build probes need, the
extras keep torch off a device, one stamp serves `make demo` and `make test`.

What a stock Debian 12 image lacks for the workstation install (no Python, no compiler, no
pkg-config, no GStreamer) is written into scripts/setup.sh's APT_PKGS; its build probes
(``check_build_needs``) each name the Debian package that fixes them. Here: every package a probe
names is in the list, every listed package exists in Debian's index (when apt is here), and the
probes pass on this machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = (REPO / "scripts" / "setup.sh").read_text()


def apt_pkgs() -> list[str]:
    m = re.search(r'APT_PKGS="([^"]*)"', SETUP)
    assert m, "APT_PKGS not found in scripts/setup.sh"
    return m.group(1).replace("\\\n", " ").split()


def test_every_probe_hint_names_a_listed_package():
    hinted = set(re.findall(r"apt-get install ([a-z0-9.+-]+)\)", SETUP))
    assert {"python3", "python3-venv", "python3-dev", "build-essential", "pkg-config",
            "libgirepository1.0-dev", "libcairo2-dev"} <= hinted
    assert hinted <= set(apt_pkgs()), f"named by a probe but not installed by the script: {hinted - set(apt_pkgs())}"


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="not a Debian/Ubuntu machine (no apt-cache)")
def test_listed_packages_exist_in_the_debian_index():
    pkgs = apt_pkgs()
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True, text=True)
    found = set(re.findall(r"^Package: (\S+)$", out.stdout, flags=re.M))
    if not found:
        pytest.skip("apt's package index is empty here (run apt-get update)")
    assert set(pkgs) <= found, f"not in this machine's Debian index: {set(pkgs) - found}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_build_probes_pass_here_and_name_the_package_when_not():
    body = re.search(r"^check_build_needs\(\) \{.*?^\}", SETUP, flags=re.S | re.M).group(0)
    script = f'die() {{ echo "DIE: $*"; exit 2; }}\nPY=python3\n{body}\ncheck_build_needs && echo ok'
    ok = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    if "ok" not in ok.stdout:
        pytest.skip(f"this machine lacks a build need: {ok.stdout.strip()}")
    bad = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PKG_CONFIG_PATH": "/nonexistent",
                              "PKG_CONFIG_LIBDIR": "/nonexistent"})
    assert bad.returncode == 2 and "apt-get install" in bad.stdout, bad.stdout + bad.stderr


def test_device_extra_has_no_torch_and_one_stamp_for_demo_and_test():
    toml = (REPO / "pyproject.toml").read_text()
    base = re.search(r"^dependencies = \[(.*?)^\]", toml, flags=re.S | re.M).group(1)
    device = re.search(r"^device = \[(.*?)\]", toml, flags=re.S | re.M).group(1)
    train = re.search(r"^train = \[(.*?)^\]", toml, flags=re.S | re.M).group(1)
    for heavy in ("torch", "torchvision", "segmentation-models-pytorch", "onnxsim", "matplotlib"):
        assert not re.search(rf'"{heavy}[=<>; ]', base + device), f"{heavy} in the device install"
        assert re.search(rf'"{heavy}[=<>; ]', train), f"{heavy} missing from the train extra"
    assert '"torch==2.14.1"' in train and '"torchvision==0.29.1"' in train
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: setup$", make, flags=re.M) and re.search(r"^test: setup$", make, flags=re.M)
    stamps = re.findall(r'^stamp="([^"]+)"', SETUP, flags=re.M)
    assert stamps == ["$VENV/.pipa-edge-setup"]  # one stamp, not one per extras set
