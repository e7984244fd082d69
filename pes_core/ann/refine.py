"""Model-driven refinement of a PES training set: the decisions of one round, as data.

A refinement round (DP-GEN-like concurrent learning, the model's own
Boltzmann distribution as the explorer) first measures the previous round's
chain ends (model minus oracle energy) and then either stops (converged, or
out of rounds), goes on without sampling (the round was sampled before), or
fits one linear model per cluster set to everything stored and runs short
Monte Carlo chains on it (:func:`pes_core.ann.montecarlo.chain_ends`) whose
final configurations go to the oracle.

* :class:`RefineSettings` -- the ``refine`` section of a training-set spec.
* :func:`decide_round` -- what a round does (pure: errors in, :class:`RefineDecision` out).
* :func:`sample_round` -- the chain ends of a round (:class:`RefineSamples`; imports torch when called).

Example
-------
>>> import numpy as np
>>> s = RefineSettings(rounds=3, tolerance_mev=5.0)
>>> decide_round(0, s).action
'sample'
>>> d = decide_round(2, s, previous_errors=np.array([3.0, -4.0]))
>>> d.action, round(d.previous_rms_mev, 3), d.stored_data()["converged"]
('converged', 3.536, True)
>>> decide_round(3, s, previous_errors=np.array([30.0])).action
'stop'
>>> decide_round(1, s, previous_errors=np.array([30.0]), sampled=True).stored_data()
{'round': 1, 'previous_samples': 1, 'previous_rms_mev': 30.0, 'previous_mean_mev': 30.0, 'rerun': True}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pymatgen.core import Structure

from pes_core.sampling.pes_training import refine_label

from .settings import RefineSettings

__all__ = ["RefineDecision", "RefineSamples", "RefineSettings", "decide_round", "refine_label", "sample_round"]


@dataclass(frozen=True)
class RefineDecision:
    """What refinement round ``round`` does.

    Attributes
    ----------
    round : int
        The round.
    action : {"sample", "converged", "stop", "rerun"}
        ``sample``: run the chains; ``converged``: the previous round's chain ends are predicted
        within the tolerance; ``stop``: out of rounds; ``rerun``: sampled before, go on to the next round.
    previous_samples : int or None
        Chain ends of the previous round with an oracle energy (None in round 0).
    previous_rms_mev, previous_mean_mev : float or None
        RMS and mean model minus oracle energy on them, meV/atom.
    messages : tuple of str
        What to tell the user (one line each).
    """

    round: int
    action: Literal["sample", "converged", "stop", "rerun"]
    previous_samples: int | None = None
    previous_rms_mev: float | None = None
    previous_mean_mev: float | None = None
    messages: tuple[str, ...] = ()

    def stored_data(self) -> dict:
        """The firework's ``stored_data`` of this decision (sampling adds its own keys)."""
        data: dict = {"round": self.round}
        if self.previous_samples is not None:
            data["previous_samples"] = self.previous_samples
        if self.previous_rms_mev is not None:
            data.update(previous_rms_mev=self.previous_rms_mev, previous_mean_mev=self.previous_mean_mev)
        if self.action in ("converged", "stop"):
            data["converged"] = self.action == "converged"
        elif self.action == "rerun":
            data["rerun"] = True
        return data


def decide_round(rnd: int, settings: RefineSettings, previous_errors: np.ndarray | None = None,
                 sampled: bool = False, name: str = "refine") -> RefineDecision:
    """What round ``rnd`` does, from the previous round's model errors.

    Parameters
    ----------
    rnd : int
        The round (0 first).
    settings : RefineSettings
        ``rounds`` and ``tolerance_mev`` are used.
    previous_errors : array, optional
        Model minus oracle energy of the previous round's stored chain ends, meV/atom
        (ignored in round 0).
    sampled : bool
        Samples of this round are stored already (a rerun or resubmission).
    name : str
        Training-set name in the messages.

    Returns
    -------
    RefineDecision
        Converged when the RMS error is below ``tolerance_mev``; else stop when
        ``rnd >= rounds``; else rerun when ``sampled``; else sample.
    """
    rnd = int(rnd)
    tol = float(settings.tolerance_mev)
    kw: dict = {}
    msgs: list[str] = []
    if rnd > 0:
        err = np.asarray(previous_errors if previous_errors is not None else [], dtype=float)
        kw["previous_samples"] = len(err)
        if not len(err):
            msgs.append(f"  [{name}] refine round {rnd - 1}: no chain end stored (oracle failures?); sampling again")
        else:
            rms = float(np.sqrt(np.mean(err ** 2)))
            kw.update(previous_rms_mev=rms, previous_mean_mev=float(err.mean()))
            msgs.append(f"  [{name}] refine round {rnd - 1}: model - oracle on its {len(err)} chain ends: RMS "
                        f"{rms:.1f}, mean {kw['previous_mean_mev']:+.1f} meV/atom (tolerance {tol:g})")
            if rms < tol:
                return RefineDecision(rnd, "converged", messages=tuple(msgs), **kw)
    if rnd >= int(settings.rounds):
        msgs.append(f"  [{name}] refine: {rnd} rounds done, not converged to {tol:g} meV/atom")
        return RefineDecision(rnd, "stop", messages=tuple(msgs), **kw)
    return RefineDecision(rnd, "rerun" if sampled else "sample", messages=tuple(msgs), **kw)


@dataclass
class RefineSamples:
    """The chain ends of one round, ready for the oracle.

    Attributes
    ----------
    structures : list of (Structure, str)
        Chain ends and their generator labels (:func:`refine_label`).
    extra : list of dict
        ``{"refine": {...}}`` provenance of each (model energy per atom in eV, chain, temperature, ...).
    mean_mev : dict
        Temperature (K) -> mean production energy of its chains, meV/atom relative to the cubic cell.
    n_chains : int
        Chains run (all cluster sets).
    """

    structures: list[tuple[Structure, str]] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    mean_mev: dict[float, float] = field(default_factory=dict)
    n_chains: int = 0


def sample_round(rnd: int, settings: RefineSettings, reference, cluster_sets: Sequence[str],
                 training: Sequence, previous: Sequence, features: Callable, seed: int) -> RefineSamples:
    """Fit one linear model per cluster set and run the round's Monte Carlo chains on it.

    Parameters
    ----------
    rnd : int
        The round (chain seeds are tagged ``1000 * rnd + k`` for cluster set ``k``).
    settings : RefineSettings
        Temperatures, chains, sweeps, order, margin.
    reference : pes_core.clusters.PerovskiteReference
        The perovskite at its relaxed lattice parameter (featurizers).
    cluster_sets : sequence of str
        One sampling model each; chains ``k * chains .. (k + 1) * chains - 1`` belong to set ``k``.
    training : sequence of Configuration
        Everything stored so far (``content_hash``, ``structure``, ``energy``): the fit and its domain.
    previous : sequence of Configuration
        The previous round's chain ends (with ``extra["refine"]``): where the chains go on from.
    features : callable
        ``features(featurizer, ids) -> FeatureData`` (e.g. a cached store).
    seed : int
        Chain seed.
    """
    # deferred (torch), so that the decisions above import cheaply
    from ._torch import torch_threads
    from .calculator import TrainingDomain
    from .data import PESData
    from .featurizers import perovskite_featurizer
    from .models import build_model
    from .montecarlo import chain_ends

    chains = int(settings.chains)
    out = RefineSamples()
    ends: list[dict] = []
    for k, clusters in enumerate(cluster_sets):
        feat = perovskite_featurizer(reference, clusters, order=int(settings.order))
        with torch_threads(1):
            model = build_model("linear", feat).fit(features(feat, [d.content_hash for d in training]))
            domain = TrainingDomain.from_data(feat, PESData.from_configurations(feat, training, with_forces=False))
            starts = {}
            mine = [d for d in previous if k * chains <= int(d.extra["refine"]["chain"]) < (k + 1) * chains]
            if mine:
                pos = PESData.from_configurations(feat, mine, with_forces=False).positions.numpy()
                starts = {(float(d.extra["refine"]["temperature_K"]), int(d.extra["refine"]["chain"]) - k * chains): p
                          for d, p in zip(mine, pos)}
            got = chain_ends(model, settings.temperatures, chains, int(settings.sweeps), seed=int(seed),
                             domain=domain, margin=float(settings.margin), tag=1000 * int(rnd) + k, starts=starts)
        ref = feat.reference_structure()
        for c in got:
            chain = k * chains + c["chain"]
            st = Structure(ref.lattice, ref.species, c["positions"], coords_are_cartesian=True)
            out.structures.append((st, refine_label(rnd, c["T"], chain)))
            out.extra.append({"refine": {"round": int(rnd), "temperature_K": c["T"], "chain": chain,
                                         "clusters": clusters, "model_energy_per_atom": c["energy"] / len(ref),
                                         "sweeps": int(settings.sweeps), "training_configurations": len(training),
                                         "wall_fraction": float(c["wall_fraction"]),
                                         "restarted": bool(c["restarted"])}})
        ends += got
    out.n_chains = len(ends)
    out.mean_mev = {float(t): float(np.mean([c["e_mean"] for c in ends if c["T"] == float(t)]))
                    for t in settings.temperatures}
    return out
