"""Sample cache: one npz per frame and spec, rebuilt when its source changes."""

from __future__ import annotations

import multiprocessing
import os
import shutil

import numpy as np
import pytest
from tiny_data import make_split

from anovox_perception.core.errors import DataError
from anovox_perception.core.preprocess import build_inputs, input_shapes
from anovox_training.data import cache as cache_module
from anovox_training.data.cache import SampleCache, frame_refs
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.reader import ScenarioReader
from anovox_training.data.targets import sparse_targets
from anovox_training.model import ModelConfig

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


@pytest.fixture
def bad_refs(refs, tmp_path):
    """The tiny split copied, with the second frame's LiDAR file cut short."""
    root = tmp_path / 'data'
    shutil.copytree(refs[0].scenario_dir.parent, root)
    copied = frame_refs(resolve_scenarios(root))
    points = ScenarioReader(copied[1].scenario_dir).file('points', copied[1].frame_id)
    points.write_bytes(points.read_bytes()[:100])
    return copied


@pytest.mark.parametrize('workers', [1, 2])
def test_an_unreadable_frame_is_left_out_and_named_whether_built_here_or_in_a_worker(bad_refs, tmp_path, workers):
    build = SampleCache(tmp_path / 'cache', SPEC).build(bad_refs, workers=workers)
    assert build.refs == bad_refs[:1] and len(build.paths) == 1 and build.paths[0].is_file()
    (bad,) = build.bad
    assert bad.ref == bad_refs[1] and f'frame {bad_refs[1].frame_id}' in bad.problem and '.npy' in bad.problem
    assert build.summary('frames').startswith('skipped 1 of 2 frames that cannot be read: ')
    with pytest.raises(DataError, match=r'not a readable \.npy.*data.on_bad_frame: skip'):
        SampleCache(tmp_path / 'cache', SPEC).build(bad_refs, workers=workers, on_bad_frame='stop')


@pytest.mark.skipif(multiprocessing.get_start_method() != 'fork', reason='the patched decoder reaches workers by fork')
def test_a_worker_that_dies_is_reported_with_the_frames_it_may_have_been_building(refs, tmp_path, monkeypatch):
    def die(frame, spec):
        os._exit(3)  # as a decoder crash or the out-of-memory killer would

    monkeypatch.setattr(cache_module, 'sample_arrays', die)
    with pytest.raises(DataError, match=rf'worker process died.*{refs[0].scenario} frame.*data.cache_workers: 1'):
        SampleCache(tmp_path, SPEC).build(refs, workers=2)
