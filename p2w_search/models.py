"""Product images, the CLIP models that embed them, and their embeddings.

The shop owns its product model (``settings.P2W_SEARCH_PRODUCT_MODEL``); this app owns
the images and vectors. Every vector row names the model that made it, and every query
filters on that model, so vectors of two models are never compared.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import HalfVectorField

from p2w_search.conf import app_settings
from p2w_search.files import base_name, image_url, public_file, short_stem
from p2w_search.uploads.storage import upload_storage

__all__ = ["EmbeddingModel", "ProductImage", "ImageEmbedding", "ImportJob", "WorkerProcess", "FileDeletion",
           "BrokerMarker"]


class EmbeddingModel(models.Model):
    """One CLIP model (architecture + weights) whose vectors are, or were, in the index."""

    class State(models.TextChoices):
        BUILDING = "building", "building (embedding the catalog)"
        SERVING = "serving", "serving searches"
        RETIRED = "retired", "retired"

    alias = models.CharField(max_length=100, help_text="The P2W_SEARCH['EMBEDDERS'] alias that configures it.")
    architecture = models.CharField(max_length=200)
    weights = models.CharField(max_length=500, help_text="Pretrained tag or checkpoint file name.")
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the checkpoint file, if any.")
    dimensions = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.BUILDING)
    created_at = models.DateTimeField(auto_now_add=True)
    serving_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["architecture", "weights", "checksum"], name="p2w_model_identity"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="serving"), name="p2w_one_serving_model"),
        ]

    def __str__(self):
        return self.key

    @property
    def key(self):
        suffix = f"@{self.checksum[:12]}" if self.checksum else ""
        return f"{self.architecture}/{self.weights}{suffix}"


# The longest file name a product image may have (characters, folders included).
FILE_NAME_LENGTH = 1024
IMAGE_FOLDER = "p2w/images"


def image_path(instance, filename):
    """Where the served copy of a product image is kept: the month's folder, the uploader's name cut short and 16
    random hex digits after it. The folder is public; the digits keep the URL of an image no page shows (an
    unlisted product's) from being guessed from a merchant's file names."""
    stem, extension = short_stem(filename, "image"), base_name(filename).rpartition(".")[2][:16]
    suffix = f".{extension}" if "." in base_name(filename) else ""
    return f"{IMAGE_FOLDER}/{timezone.now():%Y/%m}/{stem}-{secrets.token_hex(8)}{suffix}"


class ProductImage(models.Model):
    """An image of a product; a product has one or more."""

    product = models.ForeignKey(
        settings.P2W_SEARCH_PRODUCT_MODEL, on_delete=models.CASCADE, related_name="p2w_images"
    )
    # A FileField, not an ImageField: Django would decode untrusted files on save; imaging.py does that safely.
    # Wide enough for a shop's own file names (IMAGE_MODEL), which the mirror stores as they are.
    file = models.FileField(upload_to=image_path, max_length=FILE_NAME_LENGTH)
    sha256 = models.CharField(max_length=64, db_index=True)
    position = models.PositiveSmallIntegerField(default=0)
    # The key of the shop's own image this one mirrors (P2W_SEARCH["IMAGE_MODEL"]; shop_images.py):
    # its file is the shop's, read where it is. Empty for images this app stores itself.
    # 255: a shop's text keys ("products/tee/red-01/front.jpg"); longer ones are warned of (checks/catalog.py, W014).
    source_pk = models.CharField(max_length=255, blank=True, default="", db_index=True)
    # False: taken out of the index by an admin; not embedded, not searched.
    in_index = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["source_pk"], condition=~Q(source_pk=""),
                                               name="p2w_one_mirror_per_shop_image")]

    def __str__(self):
        return f"image {self.pk} of product {self.product_id}"

    @property
    def url(self):
        """The public URL of the image's file (the shop's storage for a mirrored image)."""
        return image_url(self)

    def save(self, *args, **kwargs):
        if self.file and not self.file._committed and not self.source_pk:
            # A new file (admin, shell, the shop's code): store the copy of its pixels that is
            # safe to serve, and the upload's hash. Raises ImageRejected for a file that is no image.
            self.file.seek(0)
            data = self.file.read(int(app_settings.MAX_IMAGE_BYTES) + 1)
            self.sha256, self.file = public_file(data, self.file.name)
        super().save(*args, **kwargs)


class ImageEmbedding(models.Model):
    """The vector of one image under one model, with the state of its computation."""

    class State(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    image = models.ForeignKey(ProductImage, on_delete=models.CASCADE, related_name="embeddings")
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="embeddings")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    # No fixed dimension: models differ; each model gets a partial HNSW index on a cast (index.py).
    vector = HalfVectorField(null=True, blank=True)
    # L2 norm of the raw image features: vector * norm gives them back for Pic2Word, whose
    # mapping reads the features before normalisation (paper, section 3.1).
    norm = models.FloatField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The task that is embedding the row (indexing.embed_pending): a duplicate message leaves it alone.
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    queued_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model"], name="p2w_one_embedding_per_model"),
            models.CheckConstraint(
                condition=Q(state="ready", vector__isnull=False, norm__isnull=False) | ~Q(state="ready"),
                name="p2w_ready_has_vector",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "state", "queued_at"], name="p2w_emb_model_state"),
            # The embedding rate of the admin page: the rows a model made ready in the last minutes.
            models.Index(fields=["model", "updated_at"], condition=Q(state="ready"), name="p2w_emb_ready_at"),
            # A model's counts by state (serving.model_progress: the index page, p2w_index status, the switch),
            # read from this index alone, not from the rows and their vectors (a kilobyte each).
            models.Index(fields=["model", "state", "image"], include=["id"], name="p2w_emb_model_state_image"),
            # The last errors of the index page: the newest failed rows, not a scan of every row for them.
            models.Index(fields=["-updated_at"], condition=Q(state="failed"), name="p2w_emb_failed_newest"),
        ]

    def __str__(self):
        return f"{self.image} under {self.model_id}: {self.state}"


UPLOAD_FOLDER = "p2w/imports"


def upload_path(instance, filename):
    """Where an upload of a job is kept, in the private upload storage: a folder of its own per file,
    the name cut short (its extension kept: it says the manifest's format)."""
    base = base_name(filename)
    extension = f".{base.rsplit('.', 1)[1][:16]}" if "." in base else ""
    return f"{UPLOAD_FOLDER}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}/{short_stem(base, 'upload')}{extension}"


class ImportJob(models.Model):
    """A merchant's catalog upload: a manifest (CSV or JSON Lines) and its images, imported by a worker."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        REJECTED = "rejected", "rejected (nothing written)"
        FAILED = "failed"

    class Policy(models.TextChoices):
        SKIP = "skip", "skip bad rows"
        REJECT = "reject", "reject the whole upload"

    ENDED = (State.DONE, State.REJECTED, State.FAILED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The merchant's key as text: 255 holds an email address, for a shop whose merchants are keyed by one.
    merchant_key = models.CharField(max_length=255, help_text="The merchant the products belong to.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    policy = models.CharField(max_length=16, choices=Policy.choices, default=Policy.SKIP)
    full_sync = models.BooleanField(default=False, help_text="Unlist the merchant's products missing from the file.")
    confirm_unlist = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="A full sync that unlists many products runs only when this is the exact number it unlists.")
    # Never in public media: the upload storage is served to the owning merchant and staff only.
    manifest = models.FileField(upload_to=upload_path, storage=upload_storage, max_length=300)
    archive = models.FileField(upload_to=upload_path, storage=upload_storage, max_length=300, blank=True)
    # The rows that were not imported, as the merchant wrote them, with an "error" column.
    rejected_rows = models.FileField(upload_to=upload_path, storage=upload_storage, max_length=300, blank=True)
    # A full sync's: the SKUs that were listed when the upload was received (a JSON list of texts). The sync
    # unlists only those: a product listed while the upload waited was not in the merchant's view of the file.
    listed_at_upload = models.FileField(upload_to=upload_path, storage=upload_storage, max_length=300, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    products_unlisted = models.PositiveIntegerField(default=0)
    # The first SKUs a full sync unlisted (all of them are counted in products_unlisted).
    unlisted_skus = models.JSONField(default=list, blank=True)
    # The first errors, [{"row": 3, "field": "price", "reason": "..."}]; errors_total counts them all.
    errors = models.JSONField(default=list, blank=True)
    errors_total = models.PositiveIntegerField(default=0)
    # Images this job added or changed; their embedding states give the job's embedding progress.
    images = models.ManyToManyField(ProductImage, related_name="import_jobs", blank=True)
    # The image counts once no image of the job is pending any more: polls then cost nothing.
    final_counts = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    files_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [
            # A merchant's jobs, newest first: its pages and the API's list.
            models.Index(fields=["merchant_key", "-id"], name="p2w_job_merchant_newest"),
            # Its jobs that have not ended, counted at each upload (uploads/limits.py); few rows at any time.
            models.Index(fields=["merchant_key"], condition=Q(state__in=["queued", "running"]),
                         name="p2w_job_merchant_waiting"),
        ]

    def __str__(self):
        return f"import {self.pk} ({self.state})"


class WorkerProcess(models.Model):
    """A Celery process that runs this app's tasks, as its heartbeat last reported it (workers.py)."""

    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    # The models it loaded before it took a task, and where it runs them ("cpu", "cuda:0").
    loaded_models = models.JSONField(default=list)
    device = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField()
    ready_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    last_task_at = models.DateTimeField(null=True, blank=True)
    tasks = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hostname", "pid"], name="p2w_one_row_per_worker_process")]
        ordering = ["hostname", "pid"]

    def __str__(self):
        return f"{self.hostname} (pid {self.pid})"


class FileDeletion(models.Model):
    """A product image file to delete from storage: written in the transaction that let go of it.

    The file is deleted once that transaction commits (product_images.py). A row that is still
    here later means the delete failed (the storage refused it) or the process stopped between
    the commit and the delete; the cleanup task tries it again, so a deleted product's photo is
    never left served.
    """

    name = models.CharField(max_length=FILE_NAME_LENGTH)  # as ProductImage.file stores it
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.name


class BrokerMarker(models.Model):
    """The generation the sweep last wrote into the broker's marker, and the run id of the Redis it wrote it to.

    Kept here, where it is not lost with the broker's data: a Redis that holds an older generation, or none, or
    answers with another run id, may have lost messages sent since (``dispatch.lost_messages``).
    """

    key = models.CharField(max_length=255, primary_key=True)  # dispatch.marker_key(): one per bulk queue
    generation = models.BigIntegerField(default=0)
    redis_run_id = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.key} (generation {self.generation})"
