"""The pricing and availability catalog (Polars): schema, loaders, vocabulary.

May import model, errors and polars; never the solver, DSL or backends.
"""

from skyplan.catalog.catalog import Catalog, default_catalog_path, load_catalog

__all__ = ["Catalog", "default_catalog_path", "load_catalog"]
