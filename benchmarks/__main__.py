"""Run every benchmark (`python -m benchmarks [NAME…]`); each writes its table to benchmarks/results/."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    wanted = sys.argv[1:]
    for name in names:
        if not wanted or any(w in name for w in wanted):
            print(f"== {name}", flush=True)
            importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()
