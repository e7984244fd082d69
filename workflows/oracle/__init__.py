"""The oracle job: compute structures with a named oracle (spec kind ``oracle_batch``).

Modules in import order: ``spec`` -> ``tasks`` -> ``builders`` -> ``report``.
"""
