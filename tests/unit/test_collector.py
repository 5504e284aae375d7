"""broker.server.collector: after settling, what the broker built is frozen and young collections are rare."""

from __future__ import annotations

import json
import subprocess
import sys

from broker.server.collector import OLDER_THRESHOLDS, YOUNG_THRESHOLD


def test_settling_freezes_what_is_alive_and_raises_the_thresholds() -> None:
    # In a process of its own: the collector's settings are the whole interpreter's.
    script = (
        "import gc, json\n"
        "from broker.app import create_app\n"  # what the broker imports and builds at start
        "before = (gc.get_threshold(), gc.get_freeze_count())\n"
        "from broker.server.collector import settle_collector\n"
        "settle_collector()\n"
        "print(json.dumps({'before': before, 'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count(),"
        " 'young': gc.get_count()[0]}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    assert out["before"] == [[700, 10, 10], 0]
    assert out["threshold"] == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    assert out["frozen"] > 100_000  # the imports and the app: no collection walks them again
    assert out["young"] < 1000
