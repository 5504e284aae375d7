"""``python -m host_client``, and the entry point of the single-file ``deskhand-host`` (scripts/build-host)."""

import sys

from host_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
