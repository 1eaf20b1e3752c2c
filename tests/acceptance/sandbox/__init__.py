"""The fixer's sandbox, attacked: each attacking fixer (``tests/fixers/attacks``)
against the container runtime on the real Docker engine and against the
process runtime; execute-fix through real workers in containers; the sweeper.
"""
