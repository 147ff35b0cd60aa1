"""A progress display on stderr when stderr is a terminal; nothing otherwise."""

from __future__ import annotations

import sys

from pysock.status import start_beside_main


class NullProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass


class Progress(NullProgress):
    """rich.progress on stderr; total None means bytes with a rate (transfers)."""

    def __init__(self, description: str, total: int | None, color: bool, unit: str = "items"):
        from rich import progress as rp

        from pysock.render.style import console

        columns = [rp.TextColumn("{task.description}"), rp.BarColumn()]
        if unit == "bytes":
            columns += [rp.DownloadColumn(), rp.TransferSpeedColumn()]
        else:
            columns += [rp.MofNCompleteColumn(), rp.TaskProgressColumn()]
        if unit not in ("bytes", "items"):  # a named unit also shows its rate: "1,234 probes/s"
            columns.append(_rate_column(rp, unit))
        columns += [rp.TimeElapsedColumn(), rp.TimeRemainingColumn()]
        self._progress = rp.Progress(*columns, console=console(sys.stderr, color), transient=True)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)

    def __enter__(self) -> Progress:
        start_beside_main(self._progress.start)  # rich's refresh thread
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()


def _rate_column(rp, unit: str):
    from rich.text import Text

    class Rate(rp.ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")
    return Rate()


def progress(description: str, total: int | None, *, enabled: bool, color: bool,
             unit: str = "items") -> NullProgress:
    if not enabled or not sys.stderr.isatty():
        return NullProgress()
    return Progress(description, total, color, unit)


class TransferProgress:
    """A relay tap showing bytes sent and received, with rates, on stderr."""

    sees_bytes = False

    def __init__(self, color: bool):
        from rich import progress as rp

        from pysock.render.style import console
        self._progress = rp.Progress(rp.TextColumn("{task.description}"), rp.DownloadColumn(),
                                     rp.TransferSpeedColumn(), rp.TimeElapsedColumn(),
                                     console=console(sys.stderr, color), transient=True)
        self._tasks = {">": self._progress.add_task("sent", total=None),
                       "<": self._progress.add_task("received", total=None)}

    def __call__(self, direction: str, count: int) -> None:
        self._progress.advance(self._tasks[direction], count)

    def __enter__(self) -> TransferProgress:
        start_beside_main(self._progress.start)  # rich's refresh thread
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()
