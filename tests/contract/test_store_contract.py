"""The Store contract: every backend must pass this suite (see conftest.BACKENDS)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from replaybook.errors import NotFound, SeqConflict, StaleLease, StoreError
from replaybook.store.base import Job, Lessee, NewEvent, NewJob, Store
from replaybook.version import LOGIC_VERSION

if TYPE_CHECKING:
    from conftest import FakeClock, StoreFactory

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def ev(type: str = "step.started", step: str | None = "a", **data: object) -> NewEvent:
    return NewEvent(type=type, step=step, visit=1, attempt=1, data=data)


def job(step: str = "a", delay_ms: int = 0, pool: str | None = None, **payload: object) -> NewJob:
    return NewJob(step=step, visit=1, attempt=1, delay_ms=delay_ms, pool=pool, payload=payload)


def started(store: Store, execution_id: str = "ex1", path: str = "flows/a.yaml") -> str:
    store.create_execution(execution_id, path, 1)
    return execution_id


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Start `count` threads at once (barrier) and re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def all_jobs(store: Store) -> list[Job]:
    return store.lease_jobs("inspector", 1000, 60)


# -- executions and events ---------------------------------------------------------


def test_create_execution_starts_running_at_seq_zero(store: Store) -> None:
    store.create_execution("ex1", "flows/a.yaml", 3, parent_id="p", parent_step="call")
    info = store.get_execution("ex1")
    assert info is not None
    assert (info.id, info.playbook_path, info.playbook_version) == ("ex1", "flows/a.yaml", 3)
    assert (info.status, info.last_seq, info.parent_id, info.parent_step) == (
        "running",
        0,
        "p",
        "call",
    )
    assert ISO_UTC.match(info.created_at) and info.updated_at == info.created_at
    assert store.get_execution("nope") is None


def test_create_execution_twice_is_an_error(store: Store) -> None:
    started(store)
    with pytest.raises(StoreError):
        store.create_execution("ex1", "flows/other.yaml", 1)
    info = store.get_execution("ex1")
    assert info is not None and info.playbook_path == "flows/a.yaml"


def test_append_assigns_gap_free_seqs_in_order(store: Store) -> None:
    ex = started(store)
    first = store.append(ex, 0, [ev("a"), ev("b")])
    second = store.append(ex, 2, [ev("c")])
    third = store.append(ex, 3, [ev("d"), ev("e"), ev("f")])
    assert [e.seq for e in first + second + third] == [1, 2, 3, 4, 5, 6]
    events = store.read_events(ex)
    assert [(e.seq, e.type) for e in events] == list(enumerate("abcdef", start=1))
    assert [e.id for e in events] == [e.id for e in first + second + third]
    info = store.get_execution(ex)
    assert info is not None and info.last_seq == 6


def test_appended_events_carry_id_time_and_logic_version(store: Store, clock: FakeClock) -> None:
    ex = started(store)
    clock.advance(1.25)
    new = NewEvent("step.completed", step="s", visit=2, index=4, attempt=3, data={"x": 1})
    (written,) = store.append(ex, 0, [new])
    (stored,) = store.read_events(ex)
    assert stored == written
    assert re.fullmatch(r"[0-9a-f]{32}", stored.id)
    assert stored.at == "2023-11-14T22:13:21.250000Z"
    assert (stored.step, stored.visit, stored.index, stored.attempt) == ("s", 2, 4, 3)
    assert stored.logic_version == LOGIC_VERSION
    assert stored.execution_id == ex
    info = store.get_execution(ex)
    assert info is not None and info.updated_at == stored.at


def test_read_events_after_seq_and_limit(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev(str(n)) for n in range(1, 8)])
    assert [e.seq for e in store.read_events(ex, after_seq=3)] == [4, 5, 6, 7]
    assert [e.seq for e in store.read_events(ex, after_seq=2, limit=2)] == [3, 4]
    assert store.read_events("unknown") == []


def test_seq_conflict_writes_nothing(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    for stale in (0, 2):
        with pytest.raises(SeqConflict):
            store.append(ex, stale, [ev("b")], [job("b")], status="failed")
    assert [e.type for e in store.read_events(ex)] == ["a"]
    info = store.get_execution(ex)
    assert info is not None and (info.last_seq, info.status) == (1, "running")
    assert [j.step for j in all_jobs(store)] == ["a"]


def test_append_to_unknown_execution_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.append("nope", 0, [ev()])


def test_append_sets_status(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()])
    store.append(ex, 1, [ev("execution.completed")], status="completed")
    info = store.get_execution(ex)
    assert info is not None and (info.status, info.last_seq) == ("completed", 2)


@pytest.mark.parametrize("sharing", ["one store", "store per thread"])
def test_concurrent_writers_produce_gap_free_log(store_factory: StoreFactory, sharing: str) -> None:
    writers, per_writer = 8, 25
    first = store_factory()
    ex = started(first)
    stores = (
        [first] * writers if sharing == "one store" else [store_factory() for _ in range(writers)]
    )

    def write(n: int) -> None:
        store = stores[n]
        for i in range(per_writer):
            while True:
                info = store.get_execution(ex)
                assert info is not None
                try:
                    store.append(ex, info.last_seq, [ev("w", writer=n, i=i)])
                    break
                except SeqConflict:
                    continue

    run_threads(writers, write)
    events = first.read_events(ex)
    assert [e.seq for e in events] == list(range(1, writers * per_writer + 1))
    for n in range(writers):
        mine = [e.data["i"] for e in events if e.data["writer"] == n]
        assert mine == list(range(per_writer))


# -- atomicity of append with jobs and completion ------------------------------------


def test_append_enqueues_jobs_and_completes_in_one_step(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    (leased,) = store.lease_jobs("w1", 10, 30)
    store.append(ex, 1, [ev("b"), ev("c")], [job("b"), job("c")], complete=leased)
    assert sorted(j.step for j in all_jobs(store)) == ["b", "c"]
    assert store.heartbeat(leased, 30) is False


def test_stale_lease_in_append_writes_no_events_and_no_jobs(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    (leased,) = store.lease_jobs("w1", 10, 30)
    forged = Job(**{**leased.__dict__, "lease_token": "not-the-token"})
    with pytest.raises(StaleLease):
        store.append(ex, 1, [ev("b")], [job("b")], complete=forged, status="failed")
    assert [e.type for e in store.read_events(ex)] == ["a"]
    info = store.get_execution(ex)
    assert info is not None and (info.last_seq, info.status) == (1, "running")
    assert store.lease_jobs("w2", 10, 30) == []  # no job "b", and "a" still leased
    assert store.heartbeat(leased, 30) is True  # the real lease is untouched


def test_completion_of_another_executions_job_is_stale(store: Store) -> None:
    ex1, ex2 = started(store, "ex1"), started(store, "ex2")
    store.append(ex1, 0, [ev()], [job()])
    (leased,) = store.lease_jobs("w", 1, 30)
    with pytest.raises(StaleLease):
        store.append(ex2, 0, [ev()], complete=leased)
    assert store.read_events(ex2) == []


def test_duplicate_completion_is_rejected(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    (leased,) = store.lease_jobs("w1", 10, 30)
    store.append(ex, 1, [ev("done")], complete=leased)
    with pytest.raises(StaleLease):
        store.append(ex, 2, [ev("done again")], complete=leased)
    assert [e.type for e in store.read_events(ex)] == ["a", "done"]


def test_one_append_completes_several_jobs(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a"), job("b"), job("c")])
    leased = store.lease_jobs("w1", 10, 30)
    assert len(leased) == 3
    store.append(ex, 1, [ev("a done"), ev("b done")], [job("d")], complete=leased[:2])
    assert [e.type for e in store.read_events(ex)] == ["a", "a done", "b done"]
    assert [store.heartbeat(j, 30) for j in leased] == [False, False, True]
    assert [j.step for j in all_jobs(store)] == ["d"]  # "c" is still leased


def test_one_stale_job_among_several_fails_the_whole_append(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a"), job("b")])
    first, second = store.lease_jobs("w1", 10, 30)
    forged = Job(**{**second.__dict__, "lease_token": "not-the-token"})
    with pytest.raises(StaleLease, match=f"job {second.id} "):
        store.append(ex, 1, [ev("both done")], [job("c")], complete=[first, forged])
    assert [e.type for e in store.read_events(ex)] == ["a"]
    assert store.heartbeat(first, 30) is True  # the good one is still leased
    assert all_jobs(store) == []  # no job "c"


def test_append_and_lease_takes_the_jobs_it_enqueues_in_the_same_transaction(
    store: Store,
) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    (a,) = store.lease_jobs("w1", 10, 30)
    me = Lessee("w1", 30)
    written, leased = store.append_and_lease(
        ex, 1, [ev("a done")], [job("b"), job("c")], complete=a, lessee=me, limit=1
    )
    assert [e.seq for e in written] == [2]
    (b,) = leased
    assert (b.step, b.worker_id, b.leases) == ("b", "w1", 1)
    assert store.heartbeat(b, 30) is True  # really leased, with the token returned
    assert [j.step for j in all_jobs(store)] == ["c"]  # the rest stays queued


def test_append_and_lease_respects_pools_delays_and_a_stale_fence(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev("a")], [job("a")])
    (a,) = store.lease_jobs("w1", 10, 30)
    gpu_only = Lessee("w1", 30, ("gpu",))
    _, leased = store.append_and_lease(
        ex, 1, [ev()], [job("cpu"), job("later", delay_ms=60_000)], lessee=gpu_only, limit=2
    )
    assert leased == []  # not its pool; not due yet
    forged = Job(**{**a.__dict__, "lease_token": "not-the-token"})
    with pytest.raises(StaleLease):
        store.append_and_lease(
            ex, 2, [ev()], [job("x")], complete=forged, lessee=Lessee("w1", 30), limit=5
        )
    assert store.heartbeat(a, 30) is True
    assert [j.step for j in all_jobs(store)] == ["cpu"]  # "x" was never written


def test_cancel_jobs_removes_queued_and_leased_jobs(store: Store) -> None:
    ex, other = started(store, "ex1"), started(store, "ex2")
    store.append(ex, 0, [ev()], [job("a"), job("b")])
    store.append(other, 0, [ev()], [job("z")])
    leased = store.lease_jobs("w1", 1, 30)[0]
    assert leased.step == "a"
    store.append(ex, 1, [ev("cancelled")], cancel_jobs=True, status="cancelled")
    assert store.heartbeat(leased, 30) is False
    with pytest.raises(StaleLease):
        store.append(ex, 2, [ev("late")], complete=leased)
    assert [j.step for j in all_jobs(store)] == ["z"]
    info = store.get_execution(ex)
    assert info is not None and info.status == "cancelled"


def test_cancel_jobs_keeps_jobs_enqueued_by_the_same_append(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("old")])
    store.append(ex, 1, [ev()], [job("cleanup")], cancel_jobs=True)
    assert [j.step for j in all_jobs(store)] == ["cleanup"]


# -- queue -----------------------------------------------------------------------


def test_lease_returns_job_fields_oldest_first(store: Store, clock: FakeClock) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("first", pool="p", n=1)])
    clock.advance(1)
    store.append(ex, 1, [ev()], [NewJob("second", visit=2, attempt=3, index=7)])
    first, second = store.lease_jobs("worker-1", 10, 30)
    assert (first.step, first.pool, dict(first.payload)) == ("first", "p", {"n": 1})
    assert (first.execution_id, first.worker_id, first.leases) == (ex, "worker-1", 1)
    assert (second.step, second.visit, second.attempt, second.index) == ("second", 2, 3, 7)
    assert (second.pool, dict(second.payload)) == (None, {})
    assert first.lease_token and second.lease_token and first.lease_token != second.lease_token
    assert first.id != second.id


def test_lease_respects_limit(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job(str(n)) for n in range(5)])
    assert [j.step for j in store.lease_jobs("w", 2, 30)] == ["0", "1"]
    assert [j.step for j in store.lease_jobs("w", 10, 30)] == ["2", "3", "4"]
    assert store.lease_jobs("w", 10, 30) == []


@pytest.mark.parametrize("sharing", ["one store", "store per thread"])
def test_each_job_is_leased_by_exactly_one_leaser(
    store_factory: StoreFactory, sharing: str
) -> None:
    leasers, total = 8, 200
    first = store_factory()
    ex = started(first)
    first.append(ex, 0, [ev()], [job(str(n)) for n in range(total)])
    stores = (
        [first] * leasers if sharing == "one store" else [store_factory() for _ in range(leasers)]
    )
    got: list[list[Job]] = [[] for _ in range(leasers)]

    def lease(n: int) -> None:
        while batch := stores[n].lease_jobs(f"w{n}", 3, 60):
            got[n].extend(batch)

    run_threads(leasers, lease)
    ids = [j.id for jobs in got for j in jobs]
    assert len(ids) == total and len(set(ids)) == total


def test_delayed_job_is_not_leasable_before_its_time(store: Store, clock: FakeClock) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("later", delay_ms=5000)])
    assert store.lease_jobs("w", 10, 30) == []
    assert store.seconds_until_next_job() == pytest.approx(5.0)
    clock.advance(4.999)
    assert store.lease_jobs("w", 10, 30) == []
    clock.advance(0.001)
    assert store.seconds_until_next_job() == 0.0
    assert [j.step for j in store.lease_jobs("w", 10, 30)] == ["later"]


def test_expired_lease_is_leasable_again_and_the_old_token_is_stale(
    store: Store, clock: FakeClock
) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job()])
    (old,) = store.lease_jobs("w1", 1, 10)
    assert store.lease_jobs("w2", 1, 10) == []
    assert store.seconds_until_next_job() == pytest.approx(10.0)
    clock.advance(10)
    (new,) = store.lease_jobs("w2", 1, 10)
    assert new.id == old.id and new.lease_token != old.lease_token
    assert (new.worker_id, new.leases) == ("w2", 2)
    assert store.heartbeat(old, 10) is False
    with pytest.raises(StaleLease):
        store.append(ex, 1, [ev("late")], complete=old)
    store.append(ex, 1, [ev("done")], complete=new)
    assert [e.type for e in store.read_events(ex)] == ["step.started", "done"]


def test_heartbeat_extends_the_lease(store: Store, clock: FakeClock) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job()])
    (leased,) = store.lease_jobs("w1", 1, 10)
    clock.advance(8)
    assert store.heartbeat(leased, 10) is True
    clock.advance(8)  # 16 s after the lease, 8 s after the heartbeat
    assert store.lease_jobs("w2", 1, 10) == []
    clock.advance(2)
    assert [j.id for j in store.lease_jobs("w2", 1, 10)] == [leased.id]


def test_release_gives_the_job_back_at_once(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("a"), job("b")])
    a, b = store.lease_jobs("w1", 2, 60)
    store.release(a)
    assert store.heartbeat(a, 60) is False
    (again,) = store.lease_jobs("w2", 5, 60)
    assert (again.id, again.leases) == (a.id, 2) and again.lease_token != a.lease_token
    store.release(a)  # stale token: no effect
    assert store.lease_jobs("w3", 5, 60) == []
    assert store.heartbeat(b, 60) is True


def test_pools_filter(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("gpu", pool="gpu"), job("plain"), job("io", pool="io")])
    assert store.lease_jobs("w", 10, 30, pools=[]) == []
    assert [j.step for j in store.lease_jobs("w", 10, 30, pools=["gpu"])] == ["gpu"]
    assert [j.step for j in store.lease_jobs("w", 10, 30, pools=[None])] == ["plain"]
    assert [j.step for j in store.lease_jobs("w", 10, 30, pools=["gpu", "io"])] == ["io"]


def test_pools_none_leases_from_every_pool(store: Store) -> None:
    ex = started(store)
    store.append(ex, 0, [ev()], [job("gpu", pool="gpu"), job("plain")])
    assert sorted(j.step for j in store.lease_jobs("w", 10, 30)) == ["gpu", "plain"]


def test_seconds_until_next_job(store: Store, clock: FakeClock) -> None:
    assert store.seconds_until_next_job() is None
    ex = started(store)
    store.append(ex, 0, [ev()], [job("io", pool="io", delay_ms=3000), job("x", delay_ms=7000)])
    assert store.seconds_until_next_job() == pytest.approx(3.0)
    assert store.seconds_until_next_job(pools=[None]) == pytest.approx(7.0)
    assert store.seconds_until_next_job(pools=["io"]) == pytest.approx(3.0)
    assert store.seconds_until_next_job(pools=["gpu"]) is None
    clock.advance(3)
    assert store.seconds_until_next_job() == 0.0
    (leased,) = store.lease_jobs("w", 10, 20)
    assert store.seconds_until_next_job(pools=["io"]) == pytest.approx(20.0)
    store.append(ex, 1, [ev()], complete=leased)
    assert store.seconds_until_next_job(pools=["io"]) is None


# -- data fidelity ---------------------------------------------------------------


def test_key_order_big_ints_and_unicode_survive(store: Store) -> None:
    ex = started(store)
    data = {
        "zeta": 1,
        "alpha": {"y": [3, 2, 1], "b": None, "a": 9007199254740993},
        "mid": "ünïcødé ✓ 中文",
        "neg": -(2**70),
        "float": 0.1,
        "flag": True,
    }
    store.append(ex, 0, [NewEvent("t", data=data)], [NewJob("s", 1, 1, payload=data)])
    (stored,) = store.read_events(ex)
    assert stored.data == data
    assert list(stored.data) == ["zeta", "alpha", "mid", "neg", "float", "flag"]
    assert list(stored.data["alpha"]) == ["y", "b", "a"]
    assert stored.data["alpha"]["a"] == 9007199254740993
    assert type(stored.data["alpha"]["a"]) is int and type(stored.data["flag"]) is bool
    (leased,) = store.lease_jobs("w", 1, 30)
    assert leased.payload == data and list(leased.payload) == list(data)


def test_non_json_event_data_is_refused_and_nothing_written(store: Store) -> None:
    ex = started(store)
    with pytest.raises(StoreError):
        store.append(ex, 0, [NewEvent("t", data={"x": object()})])
    with pytest.raises(StoreError):
        store.append(ex, 0, [NewEvent("t", data={"x": float("nan")})])
    assert store.read_events(ex) == []


# -- listing -------------------------------------------------------------------------


def test_list_executions_filters_and_pages_newest_first(store: Store, clock: FakeClock) -> None:
    for n in range(6):
        path = "flows/a.yaml" if n % 2 == 0 else "flows/b.yaml"
        store.create_execution(f"ex{n}", path, 1, parent_id="ex0" if n in (4, 5) else None)
        clock.advance(1)
    store.append("ex2", 0, [ev()], status="completed")
    store.append("ex3", 0, [ev()], status="completed")

    def ids(**filters: object) -> list[str]:
        return [e.id for e in store.list_executions(**filters)]  # type: ignore[arg-type]

    assert ids() == ["ex5", "ex4", "ex3", "ex2", "ex1", "ex0"]
    assert ids(limit=2) == ["ex5", "ex4"]
    assert ids(limit=2, offset=2) == ["ex3", "ex2"]
    assert ids(offset=5) == ["ex0"]
    assert ids(status="completed") == ["ex3", "ex2"]
    assert ids(status="running", playbook_path="flows/a.yaml") == ["ex4", "ex0"]
    assert ids(parent_id="ex0") == ["ex5", "ex4"]
    assert ids(parent_id="ex0", playbook_path="flows/b.yaml") == ["ex5"]
    assert ids(status="failed") == []


def test_list_executions_same_timestamp_keeps_creation_order(store: Store) -> None:
    for n in range(3):
        store.create_execution(f"ex{n}", "f.yaml", 1)  # the fake clock does not move
    assert [e.id for e in store.list_executions()] == ["ex2", "ex1", "ex0"]


# -- catalog ---------------------------------------------------------------------


def test_catalog_versions_by_content(store: Store, clock: FakeClock) -> None:
    v1, new1 = store.register_playbook("flows/a.yaml", "a", "steps: [one]")
    assert new1 and v1.version == 1 and len(v1.content_hash) == 64
    clock.advance(1)
    same, new_same = store.register_playbook("flows/a.yaml", "a", "steps: [one]")
    assert not new_same and same == v1
    v2, new2 = store.register_playbook("flows/a.yaml", "a", "steps: [one, two]")
    assert new2 and v2.version == 2 and v2.registered_at != v1.registered_at
    back, new_back = store.register_playbook("flows/a.yaml", "a", "steps: [one]")
    assert new_back and back.version == 3 and back.content_hash == v1.content_hash
    assert store.get_playbook("flows/a.yaml") == back
    assert store.get_playbook("flows/a.yaml", 2) == v2
    assert store.get_playbook("flows/a.yaml", 9) is None
    assert store.get_playbook("flows/none.yaml") is None
    assert [e.version for e in store.playbook_versions("flows/a.yaml")] == [1, 2, 3]
    assert store.playbook_versions("flows/none.yaml") == []


def test_list_playbooks_gives_the_latest_of_each_path_sorted(store: Store) -> None:
    store.register_playbook("z.yaml", "z", "1")
    store.register_playbook("a.yaml", "a", "1")
    store.register_playbook("a.yaml", "a", "2")
    store.register_playbook("m.yaml", "m", "1")
    listed = [(e.path, e.version, e.content) for e in store.list_playbooks()]
    assert listed == [("a.yaml", 2, "2"), ("m.yaml", 1, "1"), ("z.yaml", 1, "1")]


# -- several connections -----------------------------------------------------------


def test_a_second_store_instance_sees_the_same_data(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    ex = started(one)
    one.append(ex, 0, [ev("a", k=1)], [job("a")])
    one.register_playbook("a.yaml", "a", "x")
    assert [e.data for e in two.read_events(ex)] == [{"k": 1}]
    info = two.get_execution(ex)
    assert info is not None and info.last_seq == 1
    (leased,) = two.lease_jobs("w2", 5, 30)
    assert one.lease_jobs("w1", 5, 30) == []
    with pytest.raises(SeqConflict):
        one.append(ex, 0, [ev()])
    one.append(ex, 1, [ev("b")], complete=leased)
    assert [e.type for e in two.read_events(ex)] == ["a", "b"]
    entry = two.get_playbook("a.yaml")
    assert entry is not None and entry.content == "x"


def test_closed_store_raises_store_error(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.close()
    with pytest.raises(StoreError):
        store.get_execution("x")


def test_credentials_put_get_list_delete(store: Store, clock: FakeClock) -> None:
    assert store.get_credential("pg") is None
    assert store.list_credentials() == []
    store.put_credential("pg", "postgres", b"\x00cipher\xff")
    got = store.get_credential("pg")
    assert got is not None
    assert (got.name, got.type, got.data) == ("pg", "postgres", b"\x00cipher\xff")
    assert got.created_at == got.updated_at
    clock.advance(5)
    store.put_credential("pg", "generic", b"other")
    store.put_credential("api", "http_bearer", b"x")
    again = store.get_credential("pg")
    assert again is not None
    assert (again.type, again.data) == ("generic", b"other")
    assert again.created_at == got.created_at and again.updated_at > got.updated_at
    assert [c.name for c in store.list_credentials()] == ["api", "pg"]
    assert store.delete_credential("pg") is True
    assert store.delete_credential("pg") is False
    assert [c.name for c in store.list_credentials()] == ["api"]


# -- retention -----------------------------------------------------------------------


def _finished(store: Store, execution_id: str, status: str, parent: str | None = None) -> str:
    store.create_execution(execution_id, "flows/a.yaml", 1, parent_id=parent)
    store.append(execution_id, 0, [ev("execution.started")], [job()])
    store.append(execution_id, 1, [ev("execution.finished")], status=status)
    return execution_id


def _iso_at(clock: FakeClock, offset: float = 0.0) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(clock() + offset, UTC).isoformat()


def test_prune_deletes_old_finished_trees_with_events_jobs_and_children(
    store: Store, clock: FakeClock
) -> None:
    old = _finished(store, "old", "completed")
    _finished(store, "old_child", "completed", parent=old)
    _finished(store, "old_grandchild", "failed", parent="old_child")
    _finished(store, "old_failed", "failed")
    _finished(store, "old_cancelled", "cancelled")
    busy = started(store, "old_running")
    _finished(store, "done_child_of_running", "completed", parent=busy)
    _finished(store, "root_with_running_child", "completed")
    store.create_execution("running_child", "flows/a.yaml", 1, parent_id="root_with_running_child")
    clock.advance(3600)
    cutoff = _iso_at(clock)
    clock.advance(1)
    _finished(store, "recent", "completed")

    assert store.prune_executions(cutoff, ["completed"], dry_run=True) == [
        "old",
        "old_child",
        "old_grandchild",
    ]
    assert store.get_execution("old") is not None  # a dry run deletes nothing

    pruned = store.prune_executions(cutoff, ["completed"])
    assert pruned == ["old", "old_child", "old_grandchild"]
    for gone in pruned:
        assert store.get_execution(gone) is None
        assert store.read_events(gone) == []
    leased = {j.execution_id for j in all_jobs(store)}
    assert not leased & set(pruned)  # their jobs went too
    assert {"recent", "old_failed", "old_cancelled", "done_child_of_running"} <= leased
    for kept in ("old_failed", "old_running", "root_with_running_child", "recent"):
        assert store.get_execution(kept) is not None
    assert store.list_executions(parent_id="root_with_running_child") != []

    assert store.prune_executions(cutoff, ["failed", "cancelled"]) == [
        "old_cancelled",
        "old_failed",
    ]
    assert store.prune_executions(cutoff, ["completed", "failed", "cancelled"]) == []


def test_prune_refuses_running_and_unknown_statuses(store: Store, clock: FakeClock) -> None:
    started(store)
    for statuses in (["running"], ["completed", "running"], ["done"], []):
        with pytest.raises(ValueError, match="cannot prune"):
            store.prune_executions(_iso_at(clock, 10), statuses)
    assert store.get_execution("ex1") is not None
