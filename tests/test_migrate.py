"""``manage.py migrate`` and ``check`` on databases of their own, as a shop adding the app runs them.

Each test creates an empty database (and a role) on the test run's PostgreSQL, runs
``manage.py`` in a subprocess with the system checks on and ``DATABASE_URL`` pointing at
it, and drops what it created. No launcher helps: the migrations must create the extension.
"""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg

from tests.workers import REPO_DIR

SERVER_URL = os.environ["DATABASE_URL"]  # set by bin/test: a superuser on the test run's server


def url(database, *, user=None, password=None):
    """``DATABASE_URL`` for ``database`` on the test server, as ``user`` (default: the server URL's)."""
    parts = urlsplit(SERVER_URL)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc, path=f"/{database}").geturl()


def sql(statement, *, database=None):
    """Run one statement as the server URL's superuser (outside a transaction: CREATE DATABASE needs that)."""
    target = url(database) if database else SERVER_URL
    with psycopg.connect(target, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else None


@contextmanager
def fresh_database(*, owner=None):
    """An empty database with a unique name (owned by ``owner``, a role name), dropped afterwards."""
    name = f"p2w_fresh_{uuid.uuid4().hex[:10]}"
    sql(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
    try:
        yield name
    finally:
        sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def role_without_superuser():
    """A login role that is no superuser, as a shop's application role usually is."""
    name, password = f"p2w_app_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    sql(f"CREATE ROLE \"{name}\" LOGIN NOSUPERUSER PASSWORD '{password}'")
    try:
        yield name, password
    finally:
        sql(f'DROP ROLE IF EXISTS "{name}"')


def manage(*args, database_url):
    """Run ``manage.py ARGS`` with the test settings on ``database_url``; return (exit status, output)."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def extension_version(database):
    rows = sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'", database=database)
    return rows[0][0] if rows else None


def test_the_first_migrate_on_a_fresh_database_creates_the_extension():
    available = sql("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")[0][0]
    with fresh_database() as name:
        assert extension_version(name) is None

        status, output = manage("check", "--database", "default", database_url=url(name))
        assert status == 0 and "p2w_search." not in output, output  # nothing to fix before migrating

        status, output = manage("migrate", "--noinput", database_url=url(name))
        assert status == 0, output
        assert "Applying p2w_search.0001_initial... OK" in output
        assert extension_version(name) == available

        status, output = manage("check", "--database", "default", database_url=url(name))
        assert status == 0 and "p2w_search." not in output, output


def test_a_missing_extension_after_the_migrations_is_reported_by_check():
    with fresh_database() as name:
        assert manage("migrate", "--noinput", database_url=url(name))[0] == 0
        sql("DROP EXTENSION vector CASCADE", database=name)  # e.g. a restore that left it out

        status, output = manage("check", "--database", "default", database_url=url(name))

    assert status == 1, output
    assert (f"?: (p2w_search.E011) The 'vector' extension is not installed in database '{name}', though "
            "p2w_search's migrations have run there.") in output
    assert f"HINT: Ask a superuser to run CREATE EXTENSION vector; in database '{name}'" in output


def test_migrate_as_a_role_that_may_not_create_extensions_says_what_to_do():
    with role_without_superuser() as (role, password), fresh_database(owner=role) as name:
        as_role = url(name, user=role, password=password)

        status, output = manage("migrate", "--noinput", database_url=as_role)

        assert status == 1, output
        assert "SystemCheckError" not in output and "Traceback" not in output, output  # the migration speaks
        assert (f"ExtensionNotCreated: p2w_search needs the 'vector' extension (pgvector) in database '{name}', "
                f"and role '{role}' may not create it (PostgreSQL: permission denied to create extension "
                f"\"vector\").") in output
        assert (f"Ask a superuser to run CREATE EXTENSION vector; in database '{name}' "
                f"(psql -d {name} -c 'CREATE EXTENSION vector;'). Then run migrate again.") in output
        assert extension_version(name) is None

        sql("CREATE EXTENSION vector", database=name)  # what the message asks a superuser to do
        status, output = manage("migrate", "--noinput", database_url=as_role)
        assert status == 0, output
        assert "Applying p2w_search.0001_initial... OK" in output


def test_check_warns_when_it_cannot_reach_the_database():
    status, output = manage("check", "--database", "default", database_url=url("p2w_no_such_database"))
    assert status == 0, output  # a warning: the check cannot tell, it does not block
    assert "?: (p2w_search.W011) Could not check for pgvector: " in output
    assert 'database "p2w_no_such_database" does not exist' in output


def test_check_refuses_a_database_that_is_not_postgresql(tmp_path):
    status, output = manage("check", "--database", "default", database_url=f"sqlite:///{tmp_path / 'shop.db'}")
    assert status == 1, output
    assert "?: (p2w_search.E010) p2w_search needs PostgreSQL with the pgvector extension." in output
