"""The test shop's tests run in a pytest session of its own (``--ds=tests.testshop.settings``).

The main session (``--ds=tests.settings``) does not install this app, so it leaves them
out; tests/test_testshop.py runs them in a subprocess instead.
"""

import os

if os.environ.get("DJANGO_SETTINGS_MODULE") != "tests.testshop.settings":
    collect_ignore = ["tests"]
