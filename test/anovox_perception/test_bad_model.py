"""A model file the detector cannot use is refused at start with one line naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from fake_onnx_model import write_fake_model

from anovox_perception.core.detector import Detector, DetectorConfig
from anovox_perception.core.errors import AnovoxError
from anovox_perception.core.model_card import CARD_METADATA_KEY


@pytest.fixture(scope='module')
def good_model(tmp_path_factory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp('model') / 'fake_tiny.onnx')


def with_card_edit(good: Path, out: Path, edit) -> Path:
    """A copy of the model whose embedded card went through ``edit`` (the graph, and so its hash, unchanged)."""
    model = onnx.load(str(good))
    for prop in model.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            card = json.loads(prop.value)
            edit(card)
            prop.value = json.dumps(card)
    onnx.save(model, str(out))
    return out


def refusal(path: Path) -> str:
    with pytest.raises(AnovoxError) as caught:
        Detector(DetectorConfig(model_path=str(path), backend='onnxruntime'))
    text = str(caught.value)
    assert '\n' not in text, 'one line'
    assert str(path) in text, 'names the file'
    return text


def test_a_missing_model_file_is_refused(tmp_path):
    assert 'no such file' in refusal(tmp_path / 'absent.onnx')


def test_a_corrupt_model_file_is_refused(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'\x08\x07not a model' * 50)
    assert 'is not a valid ONNX protobuf file' in refusal(path)


def test_a_truncated_model_file_is_refused(tmp_path, good_model):
    path = tmp_path / 'truncated.onnx'
    path.write_bytes(good_model.read_bytes()[: good_model.stat().st_size // 2])
    assert 'is truncated' in refusal(path)


def test_a_card_that_does_not_match_the_preprocessing_is_refused(tmp_path, good_model):
    def wider_image(card: dict) -> None:
        card['input_spec']['image_width'] = 96

    text = refusal(with_card_edit(good_model, tmp_path / 'edited.onnx', wider_image))
    assert "does not match its preprocessing (input_spec): input 'image' shape [1, 3, 48, 64] != [1, 3, 48, 96]" in text


def test_a_card_whose_graph_hash_is_wrong_is_refused(tmp_path, good_model):
    def other_hash(card: dict) -> None:
        card['onnx_sha256'] = '0' * 64

    assert 'sha256' in refusal(with_card_edit(good_model, tmp_path / 'rehashed.onnx', other_hash))
