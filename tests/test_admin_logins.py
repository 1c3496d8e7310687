"""Failed logins on the Django admin's login page: the merchant login's count (``logins.limit_failed_logins``).

Staff passwords manage the whole index; the demo's ``/admin/login/`` had no limit on guessing them.
"""

import pytest
from django.test import Client

from tests import test_hostile_merchant_auth, test_merchant_logins

pytestmark = pytest.mark.django_db

three_an_hour = test_merchant_logins.three_an_hour  # autouse: LOGIN_FAILURE_RATE "3/hour", an empty cache
tried = test_hostile_merchant_auth.tried  # the usernames whose password was tried
LOGIN = "/admin/login/?next=/admin/"
WRONG = "Please enter the correct username and password for a staff account."
REFUSED = "Too many failed logins for this username from your address: try again in 60 minutes."


def attempt(password, *, username="staff", address="203.0.113.7", client=None):
    client = client or Client(REMOTE_ADDR=address)
    return client, client.post(LOGIN, {"username": username, "password": password})


def logged_in(client):
    return "_auth_user_id" in client.session


def test_past_the_rate_the_admin_login_refuses_even_the_right_password_without_trying_it(staff, tried):
    for _ in range(3):
        client, response = attempt("guess")
        assert response.status_code == 200 and WRONG in response.content.decode()
    assert tried == ["staff"] * 3
    client, response = attempt("pw")
    page = response.content.decode()
    assert (response.status_code, response["Retry-After"]) == (429, "3600")
    assert REFUSED in page and 'name="password"' in page  # the admin's own login page, with the refusal
    assert WRONG not in page and tried == ["staff"] * 3 and not logged_in(client)


def test_an_admin_login_that_succeeds_forgets_the_failures(staff):
    for _ in range(2):
        attempt("guess")
    client, response = attempt("pw")
    assert (response.status_code, response["Location"]) == (302, "/admin/") and logged_in(client)
    for _ in range(2):
        assert attempt("guess")[1].status_code == 200
    assert attempt("pw")[1].status_code == 302


def test_another_address_is_not_locked_out_and_a_user_who_is_not_staff_counts_as_a_failure(staff, acme):
    for _ in range(3):
        client, response = attempt("pw", username="acme")  # the right password, but no staff account
        assert response.status_code == 200 and WRONG in response.content.decode()
    assert attempt("pw", username="acme")[1].status_code == 429
    client, response = attempt("pw", address="198.51.100.2")
    assert response.status_code == 302 and logged_in(client)


def test_the_admin_and_merchant_logins_share_one_count(acme):
    """Guesses spread over the two pages are guesses at one password."""
    for _ in range(2):
        test_merchant_logins.attempt("guess")
    attempt("guess", username="acme")
    assert test_merchant_logins.attempt("pw")[1].status_code == 429


def test_the_admin_login_page_and_a_post_without_its_csrf_token_are_as_before(staff):
    assert Client().get(LOGIN).status_code == 200
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.7")
    for _ in range(4):
        assert client.post(LOGIN, {"username": "staff", "password": "guess"}).status_code == 403  # nothing counted
    client, response = attempt("pw")
    assert response.status_code == 302 and logged_in(client)
