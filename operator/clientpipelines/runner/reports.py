"""Elementary's report, stored per client and run where the run contract says (S3)."""

from __future__ import annotations

from pathlib import Path


class UploadFailed(Exception):
    """The report could not be stored; the message names where it was going."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not s3://bucket/key")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def upload(report: Path, uri: str, endpoint: str | None) -> None:
    """Put `report` at `uri`, with the credentials of the environment (AWS_* variables)."""
    import boto3  # noqa: PLC0415 - only where a report is uploaded
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = split_s3_uri(uri)
    try:
        boto3.client("s3", endpoint_url=endpoint or None).upload_file(
            str(report), bucket, key, ExtraArgs={"ContentType": "text/html"}
        )
    except (BotoCoreError, ClientError) as exc:
        raise UploadFailed(f"{uri}: {exc}") from exc
