"""An S3 protocol server on loopback (moto's standalone server, the same HTTP API MinIO and Ceph speak), standing
in for the bank's object store: one empty bucket, and the django-storages options that reach it."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """Start the server, create the bucket, yield the ``S3Storage`` options; stop the server afterwards."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "bucket_name": "enclave-artifacts",
        "endpoint_url": f"http://127.0.0.1:{port}",
        "access_key": "enclave-test",
        "secret_key": "enclave-test-secret",
        "region_name": "us-east-1",
        "file_overwrite": False,
        "default_acl": None,
    }
    try:
        s3_client(options).create_bucket(Bucket=options["bucket_name"])
        yield options
    finally:
        server.stop()


def s3_client(options: dict[str, Any]) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=options["endpoint_url"], aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"], region_name=options["region_name"],
    )  # fmt: skip


def s3_env(options: dict[str, Any]) -> dict[str, str]:
    """The same store as environment variables, for a worker process (enclave/settings/base.py)."""
    return {
        "ARTIFACT_S3_BUCKET": options["bucket_name"],
        "ARTIFACT_S3_ENDPOINT_URL": options["endpoint_url"],
        "ARTIFACT_S3_ACCESS_KEY": options["access_key"],
        "ARTIFACT_S3_SECRET_KEY": options["secret_key"],
        "ARTIFACT_S3_REGION": options["region_name"],
    }
