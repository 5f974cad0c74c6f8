"""The render command writes a contact sheet PNG of a frame."""

from __future__ import annotations

import numpy as np
from handmade_scenarios import write_layout_a, write_layout_b
from PIL import Image

from anovox_training.data.frame import AnoVoxFrame
from anovox_training.data.render import main, render_frame


def test_render_writes_a_png_of_the_requested_frame(tmp_path, capsys):
    truth = write_layout_b(tmp_path)
    out = tmp_path / 'sheets' / 'sheet.png'
    assert main([str(truth.path), '--frame', '101', '--out', str(out), '--dpi', '50']) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size == (650, 500)
        pixels = np.asarray(image.convert('RGB'))
    # The anomaly points and voxels are drawn in AnoVox's red somewhere in the BEV panel.
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red[250:, 325:].any()


def test_frames_with_missing_sensors_render_empty_panels():
    frame = AnoVoxFrame(scenario='Scenario_x', frame_id=3, points=np.zeros((5, 4), np.float32))
    figure = render_frame(frame)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:3] == ['RGB', 'Semantic', 'Depth']
    texts = [t.get_text() for ax in figure.axes[:3] for t in ax.texts]
    assert texts == ['no rgb', 'no semantic', 'no depth']


def test_unknown_frame_fails_with_a_message(tmp_path, capsys):
    truth = write_layout_a(tmp_path)
    assert main([str(truth.path), '--frame', '99', '--out', str(tmp_path / 'x.png')]) == 1
    assert 'Scenario_a frame 99: no such frame; the scenario has 2 frames, 7..8' in capsys.readouterr().err
    assert not (tmp_path / 'x.png').exists()
