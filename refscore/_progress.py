"""Progress bars for long loops: tqdm in a terminal when installed (extra ``progress``), else a
quiet stand-in; in a non-terminal (CI logs, ``make tour > log``) one plain line every
``LINE_EVERY_PERCENT`` percent, never ``\\r`` updates."""
from __future__ import annotations

import sys

LINE_EVERY_PERCENT = 10


class _Plain:
    """A bar for a terminal without tqdm (``\\r`` updates) or, with ``lines=True``, a log line
    each time another ``LINE_EVERY_PERCENT`` percent is done, with the last postfix (the loss)."""

    def __init__(self, total, desc, lines=False):
        self.total, self.desc, self.n, self.lines = total, desc, 0, lines
        self._last, self._post = 0, ""

    def update(self, k=1):
        self.n += k
        pct = int(100 * self.n / max(self.total, 1))
        if pct // LINE_EVERY_PERCENT != self._last // LINE_EVERY_PERCENT:
            self._last = pct
            text = f"{self.desc}: {pct:3d}% ({self.n}/{self.total}){self._post}"
            if self.lines:
                print(text, file=sys.stderr, flush=True)
            else:
                print("\r" + text, end="", file=sys.stderr, flush=True)

    def set_postfix(self, **kw):
        self._post = "".join(f" {k}={v}" for k, v in kw.items())

    def close(self):
        if not self.lines:
            print(file=sys.stderr)


class _Null:
    def update(self, k=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def progress(total, desc, enabled=True):
    """A progress bar over ``total`` steps (``enabled=False``: none): tqdm in a terminal, plain
    lines every ``LINE_EVERY_PERCENT`` percent where stderr is not a terminal."""
    if not enabled:
        return _Null()
    if not getattr(sys.stderr, "isatty", lambda: False)():
        return _Plain(total, desc, lines=True)
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
    except ImportError:
        return _Plain(total, desc)
