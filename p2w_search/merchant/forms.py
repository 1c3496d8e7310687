"""The upload form: the fields the API takes, validated by the API's own serializer, and a full sync's dry count.

``UploadForm`` only renders (labels, help, the values sent back); whether an upload is
valid is ``UploadSerializer``'s answer, so a page shows the same errors as the API. A full
sync is counted before anything happens: the SKUs the manifest names against the
merchant's listed ones, with the importer's rule for when it needs ``confirm_unlist``.
"""

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.forms.utils import ErrorDict
from rest_framework.exceptions import ValidationError

from p2w_search.api.uploads import CONFIRM_UNLIST_MAX, UploadSerializer
from p2w_search.form_data import given_more_than_once
from p2w_search.models import ImportJob
from p2w_search.uploads.importer import full_sync_refusal, import_serializer, no_row_refusal, unnamed

__all__ = ["UploadForm", "images_per_request", "too_many_files", "manifest_required", "upload_data", "asks_full_sync",
           "validate_upload", "FullSyncCount", "count_full_sync", "flat_messages", "sent_more_than_once"]

SKUS_SHOWN = 20  # SKUs a full sync's count names on the page; the job lists up to IMPORT_ERRORS_SHOWN


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class UploadForm(forms.Form):
    """The fields of ``POST /api/imports/``, labelled for a merchant."""

    manifest = forms.FileField(
        label="Catalog file", required=False,
        help_text="CSV or JSON Lines (.csv, .jsonl), one product a row. The columns are explained below.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.jsonl,.ndjson,text/csv", "required": True}))
    archive = forms.FileField(
        label="Images as a zip", required=False, help_text="A .zip with the images your file names.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}))
    images = forms.FileField(
        label="Or the image files themselves", required=False,
        help_text="Choose several at once; not together with a zip.",
        widget=MultipleFileInput(attrs={"accept": "image/*"}))
    policy = forms.ChoiceField(
        label="When a row is bad", required=False, initial=ImportJob.Policy.SKIP, widget=forms.RadioSelect,
        choices=[(ImportJob.Policy.SKIP, "Skip it: import the good rows, get the bad ones back as a file"),
                 (ImportJob.Policy.REJECT, "Reject the whole upload: import nothing if any row is bad")])
    full_sync = forms.BooleanField(
        label="Full sync: unlist my listed products that this file does not name", required=False,
        help_text="Leave it off to add and update products only.")
    confirm_unlist = forms.IntegerField(
        label="Confirm unlisting", required=False, min_value=0, max_value=CONFIRM_UNLIST_MAX,
        help_text="Only for a full sync that unlists many products: the number it unlists, as counted here.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)
        most = images_per_request()
        if most is not None:  # the browser refuses more at once (merchant.js), before Django's plain 400 page does
            self.fields["images"].widget.attrs["data-max-files"] = str(most)
            self.fields["images"].help_text = (f"Choose several at once, at most {most} (more go in a zip); not "
                                               "together with a zip.")

    def show_errors(self, errors):
        """Show ``errors`` (UploadSerializer's, field -> messages) on the form, and only those.

        An unbound form (a request whose form was not read) shows them with its initial values.
        """
        if self.is_bound:
            self.full_clean()  # for cleaned_data; the form's own checks are not the ones that count
        else:
            self.cleaned_data = {}
        self._errors = ErrorDict()
        for name, messages in errors.items():
            self.add_error(name if name in self.fields else None, list(flat_messages(messages)))


def too_many_files():
    """What the upload page says of more files than Django's ``DATA_UPLOAD_MAX_NUMBER_FILES`` in one upload."""
    return (f"Too many files in one upload: it takes at most {images_per_request()} image files beside the catalog "
            "file. Send the images as one zip in “Images as a zip” instead.")


def images_per_request():
    """How many image files one upload may send beside its manifest: Django's ``DATA_UPLOAD_MAX_NUMBER_FILES``
    bounds every request's files (None: no bound), and refuses more before any view runs."""
    most = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    return None if most is None else max(most - 1, 0)


# The form's file inputs: a browser sends one left empty as a field with an empty value, not as a file.
FILE_FIELDS = ("manifest", "archive", "images")


def upload_data(request):
    """The POSTed fields and files as one MultiValueDict, as DRF's ``request.data`` is; empty file inputs left out."""
    data = request.POST.copy()
    for name in FILE_FIELDS:
        data.pop(name, None)
    for name in request.FILES:
        data.setlist(name, request.FILES.getlist(name))
    return data


def sent_more_than_once(data, names=None):
    """``{name: [reason]}`` for each of ``names`` (by default the upload's fields given once,
    ``UploadSerializer.given_once``) that ``data`` (``upload_data``'s) holds more than once.

    The serializer would read the last of them (``mode=skip&mode=reject``: reject), silently: which
    one the merchant meant is unknown, so the upload is refused before either is read.
    """
    names = UploadSerializer.given_once() if names is None else names
    return {name: [reason] for name, reason in given_more_than_once(data, names).items()}


def manifest_required():
    """The API's words for an upload without a manifest (UploadSerializer's own)."""
    return str(UploadSerializer().fields["manifest"].error_messages["required"])


def asks_full_sync(data):
    """Whether the upload fields ``data`` tick ``full_sync`` as UploadSerializer reads it (not when absent or
    invalid: the serializer says so)."""
    try:
        return UploadSerializer().fields["full_sync"].to_internal_value(data.get("full_sync")) is True
    except ValidationError:
        return False


def validate_upload(data, *, partial=False, skus=None, rejected=None):
    """``(validated_data, None)`` or ``(None, errors)``: the API's UploadSerializer on ``data``.

    With ``skus`` (a set), the SKUs the manifest names are added to it as the serializer
    checks the file, for ``count_full_sync``; with ``rejected`` (importer.RejectedRows), the
    rows the import will reject without the database are counted into it: the file is read once.
    """
    serializer = UploadSerializer(data=data, partial=partial,
                                  context={"manifest_skus": skus, "manifest_rejected": rejected})
    if serializer.is_valid():
        return serializer.validated_data, None
    return None, serializer.errors


@dataclass(frozen=True)
class FullSyncCount:
    """What a full sync of a manifest would do to a merchant's listed products, counted before it runs."""

    unlist: int  # listed products the manifest does not name
    listed: int
    skus: list  # the first SKUs it would unlist
    refusal: str | None  # the importer's refusal, in its words, when it would refuse the sync as it stands
    accepts_no_row: bool | None = None  # the import will take no row of the file; None when its rows were not checked


def count_full_sync(named, merchant, *, confirm=None, products=None):
    """Count what a full sync of a manifest that names the SKUs ``named`` (as ``validate_upload`` collected them
    from a valid upload) would unlist of ``merchant``'s listed products.

    A SKU the manifest names is never unlisted, whatever its row holds (as in the import);
    the refusal is the importer's (``full_sync_refusal``). ``products``: how many products
    the upload check found the import may add or update (``RejectedRows.products``; None when
    the rows were not checked). None of them: the import accepts no row, and refuses the sync
    as it stands unless ``confirm`` is the exact count, in its words. The import checks again
    when it runs: the listed products may change in between.
    """
    serializer_class = import_serializer()
    listed = set(serializer_class.listed_skus(merchant))
    to_unlist = unnamed(listed, named)  # compared as the import compares them (sku_key)
    count = len(to_unlist)
    accepts_no_row = None if products is None else products == 0
    # The importer's rules and words, in its order: the share of the listed products first, then no row accepted.
    refusal = full_sync_refusal(count, len(listed), confirm=confirm)
    if refusal is None and accepts_no_row:
        refusal = no_row_refusal(count, confirm=confirm)
    return FullSyncCount(unlist=count, listed=len(listed), skus=to_unlist[:SKUS_SHOWN], refusal=refusal,
                         accepts_no_row=accepts_no_row)


def flat_messages(messages):
    """The strings of a DRF error structure (lists, dicts of lists), in order."""
    if isinstance(messages, dict):
        for value in messages.values():
            yield from flat_messages(value)
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            yield from flat_messages(value)
    else:
        yield str(messages)
