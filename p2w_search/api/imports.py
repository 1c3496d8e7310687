"""Catalog uploads over the API: merchants send a manifest and images; a worker imports them."""

from django.core.files.base import ContentFile
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from p2w_search import imports, indexing
from p2w_search.api.schema import errors
from p2w_search.conf import app_settings
from p2w_search.models import ImportJob

__all__ = ["ImportListView", "ImportDetailView"]

MANIFEST_TYPES = (".csv", ".jsonl", ".ndjson")


class UploadSerializer(serializers.Serializer):
    manifest = serializers.FileField(help_text="CSV (header row) or JSON Lines: sku, title, description, category, "
                                               "price, currency, in_stock, images (file names, ';'-separated in CSV).")
    archive = serializers.FileField(required=False, help_text="A zip of the images the manifest names.")
    images = serializers.ListField(child=serializers.FileField(), required=False,
                                   help_text="Or the images as multipart files.")
    policy = serializers.ChoiceField(choices=ImportJob.Policy.choices, default=ImportJob.Policy.SKIP)
    full_sync = serializers.BooleanField(default=False,
                                         help_text="Unlist your products that the manifest does not name.")

    def validate_manifest(self, upload):
        if not upload.name.lower().endswith(MANIFEST_TYPES):
            raise serializers.ValidationError("The manifest must be a .csv or .jsonl file.")
        if upload.size > app_settings.IMPORT_MAX_MANIFEST_BYTES:
            raise serializers.ValidationError(
                f"The manifest is larger than {app_settings.IMPORT_MAX_MANIFEST_BYTES} bytes.")
        data = upload.read()
        try:
            _, rows = imports.parse_manifest(data, upload.name)
        except imports.ManifestError as exc:
            raise serializers.ValidationError(f"The manifest cannot be read: {exc}.") from None
        if not rows:
            raise serializers.ValidationError("The manifest has no rows.")
        upload.seek(0)
        return upload

    def validate_archive(self, upload):
        try:
            imports.check_archive(upload)
        except imports.ArchiveRejected as exc:
            raise serializers.ValidationError(f"The archive is refused: {exc}.") from None
        upload.seek(0)
        return upload

    def validate_images(self, uploads):
        for upload in uploads:
            if upload.size > app_settings.MAX_IMAGE_BYTES:
                raise serializers.ValidationError(f"{upload.name} is larger than {app_settings.MAX_IMAGE_BYTES} bytes.")
        return uploads


class JobSerializer(serializers.Serializer):
    """What a merchant polls: rows and images of an upload, and its state."""

    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=ImportJob.State.choices)
    policy = serializers.CharField()
    full_sync = serializers.BooleanField()
    rows_total = serializers.IntegerField()
    rows_accepted = serializers.IntegerField()
    rows_rejected = serializers.IntegerField()
    products_unlisted = serializers.IntegerField()
    images_total = serializers.IntegerField()
    images_embedded = serializers.IntegerField()
    images_failed = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())
    message = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def merchant_key(user):
    """The key of the merchant ``user`` acts for; 403 for a user who is no merchant."""
    merchant = imports.import_serializer().merchant_for(user)
    if merchant is None:
        raise PermissionDenied("Only merchants upload catalogs; this account belongs to no merchant.")
    return str(merchant.pk)


class ImportListView(APIView):
    """Upload a catalog (202, a job to poll), or list your uploads."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={200: JobSerializer(many=True), **errors(401, 403)})
    def get(self, request):
        jobs = ImportJob.objects.filter(merchant_key=merchant_key(request.user))[:50]
        return Response(JobSerializer([imports.job_progress(job) for job in jobs], many=True).data)

    @extend_schema(request=UploadSerializer, responses={202: JobSerializer, **errors(400, 401, 403)})
    def post(self, request):
        key = merchant_key(request.user)
        upload = UploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        values = upload.validated_data
        job = ImportJob(owner=request.user, merchant_key=key, policy=values["policy"], full_sync=values["full_sync"])
        job.manifest.save(values["manifest"].name, values["manifest"], save=False)
        if values.get("archive"):
            job.archive.save("images.zip", values["archive"], save=False)
        elif values.get("images"):
            packed = imports.pack_images({f.name: f.read() for f in values["images"]})
            job.archive.save("images.zip", ContentFile(packed), save=False)
        with transaction.atomic():
            job.save()
            from p2w_search.tasks import run_import

            # With Redis down the job is still accepted: it is saved, and the sweep sends it later.
            indexing.send_on_commit(run_import, args=(job.pk,), queue=app_settings.BULK_QUEUE)
        body = JobSerializer(imports.job_progress(job)).data
        body["url"] = reverse("p2w_search:import-detail", args=[job.pk], request=request)
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ImportDetailView(APIView):
    """The progress of one of your uploads."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: JobSerializer, **errors(401, 403, 404)})
    def get(self, request, pk):
        job = ImportJob.objects.filter(pk=pk, merchant_key=merchant_key(request.user)).first()
        if job is None:
            raise NotFound("You have no upload with this id.")
        return Response(JobSerializer(imports.job_progress(job)).data)
