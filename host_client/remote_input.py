"""Applying the technician's input, only as far as grant ∩ consent allows.

Every input message is checked against :class:`~host_client.authority.Authority`
when it arrives; a refused one is counted and reported back (never applied),
an allowed one is queued to a single worker thread that owns the input
backend, so injections happen in arrival order and never block the event loop.
Keys and buttons held down are tracked, so revoking control or ending the
session releases them instead of leaving a stuck Shift or a dragging mouse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from peer.events import EventReporter
from protocol.channel import (
    InputMessageT,
    Key,
    PointerButton,
    PointerMove,
    Refused,
    Text,
    Wheel,
    to_pixel,
    typed_text,
)
from protocol.permissions import Permission

from .authority import Authority
from .capture import Monitor
from .input_backend import InputBackend, InputUnavailable
from .keymap import KeyTarget, UnknownKey, resolve_key

log = logging.getLogger(__name__)

REPORT_INTERVAL = 0.2
"""Refused pointer moves (dozens a second) are reported at most this often per reason;
every other refusal is reported on its own, with its seq."""
MAX_QUEUED_INPUTS = 500
"""Inputs waiting for the injection worker; beyond, new ones are refused (typing long
texts is slow, and a technician must not queue up minutes of input)."""


@dataclass
class HeldInputs:
    """Which keys and buttons the technician holds down right now."""

    keys: dict[str, KeyTarget] = field(default_factory=dict)
    buttons: set[str] = field(default_factory=set)

    def key(self, code: str, target: KeyTarget, down: bool) -> None:
        if down:
            self.keys[code] = target
        else:
            self.keys.pop(code, None)

    def button(self, name: str, down: bool) -> None:
        (self.buttons.add if down else self.buttons.discard)(name)

    def take_all(self) -> tuple[list[KeyTarget], list[str]]:
        """Everything held, forgetting it (the caller releases it)."""
        keys, buttons = list(self.keys.values()), sorted(self.buttons)
        self.keys.clear()
        self.buttons.clear()
        return keys, buttons


@dataclass
class RefusalThrottle:
    """Counts refusals and decides which are reported; the running total goes with each report."""

    interval: float = REPORT_INTERVAL
    total: int = 0
    _last: dict[str, float] = field(default_factory=dict)

    def count(self, what: str, reason: str, now: float) -> bool:
        self.total += 1
        if what != "pointer_move":
            return True
        last = self._last.get(reason)
        if last is not None and now - last < self.interval:
            return False
        self._last[reason] = now
        return True


class RemoteInput:
    """The host's input gate and injector for one session."""

    def __init__(
        self,
        authority: Authority,
        monitor: Callable[[], Monitor],
        report: Callable[[Refused], None],
        *,
        backend_factory: Callable[[], InputBackend],
        trace: Callable[[int, float], None] | None = None,
        reporter: EventReporter | None = None,
        log_keystrokes: Callable[[], bool] = lambda: False,
    ) -> None:
        self._authority = authority
        self._monitor = monitor
        self._report = report
        self._backend_factory = backend_factory
        self._backend: InputBackend | None = None
        self._trace = trace
        self._reporter = reporter
        self._log_keystrokes = log_keystrokes
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="remote-input")
        self._held = HeldInputs()
        self._throttle = RefusalThrottle()
        self._queued = 0
        """Inputs submitted to the worker and not yet done."""
        self._queue_lock = threading.Lock()
        self.applied = 0

    @property
    def refused(self) -> int:
        return self._throttle.total

    def refuse(self, seq: int | None, what: str, reason: str, *, tell: bool = True) -> None:
        """Count a refusal and report it to the technician (throttled; not at all without ``tell``)."""
        if self._reporter is not None:
            self._reporter.count("input.refused")
        if self._throttle.count(what, reason, time.monotonic()) and tell:
            self._report(Refused(seq=seq, what=what, reason=reason, refused_total=self._throttle.total))

    def handle(self, message: InputMessageT) -> bool:
        """Apply ``message`` if control is allowed now; True when it was queued for injection."""
        reason = self._authority.refusal(Permission.control)
        if reason is not None:
            self.refuse(message.seq, message.type, reason)
            return False
        if self._queued >= MAX_QUEUED_INPUTS:
            self.refuse(message.seq, message.type, f"the host is still applying {self._queued} earlier inputs")
            return False
        try:
            action = self._plan(message)
        except UnknownKey as unknown:
            self.refuse(message.seq, message.type, str(unknown))
            return False
        if self._reporter is not None and self._log_keystrokes():
            typed = typed_text(message)
            if typed:
                self._reporter.add("input.text", text=typed)
        self._submit(message.seq, action)
        return True

    def release_all(self) -> None:
        """Release every held key and button (control was revoked, or the session ends)."""
        keys, buttons = self._held.take_all()
        if not keys and not buttons:
            return

        def release(backend: InputBackend) -> None:
            for target in keys:
                backend.key(target, False)
            for name in buttons:
                backend.button(name, False)

        self._submit(None, release)

    def close(self) -> None:
        """Release what is held and wait for queued injections to finish."""
        self.release_all()
        self._worker.submit(self._close_backend)
        self._worker.shutdown(wait=True)

    def _close_backend(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception as exc:  # noqa: BLE001 - the session is ending either way
                log.warning("could not undo input changes on this desktop: %s", exc)

    def _plan(self, message: InputMessageT) -> Callable[[InputBackend], None]:
        if isinstance(message, PointerMove):
            x, y = self._pixel(message.x, message.y)
            return lambda b: b.move(x, y)
        if isinstance(message, PointerButton):
            x, y = self._pixel(message.x, message.y)
            self._held.button(message.button, message.down)
            name, down = message.button, message.down

            def press(b: InputBackend) -> None:
                b.move(x, y)
                b.button(name, down)

            return press
        if isinstance(message, Wheel):
            x, y = self._pixel(message.x, message.y)
            dx, dy = message.dx, message.dy

            def scroll(b: InputBackend) -> None:
                b.move(x, y)
                b.scroll(dx, dy)

            return scroll
        if isinstance(message, Key):
            target = resolve_key(message.code, message.key)
            self._held.key(message.code, target, message.down)
            down = message.down
            return lambda b: b.key(target, down)
        assert isinstance(message, Text)
        text = message.text
        return lambda b: b.type_text(text)

    def _pixel(self, x: float, y: float) -> tuple[int, int]:
        m = self._monitor()
        return to_pixel(x, m.left, m.width), to_pixel(y, m.top, m.height)

    def _submit(self, seq: int | None, action: Callable[[InputBackend], None]) -> None:
        with self._queue_lock:
            self._queued += 1
        self._worker.submit(self._run, seq, action)

    def _run(self, seq: int | None, action: Callable[[InputBackend], None]) -> None:
        try:
            self._inject(seq, action)
        finally:
            with self._queue_lock:
                self._queued -= 1

    def _inject(self, seq: int | None, action: Callable[[InputBackend], None]) -> None:
        try:
            if self._backend is None:
                self._backend = self._backend_factory()
            action(self._backend)
        except InputUnavailable as exc:
            log.error("%s", exc)
            self._report(Refused(seq=seq, what="input", reason=str(exc), refused_total=self._throttle.total))
            return
        except Exception as exc:  # noqa: BLE001 - one bad injection must not stop the next
            log.warning("input %s could not be applied: %s", seq, exc)
            self._report(Refused(seq=seq, what="input", reason=f"the host could not apply it: {exc}",
                                 refused_total=self._throttle.total))
            return
        self.applied += 1
        if self._reporter is not None:
            self._reporter.count("input.applied")
        if self._trace is not None and seq is not None:
            self._trace(seq, time.monotonic())
