"""The app's own test shop: a catalog of another shape than the demo's (README, issue 20).

Products keyed by UUID, a user model that logs in by email and has no ``username``, brands
keyed by a slug, a category tree, prices and stock on stock records, and an image model of
its own that the index follows (``P2W_SEARCH["IMAGE_MODEL"]``). Its tests
(``tests/testshop/tests/``) run as a pytest session of their own with
``--ds=tests.testshop.settings``; ``tests/test_testshop.py`` starts that session from the
main suite.
"""
