"""The demo shop's deployment defaults: what a newcomer runs without setting anything."""

import os
import runpy
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.workers import REPO_DIR


def demo_environment(**env):
    """``env`` over this process's environment without DJANGO_*."""
    return {**{key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}, **env}


def read_settings(**env):
    """The names shop_demo/settings.py defines, run as a fresh process would import it under ``env``.

    Run in a namespace of its own (``runpy``): neither ``sys.modules`` nor Django's settings
    change, and it costs milliseconds where a process costs half a second. The environment is
    this process's without DJANGO_*, with ``env`` over it, and is restored afterwards.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(demo_environment(**env))
    try:
        return runpy.run_path(str(REPO_DIR / "shop_demo" / "settings.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def demo_setting(name, **env):
    """The repr of a demo setting (an expression over the settings' names) as it is read under ``env``."""
    return repr(eval(name, {}, read_settings(**env)))


def demo_settings(names, **env):
    """The repr of the tuple of several demo settings, as ``demo_setting`` reads one."""
    settings = read_settings(**env)
    return repr(tuple(eval(name, {}, settings) for name in names))


def demo_settings_error(**env):
    """The line with which the demo settings refuse ``env`` ("" where they do not)."""
    try:
        read_settings(**env)
    except ImproperlyConfigured as exc:
        return str(exc)
    return ""


def test_debug_is_off_unless_asked_for():
    """Debug pages show settings and server paths to whoever triggers an error."""
    assert demo_setting("DEBUG") == "False"
    assert demo_setting("DEBUG", DJANGO_DEBUG="1") == "True"


def test_a_worker_killed_while_it_looked_for_lost_tasks_holds_their_redelivery_back_30_s_at_most():
    """kombu's lock over that look would otherwise outlive the killed worker by 300 s (tests/settings.py)."""
    assert demo_setting("CELERY_BROKER_TRANSPORT_OPTIONS['unacked_mutex_expire']") == "30"


def test_no_forwarded_address_is_trusted_unless_proxies_are_declared():
    assert demo_setting("REST_FRAMEWORK['NUM_PROXIES']") == "0"
    assert demo_setting("REST_FRAMEWORK['NUM_PROXIES']", P2W_NUM_PROXIES="1") == "1"


def test_the_reference_photos_weight_is_the_demo_clips_own_and_zero_for_another_model():
    weight = "P2W_SEARCH['EMBEDDERS']['default']['IMAGE_WEIGHT']"
    assert demo_setting(weight) == "0.5"
    assert demo_setting(weight, P2W_CLIP_MODEL="ViT-L-14") == "0.0"  # pic2word_plus_image is then pic2word
    assert demo_setting(weight, P2W_CLIP_MODEL="ViT-L-14", P2W_IMAGE_WEIGHT="0.25") == "0.25"
    assert demo_setting(weight, P2W_IMAGE_WEIGHT="") == "0.5"


WHOLE_1 = "must be a whole number of at least 1"
WHOLE_0 = "must be a whole number of at least 0"
POSITIVE = "must be a number greater than 0"
WEIGHT = "must be a number of at least 0 (0 makes pic2word_plus_image the paper's pic2word)"
BOOLEAN = "must be true or false (or 1/0, yes/no, on/off)"


@pytest.mark.parametrize(("name", "value", "must_be"), [
    ("P2W_BATCH_SIZE", "abc", WHOLE_1),
    ("P2W_BATCH_SIZE", "0", WHOLE_1),
    ("P2W_BATCH_SIZE", "-5", WHOLE_1),
    ("P2W_BATCH_SIZE", "1.5", WHOLE_1),
    ("P2W_QUERY_BATCH_SIZE", "0", WHOLE_1),
    ("P2W_DEMO_SIZE", "1e3", WHOLE_1),
    ("P2W_IMAGE_THREADS", "0", WHOLE_1),
    ("P2W_VISIBILITY_TIMEOUT", "inf", WHOLE_1),
    ("P2W_NUM_PROXIES", "-1", WHOLE_0),
    ("P2W_NUM_PROXIES", "one", WHOLE_0),
    ("DATABASE_CONN_MAX_AGE", "-1", WHOLE_0),
    ("P2W_SWEEP_EVERY", "nan", POSITIVE),
    ("P2W_SWEEP_EVERY", "0", POSITIVE),
    ("P2W_QUERY_TIMEOUT", "-1", POSITIVE),
    ("P2W_QUERY_TIMEOUT", "abc", POSITIVE),
    ("P2W_SWEEP_AFTER", "inf", POSITIVE),
    ("P2W_IMAGE_WEIGHT", "-1", WEIGHT),
    ("P2W_IMAGE_WEIGHT", "nan", WEIGHT),
    ("P2W_IMAGE_WEIGHT", "abc", WEIGHT),
    ("DJANGO_DEBUG", "ture", BOOLEAN),
    ("DJANGO_DEBUG", "2", BOOLEAN),
    ("P2W_QUERY_ENCODING", "remote", "must be 'worker' or 'local'"),
    ("P2W_LOG_LEVEL", "loud", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("P2W_ANON_SEARCH_RATE", "120", "must be a rate like '120/min' (searches per s, m, h or d), or empty for no limit"),
    ("P2W_DEVICE", "cuda1", "must be 'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1'"),
])
def test_a_value_the_demo_cannot_use_is_refused_in_one_line_that_names_it(name, value, must_be):
    assert demo_settings_error(**{name: value}) == f"{name} {must_be}, not {value!r}."


SETTINGS = ["DEBUG", "REST_FRAMEWORK['NUM_PROXIES']", "DATABASES['default']['CONN_MAX_AGE']",
            "CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']",
            "CELERY_BEAT_SCHEDULE['p2w-sweep-pending']['schedule']", "P2W_SEARCH['EMBEDDERS']['default']['DEVICE']",
            "P2W_SEARCH['EMBEDDERS']['default']['BATCH_SIZE']", "P2W_SEARCH['ANON_SEARCH_RATE']",
            "P2W_SEARCH['QUERY_ENCODING']", "P2W_SEARCH['QUERY_TIMEOUT']", "P2W_SEARCH['QUERY_BATCH_SIZE']",
            "P2W_SEARCH['IMAGE_THREADS']", "P2W_SEARCH['SWEEP_AFTER']", "LOGGING['loggers']['p2w_search']['level']"]
DEFAULTS = (False, 0, 60, 600, 60.0, "auto", 32, "120/min", "worker", 10.0, 8, None, 300.0, "INFO")


@pytest.mark.parametrize(("env", "values"), [
    ({}, DEFAULTS),
    ({"DJANGO_DEBUG": "Yes", "P2W_NUM_PROXIES": "2", "DATABASE_CONN_MAX_AGE": "0", "P2W_VISIBILITY_TIMEOUT": "1",
      "P2W_SWEEP_EVERY": "0.5", "P2W_DEVICE": "cuda:1", "P2W_BATCH_SIZE": " 1 ", "P2W_ANON_SEARCH_RATE": "",
      "P2W_QUERY_ENCODING": "local", "P2W_QUERY_TIMEOUT": "2.5", "P2W_QUERY_BATCH_SIZE": "1",
      "P2W_IMAGE_THREADS": "1", "P2W_SWEEP_AFTER": "1e3", "P2W_LOG_LEVEL": "DEBUG"},
     (True, 2, 0, 1, 0.5, "cuda:1", 1, None, "local", 2.5, 1, 1, 1000.0, "DEBUG")),
    ({"DJANGO_DEBUG": "OFF", "P2W_ANON_SEARCH_RATE": "10/s", "P2W_LOG_LEVEL": "WARNING"},
     (False, 0, 60, 600, 60.0, "auto", 32, "10/s", "worker", 10.0, 8, None, 300.0, "WARNING")),
])
def test_values_the_demo_can_use_give_the_settings_they_gave_before(env, values):
    assert demo_settings(SETTINGS, **env) == repr(values)


def test_an_empty_variable_is_unset_but_an_empty_search_rate_is_no_limit():
    names = ["DJANGO_DEBUG", "P2W_NUM_PROXIES", "DATABASE_CONN_MAX_AGE", "P2W_VISIBILITY_TIMEOUT", "P2W_SWEEP_EVERY",
             "P2W_DEVICE", "P2W_BATCH_SIZE", "P2W_QUERY_ENCODING", "P2W_QUERY_TIMEOUT", "P2W_QUERY_BATCH_SIZE",
             "P2W_IMAGE_THREADS", "P2W_SWEEP_AFTER", "P2W_LOG_LEVEL"]
    assert demo_settings(SETTINGS, **dict.fromkeys(names, "")) == repr(DEFAULTS)
    no_limit = (*DEFAULTS[:7], None, *DEFAULTS[8:])
    assert demo_settings(SETTINGS, **dict.fromkeys(names, " "), P2W_ANON_SEARCH_RATE="") == repr(no_limit)


def test_a_log_level_may_be_written_in_lower_case():
    assert demo_setting("LOGGING['loggers']['p2w_search']['level']", P2W_LOG_LEVEL="warning") == "'WARNING'"


@pytest.mark.parametrize("command", [["manage.py", "check"], ["-m", "celery", "-A", "shop_demo", "worker"]])
def test_manage_py_and_the_workers_say_what_is_wrong_in_one_line_without_a_traceback(command):
    result = subprocess.run([sys.executable, *command], env=demo_environment(P2W_BATCH_SIZE="abc"), cwd=REPO_DIR,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr
    assert result.stderr == "P2W_BATCH_SIZE must be a whole number of at least 1, not 'abc'.\n"
    assert result.returncode == 1


@pytest.mark.parametrize("page", ["999", "two", "0"])
def test_a_storefront_page_that_does_not_exist_is_404(client, db, page):
    assert client.get("/", {"page": page}).status_code == 404
    assert client.get("/", {"page": "1"}).status_code == 200
