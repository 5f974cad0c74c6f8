"""A hand-built ONNX model with a valid model card, for testing the detector and node without training.

The graph is deterministic and simple enough to predict by hand:

- ``occupancy[ix, iy, iz]`` = the BEV height-slice channel ``iz`` at ``(ix, iy)``
  (1 where a LiDAR point fell in the voxel, else 0);
- ``anomaly[ix, iy, iz]`` = ``min(1, 0.8 * column max height + 0.2 * camera_valid)``,
  the column's highest point scaled to [0, 1] over the grid's z range.

So tall objects score high and the camera flag visibly shifts scores. Every
input of the real model is declared (the backends check names and shapes
against the card); the geometry inputs are unused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from anovox_perception.core.calibration import Calibration
from anovox_perception.core.geometry import CameraModel, GridSpec
from anovox_perception.core.model_card import CARD_METADATA_KEY
from anovox_perception.core.onnx_file import read_onnx_file
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec, input_shapes

# A small grid and image keep every test fast; still aligned on the AnoVox lattice.
SMALL_SPEC = InputSpec(
    grid=GridSpec(x_min_m=-8.0, x_max_m=24.0, y_min_m=-16.0, y_max_m=16.0, z_min_m=-3.0, z_max_m=5.0),
    image_width=64,
    image_height=48,
    image_stride=16,
    bev_stride=4,
)
CAMERA = CameraModel(width=128, height=96, fx=64.0, fy=64.0, cx=64.0, cy=48.0)
T_CAM_LIDAR = [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def expected_outputs(
    bev: np.ndarray, camera_valid: float, spec: InputSpec = SMALL_SPEC
) -> tuple[np.ndarray, np.ndarray]:
    """What the fake model returns for a (nz + 4, nx, ny) BEV tensor: (occupancy, anomaly), (nx, ny, nz)."""
    nz = spec.grid.nz
    occupancy = np.transpose(bev[:nz], (1, 2, 0))
    max_height = bev[nz + 2][:, :, None]
    anomaly = np.minimum(1.0, 0.8 * max_height + 0.2 * camera_valid) * np.ones_like(occupancy)
    return occupancy.astype(np.float32), anomaly.astype(np.float32)


def write_fake_model(
    path: str | Path,
    spec: InputSpec = SMALL_SPEC,
    name: str = 'fake_tiny',
    training_config: dict | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write the fake model with its card in the ONNX metadata (and as ``<name>.json`` beside it).

    ``calibration`` defaults to an occupancy threshold of 0.5 and the default score rule, chosen on no data.
    """
    path = Path(path)
    nx, ny, nz = spec.grid.shape
    shapes = input_shapes(spec)
    f32 = TensorProto.FLOAT

    def const(name: str, values: list[int]) -> onnx.NodeProto:
        return helper.make_node(
            'Constant', [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
        )

    nodes = [
        const('occ_start', [0]),
        const('occ_end', [nz]),
        const('h_start', [nz + 2]),
        const('h_end', [nz + 3]),
        const('axis1', [1]),
        const('cam_shape', [1, 1, 1, 1]),
        helper.make_node('Slice', ['bev', 'occ_start', 'occ_end', 'axis1'], ['slices']),
        helper.make_node('Transpose', ['slices'], ['occupancy'], perm=[0, 2, 3, 1]),
        helper.make_node('Slice', ['bev', 'h_start', 'h_end', 'axis1'], ['height']),
        helper.make_node('Transpose', ['height'], ['height_t'], perm=[0, 2, 3, 1]),
        helper.make_node('Constant', [], ['w_height'], value=helper.make_tensor('w_height', f32, [], [0.8])),
        helper.make_node('Constant', [], ['w_cam'], value=helper.make_tensor('w_cam', f32, [], [0.2])),
        helper.make_node('Constant', [], ['one'], value=helper.make_tensor('one', f32, [], [1.0])),
        helper.make_node('Mul', ['height_t', 'w_height'], ['h_scaled']),
        helper.make_node('Reshape', ['camera_valid', 'cam_shape'], ['cam4']),
        helper.make_node('Mul', ['cam4', 'w_cam'], ['cam_scaled']),
        helper.make_node('Add', ['h_scaled', 'cam_scaled'], ['raw']),
        helper.make_node('Min', ['raw', 'one'], ['column_score']),
        # Broadcast the column score over the height axis.
        helper.make_node('Mul', ['occupancy', 'one'], ['ones_like_tmp']),
        helper.make_node('Sub', ['ones_like_tmp', 'ones_like_tmp'], ['zeros']),
        helper.make_node('Add', ['zeros', 'column_score'], ['anomaly']),
    ]
    inputs = [helper.make_tensor_value_info(n, f32, list(shapes[n])) for n in INPUT_NAMES]
    outputs = [
        helper.make_tensor_value_info('occupancy', f32, [1, nx, ny, nz]),
        helper.make_tensor_value_info('anomaly', f32, [1, nx, ny, nz]),
    ]
    graph = helper.make_graph(nodes, 'fake_anovox', inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='anovox-test')
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    digest = read_onnx_file(path, hash_graph=True, exclude_keys=[CARD_METADATA_KEY]).graph_sha256
    card = {
        'name': name,
        'version': '0.1.0',
        'input_spec': spec.to_dict(),
        'camera': CAMERA.to_dict(),
        'T_cam_lidar': T_CAM_LIDAR,
        'classes': ['unlabeled', 'road', 'anomaly'],
        'inputs': {n: {'shape': list(shapes[n]), 'dtype': 'float32'} for n in INPUT_NAMES},
        'outputs': {
            'occupancy': {'shape': [1, nx, ny, nz], 'dtype': 'float32'},
            'anomaly': {'shape': [1, nx, ny, nz], 'dtype': 'float32'},
        },
        'calibration': (calibration or Calibration(occupancy_threshold=0.5)).to_dict(),
        'training_config': training_config or {'note': 'hand-built test graph, not trained'},
        'data_hash': 'none',
        'onnx_sha256': digest,
    }
    text = json.dumps(card)
    helper.set_model_props(model, {CARD_METADATA_KEY: text})
    onnx.save(model, str(path))
    path.with_suffix('.json').write_text(text)
    return path
