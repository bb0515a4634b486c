"""The one grouping rule: how a pass's items (rows, documents, tokens) are cut into groups,
each with its own statistics slot, reduced in group order.

The number of groups depends on the data (and the size of a slot) only, never on the thread
count, which is what makes every kernel's result bitwise identical for any ``n_threads``.
How many threads are worth starting for a pass is ``vbfast._core.threads.threads_for``.
"""


def n_groups(n_items, items_per_group, max_groups):
    """Groups of at least ``items_per_group`` items (fewer for the last), at most
    ``max_groups`` of them, at least one."""
    return int(min(max_groups, max(1, -(-n_items // items_per_group))))
