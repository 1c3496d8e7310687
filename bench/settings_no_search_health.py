"""The demo's settings with search health not recorded: the baseline web server of bench/search_health.py."""

from shop_demo.settings import *  # noqa: F403
from shop_demo.settings import P2W_SEARCH

P2W_SEARCH = {**P2W_SEARCH, "SEARCH_HEALTH_CACHE": None}
