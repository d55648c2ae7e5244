"""The seed's approach, written for comparison only: in an `async def` handler, query the
route's item, add one, and put it back. Blocking boto3 calls on the event loop, and a
read-modify-write that loses updates when several processes race."""

import os

import boto3
from boto3.dynamodb.conditions import Key
from fastapi import FastAPI

app = FastAPI()
table = boto3.resource(
    "dynamodb",
    region_name=os.environ["AWS_REGION"],
    endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
).Table(os.environ.get("KIUSYS_TABLE_NAME", "flights-db"))


@app.post("/save-transaction/{flight_route}")
async def save_transaction(flight_route: str) -> dict[str, int]:
    items = table.query(KeyConditionExpression=Key("flight-route").eq(flight_route))["Items"]
    count = int(items[0]["record"]) + 1 if items else 1
    table.put_item(Item={"flight-route": flight_route, "record": count})
    return {flight_route: count}
