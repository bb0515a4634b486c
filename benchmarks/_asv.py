"""asv settings shared by the benchmark classes (nothing here is named like an asv benchmark,
so asv's discovery skips it)."""


class OneCallSamples:
    """A benchmark whose every call is a whole measurement (a fit, a pass, a sweep): one call
    a sample, one round, no warm-up calls. The class itself sets ``repeat`` and ``timeout``
    (and ``params``)."""

    number = 1
    rounds = 1
    warmup_time = 0
