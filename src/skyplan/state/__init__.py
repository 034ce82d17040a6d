"""The state store: what skyplan knows of its clusters, jobs and launches, shared by every
process on the machine (SQLite) or by several machines (PostgreSQL).

May import only `skyplan.model`, `skyplan.errors` and SQLAlchemy.
"""

from skyplan.state.engine import default_url
from skyplan.state.lease import Lease
from skyplan.state.store import Store

__all__ = ["Lease", "Store", "default_url"]
