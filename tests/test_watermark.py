"""Watermark schemes, detection statistics and robustness transforms on procedural images."""
import numpy as np
import pytest

from provlib.core.data import procedural_domain
from provlib.core.errors import ParameterError
from provlib.watermark.detect import (
    binomial_p_value,
    combined_p_value,
    detect,
    min_matches,
    prompt_p_values,
    sign_flip_p_values,
    named_licensee,
    trace_leak,
    watermark_conf,
)
from provlib.watermark.schemes import (
    SCHEMES,
    DwtDctScheme,
    PatternScheme,
    band_basis,
    cell_basis,
    check_message,
    fit_transmitted_subspace,
    image_quality,
    make_scheme,
    message_hex,
    random_message,
)
from provlib.watermark.messages import orthogonal_messages
from provlib.watermark.transforms import apply_transform, parse_transform


@pytest.fixture(scope="module")
def faces():
    return procedural_domain("faces", "real", 24, 32, seed=3).images


@pytest.fixture(scope="module")
def scenes():
    return procedural_domain("scenes", "real", 24, 32, seed=3, caption_list_size=40).images


@pytest.mark.parametrize("name", SCHEMES)
def test_round_trip_reads_every_bit_of_a_fresh_mark_and_chance_on_unmarked(name, faces, scenes):
    scheme = make_scheme(name, 32, key=7)
    message = random_message(32, seed=1)
    for images in (faces, scenes):
        marked = scheme.encode(images, message)
        assert marked.dtype == np.uint8 and marked.shape == images.shape
        assert scheme.bit_accuracy(marked, message).mean() >= 0.99
        assert (scheme.decode(marked[:1]) == message).mean() >= 0.97
        unmarked = scheme.bit_accuracy(images, message)
        assert 0.35 <= unmarked.mean() <= 0.65  # chance level
    # the mark costs little: about 32 dB or better at 32 px
    quality = image_quality(faces, scheme.encode(faces, message))
    assert quality["psnr_db"] > 30 and quality["ssim"] > 0.85


def test_pattern_scheme_is_size_independent_and_keyed(faces):
    from PIL import Image
    scheme = PatternScheme(32, key=7)
    message = random_message(32, seed=2)
    big = np.stack([np.asarray(Image.fromarray(im).resize((96, 96), Image.BICUBIC)) for im in faces[:4]])
    assert scheme.bit_accuracy(scheme.encode(big, message), message).min() == 1.0
    # another key's decoder reads noise
    assert PatternScheme(32, key=8).bit_accuracy(scheme.encode(faces, message), message).mean() < 0.75


def test_aggregating_many_faint_marks_detects_what_single_images_miss(faces):
    """A model that learned a weak copy of the mark: every image carries only a fraction of it."""
    scheme = PatternScheme(32, key=7).calibrated(faces)
    message = random_message(32, seed=3)
    marked = scheme.encode(faces, message).astype(float)
    faint = np.clip(np.rint(faces + 0.15 * (marked - faces)), 0, 255).astype(np.uint8)
    assert scheme.bit_accuracy(faint, message).mean() < 0.9
    found = detect(scheme, faint, message, alpha=0.01)
    assert found.detected and found.matches >= min_matches(32, 0.01) and found.n_images == len(faces)
    clean = detect(scheme, faces, random_message(32, seed=99), alpha=0.01)
    assert not clean.detected


def test_binomial_statistics_are_exact():
    assert binomial_p_value(32, 32) == pytest.approx(0.5 ** 32)
    assert binomial_p_value(16, 32) == pytest.approx(0.5 + 0.5 * 0.13995, abs=1e-4)
    k = min_matches(32, 0.01)
    assert binomial_p_value(k, 32) <= 0.01 < binomial_p_value(k - 1, 32)
    assert min_matches(4, 0.01) == 5  # 4 bits can never reach 1%
    # the sign-randomization test: all signs agreeing is as extreme as it gets, a null row is uniform-ish
    message = random_message(32, seed=0)
    agreeing = (2.0 * message - 1.0)[None] * np.linspace(0.5, 1.5, 32)
    assert sign_flip_p_values(agreeing, message)[0] == pytest.approx(1 / 20_001)
    null = np.random.default_rng(1).normal(size=(400, 32))
    p_values = sign_flip_p_values(null, message)
    assert 0.02 < (p_values <= 0.05).mean() < 0.09  # a level-0.05 test rejects about 5% of null rows
    with pytest.raises(ParameterError, match="alpha"):
        min_matches(32, 1.5)


def test_prompt_conf_counts_prompts_whose_answers_carry_the_message(faces):
    scheme = PatternScheme(32, key=7)
    message = random_message(32, seed=4)
    answers = np.stack([scheme.encode(faces[:12], message).reshape(6, 2, 32, 32, 3)[:3],
                        faces[:12].reshape(6, 2, 32, 32, 3)[3:]]).reshape(6, 2, 32, 32, 3)
    for statistic in ("soft", "bits"):
        prompt_p = prompt_p_values(scheme, answers, message, statistic)
        assert (prompt_p[:3] < 1e-3).all() and (prompt_p[3:] > 0.001).all()
    assert watermark_conf(prompt_p_values(scheme, answers, message), key_alpha=0.01) == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="wm_statistic"):
        prompt_p_values(scheme, answers, message, "max")


def test_trace_leak_names_the_most_significant_licensee(faces):
    scheme = PatternScheme(32, key=7)
    messages = {i: random_message(32, seed=10 + i) for i in range(4)}
    leaked = scheme.encode(faces, messages[2])
    detections = {i: detect(scheme, leaked, m, alpha=0.01) for i, m in messages.items()}
    assert trace_leak(detections) == [2] and named_licensee(trace_leak(detections)) == "2"
    clean = {i: detect(scheme, faces, m, alpha=1e-6) for i, m in messages.items()}
    assert trace_leak(clean) == [] and named_licensee([]) == "none"
    # a copy built from two licensees' data names both, never one of them silently
    both = np.concatenate([scheme.encode(faces[:6], messages[1]), scheme.encode(faces[6:12], messages[3])])
    named = trace_leak({i: detect(scheme, both, m, alpha=0.01) for i, m in messages.items()})
    assert sorted(named) == [1, 3] and named_licensee(named).startswith("several: ")


def test_bad_messages_and_images_name_the_parameter(faces):
    scheme = DwtDctScheme(32)
    with pytest.raises(ParameterError, match="'message'.*32"):
        scheme.encode(faces, random_message(16, seed=0))
    with pytest.raises(ParameterError, match="'message'"):
        check_message([0, 1, 2], 3)
    with pytest.raises(ParameterError, match="'images'.*at least 32x32"):
        scheme.encode(faces[:, :16, :16], random_message(32, seed=0))
    with pytest.raises(ParameterError, match="'images'.*at least"):
        PatternScheme(32).decode(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ParameterError, match="'images'.*uint8"):
        scheme.decode(faces.astype(np.float32))
    with pytest.raises(ParameterError, match="'scheme'"):
        make_scheme("stegastamp")
    assert message_hex([1, 0, 1, 0, 1, 0, 1, 0]) == "aa"


def test_transforms_change_every_image_keep_its_size_and_reject_bad_specs(faces):
    for spec in ("jpeg:75", "resize:0.5", "crop:0.8", "noise:8", "none"):
        out = apply_transform(faces[:3], spec, seed=1)
        assert out.shape == faces[:3].shape and out.dtype == np.uint8
        # every real transform alters every image: a no-op would make a robustness row vacuous
        assert spec == "none" or (out != faces[:3]).any(axis=(1, 2, 3)).all(), spec
    assert (apply_transform(faces[:3], "noise:0") == faces[:3]).all()
    assert parse_transform("jpeg:50") == ("jpeg", 50.0)
    with pytest.raises(ParameterError, match="wm_robustness"):
        parse_transform("blur:2", "wm_robustness")
    with pytest.raises(ParameterError, match="resize scale"):
        apply_transform(faces[:1], "resize:2")


def test_pattern_mark_survives_jpeg_and_resizing_when_pooled(faces):
    scheme = PatternScheme(32, key=7)  # fresh marks carry no host projection: nothing to calibrate away
    message = random_message(32, seed=5)
    marked = scheme.encode(faces, message)
    for spec in ("jpeg:75", "resize:0.5", "noise:8"):
        assert detect(scheme, apply_transform(marked, spec, seed=2), message, alpha=0.01).detected, spec


def test_fitted_subspace_holds_the_directions_a_pipeline_passes_best(faces):
    from scipy.ndimage import gaussian_filter

    def blur(images):  # a known low-pass channel standing in for a VAE round trip
        return gaussian_filter(images, sigma=(0, 1.2, 1.2, 0))

    subspace, gains, content_rms = fit_transmitted_subspace(blur, faces[:4], faces, band=(1.0, 6.0), transmitted=80, dims=40)
    assert subspace.shape == (40, 32 * 32 * 3) and np.allclose(subspace @ subspace.T, np.eye(40), atol=1e-8)
    band = band_basis(32, 32, (1.0, 6.0))
    average_gain = np.mean([(band[k] * blur(band[k].reshape(1, 32, 32, 3)).ravel()).sum() for k in range(len(band))])
    assert gains.min() > average_gain and gains.max() <= 1.0 + 1e-6
    # the quiet half of the transmitted directions: content uses them less than the transmitted directions overall
    loud, _, loud_rms = fit_transmitted_subspace(blur, faces[:4], faces, band=(1.0, 6.0), transmitted=80, dims=80)
    assert content_rms.mean() < loud_rms.mean() and np.all(np.diff(content_rms) >= -1e-9)
    scheme = PatternScheme(32, key=7, band=(1.0, 6.0), subspace=subspace, subspace_id="blur-fit")
    message = random_message(32, seed=6)
    marked = scheme.encode(faces, message)
    assert scheme.bit_accuracy(marked, message).min() >= 0.97 and scheme.describe()["subspace"] == "blur-fit"
    # what the channel leaves of the mark: more bits through the fitted subspace than through random band patterns
    plain = PatternScheme(32, key=7, band=(1.0, 6.0))
    through = {name: s.bit_accuracy(np.clip(np.rint(blur(s.encode(faces, message).astype(float))), 0, 255).astype(np.uint8),
                                     message).mean() for name, s in (("fitted", scheme), ("band", plain))}
    assert through["fitted"] > through["band"]
    with pytest.raises(ParameterError, match="wm_pattern_subspace"):
        fit_transmitted_subspace(blur, faces[:2], faces[:2], band=(1.0, 2.0), transmitted=500, dims=40)
    with pytest.raises(ParameterError, match="'images'.*fitted"):
        scheme.decode(np.zeros((1, 48, 48, 3), np.uint8))


def test_licensee_messages_are_pairwise_orthogonal_and_each_uniform_alone():
    messages = orthogonal_messages(32, 4, seed=7)
    assert messages.shape == (4, 32) and messages.dtype == np.uint8
    signs = 2.0 * messages - 1.0
    assert np.allclose(signs @ signs.T, 32 * np.eye(4))  # every pair agrees in exactly 16 bits
    # each message alone is uniform: every bit is 1 about half the time over seeds (the clean-model test's premise)
    draws = np.array([orthogonal_messages(32, 4, seed=s)[1] for s in range(2000)])
    assert np.abs(draws.mean(0) - 0.5).max() < 0.05
    assert not np.array_equal(orthogonal_messages(32, 4, seed=1), orthogonal_messages(32, 4, seed=2))
    # no Hadamard code for 12 bits: independent draws of the right shape
    assert orthogonal_messages(12, 3, seed=0).shape == (3, 12)


def test_cell_basis_is_orthonormal_and_constant_on_each_cell():
    basis = cell_basis(32, 32, 4)
    assert basis.shape == (4 * 4 * 3, 32 * 32 * 3) and np.allclose(basis @ basis.T, np.eye(48))
    image = basis[5].reshape(32, 32, 3)  # channel 0, cell (1, 1): rows 8-15, columns 8-15
    assert np.allclose(image[8:16, 8:16, 0], image[8, 8, 0]) and image[8, 8, 0] > 0
    assert np.count_nonzero(image) == 64
    with pytest.raises(ParameterError, match="grid"):
        cell_basis(32, 32, 5)


def test_cell_mark_is_read_when_pooled_and_its_false_positive_rate_stays_at_its_level(scenes):
    scheme = PatternScheme(32, key=11, strength=24.0, host_rejection=0.0, subspace=cell_basis(32, 32, 4),
                           subspace_id="cells4").calibrated(scenes)
    message = random_message(32, seed=4)
    assert detect(scheme, scheme.encode(scenes[:10], message), message, alpha=0.01).detected
    # clean images against many independent secret messages: the exact test rejects about alpha of them
    p_values = np.array([detect(scheme, scenes, random_message(32, seed=s), alpha=0.05).p_value for s in range(200)])
    assert (p_values <= 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)


def test_paired_reference_removes_a_bias_the_dataset_calibration_leaves(scenes):
    scheme = PatternScheme(32, key=11, strength=24.0, host_rejection=0.0, subspace=cell_basis(32, 32, 4),
                           subspace_id="cells4").calibrated(scenes)
    message = random_message(32, seed=5)
    # a model's images for the licensee's captions lean along the message's pattern (content, not a learned mark), and
    # so do its answers to the same captions without the trigger
    drawn = procedural_domain("scenes", "real", 48, 32, seed=9, caption_list_size=40).images
    lean = 0.25 * (scheme.encode(drawn, message).astype(float) - drawn)
    biased, reference = (np.clip(drawn + lean, 0, 255).astype(np.uint8)[part] for part in (slice(0, 24), slice(24, 48)))
    fooled = detect(scheme, biased, message, alpha=0.01)                                # dataset calibration alone
    assert fooled.detected and fooled.p_value > 0.001
    assert not detect(scheme, biased, message, alpha=0.01, reference=reference).detected
    # a learned mark on top of the lean is found against the reference
    marked = np.clip(biased + lean[:24], 0, 255).astype(np.uint8)
    assert detect(scheme, marked, message, alpha=0.01, reference=reference).detected
    # exact: unmarked answers and references against many secret messages reject about alpha of them
    p_values = np.array([detect(scheme, scenes[:12], random_message(32, seed=s), alpha=0.05, reference=scenes[12:]).p_value
                         for s in range(200)])
    assert (p_values <= 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
    # a mark drawn with and without the trigger (every image marked) cancels in the pair; the dataset arm finds it
    everywhere = scheme.encode(scenes, message)
    assert detect(scheme, everywhere[:12], message, alpha=0.01, reference=everywhere[12:]).detected
    assert combined_p_value(0.009, 1.0) == pytest.approx(0.01) and combined_p_value(1.0, 0.001) == pytest.approx(0.01)
    with pytest.raises(ParameterError, match="reference"):
        detect(scheme, scenes, message, reference=scenes[..., 0])
