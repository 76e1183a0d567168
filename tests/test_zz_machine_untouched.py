"""The machine's own network is the same after the suite as before it.

Named to run last among the test files; conftest's session hook checks
again after everything (notebooks included).
"""

from conftest import BEFORE, machine_network


def test_machine_network_unchanged_by_the_suite():
    after = machine_network()
    assert BEFORE, "the session-start snapshot was not taken"
    for key, before in BEFORE.items():
        assert after[key] == before, f"the machine's {key} changed during the tests"


def test_snapshot_sees_what_it_claims_to():
    snap = machine_network()
    assert '"ifname": "lo"' in snap["links"]
    assert snap["ip_forward"] in ("0", "1")
