"""The demo shop's deployment defaults: what a newcomer runs without setting anything."""

import os
import subprocess
import sys

import pytest

from tests.workers import REPO_DIR


def demo_setting(name, **env):
    """The value of a demo setting as a fresh process reads it, with ``env`` over an environment without DJANGO_*."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    code = f"import shop_demo.settings as s; print(repr(s.{name}))"
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=REPO_DIR, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_debug_is_off_unless_asked_for():
    """Debug pages show settings and server paths to whoever triggers an error."""
    assert demo_setting("DEBUG") == "False"
    assert demo_setting("DEBUG", DJANGO_DEBUG="1") == "True"


def test_no_forwarded_address_is_trusted_unless_proxies_are_declared():
    assert demo_setting("REST_FRAMEWORK['NUM_PROXIES']") == "0"
    assert demo_setting("REST_FRAMEWORK['NUM_PROXIES']", P2W_NUM_PROXIES="1") == "1"


def test_the_reference_photos_weight_is_the_demo_clips_own_and_zero_for_another_model():
    weight = "P2W_SEARCH['EMBEDDERS']['default']['IMAGE_WEIGHT']"
    assert demo_setting(weight) == "0.5"
    assert demo_setting(weight, P2W_CLIP_MODEL="ViT-L-14") == "0.0"  # pic2word_plus_image is then pic2word
    assert demo_setting(weight, P2W_CLIP_MODEL="ViT-L-14", P2W_IMAGE_WEIGHT="0.25") == "0.25"
    assert demo_setting(weight, P2W_IMAGE_WEIGHT="") == "0.5"


@pytest.mark.parametrize("page", ["999", "two", "0"])
def test_a_storefront_page_that_does_not_exist_is_404(client, db, page):
    assert client.get("/", {"page": page}).status_code == 404
    assert client.get("/", {"page": "1"}).status_code == 200
