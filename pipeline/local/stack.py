"""The local stack: the pipeline on one machine, as template.yaml deploys it on AWS.

    with Stack() as stack:  # embedded engines; names and settings from template.yaml
        s3 = stack.client("s3")
        s3.put_object(Bucket=stack.bucket, Key="hello.txt", Body=b"hi")
        stack.wait_until_idle()
        urllib.request.urlopen(f"{stack.api_url}/files")

Three targets: embedded engines (default: moto for S3, SQS, SSM and EventBridge in a child
process, AWS's DynamoDB Local for DynamoDB), any AWS-compatible endpoint (`endpoint_url=`, e.g.
LocalStack), or existing resources on AWS (`resources=`, no endpoint). In every case the SQS
event source mapping (`SqsEventSource`) and the API Gateway (`ApiGateway`) run in this process
and invoke the real handlers as Lambda does: in execution environments (`environments`), each
its own process with the function environment of the template, one invocation at a time.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import Credentials

from pipeline.adapters.dynamo.schema import stream_arn
from pipeline.local import fork_server
from pipeline.local.api_client import Signer
from pipeline.local.dynamodb_local import DynamoDBLocal
from pipeline.local.environments import DEFAULT_API_CONCURRENCY, FunctionPool
from pipeline.local.gateway import ApiGateway
from pipeline.local.lambda_runtime import (
    Handler,
    clearing_metrics,
    close_thread_resources,
    cold_start,
    patched_environ,
)
from pipeline.local.moto_server import MotoServer
from pipeline.local.poller import SqsEventSource
from pipeline.local.provision import Resources, provision, queue_counts
from pipeline.local.sigv4 import SigV4Verifier
from pipeline.local.streams import DynamoStreamEventSource
from pipeline.local.template import OPENAPI_PATH, FunctionConfig, StackConfig, read_stack_config

logger = logging.getLogger(__name__)

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
"""moto's credentials; also the only ones the local API gateway accepts signatures from."""
QUIET_POWERTOOLS = {
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
"""Keeps the console readable: no EMF metrics blob per invocation, warnings only."""
VERBOSE_POWERTOOLS = {"POWERTOOLS_METRICS_DISABLED": "false", "POWERTOOLS_TRACE_DISABLED": "true"}


class Stack:
    """Run the pipeline locally: storage services, SQS poller and API gateway (the functions
    in worker processes, see `environments`).

    Args:
        config: names and settings; default: read from template.yaml.
        pollers: concurrent SQS pollers (each like one Lambda container); default: the
            template's ScalingConfig.MaximumConcurrency.
        moto_port, dynamodb_port, api_port: 0 picks free ports.
        endpoint_url: use this AWS-compatible endpoint (e.g. LocalStack) instead of moto.
        resources: use these existing resources (real AWS when `endpoint_url` is None).
        provision: create the resources (default: unless `resources` is given).
        verbose: let the functions log at the template's level and print their metrics.
        ingest_handler, api_handler, totals_handler: call these in-process instead of the
            template's handlers (tests).
        stream_poll_interval_s: pause of the table stream's poller after a pass that found
            nothing (the totals function's event source; tests shorten it).
        in_process: cold-start the template's handlers in this process and call them from the
            pollers' and the gateway's threads, with no isolation between invocations (tests
            that patch the handlers' modules); default: execution environments.
        moto, dynamodb: running embedded engines to use instead of starting new ones (tests
            start them once per process); the stack neither starts nor stops them, and its
            resources need names of their own (`StackConfig.with_suffix`).
        warm_engine: warm the DynamoDB Local it starts before serving (`DynamoDBLocal.warm_up`:
            a burst's first seconds are then served like the rest; `up` and `load upload`).
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        pollers: int | None = None,
        moto_port: int = 0,
        dynamodb_port: int = 0,
        api_port: int = 0,
        host: str = "127.0.0.1",
        endpoint_url: str | None = None,
        resources: Resources | None = None,
        provision: bool | None = None,
        verbose: bool = False,
        wait_time_s: int = 1,
        ingest_handler: Handler | None = None,
        api_handler: Handler | None = None,
        in_process: bool = False,
        totals_handler: Handler | None = None,
        stream_poll_interval_s: float = 0.2,
        moto: MotoServer | None = None,
        dynamodb: DynamoDBLocal | None = None,
        warm_engine: bool = False,
    ) -> None:
        self.config = config or read_stack_config()
        self.pollers = pollers or self.config.max_concurrency
        self.host = host
        self.embedded = endpoint_url is None and resources is None
        self._owns_engines = moto is None and dynamodb is None
        if self.embedded and not self._owns_engines and (moto is None or dynamodb is None):
            raise ValueError("give both running engines (moto and dynamodb), or neither")
        if self.embedded and self._owns_engines:
            moto = MotoServer(host=host, port=moto_port)
            dynamodb = DynamoDBLocal(host=host, port=dynamodb_port)
        self._moto = moto if self.embedded else None
        self._dynamodb = dynamodb if self.embedded else None
        self._endpoint_url = endpoint_url
        self._resources = resources
        self._provision = resources is None if provision is None else provision
        self.verbose = verbose
        self.wait_time_s = wait_time_s
        self.warm_engine = warm_engine
        self._ingest_handler = ingest_handler
        self._api_handler = api_handler
        self.in_process = in_process
        self._api_port = api_port
        self._exit = ExitStack()
        self.poller: SqsEventSource | None = None
        self.streams: DynamoStreamEventSource | None = None
        self._totals_handler = totals_handler
        self.stream_poll_interval_s = stream_poll_interval_s
        self.gateway: ApiGateway | None = None

    # --- where things are --------------------------------------------------------------
    @property
    def region(self) -> str:
        return self.config.region

    @property
    def endpoint_url(self) -> str | None:
        """The S3/SQS endpoint (moto's or the one given); None on real AWS."""
        if self._moto is not None:
            return self._moto.endpoint_url
        return self._endpoint_url

    @property
    def moto(self) -> MotoServer | None:
        """The embedded moto server (`moto.call(f, ...)` runs `f` in its process), if any."""
        return self._moto

    @property
    def dynamodb_endpoint(self) -> str | None:
        """The DynamoDB endpoint (DynamoDB Local's, or `endpoint_url`); None on real AWS."""
        if self._dynamodb is not None:
            return self._dynamodb.endpoint_url
        return self.endpoint_url

    @property
    def s3_endpoint(self) -> str | None:
        """Alias of `endpoint_url`, for `aws --endpoint-url`."""
        return self.endpoint_url

    @property
    def api_url(self) -> str:
        """Base URL of the API (GET {api_url}/files)."""
        return self._started().gateway.url  # type: ignore[union-attr]

    @property
    def resources(self) -> Resources:
        if self._resources is None:
            raise RuntimeError("the stack is not started")
        return self._resources

    @property
    def bucket(self) -> str:
        return self.resources.bucket

    @property
    def table_name(self) -> str:
        return self.resources.table

    @property
    def queue_url(self) -> str:
        return self.resources.queue_url

    @property
    def dlq_url(self) -> str | None:
        return self.resources.dlq_url

    @property
    def api_auth_enabled(self) -> bool:
        """Whether the API gateway requires SigV4 signatures (the template's ApiAuth)."""
        return "AWS_IAM" in self.config.api_authorization.values()

    @property
    def api_credentials(self) -> tuple[str, str]:
        """(access key ID, secret access key) the local API gateway accepts signatures from."""
        return FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]

    @property
    def signer(self) -> Signer:
        """Signs read-API requests as the local gateway expects (`api_client.get(signer=)`)."""
        return Signer(Credentials(*self.api_credentials), self.region)

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for this stack's endpoint, region and credentials."""
        dynamodb = service in ("dynamodb", "dynamodbstreams")
        endpoint = self.dynamodb_endpoint if dynamodb else self.endpoint_url
        kwargs: dict[str, Any] = {"region_name": self.region, "endpoint_url": endpoint}
        if self.embedded:
            kwargs.update(
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
        if config:
            kwargs["config"] = Config(**config)
        factory: Any = boto3.client  # the stubs' per-service overloads want a literal name
        return factory(service, **kwargs)

    # --- lifecycle ---------------------------------------------------------------------
    def _started(self) -> Stack:
        if self.gateway is None:
            raise RuntimeError("the stack is not started")
        return self

    def _base_environment(self) -> dict[str, str | None]:
        env: dict[str, str | None] = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint_url is not None:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
            for service in ("S3", "SQS", "DYNAMODB"):
                env[f"AWS_ENDPOINT_URL_{service}"] = None
            if self.dynamodb_endpoint != self.endpoint_url:
                env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_endpoint
        if self.embedded or (
            self.endpoint_url is not None and "AWS_ACCESS_KEY_ID" not in os.environ
        ):
            env.update(FAKE_CREDENTIALS)
            env.update({"AWS_SESSION_TOKEN": None, "AWS_PROFILE": None})
        env.update(VERBOSE_POWERTOOLS if self.verbose else QUIET_POWERTOOLS)
        return env

    def _function_environment(self, function: FunctionConfig) -> dict[str, str]:
        env = {
            **function.environment,
            "TABLE_NAME": self.resources.table,
            "TRACKED_BUCKET": self.resources.bucket,  # the stack's own bucket, as provisioned
        }
        if not self.verbose:
            env.update({k: v for k, v in QUIET_POWERTOOLS.items()})
        return env

    def start(self) -> Stack:
        """Start everything; on failure, stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        fork_server.prestart()  # its imports overlap the engines' start
        if self._owns_engines:
            self._start_engines()
        base = self._base_environment()
        touched = set(self.config.ingest.environment) | set(self.config.api.environment)
        if self.config.totals is not None:
            touched |= set(self.config.totals.environment)
        touched |= {"TABLE_NAME", "TRACKED_BUCKET", *QUIET_POWERTOOLS}
        restore = {name: os.environ.get(name) for name in touched if name not in base}
        self._exit.enter_context(patched_environ({**restore, **base}))
        sqs = self.client("sqs", max_pool_connections=self.pollers + 4)
        if self._provision:
            self._resources = provision(
                self.client("s3"), sqs, self.client("dynamodb"), self.config
            )
        if self._resources is None:
            raise RuntimeError("no resources: give `resources=` or let the stack provision them")
        if self._provision and not self._owns_engines:
            # shared engines outlive the stack: its table (and stream) goes when it stops, last
            self._exit.callback(self._drop_table, self._resources.table)
        ingest_handler, ingest_exit = self._load(
            self.config.ingest, self._ingest_handler, self.pollers
        )
        api = self.config.api
        api_handler, _ = self._load(api, self._api_handler, api.reserved_concurrency)
        self.gateway = ApiGateway(
            handler=api_handler,
            routes=self.config.api_routes,
            host=self.host,
            port=self._api_port,
            stage=self.config.stage,
            function_name=self.config.api.logical_id,
            function_timeout_s=min(self.config.api.timeout_s, 29),
            memory_mb=self.config.api.memory_mb,
            region=self.region,
            openapi_path=OPENAPI_PATH if OPENAPI_PATH.exists() else None,
            authorization=dict(self.config.api_authorization),
            verifier=SigV4Verifier(dict([self.api_credentials]), region=self.region),
        ).start()
        self._exit.callback(self.gateway.stop)
        self.poller = SqsEventSource(
            sqs=sqs,
            queue_url=self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            handler=ingest_handler,
            function_name=self.config.ingest.logical_id,
            region=self.region,
            batch_size=self.config.batch_size,
            batching_window_s=self.config.batching_window_s,
            function_timeout_s=self.config.ingest.timeout_s,
            memory_mb=self.config.ingest.memory_mb,
            report_batch_item_failures=self.config.report_batch_item_failures,
            pollers=self.pollers,
            wait_time_s=self.wait_time_s,
            on_thread_exit=ingest_exit,
        ).start()
        self._exit.callback(self.poller.stop)
        self._start_streams()

    def _start_streams(self) -> None:
        """The totals function's event source: the table's stream, as Lambda reads it."""
        function = self.config.totals
        if function is None:
            return
        arn = stream_arn(self.client("dynamodb"), self.resources.table)
        if arn is None:
            logger.warning("table %s has no stream: folder totals are not kept", self.table_name)
            return
        handler, on_exit = self._load(function, self._totals_handler, 1)
        self.streams = DynamoStreamEventSource(
            streams=self.client("dynamodbstreams"),
            stream_arn=arn,
            handler=handler,
            function_name=function.logical_id,
            region=self.region,
            batch_size=self.config.stream_batch_size,
            function_timeout_s=function.timeout_s,
            memory_mb=function.memory_mb,
            poll_interval_s=self.stream_poll_interval_s,
            retry_delay_s=self.stream_poll_interval_s,
            on_thread_exit=on_exit,
        ).start()
        self._exit.callback(self.streams.stop)

    def _start_engines(self) -> None:
        if self._dynamodb is not None:
            self._dynamodb.launch()  # the JVM starts while moto does
            self._exit.callback(self._dynamodb.stop)
        if self._moto is not None:
            self._moto.start()
            self._exit.callback(self._moto.stop)
        if self._dynamodb is not None:
            self._dynamodb.wait_until_ready()
            if self.warm_engine:
                self._dynamodb.warm_up()

    def _load(
        self, function: FunctionConfig, given: Handler | None, size: int | None
    ) -> tuple[Handler, Any]:
        """The handler to invoke: the given one; with `in_process`, a cold start of the
        template's in this process; else the template's in up to `size` execution
        environments (default `DEFAULT_API_CONCURRENCY`), each its own worker process."""
        if given is not None:
            return given, None
        if self.in_process:
            handler, module = cold_start(function.handler, self._function_environment(function))
            if not self.verbose:
                handler = clearing_metrics(handler, module)
            return handler, (lambda: close_thread_resources(module))
        pool = FunctionPool(
            function.handler,
            {**os.environ, **self._function_environment(function)},
            size=size or DEFAULT_API_CONCURRENCY,
            clear_metrics=not self.verbose,
        )
        self._exit.callback(pool.close)
        return pool, None

    def _drop_table(self, table: str) -> None:
        """Delete the stack's table from engines it shares (DynamoDB Local keeps every table
        and its stream in memory: a test process's stacks would slow each other down)."""
        try:
            self.client("dynamodb").delete_table(TableName=table)
        except Exception as error:  # best effort: the engine may be gone already
            logger.debug("table %s not deleted: %s", table, error)

    def stop(self) -> None:
        """Stop pollers (after their current poll), the gateway and the engines; restore
        os.environ."""
        self._exit.close()
        self._exit = ExitStack()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observing ---------------------------------------------------------------------
    def wait_until_idle(self, timeout_s: float = 60, settle_s: float = 0.3) -> None:
        """Wait until the queue is empty (nothing visible, in flight or delayed) and no
        invocation is running, twice `settle_s` apart, and the table stream's consumer (the
        folder totals) has caught up; `TimeoutError` after `timeout_s`.

        Messages that keep failing count as work until the redrive policy moves them to the
        DLQ (maxReceiveCount x visibility timeout).
        """
        poller = self.poller
        if poller is None:
            raise RuntimeError("the stack is not started")
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while True:
            counts = queue_counts(poller.sqs, self.queue_url)
            now = time.monotonic()
            if sum(counts) == 0 and poller.in_flight == 0:
                quiet_since = quiet_since or now
                if now - quiet_since >= settle_s:
                    if self.streams is not None:  # and the totals have caught up with the rows
                        self.streams.wait_until_caught_up(max(1.0, deadline - now))
                    return
            else:
                quiet_since = None
            if now > deadline:
                raise TimeoutError(
                    f"queue not idle after {timeout_s} s: visible/in flight/delayed = {counts}, "
                    f"invocations running = {poller.in_flight}"
                )
            time.sleep(0.1)
