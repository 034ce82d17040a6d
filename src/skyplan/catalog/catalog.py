"""`Catalog`: the offers skyplan plans over, loaded lazily once and cached per path.

A catalog is a Polars frame with the columns of `skyplan.catalog.schema`, plus the vocabulary
derived from it (accelerator names, clouds, regions) that the planner and checkers use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import polars as pl

from skyplan.catalog import native, prepared, skypilot
from skyplan.catalog import schema as c
from skyplan.errors import CatalogError
from skyplan.paths import refreshed_catalogs

_CACHE: dict[tuple[str, str], Catalog] = {}


class Catalog:
    """Offers (one row per purchasable node shape and place) and their vocabulary."""

    def __init__(self, loader: Callable[[], pl.DataFrame], origin: str) -> None:
        self._loader = loader
        self.origin = origin

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, origin: str = "<frame>") -> Catalog:
        conformed = c.conform(frame, origin=origin)
        return cls(lambda: conformed, origin)

    def __repr__(self) -> str:
        return f"Catalog({self.origin!r})"

    @cached_property
    def frame(self) -> pl.DataFrame:
        return self._loader()

    def __len__(self) -> int:
        return self.frame.height

    @cached_property
    def accelerators(self) -> tuple[str, ...]:
        return tuple(sorted(self.frame.get_column(c.ACCELERATOR).drop_nulls().unique()))

    @cached_property
    def clouds(self) -> tuple[str, ...]:
        return tuple(sorted(self.frame.get_column(c.CLOUD).unique()))

    @cached_property
    def _accelerators_lower(self) -> dict[str, str]:
        return {name.lower(): name for name in self.accelerators}

    def canonical_accelerator(self, name: str) -> str | None:
        """The catalog's spelling of `name`, matched case-insensitively, or None."""
        return self._accelerators_lower.get(name.lower())

    def regions(self, cloud: str | None = None) -> tuple[str, ...]:
        frame = self.frame if cloud is None else self.frame.filter(pl.col(c.CLOUD) == cloud)
        return tuple(sorted(frame.get_column(c.REGION).unique()))


def _repo_default() -> Path:
    installed = Path(__file__).resolve().parent.parent / "_catalogs" / "default"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / "catalogs" / "default"


def default_catalog_path() -> Path:
    """The shipped default catalog, or `$SKYPLAN_CATALOG` when set."""
    override = os.environ.get("SKYPLAN_CATALOG")
    return Path(override) if override else _repo_default()


def refreshed_files(folder: Path | None = None) -> list[Path]:
    """The catalog files `skyplan catalog refresh` wrote (`$SKYPLAN_HOME/catalogs`), oldest
    first."""
    folder = folder or refreshed_catalogs()
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.suffix in (".csv", ".parquet") and p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _with_refreshed(shipped: Path, files: list[Path]) -> Catalog:
    """The shipped catalog with each refreshed cloud's rows in place of its shipped ones (a
    newer refresh of a cloud replacing an older one)."""
    stamp = prepared.fingerprint(shipped, *files)
    key = ("default+refreshed", stamp)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached

    def build() -> pl.DataFrame:
        frame = native.load(shipped)
        for path in files:
            part = native.load(path)
            clouds = part.get_column(c.CLOUD).unique().to_list()
            frame = pl.concat([frame.filter(~pl.col(c.CLOUD).is_in(clouds)), part])
        return frame

    names = ", ".join(str(p) for p in files)
    catalog = Catalog(lambda: prepared.load(stamp, build), f"{shipped} + refreshed {names}")
    _CACHE[key] = catalog
    return catalog


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """A catalog from `path`: skyplan's format (file or directory) or a SkyPilot v8 directory,
    detected automatically. When `path` is None: `$SKYPLAN_CATALOG` if set, else the shipped
    default with what `skyplan catalog refresh` wrote in its clouds' place. Cached in the
    process and, prepared, on disk (`skyplan.catalog.prepared`) until its files change.
    """
    if path is None and not os.environ.get("SKYPLAN_CATALOG"):
        refreshed = refreshed_files()
        if refreshed:
            return _with_refreshed(_repo_default(), refreshed)
    root = Path(path) if path is not None else default_catalog_path()
    if not root.exists():
        raise CatalogError(f"{root}: catalog not found")
    stamp = prepared.fingerprint(root)
    key = (str(root.resolve()), stamp)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    if skypilot.is_skypilot_dir(root):
        catalog = Catalog(lambda: prepared.load(stamp, lambda: skypilot.load(root)), str(root))
    elif native.is_native(root):
        catalog = Catalog(lambda: prepared.load(stamp, lambda: native.load(root)), str(root))
    else:
        raise CatalogError(
            f"{root}: not a catalog; expected skyplan CSV/Parquet files or a SkyPilot v8 "
            "directory (<cloud>/vms.csv)"
        )
    _CACHE[key] = catalog
    return catalog
