"""DynamoDB's error vocabulary: the error types of a refused call, the reasons of a cancelled
transaction, and what each means to this store.

A refused call answers `{"__type": "…#<error type>", "message": …}`. A cancelled transaction
(`TransactionCanceledException`) lists one cancellation reason per action, in order, with the
literal code "None" for an action that had no error of its own (DynamoDB API Reference,
`TransactionCanceledException`). Named here: every error type that DynamoDB's API model lists
for the calls this store makes, and every documented cancellation reason (a test checks both
against botocore's model). One not named means "unknown", and is handled as an invalid one: a
request that only a bug here sends, a 500.
"""

import enum


class Meaning(enum.Enum):
    # Refused before anything was applied, to slow the caller down: try again after a pause.
    THROTTLED = "throttled"
    # Refused because another write (a transaction, another Region's) holds the item at that
    # moment; nothing applied.
    CONFLICT = "conflict"
    # A write's condition did not hold, so nothing was written.
    CONDITION_FAILED = "condition failed"
    # Rights, credentials, a table or the request's shape: no retry gets past it.
    MISCONFIGURED = "misconfigured"
    # A failure on DynamoDB's side: the request may or may not have been applied.
    SERVER_ERROR = "server error"
    # A transaction was cancelled: its reasons say why, one per action.
    CANCELLED = "cancelled"
    # A cancellation reason only: this action had no error; another action cancelled it.
    NONE = "none"
    # A request or an action this service should not have built (a wrong type, an item too
    # large, a feature it does not use). As with an unknown one, only a bug here causes it.
    INVALID = "invalid"
    UNKNOWN = "unknown"


ERROR_TYPES: dict[str, Meaning] = {
    "ProvisionedThroughputExceededException": Meaning.THROTTLED,
    "ThrottlingException": Meaning.THROTTLED,
    "RequestLimitExceeded": Meaning.THROTTLED,
    # "Operation was rejected because there is an ongoing transaction for the item".
    "TransactionConflictException": Meaning.CONFLICT,
    # A multi-Region strongly consistent table: "rejected because one or more items in the
    # request are being modified by a request in another Region".
    "ReplicatedWriteConflictException": Meaning.CONFLICT,
    "ConditionalCheckFailedException": Meaning.CONDITION_FAILED,
    "AccessDeniedException": Meaning.MISCONFIGURED,
    "UnrecognizedClientException": Meaning.MISCONFIGURED,
    "InvalidSignatureException": Meaning.MISCONFIGURED,
    "IncompleteSignatureException": Meaning.MISCONFIGURED,
    "MissingAuthenticationTokenException": Meaning.MISCONFIGURED,
    "ExpiredTokenException": Meaning.MISCONFIGURED,
    "ResourceNotFoundException": Meaning.MISCONFIGURED,
    "ValidationException": Meaning.MISCONFIGURED,
    "InternalServerError": Meaning.SERVER_ERROR,
    "ServiceUnavailable": Meaning.SERVER_ERROR,
    "TransactionInProgressException": Meaning.SERVER_ERROR,
    "TransactionCanceledException": Meaning.CANCELLED,
    # Only for tables with a local secondary index, which these tables do not have.
    "ItemCollectionSizeLimitExceededException": Meaning.INVALID,
    # Only for a transaction sent with a ClientRequestToken, which this store never sends.
    "IdempotentParameterMismatchException": Meaning.INVALID,
}

CANCELLATION_REASONS: dict[str, Meaning] = {
    "None": Meaning.NONE,
    "ConditionalCheckFailed": Meaning.CONDITION_FAILED,
    "TransactionConflict": Meaning.CONFLICT,
    "ProvisionedThroughputExceeded": Meaning.THROTTLED,
    "ThrottlingError": Meaning.THROTTLED,
    "ValidationError": Meaning.INVALID,
    "ItemCollectionSizeLimitExceeded": Meaning.INVALID,
}


def of_error_type(code: str) -> Meaning:
    return ERROR_TYPES.get(code, Meaning.UNKNOWN)


def of_reason(code: str) -> Meaning:
    return CANCELLATION_REASONS.get(code, Meaning.UNKNOWN)


def of_reasons(codes: list[str]) -> set[Meaning]:
    """What a cancelled transaction's reasons mean, together."""
    return {of_reason(code) for code in codes}
