"""Start-up imports only what the gateway needs before it is ready (issue 11, start-up).

``/metrics`` brings in prometheus_client on its first scrape, not while 2,000 devices wait
for the gateway to come up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import gateway.cli, gateway.runtime, gateway.api.server
print("prometheus_client" in sys.modules)
"""


def test_start_up_does_not_import_prometheus_client() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"
