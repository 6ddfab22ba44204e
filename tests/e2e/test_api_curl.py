"""docs/api.md's curl examples, run as printed with the real curl against the local stack, and
the canonicalization facts behind them (what API Gateway signs for a query or a path), checked
with curl and with botocore's SigV4Auth alike."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pipeline.local.api_client import ApiResponse, get
from pipeline.local.stack import Stack
from pipeline.local.template import read_stack_config
from pipeline.read.api import REPEATED_MESSAGE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
    ),
]
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
FILES = ["public.txt", "a+b.txt", "photos/a.jpg", "photos/b.jpg", "photos/2025/flower.jpg"]
FAIL_ON_HTTP_ERRORS = """set -o pipefail
curl() {
  case " $* " in
    *" -sf "* | *" -f "*) command curl "$@" ;;
    *) command curl --fail-with-body "$@" ;;
  esac
}
"""
"""Makes an HTTP error of a documented curl command (one without -f) a failure of the block."""
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def stack(engines: dict[str, Any]) -> Iterator[Stack]:
    with Stack(read_stack_config().with_suffix("curl"), pollers=1, **engines) as running:
        s3 = running.client("s3")
        for name in FILES:
            s3.put_object(Bucket=running.bucket, Key=name, Body=name.encode())
        running.wait_until_idle(timeout_s=120)
        yield running


def bash_blocks_with_curl() -> list[str]:
    """The ```bash blocks of docs/api.md that call curl."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [block for block in blocks if "curl " in block]


def run_bash(script: str, stack: Stack) -> subprocess.CompletedProcess[str]:
    """Run a documented block against the stack (its URL as `$API`, with the stage, as on AWS;
    the stack's credentials); the CloudFormation lookup of `$API` is left out."""
    script = re.sub(r"API=\$\(aws cloudformation[^)]*\)\n", "", script)
    prelude = 'SIGN=(--aws-sigv4 "aws:amz:ap-south-1:execute-api" --user "testing:testing")\n'
    env = {k: v for k, v in os.environ.items() if k != "AWS_SESSION_TOKEN"}
    env.update(KEYS, API=f"{stack.api_url}/{stack.config.stage}")
    return subprocess.run(
        ["bash", "-c", FAIL_ON_HTTP_ERRORS + prelude + script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_every_curl_example_of_the_api_doc_works_as_printed(stack: Stack) -> None:
    blocks = bash_blocks_with_curl()
    assert len(blocks) == 6
    calling, one_file, summary, buckets, changes, walk = blocks
    # the tracked buckets with their totals
    result = run_bash(buckets, stack)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)["items"]
    assert [(b["bucket"], b["default"], b["files"]) for b in listed] == [
        (stack.bucket, True, len(FILES))
    ]
    # a folder's totals, and the change feed from a time, then from its cursor
    result = run_bash(summary, stack)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prefix"] == "photos/2025/"
    result = run_bash(changes, stack)
    assert result.returncode == 0, result.stderr
    assert "next_cursor" in json.loads(result.stdout)
    # calling the API signed: a page of the listing
    result = run_bash(calling, stack)
    assert result.returncode == 0, result.stderr
    assert '"items"' in result.stdout
    # one file by name
    result = run_bash(one_file, stack)
    assert result.returncode == 0, result.stderr
    assert '"filename":"photos/2025/flower.jpg"' in result.stdout
    # walking all pages, and one directory with the prefix the comment shows
    result = run_bash(walk, stack)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == sorted(FILES, key=lambda n: n.encode())
    in_photos = walk.replace('prefix=""', "prefix=photos%2F", 1)
    result = run_bash(in_photos.replace("limit=1000", "limit=1", 1), stack)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["photos/2025/flower.jpg", "photos/a.jpg", "photos/b.jpg"]


def curl_status(stack: Stack, *arguments: str) -> str:
    found = subprocess.run(
        [
            "curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
            "--aws-sigv4", "aws:amz:ap-south-1:execute-api", "--user", "testing:testing",
            *arguments,
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return found.stdout


def botocore_get(url: str) -> ApiResponse:
    """GET `url` signed by botocore's SigV4Auth exactly as written (no re-encoding)."""
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials("testing", "testing"), "execute-api", "ap-south-1").add_auth(request)
    return get(url, sign=False, headers=dict(request.headers.items()))


def test_a_query_value_is_signed_as_aws_canonicalizes_it_uppercase_hex(stack: Stack) -> None:
    # AWS decodes each query value and re-encodes it (`%2f` -> `/` -> `%2F`) before checking:
    # a signature over the lowercase spelling is refused, whoever computed it
    url = f"{stack.api_url}/files"
    assert curl_status(stack, "--get", url, "--data-urlencode", "prefix=photos/") == "403"
    assert botocore_get(f"{url}?prefix=photos%2f").status == 403
    assert botocore_get(f"{url}?prefix=photos%2F").status == 200
    assert curl_status(stack, f"{url}?limit=10&prefix=photos%2F") == "200"


def test_a_plus_in_a_path_is_a_plus_that_sigv4_encodes(stack: Stack) -> None:
    # SigV4 encodes the path once more: `/files/a+b.txt` is signed as `/files/a%2Bb.txt`;
    # curl 7.x signs it as written and is refused, botocore encodes it and is served
    assert curl_status(stack, f"{stack.api_url}/files/a+b.txt") == "403"
    for path in ("/files/a+b.txt", "/files/a%2Bb.txt"):
        response = botocore_get(f"{stack.api_url}{path}")
        assert response.status == 200, response.body
        assert response.json()["filename"] == "a+b.txt"


def test_a_repeated_query_parameter_is_400_saying_so(stack: Stack) -> None:
    response = get(f"{stack.api_url}/files?limit=5&limit=6", signer=stack.signer)
    assert response.status == 400
    assert response.json() == {"message": REPEATED_MESSAGE.format(name="limit", count=2)}
