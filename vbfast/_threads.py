"""Thread-count resolution and BLAS thread limiting around the OpenMP kernels."""
import os
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_controller = None


def available_cores():
    """Number of cores this process may run on (honours CPU affinity where the OS has it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_n_threads(n_threads):
    """Map the user's ``n_threads`` to a positive int.

    ``None`` means every available core; a negative value counts back from it, as in joblib
    (-1 = all cores, -2 = all but one).
    """
    if n_threads is None:
        return available_cores()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int,)) and not hasattr(
            n_threads, "__index__"):
        raise TypeError(f"n_threads must be an int or None, got {n_threads!r}")
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads must be a non-zero int or None, got 0")
    if n_threads < 0:
        return max(1, available_cores() + 1 + n_threads)
    return n_threads


# A parallel region costs microseconds on an idle machine but a scheduler time slice (several
# milliseconds) when the cores are busy; below this many rows per thread it is not worth it.
MIN_ROWS_PER_THREAD = 1024


def threads_for(n_threads, n_samples):
    """Threads worth using for a pass over ``n_samples`` rows (never more than asked).

    The kernels' results do not depend on the thread count, so this only affects speed.
    """
    return int(max(1, min(n_threads, n_samples // MIN_ROWS_PER_THREAD)))


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while our own OpenMP threads call it (no oversubscription).

    The controller that inspects the loaded libraries is built once per process, because
    doing so costs milliseconds.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
