"""Progress: tqdm bars (``tqdm.auto``: a widget in Jupyter, a text bar on standard error
elsewhere) and the hook through which long native calls report theirs.

- **Native calls.** A long call (``rmap_walk`` over a million pages, ``fork_many``,
  ``apply`` of a long trace, ``fuzz``) releases the GIL and polls for Ctrl-C at chunk
  boundaries, re-taking the GIL at most every 20 ms. The same poll passes the call's
  progress, ``(call, done, total)`` in pages, operations or children (``total`` 0 when
  unknown), to the hook this module installs (``_core._set_progress_hook``), so it costs
  no other re-take of the GIL. The hook hands it to the handler of the current context
  (:func:`reporting`; a sweep's bar, ``rmapsim fuzz``'s line), else to the default one,
  which shows a bar for a call that has run for a second. A handler's exception stops the
  call at its next chunk boundary, as Ctrl-C does, and is raised from it.
- **Sweeps.** :class:`Runs` is ``study.sweep(progress=True)``'s bar over the runs, with an
  ETA; the run in progress and its native call's progress go in its postfix.

Bars are drawn where they can be redrawn in place (:func:`live`: standard error is a
terminal, or a notebook shows a widget). In a log (a file or a pipe) a :class:`LineBar`
prints a line every 5 s instead, and nothing for what ends sooner, so a command's error
stays one line.

Everything is off with :func:`set_enabled` ``(False)`` (what ``--quiet`` does), inside
``with disabled():``, or with ``RMAPSIM_PROGRESS=0`` in the environment;
``sweep(progress=False)`` turns off one sweep's. Progress goes to standard error (or the
notebook's widget), never to standard output.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional

from . import _core
from .errors import InvalidArgument, short_repr

#: A native call's progress handler: ``handler(call, done, total, finished)``.
Handler = Callable[[str, int, int, bool], None]

#: The unit of each native call's items.
UNITS = {
    "rmap_walk": "page",
    "page_referenced": "page",
    "try_to_unmap": "page",
    "contention": "page",
    "fork_many": "child",
    "exit_many": "process",
    "touch_many": "process",
    "apply": "op",
    "fuzz": "op",
}

#: A native call shows the default bar once it has run this long (seconds).
DELAY = 1.0

_enabled = os.environ.get("RMAPSIM_PROGRESS", "1").strip().lower() not in ("0", "off", "no", "false")
_handler: contextvars.ContextVar[Optional[Handler]] = contextvars.ContextVar("rmapsim_progress", default=None)


def enabled() -> bool:
    """Is progress shown (bars, the default native-call bar, ``fuzz``'s lines)?"""
    return _enabled


def set_enabled(on: bool) -> bool:
    """Show progress or not (``--quiet`` is ``set_enabled(False)``); returns the previous
    setting."""
    global _enabled
    if not isinstance(on, bool):
        raise InvalidArgument(f"on must be True or False, got {short_repr(on)}")
    prev, _enabled = _enabled, on
    return prev


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """No progress inside the block."""
    prev = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(prev)


@contextlib.contextmanager
def reporting(handler: Handler) -> Iterator[None]:
    """Native calls made in this context (this thread, this task) report their progress to
    ``handler(call, done, total, finished)`` instead of the default bar. An exception the
    handler raises (not with ``finished=True``) stops the call and is raised from it."""
    if not callable(handler):
        raise InvalidArgument(f"handler must be a callable, got {short_repr(handler)}")
    token = _handler.set(handler)
    try:
        yield
    finally:
        _handler.reset(token)


def _ignore(call: str, done: int, total: int, finished: bool) -> None:
    """The handler of :func:`silenced`."""


def silenced() -> contextlib.AbstractContextManager[None]:
    """No progress from the native calls made in this context (other threads and tasks
    keep theirs, unlike :func:`disabled`)."""
    return reporting(_ignore)


#: Where progress is not live (standard error a file or a pipe, no notebook), a line is
#: printed at most this often (seconds), the first one this long after the start.
LINE_EVERY = 5.0


def live() -> bool:
    """Can a bar be redrawn in place: is standard error a terminal, or does ``tqdm.auto``
    draw a notebook widget?"""
    if bool(getattr(sys.stderr, "isatty", lambda: False)()):
        return True
    from tqdm.auto import tqdm

    return any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)


def bar(total: Optional[int], desc: str, unit: str, leave: bool = True) -> Any:
    """A ``tqdm.auto`` bar on standard error (a widget in a notebook) where progress is
    :func:`live`; elsewhere (a log) a :class:`LineBar` with the same methods."""
    if not live():
        return LineBar(total, desc, unit)
    from tqdm.auto import tqdm

    try:  # a terminal of no size (a pty nobody sized) would get an empty bar
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        sized = False
    return tqdm(
        total=total or None,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=leave,
        mininterval=0.1,
        dynamic_ncols=sized,
        ncols=None if sized else 100,
        nrows=None if sized else 20,
        disable=False,
    )


def _now() -> float:
    """The clock of :class:`LineBar` (tqdm's: ``time.time``)."""
    return time.time()


class LineBar:
    """The part of a tqdm bar that :class:`Runs` and the default handler use, printing a
    line to standard error every :data:`LINE_EVERY` seconds instead of redrawing (a log
    gets a few lines, a short run none), and a last one on :meth:`close` if it printed any:
    ``fork_storm: 83/84 runs (99%), 42 s, ETA 1 s, running 2.6.33 children=10000 pages=100``."""

    mininterval = LINE_EVERY

    def __init__(self, total: Optional[int], desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total or 0, desc, unit
        self.n, self.postfix = 0, ""
        self.start_t = _now()
        self._next = self.start_t + LINE_EVERY
        self.printed = False

    def update(self, k: int = 1) -> None:
        self.n += k
        self.refresh(due=True)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def refresh(self, due: bool = True) -> None:
        now = _now()
        if due and now < self._next:
            return
        self._next = now + LINE_EVERY
        self.printed = True
        elapsed = now - self.start_t
        of = (
            f"/{self.total:,} {self.unit}s ({min(self.n, self.total) / self.total:.0%})"
            if self.total
            else f" {self.unit}s"
        )
        eta = f", ETA {elapsed / self.n * (self.total - self.n):.0f} s" if self.total and self.n else ""
        post = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n:,}{of}, {elapsed:.0f} s{eta}{post}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.printed:
            self.postfix = ""
            self.refresh(due=False)


def _percent(call: str, done: int, total: int) -> str:
    unit = UNITS.get(call, "item")
    if total:
        return f"{call or 'native call'} {min(done, total) / total:.0%} of {total:,} {unit}s"
    return f"{call or 'native call'} {done:,} {unit}s"


class _CallBar(threading.local):
    """The default handler: a bar for a native call that has run :data:`DELAY` seconds
    (one call at a time per thread)."""

    def __init__(self) -> None:
        self.t0: Optional[float] = None
        self.bar: Any = None
        self.broken = False

    def __call__(self, call: str, done: int, total: int, finished: bool) -> None:
        if self.broken:
            return
        try:
            self._show(call, done, total, finished)
        except Exception as e:  # noqa: BLE001 - a display failure must not fail the call
            self.broken = True
            print(f"rmapsim: progress display failed ({type(e).__name__}: {e}); no more bars", file=sys.stderr)

    def _show(self, call: str, done: int, total: int, finished: bool) -> None:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        if self.bar is None and not finished and _enabled and now - self.t0 >= DELAY:
            self.bar = bar(total, call or "native call", UNITS.get(call, "item"), leave=False)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        if finished:
            if self.bar is not None:
                self.bar.close()
            self.t0, self.bar = None, None


_default = _CallBar()


def _hook(call: str, done: int, total: int, finished: bool) -> None:
    """The hook the native calls report to (installed on import)."""
    handler = _handler.get()
    if handler is not None:
        handler(call, done, total, finished)
    elif _enabled or _default.bar is not None:
        _default(call, done, total, finished)


def quiet_option(parser: Any, run: Callable[[Any], int]) -> None:
    """Give a subcommand's ``parser`` a ``--quiet`` option (no progress on stderr) and
    ``run`` as its command, run with progress off when ``--quiet`` is given."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars on stderr")

    def quiet_run(args: Any) -> int:
        if not getattr(args, "quiet", False):
            return run(args)
        with disabled():
            return run(args)

    parser.set_defaults(run=quiet_run)


class Lines:
    """A native-call handler printing a line to standard error every ``every`` seconds:
    the items done, their rate over the last interval and overall, and the share of the
    total when known (``rmapsim fuzz``'s ``[fuzz] era 6.18: 1,234,567 ops ...`` lines;
    log-friendly where a bar is not)."""

    def __init__(self, prefix: str, every: float = 5.0) -> None:
        self.prefix, self.every = prefix, every
        self.t0 = time.monotonic()
        self._last = (self.t0, 0)

    def __call__(self, call: str, done: int, total: int, finished: bool) -> None:
        now = time.monotonic()
        t, n = self._last
        if finished or not _enabled or now - t < self.every:
            return
        self._last = (now, done)
        unit = UNITS.get(call, "item")
        of = f" of {total:,} ({min(done, total) / total:.0%})" if total else ""
        print(
            f"{self.prefix}{done:,}{of} {unit}s, {(done - n) / (now - t):,.0f} {unit}s/s "
            f"(mean {done / (now - self.t0):,.0f}), {now - self.t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )


class Runs:
    """A sweep's progress: a bar over its runs with an ETA. :meth:`start` names the run in
    progress; native calls made inside :meth:`running` show their progress after it (a
    long run is not silent); :meth:`tick` redraws the bar (its elapsed time) while runs
    on other processes are still going.

    The bar appears once there is something to show: a run finished, a native call of a
    run reported (it has run for a poll interval), or a redraw while workers run. A sweep
    whose first run fails at once (a bad parameter value) prints nothing but its error.
    Its clock starts with the sweep all the same."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.bar: Any = None
        self.t0 = time.time()
        self.label = ""
        self._last = 0.0

    def _shown(self) -> Any:
        if self.bar is None:
            self.bar = bar(self.total, self.desc, "run")
            self.bar.start_t = self.t0  # elapsed and rate count from the sweep's start
            self.bar.set_postfix_str(self.label, refresh=False)
        return self.bar

    def start(self, label: str) -> None:
        self.label = label
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)

    def _native(self, call: str, done: int, total: int, finished: bool) -> None:
        now = time.monotonic()
        if finished or now - self._last < max(0.25, self.bar.mininterval if self.bar else 0):  # polls: 20 ms
            return
        self._last = now
        b = self._shown()
        b.set_postfix_str(f"{self.label}: {_percent(call, done, total)}", refresh=False)
        b.refresh()

    def running(self) -> contextlib.AbstractContextManager[None]:
        """The context of one run made in this process."""
        return reporting(self._native)

    def done(self, n: int) -> None:
        b = self._shown()
        b.update(n - b.n)

    def tick(self, postfix: str) -> None:
        b = self._shown()
        b.set_postfix_str(postfix, refresh=False)
        b.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str("", refresh=False)
            self.bar.close()


_core._set_progress_hook(_hook)
