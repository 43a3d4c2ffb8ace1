"""The lines that deploy an arm: a Dockerfile's apt-get and ENV, a systemd unit's Environment=,
a Kubernetes container's env:, and code where variables alone do not do it."""

from __future__ import annotations

import json
import os

from sandbox.advise.catalogue import Arm
from sandbox.allocators.registry import KNOWN_LIBRARY_DIRS, find_library


def preload_path(library: str) -> str:
    """The library's path on this machine, else where Debian's amd64 packages put it."""
    if os.sep in library:
        return library
    return find_library(library) or f"{KNOWN_LIBRARY_DIRS[0]}/{library}"


def variables(arm: Arm) -> dict[str, str]:
    """Every variable a deployment of `arm` sets, LD_PRELOAD first."""
    env: dict[str, str] = {}
    if arm.library is not None:
        env["LD_PRELOAD"] = preload_path(arm.library)
    env.update(arm.deployed_env)
    return env


def _quoted(value: str) -> str:
    return json.dumps(value)


def lines(arm: Arm) -> list[str]:
    """The deploy lines of `arm`, grouped under a heading per target."""
    env = variables(arm)
    if not env and not arm.deploy_code:
        return [f"{arm.name}: nothing to deploy (glibc malloc with its defaults)"]
    out: list[str] = []
    if env:
        out.append("Dockerfile:")
        if arm.package and arm.package != "libc6":
            out.append(
                f"  RUN apt-get update && apt-get install -y --no-install-recommends "
                f"{arm.package} && rm -rf /var/lib/apt/lists/*"
            )
        out += [f"  ENV {k}={_quoted(v)}" for k, v in env.items()]
        out.append("systemd unit ([Service]):")
        out += [f"  Environment={_quoted(f'{k}={v}')}" for k, v in env.items()]
        out.append("Kubernetes (container spec):")
        out.append("  env:")
        for k, v in env.items():
            out += [f"    - name: {k}", f"      value: {_quoted(v)}"]
    if arm.deploy_code:
        out.append("In the service, at start-up (Python):")
        out += [f"  {line}" if line else "" for line in arm.deploy_code.splitlines()]
    return out
