"""The job service, in-process: jobs outlive whoever asked, one job per run however many ask, a cancel
withdraws only the canceller's own request, fair share between owners, caps with messages, failures with
messages, nothing half-trained in the cache, and no outcome forgotten while someone waits on it. Real
MNIST (small subsets), the real engine and cache, threads as workers."""
import dataclasses
import re
import threading
import time

import pytest
import torch

from mnist_core.compare import machine_label
from mnist_core.config import RunConfig
from mnist_core.results import RunResult
from mnist_core.hosting import HostingLimits
from mnist_core.i18n import translate
from mnist_core.jobs import CLASS_CODE_NEEDED, RequestRefused, embedded_service, results_for, service_from_env
from mnist_core.train import train

TINY = dict(train_size=1000, test_size=200, batch_size=50, init="xavier_uniform")
# Long enough to still be running whenever the test looks (it is always cancelled, never waited for).
LONG = dict(train_size=10_000, test_size=100, batch_size=10, init="xavier_uniform", epochs=200)


def wait_until(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the jobs to reach the expected state"
        time.sleep(0.02)


@pytest.fixture
def make_service(mnist, cache):
    services = []

    def make(limits=None, data=mnist, **kw):
        service = embedded_service(cache, data, limits or HostingLimits(), **kw)
        services.append(service)
        return service

    yield make
    for service in services:
        service.shutdown()


def test_the_same_run_asked_twice_is_one_job_that_both_watch(make_service, cache):
    service = make_service()
    config = RunConfig(**TINY, epochs=2)
    (first,) = service.submit([config], owner="ann")
    (second,) = service.submit([config], owner="bob")
    assert second.id == first.id and second.watchers == ["ann", "bob"]
    assert [j.id for j in service.jobs(owner="bob")] == [first.id]  # bob's page finds it among his
    assert service.wait([first.id], timeout=120)
    done = service.job(first.id)
    assert done.state == "done" and done.trained and done.worker == "local"
    assert cache.get(cache.key_for(config, service.data)) is not None
    assert service.submit([config], owner="cleo") == []  # cached now: nothing to train


def test_a_cancel_withdraws_only_ones_own_request_and_the_others_get_the_run(make_service, cache):
    service = make_service()
    config = RunConfig(**{**TINY, "batch_size": 10}, epochs=4, seed=21)
    (job,) = service.submit([config], owner="ann")
    wait_until(lambda: service.job(job.id).state == "running")
    service.submit([config], owner="bob")
    assert service.cancel(job.id, "nobody") is False  # never asked: can do nothing
    assert service.cancel(job.id, "ann") is True      # ann withdraws; bob still wants it
    assert service.cancel(job.id, "ann") is False     # once is enough
    now = service.job(job.id)
    assert now.state == "running" and now.watchers == ["bob"]
    assert [j.id for j in service.jobs(owner="bob")] == [job.id] and service.jobs(owner="ann") == []
    assert service.wait([job.id], timeout=120)
    done = service.job(job.id)
    assert done.state == "done" and done.trained
    (run,) = results_for(service, [config], [done])  # what bob's page shows
    assert run is not None and not run.cached and [m.epoch for m in run.epochs] == [1, 2, 3, 4]


def test_a_job_three_asked_for_stops_when_the_last_withdraws_and_nothing_is_cached(make_service, cache):
    service = make_service()
    long = RunConfig(**LONG).replace(train_size=1000)
    configs = [long.replace(epochs=1), long]
    (job,) = service.submit(configs, owner="ann")
    assert [c.epochs for c in job.configs] == [1, 200]  # one job: epoch 1 is a snapshot of the 200-epoch run
    service.submit(configs[1:], owner="bob")
    service.submit(configs, owner="cleo")
    assert service.job(job.id).watchers == ["ann", "bob", "cleo"]
    wait_until(lambda: len(service.job(job.id).epochs) >= 2)  # the snapshot epoch is behind it
    assert service.cancel(job.id, "ann") and service.cancel(job.id, "bob")
    still = service.job(job.id)
    assert still.state == "running" and still.watchers == ["cleo"]
    assert service.cancel(job.id, "dan") is False and service.cancel(job.id, "ann") is False
    assert service.cancel(job.id, "cleo") is True
    assert service.wait([job.id], timeout=60)
    ended = service.job(job.id)
    assert ended.state == "cancelled" and ended.message is None and len(ended.epochs) < 200
    assert ended.watchers == ["cleo"]  # her page shows her job, cancelled
    assert all(cache.get(key) is None for key in job.keys)  # not the run, not its finished snapshot
    assert service.cancel(job.id, "cleo") is False  # it has ended
    assert service.job("no-such-job") is None  # e.g. after a restart: an answer, not a hang
    (again,) = service.submit(configs[:1], owner="bob")  # a new request trains afresh
    assert again.id != job.id and again.watchers == ["bob"]
    assert service.cancel(again.id, "bob")


def test_a_job_keeps_running_after_the_thread_that_submitted_it_is_gone(make_service, cache):
    service = make_service()
    submitted = []
    config = RunConfig(**TINY, epochs=2, lr=0.002)
    page = threading.Thread(target=lambda: submitted.extend(service.submit([config], owner="ann")))
    page.start()
    page.join()  # the page script has ended (a widget changed, the tab closed)
    assert service.wait([submitted[0].id], timeout=120)
    assert service.job(submitted[0].id).state == "done"
    run = cache.get(cache.key_for(config, service.data))
    assert run is not None and [m.epoch for m in run.epochs] == [1, 2] and run.machine["worker"] == "local"


@pytest.mark.parametrize("fair_share", [True, False])
def test_fair_share_starts_a_small_request_before_anothers_second_job(make_service, fair_share):
    service = make_service(fair_share=fair_share)
    (blocker,) = service.submit([RunConfig(**LONG)], owner="carl")  # holds the one slot while the line forms
    wait_until(lambda: service.job(blocker.id).state == "running")
    ann = service.submit([RunConfig(**TINY, epochs=1, lr=lr) for lr in (0.01, 0.003, 0.001)], owner="ann")
    (bob,) = service.submit([RunConfig(**TINY, epochs=1, lr=0.02)], owner="bob")
    expected = [ann[0], bob, ann[1], ann[2]] if fair_share else [ann[0], ann[1], ann[2], bob]
    assert [service.job(j.id).place for j in expected] == [1, 2, 3, 4]
    service.cancel(blocker.id, "carl")
    assert service.wait([j.id for j in expected], timeout=120)
    started = [service.job(j.id).started for j in expected]
    assert started == sorted(started) and all(service.job(j.id).state == "done" for j in expected)


def test_a_job_several_want_is_in_line_for_each_and_places_follow_every_change(make_service):
    service = make_service()
    (blocker,) = service.submit([RunConfig(**LONG)], owner="carl")  # holds the one slot while the line forms
    wait_until(lambda: service.job(blocker.id).state == "running")
    a1, a2 = service.submit([RunConfig(**TINY, epochs=1, lr=lr, seed=31) for lr in (0.01, 0.003)], owner="ann")
    (b1,) = service.submit([RunConfig(**TINY, epochs=1, lr=0.02, seed=31)], owner="bob")
    assert [service.job(j.id).place for j in (a1, b1, a2)] == [1, 2, 3]
    (c1,) = service.submit([RunConfig(**TINY, epochs=1, lr=0.003, seed=31)], owner="cleo")  # what ann asked second
    assert c1.id == a2.id  # cleo has used nothing yet and waits for it too: it moves up
    assert [service.job(j.id).place for j in (a1, a2, b1)] == [1, 2, 3]
    assert service.cancel(a1.id, "ann")
    assert [service.job(j.id).place for j in (a2, b1)] == [1, 2]  # at once: places follow every change
    for job, who in ((a2, "ann"), (a2, "cleo"), (b1, "bob"), (blocker, "carl")):
        assert service.cancel(job.id, who)


def test_per_owner_limit_and_the_seconds_cap_refuse_with_a_message(make_service):
    service = make_service(HostingLimits(hosted=True, max_queued_per_owner=2, max_request_seconds=5000))
    mine = service.submit([RunConfig(**LONG, lr=lr) for lr in (0.001, 0.002)], owner="ann")
    with pytest.raises(RequestRefused, match="at most 2 per person") as refused:
        service.submit([RunConfig(**LONG, lr=0.003)], owner="ann")
    assert "cancel one" in str(refused.value)
    (watched,) = service.submit([RunConfig(**LONG, lr=0.001)], owner="ann")  # an active job of hers: no new one
    assert watched.id == mine[0].id
    (bobs,) = service.submit([RunConfig(**LONG, lr=0.004)], owner="bob")  # others are not held to ann's count
    with pytest.raises(RequestRefused, match="at most 2 per person"):  # wanting bob's job too would make three
        service.submit([RunConfig(**LONG, lr=0.004)], owner="ann")
    assert service.job(bobs.id).watchers == ["bob"]
    with pytest.raises(RequestRefused, match="fewer epochs"):  # 12 million steps of one image: hours, over the cap
        service.submit([RunConfig(**{**LONG, "train_size": 60_000, "batch_size": 1})], owner="cleo")
    for job in mine:
        assert service.cancel(job.id, "ann")
    assert service.cancel(bobs.id, "bob")


def test_a_failing_job_is_failed_with_a_message_and_caches_nothing(make_service, mnist, cache):
    # The server's files hash differently from the worker's: the worker refuses rather than file its
    # runs under keys that describe other data.
    other = dataclasses.replace(mnist, data_id="0" * 64)
    service = make_service(data=other)
    (job,) = service.submit([RunConfig(**TINY, epochs=1)], owner="ann")
    assert service.wait([job.id], timeout=120)
    failed = service.job(job.id)
    assert failed.state == "failed" and "different MNIST files" in failed.message and "MNIST_DATA_DIR" in failed.message
    assert cache.get(job.keys[0]) is None
    (retry,) = service.submit([RunConfig(**TINY, epochs=1)], owner="ann")  # the service itself carries on
    assert retry.id != job.id


def test_progress_arrives_in_order_and_each_epoch_lands(make_service):
    service = make_service()
    (job,) = service.submit([RunConfig(**{**TINY, "batch_size": 10}, epochs=3, lr=0.0005)], owner="ann")
    seen = []
    while (now := service.job(job.id)).state in ("queued", "running"):
        if now.epoch:
            seen.append((now.epoch, now.fraction, len(now.epochs)))
        time.sleep(0.005)
    assert now.state == "done" and seen, "the job reported progress while it ran"
    assert seen == sorted(seen)  # epochs increase; within an epoch the fraction only grows
    assert all(0 < fraction <= 1 for _, fraction, _ in seen)
    assert [m["epoch"] for m in now.epochs] == [1, 2, 3] and all("test_acc" in m for m in now.epochs)
    halfway = dataclasses.replace(now, state="running", epoch=2, fraction=0.5)
    assert (halfway.progress, halfway.fraction_done(1)) == (0.5, 1.0) and now.progress == 1.0


def test_cached_runs_are_the_engines_own_results(make_service, cache, mnist):
    service = make_service()
    configs = [RunConfig(**TINY, epochs=e, seed=5) for e in (1, 2)]
    jobs = service.submit(configs, owner="ann")
    assert service.wait([j.id for j in jobs], timeout=120)
    served = results_for(service, configs, [service.job(j.id) for j in jobs])
    direct, snapshots = train(configs[1], mnist, snapshot_epochs=[1])
    for run, (metrics, weights) in zip(served, [(direct.epochs[:1], snapshots[1]), (direct.epochs, direct.weights)]):
        assert run is not None and not run.cached and run.machine["worker"] == "local"
        same = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
        assert [[getattr(m, f) for f in same] for m in run.epochs] == [[getattr(m, f) for f in same] for m in metrics]
        stored = cache.weights(run.key)
        assert stored.keys() == weights.keys() and all(torch.equal(stored[k], weights[k]) for k in weights)


def test_the_app_gets_the_embedded_service_unless_a_scheduler_is_set(cache, mnist):
    service = service_from_env(cache, mnist, env={"MNIST_LAB_MAX_CONCURRENT": "2"})
    try:
        assert service.client is None and service.capacity == 2
    finally:
        service.shutdown()


def test_runs_record_where_they_were_trained_and_older_entries_still_read(make_service, cache):
    service = make_service()
    config = RunConfig(**TINY, epochs=1, seed=9)
    (job,) = service.submit([config], owner="ann")
    assert service.wait([job.id], timeout=120)
    run = cache.get(job.keys[0])
    assert run.machine["worker"] == "local" and run.machine["torch"] == torch.__version__
    assert run.machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine_label(run.machine).startswith(run.machine["device_name"]) and "worker" not in machine_label(run.machine)
    assert machine_label({**run.machine, "worker": "tcp://10.1.2.3:4000"}).endswith("worker tcp://10.1.2.3:4000")
    old = run.to_json()
    del old["machine"]  # an entry written before runs recorded their machine
    assert RunResult.from_json(old).machine == {} and machine_label({}) == ""


def test_hosted_mode_can_drop_a_queued_job_nobody_watches_any_more(make_service):
    service = make_service(HostingLimits(hosted=True, abandoned_after_seconds=1))
    (blocker,) = service.submit([RunConfig(**LONG)], owner="carl")
    wait_until(lambda: service.job(blocker.id).state == "running")
    (gone,) = service.submit([RunConfig(**TINY, epochs=1, lr=0.004)], owner="ann")
    (kept,) = service.submit([RunConfig(**TINY, epochs=1, lr=0.005)], owner="bob")
    watching = threading.Event()

    def bobs_page():  # bob's page is still open and shows his job every 0.1 s; ann closed her tab
        while not watching.is_set():
            service.seen("bob")
            time.sleep(0.1)

    page = threading.Thread(target=bobs_page)
    page.start()
    try:
        wait_until(lambda: time.time() - gone.submitted > 1.5)
        service.cancel(blocker.id, "carl")
        assert service.wait([gone.id, kept.id], timeout=120)
    finally:
        watching.set()
        page.join()
    dropped = service.job(gone.id)
    assert dropped.state == "cancelled" and dropped.started is None and "Nobody was watching" in dropped.message
    assert service.job(kept.id).state == "done"


def test_a_caller_waiting_on_its_jobs_gets_every_outcome_however_many_others_finished(make_service):
    # One finished job remembered beyond those held, and no grace time: only waiting on a job holds one.
    service = make_service(HostingLimits(max_concurrent=2), keep_finished=1, hold_seconds=0)
    (short,) = service.submit([RunConfig(**TINY, epochs=1, seed=51)], owner="ann")
    (long,) = service.submit([RunConfig(**LONG, seed=51)], owner="ann")  # ann still waits on this one
    assert service.wait([short.id], timeout=120)
    bobs = service.submit([RunConfig(**TINY, epochs=1, seed=seed) for seed in range(52, 56)], owner="bob")
    assert service.wait([j.id for j in bobs], timeout=120)
    assert service.job(short.id).state == "done"  # four finished since, one kept: ann holds hers
    assert service.job(bobs[-1].id).state == "done"  # the newest
    assert [service.job(j.id) for j in bobs[:-1]] == [None] * 3  # nobody waits on them any more: forgotten
    assert service.cancel(long.id, "ann") and service.wait([long.id], timeout=60)
    assert service.job(short.id) is None and service.job(long.id).state == "cancelled"  # memory stays bounded


def test_with_a_class_code_submit_refuses_a_request_without_it(make_service):
    service = make_service(HostingLimits(class_code="maple-42"))
    config = RunConfig(**TINY, epochs=1, seed=61)
    for code in (None, "", "maple", "maple-42x"):
        with pytest.raises(RequestRefused) as refused:
            service.submit([config], owner="ann", code=code)
        assert str(refused.value) == CLASS_CODE_NEEDED and translate(refused.value, "ko") != CLASS_CODE_NEEDED
    assert service.jobs() == []
    (job,) = service.submit([config], owner="ann", code="maple-42")
    (same,) = service.submit([config], owner="bob", code=" maple-42 ")  # as typed, spaces and all
    assert same.id == job.id
    assert service.cancel(job.id, "ann") and service.cancel(job.id, "bob")


def test_a_hosted_job_that_trains_past_the_cap_and_grace_is_stopped_with_a_message_and_caches_nothing(
        make_service, cache, monkeypatch):
    # The estimate let it through (here: made to say one second, as a wrong estimate would); the run-time
    # cap stops it anyway, one second past the cap plus a one-second grace, whoever is watching.
    monkeypatch.setattr("mnist_core.speed.estimate_seconds", lambda *a, **k: 1.0)
    service = make_service(HostingLimits(hosted=True, max_request_seconds=1, run_grace_seconds=1))
    config = RunConfig(**LONG)
    (job,) = service.submit([config], owner="ann")
    service.submit([config], owner="bob")
    assert service.wait([job.id], timeout=60)
    stopped = service.job(job.id)
    assert stopped.state == "failed" and stopped.started and stopped.finished - stopped.started < 30
    assert re.match(r"This training ran for [234] sec", translate(stopped.message, "en"))  # 2 s and a step or two
    assert "allows (1 sec per request, plus 1 sec of grace)" in translate(stopped.message, "en")
    assert "fewer epochs" in translate(stopped.message, "en")
    assert "학습" in translate(stopped.message, "ko") and "sec" not in translate(stopped.message, "ko")
    assert cache.get(job.keys[0]) is None and not list(cache.root.glob("*.tmp"))
    (again,) = service.submit([RunConfig(**TINY, epochs=1)], owner="ann")  # the slot is free again
    assert service.wait([again.id], timeout=120) and service.job(again.id).state == "done"
