"""Started by `site` in every Python process whose PYTHONPATH begins with this folder.

When SANDBOX_AGENT_DIR names the run's private folder, it starts the sandbox agent (the
package one level up, loaded under a private name so it cannot clash with the host program's
modules), which also starts in every child forked later. Then it runs the sitecustomize that
this one hides, the next one on sys.path, so the host's own customisation still happens; its
errors are reported by `site` as they would be without us.

Kept to Python 3 syntax any interpreter can read: a too-old one skips the agent, not the chain.
"""

import os
import sys

_AGENT_PACKAGE = "_sandbox_agent"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _start_agent() -> None:
    folder = os.environ.get("SANDBOX_AGENT_DIR")
    if not folder or _AGENT_PACKAGE in sys.modules:  # unset, or started by another copy
        return
    if sys.version_info < (3, 8):
        version = ".".join(str(part) for part in sys.version_info[:2])
        sys.stderr.write(
            f"sandbox agent (pid {os.getpid()}): not started: Python {version} is older than 3.8\n"
        )
        return
    try:
        import importlib.util

        package_dir = os.path.dirname(_HERE)
        spec = importlib.util.spec_from_file_location(
            _AGENT_PACKAGE,
            os.path.join(package_dir, "__init__.py"),
            submodule_search_locations=[package_dir],
        )
        if spec is None or spec.loader is None:
            raise ImportError("no package at " + package_dir)
        package = importlib.util.module_from_spec(spec)
        sys.modules[_AGENT_PACKAGE] = package
        spec.loader.exec_module(package)
        channel = importlib.import_module(_AGENT_PACKAGE + ".channel")
        channel.start(folder)
        importlib.import_module(_AGENT_PACKAGE + ".periodic_trim").start_from_environ()
    except Exception as exc:  # the host program must start whatever happens here
        sys.stderr.write(f"sandbox agent (pid {os.getpid()}): not started: {exc!r}\n")


def _chain() -> None:
    """Run the sitecustomize that would have been imported had this folder not come first."""
    import importlib.machinery
    import importlib.util

    here = os.path.realpath(_HERE)
    later = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", later)
    if spec is None or spec.loader is None:
        return
    ours = sys.modules.get("sitecustomize")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # as if it were the one `site` imported
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        raise


_start_agent()
_chain()
