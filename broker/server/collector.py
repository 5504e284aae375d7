"""How the broker's garbage collector runs: seldom, and never over what the broker built at start.

Why: a broker holding thousands of signalling sockets holds millions of objects that live as
long as their connections. With CPython's defaults (a young collection every 700 net
allocations, the oldest generation every 100 young ones, when it grew by a quarter) short-lived
request objects were promoted before they died, and while sessions kept arriving the collector
walked the whole heap every 5-13 s, each time longer: 0.4 s at a thousand sockets, 1.3 s at
ten thousand (``bench/broker_load.py --phases idle --idle-sessions 10000``, timed with
``gc.callbacks``), and nothing else ran meanwhile, no request and no signalling message.

So, once the broker is built: a last full collection, then everything alive is frozen out of
the collector's walks (imports, the app, the route table: they live as long as the process),
and young collections wait for :data:`YOUNG_THRESHOLD` net allocations, so that the objects of
a request are freed by their reference counts before the collector ever looks at them.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net allocations of tracked objects between young collections (CPython's default: 700)."""
OLDER_THRESHOLDS = (20, 20)
"""Young collections per middle one, middle ones per full one (CPython's: 10, 10); a full one
also waits until the objects promoted since the last one are a quarter of those it kept."""


def settle_collector() -> None:
    """Collect once, freeze what is alive now, and make young collections rare (see the module)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
