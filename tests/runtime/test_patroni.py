"""Failover and switchover on a real Patroni cluster, under load, through HAProxy and a libpq host list.

The four faults of tests/ha.py, one after another on one cluster with Patroni's
``synchronous_mode`` on: a switchover, the leader's postmaster killed, the leader's
link cut, etcd's quorum lost. What a user would see is asserted: no acknowledged
write lost or stored twice, every error raised to a caller one that says its outcome
is unknown (the connection broke during COMMIT), reads through the replicas never
failing, and writes going on once the cluster has got over the fault.
"""

from __future__ import annotations

import pytest

from tests import ha
from tests.cluster import Cluster, patroni_cluster, unavailable_reason
from tests.conftest import server_binaries

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

UNKNOWN = "TransactionOutcomeUnknownError: the connection broke during COMMIT"


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with patroni_cluster(server_binaries(), synchronous=True) as made:
        yield made


def faulted(cluster: Cluster, name: str) -> tuple[dict[str, ha.Outcome], str]:
    """Run one scenario under load; return each route's outcome and what the fault did to the cluster."""
    leader = cluster.leader()
    assert leader is not None
    postmaster = leader.postmaster_pid()
    outcomes = ha.under_load(cluster, ha.scenario(cluster, name))
    now = cluster.leader()
    assert now is not None
    if now is not leader:
        return outcomes, f"leader {leader.name} -> {now.name}"
    return outcomes, "postmaster restarted" if now.postmaster_pid() != postmaster else "leader kept"


@pytest.mark.timeout(900)  # four faults, each waited out (bounded in tests/ha.py), on a busy machine too
def test_no_acknowledged_write_is_lost_through_switchover_crash_link_loss_and_etcd_quorum_loss(cluster):
    seen = {}
    for name in ha.SCENARIOS:  # the link cut last: nothing waits for its old leader to rejoin
        outcomes, change = faulted(cluster, name)
        seen[name] = change
        for route, outcome in outcomes.items():
            where = f"{name}, {route}: {outcome.summary()}"
            assert outcome.lost == 0 and outcome.duplicated == 0, where
            assert [error for error in outcome.errors if not error.startswith(UNKNOWN)] == [], where
            assert outcome.read_errors == [], where
            assert outcome.first_commit is not None, where  # writes begun after the fault committed
    assert seen == {
        "switchover": seen["switchover"],
        "kill the leader's postmaster": "postmaster restarted",  # Patroni started it again, as leader
        "the leader's link down": seen["the leader's link down"],
        "etcd loses quorum": "leader kept",  # failsafe mode: the leader reaches every member, so it stays
    }
    assert seen["switchover"].startswith("leader") and seen["the leader's link down"].startswith("leader")
