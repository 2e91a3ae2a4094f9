"""Listings, photos, jobs and the derived data registered for them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# The job platform's model, kept in this app's migration state (table search_job) so FKs and old imports work.
from flatsite.jobs.models import Job as Job


class Listing(models.Model):
    """One property advertised by one agent."""

    external_id = models.CharField(max_length=128, blank=True, default="")
    title = models.CharField(max_length=255)
    address = models.CharField(max_length=255, blank=True, default="")
    zipcode = models.CharField(max_length=16, blank=True, default="")
    bedrooms = models.PositiveSmallIntegerField(null=True, blank=True)
    bathrooms = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    area = models.PositiveIntegerField(null=True, blank=True, help_text="square feet")
    price = models.PositiveBigIntegerField(null=True, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listings")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("view_any_listing", "See and edit every listing, not only one's own"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "external_id"],
                condition=~Q(external_id=""),
                name="listing_external_id_unique_per_owner",
            ),
            models.CheckConstraint(condition=~Q(title=""), name="listing_title_not_empty"),
        ]

    def __str__(self) -> str:
        return self.title


class Photo(models.Model):
    """One uploaded photo of a listing; the stored derivative is normalised and metadata-free."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        INDEXED = "indexed"
        REJECTED = "rejected"
        DUPLICATE = "duplicate"

    FINAL_STATES = (Status.PROCESSED, Status.INDEXED, Status.REJECTED, Status.DUPLICATE)

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="photos")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="photos")
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="photos")
    original_name = models.CharField(max_length=255)
    original_path = models.CharField(max_length=255, blank=True, default="", help_text="private, relative")
    image_path = models.CharField(max_length=255, blank=True, default="", help_text="normalised JPEG, media")
    thumb_path = models.CharField(max_length=255, blank=True, default="")
    sha256_bytes = models.CharField(max_length=64, db_index=True)
    sha256_pixels = models.CharField(max_length=64, blank=True, default="", db_index=True)
    phash = models.CharField(max_length=16, blank=True, default="", help_text="64-bit DCT hash, hex")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    reject_reason = models.CharField(max_length=500, blank=True, default="")
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )
    room_tag = models.CharField(max_length=32, blank=True, default="", help_text="ground-truth room type")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("search_photos", "Search all photos for matches"),
            ("review_clusters", "Review, name and edit photo clusters"),
            ("manage_jobs", "Start and cancel extraction, indexing, clustering and training jobs"),
        ]
        constraints = [
            # One stored copy per distinct picture: later copies link to it instead.
            models.UniqueConstraint(
                fields=["sha256_pixels"],
                condition=Q(duplicate_of__isnull=True) & ~Q(sha256_pixels=""),
                name="photo_pixels_stored_once",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reject_reason=""), name="photo_rejected_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(status="duplicate") | Q(duplicate_of__isnull=False),
                name="photo_duplicate_has_original",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "rejected"]) | ~Q(image_path=""),
                name="photo_processed_has_image",
            ),
        ]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["job", "status"])]

    def __str__(self) -> str:
        return f"photo #{self.pk} {self.original_name}"

    @property
    def is_final(self) -> bool:
        """Whether processing of this photo has finished (either way)."""
        return self.status in self.FINAL_STATES

    @property
    def stored(self) -> Photo:
        """The photo whose files hold this picture (itself, or the original it duplicates)."""
        return self.duplicate_of if self.duplicate_of_id and self.duplicate_of else self


class UploadBatch(models.Model):
    """One upload to a listing: what happened to each file, kept so its result page can be reloaded."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="upload_batches")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="upload_batches",
    )
    # The ingest job processing the stored photos; none when no file was stored (all rejected or repeats).
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload_batch"
    )
    outcomes = models.JSONField(default=list, blank=True, help_text="per file: name, status, detail, ids")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"upload #{self.pk} to listing #{self.listing_id}"


# Feature.encoder of the local keypoints verification reads (the other encoders' rows are global vectors).
LOCAL_ENCODER = "sift"


class Feature(models.Model):
    """A photo's descriptor from one encoder (global vector, or local keypoints for LOCAL_ENCODER)."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="features")
    encoder = models.CharField(max_length=64)
    dim = models.PositiveIntegerField(default=0)
    data = models.BinaryField(help_text="float32 vector bytes, or serialised local features")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "encoder"], name="feature_one_per_encoder")]
        indexes = [models.Index(fields=["encoder", "photo"])]

    def __str__(self) -> str:
        return f"{self.encoder} feature of photo #{self.photo_id}"


class IndexVersion(models.Model):
    """A FAISS index file built for one encoder; exactly one version per encoder is live."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        LIVE = "live"
        RETIRED = "retired"
        FAILED = "failed"

    encoder = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    path = models.CharField(max_length=500, blank=True, default="")
    kind = models.CharField(max_length=16, blank=True, default="")
    count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="index_versions"
    )
    evaluation = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["encoder", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["encoder", "version"], name="index_version_unique"),
            models.UniqueConstraint(
                fields=["encoder"], condition=Q(status="live"), name="index_one_live_per_encoder"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.encoder} index v{self.version} ({self.status})"


class SearchEncoderChoice(models.Model):
    """An admin's choice of the encoder whose live index search uses; the newest row is in effect.

    Rows are kept as the history of switches; with none, FLATSITE_SEARCH_ENCODER applies.
    """

    encoder = models.CharField(max_length=64)
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    chosen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"search uses {self.encoder}"


class PhotoMatch(models.Model):
    """A confirmed match between two stored photos (computed once when the newer one is indexed)."""

    photo_a = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="matches_as_a")
    photo_b = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="matches_as_b")
    level = models.CharField(max_length=16)
    score = models.FloatField()
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["photo_a", "photo_b"], name="photo_match_unique_pair"),
            models.CheckConstraint(condition=Q(photo_a__lt=models.F("photo_b")), name="photo_match_ordered"),
        ]
        indexes = [models.Index(fields=["level"])]

    def __str__(self) -> str:
        return f"{self.level} match #{self.photo_a_id} ~ #{self.photo_b_id}"


from search.clusters.models import *  # noqa: E402,F403
