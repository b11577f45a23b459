"""Run one task per item (a host, a VM) in a thread pool; collect a result or an error per item."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from labctl.errors import LabctlError, ProvisionError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    name: str
    value: R | None = None
    error: BaseException | None = None


def in_parallel(
    task: Callable[[T], R], items: Iterable[T], name: Callable[[T], str], workers: int = 32
) -> list[Outcome[R]]:
    items = list(items)
    if not items:
        return []

    def one(item: T) -> Outcome[R]:
        try:
            return Outcome(name(item), value=task(item))
        except Exception as exc:  # never a bare exception from a worker thread
            return Outcome(name(item), error=exc)

    if len(items) == 1:
        return [one(items[0])]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(one, items))


def raise_failures(outcomes: list[Outcome], step: str) -> None:
    """One error naming every host that failed, and why."""
    failed = [o for o in outcomes if o.error is not None]
    if not failed:
        return
    if len(failed) == 1 and isinstance(failed[0].error, LabctlError):
        raise failed[0].error
    lines = [
        f"{o.name}: {o.error}"
        if isinstance(o.error, LabctlError)
        else f"{o.name}: {type(o.error).__name__}: {o.error}"
        for o in failed
    ]
    raise ProvisionError(", ".join(o.name for o in failed), step, "\n  " + "\n  ".join(lines))
