"""Which files a process has mapped (/proc/PID/maps), and which of them are malloc replacements.

The functions live in `sandbox.agent.maps` (the agent inside the server needs them and may
import nothing from the rest of `sandbox`); the harness uses them from here.
"""

from __future__ import annotations

from sandbox.agent.maps import allocator_libraries, is_allocator_library, mapped_paths

__all__ = ["allocator_libraries", "is_allocator_library", "mapped_paths"]
