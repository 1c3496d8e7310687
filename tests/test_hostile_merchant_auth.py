"""A hostile review of the merchant login's failure count (merchant/logins.py) and the pages' own CSRF check."""

import logging
import re
import time

import pytest
from django.contrib.auth import forms as auth_forms
from django.test import Client

from p2w_search.merchant import logins
from tests import test_merchant_logins
from tests.test_merchant_logins import LOGIN, WRONG

pytestmark = pytest.mark.django_db

three_an_hour = test_merchant_logins.three_an_hour  # autouse: LOGIN_FAILURE_RATE "3/hour", an empty cache
REFUSED = "Too many failed logins for this username from your address: try again in 60 minutes."
ADDRESS_REFUSED = "Too many failed logins from your address: try again in 60 minutes."


@pytest.fixture
def tried(monkeypatch):
    """The usernames whose password was tried (AuthenticationForm's authenticate)."""
    calls, real = [], auth_forms.authenticate

    def authenticate(request=None, **credentials):
        calls.append(credentials.get("username"))
        return real(request, **credentials)

    monkeypatch.setattr(auth_forms, "authenticate", authenticate)
    return calls


def attempt(password, *, username="acme", address="203.0.113.7", **extra):
    client = Client(REMOTE_ADDR=address)
    return client, client.post(LOGIN, {"username": username, "password": password}, **extra)


def logged_in(client):
    return "_auth_user_id" in client.session


def test_every_spelling_the_login_form_takes_for_one_user_shares_its_count(acme, tried):
    # AuthenticationForm strips the username and NFKC-normalises it: all three are "acme" to ModelBackend.
    for spelling in ("acme", " acme\t", "\uff41\uff43\uff4d\uff45"):  # the last: fullwidth "acme"
        client, response = attempt("guess", username=spelling)
        assert response.status_code == 200 and WRONG in response.content.decode()
    for spelling in ("acme ", "\uff21CME", "ACME"):
        client, response = attempt("pw", username=spelling)
        assert response.status_code == 429 and REFUSED in response.content.decode(), ascii(spelling)
        assert not logged_in(client)
    assert tried == ["acme"] * 3


def test_parallel_attempts_cannot_try_more_passwords_than_the_rate(acme, tried, monkeypatch):
    # Attempts that arrive while the first one's password is being checked: each once saw "no failure yet".
    statuses, real = [], auth_forms.authenticate

    def while_checking(request=None, **credentials):
        user = real(request, **credentials)
        if len(tried) == 1 and not statuses:
            statuses.extend(attempt("guess")[1].status_code for _ in range(4))
        return user

    monkeypatch.setattr(auth_forms, "authenticate", while_checking)
    assert attempt("guess")[1].status_code == 200
    assert statuses == [200, 200, 429, 429]
    assert len(tried) == 3
    client, response = attempt("pw")
    assert response.status_code == 429 and not logged_in(client)


class DownCache:
    def __getattr__(self, name):
        def down(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to redis. Connection refused.")
        return down


def test_a_cache_that_is_down_lets_the_password_decide_and_says_so(acme, monkeypatch, caplog):
    monkeypatch.setattr(logins, "cache", DownCache())
    with caplog.at_level(logging.ERROR, logger="p2w_search.merchant.logins"):
        client, response = attempt("guess")
        assert response.status_code == 200 and WRONG in response.content.decode()
        client, response = attempt("pw")
        assert response.status_code == 302 and logged_in(client)
    assert [r.getMessage() for r in caplog.records] == [
        "failed logins are not counted: the cache is unavailable (ConnectionError: Error 111 connecting to "
        "redis. Connection refused.)"] * 3


def test_one_address_has_a_ceiling_over_all_usernames(acme, tried, monkeypatch):
    # Ten times the rate, whatever the usernames: a password sprayed over many usernames, and as many cache keys.
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    for n in range(30):
        assert attempt("guess", username=f"u{n}")[1].status_code == 200
    clock[0] += 1
    client, response = attempt("pw")
    assert response.status_code == 429 and response["Retry-After"] == "3600"
    assert ADDRESS_REFUSED in response.content.decode() and not logged_in(client)
    assert len(tried) == 30
    client, response = attempt("pw", address="198.51.100.2")  # elsewhere, acme logs in
    assert response.status_code == 302 and logged_in(client)


def test_the_addresses_of_one_ipv6_subscriber_share_a_count(acme):
    # One /64 is one subscriber's: 2**64 addresses, each a fresh count, were 2**64 times the rate.
    for n in range(3):
        attempt("guess", address=f"2001:db8:1:2::{n + 1}")
    client, response = attempt("pw", address="2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert response.status_code == 429 and REFUSED in response.content.decode() and not logged_in(client)
    client, response = attempt("pw", address="2001:db8:1:3::1")  # the next /64 is someone else
    assert response.status_code == 302 and logged_in(client)


def test_logging_in_gives_a_new_csrf_token(acme):
    # Held: the pages are exempt from the middleware, whose answer still sets the token that login rotates.
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    before = client.cookies["csrftoken"].value
    response = client.post(LOGIN, {"username": "acme", "password": "pw", "csrfmiddlewaretoken": before})
    assert response.status_code == 302 and logged_in(client)
    assert response.cookies["csrftoken"].value not in ("", before)


def test_a_refusal_reads_the_same_for_a_user_and_for_no_user_and_tries_no_password(acme, tried):
    # Held: the count is kept for any username, and a refused attempt never reaches the backend (nor its timing).
    for username in ("acme", "nobody"):
        for _ in range(3):
            attempt("guess", username=username)
    answers = [attempt("pw", username=username)[1] for username in ("acme", "nobody")]
    assert [(r.status_code, r["Retry-After"]) for r in answers] == [(429, "3600")] * 2
    pages = [re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", r.content.decode()) for r in answers]
    assert pages[0] == pages[1].replace('value="nobody"', 'value="acme"')
    assert tried == ["acme"] * 3 + ["nobody"] * 3


def test_a_forwarded_for_header_is_no_new_address_without_a_proxy(acme):
    # Held: NUM_PROXIES unset, so X-Forwarded-For is not believed.
    for _ in range(3):
        attempt("guess")
    client, response = attempt("pw", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert response.status_code == 429 and not logged_in(client)


def test_method_overrides_are_no_way_around_the_csrf_check(staff, acme):
    # Held: Django reads no override; a POST is a POST, and it is checked before the page acts.
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    for url, data in (("/merchant/act-for/", {"merchant": acme.pk, "_method": "GET"}),
                      ("/merchant/logout/", {"_method": "GET"})):
        response = client.post(url, data, HTTP_X_HTTP_METHOD_OVERRIDE="GET", HTTP_X_METHOD_OVERRIDE="GET")
        assert response.status_code == 403 and "CSRF verification failed" in response.content.decode(), url
    assert "p2w_merchant_key" not in client.session and "_auth_user_id" in client.session
    stranger = Client(enforce_csrf_checks=True)
    assert stranger.put(LOGIN, "username=acme&password=pw",
                        content_type="application/x-www-form-urlencoded").status_code == 403
