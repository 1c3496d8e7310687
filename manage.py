#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_demo.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # a value the settings refuse (shop_demo/settings.py) is one line, not a traceback
    except ImproperlyConfigured as exc:
        sys.exit(str(exc))
    execute_from_command_line(sys.argv)
