"""Stored state of the PES jobs: relaxed cells, reference energy, features, splits, refinement rounds.

Everything lives in the domain database (``Configuration`` documents of the
training-set workflow) and the blob store (:mod:`workflows.core.blobs`),
named by the workflow, so reruns reuse it.  The perovskite of a training set
(:class:`pes_core.clusters.PerovskiteReference`: species, relaxed lattice
parameter, supercell) is read back from its relaxed cubic cell, so a fit
needs nothing but the training set's name.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from pes_core.ann.settings import grid_dicts
from pes_core.clusters import PerovskiteReference
from pes_core.db import Configuration
from pes_core.sampling.pes_training import refine_label
from workflows.core import runtime
from workflows.core.blobs import get_blob, put_blob
from workflows.thermo.store import feedback_name

logger = logging.getLogger(__name__)

__all__ = [
    "feature_combos",
    "extra_training_features",
    "extra_training_ids",
    "feature_name",
    "featurizer_for",
    "load_features",
    "load_split",
    "perovskite_reference",
    "reference_energy",
    "refine_cluster_sets",
    "refine_errors",
    "refine_label",
    "relaxed_cells",
    "report_dir",
    "section_seed",
    "split_name",
    "split_reference",
    "supercell_atoms",
]

#: generator label of the relaxed cubic cell of a training set
CUBIC = "a0a0a0"


def report_dir(name: str) -> Path:
    out = ((runtime.LAUNCH_ROOT or Path.cwd()) / ".." / "reports" / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


def relaxed_cells(name: str) -> dict[str, Structure]:
    """Glazer symbol -> relaxed supercell stored by :class:`PESReferenceTask` for workflow ``name``."""
    out = {}
    for c in Configuration.objects(workflow=name, generator__startswith="relaxed:").only("generator", "structure"):
        out[c.generator.split(":", 1)[1]] = Structure.from_dict(c.structure)
    return out


def _cubic_doc(name: str):
    doc = Configuration.objects(workflow=name, generator=f"relaxed:{CUBIC}").first()
    if doc is None:
        raise ValueError(f"training set {name!r} has no relaxed cubic reference; run its reference firework first")
    return doc


def reference_energy(name: str) -> float:
    """Energy per atom (eV) of the relaxed cubic supercell of training set ``name``."""
    return float(_cubic_doc(name).energy_per_atom)


def perovskite_reference(name: str) -> PerovskiteReference:
    """The perovskite of training set ``name`` at its relaxed lattice parameter (from the relaxed cubic cell)."""
    return PerovskiteReference.from_supercell(Structure.from_dict(_cubic_doc(name).structure))


def supercell_atoms(name: str) -> int | None:
    """Atoms in the supercell of training set ``name`` (None before its cubic cell is relaxed)."""
    doc = Configuration.objects(workflow=name, generator=f"relaxed:{CUBIC}").only("n_atoms").first()
    return int(doc.n_atoms) if doc is not None else None


# --------------------------------------------------------------------------- training set
def section_seed(cfg: dict, section: str) -> int:
    """The ``seed`` of a spec section (``thermal``, ``refine``), else the spec's own seed."""
    own = (cfg.get(section) or {}).get("seed")
    return int(own if own is not None else cfg.get("seed", 0))


def refine_cluster_sets(cfg: dict) -> list[str]:
    """Cluster sets of the refinement's sampling models: ``refine.clusters``, else those of the fit grid.

    A list grid gives the cluster sets of all its dicts, in order, each once.
    """
    rf = cfg["refine"]
    if rf.get("clusters"):
        return [rf["clusters"]] if isinstance(rf["clusters"], str) else list(rf["clusters"])
    grid = (cfg.get("fit") or {}).get("grid") or {}
    dicts = grid_dicts(grid)
    if len(dicts) == 1:  # one grid dict: its cluster sets as given
        return list(dicts[0][1].get("clusters") or ["4pairs+oct"])
    return list(dict.fromkeys(c for _, g in dicts for c in g.get("clusters") or [])) or ["4pairs+oct"]


def refine_errors(name: str, rnd: int) -> np.ndarray:
    """Model minus oracle energy (meV/atom) of the stored samples of refinement round ``rnd``."""
    docs = Configuration.objects(workflow=name, generator__startswith=f"refine:r{int(rnd)}:").only(
        "energy_per_atom", "extra")
    return np.array([1000.0 * (float(d.extra["refine"]["model_energy_per_atom"]) - d.energy_per_atom)
                     for d in docs if (d.extra or {}).get("refine")])


def feature_combos(cfg: dict) -> set[tuple[str, int]]:
    """``(cluster set, order)`` featurizers a training set caches: its ``featurize`` section and its fit grid's.

    Every grid dict of the fit (one dict or a list) adds the pairs of its
    ``clusters`` and ``order`` lists.
    """
    combos = {(c, int(o)) for c in cfg.get("featurize", {}).get("clusters", ["7pairs+triplet+oct"])
              for o in cfg.get("featurize", {}).get("orders", [4])}
    grid = (cfg.get("fit") or {}).get("grid") or {}
    return combos | {(c, int(o)) for _, g in grid_dicts(grid)
                     for c in g.get("clusters", []) for o in g.get("order", [])}


def feature_name(training_set: str, settings) -> str:
    return f"features/{training_set}/{hashlib.sha1(settings.key().encode()).hexdigest()[:16]}"


def load_features(training_set: str, featurizer, ids: list[str] | None = None):
    """Features of the training set (GridFS cache, completed for new configurations); optionally a subset.

    Without ``ids``: every configuration of the training set with the featurizer's supercell size.
    """
    import torch  # deferred

    from pes_core.ann import FeatureData, PESData, compute_features  # deferred: torch

    name = feature_name(training_set, featurizer.settings)
    blob = get_blob(name)
    cached = None
    if blob is not None:
        d = torch.load(io.BytesIO(blob), weights_only=True)
        cached = FeatureData(d["clusters"], d["sites"], d["energies"], int(d["n_atoms"]), list(d["ids"]))
    wanted = ids if ids is not None else [c.content_hash for c in Configuration.objects(
        workflow=training_set, n_atoms=featurizer.n_atoms).only("content_hash")]
    have = set(cached.ids) if cached is not None else set()
    missing = [k for k in wanted if k not in have]
    if missing:
        docs = list(Configuration.objects(content_hash__in=missing))
        new = compute_features(featurizer, PESData.from_configurations(featurizer, docs, with_forces=False))
        if cached is None:
            cached = new
        else:
            cached = FeatureData({k: torch.cat([cached.clusters[k], new.clusters[k]]) for k in cached.clusters},
                                 {k: torch.cat([cached.sites[k], new.sites[k]]) for k in cached.sites},
                                 torch.cat([cached.energies, new.energies]), cached.n_atoms, cached.ids + new.ids)
        buf = io.BytesIO()
        torch.save({"clusters": cached.clusters, "sites": cached.sites, "energies": cached.energies,
                    "n_atoms": cached.n_atoms, "ids": cached.ids}, buf)
        put_blob(name, buf.getvalue())
    return cached.select_ids(wanted)


# --------------------------------------------------------------------------- extra (large-cell) training data
#: prefix of an ``extra_training`` entry naming the feedback list of a ``pes_thermo`` run
FEEDBACK = "feedback:"


def extra_training_ids(entries: list[str], exclude: set[str] | frozenset = frozenset()) -> dict[str, list[str]]:
    """Content hashes of the extra training configurations of a fit, by their workflow.

    Parameters
    ----------
    entries : list of str
        ``pes_fit.extra_training``: a workflow name (all its ``Configuration``
        documents, e.g. ``<thermo name>-validation``), or
        ``feedback:<thermo name>`` (the snapshots of the temperatures that
        ``thermo/<thermo name>/feedback.json`` flags).
    exclude : set of str
        Ids left out (the training set's own configurations, above all its
        holdout, which must never be trained on).

    Raises
    ------
    ValueError
        An entry names nothing stored.
    """
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry.startswith(FEEDBACK):
            thermo = entry[len(FEEDBACK):]
            blob = get_blob(feedback_name(thermo))
            if blob is None:
                raise ValueError(f"extra_training {entry!r}: pes_thermo run {thermo!r} has no feedback list "
                                 f"({feedback_name(thermo)}); run its validation and summary first, or name the "
                                 f"workflow '{thermo}-validation' instead")
            docs = Configuration.objects(content_hash__in=list(json.loads(blob)["ids"])).only("content_hash",
                                                                                               "workflow")
        else:
            docs = Configuration.objects(workflow=entry).only("content_hash", "workflow")
        docs = list(docs)
        if not docs:
            raise ValueError(f"extra_training {entry!r}: no configurations stored under that name; give a workflow "
                             "name (e.g. '<thermo name>-validation') or 'feedback:<thermo name>'")
        for d in docs:
            if d.content_hash not in seen and d.content_hash not in exclude:
                seen.add(d.content_hash)
                out.setdefault(d.workflow, []).append(d.content_hash)
    return out


def extra_training_features(entries: list[str], featurizer, exclude: set[str] | frozenset = frozenset(),
                            weighting: str = "cells", scale: dict[str, float] | None = None):
    """Features of the extra training configurations (any supercell with a whole multiple of the model's cells).

    ``weighting``: ``"cells"`` gives a configuration of ``m`` training cells the weight ``m``
    (:func:`pes_core.ann.cell_weighted`), ``"configuration"`` the weight 1.  ``scale``
    (``pes_fit`` ``extra_weights``): a factor on those weights per source workflow.

    Cached per source workflow and featurizer (``features/<workflow>/<key>-multicell``), completed
    for new configurations.  Returns ``None`` when there are none.

    Raises
    ------
    ValueError
        A configuration that is not a supercell of the training set's reference
        with a whole multiple of its atoms (the message names the entry).
    """
    import torch  # deferred

    from pes_core.ann import (  # deferred: torch
        FeatureData,
        cell_weighted,
        concat_features,
        configuration_features,
        scaled_weights,
    )

    parts, factors = [], {}
    for workflow, ids in extra_training_ids(entries, exclude).items():
        if scale and workflow in scale:
            factors.update(dict.fromkeys(ids, float(scale[workflow])))
        name = feature_name(workflow, featurizer.settings) + "-multicell"
        blob = get_blob(name)
        cached = FeatureData.from_dict(torch.load(io.BytesIO(blob), weights_only=True)) if blob is not None else None
        have = set(cached.ids) if cached is not None else set()
        missing = [k for k in ids if k not in have]
        if missing:
            docs = list(Configuration.objects(content_hash__in=missing))
            try:
                new = configuration_features(featurizer, docs)
            except ValueError as err:
                raise ValueError(f"extra training configurations of {workflow!r}: {err}") from None
            cached = new if cached is None else concat_features([cached, new])
            buf = io.BytesIO()
            torch.save(cached.to_dict(), buf)
            put_blob(name, buf.getvalue())
        parts.append(cached.select_ids(ids))
    if not parts:
        return None
    extra = concat_features(parts)
    extra = cell_weighted(extra) if weighting == "cells" else extra
    return scaled_weights(extra, factors) if factors else extra


def split_name(fit_name: str) -> str:
    return f"split/{fit_name}.json"


def load_split(fit_name: str) -> dict:
    blob = get_blob(split_name(fit_name))
    if blob is None:
        raise ValueError(f"fit {fit_name!r} has no stored split; run its split firework first")
    return json.loads(blob)


def split_reference(split: dict) -> PerovskiteReference:
    """The perovskite of a stored split: its training set's, at the lattice parameter the split froze (Å)."""
    return perovskite_reference(split["training_set"]).with_a(float(split["a"]))


def featurizer_for(reference: PerovskiteReference, point: dict):
    """The featurizer of grid point ``point`` (``clusters``, ``order``) for the perovskite ``reference``."""
    from pes_core.ann import perovskite_featurizer  # deferred: torch

    return perovskite_featurizer(reference, point.get("clusters", "7pairs+triplet+oct"),
                                 order=int(point.get("order", 4)))
