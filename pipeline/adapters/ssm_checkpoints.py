"""Where a reconcile run keeps its progress: one SSM Parameter Store parameter per bucket+prefix.

Why not an item of the files table? Every item there carries `filename`, which is also the sort
key of the listing index, and DynamoDB limits sort keys to 1,024 bytes — exactly S3's limit on
object keys. So any table key a checkpoint could use is also a key an object can have: the two
could collide, and ingest would then overwrite the checkpoint (or reconcile the checkpoint as a
file). A parameter lives outside the tracked data altogether:

- standard parameters are free, hold 4 KB (a checkpoint is well under 2 KB: the key is stored
  base64-encoded, at most 1,368 characters), and need no resource in the template;
- IAM scopes access to one path (`arn:...:parameter/file-tracker/<stack>/reconcile/*`);
- the CLI and the scheduled function share it, so either can resume the other's run;
- moto (the local stack) implements SSM, so the local stack needs nothing extra.

Checkpoints are written every `CHECKPOINT_EVERY` keys (SSM allows 3 PutParameter calls per
second by default; reconcile stays far below).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline.reconcile.ports import Checkpoint

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

DEFAULT_PATH = "/file-tracker/reconcile/"
FORMAT = 1


class CheckpointError(RuntimeError):
    """A saved checkpoint cannot be read: start over with --restart (or delete it)."""


def parameter_name(path: str, bucket: str, prefix: str) -> str:
    """The parameter holding the checkpoint of a run over `bucket` and `prefix`."""
    digest = hashlib.sha256(f"{bucket}\0{prefix}".encode()).hexdigest()[:32]
    return f"{path.rstrip('/')}/{bucket}/{digest}"


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def _decode(text: str) -> str:
    return base64.urlsafe_b64decode(text.encode("ascii")).decode("utf-8")


class SsmCheckpoints:
    """`CheckpointStore` in SSM Parameter Store, with an injected boto3 SSM client."""

    def __init__(self, client: SSMClient, bucket: str, *, path: str = DEFAULT_PATH) -> None:
        if not path.startswith("/"):
            raise ValueError(f"the checkpoint path must start with '/', got {path!r}")
        self._client = client
        self._bucket = bucket
        self._path = path

    def name(self, prefix: str) -> str:
        return parameter_name(self._path, self._bucket, prefix)

    def load(self, prefix: str) -> Checkpoint | None:
        """The saved checkpoint of `prefix`, or None."""
        try:
            response = self._client.get_parameter(Name=self.name(prefix))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return None
            raise
        try:
            document: dict[str, Any] = json.loads(response["Parameter"]["Value"])
            if document.get("format") != FORMAT or _decode(document["prefix"]) != prefix:
                raise ValueError("another format or prefix")
            return Checkpoint(
                prefix=prefix,
                after=_decode(document["after"]),
                started_at=str(document["started_at"]),
                counts={str(k): int(v) for k, v in document["counts"].items()},
                seconds=float(document.get("seconds", 0)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint {self.name(prefix)} is unreadable ({error}): "
                "run with --restart, or delete the parameter"
            ) from None

    def save(self, checkpoint: Checkpoint) -> None:
        """Overwrite the checkpoint of `checkpoint.prefix`."""
        document = {
            "format": FORMAT,
            "bucket": self._bucket,
            "prefix": _encode(checkpoint.prefix),
            "after": _encode(checkpoint.after),
            "started_at": checkpoint.started_at,
            "counts": checkpoint.counts,
            "seconds": round(checkpoint.seconds, 3),
        }
        self._client.put_parameter(
            Name=self.name(checkpoint.prefix),
            Value=json.dumps(document, separators=(",", ":")),
            Type="String",
            Overwrite=True,
        )

    def clear(self, prefix: str) -> None:
        """Forget the checkpoint of `prefix` (the run finished)."""
        try:
            self._client.delete_parameter(Name=self.name(prefix))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise
