"""`demo`: start the embedded stack, upload samples, list, delete one, list, stop."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.local.commands.stop import Stop
from pipeline.local.commands.up import _config, _curl, add_settings_flags

SAMPLE_FILES = {
    "hello.txt": b"Hello, world!\n",
    "report.pdf": b"%PDF-1.4\n% a tiny sample report\n%%EOF\n",
    "invoice.csv": b"item,qty,price\nwidget,3,9.99\n",
}
"""The original design's sample uploads."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `demo` subcommand to the CLI's subparsers."""
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="start, upload samples, list, delete one, list, stop",
        description="Start the embedded stack on free ports, upload hello.txt, report.pdf and "
        "invoice.csv with boto3, wait until they are tracked, print GET /files (signed "
        "requests), delete one, show it gone, stop. Exit code 0 when everything behaved.",
    )
    demo.set_defaults(run=cmd_demo)
    add_settings_flags(demo)
    return demo


def _show(title: str, payload: Any) -> None:
    print(f"\n$ {title}")
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def cmd_demo(args: argparse.Namespace) -> int:
    """Upload the samples, list, delete one, list; exit 0 when all checks held."""
    config = _config(args)
    from pipeline.local.api_client import file_url, get, list_files
    from pipeline.local.stack import Stack

    ok = True
    with (
        Stop(interrupt=True),
        Stack(config, pollers=args.pollers or 2, verbose=args.verbose) as stack,
    ):
        print(
            f"Local stack up: API {stack.api_url}, moto {stack.endpoint_url}, "
            f"DynamoDB Local {stack.dynamodb_endpoint}",
            flush=True,
        )
        signer = stack.signer if stack.api_auth_enabled else None
        curl = _curl(stack)
        if signer is not None:
            print(f"API requests are SigV4-signed ({curl} ...)", flush=True)
        s3 = stack.client("s3")
        for name, body in SAMPLE_FILES.items():
            s3.put_object(Bucket=stack.bucket, Key=name, Body=body)
            print(f"uploaded s3://{stack.bucket}/{name} ({len(body)} bytes)", flush=True)
        stack.wait_until_idle(timeout_s=60)
        if signer is not None:
            unsigned = get(f"{stack.api_url}/files", sign=False)
            print(f"\n$ curl {stack.api_url}/files   -> {unsigned.status} {unsigned.json()}")
            if unsigned.status != 403:
                print("\nFAIL: an unsigned request was not refused")
                ok = False
        listing = get(f"{stack.api_url}/files", signer=signer)
        _show(f"{curl} {stack.api_url}/files   -> {listing.status}", listing.json())
        names = {item["filename"] for item in list_files(stack.api_url, signer=signer)}
        if names != set(SAMPLE_FILES):
            print(f"\nFAIL: expected {sorted(SAMPLE_FILES)}, the API lists {sorted(names)}")
            ok = False
        one = get(file_url(stack.api_url, "hello.txt"), signer=signer)
        _show(f"{curl} {file_url(stack.api_url, 'hello.txt')}   -> {one.status}", one.json())
        s3.delete_object(Bucket=stack.bucket, Key="report.pdf")
        print(f"\ndeleted s3://{stack.bucket}/report.pdf", flush=True)
        stack.wait_until_idle(timeout_s=60)
        listing = get(f"{stack.api_url}/files", signer=signer)
        _show(f"{curl} {stack.api_url}/files   -> {listing.status}", listing.json())
        gone = get(file_url(stack.api_url, "report.pdf"), signer=signer)
        print(f"\n$ {curl} {file_url(stack.api_url, 'report.pdf')}   -> {gone.status}")
        names = {item["filename"] for item in list_files(stack.api_url, signer=signer)}
        if names != set(SAMPLE_FILES) - {"report.pdf"} or gone.status != 404:
            print(f"\nFAIL: after the delete the API lists {sorted(names)} ({gone.status})")
            ok = False
        stats = stack.poller.stats if stack.poller else None
    print(f"\nstopped cleanly; ingest invocations: {stats.invocations if stats else 0}")
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1
