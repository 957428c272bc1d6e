"""structlog imported for barrierd without rich, which barrierd's JSON lines never use.

structlog.dev and structlog.tracebacks import rich (and with it pygments) whenever it is installed, ≈ 4.6 MiB;
barrierd has no console renderer and renders exceptions without locals, the only parts that would use it.
"""

from __future__ import annotations

import sys


def import_structlog_without_rich() -> None:
    """Import structlog with rich hidden, unless either is already loaded; rich stays importable afterwards."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError: structlog's fallback
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


import_structlog_without_rich()
