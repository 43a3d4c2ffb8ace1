"""allocator-sandbox: is a service's memory growth heap fragmentation; which allocator fixes it?"""

from __future__ import annotations

__version__ = "0.5.0"
