"""What arrives on the node's inputs: decoded, checked and counted before the synchroniser.

The node's subscription callbacks are one line each: they hand the message to
`InputIntake`, which decodes it (msg_decode), refuses what the pipeline cannot
use (a throttled warning naming the field, a ``bad_input.<kind>`` counter),
notes what is odd but usable (stamps that repeat, go backwards or lie in the
future, a cloud without intensity, a CameraInfo whose size is not the
images'), and returns a `StampedMsg` for the synchroniser or None. Nothing a
publisher sends makes it raise. The offline path (``offline.py``) feeds a bag's
messages through it too, with the log time as the clock, so both count and
refuse alike. No rclpy here: tests and fuzzers drive it with plain messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anovox_perception.core import msg_decode
from anovox_perception.core import pipeline_stats as ps
from anovox_perception.core.detector import CameraFrame, CloudFrame
from anovox_perception.core.errors import AnovoxError, DecodeError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.stamps import NS_PER_S, ns_to_seconds
from anovox_perception.core.sync import StampedMsg

__all__ = ['InputIntake', 'IntakeLimits', 'Warn']

#: ``warn(kind, text)``: log ``text``, throttled per ``kind``.
Warn = Callable[[str, str], None]


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds beyond which a message is refused or its stamp is reported.

    Attributes:
        max_cloud_points: Largest width * height of a cloud (a 128-beam LiDAR gives ~0.3 M);
            bounds the memory and time one message can take.
        max_image_pixels: Largest width * height of an image.
        future_tolerance_s: A stamp this far ahead of the node clock is reported (clock not synchronised).
        jump_tolerance_s: A stamp this far behind the topic's previous one is a time jump (bag loop),
            as the synchroniser's reset threshold.
    """

    max_cloud_points: int = 4 * 1024 * 1024
    max_image_pixels: int = 64 * 1024 * 1024
    future_tolerance_s: float = 60.0
    jump_tolerance_s: float = 1.0


def _stamp_ns(msg: Any) -> int:
    return msg_decode.stamp_to_ns(msg.header.stamp)


def _where(msg: Any) -> str:
    stamp = msg.header.stamp
    return f'at {int(stamp.sec)}.{int(stamp.nanosec):09d} in {str(msg.header.frame_id)!r}'


class InputIntake:
    """Decodes and checks the node's input messages; counts and warns about what it refuses.

    Thread safe: callbacks of different topics may run concurrently.

    Args:
        stats: Where the counters go (``/diagnostics`` reads them).
        warn: Logs a warning, throttled per kind.
        now_ns: The node clock (follows /clock under use_sim_time), to timestamp arrivals.
        limits: Size and stamp bounds.
        intensity_used: Whether the model reads LiDAR intensity (a cloud without it is then reported).
    """

    def __init__(
        self,
        stats: ps.PipelineStats,
        warn: Warn,
        now_ns: Callable[[], int],
        limits: IntakeLimits | None = None,
        intensity_used: bool = True,
    ) -> None:
        self._stats = stats
        self._warn = warn
        self._now_ns = now_ns
        self.limits = limits or IntakeLimits()
        self.intensity_used = intensity_used
        self._lock = threading.Lock()
        self._last_stamp_ns: dict[str, int] = {}
        self._camera_info_size: tuple[int, int] | None = None

    # ------------------------------------------------------------- messages
    def cloud(self, msg: Any) -> StampedMsg | None:
        """A ``sensor_msgs/PointCloud2`` -> the synchroniser's message, or None when refused."""
        received_s = time.monotonic()
        self._stats.count(ps.CLOUDS_IN)
        try:
            self._check_size('PointCloud2', msg, self.limits.max_cloud_points, 'points')
            cloud = msg_decode.pointcloud2_to_xyzi(msg)
            if cloud.points.shape[0] == 0:
                what = (
                    'empty (width * height = 0)'
                    if cloud.total_points == 0
                    else (f'all {cloud.total_points} points have a non-finite x, y or z')
                )
                raise DecodeError(f'PointCloud2 {_where(msg)}: {what}')
            stamp_ns = self._check_stamp('points', msg)
        except Exception as err:  # nothing a publisher sends may stop the node
            self.bad_input('points', err)
            return None
        if cloud.nonfinite_points:
            # Organised clouds mark missing returns with NaN: dropped and counted, not an error,
            # unless the message claims to have none.
            self._stats.count(ps.NONFINITE_POINTS, cloud.nonfinite_points)
            if bool(msg.is_dense):
                self._note(
                    'is_dense',
                    f'PointCloud2 {_where(msg)}: is_dense is true but {cloud.nonfinite_points} of '
                    f'{cloud.total_points} points have a non-finite x, y or z (dropped)',
                )
        if not cloud.has_intensity and self.intensity_used:
            known = ', '.join(msg_decode.INTENSITY_FIELDS)
            self._note(
                'no_intensity',
                f'PointCloud2 {_where(msg)} has no intensity field (looked for {known}; fields are '
                f'{list(cloud.fields)}): intensity read as 0',
            )
        payload = CloudFrame(cloud.points, str(msg.header.frame_id), received_s)
        return StampedMsg(stamp_ns, payload, self._now_ns())

    def image(self, msg: Any) -> StampedMsg | None:
        """A ``sensor_msgs/Image`` -> the synchroniser's message, or None when refused."""
        self._stats.count(ps.IMAGES_IN)
        try:
            self._check_size('Image', msg, self.limits.max_image_pixels, 'pixels')
            rgb = msg_decode.image_to_rgb(msg)
            stamp_ns = self._check_stamp('image', msg)
        except Exception as err:  # nothing a publisher sends may stop the node
            self.bad_input('image', err)
            return None
        return self._camera_frame(msg, rgb, stamp_ns)

    def compressed_image(self, msg: Any) -> StampedMsg | None:
        """A ``sensor_msgs/CompressedImage`` -> the synchroniser's message, or None when refused."""
        self._stats.count(ps.IMAGES_IN)
        try:
            rgb = msg_decode.compressed_to_rgb(msg)
            if rgb.shape[0] * rgb.shape[1] > self.limits.max_image_pixels:
                msg_ = f'CompressedImage: {rgb.shape[1]} x {rgb.shape[0]} pixels exceed {self.limits.max_image_pixels}'
                raise DecodeError(msg_)
            stamp_ns = self._check_stamp('image', msg)
        except Exception as err:  # nothing a publisher sends may stop the node
            self.bad_input('compressed_image', err)
            return None
        return self._camera_frame(msg, rgb, stamp_ns)

    def camera_info(self, msg: Any) -> CameraModel | None:
        """A ``sensor_msgs/CameraInfo`` -> its pinhole model, or None when refused."""
        self._stats.count(ps.CAMERA_INFO_IN)
        try:
            camera = msg_decode.camera_info_to_model(msg)
        except Exception as err:  # nothing a publisher sends may stop the node
            self.bad_input('camera_info', err)
            return None
        with self._lock:
            self._camera_info_size = (camera.width, camera.height)
        return camera

    # -------------------------------------------------------------- helpers
    def bad_input(self, kind: str, err: BaseException) -> None:
        """Count and warn about a refused ``kind`` input (also used for frames the worker refuses)."""
        self._stats.count(ps.BAD_INPUT_PREFIX + kind)
        total = self._stats.total(ps.BAD_INPUT_PREFIX + kind)
        reason = str(err) if isinstance(err, AnovoxError) else f'{type(err).__name__}: {err}'
        self._warn(kind, f'skipped bad {kind} input ({total} so far): {reason}')

    def _note(self, what: str, text: str) -> None:
        """Count and warn about a usable but suspicious input."""
        self._stats.count(ps.INPUT_NOTE_PREFIX + what)
        self._warn(what, f'{text} ({self._stats.total(ps.INPUT_NOTE_PREFIX + what)} so far)')

    def _camera_frame(self, msg: Any, rgb: Any, stamp_ns: int) -> StampedMsg:
        with self._lock:
            info_size = self._camera_info_size
        size = (int(rgb.shape[1]), int(rgb.shape[0]))
        if info_size is not None and info_size != size:
            self._note(
                'camera_info_size',
                f'image {_where(msg)} is {size[0]} x {size[1]} but CameraInfo width x height is '
                f'{info_size[0]} x {info_size[1]}: its intrinsics are scaled to the image',
            )
        return StampedMsg(stamp_ns, CameraFrame(rgb, str(msg.header.frame_id)), self._now_ns())

    @staticmethod
    def _check_size(kind: str, msg: Any, limit: int, unit: str) -> None:
        width, height = int(msg.width), int(msg.height)
        if width * height > limit:
            msg_ = (
                f'{kind}: width * height = {width} * {height} = {width * height} {unit}, more than the {limit} accepted'
            )
            raise DecodeError(msg_)

    def _check_stamp(self, topic: str, msg: Any) -> int:
        """The header stamp (ns); repeated, backward and far-future stamps are noted, not refused."""
        stamp = msg.header.stamp
        if not (0 <= int(stamp.nanosec) < NS_PER_S):
            msg_ = f'header.stamp.nanosec={int(stamp.nanosec)} is outside [0, 1e9)'
            raise DecodeError(msg_)
        stamp_ns = _stamp_ns(msg)
        with self._lock:
            previous = self._last_stamp_ns.get(topic)
            self._last_stamp_ns[topic] = stamp_ns
        where = f'{topic} header.stamp {ns_to_seconds(stamp_ns):.6f} s'
        if previous is not None and stamp_ns == previous:
            self._note(f'stamp_repeated.{topic}', f'{where} repeats the previous one')
        elif previous is not None and stamp_ns < previous:
            back_s = ns_to_seconds(previous - stamp_ns)
            if back_s > self.limits.jump_tolerance_s:
                text = f'{where} jumped back {back_s:.3f} s (bag loop or restart): synchroniser reset'
                self._note(f'stamp_jump_back.{topic}', text)
            else:
                self._note(f'stamp_out_of_order.{topic}', f'{where} is {back_s * 1e3:.1f} ms before the previous one')
        ahead_s = ns_to_seconds(stamp_ns - self._now_ns())
        if ahead_s > self.limits.future_tolerance_s:
            text = f'{where} is {ahead_s:.0f} s ahead of the node clock (clocks not synchronised? use_sim_time?)'
            self._note(f'stamp_future.{topic}', text)
        return stamp_ns
