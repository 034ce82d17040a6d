"""Optional SDKs: the packages each backend needs beyond skyplan's core, the pip extra that
installs them, and the stand-in built when one is missing.

`pip install skyplan` is the planner, the policy language, the store and the local backend;
`skyplan[ssh]`, `[aws]`, `[gcp]`, `[azure]`, `[kubernetes]` (or `[all]`) add the backends. A
backend whose packages are absent is still registered: `skyplan check` says what to install,
launch planning skips it as unusable, and any other call raises `BackendNotInstalled` with the
same sentence, never an `ImportError` from deep inside a call.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from skyplan.backends.base import Backend, BackendFactory, BackendSettings, CommandRunner
from skyplan.errors import PermanentBackendError
from skyplan.model.node import BackendCheck, Capabilities, Node, PoolOffer, ProvisionRequest

_SSH = {"paramiko": "paramiko"}
_LIBCLOUD = {"libcloud": "apache-libcloud", **_SSH}

#: Backend name → {module it imports: the distribution that provides it}. The pip extra is the
#: backend's name; pyproject.toml's extras must list these distributions (a test checks).
NEEDS: Mapping[str, Mapping[str, str]] = {
    "ssh": _SSH,
    "aws": {**_LIBCLOUD, "cryptography": "cryptography"},
    "gcp": _LIBCLOUD,
    "azure": _LIBCLOUD,
    "kubernetes": {
        "kubernetes": "kubernetes",
        "urllib3": "urllib3",
        "websocket": "websocket-client",
    },
}


def absent(backend: str) -> list[str]:
    """The distributions `backend` needs that cannot be imported here (without importing them)."""
    return [
        dist
        for module, dist in NEEDS.get(backend, {}).items()
        if importlib.util.find_spec(module) is None
    ]


def install_hint(backend: str, missing: Sequence[str]) -> str:
    what = ", ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"the {backend} backend needs {what}, which {verb} not installed:"
        f" pip install 'skyplan[{backend}]'"
    )


class BackendNotInstalled(PermanentBackendError):
    """A backend's SDK is not installed here."""


@dataclass
class NotInstalled:
    """Stands in for a backend whose packages are missing: `check` says what to install, every
    other call raises `BackendNotInstalled` saying the same."""

    name: str
    missing: tuple[str, ...]
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def reason(self) -> str:
        return install_hint(self.name, self.missing)

    def _refuse(self) -> BackendNotInstalled:
        return BackendNotInstalled(self.reason)

    def check(self) -> BackendCheck:
        return BackendCheck(backend=self.name, ok=False, reason=self.reason)

    def offers(self) -> Sequence[PoolOffer]:
        return ()

    def provision(self, request: ProvisionRequest) -> list[Node]:
        raise self._refuse()

    def nodes(self, cluster: str) -> list[Node]:
        raise self._refuse()

    def runner(self, node: Node) -> CommandRunner:
        raise self._refuse()

    def stop(self, cluster: str) -> None:
        raise self._refuse()

    def start(self, cluster: str) -> list[Node]:
        raise self._refuse()

    def terminate(self, cluster: str) -> None:
        raise self._refuse()

    def owned(self) -> dict[str, list[Node]]:
        raise self._refuse()


def needs(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Decorate a backend factory: it builds its backend when `name`'s packages are importable,
    else the `NotInstalled` stand-in."""

    def wrap(factory: BackendFactory) -> BackendFactory:
        @functools.wraps(factory)
        def build(settings: BackendSettings) -> Backend:
            missing = absent(name)
            return NotInstalled(name, tuple(missing)) if missing else factory(settings)

        return build

    return wrap
