"""sandbox.analysis reads results only: it never imports measuring, load, the server or config."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sandbox.analysis

FORBIDDEN = ("sandbox.measure", "sandbox.load", "sandbox.server", "sandbox.config.settings")
# The result file's load section is made of these pure data modules (no Locust, no processes):
# results imports them, so analysis sees them through results, and only them of sandbox.load.
RESULT_DATA = ("sandbox.load", "sandbox.load.models", "sandbox.load.spec", "sandbox.load.stats")
ALLOWED = (
    "sandbox.analysis",
    # the result model and its sections (by concept), their one serialisation, and its files
    "sandbox.results.model",
    "sandbox.results.conditions",
    "sandbox.results.sampling",
    "sandbox.results.summary",
    "sandbox.results.releases",
    "sandbox.results.heap",
    "sandbox.results.thresholds",
    "sandbox.results.shapes",
    "sandbox.results.files",
    "sandbox.errors",
    "sandbox.units",
    "sandbox.__version__",
    "sandbox.config.flag_names",
)
"""The package's version string is allowed too: the report names the sandbox that wrote it; and
the flags' spellings, so that the commands it prints to reproduce a run use the CLI's own flags."""
MODULES = sorted(
    f"sandbox.analysis.{m.name}" for m in pkgutil.iter_modules(sandbox.analysis.__path__)
)


def loaded_after_import(modules: list[str]) -> list[str]:
    """The sandbox modules in sys.modules of a fresh interpreter after importing `modules`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('sandbox'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def forbidden(loaded: list[str]) -> list[str]:
    return [
        m
        for m in loaded
        if m not in RESULT_DATA and any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
    ]


def test_every_analysis_module_is_checked() -> None:
    assert {
        "answer",
        "compare",
        "groups",
        "html",
        "metrics",
        "plot",
        "report",
        "reproduce",
        "sections",
        "stats",
        "svg",
        "tdist",
        "verdict",
    } <= {m.rsplit(".", 1)[1] for m in MODULES}


def test_importing_analysis_loads_no_measuring_load_server_or_config_module() -> None:
    loaded = loaded_after_import(MODULES)
    assert set(MODULES) <= set(loaded)
    assert forbidden(loaded) == []
    # the check sees such an import when there is one: experiment.py reads config
    assert "sandbox.config.settings" in forbidden(
        loaded_after_import(["sandbox.experiment.definition"])
    )


def test_analysis_sources_import_only_results_errors_and_each_other() -> None:
    """Also the imports inside functions, which the sys.modules check does not run."""
    folder = Path(sandbox.analysis.__file__).parent
    outside = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = (
                    [node.module]
                    if node.module != "sandbox"
                    else [f"sandbox.{a.name}" for a in node.names]
                )
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "sandbox" and not name.startswith(ALLOWED):
                    outside.append(f"{path.name}: {name}")
    assert outside == []
