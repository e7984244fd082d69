"""MTP basis generation: which moment contractions enter a potential of a given level.

A *moment* of atom ``i`` is the symmetric tensor

    M_{mu,nu}(i) = sum_j f_mu(r_ij) * u_ij (x) ... (x) u_ij      (nu factors, u = r/|r|),

of level ``lev(M_{mu,nu}) = 2 + 4 mu + nu``.  A *basis function* ``B_alpha`` is a
scalar contraction of a product of moments; its level is the sum of its
factors' levels.  A contraction is a loopless multigraph (a node per factor,
``nu`` edge ends at a node; self-contractions are excluded because
``u . u = 1`` makes them equal to lower moments).  The generator enumerates all
such graphs up to isomorphism with

* total level ``<= level``,
* at most 4 factors, ``mu <= 5`` and ``nu <= 10``

(the limits of MLIP's template generator; they reproduce the function counts
of MLIP's ``untrained_mtps/NN.mtp`` templates for every level 2..26).

The basis functions are MLIP's own: evaluated on random environments, every
function of MLIP's templates of levels 4..26 has the same values as exactly one
of ours (a permutation; each is the plain full contraction, without extra
factors), so both span the same space, with the same linear dependencies
(e.g. rank 91 of 92 functions at level 16, 282 of 288 at level 20).  Only the
order of the functions and the intermediate program differ:
``alpha_moments_count`` is not a property of the basis (318 here against
MLIP's 350 at level 16, 1286 against 1352 at level 20), because intermediates
are shared differently.  The per-level properties are
checked in ``tests/pes_core/mtp/test_template_levels.py``.

Each graph is compiled into MLIP's scalar program (``alpha_index_basic``,
``alpha_index_times``, ``alpha_moment_mapping``): basic moments are tensor
components ``(mu, a, b, c)`` with value ``f_mu * x^a y^b z^c / r^(a+b+c)``;
``alpha_index_times`` rows ``(i, j, mult, k)`` mean
``moment[k] += mult * moment[i] * moment[j]``.  Intermediate tensors are kept
in "reduced" form (each group of indices that will be contracted with the same
symmetric factor is summed over its orderings), which makes every
multiplicity an integer and lets identical intermediates be shared.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from math import factorial

import numpy as np

__all__ = [
    "MAX_FACTORS",
    "MAX_MU",
    "MAX_NU",
    "MomentBasis",
    "generate_basis",
    "moment_level",
]

MAX_FACTORS = 4
MAX_MU = 5
MAX_NU = 10

Label = tuple[int, int]  # (mu, nu)
Graph = tuple[tuple[Label, ...], tuple[int, ...]]  # labels, upper-triangle edge counts


def moment_level(mu: int, nu: int) -> int:
    """Level of the moment ``M_{mu,nu}``: ``2 + 4 mu + nu``."""
    return 2 + 4 * mu + nu


@dataclass(frozen=True)
class MomentBasis:
    """The contraction program of an MTP in MLIP's table form.

    Parameters
    ----------
    radial_funcs_count : int
        Number of radial functions ``N_mu`` (``mu = 0 .. N_mu - 1``).
    alpha_index_basic : numpy.ndarray
        ``(K, 4)`` int rows ``(mu, a, b, c)``: basic moment components.
    alpha_index_times : numpy.ndarray
        ``(T, 4)`` int rows ``(i, j, mult, k)``: ``moment[k] += mult * moment[i] * moment[j]``.
    alpha_moment_mapping : numpy.ndarray
        ``(m,)`` indices of the moments that are the basis functions ``B_alpha``.
    alpha_moments_count : int
        Total number of moments (basic and derived).
    level : int or None
        The level the basis was generated for (``None`` when read from a file
        that does not say).
    """

    radial_funcs_count: int
    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    alpha_moments_count: int
    level: int | None = None

    def __post_init__(self) -> None:
        basic = np.asarray(self.alpha_index_basic, dtype=np.int64).reshape(-1, 4)
        times = np.asarray(self.alpha_index_times, dtype=np.int64).reshape(-1, 4)
        mapping = np.asarray(self.alpha_moment_mapping, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "alpha_index_basic", basic)
        object.__setattr__(self, "alpha_index_times", times)
        object.__setattr__(self, "alpha_moment_mapping", mapping)
        n_basic = len(basic)
        n = int(self.alpha_moments_count)
        if len(basic) and (basic[:, 0].max() >= self.radial_funcs_count or basic.min() < 0):
            raise ValueError(
                "alpha_index_basic uses a radial function index >= radial_funcs_count "
                f"({self.radial_funcs_count}) or a negative power; the .mtp tables are inconsistent"
            )
        if len(times):
            if times[:, [0, 1, 3]].max() >= n or times[:, [0, 1, 3]].min() < 0:
                raise ValueError(
                    f"alpha_index_times refers to a moment outside 0..{n - 1} "
                    "(alpha_moments_count); the .mtp tables are inconsistent"
                )
            if (times[:, 3] < n_basic).any():
                raise ValueError("alpha_index_times writes into a basic moment; the .mtp tables are inconsistent")
        if len(mapping) and (mapping.max() >= n or mapping.min() < 0):
            raise ValueError(
                f"alpha_moment_mapping refers to a moment outside 0..{n - 1}; the .mtp tables are inconsistent"
            )

    @property
    def alpha_scalar_moments(self) -> int:
        """Number of basis functions ``m`` (= number of ``moment_coeffs``)."""
        return len(self.alpha_moment_mapping)

    @property
    def max_nu(self) -> int:
        """Largest tensor rank among the basic moments."""
        if len(self.alpha_index_basic) == 0:
            return 0
        return int(self.alpha_index_basic[:, 1:].sum(axis=1).max())


# --------------------------------------------------------------------- graphs
def _node_labels(level: int) -> list[Label]:
    return [
        (mu, nu)
        for mu in range(MAX_MU + 1)
        for nu in range(MAX_NU + 1)
        if moment_level(mu, nu) <= level
    ]


def _canonical(labels: list[Label], adj: list[list[int]]) -> Graph:
    """Canonical form of a labelled multigraph (brute force over label classes; n <= 4)."""
    n = len(labels)
    order0 = sorted(range(n), key=lambda i: labels[i])
    groups: dict[Label, list[int]] = {}
    for i in order0:
        groups.setdefault(labels[i], []).append(i)
    best: tuple[int, ...] | None = None
    for perms in itertools.product(*(itertools.permutations(g) for g in groups.values())):
        order = [i for p in perms for i in p]
        key = tuple(adj[order[a]][order[b]] for a in range(n) for b in range(a + 1, n))
        if best is None or key < best:
            best = key
    return tuple(labels[i] for i in order0), best or ()


def _is_connected(adj: list[list[int]]) -> bool:
    n = len(adj)
    seen, stack = {0}, [0]
    while stack:
        a = stack.pop()
        for b in range(n):
            if adj[a][b] and b not in seen:
                seen.add(b)
                stack.append(b)
    return len(seen) == n


def _graphs_with_labels(labels: list[Label]) -> set[Graph]:
    """All connected loopless multigraphs whose node degrees are the labels' ``nu``."""
    n = len(labels)
    if n == 1:
        return {(tuple(labels), ())} if labels[0][1] == 0 else set()
    adj = [[0] * n for _ in range(n)]
    rem = [lab[1] for lab in labels]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    last_of = {a: max(k for k, p in enumerate(pairs) if a in p) for a in range(n)}
    found: set[Graph] = set()

    def rec(k: int) -> None:
        if k == len(pairs):
            if not any(rem) and _is_connected(adj):
                found.add(_canonical(labels, adj))
            return
        a, b = pairs[k]
        lo = rem[a] if last_of[a] == k else 0
        for mult in range(lo, min(rem[a], rem[b]) + 1):
            adj[a][b] = adj[b][a] = mult
            rem[a] -= mult
            rem[b] -= mult
            rec(k + 1)
            rem[a] += mult
            rem[b] += mult
        adj[a][b] = adj[b][a] = 0

    rec(0)
    return found


@lru_cache(maxsize=None)
def _connected_graphs(level: int) -> tuple[tuple[int, Graph], ...]:
    labels = _node_labels(level)
    out: list[tuple[int, Graph]] = []

    def rec(start: int, cur: list[Label], tot: int) -> None:
        if cur:
            nus = [lab[1] for lab in cur]
            ok = len(cur) == 1 or (min(nus) > 0 and sum(nus) % 2 == 0 and sum(nus) >= 2 * (len(cur) - 1))
            if ok:
                out.extend((tot, g) for g in _graphs_with_labels(cur))
        if len(cur) == MAX_FACTORS:
            return
        for i in range(start, len(labels)):
            lev = moment_level(*labels[i])
            if tot + lev <= level:
                rec(i, [*cur, labels[i]], tot + lev)

    rec(0, [], 0)
    return tuple(sorted(out))


def _basis_graph_sets(level: int) -> list[tuple[int, ...]]:
    """Basis functions as sorted tuples of indices into ``_connected_graphs(level)``."""
    graphs = _connected_graphs(level)
    sizes = [len(g[1][0]) for g in graphs]
    levels = [g[0] for g in graphs]
    out: list[tuple[int, ...]] = []

    def rec(start: int, cur: list[int], tot: int, nodes: int) -> None:
        for i in range(start, len(graphs)):
            if tot + levels[i] <= level and nodes + sizes[i] <= MAX_FACTORS:
                new = [*cur, i]
                out.append(tuple(new))
                rec(i, new, tot + levels[i], nodes + sizes[i])

    rec(0, [], 0, 0)
    # order like MLIP: by level, then by number of factors
    out.sort(key=lambda s: (sum(levels[i] for i in s), sum(sizes[i] for i in s), s))
    return out


# ------------------------------------------------------------------ compiling
_ZERO = (0, 0, 0)


def _add3(x: tuple[int, int, int], y: tuple[int, int, int]) -> tuple[int, int, int]:
    return (x[0] + y[0], x[1] + y[1], x[2] + y[2])


@lru_cache(maxsize=None)
def _compositions(m: int) -> tuple[tuple[int, int, int], ...]:
    return tuple((a, b, m - a - b) for a in range(m + 1) for b in range(m + 1 - a))


@lru_cache(maxsize=None)
def _multinomial(n: tuple[int, int, int]) -> int:
    return factorial(sum(n)) // (factorial(n[0]) * factorial(n[1]) * factorial(n[2]))


class _Program:
    """Builds MLIP tables, sharing identical moments (content addressed)."""

    def __init__(self) -> None:
        self.basic: dict[tuple[int, int, int, int], int] = {}
        self.derived: dict[tuple, int] = {}
        self.derived_terms: list[tuple[tuple[int, int, int], ...]] = []

    def basic_ref(self, mu: int, n: tuple[int, int, int]) -> tuple[str, int]:
        key = (mu, *n)
        if key not in self.basic:
            self.basic[key] = len(self.basic)
        return ("b", self.basic[key])

    def derived_ref(self, terms: dict[tuple, int]) -> tuple[str, int]:
        items = []
        for (r1, r2), mult in terms.items():
            if mult:
                a, b = sorted([r1, r2])
                items.append((a, b, mult))
        key = tuple(sorted(items))
        if key not in self.derived:
            self.derived[key] = len(self.derived)
            self.derived_terms.append(key)
        return ("d", self.derived[key])

    def compile_connected(self, graph: Graph) -> tuple[str, int]:
        labels, upper = graph
        n = len(labels)
        if n == 1:
            return self.basic_ref(labels[0][0], (0, 0, 0))
        adj = [[0] * n for _ in range(n)]
        it = iter(upper)
        for a in range(n):
            for b in range(a + 1, n):
                adj[a][b] = adj[b][a] = next(it)
        best = None
        for order in itertools.permutations(range(n)):
            if any(not any(adj[order[s]][order[t]] for t in range(s)) for s in range(1, n)):
                continue  # every prefix must stay connected
            cost = self._contract_cost(labels, adj, order)
            if best is None or cost < best[0]:
                best = (cost, order)
        assert best is not None
        return self._contract(labels, adj, best[1], build=True)

    @staticmethod
    def _contract_cost(labels, adj, order) -> int:
        """Number of products the contraction in ``order`` needs (without building it)."""
        n = len(order)
        ncomp = lambda m: (m + 1) * (m + 2) // 2  # noqa: E731 - components of a symmetric group of m indices
        groups = {w: adj[order[0]][w] for w in range(n) if w != order[0] and adj[order[0]][w]}
        cost = 0
        for s in range(1, n):
            v = order[s]
            keys = 1
            for m in groups.values():
                keys *= ncomp(m)
            later = [w for w in order[s + 1 :] if adj[v][w]]
            for w in later:
                keys *= ncomp(adj[v][w])
            cost += keys
            groups.pop(v, None)
            for w in later:
                groups[w] = groups.get(w, 0) + adj[v][w]
        return cost

    def _contract(self, labels, adj, order, build: bool):
        """Contract nodes in ``order``; returns the scalar ref (build) or the term count."""
        n = len(order)
        pos = {v: s for s, v in enumerate(order)}
        v0 = order[0]
        # T: key = tuple over future destinations (sorted by position) of count vectors
        dests = sorted((w for w in range(n) if w != v0 and adj[v0][w]), key=pos.get)
        sizes = {w: adj[v0][w] for w in dests}
        tensor: dict[tuple, tuple[int, object]] = {}  # key -> (coef, ref)
        for combo in itertools.product(*(_compositions(sizes[w]) for w in dests)):
            tot = tuple(map(sum, zip(*combo))) if combo else (0, 0, 0)
            coef = 1
            for q in combo:
                coef *= _multinomial(q)
            ref = self.basic_ref(labels[v0][0], tot) if build else None
            tensor[combo] = (coef, ref)
        total_terms = 0
        for s in range(1, n):
            v = order[s]
            mu_v = labels[v][0]
            t_dests = dests
            iv = t_dests.index(v)
            new_dests = sorted(
                set(t_dests[:iv] + t_dests[iv + 1 :]) | {w for w in range(n) if pos[w] > s and adj[v][w]},
                key=pos.get,
            )
            own = [w for w in new_dests if adj[v][w]]
            new_tensor: dict[tuple, dict] = {}
            for key, (coef, ref) in tensor.items():
                n_v = key[iv]
                rest = dict(zip(t_dests[:iv] + t_dests[iv + 1 :], key[:iv] + key[iv + 1 :]))
                for combo in itertools.product(*(_compositions(adj[v][w]) for w in own)):
                    q = dict(zip(own, combo))
                    tot = list(n_v)
                    mult = coef
                    for c in combo:
                        tot = [tot[0] + c[0], tot[1] + c[1], tot[2] + c[2]]
                        mult *= _multinomial(c)
                    new_key = tuple(_add3(rest.get(w, _ZERO), q.get(w, _ZERO)) for w in new_dests)
                    total_terms += 1
                    if build:
                        s_ref = self.basic_ref(mu_v, tuple(tot))
                        terms = new_tensor.setdefault(new_key, {})
                        pair = (ref, s_ref)
                        terms[pair] = terms.get(pair, 0) + mult
                    else:
                        new_tensor.setdefault(new_key, {})
            if build:
                tensor = {k: (1, self.derived_ref(t)) for k, t in new_tensor.items()}
            else:
                tensor = {k: (1, None) for k in new_tensor}
            dests = new_dests
        if not build:
            return total_terms
        ((coef, ref),) = tensor.values()
        return ref

    def product(self, refs: list[tuple[str, int]]) -> tuple[str, int]:
        refs = sorted(refs)
        acc = refs[0]
        for r in refs[1:]:
            acc = self.derived_ref({(acc, r): 1})
        return acc

    def tables(self, mapping_refs: list[tuple[str, int]]):
        basic_items = sorted(self.basic.items(), key=lambda kv: kv[1])
        # renumber basic moments in sorted (mu, nu, a, b, c) order like MLIP
        order = sorted(range(len(basic_items)), key=lambda i: (
            basic_items[i][0][0], sum(basic_items[i][0][1:]), tuple(-x for x in basic_items[i][0][1:])))
        new_basic = {old: new for new, old in enumerate(order)}
        n_basic = len(basic_items)

        def index(ref) -> int:
            kind, i = ref
            return new_basic[i] if kind == "b" else n_basic + i

        basic = np.array([basic_items[i][0] for i in order], dtype=np.int64).reshape(-1, 4)
        times = [
            (index(r1), index(r2), mult, n_basic + k)
            for k, terms in enumerate(self.derived_terms)
            for r1, r2, mult in terms
        ]
        times_arr = np.array(times, dtype=np.int64).reshape(-1, 4)
        mapping = np.array([index(r) for r in mapping_refs], dtype=np.int64)
        return basic, times_arr, mapping, n_basic + len(self.derived_terms)


@lru_cache(maxsize=None)
def _generate(level: int) -> MomentBasis:
    graphs = _connected_graphs(level)
    sets = _basis_graph_sets(level)
    prog = _Program()
    scalar_refs = {}
    mapping_refs = []
    for s in sets:
        for i in s:
            if i not in scalar_refs:
                scalar_refs[i] = prog.compile_connected(graphs[i][1])
        mapping_refs.append(prog.product([scalar_refs[i] for i in s]))
    basic, times, mapping, count = prog.tables(mapping_refs)
    n_mu = int(basic[:, 0].max()) + 1
    return MomentBasis(n_mu, basic, times, mapping, count, level=level)


def generate_basis(level: int) -> MomentBasis:
    """Generate the MTP contraction program for ``level`` (even, 2..28).

    Parameters
    ----------
    level : int
        Maximal level ``lev_max`` of the basis functions (MLIP's template
        number: 2, 4, ..., 28).

    Returns
    -------
    MomentBasis
        Tables in MLIP's form.  The counts match MLIP's templates, e.g.
        ``generate_basis(16).alpha_scalar_moments == 92``.

    Examples
    --------
    >>> b = generate_basis(8)
    >>> b.radial_funcs_count, b.alpha_scalar_moments
    (2, 9)
    """
    if not isinstance(level, (int, np.integer)) or level < 2 or level > 28 or level % 2:
        raise ValueError(f"MTP level must be an even integer between 2 and 28, got {level!r}")
    return _generate(int(level))
