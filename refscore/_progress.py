"""Progress bars for long loops: tqdm when installed (extra ``progress``), else a quiet stand-in."""
from __future__ import annotations

import sys


class _Plain:
    def __init__(self, total, desc):
        self.total, self.desc, self.n, self._last = total, desc, 0, -1

    def update(self, k=1):
        self.n += k
        pct = int(100 * self.n / max(self.total, 1))
        if pct // 10 != self._last // 10:
            self._last = pct
            print(f"\r{self.desc}: {pct:3d}% ({self.n}/{self.total})", end="", file=sys.stderr, flush=True)

    def set_postfix(self, **kw):
        pass

    def close(self):
        print(file=sys.stderr)


class _Null:
    def update(self, k=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def progress(total, desc, enabled=True):
    """A progress bar over ``total`` steps (``enabled=False``: none)."""
    if not enabled:
        return _Null()
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
    except ImportError:
        return _Plain(total, desc)
