"""Progress reporting: the library calls a Progress; the CLI decides how (or whether) it is shown.

In a terminal the bars are tqdm's, and log lines are written through tqdm while a command runs, so that a line
never lands inside a bar and a finished bar leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


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


def bars_shown(quiet: bool) -> bool:
    """Bars only when stderr is a terminal and not --quiet."""
    return not quiet and sys.stderr.isatty()


def progress_factory(quiet: bool) -> type[Progress]:
    return BarProgress if bars_shown(quiet) else Progress


@contextlib.contextmanager
def logging_through_bars(quiet: bool) -> Iterator[None]:
    """While the block runs, log records are written above the bars (tqdm.write) rather than across them."""
    if not bars_shown(quiet):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield
