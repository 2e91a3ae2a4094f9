"""Carry-over of moderator decisions from one clustering run to the next."""

from __future__ import annotations

import numpy as np

from search.ml.clusters.carryover import Constraints, PriorCluster, carry_over

IDS = np.arange(100, 160)  # photo ids of the new run


def labels_for(groups: dict[int, range], n: int = 60) -> np.ndarray:
    """New labels over IDS: groups maps label -> positions; everything else is noise."""
    labels = np.full(n, -1)
    for label, rows in groups.items():
        labels[list(rows)] = label
    return labels


def ids(rows: range) -> set[int]:
    return {int(IDS[r]) for r in rows}


def test_renumbered_cluster_keeps_its_name_and_state_by_member_overlap() -> None:
    prior = [
        PriorCluster(7, "Kitchens", "approved", ids(range(0, 20))),
        PriorCluster(9, "Bathrooms", "named", ids(range(20, 40))),
    ]
    labels = labels_for({0: range(20, 40), 1: range(0, 18), 2: range(40, 60)})  # kitchens lost 2 to noise
    out, report = carry_over(prior, labels, IDS, Constraints())
    assert report.mapping == {0: 9, 1: 7}
    assert np.array_equal(out, labels)
    assert report.conflicts == []
    carried = {c["prior"]: c for c in report.summary["carried_clusters"]}
    assert (
        carried[7]["name"] == "Kitchens"
        and carried[7]["state"] == "approved"
        and carried[7]["new_label"] == 1
    )
    assert report.summary["new_unmatched"] == 1


def test_new_and_deleted_photos_do_not_break_the_match() -> None:
    # 10 members were deleted since the last run; the new cluster also holds 30 brand-new photos
    prior = [
        PriorCluster(
            3, "Gardens", "named", ids(range(0, 20)) | {999, 998, 997, 996, 995, 994, 993, 992, 991, 990}
        )
    ]
    _, report = carry_over(prior, labels_for({4: range(0, 50)}), IDS, Constraints())
    assert report.mapping == {4: 3}


def test_move_puts_the_photo_into_the_cluster_that_carries_the_target_identity() -> None:
    prior = [
        PriorCluster(7, "Kitchens", "named", ids(range(0, 20))),
        PriorCluster(9, "Bathrooms", "named", ids(range(20, 40))),
    ]
    labels = labels_for({0: range(0, 20), 1: range(20, 40)})
    moved = int(IDS[25])  # a moderator moved this bathroom-looking photo to Kitchens
    satisfied = int(IDS[3])  # already where the moderator put it
    out, report = carry_over(prior, labels, IDS, Constraints(moves={moved: 7, satisfied: 7}))
    assert out[25] == 0 and labels[25] == 1
    assert report.applied_moves == 1
    assert report.summary["moves_satisfied"] == 1


def test_not_in_this_cluster_sends_the_photo_to_noise_when_it_lands_there_again() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 20)))]
    labels = labels_for({0: range(0, 20), 1: range(20, 40)})
    rejected, elsewhere = int(IDS[5]), int(IDS[30])
    out, report = carry_over(prior, labels, IDS, Constraints(cannot_link={rejected: {7}, elsewhere: {7}}))
    assert out[5] == -1
    assert out[30] == 1  # it is not in Kitchens' cluster, nothing to do
    assert report.applied_cannot_links == 1


def test_split_cluster_is_matched_to_its_larger_part_and_reported() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 20)))]
    labels = labels_for({0: range(0, 12), 1: range(12, 20)})
    _, report = carry_over(prior, labels, IDS, Constraints())
    assert report.mapping == {0: 7}
    [conflict] = report.conflicts
    assert conflict["type"] == "split" and conflict["new_labels"] == [0, 1] and conflict["matched_to"] == 0


def test_two_priors_claiming_one_new_cluster_are_reported_and_the_larger_keeps_it() -> None:
    prior = [
        PriorCluster(7, "Kitchens", "named", ids(range(0, 12))),
        PriorCluster(8, "Dining", "named", ids(range(12, 20))),
    ]
    _, report = carry_over(prior, labels_for({0: range(0, 20)}), IDS, Constraints())
    assert report.mapping == {0: 7}
    [conflict] = report.conflicts
    assert conflict == {"type": "merged", "new_label": 0, "priors": [7, 8], "kept": 7}
    assert report.summary["conflicts"] == {"merged": 1}


def test_mapping_is_one_to_one() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 40)))]
    _, report = carry_over(
        prior, labels_for({0: range(0, 20), 1: range(20, 40)}), IDS, Constraints(), min_overlap=0.4
    )
    assert list(report.mapping.values()) == [7]


def test_cluster_that_dissolved_into_noise_is_reported_lost_and_moves_to_it_unresolved() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 20)))]
    labels = labels_for({0: range(20, 40)})
    _, report = carry_over(prior, labels, IDS, Constraints(moves={int(IDS[30]): 7, 12345: 7}))
    types = [c["type"] for c in report.conflicts]
    assert types == ["lost", "move_target_unmatched"]
    assert report.mapping == {}
    assert report.summary["moves_missing_photo"] == 1


def test_contradictory_decisions_on_one_photo_are_left_for_a_moderator() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 20)))]
    labels = labels_for({0: range(0, 20), 1: range(20, 40)})
    photo = int(IDS[30])
    out, report = carry_over(prior, labels, IDS, Constraints(moves={photo: 7}, cannot_link={photo: {7}}))
    assert out[30] == 1
    assert report.conflicts == [{"type": "contradictory_constraints", "photo": photo, "prior": 7}]


def test_all_noise_run_has_no_matches() -> None:
    prior = [PriorCluster(7, "Kitchens", "named", ids(range(0, 20)))]
    out, report = carry_over(prior, np.full(60, -1), IDS, Constraints())
    assert report.mapping == {} and (out == -1).all()
    assert report.summary["new_clusters"] == 0
