"""Progress bars for long work (rich), silent when output is not a terminal."""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def progress_over(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on stderr."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as prog:
        task = prog.add_task(description, total=total)
        for it in items:
            yield it
            prog.advance(task)
