"""The app's merchant pages for a shop whose users log in by email and whose merchants are slug-keyed brands."""

from django.test import Client
from django.urls import reverse


def logged_in(email):
    browser = Client()
    response = browser.post(reverse("p2w_merchant:login"), {"username": email, "password": "pw"})
    assert response.status_code == 302 and response["Location"] == reverse("p2w_merchant:home"), response.content[:800]
    return browser


def test_a_brand_owner_logs_in_by_email_and_sees_its_catalog(catalog):
    home = logged_in("alice@example.com").get(reverse("p2w_merchant:home"))

    assert home.status_code == 200
    html = home.content.decode()
    assert "<h1>Acme: your catalog</h1>" in html
    glance = home.context["glance"]
    assert (glance["products"], glance["listed"], glance["unlisted"], glance["embedded"]) == (5, 4, 1, 5)


def test_staff_act_for_a_brand_by_its_slug(catalog):
    browser = logged_in("staff@example.com")
    chosen = browser.post(reverse("p2w_merchant:act-for"), {"merchant": "north"})
    assert chosen.status_code == 302
    home = browser.get(reverse("p2w_merchant:home"))
    assert "<h1>North &amp; Co: your catalog</h1>" in home.content.decode()
    assert home.context["glance"]["products"] == 3


def test_staff_who_may_not_change_products_act_for_no_brand(catalog):
    """Any staff account could act for any brand: upload a full sync that unlists its products."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("clerk@example.com", "pw", is_staff=True)
    browser = logged_in("clerk@example.com")
    chosen = browser.post(reverse("p2w_merchant:act-for"), {"merchant": "north"})
    assert chosen.status_code == 400 and "North &amp; Co" not in chosen.content.decode()  # not among the choices
    home = browser.get(reverse("p2w_merchant:home"))
    assert (home.status_code, home["Location"]) == (302, reverse("p2w_merchant:act-for") + "?next=%2Fmerchant%2F")
