"""tests.settings for the shop process of tests/test_replica.py: searches read a real streaming replica.

The databases and the search database are the demo's own (shop_demo/settings.py), as
``DATABASE_URL`` and ``DATABASE_REPLICA_URL`` make them, so the test goes through the wiring
a deployment uses. tests.settings replaces "replica" with a second connection to the
primary (for tests/test_search_database.py); that is undone here.
"""

import os

from shop_demo import settings as demo
from tests.settings import *
from tests.settings import P2W_SEARCH

DATABASES = demo.DATABASES
P2W_SEARCH = {**P2W_SEARCH, "SEARCH_DATABASE": demo.P2W_SEARCH["SEARCH_DATABASE"]}
MEDIA_ROOT = os.environ["P2W_REPLICA_MEDIA_ROOT"]
# Tasks sent by the imports stay in this process (nothing consumes them): the shop embeds when the test says so,
# and no worker of the test session takes a task about rows of another database.
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
