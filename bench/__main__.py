"""``python -m bench [NAME …] [--write]``: run benchmarks; with --write, replace their sections in
docs/benchmarks.md (between ``<!-- bench:NAME -->`` markers) with the fresh results."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy
import shapely

BENCHES = ("grid_lookup", "geocode", "hangzhou", "intake", "classify", "chat", "calls", "console", "notices", "wall")
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    cores = len([line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("processor")])
    load = os.getloadavg()[0]  # other jobs on the machine while this ran: read the numbers with it
    return (
        f"{date.today().isoformat()}, {cores} × {cpu}, Python {platform.python_version()}, "
        f"shapely {shapely.__version__}, numpy {numpy.__version__}, load average {load:.1f} at start, "
        f"reference loop {reference_ms():.0f} ms"
    )


def reference_ms() -> float:
    """A fixed pure-Python loop, best of 5: machines of the same name have differed fourfold here (shared hosts), so
    every result carries the speed of the machine it ran on; scale by this before comparing two dates."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def write(name: str, section: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = f"<!-- bench:{name} -->\n{section.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"which benchmarks: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCHES)}")
    where = machine()
    for name in args.names or BENCHES:
        module = importlib.import_module(f"bench.{name}")
        section = module.run(where)
        print(section, flush=True)
        if args.write:
            write(name, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
