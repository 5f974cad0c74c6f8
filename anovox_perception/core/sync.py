"""Camera / LiDAR time synchronisers (pure Python, no middleware import).

Two policies produce the same :class:`SyncedPair`:

- :class:`LidarDrivenSync` (default): every cloud is processed; it takes the
  nearest camera image within ``slop_s``, waiting (a bounded time) while a nearer
  image may still come, then runs LiDAR-only or skips when there is none.
- :class:`ApproximateSync`: message_filters' Python ``ApproximateTimeSynchronizer``
  semantics for two topics (images and clouds).

:func:`make_sync` builds the one the node's ``sync.*`` parameters select, for the
node and the offline path alike.

Both are thread-safe: state changes under a lock, the callback runs after the
lock is released (a slow consumer never blocks the other topic's callback).
Pairs are also returned by the ``add_*`` / ``poll`` calls. A stamp that jumps
backwards on a topic by more than ``time_jump_tolerance_s`` (a bag loop, a
simulator restart) clears all state and counts a reset. Memory is bounded by
the constructor arguments whatever the input.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.parameters import defaults, spec_by_name, validate_values
from anovox_perception.core.stamps import NS_PER_S, seconds_to_ns

__all__ = [
    'ApproximateSync',
    'LidarDrivenSync',
    'ON_MISSING_CAMERA',
    'StampedMsg',
    'SyncedPair',
    'make_sync',
]

_SYNC_PREFIX = 'sync.'
# Defaults and choices of the synchronisers' arguments are the node's sync.* parameters.
_DEFAULTS = {
    name.removeprefix(_SYNC_PREFIX): value for name, value in defaults().items() if name.startswith(_SYNC_PREFIX)
}
ON_MISSING_CAMERA = spec_by_name('sync.on_missing_camera').choices


@dataclass(frozen=True)
class StampedMsg:
    """A message with its header stamp.

    Attributes:
        stamp_ns: header stamp in nanoseconds (the sensor's time of capture).
        payload: anything (a ROS message, decoded arrays...); passed through untouched.
        received_ns: when it arrived on the consumer's clock; only
            :meth:`LidarDrivenSync.poll` uses it (defaults to ``stamp_ns``).
    """

    stamp_ns: int
    payload: Any
    received_ns: int | None = None


@dataclass(frozen=True)
class SyncedPair:
    """A cloud and the image synchronised with it (``None`` when LiDAR-only)."""

    points_stamp_ns: int
    points: Any
    image: Any | None = None
    image_stamp_ns: int | None = None


def _seconds_to_ns(name: str, value: float, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        msg = f'{name} must be a number of seconds, got {value!r}'
        raise ConfigError(msg) from err
    if not (math.isfinite(value) and value >= 0.0):
        msg = f'{name} must be a finite number of seconds >= 0, got {value}'
        raise ConfigError(msg)
    # Truncation, as rclpy's Duration(seconds=...) does.
    return int(value * NS_PER_S)


class _SyncBase:
    """Lock, counters, backward-jump detection and callback dispatch."""

    _TOPICS = ('image', 'points')
    _COUNTERS: tuple[str, ...] = ()

    def __init__(self, time_jump_tolerance_s: float | None, callback: Callable[[SyncedPair], None] | None) -> None:
        self._jump_tolerance_ns = _seconds_to_ns('time_jump_tolerance_s', time_jump_tolerance_s, allow_none=True)
        self._callback = callback
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._COUNTERS, 0)
        self._latest_ns: dict[str, int | None] = dict.fromkeys(self._TOPICS)

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters (for diagnostics), plus current buffer sizes."""
        with self._lock:
            out = dict(self._counts)
            out.update(self._gauges())
            return out

    def reset(self) -> None:
        """Drop every buffered message (counted as dropped) and forget the latest stamps."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._clear_locked()
        self._latest_ns = dict.fromkeys(self._TOPICS)

    def _note_stamp_locked(self, topic: str, stamp_ns: int) -> None:
        """Reset on a backward jump, then record the topic's newest stamp."""
        latest = self._latest_ns[topic]
        tol = self._jump_tolerance_ns
        if latest is not None and tol is not None and stamp_ns < latest - tol:
            self._counts['resets'] += 1
            self._reset_locked()
            latest = None
        self._latest_ns[topic] = stamp_ns if latest is None else max(latest, stamp_ns)

    def _dispatch(self, pairs: list[SyncedPair]) -> list[SyncedPair]:
        # Called without the lock held: a slow or re-entrant callback cannot deadlock us.
        if self._callback is not None:
            for pair in pairs:
                self._callback(pair)
        return pairs

    def _clear_locked(self) -> None:
        raise NotImplementedError

    def _gauges(self) -> dict[str, int]:
        raise NotImplementedError


class LidarDrivenSync(_SyncBase):
    """Every cloud takes the nearest image within ``slop_s``, waiting at most ``timeout_s``.

    ``camera_offset_s`` is the expected camera stamp minus LiDAR stamp (a camera
    that stamps 80 ms before the LiDAR has -0.08). An image's effective stamp is
    ``image stamp - camera_offset_s`` (camera time mapped onto LiDAR time) and is
    compared with the cloud's stamp.
    A cloud is decided as soon as no image still to come can be nearer than the
    best one buffered (or, when none is within slop, can be within slop). What
    may still come follows from two bounds:

    - ``reorder_s``: images may arrive out of stamp order by up to this much (an
      image may come after one stamped up to ``reorder_s`` later: delivery
      jitter, several camera pipelines), so every image still to come has an
      effective stamp of at least ``newest effective stamp - reorder_s``.
    - ``image_interval_lower_bound_s`` (message_filters' ``inter_message_lower_bound``):
      consecutive camera stamps are at least this far apart, so an image still
      to come is at least this far from every buffered one; in particular the
      next image after the newest is stamped ``newest + bound`` or later. With
      a 10 Hz camera 20 ms early and a bound of 90 ms, a cloud is decided when it
      arrives instead of when the next camera frame does. 0 = unknown.

    Otherwise it waits until (a) a later cloud arrives stamped ``timeout_s`` or
    more after it (message time, works at any replay rate), or (b) :meth:`poll`
    is called with ``now_ns >= received_ns + timeout_s`` (the consumer's clock,
    for when clouds stop coming). It then takes the nearest image within slop
    found so far or, if none, is emitted LiDAR-only
    (``on_missing_camera='lidar_only'``) or dropped (``'skip'``).

    The cloud gets the nearest image within slop whenever the stream keeps both
    bounds. An image later out of order than ``reorder_s``, or stamped closer than
    the interval bound to another (a camera faster than the bound implies,
    repeated stamps), may arrive after the decision: the cloud then keeps a
    farther image (still within slop) or none. Images closer than the bound to a
    buffered one are counted in ``interval_bound_violations``.

    Each cloud ends in exactly one of the counters ``paired``, ``lidar_only``,
    ``skipped`` or ``dropped_on_reset``, or is still ``pending``. A cloud nearer
    to a buffered image than anything still to come (an exact match, or any
    pair under a large enough interval bound) is decided on arrival. An image may
    serve several clouds. Equidistant images: the earlier wins; of images
    sharing a stamp, the last received before the decision.
    """

    _COUNTERS = (
        'clouds_in',
        'images_in',
        'paired',
        'lidar_only',
        'skipped',
        'dropped_on_reset',
        'pending_overflow',
        'interval_bound_violations',
        'resets',
    )

    def __init__(
        self,
        slop_s: float = _DEFAULTS['slop_s'],
        camera_offset_s: float = _DEFAULTS['camera_offset_s'],
        timeout_s: float = _DEFAULTS['timeout_s'],
        on_missing_camera: str = _DEFAULTS['on_missing_camera'],
        reorder_s: float = _DEFAULTS['reorder_s'],
        image_interval_lower_bound_s: float = _DEFAULTS['image_interval_lower_bound_s'],
        max_images: int = 16,
        max_pending_clouds: int = 4,
        time_jump_tolerance_s: float | None = 1.0,
        callback: Callable[[SyncedPair], None] | None = None,
    ) -> None:
        """Create the synchroniser.

        Args:
            slop_s: largest |effective image stamp - cloud stamp| of a pair.
            camera_offset_s: expected camera stamp minus LiDAR stamp; subtracted from
                image stamps before comparing (may be negative).
            timeout_s: how long a cloud waits for a later image.
            on_missing_camera: ``'lidar_only'`` or ``'skip'``.
            reorder_s: how far out of stamp order images may arrive (s); 0 = in order.
            image_interval_lower_bound_s: smallest interval between consecutive camera
                stamps (s), e.g. 0.9 / the highest camera rate; 0 = unknown.
            max_images: images kept (oldest evicted first).
            max_pending_clouds: clouds waiting at once; beyond it the oldest is
                decided at once with what is buffered (counted in ``pending_overflow``).
            time_jump_tolerance_s: backward jump on one topic that resets; None never resets.
            callback: called with each pair, outside the lock.

        Raises:
            ConfigError: an argument is out of range.
        """
        super().__init__(time_jump_tolerance_s, callback)
        self.slop_ns = _seconds_to_ns('slop_s', slop_s)
        self.timeout_ns = _seconds_to_ns('timeout_s', timeout_s)
        self.reorder_ns = _seconds_to_ns('reorder_s', reorder_s)
        self.interval_bound_ns = _seconds_to_ns('image_interval_lower_bound_s', image_interval_lower_bound_s)
        offset = float(camera_offset_s)
        if not math.isfinite(offset):
            msg = f'camera_offset_s must be finite, got {camera_offset_s}'
            raise ConfigError(msg)
        self.camera_offset_ns = seconds_to_ns(offset)
        if on_missing_camera not in ON_MISSING_CAMERA:
            msg = f'on_missing_camera must be one of {ON_MISSING_CAMERA}, got {on_missing_camera!r}'
            raise ConfigError(msg)
        self.on_missing_camera = on_missing_camera
        for name, value in (('max_images', max_images), ('max_pending_clouds', max_pending_clouds)):
            if int(value) < 1:
                msg = f'{name} must be >= 1, got {value}'
                raise ConfigError(msg)
        self.max_images = int(max_images)
        self.max_pending_clouds = int(max_pending_clouds)
        # Images sorted by effective stamp (parallel lists so bisect works on stamps).
        self._image_eff_ns: list[int] = []
        self._images: list[StampedMsg] = []
        self._pending: list[StampedMsg] = []

    def add_image(self, msg: StampedMsg) -> list[SyncedPair]:
        """Buffer an image and return (and call back with) the pairs it completes."""
        with self._lock:
            self._note_stamp_locked('image', msg.stamp_ns)
            self._counts['images_in'] += 1
            eff = msg.stamp_ns - self.camera_offset_ns
            pos = bisect.bisect_right(self._image_eff_ns, eff)
            if self._breaks_interval_bound_locked(eff, pos):
                self._counts['interval_bound_violations'] += 1
            self._image_eff_ns.insert(pos, eff)
            self._images.insert(pos, msg)
            if len(self._images) > self.max_images:
                del self._image_eff_ns[0], self._images[0]
            pairs = self._resolve_locked(now_ns=None)
        return self._dispatch(pairs)

    def add_points(self, msg: StampedMsg) -> list[SyncedPair]:
        """Queue a cloud and return (and call back with) the pairs now decided."""
        with self._lock:
            self._note_stamp_locked('points', msg.stamp_ns)
            self._counts['clouds_in'] += 1
            self._pending.append(msg)
            pairs: list[SyncedPair] = []
            while len(self._pending) > self.max_pending_clouds:
                self._counts['pending_overflow'] += 1
                pair = self._decide_locked(self._pending.pop(0))
                if pair is not None:
                    pairs.append(pair)
            pairs.extend(self._resolve_locked(now_ns=None))
        return self._dispatch(pairs)

    def poll(self, now_ns: int) -> list[SyncedPair]:
        """Decide clouds that have waited ``timeout_s`` on the consumer's clock.

        Args:
            now_ns: current time on the clock ``received_ns`` was taken from (the
                node's clock, which follows /clock under use_sim_time).
        """
        with self._lock:
            pairs = self._resolve_locked(now_ns=now_ns)
        return self._dispatch(pairs)

    def _resolve_locked(self, now_ns: int | None) -> list[SyncedPair]:
        newest_cloud = self._latest_ns['points']
        pairs: list[SyncedPair] = []
        waiting: list[StampedMsg] = []
        for cloud in self._pending:
            stamp = cloud.stamp_ns
            received = stamp if cloud.received_ns is None else cloud.received_ns
            ready = (
                self._nearest_is_certain_locked(stamp)
                or (newest_cloud is not None and newest_cloud - stamp >= self.timeout_ns)
                or (now_ns is not None and now_ns - received >= self.timeout_ns)
            )
            if not ready:
                waiting.append(cloud)
                continue
            pair = self._decide_locked(cloud)
            if pair is not None:
                pairs.append(pair)
        self._pending = waiting
        return pairs

    def _breaks_interval_bound_locked(self, eff_ns: int, pos: int) -> bool:
        """Whether an image at ``eff_ns`` (insertion index ``pos``) is closer than the bound to a buffered one."""
        bound, effs = self.interval_bound_ns, self._image_eff_ns
        if bound == 0:
            return False
        return (pos > 0 and eff_ns - effs[pos - 1] < bound) or (pos < len(effs) and effs[pos] - eff_ns < bound)

    def _nearest_is_certain_locked(self, stamp_ns: int) -> bool:
        """Whether no image still to come can be nearer to ``stamp_ns`` than the best buffered one."""
        newest = self._latest_ns['image']
        if newest is None:
            return False
        # The effective stamps (integer ns) an image still to come could have and still win:
        best = self._nearest_index_locked(stamp_ns)
        if best is None:
            # nothing within slop yet: any image within slop would pair;
            first, last = stamp_ns - self.slop_ns, stamp_ns + self.slop_ns
        else:
            # a nearer one, or the earlier of two equidistant ones (a later one sharing the
            # buffered stamp does not count: of equal stamps the last received before the decision wins).
            best_eff = self._image_eff_ns[best]
            delta = abs(best_eff - stamp_ns)
            first = stamp_ns - delta if best_eff > stamp_ns else stamp_ns - delta + 1
            last = stamp_ns + delta - 1
        if first > last:
            return True  # an exact match: nothing can be nearer
        # Every image still to come has an effective stamp >= the reorder bound.
        earliest = self._earliest_image_to_come_locked(max(first, newest - self.camera_offset_ns - self.reorder_ns))
        return earliest > last

    def _earliest_image_to_come_locked(self, from_ns: int) -> int:
        """The earliest effective stamp >= ``from_ns`` an image still to come can have under the interval bound.

        Every camera stamp is at least the bound away from every other, so a new image
        lies outside the open interval (e - bound, e + bound) of each buffered image e.
        Evicted images are not excluded, which can only make the answer earlier (safe).
        """
        bound, effs = self.interval_bound_ns, self._image_eff_ns
        candidate = from_ns
        if bound == 0:
            return candidate
        # Equal-length intervals sorted by centre: one pass pushes the candidate past each covering one.
        for eff in effs[bisect.bisect_right(effs, candidate - bound) :]:
            if eff - bound >= candidate:
                break
            candidate = eff + bound
        return candidate

    def _decide_locked(self, cloud: StampedMsg) -> SyncedPair | None:
        best = self._nearest_index_locked(cloud.stamp_ns)
        if best is not None:
            image = self._images[best]
            self._counts['paired'] += 1
            return SyncedPair(cloud.stamp_ns, cloud.payload, image.payload, image.stamp_ns)
        if self.on_missing_camera == 'lidar_only':
            self._counts['lidar_only'] += 1
            return SyncedPair(cloud.stamp_ns, cloud.payload, None, None)
        self._counts['skipped'] += 1
        return None

    def _nearest_index_locked(self, stamp_ns: int) -> int | None:
        """Index of the buffered image nearest ``stamp_ns`` within slop, or None."""
        effs = self._image_eff_ns
        pos = bisect.bisect_left(effs, stamp_ns)
        # Only the last image before the stamp and the first stamp at or after it can
        # be nearest; the earlier is tried first, and of equal stamps the last received.
        candidates = [pos - 1] if pos > 0 else []
        if pos < len(effs):
            candidates.append(bisect.bisect_right(effs, effs[pos]) - 1)
        best, best_delta = None, None
        for i in candidates:
            delta = abs(effs[i] - stamp_ns)
            if delta <= self.slop_ns and (best_delta is None or delta < best_delta):
                best, best_delta = i, delta
        return best

    def _clear_locked(self) -> None:
        self._counts['dropped_on_reset'] += len(self._pending)
        self._pending = []
        self._images = []
        self._image_eff_ns = []

    def _gauges(self) -> dict[str, int]:
        return {'pending': len(self._pending), 'images_buffered': len(self._images)}


class ApproximateSync(_SyncBase):
    """message_filters' ``ApproximateTimeSynchronizer`` for an image and a cloud topic.

    Same algorithm as the ROS 2 Python implementation: each topic keeps a dict
    ``stamp_ns -> message`` of at most ``queue_size`` entries (a repeated stamp
    replaces the entry, overflow deletes the oldest stamp, possibly the one just
    added). On each arrival, the other topic's stamps within ``slop`` of the new
    stamp (inclusive) are candidates, sorted by distance (stable: insertion
    order breaks ties); the first whose spread with the new stamp is strictly
    below ``slop`` forms a pair, both are removed, and older entries stay.
    Differences: the callback runs outside the lock, and a backward time jump
    resets (pass ``time_jump_tolerance_s=None`` to match exactly).
    It pairs on arrival and never holds a pair back for a nearer message, so an
    inter-message lower bound (which C++ ``ApproximateTime`` uses to end its wait
    for a better set early) would change nothing here: the policy takes none.

    Counters: ``clouds_dropped`` / ``images_dropped`` count entries evicted,
    replaced or cleared, so ``clouds_in == paired + clouds_dropped + clouds_queued``.
    """

    _COUNTERS = ('clouds_in', 'images_in', 'paired', 'clouds_dropped', 'images_dropped', 'resets')

    def __init__(
        self,
        queue_size: int = _DEFAULTS['queue_size'],
        slop_s: float = _DEFAULTS['slop_s'],
        time_jump_tolerance_s: float | None = 1.0,
        callback: Callable[[SyncedPair], None] | None = None,
    ) -> None:
        """Create the synchroniser.

        Args:
            queue_size: messages kept per topic.
            slop_s: pairs need |image stamp - cloud stamp| < slop_s.
            time_jump_tolerance_s: backward jump on one topic that resets; None never resets.
            callback: called with each pair, outside the lock.

        Raises:
            ConfigError: an argument is out of range.
        """
        super().__init__(time_jump_tolerance_s, callback)
        if int(queue_size) < 1:
            msg = f'queue_size must be >= 1, got {queue_size}'
            raise ConfigError(msg)
        self.queue_size = int(queue_size)
        self.slop_ns = _seconds_to_ns('slop_s', slop_s)
        self._queues: dict[str, dict[int, StampedMsg]] = {'image': {}, 'points': {}}

    def add_image(self, msg: StampedMsg) -> list[SyncedPair]:
        """Add an image; returns (and calls back with) the pair it completes, if any."""
        return self._add('image', msg)

    def add_points(self, msg: StampedMsg) -> list[SyncedPair]:
        """Add a cloud; returns (and calls back with) the pair it completes, if any."""
        return self._add('points', msg)

    def _add(self, topic: str, msg: StampedMsg) -> list[SyncedPair]:
        other_topic = 'points' if topic == 'image' else 'image'
        dropped_key = 'images_dropped' if topic == 'image' else 'clouds_dropped'
        with self._lock:
            self._note_stamp_locked(topic, msg.stamp_ns)
            self._counts['images_in' if topic == 'image' else 'clouds_in'] += 1
            mine, other = self._queues[topic], self._queues[other_topic]
            stamp = msg.stamp_ns
            if stamp in mine:
                self._counts[dropped_key] += 1
            mine[stamp] = msg
            while len(mine) > self.queue_size:
                del mine[min(mine)]
                self._counts[dropped_key] += 1
            candidates = [(s, abs(s - stamp)) for s in other if abs(s - stamp) <= self.slop_ns]
            candidates.sort(key=lambda c: c[1])
            pairs: list[SyncedPair] = []
            for other_stamp, delta in candidates:
                # With two topics the spread of the set is the distance itself; the
                # arriving message may have been evicted by its own queue's overflow.
                if delta < self.slop_ns and stamp in mine:
                    first, second = mine.pop(stamp), other.pop(other_stamp)
                    image, cloud = (first, second) if topic == 'image' else (second, first)
                    self._counts['paired'] += 1
                    pairs.append(SyncedPair(cloud.stamp_ns, cloud.payload, image.payload, image.stamp_ns))
                    break
        return self._dispatch(pairs)

    def _clear_locked(self) -> None:
        self._counts['images_dropped'] += len(self._queues['image'])
        self._counts['clouds_dropped'] += len(self._queues['points'])
        self._queues = {'image': {}, 'points': {}}

    def _gauges(self) -> dict[str, int]:
        return {'clouds_queued': len(self._queues['points']), 'images_queued': len(self._queues['image'])}


def make_sync(
    parameters: Mapping[str, Any] | None = None, callback: Callable[[SyncedPair], None] | None = None
) -> LidarDrivenSync | ApproximateSync:
    """The synchroniser selected by the node's ``sync.*`` parameters (defaults for those not given).

    Args:
        parameters: parameter values by dotted name; keys outside ``sync.*`` are ignored.
        callback: called with each pair, outside the synchroniser's lock (``None``: pairs are only returned).

    Returns:
        An :class:`ApproximateSync` for ``sync.policy: approximate``, else a :class:`LidarDrivenSync`.

    Raises:
        ConfigError: a sync parameter is unknown or invalid.
    """
    given = {k: v for k, v in (parameters or {}).items() if k.startswith(_SYNC_PREFIX)}
    values = {**defaults(), **validate_values(given, 'sync parameters')}
    if values['sync.policy'] == 'approximate':
        return ApproximateSync(queue_size=values['sync.queue_size'], slop_s=values['sync.slop_s'], callback=callback)
    return LidarDrivenSync(
        slop_s=values['sync.slop_s'],
        camera_offset_s=values['sync.camera_offset_s'],
        timeout_s=values['sync.timeout_s'],
        on_missing_camera=values['sync.on_missing_camera'],
        reorder_s=values['sync.reorder_s'],
        image_interval_lower_bound_s=values['sync.image_interval_lower_bound_s'],
        callback=callback,
    )
