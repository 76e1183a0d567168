"""Progress bars for long work: a widget in a notebook, a line in a terminal.

:meth:`labkit.Lab.goto` and :meth:`labkit.Lab.reset` take ``progress=``:
``True`` picks the right bar for where the code runs (see :func:`bar`),
a callable gets ``(done, total)`` calls instead. Building a thousand
namespaces takes a second or two; the bar shows it is working.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

#: how often a bar redraws at most, in seconds
EVERY = 0.05

Callback = Callable[[int, int], None]


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class TextBar:
    """A one-line bar on a terminal, redrawn in place.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = TextBar("build", out, every=0)
    >>> bar(5, 10); bar(10, 10); bar.close()
    >>> out.getvalue().splitlines()[-1].strip()
    'build [##############################] 10/10'
    """

    def __init__(self, label: str, stream: TextIO | None = None, every: float = EVERY) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.every:
            return
        self._last = now
        width = 30
        filled = width * done // max(total, 1)
        line = f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        self.stream.write(line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the line.

        Examples
        --------
        >>> TextBar("x").close()
        """
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


class WidgetBar:
    """An ipywidgets progress bar with a label, shown when first updated.

    Examples
    --------
    >>> bar = WidgetBar("build bridge")  # doctest: +SKIP
    >>> bar(3, 10)  # doctest: +SKIP
    """

    def __init__(self, label: str, every: float = EVERY) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.every = every
        self._last = 0.0
        self._lock = threading.Lock()
        self.bar = w.IntProgress(value=0, min=0, max=1, description=label)
        self.text = w.Label(value="")
        self.box = w.HBox([self.bar, self.text])
        display(self.box)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if done < total and now - self._last < self.every:
                return
            self._last = now
            self.bar.max = max(total, 1)
            self.bar.value = done
            self.text.value = f"{done}/{total} changes"

    def close(self) -> None:
        """Mark the bar finished (it stays visible).

        Examples
        --------
        >>> WidgetBar("x").close()  # doctest: +SKIP
        """
        self.bar.bar_style = "success"


def bar(label: str, progress: bool | Callback | None) -> Any:
    """The callback for ``progress=``: None for no bar.

    ``True`` gives a widget in a notebook and a text line on a terminal
    (none when stderr is not a terminal); a callable is used as it is.

    Examples
    --------
    >>> bar("build", None) is None, bar("build", False) is None
    (True, True)
    >>> calls = []
    >>> bar("build", lambda d, t: calls.append((d, t)))(1, 2); calls
    [(1, 2)]
    """
    if not progress:
        return None
    if callable(progress):
        return progress
    if _in_notebook():
        return WidgetBar(label)
    if sys.stderr.isatty():
        return TextBar(label)
    return None


def close(callback: Any) -> None:
    """Finish a bar made by :func:`bar` (a plain callable is left alone).

    Examples
    --------
    >>> close(None)
    """
    if isinstance(callback, TextBar | WidgetBar):
        callback.close()
