"""Thread-count resolution and BLAS thread limiting around the OpenMP kernels."""
import os
import threading
import time
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

_controller = None
# BLAS thread limits are process-wide, so concurrent fits (Python threads) share one limit:
# the first to enter applies it, the last to leave restores the caller's setting.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


def available_cores():
    """Number of cores this process may run on (honours CPU affinity where the OS has it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# libgomp is not fork-safe: a child forked after the parent ran a multi-threaded OpenMP region
# hangs in its first multi-threaded region (the parent's worker threads do not exist in the
# child, but libgomp believes they do). So once a pass may have used several threads, a forked
# child runs every pass on one thread (a region of one thread needs no workers). Results do
# not depend on the thread count, so the child computes the same numbers, serially.
_parallel_used = False
_serial_after_fork = False


def _after_fork_in_child():
    global _serial_after_fork
    _serial_after_fork = _serial_after_fork or _parallel_used


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _granted(n_threads):
    """The threads a pass may use: at most the cores available (more only time-slice the
    same cores, and each one costs a thread start), and one in a child forked after the
    parent ran parallel passes."""
    global _parallel_used
    if _serial_after_fork:
        return 1
    n_threads = max(1, min(n_threads, available_cores()))
    if n_threads > 1:
        _parallel_used = True
    return n_threads


def resolve_n_threads(n_threads, n_jobs=None):
    """Map the user's ``n_threads`` to the positive number of threads the passes may use.

    ``None`` means every available core; a negative value counts back from it, as in joblib
    (-1 = all cores, -2 = all but one); more than the available cores means all of them. In a
    process forked after parallel passes ran, always 1 (libgomp is not fork-safe).
    ``n_jobs``, scikit-learn's name for an estimator that has it, is an alias: used when
    ``n_threads`` is None; giving both with different values is an error.
    """
    name = "n_threads"
    if n_jobs is not None:
        if n_threads is not None and n_threads != n_jobs:
            raise ValueError(f"n_jobs is an alias of n_threads: give one of them, got "
                             f"n_threads={n_threads!r} and n_jobs={n_jobs!r}")
        n_threads, name = n_jobs, "n_jobs"
    if n_threads is None:
        return _granted(available_cores())
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int,)) and not hasattr(
            n_threads, "__index__"):
        raise TypeError(f"{name} must be an int or None, got {n_threads!r}")
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError(f"{name} must be a non-zero int or None, got 0")
    if n_threads < 0:
        return _granted(available_cores() + 1 + n_threads)
    return _granted(n_threads)


# A parallel region costs microseconds on an idle machine but a scheduler time slice (several
# milliseconds) when the cores are busy; below this many rows per thread it is not worth it.
MIN_ROWS_PER_THREAD = 1024


def threads_for(n_threads, work, min_work_per_thread=MIN_ROWS_PER_THREAD, n_groups=None):
    """Threads worth using for a pass over ``work`` units (rows, non-zeros, tokens): at most
    ``n_threads`` (resolved), one per ``min_work_per_thread`` units, at most ``n_groups``
    (a group is one thread's unit of work), at least one.

    The kernels' results do not depend on the thread count, so this only affects speed.
    """
    n = min(n_threads, work // min_work_per_thread)
    if n_groups is not None:
        n = min(n, n_groups)
    return _granted(int(max(1, n)))


def cores_busy():
    """Whether other threads are running on every core besides the caller's right now
    (``runnable_threads``, this thread counted; the 1-minute load average where the count is
    not available, False without either). A fit's own earlier threads have stopped by the
    time it asks, so they do not count against it, as they would in a load average."""
    running = runnable_threads()
    if running is not None:
        return running >= available_cores()
    try:
        return os.getloadavg()[0] >= available_cores()
    except (AttributeError, OSError):
        return False


def runnable_threads():
    """Threads runnable on the machine right now (a snapshot, this one included): Linux's
    count in /proc/loadavg; None where it is not available."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


class ShortRegionThreads:
    """Threads for a stream of short parallel regions (an online fit's mini-batches, a few
    milliseconds of work each): ``threads_for`` with ``min_idle`` units of work a thread
    while the other cores are idle (a region then costs microseconds), ``min_busy`` while
    other threads compete for them (a region then waits a scheduler time slice for a
    descheduled thread: 1.2 ms of work on one thread took 15 ms on two at load 7).

    Whether the cores are idle is a snapshot (``runnable_threads``) refreshed at most every
    ``refresh`` seconds, counting this process as the threads of its widest region since the
    last snapshot (its workers may still be spinning). Results never depend on it: the
    kernels give the same bits for any thread count."""

    def __init__(self, n_threads, refresh=0.5):
        self.n_threads = n_threads
        self.refresh = refresh
        self._checked = None
        self._free = 0  # cores besides the caller's that no other thread wants
        self._widest = 1

    def free_cores(self):
        """Cores besides the calling thread's that no other thread was running on at the last
        snapshot (0 without a count)."""
        now = time.monotonic()
        if self._checked is None or now - self._checked >= self.refresh:
            running = runnable_threads()
            if running is None:
                self._free = 0
            else:
                others = max(0, running - self._widest)
                self._free = max(0, available_cores() - 1 - others)
            self._checked = now
            self._widest = 1
        return self._free

    def __call__(self, work, min_busy, min_idle, n_groups=None):
        free = self.free_cores() if self.n_threads > 1 else 0
        if free:
            n = min(threads_for(self.n_threads, work, min_idle, n_groups), 1 + free)
        else:
            n = threads_for(self.n_threads, work, min_busy, n_groups)
        self._widest = max(self._widest, n)
        return n


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while our own OpenMP threads call it (no oversubscription).

    The controller that inspects the loaded libraries is built once per process, because
    doing so costs milliseconds. Re-entrant and thread-safe: nested or concurrent uses
    (several fits in several Python threads) hold one shared limit, released by the last one,
    so the caller's BLAS setting is restored exactly once, after every fit is done. (While a
    fit runs, BLAS is single-threaded for the whole process: the setting is process-wide.)
    """
    global _controller, _blas_users, _blas_limiter
    with _blas_lock:
        if _controller is None:
            _controller = ThreadpoolController()
        if _blas_users == 0:
            _take_blas_control()
            _blas_limiter = _controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _take_blas_control()  # the last fit may run in another thread than the first
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
                _release_blas_control()


# threadpoolctl (>= 3.6) lets only one Python thread, the first to set a limit, change a
# pthreads OpenBLAS's process-wide pool; other threads' limits are silently ignored. Without
# this, a fit in a worker thread (after any fit in the main thread) would run BLAS on every
# core inside our OpenMP threads. The calls are guarded: older threadpoolctl has no such rule.
def _openblas_controller_class():
    cls = getattr(threadpoolctl, "OpenBLASController", None)
    return cls if hasattr(cls, "clear_controlling_thread") else None


def _take_blas_control():
    cls = _openblas_controller_class()
    if cls is not None:
        cls.clear_controlling_thread(force=True)


def _release_blas_control():
    cls = _openblas_controller_class()
    if cls is not None:
        cls.clear_controlling_thread()
