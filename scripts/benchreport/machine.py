"""The machine the run measured and the versions of the tools it used."""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess


def run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text else ""


def machine_info() -> list[tuple[str, str]]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    distro = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    debver = ""
    try:
        with open("/etc/debian_version", encoding="utf-8") as f:
            debver = f.read().strip()
    except OSError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return [
        ("CPU", cpu or platform.processor() or "unknown"),
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", mem),
        ("kernel", platform.release()),
        ("distribution", distro + (" (%s)" % debver if debver else "")),
        ("load average at report time (1, 5, 15 min)", load),
    ]


def node_module_version(root: str, name: str) -> str:
    for path in sorted(glob.glob(os.path.join(root, "tests/bench/peers/node/**/node_modules/%s/"
                                              "package.json" % name), recursive=True)):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f).get("version", "")
        except (OSError, ValueError):
            continue
    return ""


def versions(root: str, extra: dict[str, str]) -> list[tuple[str, str]]:
    boost = ""
    try:
        with open("/usr/include/boost/version.hpp", encoding="utf-8") as f:
            m = re.search(r'#define BOOST_LIB_VERSION "([0-9_]+)"', f.read())
            boost = m.group(1).replace("_", ".") if m else ""
    except OSError:
        pass
    out = [
        ("g++", first_line(run(["g++", "--version"]))),
        ("Boost", boost),
        ("cmake", first_line(run(["cmake", "--version"]))),
        ("node", run(["node", "--version"]) if shutil.which("node") else "not installed"),
        ("piscina", node_module_version(root, "piscina") or "not installed"),
        ("tinypool", node_module_version(root, "tinypool") or "not installed"),
        ("python3", run(["python3", "--version"])),
        ("GNU parallel", first_line(run(["parallel", "--version"])) if shutil.which("parallel")
         else "not installed"),
        ("xargs", first_line(run(["xargs", "--version"]))),
        ("gnuplot", run(["gnuplot", "--version"]) if shutil.which("gnuplot") else "not installed"),
    ]
    for k, v in extra.items():
        out.append((k, v))
    return out
