"""The controller's caches keep compact copies: what decisions read, nothing more."""

from __future__ import annotations

import json

from cronfleet.compact import LAST_APPLIED_ANNOTATION, compact

CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {
        "name": "backup",
        "namespace": "ops",
        "uid": "0b7e",
        "resourceVersion": "42",
        "labels": {"cronfleet.io/schedule": "backup"},
        "annotations": {
            LAST_APPLIED_ANNOTATION: '{"apiVersion":"batch/v1","kind":"CronJob"}',
            "team": "storage",
        },
        "ownerReferences": [{"kind": "Schedule", "name": "backup", "controller": True}],
        "managedFields": [
            {
                "manager": "cronfleet",
                "operation": "Apply",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:schedule": {}, "f:suspend": {}}},
            }
        ],
    },
    "spec": {"schedule": "0 3 * * *", "suspend": False, "jobTemplate": {"spec": {}}},
    "status": {"lastScheduleTime": "2026-11-30T03:00:00Z"},
}


def test_a_compact_copy_drops_managed_fields_and_last_applied_and_keeps_the_rest() -> None:
    copy = compact(json.loads(json.dumps(CRONJOB)))
    assert "managedFields" not in copy["metadata"]
    assert copy["metadata"]["annotations"] == {"team": "storage"}
    expected = json.loads(json.dumps(CRONJOB))
    del expected["metadata"]["managedFields"]
    del expected["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert copy == expected


def test_the_original_is_left_as_it_was() -> None:
    original = json.loads(json.dumps(CRONJOB))
    compact(original)
    assert original == CRONJOB


def test_two_decoded_objects_share_their_keys_and_short_values() -> None:
    first = compact(json.loads(json.dumps(CRONJOB)))
    second = compact(json.loads(json.dumps(CRONJOB)))
    key_of_first = next(k for k in first["spec"] if k == "jobTemplate")
    key_of_second = next(k for k in second["spec"] if k == "jobTemplate")
    assert key_of_first is key_of_second
    assert first["spec"]["schedule"] is second["spec"]["schedule"]


def test_an_object_without_metadata_or_annotations_is_copied_as_is() -> None:
    assert compact({"kind": "Status", "code": 404}) == {"kind": "Status", "code": 404}
    assert compact({"metadata": {"name": "x"}, "items": [1, "a", None]}) == {
        "metadata": {"name": "x"},
        "items": [1, "a", None],
    }
