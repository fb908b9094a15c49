"""Each conformance objective is one record: the list, the faults, export's README and the docs
tables are read from the records (and the docs cannot drift from them); every record has its
independent implementation in the tests, and the registry refuses an ambiguous record."""
import pathlib
import types

import numpy as np
import pytest
from test_conformance import T_IMPL
from test_conformance_diffusion import T_DIFF

from refscore import conformance
from refscore.conformance import REGISTRY, describe, registry
from refscore.conformance.objective import Fault, Objective, case

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "conformance.md"


def test_the_docs_tables_are_the_records():
    text = DOCS.read_text(encoding="utf-8")
    blocks = [m.group(2) for m in describe.BLOCK.finditer(text)]
    assert sorted(blocks) == sorted(describe.docs_tables()), blocks
    assert describe.sync_docs(text) == text, (
        "docs/conformance.md's tables differ from the objectives' records; regenerate them with\n"
        "    python -m refscore.conformance.describe docs/conformance.md")


def test_the_docs_tables_have_a_row_per_objective_and_per_fault():
    tables = describe.docs_tables()
    rows = [line for name in ("score", "diffusion") for line in tables[name].splitlines()[2:]]
    assert [r.split(" | ")[0] for r in rows] == [f"| `{o}`" for o in conformance.OBJECTIVES]
    known = [f for o in conformance.OBJECTIVES for f in conformance.faults_for(o)]
    assert len(tables["faults"].splitlines()) == 2 + sum(not f.convention for f in known)
    assert len(tables["conventions"].splitlines()) == 2 + sum(f.convention for f in known)


def test_export_readme_describes_every_objective_from_its_record(tmp_path):
    conformance.export(tmp_path)
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    for name, o in REGISTRY.items():
        line = next((ln for ln in text.splitlines() if ln.startswith(f"- `{name}`:")), None)
        assert line is not None and o.text in line, name
        assert all(c in line for c in o.columns), name
    assert "rtol = 1e-10, atol = 1e-12" in text and "row-major" in text


def test_every_record_is_complete_and_has_its_independent_implementation():
    assert set(T_IMPL) | set(T_DIFF) == set(conformance.OBJECTIVES), "an objective without its test"
    for name, o in REGISTRY.items():
        assert o.text and o.equation and o.source, name
        assert len(o.faults) >= 2 and all(isinstance(f, Fault) and f.explanation for f in o.faults), name
        cases = conformance.cases(name)
        assert len(cases) == len(o.cases) >= 1 and all(c["name"].startswith(name) for c in cases)
        assert all(("expected_x" in c) == o.is_map for c in cases), name
        assert all(c["expected"].shape[1:] == ((len(o.columns),) if o.columns else ()) for c in cases), name


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_fault_is_visible_on_some_case(name):
    """A fault that equals the reference on every case could never be named."""
    for fault in REGISTRY[name].faults:
        differs = []
        for c in conformance.cases(name):
            v = np.asarray(fault.value(c), dtype=float)
            ref = c["expected_x"] if REGISTRY[name].is_map else c["expected"]
            differs.append(v.size != ref.size or not np.allclose(v.reshape(ref.shape), ref, rtol=1e-8, atol=1e-8))
        assert any(differs), f"{name}: fault {fault.name!r} equals the reference on every case"


def _record(name, fault_names, cases=(case(""),)):
    return Objective(name=name, fields="", text="t", equation="e", source="s", inputs=lambda *a: {},
                     reference=lambda c: np.zeros(1), cases=cases,
                     faults=tuple(Fault(f, "x", lambda c: c["expected"]) for f in fault_names))


@pytest.mark.parametrize("records,words", [
    ((_record("a", ["f"]), _record("a", ["g"])), "objective names must be unique, got 'a' twice"),
    ((_record("a", ["f", "f"]),), "objective 'a': fault names must be unique, got ['f'] twice"),
    ((_record("a", ["f"], cases=()),), "objective 'a' needs at least one case, got none")])
def test_the_registry_refuses_an_ambiguous_record(records, words):
    with pytest.raises(ValueError) as info:
        registry.collect([types.SimpleNamespace(RECORDS=records)])
    assert words in str(info.value)


def test_an_unknown_objective_names_the_known_ones():
    for call in (conformance.cases, conformance.faults_for, registry.get):
        with pytest.raises(ValueError, match="objective must be one of .*'esm'"):
            call("no_such_objective")
