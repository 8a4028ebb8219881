"""Fair share: the order in which queued jobs start (see the package's docstring).

The next job is the oldest of whoever wants one and has used the least training time recently: seconds
their jobs ran, decayed with a half-life of FAIR_SHARE_HALF_LIFE, running jobs counted as they go, a
job several students want shared among them.
"""
from __future__ import annotations

import heapq
import time
from typing import Any, Iterable

FAIR_SHARE_HALF_LIFE = 15 * 60   # seconds: training time used this long ago counts half


class Usage:
    """Each owner's recent training time, decayed."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[float, float]] = {}  # owner -> (decayed seconds, as of when)

    def of(self, owner: str, now: float) -> float:
        seconds, when = self._used.get(owner, (0.0, now))
        return seconds * 0.5 ** ((now - when) / FAIR_SHARE_HALF_LIFE)

    def charge(self, owners: list[str], seconds: float, now: float) -> None:
        """`seconds` of training, shared among `owners` (who wanted it when it ended)."""
        for owner in owners:
            self._used[owner] = (self.of(owner, now) + seconds / len(owners), now)


def line(jobs: Iterable[Any], seq: dict[str, int], usage: Usage, fair: bool = True) -> list[Any]:
    """Queued `jobs` in the order they would start if nothing else happened (`seq`: submission order). Each
    pick charges its watchers its estimate, shared, so places are stable. A heap of owners: O(queued log
    owners). `fair=False`: first come, first served."""
    jobs = list(jobs)
    queued = sorted((j for j in jobs if j.state == "queued"), key=lambda j: seq[j.id])
    if not fair:
        return queued
    now = time.time()
    wants: dict[str, list[Any]] = {}  # owner -> their queued jobs, oldest first
    for job in queued:
        for owner in job.watchers:
            wants.setdefault(owner, []).append(job)
    used = {owner: usage.of(owner, now) for owner in wants}
    for job in jobs:
        if job.state == "running" and job.started:
            for owner in job.watchers:
                if owner in used:
                    used[owner] += (now - job.started) / len(job.watchers)
    heads = {owner: 0 for owner in wants}
    placed: set[str] = set()

    def entry(owner: str) -> tuple[float, int, str] | None:  # the owner's rank now: used, their oldest job
        mine = wants[owner]
        while heads[owner] < len(mine) and mine[heads[owner]].id in placed:
            heads[owner] += 1
        return (used[owner], seq[mine[heads[owner]].id], owner) if heads[owner] < len(mine) else None

    ranks = [entry(owner) for owner in wants]
    heapq.heapify(ranks)
    order = []
    while ranks:
        rank = heapq.heappop(ranks)
        now_rank = entry(rank[2])
        if now_rank != rank:  # charged or moved on since it was pushed: push where it stands now
            if now_rank:
                heapq.heappush(ranks, now_rank)
            continue
        pick = wants[rank[2]][heads[rank[2]]]
        placed.add(pick.id)
        order.append(pick)
        for owner in pick.watchers:
            used[owner] += pick.estimate_seconds / len(pick.watchers)
            if (pushed := entry(owner)) is not None:
                heapq.heappush(ranks, pushed)
    return order
