"""How the Batch API writer splits a list of writes into batches (pure arithmetic)."""

from __future__ import annotations

import pytest

from snsync.servicenow.batch import WriteKind, WriteRequest, even_chunks


def sizes(count: int, batch_size: int, concurrency: int) -> list[int]:
    chunks = even_chunks(count, batch_size, concurrency)
    assert [i for chunk in chunks for i in chunk] == list(range(count))  # all, once, in order
    return [len(chunk) for chunk in chunks]


def test_batches_are_even_and_never_over_the_size() -> None:
    assert sizes(7, 3, 1) == [3, 2, 2]
    assert sizes(0, 50, 8) == []
    assert sizes(1, 50, 8) == [1]
    assert sizes(10, 1, 4) == [1] * 10


def test_the_number_of_batches_is_a_multiple_of_the_workers_when_it_can_be() -> None:
    spread = sizes(2000, 50, 16)  # 40 batches of 50 would leave a last round half idle
    assert len(spread) == 48 and max(spread) <= 50 and max(spread) - min(spread) <= 1
    few = sizes(100, 50, 16)  # two batches would keep 14 workers idle
    assert len(few) == 16 and max(few) == 7
    assert sizes(5, 50, 16) == [1] * 5  # never more batches than writes


def test_update_and_delete_need_a_sys_id() -> None:
    with pytest.raises(ValueError, match="sys_id"):
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "x"})
    assert not WriteRequest(WriteKind.CREATE, "sys_user").repeatable
    assert WriteRequest(WriteKind.DELETE, "sys_user_grmember", sys_id="a" * 32).repeatable
