"""`sandbox inspect PID`: memory of a process the sandbox did not start, read from outside.

One concept per module, in the order a look runs:

- access      does the process exist, may we read and trace it; the messages when not
- smaps       /proc/PID/smaps: RSS by anonymous / file-backed and by kind of mapping
- detection   which allocator serves malloc, from /proc/PID/maps and LD_PRELOAD
- symbols     which symbol files gdb reads before the attach, at which addresses
- gdb_session one gdb batch session: the command, its answer, its failures
- in_gdb      what runs inside gdb's own Python: the calls into the target (stands alone)
- normalise   native counters -> in_use_bytes / held_bytes, as sandbox.server.introspect
- pymalloc    CPython's `_PyObject_DebugMallocStats` report, parsed
- snapshot    the model of one look and its JSON form
- inspection  one look: /proc, then gdb
- watch       looks every few seconds; verdict    where the growth went, in compare's words
- render      the terminal text
"""
