"""System checks: configuration a deployment gets wrong before the first search.

``manage.py check`` runs the settings checks (settings.py, with the shop's models in catalog.py and
the pages' mounts in pages.py) and where a router writes; the database ones (``--database``, and
every ``migrate``) look at pgvector (database.py). Importing this package registers them all.
"""

from p2w_search.checks.database import check_database_routes, check_vector_extension, vector_extension_problems
from p2w_search.checks.pages import check_photo_storage
from p2w_search.checks.settings import check_settings

__all__ = ["check_settings", "check_photo_storage", "check_database_routes", "check_vector_extension",
           "vector_extension_problems"]
