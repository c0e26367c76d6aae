"""``make bench``: the hello-world benchmark table of Edge against its anchors.

Run with ``python -m bench`` (see :mod:`bench.__main__`). Nothing here is a
test: it measures and prints, it never asserts timings.
"""
