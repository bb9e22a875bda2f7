"""Group commit: callers that arrive together share one batch; a bad item fails only its own caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.groupcommit import GroupCommit


def test_callers_waiting_for_the_writer_are_written_in_one_batch():
    writer = threading.Lock()
    batches: list[list[int]] = []
    group = GroupCommit(batches.append, writer)
    with ThreadPoolExecutor(8) as pool:
        with writer:  # another transaction (say, the store) is writing: everyone queues
            futures = [pool.submit(group.run, i) for i in range(8)]
            time.sleep(0.2)
        for f in futures:
            f.result(timeout=5)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert len(batches) == 1, batches  # the leader took its batch once it could write, not before


def test_a_lone_caller_is_written_at_once():
    batches: list[list[str]] = []
    GroupCommit(batches.append).run("a")
    assert batches == [["a"]]


def test_a_bad_item_fails_only_its_own_caller():
    written: list[int] = []

    def work(batch):
        if 3 in batch:
            raise ValueError("no 3")
        written.extend(batch)

    writer = threading.Lock()
    group = GroupCommit(work, writer, limit=64)
    with ThreadPoolExecutor(6) as pool, writer:
        futures = {i: pool.submit(group.run, i) for i in range(6)}
        time.sleep(0.2)
    with pytest.raises(ValueError, match="no 3"):
        futures[3].result(timeout=5)
    for i in (0, 1, 2, 4, 5):
        futures[i].result(timeout=5)
    assert sorted(written) == [0, 1, 2, 4, 5]


def test_a_batch_holds_at_most_limit_items():
    writer = threading.Lock()
    batches: list[list[int]] = []
    group = GroupCommit(batches.append, writer, limit=3)
    with ThreadPoolExecutor(10) as pool:
        with writer:
            futures = [pool.submit(group.run, i) for i in range(10)]
            time.sleep(0.2)
        for f in futures:
            f.result(timeout=5)
    assert max(len(b) for b in batches) <= 3 and sum(len(b) for b in batches) == 10
