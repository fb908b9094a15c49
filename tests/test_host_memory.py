"""Issue 36: refscore.host_memory.keep_freed_memory keeps a step's freed feature maps with the process,
so the next step's arrays of the same sizes fault in no fresh pages (checked in a subprocess: the
setting is process-wide)."""
import subprocess
import sys
import textwrap

import pytest

from refscore.host_memory import keep_freed_memory

SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from refscore.host_memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    def step():  # a training step's pattern: several maps of a few MB made, touched and freed
        maps = [np.ones(n) for n in (400_000, 900_000, 1_500_000, 700_000)]
        return sum(float(m[-1]) for m in maps)
    step(); step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
""")


def _faults_per_step(mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_kept_memory_means_no_fresh_pages_on_later_steps():
    applied, kept = _faults_per_step("keep")
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc): keep_freed_memory changes nothing here")
    # the four maps span 3.5 M doubles = 6,800 pages of 4 KiB; kept, a step faults in almost none
    assert kept < 100, kept


def test_bad_max_free_is_refused():
    for bad in (-1, 1.5, True, "1GB"):
        with pytest.raises(ValueError, match="max_free must be an integer number of bytes"):
            keep_freed_memory(bad)
