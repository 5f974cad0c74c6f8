"""LatestSlot: the newest item wins, older unread ones are reported dropped, close wakes readers."""

from __future__ import annotations

import threading

import pytest

from anovox_perception.core.handoff import LatestSlot


def test_take_returns_the_newest_item_and_put_reports_the_one_it_replaced():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.take(timeout_s=0) == 3
    assert slot.take(timeout_s=0) is None


def test_take_times_out_empty_handed():
    assert LatestSlot().take(timeout_s=0.01) is None


def test_close_wakes_a_waiting_reader_and_refuses_later_items():
    slot: LatestSlot[str] = LatestSlot()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.take()))
    reader.start()
    slot.close()
    reader.join(timeout=5)
    assert not reader.is_alive() and got == [None]
    assert slot.closed
    assert slot.put('late') == 'late'


def test_a_waiting_reader_gets_an_item_put_from_another_thread():
    slot: LatestSlot[int] = LatestSlot()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.take(timeout_s=5)))
    reader.start()
    slot.put(7)
    reader.join(timeout=5)
    assert got == [7]


def test_none_cannot_be_put():
    with pytest.raises(ValueError, match='item must not be None'):
        LatestSlot().put(None)
