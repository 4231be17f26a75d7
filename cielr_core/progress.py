"""Progress and cancel hooks, so library code can report to any front end.

ComfyUI adapters pass a bar and an interrupt check; the command line passes tqdm; tests pass
nothing. Library code calls ``progress.advance()`` between units of work and
``progress.check()`` wherever stopping is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Progress:
    on_advance: Callable[[int, int], None] | None = None  # (done, total)
    on_check: Callable[[], None] | None = None  # raises to cancel
    total: int = 1
    done: int = 0

    def start(self, total: int) -> "Progress":
        self.total, self.done = max(1, total), 0
        self._report()
        return self

    def advance(self, n: int = 1) -> None:
        self.check()
        self.done = min(self.total, self.done + n)
        self._report()

    def check(self) -> None:
        if self.on_check is not None:
            self.on_check()

    def _report(self) -> None:
        if self.on_advance is not None:
            self.on_advance(self.done, self.total)


NO_PROGRESS = Progress()
