"""Run the exporter against the built-in simulated BCC API: the README's `make run`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exporter.cli import main as exporter_main
from exporter.simulator import DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY, Simulator

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo.yml"


def main() -> int:
    """Start the simulator in the background, then the exporter in the foreground."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:10041", help="exporter listen address")
    options = parser.parse_args()
    with Simulator() as simulator:
        os.environ["BCC_DEMO_ACCESS_KEY_ID"] = DEMO_ACCESS_KEY_ID
        os.environ["BCC_DEMO_SECRET_ACCESS_KEY"] = DEMO_SECRET_ACCESS_KEY
        os.environ["BCC_SIMULATOR_ENDPOINT"] = simulator.endpoint
        host = options.listen.rsplit(":", 1)[0] or "127.0.0.1"
        port = options.listen.rsplit(":", 1)[1]
        print(f"simulated BCC API: {simulator.endpoint}", flush=True)
        print(f"metrics:           http://{host}:{port}/metrics  (Ctrl-C stops)", flush=True)
        return exporter_main(
            ["--config.file", str(DEMO_CONFIG), "--web.listen-address", options.listen]
        )


if __name__ == "__main__":
    sys.exit(main())
