"""The app's pages as the shop mounts them: the uploads' storage (E013, E014) and the photo box's (E028).
"""

from django.core import checks

from p2w_search.conf import P2WImproperlyConfigured, app_settings

__all__ = ["check_photo_storage", "upload_problems"]


def upload_problems():
    """E013: uploads are mounted but cannot run; E014: their storage (where the photo search keeps shoppers' photos
    too) is missing or served publicly."""
    from pathlib import Path

    from django.conf import settings

    uploads = _uploads_mounted()  # False: this shop takes no catalog uploads
    photo_page = _photo_search_route()
    if not uploads and photo_page is None:
        return []
    problems = []
    if uploads and not app_settings.IMPORT_SERIALIZER:
        problems.append(checks.Error(
            "The upload URLs (p2w_search.api.upload_urls) are mounted, but P2W_SEARCH['IMPORT_SERIALIZER'] is not set.",
            hint="Set it to the serializer of one catalog row, or do not include p2w_search.api.upload_urls.",
            id="p2w_search.E013"))
    from p2w_search.uploads.storage import missing_storage, upload_backend

    try:
        backend = upload_backend()
    except P2WImproperlyConfigured as exc:
        message = str(exc) if uploads else missing_storage(  # the photo page alone: every photo sent was a 500
            f"where the photo search at /{photo_page} (PhotoSearchView) keeps shoppers' photos")
        return [*problems, checks.Error(message, id="p2w_search.E014")]
    location = getattr(backend, "location", None)
    media = getattr(settings, "MEDIA_ROOT", None)
    if location and media and Path(location).resolve().is_relative_to(Path(media).resolve()):
        problems.append(checks.Error(
            f"Merchants' uploads (STORAGES[{app_settings.UPLOAD_STORAGE!r}]) are kept in {location}, inside "
            "MEDIA_ROOT, which is served publicly.", hint="Give the upload storage a folder outside MEDIA_ROOT.",
            id="p2w_search.E014"))
    return problems


def _photo_search_route(patterns=None, prefix=""):
    """The route of the first view of the URLconf that is a PhotoSearchView (or a subclass), or None.

    Such a page keeps each photo a shopper sends in the upload storage (p2w_search.photos), whether or
    not the shop takes catalog uploads.
    """
    from django.urls import URLResolver, get_resolver

    from p2w_search.shopper.views import PhotoSearchView

    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found = _photo_search_route(pattern.url_patterns, route)
            if found is not None:
                return found
        else:
            view_class = getattr(pattern.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, PhotoSearchView):
                return route
    return None


@checks.register()
def check_photo_storage(app_configs=None, **kwargs):
    """E028: a template of the shop's own renders the photo box (``like_your_photo``), which keeps shoppers' photos
    in ``UPLOAD_STORAGE``, and that storage is missing or cannot be made: every photo a shopper sent was a 500 that
    ``manage.py check`` did not foresee. (A view of the shop's own that calls ``journey.accept_photo`` shows the box
    too; the call itself raises the same words.) The upload URLs and PhotoSearchView are E014's, so a shop with
    either gets one error, not two."""
    from p2w_search.shopper.journey import photo_storage_problem

    if photo_storage_problem() is None or _uploads_mounted() or _photo_search_route() is not None:
        return []
    template = _photo_box_template()
    if template is None:
        return []
    return [checks.Error(photo_storage_problem(by=f"the photo box of the template {template} (like_your_photo)"),
                         id="p2w_search.E028")]


def _uploads_mounted():
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("p2w_uploads:import-list")
    except NoReverseMatch:
        return False
    return True


def _photo_box_template():
    """The name of the first template of the shop's own that renders the photo box (``like_your_photo``), or None.

    The app's own templates are left out: its photo page is PhotoSearchView's (E014). Read only when
    the storage is unusable, so a shop set up right pays nothing for the scan.
    """
    from pathlib import Path

    from django.core.exceptions import ImproperlyConfigured
    from django.template import engines

    own = (Path(__file__).resolve().parent.parent / "templates").resolve()  # p2w_search/templates
    try:
        folders = [Path(folder) for engine in engines.all() for folder in engine.template_dirs]
    except (ImproperlyConfigured, ImportError):  # TEMPLATES itself is wrong: Django's own checks say so
        return None
    for folder in folders:
        if not folder.is_dir() or folder.resolve() == own:
            continue
        for file in sorted(folder.rglob("*")):
            try:
                if file.is_file() and file.stat().st_size < 1024**2 and b"like_your_photo" in file.read_bytes():
                    return file.relative_to(folder).as_posix()
            except OSError:
                continue
    return None
