"""The allocators a server can run under: the registry of names, libraries, variants and
tunables and how each is preloaded and verified (`registry`), the cores the host offers
(`host_cores`), and which allocator a process's memory maps show loaded (`maps`)."""
