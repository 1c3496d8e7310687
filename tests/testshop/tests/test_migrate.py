"""The test shop's first ``migrate`` on an empty database, the system checks on, no launcher helping.

As tests/test_migrate.py does for the demo, in a subprocess on a database of its own.
"""

import io
import os
import subprocess
import sys

from django.core.management import call_command

from tests.test_migrate import fresh_database, sql, url
from tests.workers import REPO_DIR


def manage(*args, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "tests.testshop.settings"}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout + done.stderr


def column_type(database, table, column):
    rows = sql(f"SELECT data_type FROM information_schema.columns WHERE table_name = '{table}' "
               f"AND column_name = '{column}'", database=database)
    return rows[0][0]


def test_migrate_on_an_empty_database_with_the_checks_on():
    with fresh_database() as name:
        status, output = manage("migrate", "--noinput", database_url=url(name))

        assert status == 0, output
        assert "System check identified" not in output, output  # migrate runs every check, the database's too
        for migration in ("testshop.0001_initial", "p2w_search.0001_initial", "p2w_search.0007_shop_image_mirror"):
            assert f"Applying {migration}... OK" in output
        # The app's keys follow the shop's: a UUID product, the custom user's bigint.
        assert column_type(name, "p2w_search_productimage", "product_id") == "uuid"
        assert column_type(name, "p2w_search_importjob", "owner_id") == "bigint"


def test_no_migration_is_missing(db):
    """Neither the test shop's nor the app's: the app's migrations follow the shop's key types by themselves."""
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "No changes detected"
