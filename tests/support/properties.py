"""How hard the hypothesis property tests look: two profiles (README "Tests").

``schulhof`` (the default, ``make test``) runs a quarter of the examples;
``thorough`` (``HYPOTHESIS_PROFILE=thorough``, ``make properties``, ``make fuzz``)
runs them all.  A test that wants its own number says how many it wants in the
thorough run, ``@settings(max_examples=examples(600))``, and gets its share of
whichever profile is loaded.

Property tests check behaviour, not speed: on a shared 2-core machine one example can
take longer than hypothesis' 200 ms default deadline, so neither profile has one.  A
test that sets its own deadline keeps it; benchmarks measure speed (tests/bench).
"""

from __future__ import annotations

import math
import os

from hypothesis import settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
DEFAULT = "schulhof"
THOROUGH = "thorough"
# Examples of a test without its own number: hypothesis' own default in the
# thorough run, a quarter of it by default.
THOROUGH_EXAMPLES = 100
DEFAULT_EXAMPLES = 25


def load() -> None:
    """Register both profiles and load the one ``HYPOTHESIS_PROFILE`` names."""
    settings.register_profile(DEFAULT, deadline=None, max_examples=DEFAULT_EXAMPLES)
    settings.register_profile(THOROUGH, deadline=None, max_examples=THOROUGH_EXAMPLES)
    settings.load_profile(os.environ.get(PROFILE_VARIABLE) or DEFAULT)


def examples(thorough: int) -> int:
    """``max_examples`` for a test that runs ``thorough`` examples in the thorough run:
    the loaded profile's share of it (read when the test module is imported, after
    the profile is loaded; ``pytest --hypothesis-profile`` works too), at least one."""
    share = settings.default.max_examples / THOROUGH_EXAMPLES
    return max(1, math.ceil(thorough * share))
