"""Run the operator: `python -m clientpipelines.operator`."""

from __future__ import annotations

import os

import kopf

from clientpipelines.operator import handlers  # noqa: F401 - registers the handlers
from clientpipelines.operator.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    kopf.configure(verbose=os.environ.get("OPERATOR_DEBUG") == "1")
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=settings.peering is None,
        peering_name=settings.peering,
        liveness_endpoint=os.environ.get("LIVENESS_ENDPOINT", "http://0.0.0.0:8080/healthz"),
    )


if __name__ == "__main__":
    main()
