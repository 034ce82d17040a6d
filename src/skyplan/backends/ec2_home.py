"""What the `aws` backend keeps on this machine, and where it finds AWS credentials.

    <home>/aws/id_skyplan        the SSH key every instance gets (ed25519, 0600), made once
    <home>/aws/id_skyplan.pub    its public half, for the user's convenience
    <home>/aws/regions.json      every region a launch was ever made in (read by `down`)
    <home>/aws/known_hosts       the instances' pinned SSH host keys

The other VM clouds (`gcp`, `azure`) keep the same files under `<home>/<cloud>` through the same
`CloudHome`; what their "places" file records (if they use it) is theirs to say.

Writes are atomic (a temporary file renamed or linked into place) and the read-modify-write
files are locked, so concurrent skyplan processes share them safely. No network here.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str
    token: str | None
    source: str  # where they were found, for `skyplan check`


def find_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """AWS credentials from the environment, else from the shared credentials file's profile
    (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_PROFILE`, default `default`); None when neither has
    them. Other sources (SSO, instance roles, `credential_process`) are not read."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN"), "the environment")
    path = Path(
        environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials"
    ).expanduser()
    profile = environ.get("AWS_PROFILE") or "default"
    parser = configparser.ConfigParser()
    with contextlib.suppress(OSError, configparser.Error):
        parser.read(path)
    if not parser.has_option(profile, "aws_access_key_id") or not parser.has_option(
        profile, "aws_secret_access_key"
    ):
        return None
    section = parser[profile]
    return Credentials(
        section["aws_access_key_id"],
        section["aws_secret_access_key"],
        section.get("aws_session_token"),
        f"{path} [{profile}]",
    )


class CloudHome:
    """The files under `<home>/<cloud>`: the SSH key, the pinned host keys, and the places
    (regions, resource groups, …) launches were made in, recorded in `<places>.json`."""

    def __init__(self, home: Path, cloud: str, places: str = "regions") -> None:
        self.dir = home / cloud
        self.known_hosts = self.dir / "known_hosts"
        self.identity_file = self.dir / "id_skyplan"
        self._key = places
        self._places = self.dir / f"{places}.json"

    def places(self) -> list[str]:
        """Every place a launch was ever made in, in the order they were first used."""
        try:
            return [str(r) for r in json.loads(self._places.read_text())[self._key]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def touch(self, place: str) -> None:
        """Record `place` as one that may hold nodes (call it before creating any)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"{self._key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = self.places()
            if place in known:
                return
            tmp = self._places.with_suffix(".tmp")
            tmp.write_text(json.dumps({self._key: [*known, place]}, indent=1) + "\n")
            tmp.replace(self._places)

    def public_key(self) -> str:
        """The OpenSSH public key of `id_skyplan`, generating the key pair the first time."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = self.identity_file
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            with contextlib.suppress(FileExistsError):  # another process made one first
                os.link(tmp, path)
            tmp.unlink()
        private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pub = path.with_name(path.name + ".pub")
        if not pub.exists():
            pub.write_bytes(public + b" skyplan\n")
        return public.decode()

    def forget_hosts(self, hosts: Iterable[str]) -> None:
        """Drop the known-hosts lines of `hosts`: clouds give their addresses to other machines,
        whose new keys would otherwise be refused as a changed key."""
        names = {h for h in hosts if h}
        names |= {f"[{h}]:22" for h in names}
        if not names or not self.known_hosts.exists():
            return
        with open(self.known_hosts, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            lines = f.readlines()
            kept = [ln for ln in lines if not set(ln.split(" ", 1)[0].split(",")) & names]
            if kept != lines:
                f.seek(0)
                f.writelines(kept)
                f.truncate()


class AwsHome(CloudHome):
    """The files under `<home>/aws`; its places are regions."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, "aws", "regions")

    def regions(self) -> list[str]:
        """Every region a launch was ever made in, in the order they were first used."""
        return self.places()
