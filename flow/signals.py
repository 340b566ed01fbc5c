"""Orderly termination of a ``tconv`` command on SIGINT, SIGTERM and SIGHUP.

Inside :func:`handle_signals` each of the three signals (in the main thread,
where Python runs its handlers; one that another thread took is handed on, see
:class:`_Forwarder`) first ends every process tconv started (the whole tree: cocotb's runner
starts ``make``, which starts the compiler, and the simulator ``vvp`` or the
Verilator binary), then raises :class:`Terminated`, a ``KeyboardInterrupt``
carrying the signal number. So ``with`` blocks and ``finally`` clauses run as
for Ctrl-C (temporary folders are removed, and no simulator still writes into
them), ``except Exception`` never swallows it, and ``subprocess.run`` reaps its
child on the way out. The command line then calls :func:`stopped`, which makes
sure no descendant is left, prints one line and gives the shell's exit status:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP (128 + the signal number).

Once a signal has arrived, further ones are ignored until the command returns:
the clean-up it started is not interrupted, and leaves no traceback.

Descendants are found through ``/proc`` (Linux); elsewhere there is none to end.
A signal that comes before :func:`handle_signals` (while Python starts and
imports tconv) has its default effect: SIGTERM and SIGHUP end the process, which
has started nothing yet; SIGINT raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings

__all__ = ["Terminated", "handle_signals", "stopped", "end_descendants", "descendants", "SIGNALS"]

#: The signals handled: SIGINT (Ctrl-C), SIGTERM (kill, timeout), SIGHUP (terminal closed).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_stopping = False


class Terminated(KeyboardInterrupt):
    """A signal asked tconv to stop; ``signum`` says which, ``status`` is the exit status."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def status(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def _on_signal(signum, frame):
    global _stopping
    if _stopping:  # a second signal while the first one's clean-up runs
        return
    _stopping = True
    _ignore_further()
    end_descendants()
    raise Terminated(signum)


def _ignore(signum, frame):
    pass


def _ignore_further() -> None:
    """Replace our handlers by one that does nothing (not SIG_IGN, which children would inherit)."""
    for signum in SIGNALS:
        with contextlib.suppress(ValueError, OSError, TypeError):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, _ignore)


class _Forwarder:
    """Hands every signal on to the main thread.

    The kernel gives a process's signal to any thread that does not block it, and
    numpy's BLAS threads do not: one of them may take it while the main thread
    waits for a child (``subprocess.run`` in cocotb's runner). Python's C handler
    then only takes note, and the main thread goes on waiting, for the whole
    simulation. The note includes a byte on the wakeup fd (whichever thread ran
    the handler): this thread reads it and sends the signal to the main thread
    itself (``pthread_kill``), which interrupts the wait.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active = False
        self._thread = None
        self._fds = None
        self._previous_fd = -1

    def start(self) -> None:
        if not hasattr(signal, "pthread_kill"):
            return
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            self._previous_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return
        self._fds, self._active = (r, w), True
        self._thread = threading.Thread(target=self._run, args=(r, threading.main_thread().ident),
                                        name="tconv-signals", daemon=True)
        self._thread.start()

    def _run(self, fd: int, main_ident: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # never this thread's to take
        while True:
            try:
                data = os.read(fd, 512)
            except OSError:
                return
            if not data:
                return
            ours = [n for n in data if n in SIGNALS]
            with self._lock:
                if not ours or not self._active or _stopping:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    signal.pthread_kill(main_ident, ours[0])
            # The forwarded signal writes its own byte: give the main thread time to
            # act on it rather than sending it again at once.
            time.sleep(0.05)

    def stop(self) -> None:
        if self._fds is None:
            return
        with self._lock:
            self._active = False
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(self._previous_fd)
        r, w = self._fds
        os.close(w)  # the thread reads the end of the pipe and returns
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            os.close(r)
        self._fds = None


@contextlib.contextmanager
def handle_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Terminated` while the block runs.

    Only in the main thread (where Python runs signal handlers); a signal that
    was ignored on entry (``nohup``, a background job's SIGINT) stays ignored.
    The previous handlers come back on exit.
    """
    global _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stopping = False
    previous = {}
    forwarder = _Forwarder()
    try:
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:
                continue
            previous[signum] = signal.SIG_DFL if current is None else current
            signal.signal(signum, _on_signal)
        forwarder.start()
        yield
    finally:
        forwarder.stop()
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)
        _stopping = False


def stopped(err: KeyboardInterrupt, prog: str = "tconv") -> int:
    """After ``err`` (a :class:`Terminated` or a plain KeyboardInterrupt) reached
    the command line: end what is still running, say so on stderr, return the
    exit status."""
    global _stopping
    _stopping = True
    _ignore_further()
    signum = getattr(err, "signum", signal.SIGINT)
    end_descendants()
    _quiet_unfinished_elaboration()
    if signum == signal.SIGINT:
        message = f"{prog}: interrupted"
    else:
        message = f"{prog}: terminated ({Terminated(signum).name})"
    # After SIGHUP the terminal may be gone: neither the message nor Python's
    # final flush of stdout may fail (which would print a complaint, exit 120).
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        _to_devnull(sys.stderr)
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        _to_devnull(sys.stdout)
    return 128 + signum


def _quiet_unfinished_elaboration() -> None:
    """An interrupted elaboration leaves Amaranth objects that were never used; their
    'UnusedElaboratable' warnings at exit would follow (and bury) the one-line message."""
    amaranth_ir = sys.modules.get("amaranth.hdl._ir")
    category = getattr(amaranth_ir, "UnusedElaboratable", None)
    if category is not None:
        warnings.filterwarnings("ignore", category=category)


def _to_devnull(stream) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


# --- the process tree, from /proc ----------------------------------------------------------


def _stat(pid: int):
    """(state, ppid, starttime) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        fields = data[data.rindex(b")") + 2:].split()  # the name in parentheses may hold anything
        return fields[0].decode(), int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int | None = None) -> dict[int, int]:
    """Every process below ``root`` (default: this one), as {pid: start time}."""
    root = os.getpid() if root is None else root
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in pids:
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append((pid, st[2]))
    found, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), ()):
            if pid not in found and pid != root:
                found[pid] = start
                todo.append(pid)
    return found


def _alive(pid: int, start: int) -> bool:
    """The process exists, is the one recorded (not a reused pid) and has not ended (zombies have)."""
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in "ZXx"


def _send(pid: int, start: int, sig: int) -> None:
    st = _stat(pid)
    if st is None or st[2] != start:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def end_descendants(grace: float = 2.0, root: int | None = None) -> list[int]:
    """End every process below ``root`` (default: this one); returns their pids.

    The tree is first frozen (SIGSTOP, until no process in it can start another
    one), then sent SIGTERM and SIGCONT; what still runs after ``grace`` seconds
    gets SIGKILL. Bounded in time: at most about ``grace`` + 2 seconds.
    """
    procs: dict[int, int] = {}
    deadline = time.monotonic() + 1.0
    while True:
        new = {pid: start for pid, start in descendants(root).items() if pid not in procs}
        for pid, start in new.items():
            _send(pid, start, signal.SIGSTOP)
        procs.update(new)
        if not new:
            # Stable once everything found has stopped (or ended): a stopped process forks no more.
            states = [_stat(pid) for pid in procs]
            if all(st is None or st[0] in "TtZXx" for st in states) or time.monotonic() > deadline:
                break
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
    if not procs:
        return []
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for pid, start in procs.items():
            _send(pid, start, sig)
    for sig, wait in ((signal.SIGKILL, grace), (None, 1.0)):
        end = time.monotonic() + wait
        while time.monotonic() < end and any(_alive(pid, start) for pid, start in procs.items()):
            time.sleep(0.01)
        if sig is not None:
            for pid, start in procs.items():
                if _alive(pid, start):
                    _send(pid, start, sig)
    return sorted(procs)
