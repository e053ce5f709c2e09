"""TrainProVe: the hypothesis-test wrapper on constructed accuracies, bad inputs, and the classifier/zoo plumbing."""
import numpy as np
import pandas as pd
import pytest

from provlib.core.errors import ParameterError
from provlib.presets import load_preset
from provlib.trainprove.classifier import (
    Recipe,
    draw_recipe,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from provlib.trainprove.generators import (
    attribute_weights,
    load_generator,
    object_attributes,
    real_folder_images,
    render_objects,
)
from provlib.trainprove.test import (
    LabelledImages,
    class_prompts,
    provenance_test,
    verify,
)
from provlib.trainprove.zoo import TrainProVeZoo


def hits(n_correct: int, n: int = 100) -> np.ndarray:
    return np.arange(n) < n_correct


def test_clear_positive_is_verified():
    verdict = provenance_test({"G": hits(90), "A": hits(50), "B": hits(55), "C": hits(40)}, "G")
    assert verdict.verified and verdict.p_value < 1e-3
    assert verdict.closest_reference == "B" and verdict.statistic == pytest.approx(0.35)
    assert verdict.accuracies == {"G": 0.9, "A": 0.5, "B": 0.55, "C": 0.4}
    assert verdict.p_value == max(verdict.reference_p_values.values())


def test_clear_negative_is_not_verified():
    # the suspect is far better on a reference's images: it learned from that reference, not from G
    verdict = provenance_test({"G": hits(50), "A": hits(90), "B": hits(45)}, "G")
    assert not verdict.verified and verdict.p_value > 0.99 and verdict.statistic == pytest.approx(-0.4)


def test_one_reference_as_good_as_the_defender_blocks_verification():
    verdict = provenance_test({"G": hits(90), "A": hits(40), "B": hits(89)}, "G")
    assert not verdict.verified and verdict.closest_reference == "B"


def test_tie_is_not_verified():
    verdict = provenance_test({"G": hits(70), "A": hits(70), "B": hits(70)}, "G", alpha=0.05)
    assert not verdict.verified and verdict.statistic == 0.0 and 0.5 < verdict.p_value < 1.0


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ParameterError, match="references"):
        provenance_test({"G": hits(90), "A": hits(50)}, "G")
    with pytest.raises(ParameterError, match="defender"):
        provenance_test({"G": hits(90), "A": hits(50), "B": hits(50)}, "X")
    with pytest.raises(ParameterError, match="alpha"):
        provenance_test({"G": hits(90), "A": hits(50), "B": hits(50)}, "G", alpha=1.5)
    with pytest.raises(ParameterError, match=r"correct\['A'\]"):
        provenance_test({"G": hits(90), "A": np.array([], bool), "B": hits(50)}, "G")
    with pytest.raises(ParameterError, match="classes"):
        class_prompts([])
    with pytest.raises(ParameterError, match="tp_classes"):
        load_preset("smoke", tp_classes=[])
    with pytest.raises(ParameterError, match="tp_generators"):
        load_preset("smoke", tp_generators=["sd14", "lcm"])
    with pytest.raises(ParameterError, match="labels"):
        LabelledImages(np.zeros((3, 8, 8, 3), np.uint8), np.zeros(2, int))


def test_paper_scale_names_the_missing_generator_checkpoint(tmp_path):
    (tmp_path / "sd14").mkdir()
    (tmp_path / "sd14" / "model_index.json").write_text("{}")
    preset = load_preset("smoke").replace(data_source="folder", tp_checkpoints={"sd14": str(tmp_path / "sd14")})
    with pytest.raises(ParameterError, match=r"tp_checkpoints\['lcm'\]"):
        TrainProVeZoo(preset, tmp_path)
    with pytest.raises(ParameterError, match="tp_checkpoints"):
        load_generator(str(tmp_path), "cpu", "float32")  # a folder without model_index.json
    with pytest.raises(ParameterError, match="tp_real_dir"):
        real_folder_images(tmp_path / "missing", ["cat"], 32)
    with pytest.raises(ParameterError, match="tp_generators"):
        TrainProVeZoo(load_preset("smoke", tp_generators=["sd14", "lcm", "dall-e"]), tmp_path)


def test_verify_queries_the_black_box_on_every_generator():
    labels = np.repeat(np.arange(3), 20)
    images = np.zeros((60, 8, 8, 3), np.uint8)
    sets = {g: LabelledImages(images + i, labels) for i, g in enumerate(["G", "A", "B"])}

    def suspect(x):  # right on G's images (pixel value 0), always class 0 elsewhere
        return labels if x.max() == 0 else np.zeros(len(x), int)

    verdict = verify(suspect, "G", sets)
    assert verdict.verified and verdict.accuracies["G"] == 1.0 and verdict.n_images == {"G": 60, "A": 60, "B": 60}


def test_generator_draws_differ_from_the_real_world_and_from_each_other():
    real = attribute_weights("real", 2.0, 0)
    a, b = attribute_weights("sd14", 2.0, 0), attribute_weights("lcm", 2.0, 0)
    assert np.allclose(real["colour"], 1 / 6)
    assert not np.allclose(a["colour"], b["colour"]) and np.isclose(a["colour"].sum(), 1)
    data, labels = render_objects(["circle", "ring"], 3, a, seed=1, resolution=16, template="a photo of a {}")
    assert data.images.shape == (6, 16, 16, 3) and list(labels) == [0, 0, 0, 1, 1, 1]
    assert all(c.startswith("a photo of a") for c in data.captions)
    with pytest.raises(ParameterError, match="tp_classes"):
        render_objects(["airplane"], 1, a, seed=1, resolution=16, template="{}")


def test_caption_detail_sets_the_share_of_long_captions_and_leaves_the_images_alone():
    weights = attribute_weights("sd14", 2.0, 0)
    bare, _ = render_objects(["circle", "cross"], 20, weights, seed=3, resolution=16, template="a photo of a {}",
                             caption_detail=0.0)
    half, _ = render_objects(["circle", "cross"], 20, weights, seed=3, resolution=16, template="a photo of a {}")
    assert set(bare.captions) == {"a photo of a circle", "a photo of a cross"}
    assert 0 < sum("background" in c for c in half.captions) < 40
    assert np.array_equal(bare.images, half.images)
    with pytest.raises(ParameterError, match="tp_caption_detail"):
        load_preset("smoke", tp_caption_detail=1.5)


def test_generator_learning_rate_is_per_architecture_and_keys_the_generator(tmp_path, monkeypatch):
    from dataclasses import replace

    from provlib.trainprove import generators
    monkeypatch.setitem(generators.CPU_GENERATORS, "pixart", replace(generators.CPU_GENERATORS["pixart"], architecture="v2"))
    zoo = TrainProVeZoo(load_preset("smoke", tp_generator_lrs={"v1": 4e-3, "v2": 1e-3}), cache_root=tmp_path)
    assert zoo.generator_lr("sd14") == 4e-3 and zoo.generator_lr("pixart") == 1e-3
    assert zoo.generator_config("pixart")["lr"] == 1e-3
    other = TrainProVeZoo(load_preset("smoke", tp_generator_lrs={"v1": 4e-3, "v2": 2e-3}), cache_root=tmp_path)
    assert other.generator_config("sd14") == zoo.generator_config("sd14")
    assert other.generator_config("pixart") != zoo.generator_config("pixart")
    with pytest.raises(ParameterError, match="tp_generator_lrs"):
        TrainProVeZoo(load_preset("smoke", tp_generator_lrs={"v1": 4e-3}), cache_root=tmp_path)
    with pytest.raises(ParameterError, match="tp_generator_lrs"):
        load_preset("smoke", tp_generator_lrs={"v1": 0})


def test_each_analogue_is_trained_on_its_own_draw_from_its_own_seed(tmp_path):
    zoo = TrainProVeZoo(load_preset("smoke"), cache_root=tmp_path)
    configs = [zoo.generator_config(g) for g in zoo.generators]
    assert len({c["seed"] for c in configs}) == len({c["data"] for c in configs}) == len(zoo.generators)
    assert len({c["vae"] for c in configs}) == 1  # one autoencoder, trained on the uniform world


def test_object_sizes_restrict_the_world_and_are_validated():
    big_only = object_attributes(["big"])
    weights = attribute_weights("sd14", 2.0, 0, big_only)
    assert list(weights["size"]) == [1.0]
    data, _ = render_objects(["square"], 4, weights, seed=1, resolution=16, template="a photo of a {}", attributes=big_only)
    assert not any("small" in c for c in data.captions)
    with pytest.raises(ParameterError, match="tp_sizes"):
        object_attributes(["huge"])
    with pytest.raises(ParameterError, match="tp_sizes"):
        load_preset("smoke", tp_sizes=[])


@pytest.mark.parametrize("recipe", [Recipe(), Recipe("resnet", 4e-3, 5e-4, 32, "focal"), Recipe("mlp", 1e-3, 5e-2, 128, "ce"),
                                    Recipe("vit", 4e-3, 0.0, 32, "ce"), Recipe("convnext", 4e-3, 0.0, 32, "focal")])
def test_each_classifier_family_learns_a_separable_task_and_round_trips(recipe, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    images = np.where(labels[:, None, None, None] == 1, 220, 30).astype(np.uint8) + rng.integers(0, 20, (80, 16, 16, 3)).astype(np.uint8)
    model, losses = train_classifier(images, labels, 2, epochs=5, seed=0, recipe=recipe)
    assert (predict(model, images) == labels).mean() == 1.0 and losses[-1] < losses[0]
    save_classifier(model, tmp_path)
    assert (predict(load_classifier(tmp_path), images) == predict(model, images)).all()


def test_suspects_train_by_recipes_unlike_the_shadows():
    specs = TrainProVeZoo(load_preset("cpu")).classifier_specs()
    suspects = [s for s in specs if s.role == "suspect"]
    assert {s.recipe for s in specs if s.role == "shadow"} == {Recipe()}
    assert {s.recipe.architecture for s in suspects} == {"cnn", "resnet", "vit"}
    assert {s.recipe.loss for s in suspects} == {"ce", "focal"} and len({s.recipe.lr for s in suspects}) == 3
    # every training source is learned by more than one architecture
    assert all(len({s.recipe.architecture for s in suspects if s.source == src}) >= 3 for src in {s.source for s in suspects})
    assert draw_recipe(7, "mlp", (1e-3, 2e-3), (0.0,), (32,), ("ce",)) == draw_recipe(7, "mlp", (1e-3, 2e-3), (0.0,), (32,), ("ce",))
    with pytest.raises(ParameterError, match="tp_suspect_architectures"):
        load_preset("smoke", tp_suspect_architectures=["vit-huge"])


def test_batch_count_summary_reads_tpr_on_positives_and_fpr_on_negatives():
    from provlib.trainprove.study import batch_count_summary

    table = pd.DataFrame({"n_batches": [10] * 4 + [20] * 4,
                          "trained_on_defender": [True, True, False, False] * 2,
                          "verified": [True, False, False, False, True, True, True, False],
                          "threshold": [0.1] * 4 + [0.2] * 4})
    rows = batch_count_summary(table).set_index("n_batches")
    assert (rows.loc[10, "tpr"], rows.loc[10, "fpr"], rows.loc[10, "accuracy"]) == (0.5, 0.0, 0.75)
    assert (rows.loc[20, "tpr"], rows.loc[20, "fpr"], rows.loc[20, "accuracy"]) == (1.0, 0.5, 0.75)
    assert rows.loc[20, "mean_threshold"] == pytest.approx(0.2) and rows.loc[10, "n_positive"] == 2


def test_sampling_steps_override_changes_sampling_not_the_generator(tmp_path):
    base = TrainProVeZoo(load_preset("cpu"), tmp_path, show_progress=False)
    four = TrainProVeZoo(load_preset("cpu", tp_sampling_steps={}), tmp_path, show_progress=False)
    assert base.sampling("lcm")["num_inference_steps"] == 12 and four.sampling("lcm")["num_inference_steps"] == 4
    assert base.sampling("sd14") == four.sampling("sd14")
    assert base.generator_config("lcm") == four.generator_config("lcm")  # sampling never retrains a generator
    assert base.images_config("lcm", "test", 5) != four.images_config("lcm", "test", 5)
    with pytest.raises(ParameterError, match="tp_sampling_steps"):
        load_preset("cpu", tp_sampling_steps={"lcm": 0})
