"""Progress reporting: the library calls a Progress; the CLI decides how (or whether) it is shown."""

from __future__ import annotations

import sys


class Progress:
    """A silent progress counter; subclasses render it."""

    def __init__(self, total: int | None = None, unit: str = "B", desc: str = ""):
        self.total, self.unit, self.desc, self.n = total, unit, desc, 0

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BarProgress(Progress):
    """A tqdm bar on stderr."""

    def __init__(self, total: int | None = None, unit: str = "B", desc: str = ""):
        super().__init__(total, unit, desc)
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            unit=unit,
            desc=desc,
            unit_scale=unit == "B",
            unit_divisor=1024,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def update(self, n: int) -> None:
        super().update(n)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def progress_factory(quiet: bool) -> type[Progress]:
    """Bars only when stderr is a terminal and not --quiet."""
    return Progress if quiet or not sys.stderr.isatty() else BarProgress
