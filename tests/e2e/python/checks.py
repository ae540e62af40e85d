"""What every peer script shares: checks that say what was expected and what came, and the
one JSON line a script ends its stdout with for the Rust test to read."""

import json


def check(cond, what, got=None):
    if not cond:
        raise AssertionError(f"{what}; got: {got!r}")


def expect_equal(got, want, what):
    check(got == want, f"{what}: expected {want!r}", got)


def report(summary):
    """The script's result: one JSON line, the last on stdout."""
    print(json.dumps(summary, sort_keys=True), flush=True)
