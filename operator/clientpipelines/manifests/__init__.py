"""Kubernetes manifests shipped with the package; the CRD's single source is here."""

from __future__ import annotations

from pathlib import Path

CRD_PATH = Path(__file__).with_name("clientpipeline-crd.yaml")
