"""Sample cache: one npz per frame and spec, rebuilt when its source changes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tiny_data import make_split

from anovox_perception.errors import DataError
from anovox_perception.preprocess import build_inputs, input_shapes
from anovox_training.cache import SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.reader import ScenarioReader
from anovox_training.model import ModelConfig
from anovox_training.targets import sparse_targets

SPEC = ModelConfig.tiny().input_spec()


@pytest.fixture(scope='module')
def refs(tmp_path_factory):
    root = make_split(tmp_path_factory.mktemp('tiny') / 'train', 'train', scenarios=1, frames=2, seed=7)
    return frame_refs(resolve_scenarios(root))


def test_cached_frames_hold_the_same_inputs_and_targets_as_direct_preprocessing(refs, tmp_path):
    cache = SampleCache(tmp_path, SPEC)
    paths = cache.ensure(refs)
    assert [p.parent.parent for p in paths] == [cache.dir] * len(refs) and all(p.is_file() for p in paths)
    frame = ScenarioReader(refs[0].scenario_dir).read(refs[0].frame_id)
    loaded = cache.load(refs[0])
    direct = build_inputs(SPEC, frame.rgb, frame.points, frame.camera, frame.T_cam_lidar)
    for name, shape in input_shapes(SPEC).items():
        assert loaded.inputs[name].shape == shape
        np.testing.assert_allclose(loaded.inputs[name], direct[name], atol=1e-6, err_msg=name)
    expected = sparse_targets(frame.voxels, SPEC.grid)
    np.testing.assert_array_equal(loaded.targets.index, expected.index)
    np.testing.assert_array_equal(loaded.targets.label, expected.label)
    assert (loaded.scenario, loaded.frame_id) == (refs[0].scenario, refs[0].frame_id)
    assert loaded.anomalies.shape[1] == 7


def test_an_entry_is_rebuilt_when_its_source_file_changes_and_kept_otherwise(refs, tmp_path):
    cache = SampleCache(tmp_path, SPEC)
    path = cache.ensure(refs[:1])[0]
    built = path.stat().st_mtime_ns
    cache.ensure(refs[:1])
    assert path.stat().st_mtime_ns == built
    source = ScenarioReader(refs[0].scenario_dir).file('points', refs[0].frame_id)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    cache.ensure(refs[:1])
    assert path.stat().st_mtime_ns != built


def test_other_input_specs_use_other_folders_and_corrupt_entries_are_reported(refs, tmp_path):
    other = ModelConfig.tiny(image_width=128).input_spec()
    assert SampleCache(tmp_path, other).dir != SampleCache(tmp_path, SPEC).dir
    cache = SampleCache(tmp_path, SPEC)
    path = cache.ensure(refs[:1])[0]
    path.write_bytes(b'garbage')
    with pytest.raises(DataError, match='unreadable.*delete it to rebuild'):
        cache.load(refs[0])
