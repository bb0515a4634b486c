"""Library-wide settings."""
from contextlib import contextmanager

_config = {"bound_decrease": "warn"}
_OPTIONS = {"bound_decrease": ("warn", "raise", "ignore")}


def get_config():
    """Return a copy of the current settings."""
    return dict(_config)


def set_config(bound_decrease=None):
    """Change library-wide settings.

    Parameters
    ----------
    bound_decrease : {'warn', 'raise', 'ignore'}, optional
        What a fit does when its lower bound decreases between iterations by more than a
        relative 1e-10 (a symptom of a wrong update): warn with ``BoundDecreaseWarning``
        (default), raise ``FloatingPointError`` (useful while debugging), or ignore it.
    """
    if bound_decrease is not None:
        if bound_decrease not in _OPTIONS["bound_decrease"]:
            raise ValueError(f"bound_decrease must be one of {_OPTIONS['bound_decrease']}, "
                             f"got {bound_decrease!r}")
        _config["bound_decrease"] = bound_decrease


@contextmanager
def config_context(**settings):
    """Temporarily change settings: ``with config_context(bound_decrease='raise'): ...``."""
    old = get_config()
    set_config(**settings)
    try:
        yield
    finally:
        _config.update(old)
