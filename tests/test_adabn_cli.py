"""``pipa-edge adabn``: a checkpoint's BN statistics re-estimated on unlabelled images, weights untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipa_edge.cli.main import main
from pipa_edge.data.build import build_eval_dataset
from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError, DataError
from pipa_edge.models.io import load_segmenter, read_checkpoint, save_segmenter
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.train.adabn import adabn_checkpoint, default_out_path
from pipa_edge.train.precise_bn import bn_layers, recompute_bn_stats
from pipa_edge.train.toydata import make_folder_dataset


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "final.pt"
    save_segmenter(path, build_segmenter("lraspp-mbv3", SYNTH11), kind="final", metrics={"miou": 0.5})
    return path


def _dark_folder(root, n, size, seed=0):
    """Unlabelled images of another 'domain' (dark, bluish) than the model's training data."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
        img[..., 2] += 40
        Image.fromarray(img).save(root / "images" / f"f{i:03d}.png")
    return root


def test_statistics_are_those_of_the_images_and_weights_are_unchanged(tmp_path, ckpt):
    root = _dark_folder(tmp_path / "dusk", 6, (40, 48))
    out = tmp_path / "new.pt"
    rep = adabn_checkpoint(ckpt, [f"folder:{root}"], out, imgsz=(32, 32), num_images=6, batch_size=3,
                           device="cpu", show_progress=False)
    assert rep["images"] == 6 and rep["batches"] == 2 and rep["image_size"] == [32, 32]
    old, new = load_segmenter(ckpt), load_segmenter(out)
    # the reference: the same two batches (the seeded order) through recompute_bn_stats
    ds = build_eval_dataset({"type": "folder", "root": str(root), "classes": "synth11", "labels": False,
                            "resize": [32, 32]})
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0)).tolist()
    imgs = torch.stack([torch.as_tensor(np.ascontiguousarray(ds[i]["image"])) for i in order])
    ref = load_segmenter(ckpt)
    assert recompute_bn_stats(ref, [imgs[:3], imgs[3:]]) == 2
    sd_old, sd_new, sd_ref = old.state_dict(), new.state_dict(), ref.state_dict()
    bn_keys = {f"{n}.{b}" for n, m in old.named_modules() if m in bn_layers(old)
               for b in ("running_mean", "running_var", "num_batches_tracked")}
    changed = [k for k in sd_old if not torch.equal(sd_old[k], sd_new[k])]
    assert changed and set(changed) <= bn_keys  # only BN buffers differ ...
    assert all(torch.allclose(sd_new[k].float(), sd_ref[k].float(), atol=1e-5) for k in bn_keys)  # ... as computed
    obj = read_checkpoint(out)
    assert obj["bn_stats"]["images"] == 6 and obj["bn_stats"]["checkpoint"] == str(ckpt)
    assert obj["kind"] == "adabn" and "metrics" not in obj and obj["metrics_before_adabn"] == {"miou": 0.5}


def test_cli_scores_before_and_after_and_prints_next_command(tmp_path, ckpt, capsys):
    root = make_folder_dataset(tmp_path / "val", SYNTH11, n=4, size=(40, 48), seed=1)
    rc = main(["adabn", str(ckpt), "--data", f"folder:{root}", "--imgsz", "32", "32", "--batch-size", "2",
               "--eval", f"folder:{root}", "--device", "cpu"])
    assert rc == 0
    out = default_out_path(ckpt)
    assert out.name == "final_adabn.pt" and out.is_file()
    text = capsys.readouterr()
    assert "pipa-edge export" in text.out + text.err and "folder_val_train" in text.out
    before_after = adabn_checkpoint(ckpt, [f"folder:{root}"], tmp_path / "x.pt", imgsz=(32, 32), batch_size=2,
                                    device="cpu", evaluate_on=[f"folder:{root}"], show_progress=False)
    e = before_after["evaluations"]["folder_val_train"]
    assert 0.0 <= e["miou_before"] <= 1.0 and 0.0 <= e["miou_after"] <= 1.0


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, ckpt, capsys):
    a = _dark_folder(tmp_path / "a", 3, (40, 48))
    b = _dark_folder(tmp_path / "b", 3, (24, 40), seed=1)
    cases = [
        (["--data", f"folder:{a}", "--out", str(ckpt)], "refusing to overwrite the input"),
        (["--data", f"folder:{a}", "--data", f"folder:{b}", "--num-images", "6", "--batch-size", "6"],
         "differ in size"),
        (["--data", f"folder:{a}", "--batch-size", "4"], "need at least --batch-size 4"),
        (["--data", f"folder:{a}", "--batch-size", "1"], "--batch-size 1"),
        (["--data", "imagenet:/x"], "unknown dataset type 'imagenet'"),
        (["--data", f"folder:{tmp_path / 'missing'}"], "missing"),
    ]
    for extra, msg in cases:
        out = tmp_path / "never.pt"
        argv = ["adabn", str(ckpt), *extra] + ([] if "--out" in extra else ["--out", str(out)])
        assert main(argv + ["--device", "cpu"]) == 2, extra
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (extra, err)
        assert not out.exists()
    assert read_checkpoint(ckpt)["kind"] == "final"  # the input is intact
    with pytest.raises((ConfigError, DataError)):
        adabn_checkpoint(ckpt, [], tmp_path / "y.pt")


def test_bare_video_path_and_real_camvid_dusk(tmp_path, ckpt, dashcam_video, camvid_root):
    # a real dash-cam clip given as a bare path (as `eval --video` takes it), a few frames at a small size
    rep = adabn_checkpoint(ckpt, [str(dashcam_video)], tmp_path / "v.pt", imgsz=(64, 96), num_images=4,
                           batch_size=2, device="cpu", show_progress=False)
    assert rep["data"][0].startswith("video_") and rep["images"] == 4 and rep["image_size"] == [64, 96]
    # real CamVid dusk frames for a CamVid-class model: statistics move toward the darker frames
    torch.manual_seed(0)
    from pipa_edge.data.classes import CAMVID11

    ck = save_segmenter(tmp_path / "camvid.pt", build_segmenter("lraspp-mbv3", CAMVID11))
    day = adabn_checkpoint(ck, [f"camvid:{camvid_root}:day_train"], tmp_path / "day.pt", imgsz=(60, 80),
                           num_images=8, batch_size=4, device="cpu", show_progress=False)
    dusk = adabn_checkpoint(ck, [f"camvid:{camvid_root}:dusk_train"], tmp_path / "dusk.pt", imgsz=(60, 80),
                            num_images=8, batch_size=4, device="cpu", show_progress=False)
    assert day["batches"] == dusk["batches"] == 2
    first = lambda p: next(b for b in bn_layers(load_segmenter(p)))  # noqa: E731 - the stem's BN
    # the first BN sees the (normalised) pixels through one conv: dusk (mean brightness ~60) and day (~122)
    # give clearly different statistics
    assert not torch.allclose(first(day["out"]).running_mean, first(dusk["out"]).running_mean, atol=1e-2)


def test_from_a_training_state_writes_a_plain_segmenter_checkpoint(tmp_path, ckpt):
    # a last.pt-like file: the segmenter plus a method/optimizer state that holds the old statistics
    obj = read_checkpoint(ckpt)
    state = {**obj, "kind": "train", "method": {"student.x": torch.zeros(3)}, "optimizer": {"state": {}},
             "iteration": 600}
    torch.save(state, tmp_path / "last.pt")
    root = _dark_folder(tmp_path / "imgs", 4, (32, 32))
    rep = adabn_checkpoint(tmp_path / "last.pt", [f"folder:{root}"], None, batch_size=2, device="cpu",
                           show_progress=False)
    new = read_checkpoint(rep["out"])
    assert rep["out"].endswith("last_adabn.pt") and new["kind"] == "adabn" and new["iteration"] == 600
    assert "optimizer" not in new and "method" not in new  # nothing that would restore the old statistics
