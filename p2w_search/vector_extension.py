"""The pgvector extension: which version p2w_search needs, and the migration operation that creates it.

Creating an extension that is not marked trusted (pgvector is not) takes a superuser. A
shop's migrating role often is not one; then the migration stops with what to do instead of
PostgreSQL's bare "permission denied".
"""

import re

from django.core.management.base import CommandError
from django.db.utils import ProgrammingError
from pgvector.django import VectorExtension

__all__ = ["MIN_VERSION", "parse_version", "create_hint", "ExtensionNotCreated", "CreateVectorExtension"]

# hnsw.iterative_scan, which keeps a filtered search from returning fewer than k rows, came in 0.8.0.
MIN_VERSION = (0, 8)

_INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE


def parse_version(text):
    """``"0.8.5"`` -> ``(0, 8)``: the part of a pgvector version that decides what it can do."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def create_hint(database):
    """What a user does when the migrating role may not create the extension in ``database``."""
    return (f"Ask a superuser to run CREATE EXTENSION vector; in database {database!r} "
            f"(psql -d {database} -c 'CREATE EXTENSION vector;').")


class ExtensionNotCreated(CommandError):
    """The migrating role may not create the ``vector`` extension; the message says what to do.

    A CommandError, so ``manage.py migrate`` prints the message alone, not a traceback.
    """


class CreateVectorExtension(VectorExtension):
    """``CREATE EXTENSION vector`` (pgvector's operation), failing with the remedy when it is refused."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        try:
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        except ProgrammingError as exc:
            cause = exc.__cause__
            if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) != _INSUFFICIENT_PRIVILEGE:
                raise
            settings = schema_editor.connection.settings_dict
            role = f"role {settings['USER']!r}" if settings.get("USER") else "the connecting role"
            reason = str(cause).strip().splitlines()[0]  # PostgreSQL's own hint ("Must be superuser") follows
            raise ExtensionNotCreated(
                f"p2w_search needs the 'vector' extension (pgvector) in database {settings['NAME']!r}, and {role} "
                f"may not create it (PostgreSQL: {reason}). {create_hint(settings['NAME'])} Then run migrate again."
            ) from exc
