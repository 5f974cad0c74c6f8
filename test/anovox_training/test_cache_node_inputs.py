"""Training and the node build bit-identical model inputs for a frame.

Training reads its inputs from the sample cache (encoded once, assembled on load); the
node's Detector preprocesses each synced pair with build_inputs. Both finish with
preprocess.assemble_inputs; these tests hold them to the same bytes, with and without a
camera frame and for a model that ignores LiDAR intensity.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_data import make_split

from anovox_perception.core.detector import CameraFrame, CloudFrame, Detector, DetectorConfig
from anovox_perception.core.errors import DecodeError, GeometryError
from anovox_perception.core.model_card import ModelCard, TensorSpec, load_card
from anovox_perception.core.package_data import resolve_model_path
from anovox_perception.core.preprocess import (
    INPUT_NAMES,
    FrameEncoding,
    InputSpec,
    assemble_inputs,
    build_inputs,
    encode_frame,
    input_shapes,
)
from anovox_perception.core.sync import SyncedPair
from anovox_training.data.cache import FrameRef, SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.frame import AnoVoxFrame
from anovox_training.data.reader import ScenarioReader
from anovox_training.model import ModelConfig
from anovox_training.train.augment import intensity_channel

SPEC = ModelConfig.tiny().input_spec()
IGNORE_SPEC = ModelConfig.tiny(lidar_intensity='ignore').input_spec()


@pytest.fixture(scope='module')
def rig_frame(split) -> AnoVoxFrame:
    (ref, *_) = frame_refs(resolve_scenarios(split))
    return ScenarioReader(ref.scenario_dir).read(ref.frame_id)


class RecordingBackend:
    """Stands in for an inference backend: keeps the inputs it is given and answers all-zero outputs."""

    name = 'recording'
    device = 'cpu'

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.seen: list[dict[str, np.ndarray]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append({name: np.array(value, copy=True) for name, value in inputs.items()})
        return {name: np.zeros(spec.shape, np.float32) for name, spec in self.card.outputs.items()}


def rig_card(spec: InputSpec, frame: AnoVoxFrame) -> ModelCard:
    """The shipped model's card, made for ``spec`` and with the frame's camera and T_cam_lidar as its rig."""
    voxels = TensorSpec((1, *spec.grid.shape), 'float32')
    return dataclasses.replace(
        load_card(resolve_model_path('')),
        input_spec=spec.to_dict(),
        camera=frame.camera,
        T_cam_lidar=tuple(tuple(float(v) for v in row) for row in frame.T_cam_lidar),
        inputs={name: TensorSpec(shape, 'float32') for name, shape in input_shapes(spec).items()},
        outputs={'occupancy': voxels, 'anomaly': voxels},
    )


def node_inputs(spec: InputSpec, frame: AnoVoxFrame, points: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """What the node's Detector hands its backend for this frame (its image, if any, and its cloud)."""
    backend = RecordingBackend(rig_card(spec, frame))
    detector = Detector(DetectorConfig(), backend=backend)
    assert detector.spec == spec  # the node preprocesses with its card's input spec
    cloud = CloudFrame(frame.points if points is None else points, 'lidar')
    image = CameraFrame(frame.rgb, 'camera') if frame.rgb is not None else None
    detector.process(SyncedPair(1_000, cloud, image, 1_000 if image is not None else None))
    (inputs,) = backend.seen
    return inputs


def assert_same_bytes(training: dict[str, np.ndarray], node: dict[str, np.ndarray]) -> None:
    assert list(training) == list(INPUT_NAMES) and list(node) == list(INPUT_NAMES)
    for name in INPUT_NAMES:
        a, b = training[name], node[name]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        assert a.tobytes() == b.tobytes(), f'{name} differs between the training cache and the node'


@pytest.fixture(scope='module')
def split(tmp_path_factory) -> Path:
    return make_split(tmp_path_factory.mktemp('tiny') / 'train', 'train', scenarios=1, frames=2, seed=7)


@pytest.fixture(scope='module')
def lidar_only_ref(split, tmp_path_factory) -> FrameRef:
    """A frame of the same scenario with its RGB folder removed: no camera frame, the rig still known."""
    root = tmp_path_factory.mktemp('lidar_only')
    (scenario,) = resolve_scenarios(split)
    copy = Path(shutil.copytree(scenario, root / scenario.name))
    (rgb_folder,) = copy.glob('RGB*')
    shutil.rmtree(rgb_folder)
    return frame_refs([copy])[0]


SPECS = {'use': SPEC, 'ignore': IGNORE_SPEC}


@pytest.mark.parametrize('intensity', ['use', 'ignore'])
def test_cached_training_inputs_are_the_detectors_inputs_for_a_camera_frame(split, intensity, tmp_path):
    spec = SPECS[intensity]
    refs = frame_refs(resolve_scenarios(split))
    cache = SampleCache(tmp_path, spec)
    cache.ensure(refs)
    for ref in refs:
        frame = ScenarioReader(ref.scenario_dir).read(ref.frame_id)
        assert frame.rgb is not None
        node = node_inputs(SPECS[intensity], frame)
        assert_same_bytes(cache.load(ref).inputs, node)
        assert node['camera_valid'][0, 0] == 1.0 and node['image'].any() and node['cell_valid'].any()
        assert node['bev'][0, intensity_channel(spec.grid)].any() == (intensity == 'use')


@pytest.mark.parametrize('intensity', ['use', 'ignore'])
def test_cached_training_inputs_are_the_detectors_inputs_without_a_camera_frame(lidar_only_ref, intensity, tmp_path):
    frame = ScenarioReader(lidar_only_ref.scenario_dir).read(lidar_only_ref.frame_id)
    assert frame.rgb is None and frame.camera is not None
    cache = SampleCache(tmp_path, SPECS[intensity])
    cache.ensure([lidar_only_ref])
    node = node_inputs(SPECS[intensity], frame)
    assert_same_bytes(cache.load(lidar_only_ref).inputs, node)
    # LiDAR-only: the image is zeros and marked invalid, the rig's geometry is still there.
    assert node['camera_valid'][0, 0] == 0.0 and not node['image'].any() and node['cell_valid'].any()


def test_the_detectors_dropping_of_non_finite_points_leaves_the_inputs_as_training_builds_them(
    split, rig_frame, tmp_path
):
    (ref, *_) = frame_refs(resolve_scenarios(split))
    assert (ref.scenario, ref.frame_id) == (rig_frame.scenario, rig_frame.frame_id)
    points = rig_frame.points
    organised = np.concatenate([points[:1000], np.full((50, points.shape[1]), np.nan, points.dtype), points[1000:]])
    cache = SampleCache(tmp_path, SPEC)
    cache.ensure([ref])
    assert_same_bytes(cache.load(ref).inputs, node_inputs(SPEC, rig_frame, organised))


def test_build_inputs_is_encode_then_assemble_and_assembling_a_reloaded_encoding_changes_nothing(rig_frame, tmp_path):
    frame = rig_frame
    encoding = encode_frame(SPEC, frame.rgb, frame.points)
    assert encoding.image.shape == (SPEC.image_height, SPEC.image_width, 3) and encoding.image.dtype == np.uint8
    path = tmp_path / 'encoding.npz'
    np.savez_compressed(path, image=encoding.image, bev=encoding.bev)
    with np.load(path) as data:
        reloaded = FrameEncoding(image=data['image'], bev=data['bev'])
    direct = build_inputs(SPEC, frame.rgb, frame.points, frame.camera, frame.T_cam_lidar)
    assert_same_bytes(assemble_inputs(SPEC, reloaded, frame.camera, frame.T_cam_lidar), direct)
    bare = assemble_inputs(SPEC, FrameEncoding(None, encoding.bev), None, None)
    assert_same_bytes(bare, build_inputs(SPEC, None, frame.points, None, None))
    assert not any(bare[name].any() for name in ('image', 'camera_valid', 'cell_uv', 'cell_valid', 'token_rays'))


def test_assemble_rejects_an_encoding_made_for_another_spec(rig_frame):
    frame = rig_frame
    encoding = encode_frame(SPEC, frame.rgb, frame.points)
    other_size = ModelConfig.tiny(image_width=128).input_spec()
    with pytest.raises(DecodeError, match=r'image is .* the input spec needs .*encode_frame'):
        assemble_inputs(other_size, encoding, frame.camera, frame.T_cam_lidar)
    with pytest.raises(DecodeError, match=r"bev carries LiDAR intensity but .*lidar_intensity is 'ignore'"):
        assemble_inputs(IGNORE_SPEC, encoding, frame.camera, frame.T_cam_lidar)
    with pytest.raises(DecodeError, match=r'bev is .* float32'):
        assemble_inputs(SPEC, FrameEncoding(encoding.image, encoding.bev.astype(np.float64)), frame.camera, None)
    with pytest.raises(GeometryError, match='an image needs its camera model and T_cam_lidar'):
        assemble_inputs(SPEC, encoding, frame.camera, None)
