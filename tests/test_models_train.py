import numpy as np
import pytest
import torch

from provlib.core import data, models, scenes
from provlib.core.errors import ParameterError
from provlib.core.generate import generate
from provlib.core.train import encode_each_caption_once, train_denoiser
from provlib.presets import load_preset


@pytest.fixture(scope="module")
def tiny_pipe():
    torch.manual_seed(0)
    return models.build_tiny_pipeline("v1", scenes.vocabulary(), models.build_tiny_vae(32), seed=0)


@pytest.fixture(scope="module")
def tiny_data():
    return data.procedural_domain("faces", "private", 16, 32, seed=0)


def fresh_pipe():
    """An untrained tiny pipeline, the same at every call: the training tests compare runs from one start."""
    return models.build_tiny_pipeline("v1", scenes.vocabulary(), models.build_tiny_vae(32, seed=1), seed=1)


def test_tokenizer_is_word_level_and_pads():
    tok = models.build_word_tokenizer(scenes.vocabulary())
    ids = tok(["a smiling face with blond hair", ""], padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids[0]) == tok.model_max_length
    assert ids[0][:8] == [tok.bos_token_id] + tok.convert_tokens_to_ids("a smiling face with blond hair".split()) + [tok.eos_token_id]
    assert tok.unk_token_id not in ids[0]


def test_sd_loading_path_round_trips_a_saved_pipeline(tiny_pipe, tmp_path):
    """The `sd` preset loads checkpoints with models.load_pipeline; a tiny pipeline saved to disk goes the same way."""
    models.save_pipeline(tiny_pipe, tmp_path / "pipe")
    assert list((tmp_path / "pipe" / "unet").glob("*.safetensors")), "weights must be safetensors"
    assert not list((tmp_path / "pipe").rglob("*.bin")) and not list((tmp_path / "pipe").rglob("*.pt"))
    (tmp_path / "faces").mkdir()
    sd = load_preset("sd", dataset_dirs={"faces": str(tmp_path / "faces"), "scenes": str(tmp_path / "faces")},
                     base_checkpoints={"v1": str(tmp_path / "pipe"), "v2": str(tmp_path / "pipe")})
    loaded = models.load_pipeline(sd.models.base_checkpoints["v1"], device="cpu", dtype="float32", allow_download=sd.models.allow_download)
    kwargs = dict(seed=5, num_inference_steps=3, show_progress=False)
    a = generate(tiny_pipe, ["a serious face with gray hair"], **kwargs).images
    b = generate(loaded, ["a serious face with gray hair"], **kwargs).images
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_bad_checkpoint_locations_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="base_checkpoints.*existing local pipeline folder"):
        models.load_pipeline(tmp_path / "missing", parameter="base_checkpoints")
    with pytest.raises(ParameterError, match="model_index.json"):
        models.load_pipeline(tmp_path, parameter="base_checkpoints")
    # a hub id is never fetched unless the user allows downloads
    with pytest.raises(ParameterError, match="allow_download=True"):
        models.load_pipeline("some-org/some-model")


def test_generation_is_seeded_per_image(tiny_pipe):
    kwargs = dict(images_per_prompt=2, seed=1, num_inference_steps=3, show_progress=False, batch_size=3)
    a = generate(tiny_pipe, ["a smiling face with black hair", "a serious face with brown hair"], **kwargs)
    b = generate(tiny_pipe, ["a smiling face with black hair", "a serious face with brown hair"], **kwargs)
    assert a.images.shape == (4, 32, 32, 3) and len(set(a.seeds)) == 4
    assert np.array_equal(a.images, b.images)
    assert list(a.prompt_index) == [0, 0, 1, 1]


def test_resumed_training_matches_uninterrupted(tiny_data, tmp_path):
    kwargs = dict(steps=6, batch_size=4, lr=1e-3, seed=7, show_progress=False)
    full = train_denoiser(fresh_pipe(), tiny_data, **kwargs)
    # first run stops after its checkpoint at step 3 (as a crash would), the second resumes from it
    train_denoiser(fresh_pipe(), tiny_data, **{**kwargs, "steps": 3}, checkpoint_dir=tmp_path, checkpoint_every=3)
    assert not (tmp_path / "step-3").exists()  # a finished run writes no checkpoint at its last step
    partial = fresh_pipe()
    train_denoiser(partial, tiny_data, **{**kwargs, "steps": 4}, checkpoint_dir=tmp_path, checkpoint_every=3)
    assert (tmp_path / "step-3" / "unet.safetensors").exists()
    resumed_pipe = fresh_pipe()
    resumed = train_denoiser(resumed_pipe, tiny_data, **kwargs, checkpoint_dir=tmp_path, checkpoint_every=3)
    assert len(resumed) == 6
    np.testing.assert_allclose(resumed, full, rtol=1e-4, atol=1e-6)


def test_weight_average_is_left_in_the_pipeline_and_resumes_exactly(tiny_data, tmp_path):
    """``ema_decay`` ends on the averaged weights, and a run resumed from a checkpoint ends on the same ones."""
    kwargs = dict(steps=6, batch_size=4, lr=1e-3, seed=7, show_progress=False)
    plain, averaged = fresh_pipe(), fresh_pipe()
    train_denoiser(plain, tiny_data, **kwargs)
    train_denoiser(averaged, tiny_data, **kwargs, ema_decay=0.999)
    weight = "conv_in.weight"
    assert not torch.allclose(plain.unet.state_dict()[weight], averaged.unet.state_dict()[weight])
    train_denoiser(fresh_pipe(), tiny_data, **{**kwargs, "steps": 4}, ema_decay=0.999, checkpoint_dir=tmp_path,
                   checkpoint_every=3)
    assert (tmp_path / "step-3" / "ema_unet.pt").exists()
    resumed = fresh_pipe()
    train_denoiser(resumed, tiny_data, **kwargs, ema_decay=0.999, checkpoint_dir=tmp_path, checkpoint_every=3)
    torch.testing.assert_close(resumed.unet.state_dict()[weight], averaged.unet.state_dict()[weight], rtol=1e-4, atol=1e-6)


def test_a_decaying_learning_rate_resumes_on_its_schedule(tiny_data, tmp_path):
    """A cosine schedule trains otherwise than a constant rate, and a resumed run continues it where it stopped."""
    kwargs = dict(steps=6, batch_size=4, lr=1e-3, seed=7, show_progress=False)
    constant, decayed = fresh_pipe(), fresh_pipe()
    constant_losses = train_denoiser(constant, tiny_data, **kwargs)
    decayed_losses = train_denoiser(decayed, tiny_data, **kwargs, lr_schedule="cosine")
    assert decayed_losses[0] == pytest.approx(constant_losses[0])  # the first step runs at the full rate
    weight = "conv_in.weight"
    assert not torch.allclose(constant.unet.state_dict()[weight], decayed.unet.state_dict()[weight])

    def crash(step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed after step 4, with its checkpoint of step 3 saved
        train_denoiser(fresh_pipe(), tiny_data, **kwargs, lr_schedule="cosine", checkpoint_dir=tmp_path, checkpoint_every=3,
                       after_step=crash)
    resumed = fresh_pipe()
    train_denoiser(resumed, tiny_data, **kwargs, lr_schedule="cosine", checkpoint_dir=tmp_path, checkpoint_every=3)
    torch.testing.assert_close(resumed.unet.state_dict()[weight], decayed.unet.state_dict()[weight], rtol=1e-4, atol=1e-6)


def test_min_snr_weighting_changes_the_loss_and_not_the_draws(tiny_data):
    kwargs = dict(steps=3, batch_size=4, lr=1e-3, seed=7, show_progress=False)
    plain = train_denoiser(fresh_pipe(), tiny_data, **kwargs)
    weighted = train_denoiser(fresh_pipe(), tiny_data, **kwargs, snr_gamma=5.0)
    # min(SNR, 5) / SNR <= 1: the first step's loss (same weights, same draws) can only shrink
    assert weighted[0] <= plain[0] and weighted != plain


def test_two_runs_of_one_training_share_a_checkpoint_folder(tmp_path):
    """Two notebooks building the same artifact save the same step: the second save must not fail."""
    from provlib.core.train import _latest_checkpoint, _save_checkpoint

    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(module.parameters())
    _save_checkpoint(tmp_path, 3, {"unet": module}, optimizer, [0.5, 0.4, 0.3])
    _save_checkpoint(tmp_path, 3, {"unet": module}, optimizer, [0.5, 0.4, 0.3])  # the other run, same step
    (tmp_path / ".tmp-step-2-deadbeef").mkdir()  # left by a run killed mid-save
    _save_checkpoint(tmp_path, 6, {"unet": module}, optimizer, [0.5] * 6)
    assert _latest_checkpoint(tmp_path).name == "step-6"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-6"]


def test_generating_mid_training_works_under_mixed_precision():
    """A copy curve (notebook 01) generates while the source trains. Under mixed precision the trained UNet holds fp32
    master weights while the frozen autoencoder keeps the half-precision ones; a lent H200 showed the paper-scale run
    failing there (``Input type (float) and bias type (c10::Half)``). The CPU's half precision, bfloat16, has the
    same mismatch, so the call is checked here."""
    pipe = fresh_pipe().to(dtype=torch.bfloat16)
    images = data.CaptionedImageSet(np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
                                    ["a smiling face"] * 8, [str(i) for i in range(8)])
    drawn = []

    def after_step(step):
        drawn.append(generate(pipe, ["a smiling face"], num_inference_steps=2, show_progress=False).images)
    train_denoiser(pipe, images, steps=2, batch_size=4, lr=1e-4, seed=0, mixed_precision="bf16", after_step=after_step,
                   show_progress=False)
    assert len(drawn) == 2 and drawn[-1].shape == (1, 32, 32, 3)
    assert pipe.unet.dtype == torch.bfloat16  # the weights go back to the precision they came in


def test_text_encoder_training_and_channels_last_keep_the_recipe(tiny_data):
    # each distinct caption goes through the text encoder once a step, and the UNet may train channels-last: the same
    # recipe as encoding every row in the default memory format, up to floating-point rounding
    kwargs = dict(steps=4, batch_size=8, lr=1e-3, seed=3, show_progress=False, train_text_encoder=True)
    plain_pipe, fast_pipe = fresh_pipe(), fresh_pipe()
    plain = train_denoiser(plain_pipe, tiny_data, **kwargs, channels_last=False)
    fast = train_denoiser(fast_pipe, tiny_data, **kwargs, channels_last=True)
    # the losses of steps 2-4 are those of the weights the earlier steps left (Adam's normalized updates can move a
    # near-zero-gradient weight by up to lr either way, so the weights themselves are not compared)
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-6)
    for module in (fast_pipe.unet, fast_pipe.text_encoder):
        for name, weight in module.named_parameters():
            assert weight.is_contiguous(), name  # handed back in the default format: saved and sampled as any model
    assert not any(p.requires_grad for p in fast_pipe.text_encoder.parameters())


def test_throughput_table_times_every_loop_variant(tiny_data):
    from provlib.core.throughput import VARIANTS, throughput_table
    threads = torch.get_num_threads()
    table = throughput_table(fresh_pipe(), tiny_data, steps=2, batch_sizes=[4], lr=1e-3, train_text_encoder=True)
    assert len(table) == len(VARIANTS) and (table.samples_per_second > 0).all() and (table.threads == 1).all()
    assert (table.warmup_seconds > 0).all() and not table.torch_compile.any()
    plain = table[(table.loop == "bare PyTorch loop") & ~table.channels_last & ~table.fused_adamw]
    assert plain.ratio_to_bare_loop.tolist() == [1.0]
    assert torch.get_num_threads() == threads  # the measurement's one thread is given back


def test_throughput_table_adds_the_compiled_loop_on_request(tiny_data, monkeypatch):
    # the plumbing only: compiling even a tiny UNet takes a minute, so torch.compile is replaced by a recorder
    from provlib.core import throughput
    compiled = []
    monkeypatch.setattr(throughput.torch, "compile", lambda module: compiled.append(module) or module)
    table = throughput.throughput_table(fresh_pipe(), tiny_data, steps=2, batch_sizes=[4], lr=1e-3,
                                        train_text_encoder=False, compiled=True)
    assert len(table) == len(throughput.VARIANTS) + len(throughput.COMPILED_VARIANTS) and len(compiled) == 1
    assert table[table.torch_compile].loop.tolist() == ["bare PyTorch loop"]
    assert (table[~table.torch_compile & ~table.channels_last & ~table.fused_adamw].ratio_to_bare_loop == 1.0).all()


def test_distinct_captions_through_the_encoder_give_the_per_row_gradients():
    # the training loop encodes each distinct caption of a batch once and gathers the rows: the same embeddings and
    # the same text-encoder gradients as encoding every row (repeats sum through the gather)
    from provlib.core.train import token_ids
    pipe = fresh_pipe()
    encoder = pipe.text_encoder.train().requires_grad_(True)
    ids = token_ids(pipe, ["a face", "a red car", "a face smiling"])
    rows = torch.tensor([0, 2, 0, 1, 0, 2])
    weights = torch.randn(len(rows), *encoder(ids[:1])[0].shape[1:], generator=torch.Generator().manual_seed(0))

    def gradients(embed):
        encoder.zero_grad()
        (embed() * weights).sum().backward()
        return [p.grad.clone() for p in encoder.parameters() if p.grad is not None]

    per_row = gradients(lambda: encoder(ids[rows])[0])
    gathered = gradients(lambda: encode_each_caption_once(encoder, ids, rows))
    assert len(per_row) == len(gathered) > 0
    for a, b in zip(per_row, gathered):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # float32 sums in another order


def test_the_caption_gather_backward_adds_repeats_in_order():
    # a CPU index_put_ with accumulation (the backward of `embeddings[position]`) lets its threads add repeated rows
    # in a racing order: two 2-thread runs of the smoke v2 base's seeded pre-training ended with different weights
    from torch.utils._python_dispatch import TorchDispatchMode
    from provlib.core.train import token_ids

    class RecordOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func.name().startswith("aten::index_put"):  # index_put(self, indices, values, accumulate=False)
                accumulating.append(bool(kwargs.get("accumulate", len(args) > 3 and args[3])))
            return func(*args, **kwargs)

    pipe = fresh_pipe()
    encoder = pipe.text_encoder.train().requires_grad_(True)
    ids, rows = token_ids(pipe, ["a face", "a red car"]), torch.tensor([0, 1, 0, 0, 1])

    def indexed(text_encoder, caption_ids, rows):  # the gather as it was written before
        distinct, position = torch.unique(rows, return_inverse=True)
        return text_encoder(caption_ids[distinct])[0][position]

    for gather in (encode_each_caption_once, indexed):
        accumulating = []
        with RecordOps():
            gather(encoder, ids, rows).sum().backward()
        assert any(accumulating) == (gather is not encode_each_caption_once)  # the plain index is caught
