"""Training loop: Adam on squared energy errors (optionally forces), mini-batch schedule.

The schedule of the CsPbBr3 study grows the mini-batch from 2 to 10, 100 and
1000 configurations, at least 1000 epochs each (:data:`PAPER_SCHEDULE`).
Each stage stops early once the RMSE on an internal validation split (a
fixed, seeded ``val_fraction`` of the *training* data -- never the holdout)
has not improved for ``patience`` epochs, and the best weights of the stage
are restored before the next one starts.

The defaults (:data:`DEFAULT_SCHEDULE`) follow what works on the
chgnet-labelled CsPbBr3 sets (a few hundred to ~2,000 configurations):

* the linear shortcuts start from the ridge solution (the linear anharmonic
  cluster expansion) and are **not** moved by Adam (``train_linear=False``):
  the ridge solution is ill-conditioned, and Adam's per-weight steps of
  ``learning_rate`` destroy it (cross-validation RMSE twice the ridge one);
* the networks start at exactly zero output and leave that plateau slowly,
  so training is long, full batch (no mini-batch noise) with a long
  ``patience``: the small internal validation split is dominated by a few
  high-energy configurations and a short patience stops training before the
  networks learn anything;
* a small ``weight_decay`` on the networks;
* at the end the shortcuts are re-solved by ridge on what the networks leave
  over the *whole* training data (``refit_linear``, backfitting), so the
  internal validation split is not lost to the linear part.

Everything is deterministic under ``seed`` (initial weights, shuffling,
internal split) and runs with one torch thread by default.

Example
-------
>>> settings = TrainSettings(schedule=((10, 50), (100, 200)), patience=20)  # doctest: +SKIP
>>> report = train_model(model, train_features, settings)                    # doctest: +SKIP
>>> report.best_val_rmse_mev                                               # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ._torch import torch_threads
from .base import PESModel
from .data import FeatureData, PESData

__all__ = ["DEFAULT_SCHEDULE", "NAMED_SCHEDULES", "PAPER_SCHEDULE", "TrainReport", "TrainSettings", "parse_schedule",
           "point_train_settings", "rmse_mev_per_atom", "train_model"]

#: the schedule of the paper: (batch size, max epochs) per stage
PAPER_SCHEDULE: tuple[tuple[int, int], ...] = ((2, 1000), (10, 1000), (100, 1000), (1000, 1000))
#: the default: one long full-batch stage (up to 1000 configurations per step)
DEFAULT_SCHEDULE: tuple[tuple[int, int], ...] = ((1000, 800),)


def rmse_mev_per_atom(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                      n_atoms: int | np.ndarray) -> float:
    """Root-mean-square error of total energies (eV), in meV/atom.

    ``n_atoms`` is the atom count of every configuration (one int, or one per
    configuration, e.g. :attr:`FeatureData.atoms` for a mix of supercells).

    Examples
    --------
    >>> rmse_mev_per_atom([41.0, 82.0], [40.0, 80.0], [40, 80])
    25.0
    """
    p = np.asarray(pred, dtype=float)
    t = np.asarray(target, dtype=float)
    if p.size == 0:
        return float("nan")
    return float(1000.0 * np.sqrt(np.mean(((p - t) / n_atoms) ** 2)))


#: schedules by name (``schedule: paper`` in a spec)
NAMED_SCHEDULES: dict[str, tuple[tuple[int, int], ...]] = {"paper": PAPER_SCHEDULE, "default": DEFAULT_SCHEDULE}


def parse_schedule(schedule) -> tuple[tuple[int, int], ...]:
    """``(batch size, max epochs)`` stages from a list of pairs or a name of :data:`NAMED_SCHEDULES`.

    Examples
    --------
    >>> parse_schedule([[10, 100], [100, 50]])
    ((10, 100), (100, 50))
    >>> parse_schedule("paper")[0]
    (2, 1000)
    """
    if isinstance(schedule, str):
        if schedule not in NAMED_SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}: give [[batch size, epochs], ...] or one of "
                             f"{sorted(NAMED_SCHEDULES)}")
        return NAMED_SCHEDULES[schedule]
    try:
        stages = tuple((int(b), int(e)) for b, e in schedule)
    except (TypeError, ValueError):
        raise ValueError(f"schedule must be [[batch size, epochs], ...] pairs of integers, got {schedule!r}") from None
    if not stages or any(b < 1 or e < 0 for b, e in stages):
        raise ValueError(f"schedule must be (batch size >= 1, epochs >= 0) pairs, got {stages}")
    return stages


@dataclass
class TrainSettings:
    """Training hyperparameters.

    Attributes
    ----------
    schedule : tuple of (int, int) or str
        ``(batch size, max epochs)`` per stage, or a name of
        :data:`NAMED_SCHEDULES` (``"paper"``: :data:`PAPER_SCHEDULE`).
    learning_rate : float
        Adam step size (the same in every stage).
    patience : int
        Epochs without improvement of the internal validation RMSE before a
        stage stops (``0``: never stop early).
    val_fraction : float
        Part of the training data held out *internally* for early stopping
        (``0``: no early stopping, the last weights are kept).
    seed : int
        Seed of initial weights, shuffling and the internal split.
    force_weight : float
        Weight of the squared force error ((eV/Å)^2) relative to the squared
        energy error per atom (eV^2); ``> 0`` needs positions
        (:class:`PESData`) and is much slower.
    weight_decay : float
        L2 penalty of Adam.
    linear_init : bool
        Start the linear shortcuts of the networks from the ridge solution
        (the linear anharmonic cluster expansion) before Adam.
    init_scale : float
        Factor on the default initial weights of the networks' output layers
        when ``linear_init`` (``0``: start exactly from the ridge solution;
        ``> 0`` breaks the zero-gradient plateau of the hidden layers, and
        the shortcuts are then fitted to what the initial networks leave;
        clearly worse on the CsPbBr3 sets, kept for experiments).  Networks
        without a shortcut start at 0.1 of the default (nothing to start from).
    train_linear : bool
        Let Adam update the linear shortcuts too (``False``: they keep the
        ridge solution and Adam trains the networks alone).
    refit_linear : bool
        After training, re-solve the linear shortcuts (and ``E0``) by ridge
        on the energies minus the networks' output, over the whole training
        data (backfitting).
    threads : int
        torch threads during training.
    time_limit_s : float, optional
        Stop (keeping the best weights) after this wall time.
    """

    schedule: tuple[tuple[int, int], ...] = DEFAULT_SCHEDULE
    learning_rate: float = 3e-3
    patience: int = 200
    val_fraction: float = 0.1
    seed: int = 0
    force_weight: float = 0.0
    weight_decay: float = 1e-3
    linear_init: bool = True
    init_scale: float = 0.0
    train_linear: bool = False
    refit_linear: bool = True
    threads: int = 1
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        self.schedule = parse_schedule(self.schedule)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schedule"] = [list(s) for s in self.schedule]
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> TrainSettings:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


@dataclass
class TrainReport:
    """What a training run did (RMSEs in meV/atom, time in s)."""

    train_rmse_mev: float
    best_val_rmse_mev: float
    epochs: int
    steps: int
    wall_time_s: float
    history: list[tuple[int, int, float, float]] = field(default_factory=list)  # (stage, epoch, train, val)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed + 7919).permutation(n)
    n_val = int(round(fraction * n)) if fraction > 0 else 0
    if n_val and n - n_val < 1:
        n_val = 0
    return np.sort(idx[n_val:]), np.sort(idx[:n_val])


def train_model(model: PESModel, features: FeatureData, settings: TrainSettings | None = None,
                data: PESData | None = None, verbose: bool = False) -> TrainReport:
    """Fit ``model`` in place on precomputed ``features`` (and ``data`` for force training).

    Parameters
    ----------
    model : PESModel
        A cluster- or site-based model (its weights are re-initialized from the seed).
    features : FeatureData
        Training features and energies (eV); may hold configurations of
        larger supercells (grouped rows): the internal validation split is
        by configuration and the loss is on energies per featurizer cell.
    settings : TrainSettings, optional
        Schedule, learning rate, early stopping, seed.
    data : PESData, optional
        Positions, cells and forces of the same configurations (same order);
        needed when ``settings.force_weight > 0``.
    verbose : bool
        Print one line per stage.
    """
    s = settings or TrainSettings()
    if s.force_weight > 0 and (data is None or data.forces is None):
        raise ValueError("force training needs PESData with forces (pass data=...)")
    if data is not None and list(data.ids) != list(features.ids):
        raise ValueError("data and features must hold the same configurations in the same order")
    if s.force_weight > 0 and features.grouped:
        raise ValueError("force training needs configurations of the featurizer's own supercell; the features "
                         "hold larger cells (train on energies, force_weight=0)")
    t0 = time.perf_counter()
    n_atoms = features.n_atoms
    with torch_threads(s.threads):
        torch.manual_seed(s.seed)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.reset_parameters()
        for net in getattr(model, "nets", []):
            with torch.no_grad():  # start from the linear part alone: zero the networks' output layers
                # without a shortcut there is no linear part to start from: the networks' usual small start
                linear_start = s.linear_init and getattr(model, "shortcut", False)
                net[-1].weight.mul_(s.init_scale if linear_start else 0.1)
                net[-1].bias.zero_()
        tr_idx, va_idx = _split(len(features), s.val_fraction, s.seed)
        train, val = features.subset(tr_idx), features.subset(va_idx)
        model.fit_normalization(train)
        if s.linear_init and hasattr(model, "init_linear"):
            for lin in getattr(model, "linear", []):
                torch.nn.init.zeros_(lin.weight)
            model.init_linear(train, residual=s.init_scale != 0.0)
        tr_data = data.subset(tr_idx) if data is not None else None
        scale = float(model.e_scale)
        params = [p for name, p in model.named_parameters()
                  if p.requires_grad and (s.train_linear or not name.startswith("linear."))]
        opt = torch.optim.Adam(params, lr=s.learning_rate, weight_decay=s.weight_decay)
        gen = torch.Generator().manual_seed(s.seed)
        best_state = copy.deepcopy(model.state_dict())
        history: list[tuple[int, int, float, float]] = []
        epochs = steps = 0
        out_of_time = False

        def evaluate() -> tuple[float, float]:
            tr = rmse_mev_per_atom(model.predict(train), train.energies, train.atoms)
            va = rmse_mev_per_atom(model.predict(val), val.energies, val.atoms) if len(val) else tr
            return tr, va

        tr0, best_val = evaluate()  # the starting point (linear solution) is a candidate too
        history.append((-1, 0, tr0, best_val))

        for stage, (batch, max_epochs) in enumerate(s.schedule):
            stage_best, since = np.inf, 0
            for epoch in range(max_epochs):
                perm = torch.randperm(len(train), generator=gen)
                for a in range(0, len(train), batch):
                    b = perm[a:a + batch]
                    opt.zero_grad(set_to_none=True)
                    if s.force_weight > 0:
                        loss = _force_loss(model, tr_data, b, n_atoms, scale, s.force_weight)
                    elif train.grouped or train.weights is not None:  # per featurizer cell; configuration weights
                        sub = train.subset(b.numpy())
                        m = torch.as_tensor(sub.multiplicity, dtype=torch.float64)
                        r2 = ((model.energies(sub) - sub.energies) / (scale * m)) ** 2
                        loss = torch.mean(r2) if sub.weights is None else torch.sum(sub.weights * r2) / torch.sum(
                            sub.weights)
                    else:
                        pred = model.energy_from_features({k: v[b] for k, v in train.clusters.items()},
                                                          {k: v[b] for k, v in train.sites.items()})
                        loss = torch.mean(((pred - train.energies[b]) / scale) ** 2)
                    loss.backward()
                    opt.step()
                    steps += 1
                epochs += 1
                tr, va = evaluate()
                history.append((stage, epoch, tr, va))
                if va < best_val:
                    best_val, best_state = va, copy.deepcopy(model.state_dict())
                if va < stage_best - 1e-9:
                    stage_best, since = va, 0
                else:
                    since += 1
                if s.time_limit_s is not None and time.perf_counter() - t0 > s.time_limit_s:
                    out_of_time = True
                    break
                if len(val) and s.patience and since >= s.patience:
                    break
            if len(val):
                model.load_state_dict(best_state)
            if verbose:
                print(f"stage {stage} (batch {batch}): {epoch + 1} epochs, best val {best_val:.3f} meV/atom",
                      flush=True)
            if out_of_time:
                break
        if not len(val):
            best_state = copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        if s.refit_linear and hasattr(model, "init_linear") and getattr(model, "shortcut", False):
            model.init_linear(features, residual=True)
        tr, va = evaluate()
    return TrainReport(train_rmse_mev=tr, best_val_rmse_mev=va if len(val) else float("nan"), epochs=epochs,
                       steps=steps, wall_time_s=time.perf_counter() - t0, history=history)


def _force_loss(model: PESModel, data: PESData, b: torch.Tensor, n_atoms: int, scale: float,
                weight: float) -> torch.Tensor:
    pos = data.positions[b].clone().requires_grad_(True)
    e = model(pos, data.cells[b])
    (g,) = torch.autograd.grad(e.sum(), pos, create_graph=True)
    le = torch.mean(((e - data.energies[b]) / scale) ** 2)
    scale_f = scale / n_atoms  # energy-per-atom scale, as (eV/Å) with 1 Å
    lf = torch.mean(((-g - data.forces[b]) / scale_f) ** 2)
    return le + weight * lf

def point_train_settings(point: dict, base: TrainSettings | dict | None = None) -> TrainSettings:
    """The training settings of grid point ``point``: its ``training`` fields over ``base``'s.

    Parameters
    ----------
    point : dict
        A grid point (:func:`expand_grid`); its optional ``training`` is a dict
        of :class:`TrainSettings` fields.
    base : TrainSettings, dict or None
        The fit's settings (``None``: the defaults).

    Returns
    -------
    TrainSettings
        ``base`` itself when the point has no ``training``; else a new one
        where each field the point gives wins and every other is ``base``'s.
    """
    if not isinstance(base, TrainSettings):
        base = TrainSettings.from_dict(base)
    override = point.get("training")
    if not override:
        return base
    if not isinstance(override, dict):
        raise ValueError(f"a grid point's training must be a dict of TrainSettings fields, got {override!r}")
    return TrainSettings.from_dict({**base.to_dict(), **override})
