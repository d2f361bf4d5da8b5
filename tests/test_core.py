"""Class sets, typed configs, user errors, model zoo and checkpoint I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipa_edge.cli.main import main
from pipa_edge.config import StrictModel, apply_overrides, load_config
from pipa_edge.data.classes import CAMVID11, CITYSCAPES19, CLASS_SETS, SYNTHIA16, ClassSet, get_class_set
from pipa_edge.errors import ConfigError, ModelFileError
from pipa_edge.models import build_segmenter, load_segmenter, load_weights, save_segmenter


def test_class_sets_are_consistent():
    assert CITYSCAPES19.num_classes == 19 and CAMVID11.num_classes == 11 and SYNTHIA16.num_classes == 16
    for cs in CLASS_SETS.values():
        assert len(cs.palette) == cs.num_classes
        assert not (0 <= cs.ignore_index < cs.num_classes)
    # subsets keep Cityscapes' colours by name
    assert SYNTHIA16.palette[SYNTHIA16.index("car")] == CITYSCAPES19.palette[CITYSCAPES19.index("car")]
    lut = SYNTHIA16.mapping_to(CITYSCAPES19)
    assert lut[SYNTHIA16.index("bus")] == CITYSCAPES19.index("bus")
    assert CITYSCAPES19.mapping_to(SYNTHIA16)[CITYSCAPES19.index("terrain")] == 255


def test_colorize_and_roundtrip():
    lab = np.array([[0, 1], [255, 10]], np.uint8)
    rgb = CAMVID11.colorize(lab)
    assert rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == CAMVID11.palette[0] and tuple(rgb[1, 0]) == (0, 0, 0)
    assert ClassSet.from_dict(CAMVID11.to_dict()) == CAMVID11
    with pytest.raises(ConfigError, match="unknown class set 'nope'"):
        get_class_set("nope")


class _Opt(StrictModel):
    lr: float = 1e-3
    iters: int = 10


class _Cfg(StrictModel):
    name: str = "x"
    optim: _Opt = _Opt()


def test_config_overrides_and_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: run1\noptim:\n  lr: 0.01\n")
    cfg = load_config(_Cfg, f, ["optim.iters=5", "optim.lr=2e-4"])
    assert cfg.name == "run1" and cfg.optim.iters == 5 and cfg.optim.lr == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match=r"key 'optim.lrr': unknown key"):
        load_config(_Cfg, f, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"key 'optim.iters'"):
        load_config(_Cfg, f, ["optim.iters=many"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides({}, ["novalue"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml.*invalid YAML"):
        load_config(_Cfg, bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(_Cfg, tmp_path / "missing.yaml")


@pytest.mark.parametrize("arch", ["segformer-b0", "lraspp-mbv3"])
def test_segmenter_shapes_and_checkpoint_roundtrip(tmp_path, arch):
    torch.manual_seed(0)
    m = build_segmenter(arch, CAMVID11).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = m.forward_features(x)
        y = m(x)
    assert out.features.shape[1] == m.feature_dim
    assert out.logits_low.shape[1] == 11 and y.shape == (1, 11, 64, 96)
    assert out.features.shape[-1] * m.output_stride == 96
    p = save_segmenter(tmp_path / "m.pt", m)
    m2 = load_segmenter(p)
    with torch.no_grad():
        assert torch.equal(m2(x), y)


def test_bad_model_files_are_one_line_errors(tmp_path):
    m = build_segmenter("segformer-b0", CAMVID11)
    p = save_segmenter(tmp_path / "m.pt", m)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="trunc.pt: not a readable checkpoint"):
        load_segmenter(trunc)
    with pytest.raises(ModelFileError, match="downloading weights is not supported"):
        load_weights(m, "https://example.invalid/mit_b0.pth")
    with pytest.raises(ModelFileError, match="weights file not found"):
        load_weights(m, tmp_path / "none.pth")
    # encoder-only weights file (as an ImageNet encoder checkpoint would be) loads with a prefix
    enc = {k[len("encoder."):]: v for k, v in m.state_dict().items() if k.startswith("encoder.")}
    torch.save(enc, tmp_path / "enc.pth")
    fresh = build_segmenter("segformer-b0", CAMVID11)
    rep = load_weights(fresh, tmp_path / "enc.pth")
    assert rep["loaded"] == len(enc)
    k = next(iter(enc))
    assert torch.equal(fresh.state_dict()["encoder." + k], m.state_dict()["encoder." + k])
    # shape mismatch names the key
    other = build_segmenter("segformer-b0", CITYSCAPES19)
    save_segmenter(tmp_path / "c19.pt", other)
    with pytest.raises(ModelFileError, match="shape mismatch at 'classifier.weight'"):
        load_weights(build_segmenter("segformer-b0", CAMVID11), tmp_path / "c19.pt")


def test_cli_user_error_is_one_line_exit_2(tmp_path, capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
