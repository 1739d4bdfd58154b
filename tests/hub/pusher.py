"""One push in its own process, for the fault tests and the fault run:
``python -m tests.hub.pusher HUB_ROOT FOLDER REPO [GO_FILE]``.

Prints ``ready`` when imported and about to push (after waiting for GO_FILE to appear, when given, so
that two pushers start together), then one JSON line: ``{"revision", "created", "previous"}``. Set
``ZOO_HUB_FAULT`` to kill or pause it at a named point of the push (see `zoo.hub._fault`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from zoo.hub import LocalHub


def main(argv: list[str]) -> int:
    root, folder, repo, *go = argv
    hub = LocalHub(root)
    print("ready", flush=True)
    while go and not Path(go[0]).exists():
        time.sleep(0.001)
    pushed = hub.push(folder, repo)
    print(json.dumps({"revision": str(pushed), "created": pushed.created, "previous": pushed.previous}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
