"""The whole schema: the core's tables and every feature slice's, on one ``metadata``.

Alembic's environment (``app/db/migrations/env.py``) and the schema tests read it. It is
a composition root: it imports the slices, so nothing in the core imports it.
"""

from __future__ import annotations

import app.api.models  # noqa: F401
import app.bulk.models  # noqa: F401
import app.console.models  # noqa: F401
import app.db.models  # noqa: F401
import app.gms.models  # noqa: F401
from app.db.base import Base

metadata = Base.metadata
