"""The one settings object, read from the environment once and validated at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pipeline.core.model import bucket_problem


class SettingsError(ValueError):
    """The environment does not describe a usable configuration."""


class WriteMode(StrEnum):
    """How ingest writes rows (`INGEST_WRITE_MODE`)."""

    CONDITIONAL = "conditional"
    """Default: consistent read, then PartiQL INSERT/UPDATE with conditions. Race-free."""
    BATCH = "batch"
    """Opt-in: read, then unconditional BatchWriteItem. An older event can win a race
    between two invocations (docs/reliability.md)."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer in [{low}, {high}], got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _write_mode(env: Mapping[str, str]) -> WriteMode:
    raw = env.get("INGEST_WRITE_MODE", "").strip().lower()
    if not raw:
        return WriteMode.CONDITIONAL
    try:
        return WriteMode(raw)
    except ValueError:
        allowed = ", ".join(mode.value for mode in WriteMode)
        raise SettingsError(f"INGEST_WRITE_MODE must be one of {allowed}, got {raw!r}") from None


def _bucket(env: Mapping[str, str], name: str) -> str | None:
    value = _optional(env, name)
    if value is not None and (problem := bucket_problem(value)) is not None:
        raise SettingsError(f"{name}: {problem}, got {value[:100]!r}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, got {raw!r}")


def _checkpoint_path(env: Mapping[str, str]) -> str:
    path = _optional(env, "RECONCILE_CHECKPOINT_PATH") or "/file-tracker/reconcile/"
    if not path.startswith("/") or len(path) > 900:
        raise SettingsError(
            f"RECONCILE_CHECKPOINT_PATH must be an SSM path like /a/b/, got {path!r}"
        )
    return path


@dataclass(frozen=True, slots=True)
class TotalsTiming:
    """When reconcile may repair a folder counter (`pipeline.totals.audit`, docs/reconcile.md).

    The defaults are AWS's: tests of an idle local stack, where no ingest invocation or
    counter update can be in flight, shorten them through the environment.
    """

    settle_s: int = 60
    """How far the folder totals may lag behind the rows (`RECONCILE_TOTALS_SETTLE_S`): a
    counter's repair waits that long after its folder's walk, so that every row change made
    before the walk ended has come through the table's stream to the counter."""
    margin_s: int = 5
    """Added to `settle_s` (`RECONCILE_TOTALS_SETTLE_MARGIN_S`): a request sent just before an
    invocation ended may still be applied a moment later."""
    stamp_margin_s: int = 20
    """How much older than the folder's listing its counter's last update must be for a
    repair (`RECONCILE_TOTALS_STAMP_MARGIN_S`): a counter writer's request timeout (connect
    5 s + read 10 s) plus clock skew."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TotalsTiming:
        """Read the three variables (each optional); `SettingsError` naming a bad one."""
        env = os.environ if env is None else env
        return cls(
            settle_s=_int(env, "RECONCILE_TOTALS_SETTLE_S", 60, 0, 900),
            margin_s=_int(env, "RECONCILE_TOTALS_SETTLE_MARGIN_S", 5, 0, 60),
            stamp_margin_s=_int(env, "RECONCILE_TOTALS_STAMP_MARGIN_S", 20, 0, 300),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Configuration shared by both functions and the local stack.

    Only `TABLE_NAME` is required. The AWS SDK variables (`AWS_ENDPOINT_URL`,
    `AWS_DEFAULT_REGION`, credentials) are honoured by botocore itself; they are kept here
    so that every client is built from the same values.
    """

    table_name: str
    tracked_bucket: str | None = None
    """The stack's own bucket (`TRACKED_BUCKET`): the API's default `bucket`, always tracked.
    Other buckets are tracked once registered in the table (`adopt`, `reconcile`)."""
    region: str | None = None
    endpoint_url: str | None = None
    """DynamoDB endpoint (AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL)."""
    s3_endpoint_url: str | None = None
    """S3 endpoint of the ingest function's HeadObject calls (AWS_ENDPOINT_URL_S3, else
    AWS_ENDPOINT_URL)."""
    # Ingest
    write_concurrency: int = 32
    """DynamoDB requests (reads and writes of 25-100 keys) in flight at once per invocation."""
    max_backoff_ms: int = 2_000
    """Cap of the exponential backoff between retries (full jitter below it)."""
    base_backoff_ms: int = 25
    safety_margin_ms: int = 2_000
    """Time kept back from the Lambda deadline to build the response."""
    write_mode: WriteMode = WriteMode.CONDITIONAL
    """`conditional` (race-free, default) or `batch` (unconditional BatchWriteItem)."""
    tombstone_ttl_days: int = 15
    """How long a delete marker is kept to reject late, older creates (> SQS's 14-day retention)."""
    folder_totals: bool = True
    """Unused since the totals come from the table's stream (`handlers/totals.py`); ingest
    writes no counter. `FOLDER_TOTALS` is still read, so old configurations stay valid."""
    shard_plan_ttl_s: int = 60
    """How long ingest and the read API keep a bucket's shard plan (`SHARD_PLAN_TTL_S`;
    `pipeline.core.shards`): a plan change waits longer than this between its two steps."""
    # Change feed (pipeline/feed/)
    feed_settle_ms: int = 5_000
    """The settle window W: pages return positions older than W; writers re-stamp a row
    whose write was not acknowledged within W/2 of its stamp (`FEED_SETTLE_MS`)."""
    feed_retention_days: int = 7
    """How long a cursor stays valid (`FEED_RETENTION_DAYS`, at most `TOMBSTONE_TTL_DAYS`:
    deletes stay in the feed as long as their tombstones)."""
    # Read API
    page_token_secret: str | None = None
    """Key for signing page tokens; without it they are checksummed and strictly validated."""
    cors_origin: str | None = None
    # Reconcile (pipeline/reconcile/merge.py)
    reconcile_bucket: str | None = None
    """The bucket reconcile compares the table with (`RECONCILE_BUCKET`, else `TRACKED_BUCKET`)."""
    reconcile_checkpoint_path: str = "/file-tracker/reconcile/"
    """SSM Parameter Store path of reconcile's checkpoints (`RECONCILE_CHECKPOINT_PATH`)."""
    reconcile_concurrency: int = 16
    """HeadObject and conditional PutItem calls in flight at once (`RECONCILE_CONCURRENCY`)."""
    reconcile_totals: TotalsTiming = TotalsTiming()
    """When a folder counter's repair may be applied: `RECONCILE_TOTALS_SETTLE_S` (how far the
    folder totals may lag behind the rows: the table stream's consumer) and its two margins
    (`TotalsTiming`, docs/reconcile.md)."""
    # Observability
    metrics_namespace: str = "FileTracker"
    """Powertools' POWERTOOLS_METRICS_NAMESPACE, with our default."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raise `SettingsError` naming the bad variable."""
        env = os.environ if env is None else env
        table_name = env.get("TABLE_NAME", "").strip()
        if not table_name:
            raise SettingsError(
                "TABLE_NAME is required: the name of the DynamoDB table holding the files "
                "(e.g. TABLE_NAME=files)"
            )
        if not 3 <= len(table_name) <= 255:
            raise SettingsError(f"TABLE_NAME must be 3-255 characters, got {table_name!r}")
        tombstone_ttl_days = _int(env, "TOMBSTONE_TTL_DAYS", 15, 1, 3650)
        tracked_bucket = _bucket(env, "TRACKED_BUCKET")
        return cls(
            table_name=table_name,
            tracked_bucket=tracked_bucket,
            region=_optional(env, "AWS_REGION") or _optional(env, "AWS_DEFAULT_REGION"),
            endpoint_url=_optional(env, "AWS_ENDPOINT_URL_DYNAMODB")
            or _optional(env, "AWS_ENDPOINT_URL"),
            s3_endpoint_url=_optional(env, "AWS_ENDPOINT_URL_S3")
            or _optional(env, "AWS_ENDPOINT_URL"),
            write_concurrency=_int(env, "INGEST_WRITE_CONCURRENCY", 32, 1, 256),
            max_backoff_ms=_int(env, "INGEST_MAX_BACKOFF_MS", 2_000, 1, 60_000),
            base_backoff_ms=_int(env, "INGEST_BASE_BACKOFF_MS", 25, 1, 10_000),
            safety_margin_ms=_int(env, "INGEST_SAFETY_MARGIN_MS", 2_000, 0, 60_000),
            write_mode=_write_mode(env),
            tombstone_ttl_days=tombstone_ttl_days,
            folder_totals=_switch(env, "FOLDER_TOTALS", True),
            shard_plan_ttl_s=_int(env, "SHARD_PLAN_TTL_S", 60, 0, 3_600),
            feed_settle_ms=_int(env, "FEED_SETTLE_MS", 5_000, 10, 600_000),
            feed_retention_days=_int(env, "FEED_RETENTION_DAYS", 7, 1, tombstone_ttl_days),
            page_token_secret=_optional(env, "PAGE_TOKEN_SECRET"),
            cors_origin=_optional(env, "CORS_ALLOW_ORIGIN"),
            reconcile_bucket=_bucket(env, "RECONCILE_BUCKET") or tracked_bucket,
            reconcile_checkpoint_path=_checkpoint_path(env),
            reconcile_concurrency=_int(env, "RECONCILE_CONCURRENCY", 16, 1, 128),
            reconcile_totals=TotalsTiming.from_env(env),
            metrics_namespace=_optional(env, "POWERTOOLS_METRICS_NAMESPACE") or "FileTracker",
        )
