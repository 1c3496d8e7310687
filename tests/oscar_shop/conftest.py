"""Keep the Oscar shop out of every pytest session but its own.

The main session (``--ds=tests.settings``) has no Oscar installed in Django, so it must not
import the shop or its suite; tests/test_oscar_shop.py runs them in a session of their own.
"""

import os

OSCAR_SETTINGS = "tests.oscar_shop.myshop.test_settings"

collect_ignore = [] if os.environ.get("DJANGO_SETTINGS_MODULE") == OSCAR_SETTINGS else ["myshop", "tests"]
