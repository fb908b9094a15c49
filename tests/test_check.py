"""The identity registry of ``refscore check``, run through the same code as the command line."""
import math

import pytest

from refscore.apps import check

N = 4000  # per identity; tolerances are k standard errors computed from this n


@pytest.fixture(scope="module")
def ctx():
    return check.CheckContext("numpy", seed=0, n=N)


@pytest.mark.parametrize("identity", check.IDENTITIES, ids=lambda i: i.name)
def test_identity_holds(identity, ctx):
    value, ref, err, se, tol, passed = identity.evaluate(ctx)
    assert math.isfinite(value) and math.isfinite(se)
    # Monte-Carlo entries must measure a spread (a zero SE would make k·SE a zero tolerance)
    assert (se > 0) == (identity.floor == 0.0), (identity.name, se)
    assert passed, f"{identity.name}: |{value} - {ref}| = {err} > {tol} (SE {se})"


def test_registry_names_are_unique_and_sourced():
    names = [i.name for i in check.IDENTITIES]
    assert len(set(names)) == len(names)
    assert all(i.source for i in check.IDENTITIES)


def test_rule_catches_a_planted_error(ctx):
    # the ESM-ISM gap with the ½ dropped (the notes' "≈"): off by ½ tr S⁻¹ ≫ 5 SE, so it must fail
    esm_ism = next(i for i in check.IDENTITIES if i.name.startswith("ESM - ISM"))

    def without_half(c):
        value, ref, se = esm_ism.compute(c)
        return value, 2 * ref, se

    planted = check.Identity("planted", "test", without_half)
    assert not planted.evaluate(ctx)[-1]


def test_identities_do_not_depend_on_order():
    a = check.CheckContext("numpy", seed=3, n=500)
    b = check.CheckContext("numpy", seed=3, n=500)
    ssm = check.IDENTITIES[3]
    first = ssm.evaluate(a)
    for identity in check.IDENTITIES[:3]:
        identity.evaluate(b)
    assert ssm.evaluate(b) == first
