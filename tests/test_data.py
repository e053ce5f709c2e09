import json

import numpy as np
import pytest
from PIL import Image

from provlib.core import data, scenes
from provlib.core.errors import ParameterError


def test_procedural_domains_are_deterministic_and_splits_disjoint():
    a = data.procedural_domain("faces", "private", 12, 32, seed=3)
    b = data.procedural_domain("faces", "private", 12, 32, seed=3)
    real = data.procedural_domain("faces", "real", 12, 32, seed=3)
    assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not set(a.ids) & set(real.ids)
    # no real-pool image is a pixel copy of a private one
    assert min(np.abs(x.astype(int) - y.astype(int)).mean() for x in a.images for y in real.images) > 0


def test_every_caption_word_is_in_the_vocabulary():
    vocab = set(scenes.vocabulary())
    for domain in ("faces", "scenes", "generic"):
        for caption in data.procedural_domain(domain, "private", 40, 32, seed=0, caption_list_size=50).captions:
            assert set(caption.split()) <= vocab, caption


def test_unknown_domain_and_split_are_named():
    with pytest.raises(ParameterError, match="'domain'"):
        data.procedural_domain("cats", "private", 4, 32, 0)
    with pytest.raises(ParameterError, match="'split'"):
        data.procedural_domain("faces", "train", 4, 32, 0)


def _folder(tmp_path, rows, fmt="csv"):
    for name, _ in rows:
        Image.fromarray(np.full((40, 60, 3), 100, np.uint8)).save(tmp_path / name)
    if fmt == "csv":
        (tmp_path / "captions.csv").write_text("file_name,caption\n" + "".join(f"{n},{c}\n" for n, c in rows))
    else:
        (tmp_path / "metadata.jsonl").write_text("".join(json.dumps({"file_name": n, "text": c}) + "\n" for n, c in rows))
    return tmp_path


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_folder_dataset_reads_csv_and_jsonl(tmp_path, fmt):
    folder = _folder(tmp_path, [("a.png", "a red circle"), ("b.png", "a blue square")], fmt)
    ds = data.folder_dataset(folder, resolution=16)
    assert ds.images.shape == (2, 16, 16, 3) and ds.captions == ["a red circle", "a blue square"]


def test_missing_folder_and_caption_file_are_named(tmp_path):
    with pytest.raises(ParameterError, match="dataset directory"):
        data.folder_dataset(tmp_path / "nope", 16)
    with pytest.raises(ParameterError, match="caption file"):
        data.folder_dataset(tmp_path, 16)


def test_unreadable_caption_file_is_named(tmp_path):
    (tmp_path / "captions.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ParameterError, match="caption file"):
        data.folder_dataset(tmp_path, 16)
    (tmp_path / "captions.csv").write_text("name,text\nx.png,hello\n")
    with pytest.raises(ParameterError, match="file_name and caption"):
        data.folder_dataset(tmp_path, 16)


def test_unreadable_image_names_the_file(tmp_path):
    folder = _folder(tmp_path, [("a.png", "ok")])
    (folder / "broken.png").write_text("not an image")
    (folder / "captions.csv").write_text("file_name,caption\na.png,ok\nbroken.png,bad\n")
    with pytest.raises(ParameterError, match="broken.png"):
        data.folder_dataset(folder, 16)


def test_captioned_set_round_trips_without_pickle(tmp_path):
    ds = data.procedural_domain("scenes", "real", 5, 32, seed=1, caption_list_size=10)
    ds.save(tmp_path / "set")
    back = data.CaptionedImageSet.load(tmp_path / "set")
    assert np.array_equal(back.images, ds.images) and back.captions == ds.captions and back.ids == ds.ids


def test_private_split_uses_each_caption_once_before_repeating():
    private = data.procedural_domain("faces", "private", 70, 32, seed=0)
    assert len(set(private.captions[:64])) == 64  # the whole 64-caption face vocabulary, once
    assert len(set(private.captions)) == 64


def test_identity_grid_adds_content_the_caption_does_not_predict():
    from provlib.attribution.memorization import same_caption_spread

    # faces already had an undescribed background colour; the grid adds most to object scenes
    for domain, gain in (("faces", 0.005), ("scenes", 0.03)):
        plain = data.procedural_domain(domain, "real", 96, 32, seed=2, caption_list_size=16)
        gridded = data.procedural_domain(domain, "real", 96, 32, seed=2, caption_list_size=16, identity_grid=4)
        assert gridded.captions == plain.captions  # the caption is unchanged: the grid is undescribed
        assert same_caption_spread(gridded) > same_caption_spread(plain) + gain
    # off by default: images without the grid are exactly those of earlier releases' call
    assert (data.procedural_domain("faces", "real", 4, 32, seed=2, identity_grid=0).images
            == data.procedural_domain("faces", "real", 4, 32, seed=2).images).all()


def test_vae_downsampling_sets_the_latent_size():
    import torch

    from provlib.core import models
    for factor, side in ((4, 8), (8, 4)):
        vae = models.build_tiny_vae(32, downsampling=factor)
        with torch.no_grad():
            latent = vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean
        assert latent.shape[-2:] == (side, side)
    with pytest.raises(ParameterError, match="vae_downsampling"):
        models.build_tiny_vae(32, downsampling=2)


def test_autoencoder_levers_set_its_shape_and_enter_its_key_only_when_moved(tmp_path):
    import torch

    from provlib.core import models
    from provlib.core.zoo import Zoo
    from provlib.presets import load_preset
    vae = models.build_tiny_vae(32, latent_channels=16, downsampling=8, widths=models.vae_widths(24))
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean.shape[1] == 16
    assert vae.config.block_out_channels[0] == 24
    key = Zoo(load_preset("smoke"), tmp_path, show_progress=False).vae_config()
    # the defaults leave the key (and every cached artifact built on it) as it was before the levers existed
    assert "latent_channels" not in key and "width" not in key
    moved = Zoo(load_preset("smoke", vae_latent_channels=16, vae_width=32), tmp_path, show_progress=False).vae_config()
    assert moved["latent_channels"] == 16 and moved["width"] == 32
    with pytest.raises(ParameterError, match="vae_width"):
        load_preset("smoke", vae_width=12)


def test_unet_width_lever_builds_a_narrower_base_and_enters_only_its_key(tmp_path):
    from provlib.core import models
    from provlib.core.zoo import Zoo
    from provlib.presets import load_preset
    vae = models.build_tiny_vae(32, downsampling=8)
    pipe = models.build_tiny_pipeline("v2", ["a", "face"], vae, seed=0, unet_width=32)
    assert tuple(pipe.unet.config.block_out_channels) == (32, 64)
    assert tuple(models.build_tiny_pipeline("v2", ["a"], vae, seed=0).unet.config.block_out_channels) == (48, 96)
    default = Zoo(load_preset("smoke"), tmp_path, show_progress=False)
    narrowed = Zoo(load_preset("smoke", unet_widths={"v2": 32}), tmp_path, show_progress=False)
    # only the narrowed base gets a new key; every other cached base keeps its own
    assert "unet_width" not in default.base_config("v2") and narrowed.base_config("v2")["unet_width"] == 32
    assert narrowed.base_config("v1") == default.base_config("v1")
    for bad in ({"v3": 32}, {"v2": 12}, {"v2": "32"}):
        with pytest.raises(ParameterError, match="unet_widths"):
            load_preset("smoke", unet_widths=bad)
