"""pymodbus is reached only through drivers/modbus/driver.py (simulators aside), and loading
the config does not import it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"^\s*(from|import)\s+pymodbus\b", re.MULTILINE)


def test_only_the_driver_module_imports_pymodbus() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in ("gateway", "drivers", "rules")
        for path in (ROOT / package).rglob("*.py")
        if IMPORT.search(path.read_text(encoding="utf-8"))
    )
    assert importers == ["drivers/modbus/driver.py", "drivers/simulators/modbus_devices.py"]


def test_loading_the_gateway_config_does_not_import_pymodbus() -> None:
    code = ("import sys, gateway.config, drivers.modbus.mapfile, drivers.modbus.decoder; "
            "print('pymodbus' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
