"""The agent: what runs inside every Python process of a server the harness starts.

It reads the allocator's own counters (allocator.py), pymalloc's (pymalloc.py) and the
interpreter's (process.py), asks the allocator for memory back, and serves both on a private
Unix socket (channel.py, ops.py, protocol.py). The harness injects it with
inject/sitecustomize.py on the child's PYTHONPATH, so the user's code is not changed.

It stands alone: standard library and ctypes only, relative imports only, nothing from the
rest of `sandbox`, and Python 3.8 syntax and library, because it runs in the user's own
virtualenv and interpreter. Importing the package starts nothing; `channel.start()` does.
"""
