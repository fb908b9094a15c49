r"""The applications built on the core: the lecture tour (``refscore tour``), the equivalence
table (``refscore check``), the benchmarks (``refscore bench``), the report writer, and the CLI.

The core (``refscore.energies`` → ``losses`` → ``tweedie`` → ``samplers`` → ``sde``) never
imports from here.
"""
