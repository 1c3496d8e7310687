"""The test settings for the browser tests' own pytest session (tests/nested.py): a test database of their own.

Queues of their own too: tests/settings.py draws a new suffix, since the session that starts
this one leaves ``P2W_TEST_QUEUE_SUFFIX`` out of its environment.
"""

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES = {**DATABASES, "default": {**DATABASES["default"], "TEST": {"NAME": "test_p2w_browser"}}}
