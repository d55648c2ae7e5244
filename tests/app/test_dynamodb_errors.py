"""DynamoDB's error vocabulary against DynamoDB's own API model (botocore's service-2.json), and
what the wire makes of each error type it names."""

import json
import re
from typing import Any

import botocore.loaders
import pytest

from kiusys_app.stores import StoreErrorKind
from kiusys_app.stores.dynamodb.errors import (
    CANCELLATION_REASONS,
    ERROR_TYPES,
    Meaning,
    of_error_type,
    of_reason,
    of_reasons,
)
from kiusys_app.stores.dynamodb.wire import Answer, Cancelled, ConditionFailed, Failed, classify

# Every call the store makes.
CALLS = ("GetItem", "BatchGetItem", "UpdateItem", "PutItem", "TransactWriteItems", "Query")
MODEL: dict[str, Any] = botocore.loaders.Loader().load_service_model("dynamodb", "service-2")


def test_every_error_type_of_every_call_the_store_makes_is_named() -> None:
    listed = {error["shape"] for call in CALLS for error in MODEL["operations"][call]["errors"]}
    assert listed - ERROR_TYPES.keys() == set()


def test_every_documented_cancellation_reason_is_named() -> None:
    documentation = MODEL["shapes"]["TransactionCanceledException"]["documentation"]
    documented = set(re.findall(r"Code:\s*</?\w+>?\s*(\w+)", documentation))
    assert "ConditionalCheckFailed" in documented, "the model's wording changed"
    assert documented == CANCELLATION_REASONS.keys()


def error(code: str, status: int = 400, **extra: Any) -> Answer:
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "m", **extra}
    return Answer(status, "application/x-amz-json-1.0", json.dumps(body).encode())


# What the wire makes of each meaning of an error type: the exception, and for a failed attempt
# its kind and whether it may have been applied.
CLASSIFIED = {
    Meaning.THROTTLED: (Failed, StoreErrorKind.THROTTLED, False),
    Meaning.CONFLICT: (Failed, StoreErrorKind.UNAVAILABLE, False),
    Meaning.MISCONFIGURED: (Failed, StoreErrorKind.MISCONFIGURED, False),
    Meaning.SERVER_ERROR: (Failed, StoreErrorKind.UNAVAILABLE, True),
    Meaning.CONDITION_FAILED: (ConditionFailed, None, None),
    Meaning.CANCELLED: (Cancelled, None, None),
    Meaning.INVALID: (RuntimeError, None, None),
}


@pytest.mark.parametrize("code", sorted(ERROR_TYPES))
def test_each_named_error_type_is_classified_by_its_meaning(code: str) -> None:
    outcome = classify(error(code, CancellationReasons=[{"Code": "None"}]))
    kind, maybe_applied = getattr(outcome, "kind", None), getattr(outcome, "maybe_applied", None)
    assert (type(outcome), kind, maybe_applied) == CLASSIFIED[ERROR_TYPES[code]]


def test_a_conflict_in_another_region_is_tried_again_as_nothing_was_applied() -> None:
    outcome = classify(error("ReplicatedWriteConflictException"))
    assert isinstance(outcome, Failed)
    assert (outcome.kind, outcome.maybe_applied) == (StoreErrorKind.UNAVAILABLE, False)


@pytest.mark.parametrize(("status", "expected"), [(400, RuntimeError), (500, Failed)])
def test_an_unknown_error_type_is_a_bug_on_a_4xx_and_maybe_applied_on_a_5xx(
    status: int, expected: type
) -> None:
    outcome = classify(error("SomethingNewException", status))
    assert type(outcome) is expected
    assert of_error_type("SomethingNewException") is Meaning.UNKNOWN
    if isinstance(outcome, Failed):
        assert (outcome.kind, outcome.maybe_applied) == (StoreErrorKind.UNAVAILABLE, True)
    else:
        assert str(outcome) == f"dynamodb: SomethingNewException: m (HTTP {status})"


def test_reasons_mean_what_the_documentation_says() -> None:
    assert of_reasons(["None", "ConditionalCheckFailed", "ThrottlingError"]) == {
        Meaning.NONE,
        Meaning.CONDITION_FAILED,
        Meaning.THROTTLED,
    }
    assert of_reason("ProvisionedThroughputExceeded") is Meaning.THROTTLED
    assert of_reason("TransactionConflict") is Meaning.CONFLICT
    assert of_reason("ValidationError") is Meaning.INVALID
    assert of_reason("SomethingNew") is Meaning.UNKNOWN
