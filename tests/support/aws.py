"""DynamoDB tables as the service expects them, for moto."""

import re
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
TABLE = "flights-db"
KEYS_TABLE = "flights-db-idempotency"

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def dynamodb(
    endpoint_url: str | None = None,
    verify: str | None = None,
    region: str = REGION,
    attempts: int | None = None,
) -> Any:
    """A boto3 DynamoDB client; with `attempts`, botocore tries each call that many times
    (1: every refusal shows)."""
    config = None if attempts is None else Config(retries={"total_max_attempts": attempts})
    return boto3.client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url, verify=verify, config=config
    )


def fresh_tables(client: Any) -> Any:
    """The service's tables, empty, where `client` points; returns `client`. (Dropping the
    tables is much faster than moto's reset of every service.)"""
    for table in client.list_tables()["TableNames"]:
        client.delete_table(TableName=table)
    create_tables(client)
    return client


def create_tables(client: Any) -> None:
    """The two tables as the dynamodb root makes them: keyed by route and by key, and the
    counters' index of routes by airline."""
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "flight-route", "AttributeType": "S"},
            {"AttributeName": "airline", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "flight-route", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "airline",
                "KeySchema": [{"AttributeName": "airline", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=KEYS_TABLE,
        AttributeDefinitions=[{"AttributeName": "idempotency-key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "idempotency-key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


# The key of a closed day's item ends with `#` and the day; its count is in that day's total.
CLOSED_DAY = re.compile(r"#\d{4}-\d{2}-\d{2}$")


def scan_all(client: Any) -> dict[str, list[dict[str, Any]]]:
    """Every item of both tables, sorted, to compare before and after."""
    return {
        name: sorted(client.scan(TableName=name)["Items"], key=repr) for name in (TABLE, KEYS_TABLE)
    }


def stored(client: Any) -> tuple[Counter[str], dict[str, str]]:
    """Each route's count, and each stored key's route."""
    counts = Counter(
        {
            item["flight-route"]["S"]: int(item["record"]["N"])
            for item in client.scan(TableName=TABLE)["Items"]
            if not CLOSED_DAY.search(item["flight-route"]["S"])
        }
    )
    keys = {
        item["idempotency-key"]["S"]: item["flight-route"]["S"]
        for item in client.scan(TableName=KEYS_TABLE)["Items"]
    }
    return counts, keys
