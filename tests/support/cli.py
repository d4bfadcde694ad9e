"""What one in-process `modelci` call returned, as the `modelci` fixture (tests/conftest.py)
gives it."""

from __future__ import annotations

import json
from typing import Any


class CliResult:
    """What one in-process `modelci` call printed and returned."""

    def __init__(self, code: int, stdout: str, stderr: str):
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def json(self) -> Any:
        return json.loads(self.stdout)
