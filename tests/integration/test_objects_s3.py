"""`S3ObjectReader` against the moto server: real HeadObject answers, translated."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import boto3
import pytest

from pipeline.adapters.runtime import open_s3_client
from pipeline.adapters.s3_objects import S3ObjectReader
from pipeline.core.settings import Settings
from pipeline.ingest.objects import ObjectHead, ObjectLookupError

REGION = "ap-south-1"


def heads(endpoint: str, bucket: str, *keys: str) -> list[ObjectHead | str]:
    """HeadObject of each key through the production adapter and client factory."""
    settings = Settings(table_name="unused", region=REGION, s3_endpoint_url=endpoint)

    async def run() -> list[ObjectHead | str]:
        async with AsyncExitStack() as stack:
            reader = S3ObjectReader(await open_s3_client(stack, settings))
            out: list[ObjectHead | str] = []
            for key in keys:
                try:
                    out.append(await reader.head(bucket, key))
                except ObjectLookupError as error:
                    out.append(f"transient={error.transient}")
            return out

    return asyncio.run(run())


def test_head_object_on_a_versioned_bucket(aws_env: str) -> None:
    # Given a versioned bucket: a live key, a key under a delete marker, and no such key
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name=REGION)
    bucket = f"heads-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    live = s3.put_object(Bucket=bucket, Key="live file.txt", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="hidden", Body=b"x")
    marker = s3.delete_object(Bucket=bucket, Key="hidden")

    # When the adapter asks about each
    got = heads(aws_env, bucket, "live file.txt", "hidden", "never")

    # Then 200 -> the current version; 404 + marker -> hidden with the marker's id; 404 -> none
    assert got == [
        ObjectHead(exists=True, size=5, etag=live["ETag"].strip('"'), version_id=live["VersionId"]),
        ObjectHead(exists=False, delete_marker=True, version_id=marker["VersionId"]),
        ObjectHead(exists=False),
    ]


def test_a_missing_bucket_is_not_taken_for_a_missing_object(aws_env: str) -> None:
    # Given no such bucket / When asked / Then 404 all the same: S3 says the key has no version
    # (NoSuchBucket is a 404 too; the ingest role is scoped to the tracked bucket anyway)
    got = heads(aws_env, f"nope-{uuid.uuid4().hex[:8]}", "k")
    assert got == [ObjectHead(exists=False)]


@pytest.mark.parametrize("port", [9])  # discard port: nothing listens, connection refused
def test_connection_errors_are_transient(aws_env: str, port: int) -> None:
    # Given an endpoint that refuses connections / When asked / Then a transient error
    assert heads(f"http://127.0.0.1:{port}", "b", "k") == ["transient=True"]
