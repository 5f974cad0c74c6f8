"""Tests for anovox_perception.core.sync: LiDAR-driven and message_filters-style approximate sync."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.sync import ApproximateSync, LidarDrivenSync, StampedMsg, SyncedPair, make_sync

MS = 1_000_000  # nanoseconds per millisecond


def img(stamp_ms: float, name: str | None = None) -> StampedMsg:
    return StampedMsg(round(stamp_ms * MS), name or f'img@{stamp_ms}')


def cloud(stamp_ms: float, received_ms: float | None = None) -> StampedMsg:
    received = None if received_ms is None else round(received_ms * MS)
    return StampedMsg(round(stamp_ms * MS), f'cloud@{stamp_ms}', received)


def pairing(pairs: list[SyncedPair]) -> list[tuple[str, str | None]]:
    return [(p.points, p.image) for p in pairs]


# --- LidarDrivenSync ------------------------------------------------------


def test_lidar_sync_pairs_a_cloud_with_the_nearest_image_once_a_later_image_exists() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0)
    for t in (0, 40, 100):
        assert sync.add_image(img(t)) == []
    pairs = sync.add_points(cloud(90))
    assert pairing(pairs) == [('cloud@90', 'img@100')]
    assert pairs[0] == SyncedPair(90 * MS, 'cloud@90', 'img@100', 100 * MS)
    assert sync.counters()['paired'] == 1


def test_lidar_sync_applies_the_camera_offset_before_comparing() -> None:
    sync = LidarDrivenSync(slop_s=0.01, camera_offset_s=0.03, timeout_s=0.0)
    sync.add_image(img(1000))  # effective 970 ms
    sync.add_image(img(1040))  # effective 1010 ms
    assert pairing(sync.add_points(cloud(970))) == [('cloud@970', 'img@1000')]
    pair = sync.add_points(cloud(1012))[0]
    assert pair.image == 'img@1040' and pair.image_stamp_ns == 1040 * MS  # the raw stamp is reported


def test_lidar_sync_waits_for_a_later_image_that_may_be_nearer() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0)
    sync.add_image(img(70))
    assert sync.add_points(cloud(100)) == []
    assert sync.counters()['pending'] == 1
    assert pairing(sync.add_image(img(105))) == [('cloud@100', 'img@105')]


def test_lidar_sync_keeps_the_earlier_image_when_the_later_one_is_farther() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0, image_interval_lower_bound_s=0.0)
    sync.add_image(img(95))
    assert sync.add_points(cloud(100)) == []
    assert pairing(sync.add_image(img(130))) == [('cloud@100', 'img@95')]


def test_lidar_sync_prefers_the_earlier_of_two_equidistant_images() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0)
    sync.add_image(img(90))
    sync.add_image(img(110))
    assert pairing(sync.add_points(cloud(100))) == [('cloud@100', 'img@90')]


def test_lidar_sync_times_out_on_a_later_cloud_and_uses_the_best_image_so_far() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1)
    sync.add_image(img(70))
    assert sync.add_points(cloud(100)) == []
    assert sync.add_points(cloud(199)) == []  # 99 ms later: still waiting
    pairs = sync.add_points(cloud(200))
    assert pairing(pairs) == [('cloud@100', 'img@70')]
    assert sync.counters()['pending'] == 2


def test_lidar_sync_runs_lidar_only_when_no_image_is_within_slop() -> None:
    sync = LidarDrivenSync(slop_s=0.02, timeout_s=0.05, on_missing_camera='lidar_only')
    sync.add_image(img(10))
    assert sync.add_points(cloud(100)) == []
    assert pairing(sync.add_points(cloud(150))) == [('cloud@100', None)]
    assert sync.counters()['lidar_only'] == 1


def test_lidar_sync_decides_at_once_when_a_later_image_is_outside_slop() -> None:
    sync = LidarDrivenSync(slop_s=0.02, timeout_s=10.0)
    sync.add_image(img(200))
    assert pairing(sync.add_points(cloud(100))) == [('cloud@100', None)]


def test_lidar_sync_skips_and_counts_clouds_without_camera_in_skip_mode() -> None:
    sync = LidarDrivenSync(slop_s=0.02, timeout_s=0.0, on_missing_camera='skip')
    assert sync.add_points(cloud(100)) == []
    counters = sync.counters()
    assert counters['skipped'] == 1 and counters['pending'] == 0 and counters['lidar_only'] == 0


def test_lidar_sync_poll_times_out_on_the_receive_clock() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1)
    sync.add_image(img(80))
    # Stamps from another clock (e.g. a bag without --clock): the deadline follows received_ns.
    assert sync.add_points(cloud(100, received_ms=5_000)) == []
    assert sync.poll(now_ns=5_099 * MS) == []
    assert pairing(sync.poll(now_ns=5_100 * MS)) == [('cloud@100', 'img@80')]


def test_lidar_sync_decides_the_oldest_cloud_when_too_many_are_pending() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=1.0, image_interval_lower_bound_s=0.0, max_pending_clouds=2)
    sync.add_image(img(0))
    assert sync.add_points(cloud(10)) == []
    assert sync.add_points(cloud(20)) == []
    assert pairing(sync.add_points(cloud(30))) == [('cloud@10', 'img@0')]
    counters = sync.counters()
    assert counters['pending_overflow'] == 1 and counters['pending'] == 2


def test_lidar_sync_keeps_at_most_max_images() -> None:
    sync = LidarDrivenSync(max_images=3)
    for t in range(10):
        sync.add_image(img(t * 10))
    assert sync.counters()['images_buffered'] == 3
    assert pairing(sync.add_points(cloud(0))) == [('cloud@0', None)], 'evicted images are gone'


def test_lidar_sync_resets_when_time_jumps_backwards() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=1.0, reorder_s=0.0, time_jump_tolerance_s=0.5)
    sync.add_image(img(10_000))
    sync.add_points(cloud(10_000))  # decided: the image is at the cloud's stamp
    sync.add_image(img(10_050))
    sync.add_points(cloud(10_100))  # pending: no image at or after it yet
    sync.add_points(cloud(9_800))  # 300 ms back: within tolerance, no reset (decided LiDAR-only)
    assert sync.counters()['resets'] == 0
    assert sync.counters()['pending'] == 1
    sync.add_points(cloud(100))  # the bag looped
    counters = sync.counters()
    assert counters['resets'] == 1
    assert counters['dropped_on_reset'] == 1
    assert counters['images_buffered'] == 0
    assert pairing(sync.add_image(img(100))) == [('cloud@100', 'img@100')]


def test_lidar_sync_waits_for_an_out_of_order_image_that_may_be_nearer() -> None:
    # Jittered delivery: the image 11.5 ms after the cloud arrives after one 40 ms after it.
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.03, image_interval_lower_bound_s=0.0)
    sync.add_image(img(12_268))
    assert sync.add_points(cloud(12_300)) == []
    assert sync.add_image(img(12_340)) == [], 'an image stamped 12.31 s or later may still come'
    assert sync.add_image(img(12_311.5)) == [], 'an image between 12.2885 and 12.3115 s may still come'
    assert pairing(sync.add_image(img(12_345))) == [('cloud@12300', 'img@12311.5')]


def test_lidar_sync_in_stamp_order_mode_decides_at_the_first_later_image() -> None:
    # The same arrivals with reorder_s=0 (stamp order trusted): decided on the 12.34 s image.
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0)
    sync.add_image(img(12_268))
    sync.add_points(cloud(12_300))
    assert pairing(sync.add_image(img(12_340))) == [('cloud@12300', 'img@12268')]


def test_lidar_sync_decides_without_an_image_once_none_within_slop_can_come() -> None:
    sync = LidarDrivenSync(slop_s=0.02, timeout_s=10.0, reorder_s=0.03)
    assert sync.add_points(cloud(100)) == []
    assert sync.add_image(img(150)) == [], 'an image at 120 ms may still come'
    assert pairing(sync.add_image(img(151))) == [('cloud@100', None)]


def test_lidar_sync_pairs_on_arrival_when_the_interval_bound_rules_out_a_nearer_next_image() -> None:
    # A 10 Hz camera 20 ms early: the next image is stamped 90 ms or more after the newest (at 180 or later).
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.03, image_interval_lower_bound_s=0.09)
    sync.add_image(img(80))
    assert pairing(sync.add_points(cloud(100))) == [('cloud@100', 'img@80')]
    unknown = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.03, image_interval_lower_bound_s=0.0)
    unknown.add_image(img(80))
    assert unknown.add_points(cloud(100)) == [], 'without the bound an image at 80-120 ms may still come'
    assert pairing(unknown.add_image(img(180))) == [('cloud@100', 'img@80')]


def test_lidar_sync_waits_when_the_interval_bound_allows_a_nearer_next_image() -> None:
    # 0.03 s allows a next image at 110 ms, 10 ms from the cloud: nearer than the one 20 ms before it.
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=0.1, reorder_s=0.0, image_interval_lower_bound_s=0.03)
    sync.add_image(img(80))
    assert sync.add_points(cloud(100)) == []
    assert pairing(sync.add_image(img(110))) == [('cloud@100', 'img@110')]


def test_lidar_sync_interval_bound_still_waits_for_an_out_of_order_image_between_buffered_ones() -> None:
    # Images at 0 and 200 are in; one at 90-110 ms may still come out of order (reorder 150 ms).
    sync = LidarDrivenSync(slop_s=0.1, timeout_s=1.0, reorder_s=0.15, image_interval_lower_bound_s=0.09)
    sync.add_image(img(0))
    sync.add_image(img(200))
    assert sync.add_points(cloud(120)) == []
    assert pairing(sync.add_image(img(100))) == [('cloud@120', 'img@100')]


def test_lidar_sync_decides_an_exact_match_on_arrival_whatever_the_bounds() -> None:
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=1.0, reorder_s=0.5, image_interval_lower_bound_s=0.0)
    sync.add_image(img(100))
    assert pairing(sync.add_points(cloud(100))) == [('cloud@100', 'img@100')]


def test_lidar_sync_counts_images_that_break_the_interval_bound_and_keeps_its_decision() -> None:
    # A camera faster than the bound: the nearer image comes after the cloud was decided.
    sync = LidarDrivenSync(slop_s=0.05, timeout_s=1.0, reorder_s=0.0, image_interval_lower_bound_s=0.09)
    sync.add_image(img(0))
    assert pairing(sync.add_points(cloud(40))) == [('cloud@40', 'img@0')], 'the next image was due at 90 ms'
    assert sync.add_image(img(50)) == []
    assert sync.counters()['interval_bound_violations'] == 1
    sync.add_image(img(150))
    sync.add_image(img(150))  # a repeated stamp breaks any bound > 0
    assert sync.counters()['interval_bound_violations'] == 2


def nearest_within_slop(images: list[tuple[int, int]], stamp: int, slop: int) -> int | None:
    """Index (arrival order) of the image nearest ``stamp`` within slop; earlier stamp, then last arrival wins."""
    within = [(abs(s - stamp), s, -i) for i, s in images if abs(s - stamp) <= slop]
    return -min(within)[2] if within else None


@settings(max_examples=150, deadline=None)
@given(
    camera_period_ms=st.integers(5, 60),
    lidar_period_ms=st.integers(20, 120),
    jitter_ms=st.integers(0, 40),
    slop_ms=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_lidar_sync_pairs_the_nearest_image_when_delivery_jitter_is_within_reorder_s(
    camera_period_ms, lidar_period_ms, jitter_ms, slop_ms, seed
) -> None:
    import random

    rng = random.Random(seed)
    # Each image arrives up to jitter_ms after its stamp, so arrivals are out of stamp order by at most jitter_ms.
    images = [(t * MS, (t + rng.uniform(0, jitter_ms)) * MS) for t in range(0, 1_000, camera_period_ms)]
    clouds = [(t * MS, t * MS) for t in range(7, 1_000, lidar_period_ms)]
    events = sorted([(a, 0, s) for s, a in images] + [(a, 1, s) for s, a in clouds])
    sync = LidarDrivenSync(
        slop_s=slop_ms / 1000,
        timeout_s=5.0,  # only certainty decides: the check below is about pairing, not timeouts
        reorder_s=jitter_ms / 1000,
        image_interval_lower_bound_s=0.0,  # camera rate unknown
        max_images=256,
        max_pending_clouds=256,
        time_jump_tolerance_s=None,
    )
    arrived: list[tuple[int, int]] = []
    decided: dict[int, int | None] = {}
    for arrival, kind, stamp in events:
        if kind == 0:
            arrived.append((len(arrived), stamp))
            pairs = sync.add_image(StampedMsg(stamp, len(arrived) - 1, arrival))
        else:
            pairs = sync.add_points(StampedMsg(stamp, stamp, arrival))
        for pair in pairs:
            decided[pair.points] = pair.image
    for pair in sync.poll(now_ns=10**15):
        decided[pair.points] = pair.image
    assert set(decided) == {s for s, _ in clouds}
    every_image = [(i, s) for i, s in arrived]
    for stamp, image in decided.items():
        assert image == nearest_within_slop(every_image, stamp, slop_ms * MS), f'cloud at {stamp / MS} ms'


def camera_stream(
    rng, start_ms: int, intervals_ms: tuple[int, int], jitter_ms: int, end_ms: int = 1_000
) -> list[tuple[int, float]]:
    """(stamp_ms, arrival_ms) of a camera with stamp intervals drawn from ``intervals_ms`` (inclusive)."""
    stamps = [start_ms]
    while stamps[-1] < end_ms:
        stamps.append(stamps[-1] + rng.randint(*intervals_ms))
    # Each image arrives up to jitter_ms after its stamp: out of stamp order by at most jitter_ms.
    return [(s, s + rng.uniform(0, jitter_ms)) for s in stamps]


def certain_under_bounds(received_ms: list[int], cloud_ms: int, slop_ms: int, reorder_ms: int, bound_ms: int) -> bool:
    """Brute force on the millisecond grid: no image still to come, keeping both bounds, could be nearer.

    ``received_ms`` are effective stamps. Every boundary is a whole millisecond, so checking
    whole milliseconds is exact.
    """
    if not received_ms:
        return False
    within = [(abs(e - cloud_ms), e) for e in received_ms if abs(e - cloud_ms) <= slop_ms]
    if within:
        delta, best = min(within)
        wins = [f for f in range(cloud_ms - delta, cloud_ms + delta) if abs(f - cloud_ms) < delta or f < best]
    else:
        wins = list(range(cloud_ms - slop_ms, cloud_ms + slop_ms + 1))
    earliest = max(received_ms) - reorder_ms
    return not any(f >= earliest and all(abs(f - e) >= bound_ms for e in received_ms) for f in wins)


def run_camera_and_lidar(
    images: list[tuple[int, float]], clouds: list[int], offset_ms: int, **sync_args
) -> tuple[list[tuple[float, int, int]], dict[int, tuple[int | None, int]], dict[str, int]]:
    """Feed both streams in arrival order (clouds arrive at their stamps).

    Returns:
        The events (arrival_ms, kind 0 image / 1 cloud, image index or cloud stamp), each cloud's
        (image index or None, index of the event that decided it), and the counters.
    """
    events = sorted([(a, 0, i) for i, (_, a) in enumerate(images)] + [(float(t), 1, t) for t in clouds])
    sync = LidarDrivenSync(
        camera_offset_s=offset_ms / 1000,
        timeout_s=5.0,  # only certainty decides within the one-second stream
        max_images=256,
        max_pending_clouds=256,
        time_jump_tolerance_s=None,
        **sync_args,
    )
    decided: dict[int, tuple[int | None, int]] = {}
    for k, (arrival, kind, key) in enumerate(events):
        if kind == 0:
            pairs = sync.add_image(StampedMsg(images[key][0] * MS, key, round(arrival * MS)))
        else:
            pairs = sync.add_points(StampedMsg(key * MS, key, round(arrival * MS)))
        decided.update((pair.points, (pair.image, k)) for pair in pairs)
    decided.update((pair.points, (pair.image, len(events))) for pair in sync.poll(now_ns=10**15))
    assert set(decided) == set(clouds), 'every cloud is decided once'
    return events, decided, sync.counters()


@settings(max_examples=120, deadline=None)
@given(
    bound_ms=st.integers(10, 100),
    extra_ms=st.integers(0, 60),
    lidar_period_ms=st.integers(20, 120),
    jitter_ms=st.integers(0, 40),
    slop_ms=st.integers(1, 60),
    offset_ms=st.integers(-50, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_lidar_sync_with_a_kept_interval_bound_pairs_the_nearest_image_as_soon_as_it_is_certain(
    bound_ms, extra_ms, lidar_period_ms, jitter_ms, slop_ms, offset_ms, seed
) -> None:
    import random

    rng = random.Random(seed)
    images = camera_stream(rng, rng.randint(0, 50), (bound_ms, bound_ms + extra_ms), jitter_ms)
    clouds = list(range(7, 1_000, lidar_period_ms))
    events, decided, counters = run_camera_and_lidar(
        images,
        clouds,
        offset_ms,
        slop_s=slop_ms / 1000,
        reorder_s=jitter_ms / 1000,
        image_interval_lower_bound_s=bound_ms / 1000,
    )
    effective = [(i, s - offset_ms) for i, (s, _) in enumerate(images)]
    assert counters['interval_bound_violations'] == 0
    for t in clouds:
        image, decided_at = decided[t]
        assert image == nearest_within_slop(effective, t, slop_ms), f'cloud at {t} ms'
        # The first event after which the bounds rule out a nearer image (never: decided at the final poll).
        received: list[int] = []
        certain_at = len(events)
        arrived_at = events.index((float(t), 1, t))
        for k, (_, kind, key) in enumerate(events):
            if kind == 0:
                received.append(effective[key][1])
            if k >= arrived_at and certain_under_bounds(received, t, slop_ms, jitter_ms, bound_ms):
                certain_at = k
                break
        assert decided_at == certain_at, f'cloud at {t} ms decided at event {decided_at}, certain at {certain_at}'


@settings(max_examples=120, deadline=None)
@given(
    bound_ms=st.integers(10, 100),
    lidar_period_ms=st.integers(20, 120),
    jitter_ms=st.integers(0, 40),
    slop_ms=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_lidar_sync_with_a_broken_interval_bound_misses_only_images_that_break_it(
    bound_ms, lidar_period_ms, jitter_ms, slop_ms, seed
) -> None:
    # Stamp intervals from 1 ms to twice the bound, so many images break it: what the sync promises then.
    import random

    rng = random.Random(seed)
    images = camera_stream(rng, rng.randint(0, 50), (1, 2 * bound_ms), jitter_ms)
    clouds = list(range(7, 1_000, lidar_period_ms))
    events, decided, counters = run_camera_and_lidar(
        images,
        clouds,
        0,
        slop_s=slop_ms / 1000,
        reorder_s=jitter_ms / 1000,
        image_interval_lower_bound_s=bound_ms / 1000,
    )
    arrival_rank = {key: k for k, (_, kind, key) in enumerate(events) if kind == 0}
    breaks = {
        i
        for i, (s, _) in enumerate(images)
        if any(abs(s - images[j][0]) < bound_ms for j in arrival_rank if arrival_rank[j] < arrival_rank[i])
    }
    assert counters['interval_bound_violations'] == len(breaks)
    every_image = [(i, s) for i, (s, _) in enumerate(images)]
    for t in clouds:
        image, decided_at = decided[t]
        if image is not None:
            assert abs(images[image][0] - t) <= slop_ms, 'never outside slop'
        nearest = nearest_within_slop(every_image, t, slop_ms)
        if image != nearest:
            # The nearest image came after the decision, closer than the bound to an image before it.
            assert arrival_rank[nearest] > decided_at and nearest in breaks, f'cloud at {t} ms'


def test_lidar_sync_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="on_missing_camera must be one of .*got 'drop'"):
        LidarDrivenSync(on_missing_camera='drop')
    with pytest.raises(ConfigError, match='slop_s must be a finite number of seconds >= 0, got -0.1'):
        LidarDrivenSync(slop_s=-0.1)
    with pytest.raises(ConfigError, match='max_pending_clouds must be >= 1, got 0'):
        LidarDrivenSync(max_pending_clouds=0)
    with pytest.raises(ConfigError, match='camera_offset_s must be finite'):
        LidarDrivenSync(camera_offset_s=float('nan'))
    with pytest.raises(ConfigError, match='reorder_s must be a finite number of seconds >= 0, got -0.01'):
        LidarDrivenSync(reorder_s=-0.01)
    with pytest.raises(ConfigError, match='image_interval_lower_bound_s must be a finite number of seconds >= 0'):
        LidarDrivenSync(image_interval_lower_bound_s=float('inf'))


def run_in_thread(fn, timeout_s: float = 10.0) -> bool:
    """Run ``fn`` in a daemon thread; True if it finished (False means it deadlocked)."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


@pytest.mark.parametrize('sync_class', [LidarDrivenSync, ApproximateSync])
def test_sync_calls_back_outside_its_lock(sync_class) -> None:
    seen: list[SyncedPair] = []

    def callback(pair: SyncedPair) -> None:
        # Re-entering the synchroniser would deadlock if the lock were held.
        seen.append(pair)
        sync.counters()
        sync.add_image(img(500))

    sync = sync_class(slop_s=0.05, callback=callback)

    def feed() -> None:
        sync.add_image(img(100))
        sync.add_points(cloud(100))
        sync.add_image(img(200))  # rules out a nearer out-of-order image for the LiDAR-driven sync

    assert run_in_thread(feed), 'the callback ran under the lock'
    assert pairing(seen) == [('cloud@100', 'img@100')]


def test_sync_is_built_from_the_node_parameters() -> None:
    assert isinstance(make_sync(), LidarDrivenSync)
    sync = make_sync({'sync.slop_s': 0.02, 'sync.camera_offset_s': -0.01, 'model_path': 'ignored'})
    assert (sync.slop_ns, sync.camera_offset_ns) == (20_000_000, -10_000_000)
    assert isinstance(make_sync({'sync.policy': 'approximate'}), ApproximateSync)
    with pytest.raises(ConfigError, match='sync.slop_s'):
        make_sync({'sync.slop_s': 5.0})
    assert make_sync().interval_bound_ns == 30_000_000
    assert make_sync({'sync.image_interval_lower_bound_s': 0.09}).interval_bound_ns == 90_000_000
    with pytest.raises(ConfigError, match=r'sync\.image_interval_lower_bound_s: -0\.01 is below the minimum'):
        make_sync({'sync.image_interval_lower_bound_s': -0.01})


def test_built_sync_hands_its_pairs_to_the_callback() -> None:
    seen: list[SyncedPair] = []
    sync = make_sync({'sync.policy': 'approximate', 'sync.slop_s': 0.05}, callback=seen.append)
    sync.add_image(img(100))
    sync.add_points(cloud(110))
    assert pairing(seen) == [('cloud@110', 'img@100')]


def test_sync_stays_consistent_under_concurrent_producers() -> None:
    out: list[SyncedPair] = []
    lock = threading.Lock()

    def collect(pair: SyncedPair) -> None:
        with lock:
            out.append(pair)

    sync = LidarDrivenSync(slop_s=0.02, timeout_s=0.05, time_jump_tolerance_s=None, callback=collect)
    images = threading.Thread(target=lambda: [sync.add_image(img(t)) for t in range(0, 20_000, 33)])
    clouds = threading.Thread(target=lambda: [sync.add_points(cloud(t)) for t in range(0, 20_000, 100)])
    images.start(), clouds.start()
    images.join(), clouds.join()
    sync.poll(now_ns=10**15)
    c = sync.counters()
    assert c['clouds_in'] == 200 and c['images_in'] == len(range(0, 20_000, 33))
    assert c['paired'] + c['lidar_only'] + c['skipped'] + c['dropped_on_reset'] == 200
    assert len(out) == 200 and len({p.points for p in out}) == 200


# Hypothesis streams: (is_image, stamp_ms, received_offset_ms) events; poll events in between.
events_strategy = st.lists(
    st.tuples(st.sampled_from(['image', 'points', 'poll']), st.integers(0, 2_000), st.integers(0, 300)),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(
    events=events_strategy,
    slop_ms=st.integers(0, 80),
    offset_ms=st.integers(-50, 50),
    timeout_ms=st.integers(0, 200),
    mode=st.sampled_from(['lidar_only', 'skip']),
    jump_ms=st.one_of(st.none(), st.integers(0, 500)),
)
def test_lidar_sync_invariants_hold_for_any_stream(events, slop_ms, offset_ms, timeout_ms, mode, jump_ms) -> None:
    sync = LidarDrivenSync(
        slop_s=slop_ms / 1000,
        camera_offset_s=offset_ms / 1000,
        timeout_s=timeout_ms / 1000,
        on_missing_camera=mode,
        max_images=5,
        max_pending_clouds=3,
        time_jump_tolerance_s=None if jump_ms is None else jump_ms / 1000,
    )
    out: list[SyncedPair] = []
    for i, (kind, stamp_ms, delay_ms) in enumerate(events):
        if kind == 'image':
            out += sync.add_image(StampedMsg(stamp_ms * MS, ('img', i)))
        elif kind == 'points':
            out += sync.add_points(StampedMsg(stamp_ms * MS, ('cloud', i), (stamp_ms + delay_ms) * MS))
        else:
            out += sync.poll(now_ns=(stamp_ms + delay_ms) * MS)
        c = sync.counters()
        assert c['pending'] <= 3 and c['images_buffered'] <= 5, 'memory is bounded'
        in_flight = c['paired'] + c['lidar_only'] + c['skipped'] + c['dropped_on_reset'] + c['pending']
        assert in_flight == c['clouds_in'], 'every cloud is accounted for exactly once'
    out += sync.poll(now_ns=10**15)
    c = sync.counters()
    assert c['pending'] == 0
    assert c['paired'] + c['lidar_only'] + c['skipped'] + c['dropped_on_reset'] == c['clouds_in']
    assert len(out) == c['paired'] + c['lidar_only']
    assert len({p.points for p in out}) == len(out), 'no cloud is emitted twice'
    assert mode == 'lidar_only' or all(p.image is not None for p in out)
    for p in out:
        if p.image is not None:
            assert abs(p.image_stamp_ns - offset_ms * MS - p.points_stamp_ns) <= slop_ms * MS, 'slop violated'


@settings(max_examples=100, deadline=None)
@given(
    image_ms=st.lists(st.integers(0, 1_000), max_size=15),
    cloud_ms=st.lists(st.integers(0, 1_000), max_size=15),
    slop_ms=st.integers(0, 100),
)
def test_lidar_sync_finds_the_globally_nearest_image_when_images_come_first(image_ms, cloud_ms, slop_ms) -> None:
    sync = LidarDrivenSync(slop_s=slop_ms / 1000, timeout_s=0.0, max_images=16, time_jump_tolerance_s=None)
    images = sorted(image_ms)
    for i, t in enumerate(images):
        sync.add_image(StampedMsg(t * MS, (t, i)))
    for t in cloud_ms:
        (pair,) = sync.add_points(StampedMsg(t * MS, t))
        # Nearest, then the earlier stamp; of images sharing a stamp, the last received.
        within = [(abs(s - t), s, -i) for i, s in enumerate(images) if abs(s - t) <= slop_ms]
        if within:
            _, stamp, neg_index = min(within)
            assert pair.image == (stamp, -neg_index)
        else:
            assert pair.image is None


# --- ApproximateSync ------------------------------------------------------


class ReferenceApproximateSync:
    """message_filters' ApproximateTimeSynchronizer.add, restated for N queues of int stamps.

    Per topic a dict stamp -> msg; insert (replacing a repeated stamp); trim the
    oldest stamps beyond queue_size; for every other topic collect the stamps
    within slop of the new one (inclusive), sorted by distance (stable); try the
    product of those lists in order, the new stamp inserted at its topic's
    position; the first set whose max - min is strictly below slop and whose
    stamps are all still queued is emitted and removed.
    """

    def __init__(self, n_topics: int, queue_size: int, slop_ns: int) -> None:
        self.queues: list[dict[int, object]] = [{} for _ in range(n_topics)]
        self.queue_size = queue_size
        self.slop_ns = slop_ns

    def add(self, topic: int, stamp: int, msg: object) -> list[tuple]:
        mine = self.queues[topic]
        mine[stamp] = msg
        while len(mine) > self.queue_size:
            del mine[min(mine)]
        candidates = []
        for j, queue in enumerate(self.queues):
            if j == topic:
                continue
            near = [(s, abs(s - stamp)) for s in queue if abs(s - stamp) <= self.slop_ns]
            if not near:
                return []
            candidates.append([s for s, _ in sorted(near, key=lambda c: c[1])])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(topic, stamp)
            if max(stamps) - min(stamps) < self.slop_ns and all(
                s in q for q, s in zip(self.queues, stamps, strict=True)
            ):
                msgs = tuple(q.pop(s) for q, s in zip(self.queues, stamps, strict=True))
                return [msgs]
        return []


def test_reference_follows_message_filters_on_three_topics() -> None:
    # A worked example of the restated algorithm itself: the arriving stamp is the pivot.
    ref = ReferenceApproximateSync(3, queue_size=5, slop_ns=10)
    assert ref.add(0, 100, 'a') == []
    assert ref.add(1, 104, 'b') == []
    assert ref.add(2, 95, 'c') == [('a', 'b', 'c')]  # spread 104 - 95 = 9 < 10
    assert ref.queues == [{}, {}, {}]
    ref = ReferenceApproximateSync(3, queue_size=5, slop_ns=10)
    ref.add(0, 100, 'a'), ref.add(1, 108, 'b')
    assert ref.add(2, 98, 'c') == [], 'spread 10 is not strictly below slop'
    assert ref.add(2, 99, 'd') == [('a', 'b', 'd')]
    assert ref.queues == [{}, {}, {98: 'c'}]


def test_approximate_sync_pairs_only_strictly_within_slop() -> None:
    sync = ApproximateSync(queue_size=5, slop_s=0.01)
    sync.add_image(img(100))
    assert sync.add_points(cloud(110)) == [], 'a 10 ms spread is not below a 10 ms slop'
    assert pairing(sync.add_points(cloud(109.999999))) == [('cloud@109.999999', 'img@100')]


def test_approximate_sync_pivots_on_the_arriving_message() -> None:
    sync = ApproximateSync(queue_size=5, slop_s=0.05)
    sync.add_points(cloud(100))
    sync.add_points(cloud(130))
    # The image at 120 takes the nearest queued cloud (130), not the oldest.
    assert pairing(sync.add_image(img(120))) == [('cloud@130', 'img@120')]
    assert sync.counters()['clouds_queued'] == 1  # 100 stays queued, as in message_filters


def test_approximate_sync_drops_the_oldest_beyond_queue_size() -> None:
    sync = ApproximateSync(queue_size=2, slop_s=0.01)
    for t in (100, 200, 300):
        sync.add_points(cloud(t))
    c = sync.counters()
    assert c['clouds_dropped'] == 1 and c['clouds_queued'] == 2
    assert sync.add_image(img(100)) == []
    assert pairing(sync.add_image(img(200))) == [('cloud@200', 'img@200')]


def test_approximate_sync_resets_when_time_jumps_backwards() -> None:
    sync = ApproximateSync(queue_size=5, slop_s=0.01, time_jump_tolerance_s=1.0)
    sync.add_points(cloud(50_000))
    sync.add_image(img(40_000))
    sync.add_points(cloud(1_000))
    c = sync.counters()
    assert c['resets'] == 1 and c['clouds_dropped'] == 1 and c['images_dropped'] == 1
    assert c['clouds_queued'] == 1 and c['images_queued'] == 0


def test_approximate_sync_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match='queue_size must be >= 1, got 0'):
        ApproximateSync(queue_size=0)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.tuples(st.booleans(), st.integers(0, 400)), max_size=60),
    queue_size=st.integers(1, 6),
    slop_ms=st.integers(0, 60),
)
def test_approximate_sync_matches_the_message_filters_reference(events, queue_size, slop_ms) -> None:
    sync = ApproximateSync(queue_size=queue_size, slop_s=slop_ms / 1000, time_jump_tolerance_s=None)
    ref = ReferenceApproximateSync(2, queue_size, slop_ms * MS)
    for i, (is_image, stamp_ms) in enumerate(events):
        stamp = stamp_ms * MS
        if is_image:
            got = sync.add_image(StampedMsg(stamp, ('img', i)))
            want = ref.add(0, stamp, ('img', i))
        else:
            got = sync.add_points(StampedMsg(stamp, ('cloud', i)))
            want = ref.add(1, stamp, ('cloud', i))
        assert [(p.image, p.points) for p in got] == want
        c = sync.counters()
        assert (c['images_queued'], c['clouds_queued']) == (len(ref.queues[0]), len(ref.queues[1]))


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.tuples(st.booleans(), st.integers(0, 3_000)), max_size=80),
    queue_size=st.integers(1, 6),
    slop_ms=st.integers(0, 60),
    jump_ms=st.one_of(st.none(), st.integers(0, 1_000)),
)
def test_approximate_sync_invariants_hold_for_any_stream(events, queue_size, slop_ms, jump_ms) -> None:
    sync = ApproximateSync(queue_size, slop_ms / 1000, None if jump_ms is None else jump_ms / 1000)
    out: list[SyncedPair] = []
    for i, (is_image, stamp_ms) in enumerate(events):
        msg = StampedMsg(stamp_ms * MS, i)
        out += sync.add_image(msg) if is_image else sync.add_points(msg)
        c = sync.counters()
        assert c['images_queued'] <= queue_size and c['clouds_queued'] <= queue_size
        assert c['clouds_in'] == c['paired'] + c['clouds_dropped'] + c['clouds_queued']
        assert c['images_in'] == c['paired'] + c['images_dropped'] + c['images_queued']
    assert len({p.points for p in out}) == len(out) == sync.counters()['paired']
    for p in out:
        assert abs(p.image_stamp_ns - p.points_stamp_ns) < slop_ms * MS
