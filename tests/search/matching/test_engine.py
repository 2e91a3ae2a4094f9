"""End to end on generated photos: ingest, extract, index, then search at every level."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from PIL import Image, ImageDraw

from search import pipeline
from search.listings import ingest
from search.matching import features
from search.matching.engine import image_search, query_from_file, query_from_photo
from search.matching.selectors import listing_pairs
from search.models import Feature, IndexVersion, Photo, PhotoMatch
from tests import images
from tests.conftest import upload
from tests.factories import ListingFactory

pytestmark = pytest.mark.django_db


def _edited(img: Image.Image) -> Image.Image:
    """Crop 15 %, add a text watermark, mirror: the kind of copy agents re-post."""
    w, h = img.size
    out = img.crop((int(0.08 * w), int(0.07 * h), int(0.93 * w), int(0.92 * h))).resize((w, h))
    ImageDraw.Draw(out).text((10, 10), "AGENCY (c)", fill=(255, 255, 255))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


@pytest.fixture
def collection(realtor: Any) -> dict[str, Any]:
    return _collection(realtor)


def _collection(realtor: Any) -> dict[str, Any]:
    first, second = ListingFactory(owner=realtor), ListingFactory()
    pics = {f"p{i}": images.picture(100 + i, (480, 360)) for i in range(4)}
    for listing, names in ((first, ["p0", "p1"]), (second, ["p2", "p3"])):
        items = [upload(f"{n}.jpg", images.encode(pics[n], "JPEG", quality=92)) for n in names]
        result = ingest.photo_ingest(listing=listing, uploader=listing.owner, items=items, enqueue=False)
        assert result.job is not None
        pipeline.ingest_inline(result.job.pk)
    features.extract_inline()
    return {"pics": pics, "first": first, "second": second}


def _query(tmp_path: Path, img: Image.Image, name: str = "q.jpg") -> Any:
    path = tmp_path / name
    img.save(path, "JPEG", quality=85)
    return query_from_file(path, name)


def test_extraction_stores_features_for_every_encoder_and_goes_live(collection: dict[str, Any]) -> None:
    assert Photo.objects.filter(status=Photo.Status.INDEXED).count() == 4
    for encoder in [*features.active_encoders(), features.LOCAL_ENCODER]:
        assert Feature.objects.filter(encoder=encoder).count() == 4
    live = IndexVersion.objects.get(encoder=features.active_encoders()[0], status=IndexVersion.Status.LIVE)
    assert live.count == 4


def test_exact_copy_is_found_at_the_exact_level(collection: dict[str, Any], tmp_path: Path) -> None:
    # The same pixels as the stored upload (its JPEG decoded), in another container.
    path = tmp_path / "same.png"
    Image.open(io.BytesIO(images.encode(collection["pics"]["p1"], "JPEG", quality=92))).save(path, "PNG")
    result = image_search(query_from_file(path, "same.png"))
    top = result.matches[0]
    assert top.level == "exact" and top.photo.original_name == "p1.jpg"


def test_edited_copy_is_found_at_the_edited_level(collection: dict[str, Any], tmp_path: Path) -> None:
    result = image_search(_query(tmp_path, _edited(collection["pics"]["p2"])))
    edited = [m for m in result.matches if m.level == "edited"]
    assert [m.photo.original_name for m in edited] == ["p2.jpg"]
    assert edited[0].photo.listing == collection["second"]
    assert "inliers" in str(edited[0].evidence)


def test_unrelated_photo_is_never_an_exact_or_edited_copy(collection: dict[str, Any], tmp_path: Path) -> None:
    result = image_search(_query(tmp_path, images.picture(999, (480, 360))))
    assert {m.level for m in result.matches} <= {"similar", "same_room"}


def test_searching_from_a_stored_photo_leaves_it_out(collection: dict[str, Any]) -> None:
    photo = Photo.objects.get(original_name="p0.jpg")
    result = image_search(query_from_photo(photo))
    assert photo.pk not in [m.photo.pk for m in result.matches]


def _byte_copy_in_another_listing(collection: dict[str, Any], name: str) -> tuple[Photo, Photo]:
    """(the stored photo, its byte-identical upload into a new listing, stored as a copy of it)."""
    listing = ListingFactory()
    data = images.encode(collection["pics"][name], "JPEG", quality=92)  # the collection's very bytes
    result = ingest.photo_ingest(
        listing=listing, uploader=listing.owner, items=[upload("re-posted.jpg", data)], enqueue=False
    )
    assert result.outcomes[0].status == "duplicate"  # linked at upload: nothing to process
    copy = Photo.objects.get(listing=listing)
    original = Photo.objects.get(original_name=f"{name}.jpg")
    assert copy.duplicate_of == original  # it has no features or index row of its own
    return original, copy


def _exact(result: Any) -> list[int]:
    return sorted(m.photo.pk for m in result.matches if m.level == "exact")


def test_searching_from_a_stored_photo_lists_its_byte_copy_in_another_listing_as_an_exact_copy(
    collection: dict[str, Any],
) -> None:
    original, copy = _byte_copy_in_another_listing(collection, "p1")
    assert _exact(image_search(query_from_photo(original))) == [copy.pk]
    # And the other way round: from the copy, the photo it copies (in the first listing) is the match.
    assert _exact(image_search(query_from_photo(copy))) == [original.pk]


def test_stored_photo_search_and_upload_search_find_the_same_exact_copies(
    collection: dict[str, Any], tmp_path: Path
) -> None:
    original, copy = _byte_copy_in_another_listing(collection, "p2")
    path = tmp_path / "p2.jpg"
    path.write_bytes(images.encode(collection["pics"]["p2"], "JPEG", quality=92))
    uploaded = _exact(image_search(query_from_file(path, "p2.jpg")))
    assert uploaded == sorted([original.pk, copy.pk])
    for photo in (original, copy):  # the same, less the photo searched from
        assert _exact(image_search(query_from_photo(photo))) == [p for p in uploaded if p != photo.pk]


def test_searching_from_a_stored_photo_reuses_its_stored_descriptors(
    collection: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.matching import engine as selectors_search

    photo = Photo.objects.get(original_name="p0.jpg")
    fresh = image_search(query_from_photo(photo))

    def not_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("SIFT recomputed for a stored photo")

    monkeypatch.setattr(selectors_search, "extract_query_local", not_again)
    query = query_from_photo(photo)
    assert query.vector is not None and query.local is not None
    reused = image_search(query)
    assert [(m.photo.pk, m.level) for m in reused.matches] == [(m.photo.pk, m.level) for m in fresh.matches]


def test_listings_sharing_two_copied_photos_are_probable_duplicates(
    collection: dict[str, Any], realtor: Any
) -> None:
    third = ListingFactory()
    items = [
        upload("copy0.jpg", images.encode(_edited(collection["pics"]["p0"]), "JPEG", quality=80)),
        upload("copy1.jpg", images.encode(collection["pics"]["p1"], "JPEG", quality=92)),  # same bytes
    ]
    result = ingest.photo_ingest(listing=third, uploader=third.owner, items=items, enqueue=False)
    assert result.job is not None
    pipeline.ingest_inline(result.job.pk)
    features.extract_inline()
    assert PhotoMatch.objects.filter(level="edited").exists()
    pairs = listing_pairs(listing_id=third.pk)
    assert [(p.a, p.b) for p in pairs] == [(collection["first"], third)]
    assert pairs[0].count == 2 and pairs[0].best == "exact"


def test_find_similar_prints_one_json_line_per_query(collection: dict[str, Any], tmp_path: Path) -> None:
    good = tmp_path / "q.jpg"
    _edited(collection["pics"]["p3"]).save(good, "JPEG")
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    out = io.StringIO()
    call_command("find_similar", str(good), str(bad), "--json", stdout=out)
    import json

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["query"] for line in lines] == [str(good), str(bad)]
    assert lines[0]["matches"][0]["original_name"] == "p3.jpg"
    assert lines[0]["matches"][0]["level"] == "edited"
    assert "unsupported file type" in lines[1]["error"]


def test_room_tag_filter_keeps_only_photos_of_that_room_type(
    collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.matching import engine as selectors_search

    target = Photo.objects.get(original_name="p2.jpg")
    monkeypatch.setattr(selectors_search, "photo_room_tags", lambda ids: {target.pk: "kitchen"})
    query = _query(tmp_path, _edited(collection["pics"]["p2"]))
    kitchen = image_search(query, room_tag="kitchen")
    assert [m.photo.pk for m in kitchen.matches] == [target.pk]


def test_room_filter_never_hides_an_edited_copy(
    collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.matching import engine as selectors_search

    target = Photo.objects.get(original_name="p2.jpg")
    monkeypatch.setattr(selectors_search, "photo_room_tags", lambda ids: {target.pk: "kitchen"})
    bathroom = image_search(_query(tmp_path, _edited(collection["pics"]["p2"])), room_tag="bathroom")
    assert [(m.photo.pk, m.level) for m in bathroom.matches] == [(target.pk, "edited")]


def _every_photo_similar(settings: Any) -> None:
    # Floors below any cosine: every shortlisted photo that is no copy is a similar look.
    settings.FLATSITE_MATCH_THRESHOLDS = {"similar_min_score": -1.0, "similar_min_centred": -1.0}


def test_room_filter_searches_within_the_room_type_beyond_the_shortlist(
    collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from search.matching import engine as selectors_search

    _every_photo_similar(settings)
    kitchen = set(Photo.objects.filter(original_name__in=["p1.jpg", "p3.jpg"]).values_list("pk", flat=True))
    monkeypatch.setattr(
        selectors_search, "photo_room_tags", lambda ids: {pk: "kitchen" for pk in ids if pk in kitchen}
    )
    query = _query(tmp_path, images.picture(999, (480, 360)))
    # A one-photo shortlist holds at most one kitchen: the search widens until it has k of them.
    result = image_search(query, k=2, shortlist=1, room_tag="kitchen")
    assert {m.photo.pk for m in result.matches} == kitchen


def test_similar_looks_clear_the_calibrated_floor_and_are_never_padded_up_to_k(
    centred_collection: dict[str, Any], tmp_path: Path, settings: Any
) -> None:
    query = _query(tmp_path, images.picture(999, (480, 360)))
    cosines = sorted(m.evidence["global_score"] for m in image_search(query).matches if m.level == "similar")
    assert len(cosines) >= 2
    floor = (cosines[0] + cosines[1]) / 2  # between the two lowest: the lowest must go
    settings.FLATSITE_MATCH_THRESHOLDS = {"similar_min_centred": floor}
    similar = [m for m in image_search(query, k=10).matches if m.level == "similar"]
    assert len(similar) == len(cosines) - 1 < 10
    assert all(m.evidence["global_score"] >= floor for m in similar)


def test_by_listing_counts_copies_apart_from_similar_looks(
    collection: dict[str, Any], tmp_path: Path, settings: Any
) -> None:
    _every_photo_similar(settings)
    result = image_search(_query(tmp_path, _edited(collection["pics"]["p2"])))
    groups = {g["listing"]: g for g in result.by_listing()}
    second, first = groups[collection["second"]], groups[collection["first"]]
    assert (second["best"], second["matched"], second["similar"]) == ("edited", 1, 1)
    assert (first["best"], first["matched"], first["similar"]) == ("similar", 0, 2)
    assert second["probable_duplicate"] and not first["probable_duplicate"]


def test_by_listing_leaves_out_the_stored_query_photo_s_own_listing(
    collection: dict[str, Any], settings: Any
) -> None:
    _every_photo_similar(settings)
    result = image_search(query_from_photo(Photo.objects.get(original_name="p0.jpg")))
    assert "p1.jpg" in [m.photo.original_name for m in result.matches]  # still shown as a similar look
    assert [g["listing"] for g in result.by_listing()] == [collection["second"]]


@pytest.fixture
def centred_collection(realtor: Any, settings: Any) -> dict[str, Any]:
    settings.FLATSITE_INDEX_CENTRE_MIN = 3  # four photos are enough to centre on
    return _collection(realtor)


def test_a_centred_collection_reranks_the_similar_level(
    centred_collection: dict[str, Any], tmp_path: Path
) -> None:
    from search.matching.index import index_for_search
    from search.matching.rerank import rerank_indexes

    indexes = rerank_indexes(index_for_search(features.active_encoders()[0]))
    assert indexes is not None and indexes.search.config.centre_count == 4
    result = image_search(_query(tmp_path, images.picture(999, (480, 360))))
    similar = [m for m in result.matches if m.level == "similar"]
    assert similar and all("rerank_score" in m.evidence for m in similar)
    assert [m.score for m in similar] == sorted((m.score for m in similar), reverse=True)
    assert "rerank_ms" in result.timings


def test_a_centred_collection_still_finds_edited_copies(
    centred_collection: dict[str, Any], tmp_path: Path
) -> None:
    result = image_search(_query(tmp_path, _edited(centred_collection["pics"]["p2"])))
    assert [m.photo.original_name for m in result.matches if m.level == "edited"] == ["p2.jpg"]


def test_a_stored_photo_query_reuses_its_stored_rerank_embedding(
    centred_collection: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.matching import engine as selectors_search

    query = query_from_photo(Photo.objects.get(original_name="p0.jpg"))
    assert query.vector2 is not None

    def not_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the re-rank encoder ran for a stored photo")

    monkeypatch.setattr(selectors_search, "load_encoder", not_again)
    assert selectors_search._query_vector2(query, "effnet-lite2").result() is query.vector2


def test_matching_at_ingest_skips_the_reranking(
    centred_collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.matching import engine as selectors_search

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("re-ranked a k=0 search")

    monkeypatch.setattr(selectors_search, "similar_rerank", never)
    result = image_search(_query(tmp_path, _edited(centred_collection["pics"]["p2"])), k=0)
    assert [m.level for m in result.matches] == ["edited"]


@pytest.mark.parametrize("mirror", [False, True])
def test_the_mirrored_query_is_embedded_only_when_configured_and_mirrored_copies_are_found_either_way(
    collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any, mirror: bool
) -> None:
    from search.ml.encoders.registry import load_encoder

    settings.FLATSITE_SEARCH_MIRROR_QUERY = mirror
    model = load_encoder(settings.FLATSITE_SEARCH_ENCODER)
    batches: list[int] = []
    real = model.embed_images
    monkeypatch.setattr(model, "embed_images", lambda imgs, *a, **kw: batches.append(len(imgs)) or real(imgs))
    result = image_search(_query(tmp_path, _edited(collection["pics"]["p2"])), k=0)
    assert batches == [2 if mirror else 1]
    edited = [m for m in result.matches if m.level == "edited"]
    assert [m.photo.original_name for m in edited] == ["p2.jpg"] and edited[0].evidence["mirrored"] is True


@pytest.mark.parametrize("side", [0, 320])
def test_an_uploaded_query_s_sift_runs_on_the_configured_frame_and_still_finds_the_edited_copy(
    collection: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any, side: int
) -> None:
    from search.matching import engine as selectors_search

    settings.FLATSITE_SEARCH_QUERY_SIFT_SIDE = side
    frames: list[tuple[int, int]] = []
    real = selectors_search.extract_query_local

    def spy(*args: Any, **kwargs: Any) -> Any:
        feats = real(*args, **kwargs)
        frames.append(feats.image_size)
        return feats

    monkeypatch.setattr(selectors_search, "extract_query_local", spy)
    result = image_search(_query(tmp_path, _edited(collection["pics"]["p2"])), k=0)
    assert [max(frame) for frame in frames] == [side or 480]  # the stored photos' frame is 640 (> 480 px)
    edited = [m for m in result.matches if m.level == "edited"]
    assert [m.photo.original_name for m in edited] == ["p2.jpg"]


def test_an_uploaded_query_is_decoded_without_encoding_the_stored_jpeg_and_thumbnail(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.ml.images import normalise

    def never(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("a query is never stored: no derivative should be encoded")

    settings.FLATSITE_DECODE_IN_CHILD = False  # in process, so the encoder can be watched
    monkeypatch.setattr(normalise, "_jpeg_bytes", never)
    img = images.picture(7, (320, 240))
    query = _query(tmp_path, img)
    assert query.image.size == (320, 240) and len(query.sha256_pixels) == 64
