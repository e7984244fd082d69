"""Save and load trained models as bytes (for GridFS) or files.

The payload is a ``torch.save`` of plain data: the model kind, its
hyperparameters, the featurizer settings (reference cell, supercell, cluster
set, order, metric) and the state dict.  Loading rebuilds the featurizer
(cached per process) and reads with ``weights_only=True``.

Example
-------
>>> blob = model_to_bytes(model)            # doctest: +SKIP
>>> same = model_from_bytes(blob)           # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .featurizers import FeaturizerSettings, get_featurizer
from .models import PESModel, build_model

__all__ = ["load_model", "model_from_bytes", "model_to_bytes", "save_model"]

FORMAT = 1


def model_to_bytes(model: PESModel, metadata: dict | None = None) -> bytes:
    """Serialize a model (kind, hyperparameters, featurizer settings, weights)."""
    settings = getattr(model.featurizer, "settings", None)
    if settings is None:
        raise ValueError("the model's featurizer was not built by pes_core.ann.get_featurizer; "
                         "build it that way so that it can be rebuilt on load")
    payload = {"format": FORMAT, "kind": model.kind, "hyper": model.hyperparameters(),
               "featurizer": settings.to_dict(), "state_dict": model.state_dict(),
               "metadata": dict(metadata or {})}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def model_from_bytes(blob: bytes) -> PESModel:
    """Rebuild a model saved with :func:`model_to_bytes`."""
    payload = torch.load(io.BytesIO(blob), weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"unknown model format {payload.get('format')!r} (expected {FORMAT})")
    feat = get_featurizer(FeaturizerSettings.from_dict(payload["featurizer"]))
    model = build_model(payload["kind"], feat, **payload["hyper"])
    model.load_state_dict(payload["state_dict"])
    model.metadata = payload.get("metadata", {})
    model.eval()
    return model


def save_model(model: PESModel, path: str | Path, metadata: dict | None = None) -> Path:
    """Write a model file (``.pt``)."""
    path = Path(path)
    path.write_bytes(model_to_bytes(model, metadata))
    return path


def load_model(path: str | Path) -> PESModel:
    """Read a model file written by :func:`save_model`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    return model_from_bytes(path.read_bytes())
