"""Django admin registrations (read-mostly views for operators)."""

from django.contrib import admin

from search.models import Job, Listing, Photo


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "title", "zipcode", "owner", "created_at")
    search_fields = ("title", "external_id", "zipcode")


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "original_name", "listing", "status", "duplicate_of", "created_at")
    list_filter = ("status",)
    readonly_fields = ("sha256_bytes", "sha256_pixels", "phash")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "kind", "status", "done", "total", "created_by", "created_at", "heartbeat_at")
    list_filter = ("kind", "status")
