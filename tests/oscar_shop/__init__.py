"""A django-oscar 4.2 shop that adds p2w-search by configuration, and the suite that proves it (issue 10).

``myshop/`` is the shop as an Oscar user would write it: Oscar's documented settings and
URLs, plus what p2w-search needs (the block marked in ``myshop/settings.py``, the URL include,
the Celery app, one serializer); ``myshop/test_settings.py`` points it at the test run's
services and the tiny test CLIP. ``tests/`` is its suite: a pytest session of its own
(``--ds=tests.oscar_shop.myshop.test_settings``) that ``tests/test_oscar_shop.py`` starts
from the main suite.
"""
