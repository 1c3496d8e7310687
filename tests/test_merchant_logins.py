"""Failed logins on the merchant pages, counted per client address and username (p2w_search/merchant/logins.py)."""

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/merchant/login/"
WRONG = "Please enter a correct username and password. Note that both fields may be case-sensitive."


@pytest.fixture(autouse=True)
def three_an_hour(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "LOGIN_FAILURE_RATE": "3/hour"}
    cache.clear()
    yield
    cache.clear()


def attempt(password, *, username="acme", address="203.0.113.7"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post(LOGIN, {"username": username, "password": password})


def logged_in(client):
    return "_auth_user_id" in client.session


def test_past_the_rate_even_the_right_password_is_refused_without_being_tried(acme):
    for _ in range(3):
        client, response = attempt("guess")
        assert response.status_code == 200 and WRONG in response.content.decode()
    client, response = attempt("pw")
    page = response.content.decode()
    assert (response.status_code, response["Retry-After"]) == (429, "3600")
    assert ("Too many failed logins for this username from your address: try again in 60 minutes. Ask the shop&#x27;s "
            "staff to reset the password if it is lost.") in page
    assert WRONG not in page and not logged_in(client)


def test_another_username_or_another_address_has_its_own_count(acme, rival):
    for _ in range(3):
        attempt("guess")
    assert attempt("guess", username="ACME")[1].status_code == 429  # usernames counted as the same, any case
    client, response = attempt("pw", username="rival")
    assert response.status_code == 302 and logged_in(client)
    client, response = attempt("pw", address="198.51.100.2")  # a stranger elsewhere cannot lock acme out
    assert response.status_code == 302 and logged_in(client)


def test_a_login_that_succeeds_forgets_the_failures(acme):
    for _ in range(2):
        attempt("guess")
    assert attempt("pw")[1].status_code == 302
    for _ in range(2):
        assert attempt("guess")[1].status_code == 200
    assert attempt("pw")[1].status_code == 302


def test_the_refusal_lasts_until_the_oldest_failure_is_a_period_old(acme, monkeypatch):
    import time

    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    for step in range(3):
        clock[0] += 600 * step
        attempt("guess")
    response = attempt("pw")[1]
    assert (response.status_code, response["Retry-After"]) == (429, str(3600 - 1800 + 1))
    clock[0] += 3600 - 1800 + 1  # the first failure is an hour old: two failures left in the window
    client, response = attempt("pw")
    assert response.status_code == 302 and logged_in(client)


def test_no_rate_no_limit(acme, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "LOGIN_FAILURE_RATE": None}
    for _ in range(10):
        attempt("guess")
    client, response = attempt("pw")
    assert response.status_code == 302 and logged_in(client)
