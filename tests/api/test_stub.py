"""The native module's type stub stays honest."""

import subprocess
import sys


def test_core_stub_matches_runtime():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rmapsim._core"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
