"""Catalog uploads over the API: merchants send a manifest and images; a worker imports them.

A merchant sees and downloads only its own uploads; staff who may view import jobs see all of them.
Uploaded files are kept in private storage (never under the public media URL) and downloaded here.
"""

import logging
from contextlib import contextmanager

from django.core.files.base import ContentFile
from django.http import FileResponse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from p2w_search.api.outages import DatabaseOutageMixin
from p2w_search.api.pagination import PagePagination
from p2w_search.api.parameters import repeated_parameters
from p2w_search.api.parsers import FormParser, MultiPartParser
from p2w_search.api.schema import errors
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob
from p2w_search.uploads import look_alike
from p2w_search.uploads.archive import ArchiveRejected, check_archive, pack_images
from p2w_search.uploads.importer import RejectedRows, check_manifest, create_job, import_serializer, known_columns
from p2w_search.uploads.limits import RETRY_AFTER_SECONDS as WAITING_RETRY_AFTER
from p2w_search.uploads.limits import TooManyWaiting, check_waiting
from p2w_search.uploads.manifest import ManifestError
from p2w_search.uploads.progress import job_progress, prefetch_progress
from p2w_search.uploads.report import spreadsheet_safe

__all__ = ["ImportListView", "ImportDetailView", "ImportFileView", "private_to_merchant"]

# The files of a job, by the name they have in URLs.
FILES = {"manifest": "manifest", "archive": "archive", "rejected-rows": "rejected_rows"}
# What a merchant is told when the upload storage refuses its files (a full disk, a read-only folder): the files
# were fine, the server is not; the log has the reason and the path.
NOT_STORED = "The server cannot store uploads right now; nothing was saved. Try again later."
RETRY_AFTER_SECONDS = 300

logger = logging.getLogger(__name__)

# For a view whose answers are one merchant's (its uploads, their progress and files; the merchant pages): no shared
# cache may keep them, nor a browser's back/forward cache on a shared computer. Django sent no Cache-Control at all.
private_to_merchant = cache_control(private=True, no_store=True)

# The largest value ImportJob.confirm_unlist (a PositiveIntegerField: PostgreSQL's integer) holds.
CONFIRM_UNLIST_MAX = 2**31 - 1


class UploadSerializer(serializers.Serializer):
    manifest = serializers.FileField(help_text="CSV (header row; ',' or ';' between cells) or JSON Lines: sku, title, "
                                               "description, category, price, currency, in_stock, images (file names, "
                                               "';'-separated in one cell).")
    archive = serializers.FileField(required=False, help_text="A zip of the images the manifest names.")
    images = serializers.ListField(child=serializers.FileField(), required=False,
                                   help_text="Or the images as multipart files.")
    policy = serializers.ChoiceField(choices=ImportJob.Policy.choices, default=ImportJob.Policy.SKIP)
    full_sync = serializers.BooleanField(default=False,
                                         help_text="Unlist your products that the manifest does not name.")
    confirm_unlist = serializers.IntegerField(
        required=False, min_value=0, max_value=CONFIRM_UNLIST_MAX,
        error_messages={"max_value": "confirm_unlist must be at most {max_value}: it is the number of products the "
                                     "full sync unlists, as a refused sync told you."},
        help_text="With full_sync: the number of products the sync unlists, as a refused sync told you. A full sync "
                  "that unlists more than FULL_SYNC_MAX_UNLIST_SHARE of your listed products, or imports no row, "
                  "runs only with it.")


    @classmethod
    def given_once(cls):
        """The fields an upload gives once each: every one but ``images`` (several files)."""
        return tuple(name for name, field in cls().fields.items() if not isinstance(field, serializers.ListField))
    def validate_manifest(self, upload):
        try:
            # context["manifest_skus"]: a set the SKUs the manifest names are added to (the merchant pages' count
            # of a full sync), and context["manifest_rejected"]: a RejectedRows (the upload check's, and the
            # upload's answer's ``check``), on the same read.
            check_manifest(upload, columns_known=known_columns(), skus=self.context.get("manifest_skus"),
                           rejected=self.context.get("manifest_rejected"))
        except ManifestError as exc:
            raise serializers.ValidationError(f"The manifest cannot be used: {exc}.") from None
        return upload

    def validate_archive(self, upload):
        try:
            check_archive(upload)
        except ArchiveRejected as exc:
            raise serializers.ValidationError(f"The archive is refused: {exc}.") from None
        upload.seek(0)
        return upload

    def validate_images(self, uploads):
        if len(uploads) > app_settings.IMPORT_MAX_FILES:
            raise serializers.ValidationError(f"Send at most {app_settings.IMPORT_MAX_FILES} images.")
        for upload in uploads:
            if upload.size > app_settings.MAX_IMAGE_BYTES:
                raise serializers.ValidationError(f"{upload.name} is larger than {app_settings.MAX_IMAGE_BYTES} bytes.")
        try:
            return ContentFile(pack_images((upload.name, upload.read()) for upload in uploads), name="images.zip")
        except ArchiveRejected as exc:
            raise serializers.ValidationError(f"The images are refused: {exc}.") from None

    def validate(self, attrs):
        if attrs.get("archive") and attrs.get("images"):
            raise serializers.ValidationError({"images": ["Send the images as a zip (archive) or as files (images), "
                                                          "not both."]})
        if attrs.get("confirm_unlist") is not None and not attrs["full_sync"]:
            raise serializers.ValidationError({"confirm_unlist": ["confirm_unlist only applies to a full sync "
                                                                  "(full_sync=true)."]})
        return attrs


class ErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text=(
        "As the merchant counts: a CSV's header is row 1; JSON Lines by line. Null for an error of no row."))
    field = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class JobSerializer(serializers.Serializer):
    """What a merchant polls: rows and images of an upload, and its state. Its size is bounded."""

    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=ImportJob.State.choices)
    policy = serializers.CharField()
    full_sync = serializers.BooleanField()
    confirm_unlist = serializers.IntegerField(allow_null=True)
    rows_total = serializers.IntegerField()
    rows_checked = serializers.IntegerField(allow_null=True,
                                            help_text="While it runs: rows checked so far (null before it starts).")
    rows_in_all = serializers.IntegerField(allow_null=True, help_text="While it runs: rows the manifest has.")
    rows_accepted = serializers.IntegerField()
    rows_rejected = serializers.IntegerField()
    products_unlisted = serializers.IntegerField()
    unlisted_skus = serializers.ListField(child=serializers.CharField(),
                                          help_text="The first SKUs the full sync unlisted.")
    images_total = serializers.IntegerField()
    images_embedded = serializers.IntegerField()
    images_failed = serializers.IntegerField()
    finished = serializers.BooleanField(help_text="Ended, and no image of it is waiting to be embedded.")
    no_worker = serializers.BooleanField(help_text="Work is waiting and no bulk worker is running.")
    errors = ErrorSerializer(many=True, help_text="The first errors; all are in the rejected rows file.")
    errors_total = serializers.IntegerField()
    rejected_rows_url = serializers.SerializerMethodField(
        help_text="The rows that were not imported, as sent, with an 'error' column; null when none were.")
    message = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, progress) -> str:
        return reverse("p2w_uploads:import-detail", args=[progress["id"]], request=self.context.get("request"))

    def get_rejected_rows_url(self, progress) -> str | None:
        if not progress["files"]["rejected_rows"]:
            return None
        return reverse("p2w_uploads:import-file", args=[progress["id"], "rejected-rows"],
                       request=self.context.get("request"))


class ScientificSkuSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="As the merchant counts: a CSV's header is row 1; JSON Lines by line.")
    sku = serializers.CharField(help_text="The SKU as the row gives it.")


class ScientificCheckSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many rows give such a SKU, rejected or not.")
    skus = ScientificSkuSerializer(many=True, help_text="The first of those rows.")


class RowsCheckSerializer(serializers.Serializer):
    rejected = serializers.IntegerField(help_text="How many rows the import will reject, found before it runs.")
    errors = ErrorSerializer(many=True, help_text="The problems of the first of those rows, as the job will report "
                                                  "them.")


class UploadCheckSerializer(serializers.Serializer):
    """What the upload check (the merchant upload page's, ``uploads.rows.RejectedRows``) found in the manifest as it
    was read: warnings only, the upload is accepted and the import takes the other rows."""

    products = serializers.IntegerField(help_text=(
        "How many products the import may add or update: the rows less those it will reject, each SKU once. Rows "
        "refused for another cell (a price, an image) are found by the import only."))
    rows = RowsCheckSerializer(help_text=(
        "The rows the import will reject for what they are or for their SKU: unreadable, unknown fields, a SKU "
        "missing, blank, too long, with a character no one sees, on two rows (both are rejected), or one that looks "
        "the same as another of the catalog or of the file, written in other characters."))
    scientific = ScientificCheckSerializer(help_text=(
        "Rows whose SKU looks like a number a spreadsheet wrote in scientific notation (1.23457E+11): the digits it "
        "dropped are lost, the import adds a product of that name, and a full sync unlists the real one. Format the "
        "SKU column as text in the spreadsheet, correct the SKUs and send the file again."))


class AcceptedJobSerializer(JobSerializer):
    """The answer to an upload: the job to poll, and what the check found in its manifest before it was queued."""

    check = UploadCheckSerializer(help_text="Only in this answer: the job's own report comes once it has run.")


def merchant_key(user):
    """The key of the merchant ``user`` acts for; 403 for a user who is no merchant."""
    merchant = import_serializer().merchant_for(user)
    if merchant is None:
        raise PermissionDenied("Only merchants upload catalogs; this account belongs to no merchant.")
    return str(merchant.pk)


def sees_every_job(user):
    """Whether ``user`` sees every merchant's uploads: staff who may view import jobs, the admin's rule for them."""
    opts = ImportJob._meta
    return user.is_staff and any(user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")
                                 for action in ("view", "change"))


def visible_jobs(user):
    """The jobs ``user`` may see: all for staff who may view import jobs, else its merchant's."""
    if sees_every_job(user):
        return ImportJob.objects.all()
    return ImportJob.objects.filter(merchant_key=merchant_key(user))


class UploadsWaiting(APIException):
    """429: the merchant has ``IMPORT_MAX_WAITING`` uploads waiting; the detail says how many and what to do."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "uploads_waiting"

    def __init__(self, refusal):
        super().__init__(str(refusal))
        self.wait = WAITING_RETRY_AFTER  # DRF's exception handler sends it as Retry-After


@contextmanager
def uploads_waiting():
    """Turn the merchant's limit on waiting uploads (uploads.limits.TooManyWaiting) into the API's 429."""
    try:
        yield
    except TooManyWaiting as refusal:
        raise UploadsWaiting(refusal) from None


class JobPagination(PagePagination):
    """Twenty uploads a page; ``page_size`` up to 100, as the other lists take it (it was ignored here, unsaid)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


DATABASE_DOWN = OpenApiResponse(response=errors(503)[503].response,
                                description="The database cannot be reached; try again after Retry-After seconds.")


class UploadParser(MultiPartParser):
    # Django's DATA_UPLOAD_MAX_NUMBER_FILES (100 by default) bounds the files of every request the site parses,
    # an anonymous form's too, so it is not raised for uploads: many images go in one zip.
    files_hint = " Send the images as one zip in 'archive' instead."


@method_decorator(private_to_merchant, name="dispatch")  # its refusals too: dispatch answers them
class ImportListView(DatabaseOutageMixin, APIView):
    """Upload a catalog (202, a job to poll, with the check of its manifest), or list your uploads (newest first,
    paginated)."""

    permission_classes = [IsAuthenticated]
    parser_classes = [UploadParser, FormParser]

    @extend_schema(responses={200: JobSerializer(many=True), **errors(400, 401, 403, 404), 503: DATABASE_DOWN})
    def get(self, request):
        paginator = JobPagination()
        page = paginator.paginate_queryset(visible_jobs(request.user), request, view=self)
        page = prefetch_progress(page)  # the page's image counts at once, not three queries per job
        data = JobSerializer([job_progress(job) for job in page], many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=UploadSerializer, responses={
        202: AcceptedJobSerializer, **errors(400, 401, 403),
        429: OpenApiResponse(response=errors(429)[429].response, description=(
            "You have IMPORT_MAX_WAITING uploads waiting to be imported (queued or running); send this one once one "
            "of them has ended (Retry-After).")),
        503: OpenApiResponse(response=errors(503)[503].response, description=(
            "The server cannot store uploads now, or its database cannot be reached (Retry-After)."))})
    def post(self, request):
        key = merchant_key(request.user)
        with uploads_waiting():
            # Before request.data: a refused upload's body is not parsed into temporary files (with a token; a
            # session's CSRF check has read the form already).
            check_waiting(key)
        # A field given twice (policy=skip&policy=reject): the serializer would read the last, silently.
        repeated = repeated_parameters(request.data, UploadSerializer.given_once())
        if repeated:
            raise ValidationError(repeated)
        # The page's upload check, on the serializer's one read of the manifest: its warnings are in the answer.
        rejected = RejectedRows()
        upload = UploadSerializer(data=request.data, context={"manifest_rejected": rejected})
        upload.is_valid(raise_exception=True)
        serializer_class = import_serializer()
        look_alike.foresee(rejected, serializer_class, serializer_class.merchant_by_key(key))
        # With Redis down the job is still accepted: it is saved, and the sweep sends it later.
        try:
            with uploads_waiting():  # create_job counts again, under the merchant's lock, and keeps no file then
                job = create_job(owner=request.user, merchant_key=key, values=upload.validated_data)
        except OSError as exc:  # create_job deleted what it wrote, and saved no job
            logger.error("could not store an upload of merchant %s: %s", key, exc)
            return Response({"detail": NOT_STORED}, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        body = AcceptedJobSerializer({**job_progress(job), "check": rejected.findings()},
                                     context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


@method_decorator(private_to_merchant, name="dispatch")  # its refusals too: dispatch answers them
class ImportDetailView(DatabaseOutageMixin, APIView):
    """The progress of one of your uploads."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: JobSerializer, **errors(401, 403, 404), 503: DATABASE_DOWN})
    def get(self, request, pk):
        job = visible_jobs(request.user).filter(pk=pk).first()
        if job is None:
            raise NotFound("You have no upload with this id.")
        return Response(JobSerializer(job_progress(job), context={"request": request}).data)


@method_decorator(private_to_merchant, name="dispatch")  # its refusals too: dispatch answers them
class ImportFileView(DatabaseOutageMixin, APIView):
    """Download a file of one of your uploads: ``manifest``, ``archive`` or ``rejected-rows``."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(401, 403, 404),
                              503: OpenApiResponse(response=errors(503)[503].response, description=(
                                  "The server cannot read the file, or its database cannot be reached."))})
    def get(self, request, pk, name):
        job = visible_jobs(request.user).filter(pk=pk).first()
        if job is None:
            raise NotFound("You have no upload with this id.")
        return download(job, name)


class FilesUnreadable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The server cannot read this file right now; try again later."


def download(job, name):
    """A FileResponse with file ``name`` of ``job``, or NotFound saying why there is none."""
    field = FILES.get(name)
    if field is None:
        raise NotFound(f"An upload has no file {name!r}; its files are {', '.join(FILES)}.")
    file = getattr(job, field)
    if not file:
        if job.files_removed_at:
            raise NotFound(f"The files of this upload were deleted on {job.files_removed_at:%Y-%m-%d}, "
                           f"{app_settings.UPLOAD_RETENTION_DAYS} days after it ended.")
        raise NotFound(f"This upload has no {name} file.")
    try:
        handle = file.open("rb")
        if name == "manifest":  # a cell that would run as a formula in a spreadsheet (staff's too) gets an apostrophe
            handle = spreadsheet_safe(handle, file.name)
    except FileNotFoundError:  # deleted from the storage while the job still names it (a retention run cut short)
        raise NotFound(f"The {name} file of this upload is no longer kept.") from None
    except OSError as exc:  # the storage refuses to read it (permissions, a failing disk): the server's problem
        logger.error("could not read the %s file of import %s: %s", name, job.pk, exc)
        raise FilesUnreadable() from None
    filename = file.name.rsplit("/", 1)[-1]
    return FileResponse(handle, as_attachment=True, filename=f"import-{job.pk}-{filename}")
