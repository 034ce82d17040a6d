"""Backends: the `Backend` protocol (`base`) and its adapters, registered by cloud name.

Adapters import their SDKs (paramiko, kubernetes, libcloud) only when built, so listing or
looking up a backend costs nothing; a backend whose SDK is not installed (an extra not chosen,
`skyplan[aws]`) is built as a `NotInstalled` stand-in that says what to install.
"""

from __future__ import annotations

from skyplan.backends.base import (
    Backend,
    BackendFactory,
    BackendSettings,
    CommandRunner,
    RunResult,
)
from skyplan.backends.installed import needs
from skyplan.registry import Registry


def _local(settings: BackendSettings) -> Backend:
    from skyplan.backends.local import LocalBackend

    return LocalBackend(settings.home)


@needs("ssh")
def _ssh(settings: BackendSettings) -> Backend:
    from skyplan.backends.ssh import SshBackend

    return SshBackend(settings.home, trust_new_hosts=settings.trust_new_host_keys)


@needs("aws")
def _aws(settings: BackendSettings) -> Backend:
    from skyplan.backends.ec2 import Ec2Backend

    return Ec2Backend(settings.home)


@needs("gcp")
def _gcp(settings: BackendSettings) -> Backend:
    from skyplan.backends.gce import GceBackend

    return GceBackend(settings.home)


@needs("azure")
def _azure(settings: BackendSettings) -> Backend:
    from skyplan.backends.azure import AzureBackend

    return AzureBackend(settings.home)


@needs("kubernetes")
def _kubernetes(settings: BackendSettings) -> Backend:
    from skyplan.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(settings.home)


#: Cloud name → factory. Embedders may register their own.
BACKENDS: Registry[BackendFactory] = Registry("backend")
BACKENDS.register("local", _local)
BACKENDS.register("ssh", _ssh)
BACKENDS.register("aws", _aws)
BACKENDS.register("gcp", _gcp)
BACKENDS.register("azure", _azure)
BACKENDS.register("kubernetes", _kubernetes)

#: Backends whose nodes are this machine: they join a launch's candidates only when the task
#: names them (`infra: local`), so a free local node never wins over the user's clouds by default.
EXPLICIT_ONLY = frozenset({"local"})

__all__ = [
    "BACKENDS",
    "EXPLICIT_ONLY",
    "Backend",
    "BackendFactory",
    "BackendSettings",
    "CommandRunner",
    "RunResult",
]
