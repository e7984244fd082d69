"""The learning step of a CSP search as data (pes_core.active.decisions), without a database."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pes_core.active import ActiveSettings, Candidate
from pes_core.active.decisions import (
    OracleCheck,
    OracleFrame,
    choose_training,
    decide_check,
    decide_learning,
    pick_for_check,
)
from pes_core.search import Individual
from pes_core.search.relax import enthalpy_per_atom


def _ind(id_: str, h: float, sg: str = "P1 (1)", a: float = 5.43, **info) -> Individual:
    ind = Individual.from_atoms(id_, bulk("Si", "diamond", a=a), "random")
    ind.enthalpy_per_atom, ind.energy, ind.spacegroup, ind.relaxed = h, 2 * h, sg, True
    ind.relax_info.update(info)
    return ind


def _cand(a: float, grade: float, reason: str) -> Candidate:
    return Candidate(bulk("Si", "diamond", a=a), grade, reason, {})


def test_learning_takes_forced_reasons_first_skips_known_and_caps():
    cands = [_cand(5.0, 3.0, "select"), _cand(5.1, 50.0, "select"), _cand(5.2, 11.0, "break"),
             _cand(5.3, 2.5, "floor"), _cand(5.4, 4.0, "select")]
    relaxed = [_ind("a", -4.0, **{"break": True}), _ind("b", -4.1), _ind("c", -4.2, unphysical="floor")]
    key = lambda atoms: f"{atoms.cell[0, 1]:.3f}"  # noqa: E731  one key per lattice constant
    known = {key(cands[4].atoms)}
    d = decide_learning(cands, relaxed, generation=4, round=1, capped=False, choose=lambda c: c, key_of=key,
                        is_known=known.__contains__, max_configurations=3)
    assert d.learns and d.round == 2 and d.generation == 4
    assert [c.reason for c in d.learn] == ["break", "floor", "select"]
    assert [c.grade for c in d.learn] == [11.0, 2.5, 50.0]  # then the highest grades; the known one skipped
    assert d.redo == ["a", "c"]
    capped = decide_learning(cands, relaxed, generation=4, round=5, capped=True, choose=lambda c: c, key_of=key,
                             is_known=known.__contains__, max_configurations=3)
    assert not capped.learns and capped.redo == ["a", "c"]


def test_pick_for_check_groups_duplicates_and_stops_at_the_window():
    relaxed = [_ind("a", -4.30, "Fd-3m (227)"), _ind("b", -4.3005, "Fd-3m (227)"), _ind("c", -4.28),
               _ind("d", -4.10), _ind("e", float("nan")), _ind("f", -5.0)]
    relaxed[5].flags["failed"] = True
    picked = pick_for_check(relaxed, best_so_far=-4.25, window=0.05)
    assert [[i.id for i in g] for g in picked] == [["b", "a"], ["c"]]
    assert [[i.id for i in g] for g in pick_for_check(relaxed, None, 0.05)] == [["b", "a"], ["c"], ["d"]]


def test_check_asks_the_oracle_then_ranks_by_it_and_learns_a_large_error():
    st = ActiveSettings(check_top=1, check_tolerance=0.01, max_check_rounds=2, check_steps=5)
    relaxed = [_ind("a", -4.30), _ind("b", -4.29, "P2 (3)"), _ind("c", -4.20, "P3 (4)")]
    picked = pick_for_check(relaxed, best_so_far=None, window=0.5)
    none = {i.id: OracleCheck(f"h{i.id}") for g in picked for i in g[:1]}
    first = decide_check(picked, none, generation=2, check_round=0, learned=set(), pressure_gpa=0.0, settings=st)
    assert [c.individual.id for c in first.check] == ["a"] and first.round == 1 and not first.learn  # check_top 1
    capped = decide_check(picked, none, generation=2, check_round=2, learned=set(), pressure_gpa=0.0, settings=st)
    assert capped.done and capped.capped == 1
    # the one left unchecked keeps its MTP enthalpy but is marked, so it cannot stop the search as found
    assert relaxed[0].relax_info.pop("oracle_unchecked") is True
    assert not any("oracle_unchecked" in i.relax_info for i in relaxed)

    a = relaxed[0]
    e_start = -4.20 * 2  # the oracle is 100 meV/atom above the MTP at its minimum
    lower = bulk("Si", "diamond", a=5.40)
    frames = [OracleFrame(e_start, a.atoms.get_volume(), a.atoms, "ha", kept=True),
              OracleFrame(-4.25 * 2, lower.get_volume(), lower, "ha1", kept=True),
              OracleFrame(-4.22 * 2, lower.get_volume(), lower, "ha2", kept=False)]
    known = dict(none, a=OracleCheck("ha", e_start, frames), b=OracleCheck("hb", requested=True))
    d = decide_check(picked, known, generation=2, check_round=1, learned={"ha1"}, pressure_gpa=0.0, settings=st)
    # b was asked before (a failed check is not asked again); c is next: learning waits for its check
    assert [c.individual.id for c in d.check] == ["c"] and d.learn == [] and d.round == 2
    known["c"] = OracleCheck("hc", requested=True)
    for ind in relaxed:  # the same offspring again, as the rerun of the generation has them
        ind.relax_info.pop("oracle_check", None)
    a.enthalpy_per_atom, a.structure, a.relax_info = -4.30, _ind("a", -4.30).structure, {}
    d = decide_check(picked, known, generation=2, check_round=1, learned={"ha1"}, pressure_gpa=0.0, settings=st)
    assert not d.check and d.learn == ["ha"]  # the kept frame ha1 was learned before
    chk = a.relax_info["oracle_check"]
    assert chk["oracle_start_enthalpy_per_atom"] == pytest.approx(-4.20)
    assert chk["error"] == pytest.approx(-0.10) and chk["learned"] and chk["oracle_steps"] == 2
    assert a.enthalpy_per_atom == pytest.approx(-4.25) and a.relax_info["mtp_enthalpy_per_atom"] == -4.30
    # Lamarckian: the checked individual takes the oracle-relaxed geometry
    assert a.volume == pytest.approx(lower.get_volume()) and a.spacegroup.startswith("Fd-3m")
    assert enthalpy_per_atom(a.energy, a.volume, 2, 0.0) == pytest.approx(-4.25)


def test_choose_training_screens_the_unlearned_and_weights_low_energies():
    st = ActiveSettings(train_window=1.0, min_train=2, energy_weighting=0.2)
    e = [-5.0, -4.5, -1.0, 3.0, None]
    choice = choose_training(["a", "b", "c", "d", "e"], e, [False, False, False, True, False], st)
    assert choice.ids == ["a", "b", "c", "d", "e"]
    assert choice.fit == [0, 1, 3]  # c is above the window, d learned, e has no energy
    assert choice.window == [0, 1]
    w = np.array(choice.weights)
    assert w[0] == pytest.approx(1.0) and w[0] > w[1] > w[2] > 0
    flat = choose_training(["a", "b"], [-5.0, 3.0], [False, False], ActiveSettings(train_window=None,
                                                                                 energy_weighting=None))
    assert flat.fit == [0, 1] and flat.weights is None and flat.window == [0, 1]
    with pytest.raises(ValueError, match="one each per configuration"):
        choose_training(["a"], [-5.0, -4.0], [False, False], st)


def test_a_check_the_oracle_refused_drops_the_offspring_instead_of_trusting_the_mtp():
    """SiO2 with BKS: the MTP put an unphysical cell 135 meV/atom below quartz, the oracle refused its check;
    before, it kept the MTP enthalpy, became the generation's best and stopped the search as 'found'."""
    st = ActiveSettings(check_top=2, check_tolerance=0.01, max_check_rounds=3, check_steps=5)
    relaxed = [_ind("a", -19.46, "R-3m (166)"), _ind("a2", -19.4601, "R-3m (166)"), _ind("b", -19.30, "P3_121 (152)")]
    picked = pick_for_check(relaxed, best_so_far=-19.0, window=0.5)
    assert [[i.id for i in g] for g in picked] == [["a2", "a"], ["b"]]
    reason = "OracleError: bks returned an implausible result for SiO2: stress 27011.8 GPa"
    oracle = {"a2": OracleCheck("ha", requested=True, refused=reason), "b": OracleCheck("hb")}
    d = decide_check(picked, oracle, generation=5, check_round=1, learned=set(), pressure_gpa=0.0, settings=st)
    assert [c.individual.id for c in d.check] == ["b"]  # the refused one is not asked again, the next is
    for ind in relaxed[:2]:  # the whole group of that structure is dropped
        assert ind.flags["failed"] and not ind.usable and "stress" in ind.relax_info["oracle_refused"]["reason"]
    assert relaxed[2].usable and any("refused by the oracle" in line for line in d.lines)
    assert [[i.id for i in g] for g in pick_for_check(relaxed, best_so_far=-19.0, window=0.5)] == [["b"]]
    # a missing result that was never refused still waits (not dropped)
    c = [_ind("c", -19.5)]
    d = decide_check(pick_for_check(c, None, 0.5), {"c": OracleCheck("hc", requested=True)}, generation=5,
                     check_round=1, learned=set(), pressure_gpa=0.0, settings=st)
    assert c[0].usable and not d.check
