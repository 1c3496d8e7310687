"""The kept photo's scheme (p2w_search.photos) under attack and bad luck: tokens, sessions, its folder, clocks.

Each test but the pins marked "held" failed before its fix, with the symptom in its docstring.
"""

import secrets
import time

import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.test import Client

from p2w_search import photos
from tests.test_like_this import kept_files, shop, upload  # noqa: F401 (shop: a fixture)
from tests.test_like_this_tabs import PHOTOS, assert_shows, stop_in_keep, upload_in_two_tabs_at_once  # noqa: F401

pytestmark = [pytest.mark.urls("tests.like_this_urls"), pytest.mark.usefixtures("shop")]

NOT_HERE = ("This photo is not available here: photos are kept only for the browser that uploaded them. "
            "Upload it again to search with it.")
EXPIRED = ("Your photo is no longer kept: photos are kept for 30 minutes after the upload. "
           "Upload it again to search with it.")
LIMITED = ("Your photo is no longer kept: the shop keeps a limited number of photos of all shoppers at once. "
           "Upload it again to search with it.")


def keep(client):
    response = client.post("/shop/photo/", {"photo": upload()})
    assert response.status_code == 303
    return response["Location"], response["Location"].split("photo=")[1].split("&")[0]


def folder(media):
    path = media.parent / "uploads" / photos.FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_sweep_leaves_other_files_alone_and_removes_its_own_orphaned_previews(client, media):
    """Before: a file "²-notes" in the folder made every upload a 500 (int("²")), and an old "1700000000-notes"
    of another app was deleted as an expired photo; a preview whose photo was gone stayed for ever."""
    foreign = [".DS_Store", "1-report.pdf", "1700000000-notes", "²-notes", "README.txt"]
    old = int((time.time() - 3600) * 1_000_000)
    own = photos._name(secrets.token_hex(16), old, secrets.token_bytes(12)).split("/")[1]
    for name in [*foreign, f"{own}.jpg"]:  # and a preview without its photo, an hour old
        (folder(media) / name).write_bytes(b"x")

    link, _ = keep(client)
    new = [name for name in kept_files(media) if name not in foreign]
    assert len(new) == 2 and new[1] == f"{new[0]}.jpg"  # the photo just kept and its preview
    assert kept_files(media) == sorted([*foreign, *new])
    assert client.get(link).status_code == 200


def test_a_storage_that_cannot_list_refuses_the_upload_and_keeps_nothing(client, media, monkeypatch):
    """Before: the upload was a 500 after its files were written (left unlisted and unanswered), and a link to a
    photo gone was a 500 too."""
    link, _ = keep(client)
    for name in kept_files(media):
        (folder(media) / name).unlink()

    def refuse(self, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(FileSystemStorage, "listdir", refuse)
    refused = client.post("/shop/photo/", {"photo": upload()})
    assert refused.status_code == 503 and photos.NOT_KEPT in refused.content.decode()
    assert kept_files(media) == []
    gone = client.get(link)
    assert gone.status_code == 410 and LIMITED in gone.content.decode()


def test_a_clock_set_back_does_not_keep_a_photo_longer(client, media, monkeypatch):
    """Before: with the server's clock set back two minutes, a photo was served (and not swept) two minutes past
    its 30; a clock set back a day kept it a day."""
    now = time.time()
    monkeypatch.setattr(photos.time, "time", lambda: now)
    link, _ = keep(client)
    assert client.get(link).status_code == 200
    monkeypatch.setattr(photos.time, "time", lambda: now - 120)
    gone = client.get(link)
    assert gone.status_code == 410 and EXPIRED in gone.content.decode()
    assert kept_files(media) == []

    monkeypatch.setattr(photos.time, "time", lambda: now)
    keep(client)
    assert photos.remove_expired(now=now - photos.CLOCK_SLACK + 1) == 0  # servers' clocks differ a little
    assert photos.remove_expired(now=now - 120) == 1 and kept_files(media) == []


def test_a_photo_survives_a_login_even_when_its_owner_id_was_lost_and_never_a_logout(client, django_user_model):
    """Before: when another tab's save of the session had lost the owner id (tests/test_like_this_tabs.py), the
    photo still loaded (the id derived from the session's key) until a login changed the key: then a 404 saying
    photos are kept only for the browser that uploaded them."""
    user = django_user_model.objects.create_user("shopper", password="x")
    assert client.session.session_key  # a session before the photo: its owner id is derived from the key
    link, _ = keep(client)
    session = client.session
    del session[photos.OWNER_KEY]
    session.save()
    assert client.get(link).status_code == 200
    client.force_login(user)  # Django's login: a new session key, the session's data kept
    assert client.get(link).status_code == 200
    client.logout()  # held: Django's logout flushes the session; the next user of this browser has no photo
    gone = client.get(link)
    assert gone.status_code == 404 and NOT_HERE in gone.content.decode()


def test_odd_tokens_are_a_404_never_a_500(client):
    """Held: a token altered, padded, spelled in another alphabet, very long or not ASCII is no token here."""
    link, token = keep(client)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]  # the same bytes, its spare bits set
    odd = [token[:-1], token + "=", token + "A", spare, token[:-1] + "+", token[:-1] + "/", "A" * 100_000,
           "é" * 43, token[:-1] + "\uff21", f"{token}\n"]
    for value in odd:
        response = client.get("/shop/photo/", {"photo": value})
        assert response.status_code == 404 and NOT_HERE in response.content.decode(), repr(value[:50])
    assert client.get(link).status_code == 200


def test_a_planted_session_key_or_a_tampered_owner_id_gets_no_ones_photo(client):
    """Held: an unknown session key (an attacker's, planted in the victim's browser) is replaced by a new one; an
    owner id that is not 32 hex digits is replaced by the session's own."""
    planted = "attackerplanted0123456789abcdefg"
    client.cookies[settings.SESSION_COOKIE_NAME] = planted
    link, _ = keep(client)
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != planted
    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted
    assert attacker.get(link).status_code == 404

    for tampered in (["0" * 32], "Z" * 32, 7, None):
        browser = Client()
        keep(browser)
        session = browser.session
        session[photos.OWNER_KEY] = tampered
        session.save()
        link, _ = keep(browser)
        assert browser.get(link).status_code == 200


def test_a_tampered_upload_time_of_the_old_layout_is_no_500(client):
    """Before: an upload time of the layout before the owner id that is not finite (Infinity in the session's
    JSON) was a 500 (int(inf))."""
    session = client.session
    session[photos.SESSION_KEY] = {"oldlayouttokenabcdefghij": float("inf")}
    session.save()
    response = client.get("/shop/photo/", {"photo": "oldlayouttokenabcdefghij"})
    assert response.status_code == 404 and NOT_HERE in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_all_sessions_cap_under_two_tabs_at_once_lets_go_of_the_oldest_only(client, media, settings, request):
    """Held: two tabs uploading at once with PHOTO_KEEP_MAX 2 keep both their photos; another shopper's older one
    goes, with its 410. (The upload lists the folder once now, before the sweep: a stale listing only counts
    fewer.)"""
    other = Client()
    older, _ = keep(other)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_MAX": 2}
    assert client.session.session_key  # the browser's cookie, which both tabs send
    stop = request.getfixturevalue("stop_in_keep")  # tests/test_like_this_tabs.py's: tab 1 waits inside keep
    link1, link2 = upload_in_two_tabs_at_once(client, stop, PHOTOS[1], PHOTOS[2])
    assert len(kept_files(media)) == 2 * 2
    assert_shows(client, link1, PHOTOS[1])
    assert_shows(client, link2, PHOTOS[2])
    gone = other.get(older)
    assert gone.status_code == 410 and LIMITED in gone.content.decode()


def test_a_photo_let_go_for_newer_is_not_counted_again_in_all_sessions_cap(client, media, settings):
    """The upload's one listing, less the session's photos it let go: counted with them, another shopper's photo
    went for nothing (7 counted where 6 were kept, PHOTO_KEEP_MAX 6)."""
    other = Client()
    theirs, _ = keep(other)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "PHOTO_KEEP_MAX": photos.KEPT_PER_SESSION + 1}
    links = [keep(client)[0] for _ in range(photos.KEPT_PER_SESSION + 1)]
    assert len(kept_files(media)) == 2 * (photos.KEPT_PER_SESSION + 1)
    assert other.get(theirs).status_code == 200
    assert client.get(links[0]).status_code == 404
