"""Broken labs: each exercise really breaks its packet, and its fix really mends it."""

from __future__ import annotations

import subprocess

import pytest

from labkit import Lab, exercises
from labkit.errors import ConfigError


@pytest.mark.sandbox
@pytest.mark.parametrize("name", sorted(exercises.FAULTS))
def test_an_exercise_breaks_one_thing_and_its_fix_mends_it(name):
    ex = exercises.start(name)
    fault = exercises.FAULTS[name]
    if name != "forward-drop":  # chain policies are not part of a stage's state
        assert Lab().stage() != fault.stage  # something differs from the stage now
    for _ in range(3):
        result = ex.check()
        assert not result.fixed and str(result).startswith("Not yet:")
    assert "hint:" in str(result)  # after three tries, a hint
    quiet = subprocess.DEVNULL  # a web app started in the background keeps pipes open
    subprocess.run(fault.fix, shell=True, check=True, stdout=quiet, stderr=quiet)
    assert ex.check(wait=3.0).fixed


@pytest.mark.sandbox
def test_a_random_exercise_is_repeatable_and_names_are_checked():
    assert exercises.start(seed=7).fault == exercises.start(seed=7).fault
    with pytest.raises(ConfigError, match="no exercise 'nope': the exercises are app-stopped"):
        exercises.start("nope")


def test_every_exercise_says_what_is_wrong_without_saying_why():
    for fault in exercises.FAULTS.values():
        text = str(exercises.Exercise(fault))
        assert fault.probe[1] in text
        for word in fault.breaks[0].split():
            if len(word) > 6 and word not in ("192.168.15.2", "192.168.1.2"):
                assert word not in text, (fault.name, word)
