"""One progress bar over all samples of a run: done (ok and failed) and retried counts, and what is
running now. tqdm draws it when installed; otherwise a line per finished sample goes to stderr."""

from __future__ import annotations

import sys


class _Lines:
    """A line per sample on stderr, when tqdm is not installed."""

    def __init__(self, total: int, disable: bool):
        self.total, self.n, self.disable = total, 0, disable

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        if not self.disable:
            print(f"[{self.n}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class RunProgress:
    """The bar and its counts. ``done`` counts every sample with a result, including those finished in
    an earlier run (``skipped``); ``retried`` counts samples handed out again after their worker died."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.ok = self.failed = self.retried = self.skipped = 0
        self.note = ""
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = _Lines(total, not enabled)
        else:
            self._bar = tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled,
                             dynamic_ncols=True, mininterval=0.5)

    def counts(self) -> str:
        return f"ok {self.ok}, failed {self.failed}, retried {self.retried}"

    def _show(self) -> None:
        self._bar.set_postfix_str(f"{self.note}{' | ' if self.note else ''}{self.counts()}")

    def done(self, failed: bool, skipped: bool = False) -> None:
        """One more sample has its result (``skipped``: from an earlier run)."""
        if failed:
            self.failed += 1
        else:
            self.ok += 1
        self.skipped += skipped
        self._bar.update(1)
        self._show()

    def retry(self) -> None:
        self.retried += 1
        self._show()

    def status(self, text: str) -> None:
        """What is happening now (loading models, a sample's stage, workers ready)."""
        self.note = text
        self._show()

    def close(self) -> None:
        self._bar.close()
