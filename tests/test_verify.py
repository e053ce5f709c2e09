"""Verifying a suspect found in the wild: key files, the three suspect kinds, the endpoint under faults, the CLI."""
import json
import shutil

import numpy as np
import pytest

from provlib import cli
from provlib.attribution.calibration import calibrate, key_distances, key_sets, model_confs
from provlib.attribution.queries import AttributionZoo
from provlib.core.errors import ParameterError
from provlib.core.store import derive_seed
from provlib.presets import load_preset
from provlib.verify.api import export_zoo_suspect, verify_suspect
from provlib.verify.attribution import empirical_p_value, prepare_attribution_keys, verify_attribution
from provlib.verify.endpoint import EndpointSuspect, QueryBudgetExhausted
from provlib.verify.keyfile import load_key_file, save_key_file
from provlib.verify.server import Faults, images_answer, labels_answer, make_server, pipeline_drawer, serve_in_thread
from provlib.verify.suspects import CallableSuspect, Sampler, image_seeds, load_lora_suspect, open_suspect

SAMPLER = Sampler(num_inference_steps=2, guidance_scale=1.0, resolution=16)


def drawn(prompt: str, seeds, settings=None):
    """A stand-in black box: one deterministic image per (prompt, seed)."""
    side = int((settings or {}).get("height", 16))
    return [np.random.default_rng([len(prompt), int(s)]).integers(0, 256, (side, side, 3), dtype=np.uint8) for s in seeds]


@pytest.fixture
def endpoint():
    """A reference server with a fault plan the test fills in; yields (url, faults)."""
    faults = Faults()
    server = make_server(images_answer(drawn), faults=faults)
    url = serve_in_thread(server)
    yield url, faults
    server.shutdown()
    server.server_close()


# ---- key files -----------------------------------------------------------------------------------
def test_key_file_round_trips_and_refuses_any_edit(tmp_path):
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    made = save_key_file(tmp_path / "keys", "attribution", {"prompts": ["a", "b"], "delta0": 0.1}, {"key_images": images})
    assert len(made.sha256) == 64 and made.created
    loaded = load_key_file(tmp_path / "keys", question="attribution", expected_sha256=made.sha256[:16])
    assert (loaded.arrays["key_images"] == images).all() and loaded.manifest["delta0"] == 0.1
    with pytest.raises(ParameterError, match="key_file"):
        save_key_file(tmp_path / "keys", "attribution", {}, {})  # written once: a published hash stays valid
    with pytest.raises(ParameterError, match="key_sha256"):
        load_key_file(tmp_path / "keys", expected_sha256="00ff")
    manifest = json.loads((tmp_path / "keys" / "manifest.json").read_text())
    manifest["delta0"] = 0.5  # a looser δ0 after the fact
    (tmp_path / "keys" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ParameterError, match="edited after it was made"):
        load_key_file(tmp_path / "keys")
    made = save_key_file(tmp_path / "keys2", "attribution", {"delta0": 0.1}, {"key_images": images})
    blob = bytearray((tmp_path / "keys2" / "arrays.safetensors").read_bytes())
    blob[-1] ^= 1  # one key image pixel changed
    (tmp_path / "keys2" / "arrays.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ParameterError, match="edited after it was made"):
        load_key_file(tmp_path / "keys2")


def test_empirical_p_value_ranks_the_suspect_among_shadow_innocents():
    assert empirical_p_value(0.9, [0.1, 0.2, 0.3]) == 0.25   # above all three: the smallest p the null allows
    assert empirical_p_value(0.2, [0.1, 0.2, 0.3]) == 0.75   # ties count against the owner
    assert empirical_p_value(0.0, []) == 1.0


# ---- the endpoint under faults ---------------------------------------------------------------------
def test_endpoint_answers_are_cached_and_a_resume_asks_only_the_missing_prompts(endpoint, tmp_path):
    url, faults = endpoint
    prompts = [f"prompt {i}" for i in range(5)]
    first = EndpointSuspect(url, cache_dir=tmp_path, query_budget=6, backoff=0)
    with pytest.raises(QueryBudgetExhausted, match="query_budget"):
        first.answer(prompts, range(5), 2, 0, SAMPLER, show_progress=False)
    assert first.queries_sent == 6 and faults.served == 3  # three prompts answered before the budget stopped it
    again = EndpointSuspect(url, cache_dir=tmp_path, query_budget=10, backoff=0)
    answers = again.answer(prompts, range(5), 2, 0, SAMPLER, show_progress=False)
    assert faults.served == 5 and again.queries_sent == 4 and again.queries_spent == 10
    assert answers.shape == (5, 2, 16, 16, 3)
    assert (answers[0] == np.stack(drawn("prompt 0", image_seeds(0, [0], 2)[0]))).all()  # the seeds reached the server


def test_endpoint_retries_server_errors_and_timeouts_then_names_the_problem(endpoint, tmp_path):
    url, faults = endpoint
    faults.by_request = {0: "500", 1: "sleep:1.5"}
    suspect = EndpointSuspect(url, timeout=0.5, retries=2, backoff=0, cache_dir=tmp_path)
    assert suspect.answer(["p"], [0], 1, 0, SAMPLER, show_progress=False).shape == (1, 1, 16, 16, 3)
    faults.always = "500"
    with pytest.raises(ParameterError, match="tried 3 times.*HTTP 500"):
        EndpointSuspect(url, retries=2, backoff=0).answer(["q"], [1], 1, 0, SAMPLER, show_progress=False)
    faults.always = "sleep:1"
    with pytest.raises(ParameterError, match="timeout=0.2"):
        EndpointSuspect(url, timeout=0.2, retries=0, backoff=0).answer(["r"], [2], 1, 0, SAMPLER, show_progress=False)


@pytest.mark.parametrize("fault, message", [("garbage", "PNG or JPEG"), ("too_few", "2 images per prompt"),
                                            ("not_json", "JSON")])
def test_endpoint_refuses_malformed_answers_and_keeps_what_it_had(endpoint, tmp_path, fault, message):
    url, faults = endpoint
    faults.by_request = {1: fault}
    suspect = EndpointSuspect(url, retries=0, backoff=0, cache_dir=tmp_path)
    with pytest.raises(ParameterError, match=message):
        suspect.answer(["a", "b"], [0, 1], 2, 0, SAMPLER, show_progress=False)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # the first prompt's answers stay cached


def test_bad_endpoint_settings_and_suspect_kinds_name_the_parameter(tmp_path):
    with pytest.raises(ParameterError, match="'suspect'"):
        EndpointSuspect("ftp://example")
    with pytest.raises(ParameterError, match="query_budget"):
        EndpointSuspect("http://127.0.0.1:9", query_budget=0)
    with pytest.raises(ParameterError, match="suspect_kind"):
        open_suspect("onnx", str(tmp_path))
    with pytest.raises(ParameterError, match="'suspect'.*model_index.json"):
        open_suspect("pipeline", str(tmp_path))
    with pytest.raises(ParameterError, match="'base'"):
        open_suspect("lora", str(tmp_path))
    (tmp_path / "adapter.bin").write_bytes(b"pickle")
    with pytest.raises(ParameterError, match="'lora'.*safetensors"):
        load_lora_suspect(str(tmp_path), tmp_path / "adapter.bin")
    with pytest.raises(ParameterError, match="images per prompt"):
        CallableSuspect(lambda prompt, seeds: drawn(prompt, seeds)[:1]).answer(["x"], [0], 2, 0, SAMPLER)


# ---- zoo suspects, exported the three ways -----------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(smoke_cache, tmp_path_factory):
    """A smoke zoo, its shadow calibration (as notebook 03 makes it) and the owner's key file for one source."""
    zoo = AttributionZoo(load_preset("smoke"), cache_root=smoke_cache / "artifacts", show_progress=False)
    source = zoo.p.source_names[0]
    space = zoo.feature_space("pixel")
    specs = [s for s in zoo.suspect_specs() if s.source == source]
    zoo.build_answers(specs)
    keys = {source: key_sets(zoo, source, space, strategies=("strategy12",))}
    chosen = calibrate(zoo, specs, keys, space, rule="max_gap", false_positive_rate=0.1)
    folder = tmp_path_factory.mktemp("keys") / source
    key_file = prepare_attribution_keys(zoo, source, folder, thresholds={**chosen, "conf_false_positive_rate": 0.1},
                                        discriminator=False)
    return zoo, source, specs, keys, chosen, key_file


def notebook04_conf(zoo, spec, keys, delta0):
    """conf as notebook 04 computes it: from the zoo's cached answers to the source's candidate prompts."""
    distances = key_distances(zoo, [spec], keys, zoo.feature_space("pixel"))
    return float(model_confs(distances, delta0).conf.iloc[0])


def test_a_zoo_suspect_exported_as_a_folder_gets_notebook_04s_verdict(prepared, tmp_path):
    zoo, source, specs, keys, chosen, key_file = prepared
    assert key_file.manifest["shadow_innocent_confs"] and key_file.manifest["prompt_numbers"]
    for spec in [s for s in specs if s.split == "test"][:2]:
        folder = tmp_path / spec.model_id
        export_zoo_suspect(zoo, spec.model_id, folder)
        seed = derive_seed(zoo.p.seed, "query", spec.model_id)  # the seed 04 asked this suspect with
        result = verify_suspect(key_file.folder, "pipeline", str(folder), tmp_path / f"{spec.model_id}-report", seed=seed,
                                show_progress=False)
        assert result["conf"] == pytest.approx(notebook04_conf(zoo, spec, keys, chosen["delta0"]), abs=1e-9)
        assert (result["verdict"] == "infringing") == (result["conf"] > chosen["conf_threshold"])
        assert result["key_file_sha256"] == key_file.sha256 and result["queries_spent"] == result["queries"]
        record = json.loads((tmp_path / f"{spec.model_id}-report" / "verdict.json").read_text())
        assert record["conf"] == result["conf"]
        assert "<img" in (tmp_path / f"{spec.model_id}-report" / "report.html").read_text()


def test_the_same_suspect_behind_an_endpoint_gets_the_same_verdict(prepared, tmp_path):
    zoo, source, specs, keys, chosen, key_file = prepared
    spec = next(s for s in specs if s.split == "test" and s.rho > 0)
    export_zoo_suspect(zoo, spec.model_id, tmp_path / "folder")
    server = make_server(images_answer(pipeline_drawer(open_suspect("pipeline", str(tmp_path / "folder")).pipe)))
    url = serve_in_thread(server)
    try:
        over_http = verify_suspect(key_file.folder, "endpoint", url, tmp_path / "http", show_progress=False)
        local = verify_suspect(key_file.folder, "pipeline", str(tmp_path / "folder"), tmp_path / "local",
                               show_progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert over_http["conf"] == pytest.approx(local["conf"], abs=1e-9)
    assert len(list((tmp_path / "http" / "endpoint-cache").glob("*.safetensors"))) == len(key_file.manifest["prompts"])


def test_a_zoo_suspect_exported_as_a_lora_loads_through_diffusers_and_is_verified(prepared, tmp_path):
    zoo, source, specs, keys, chosen, key_file = prepared
    spec = next(s for s in specs if s.split == "test" and s.rho > 0)
    written = export_zoo_suspect(zoo, spec.model_id, tmp_path / "export", as_="lora", rank=16)
    assert written["export"]["unet"]["lora_layers"] > 0
    lora = load_lora_suspect(written["base"], written["lora"])
    assert lora.details["lora_layers"]["unet"] == written["export"]["unet"]["lora_layers"]
    base = open_suspect("pipeline", written["base"])
    prompts = key_file.manifest["prompts"][:2]
    assert not np.array_equal(lora.answer(prompts, [0, 1], 1, 0, SAMPLER, show_progress=False),
                              base.answer(prompts, [0, 1], 1, 0, SAMPLER, show_progress=False))
    result = verify_suspect(key_file.folder, "lora", written["lora"], tmp_path / "report", base=written["base"],
                            show_progress=False)
    assert 0.0 <= result["conf"] <= 1.0 and result["suspect"]["kind"] == "lora"
    other_base = next(b for b in zoo.p.models.base_names if b != spec.base)
    with pytest.raises(ParameterError, match="'lora'"):  # an adapter made for another base
        load_lora_suspect(zoo.base_location(other_base), written["lora"])


def test_verify_command_runs_on_a_folder_suspect_and_refuses_an_edited_key_file(prepared, tmp_path, capsys):
    zoo, source, specs, keys, chosen, key_file = prepared
    spec = next(s for s in specs if s.split == "test")
    export_zoo_suspect(zoo, spec.model_id, tmp_path / "folder")
    cli.main(["verify", "--keys", str(key_file.folder), "--suspect-kind", "pipeline", "--suspect", str(tmp_path / "folder"),
              "--out", str(tmp_path / "out")])
    printed = json.loads(capsys.readouterr().out)
    assert printed["key_file_sha256"] == key_file.sha256 and (tmp_path / "out" / "report.html").is_file()
    with pytest.raises(SystemExit, match="query_budget"):
        cli.main(["verify", "--keys", str(key_file.folder), "--suspect-kind", "pipeline", "--suspect",
                  str(tmp_path / "folder"), "--out", str(tmp_path / "out2"), "--query-budget", "1"])
    edited = tmp_path / "edited"
    shutil.copytree(key_file.folder, edited)
    (edited / "folders").mkdir(exist_ok=True)
    (edited / "folders" / "extra.txt").write_text("added later")
    with pytest.raises(SystemExit, match="edited after it was made"):
        cli.main(["verify", "--keys", str(edited), "--suspect-kind", "pipeline", "--suspect", str(tmp_path / "folder"),
                  "--out", str(tmp_path / "out3")])


# ---- TrainProVe: a suspect classifier -----------------------------------------------------------------
def _classification_world(seed=0, n_classes=4, n=120):
    """Images whose class a 'shadow' reads 90% right; a copy-cat suspect shares its answers, a stranger guesses."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, n_classes, n)
    def logits_of(right_share, salt):
        r = np.random.default_rng(salt)
        out = r.normal(0, 1, (n, n_classes))
        right = r.random(n) < right_share
        out[np.arange(n), np.where(right, labels, (labels + 1) % n_classes)] += 4
        return out
    return images, labels, logits_of


def test_trainprove_verification_matches_the_study_rule_and_admits_label_only_suspects(tmp_path):
    from provlib.trainprove.grubbs import batches
    from provlib.trainprove.study import GrubbsSetup, verdict_table
    from provlib.trainprove.zoo import ClassifierSpec
    from provlib.verify.trainprove import CallableClassifier, save_trainprove_keys, verify_trainprove

    images, labels, logits_of = _classification_world()
    shadow, trained, stranger = logits_of(0.9, 1), logits_of(0.9, 2), logits_of(0.3, 3)
    setup = GrubbsSetup(n_batches=6, seed=0)
    split = setup.split(len(labels), "g")
    keys = save_trainprove_keys(tmp_path / "keys", "g", images, labels, shadow, ["a", "b", "c", "d"], split, 0.05,
                                "published")
    answers = {"shadow": {"g": shadow}, "trained": {"g": trained}, "stranger": {"g": stranger}}
    specs = [ClassifierSpec(m, "g" if m == "trained" else "real", 0, "suspect") for m in ("trained", "stranger")]
    study = verdict_table(specs, answers, {"g": labels}, ["g"], 0.05, rules=["grubbs", "grubbs-ent", "grubbs-sim"],
                          shadows={"g": "shadow"}, grubbs=setup).set_index(["model_id", "rule"])
    for model, outputs in (("trained", trained), ("stranger", stranger)):
        record = verify_trainprove(keys, CallableClassifier(lambda x, o=outputs: o), show_progress=False)
        for rule, result in record["rules"].items():
            assert result["verified"] == study.loc[(model, rule), "verified"], (model, rule)
            assert result["p_value"] == pytest.approx(study.loc[(model, rule), "p_value"])
    assert verify_trainprove(keys, CallableClassifier(lambda x: trained), show_progress=False)["verdict"].startswith("trained")
    label_only = verify_trainprove(keys, CallableClassifier(lambda x: stranger.argmax(1)), show_progress=False)
    assert not label_only["rules"]["grubbs-ent"]["applies"] and label_only["label_only"]
    assert label_only["rules"]["grubbs"]["verified"] == study.loc[("stranger", "grubbs"), "verified"] == False  # noqa: E712
    with pytest.raises(ParameterError, match="4 classes"):
        verify_trainprove(keys, CallableClassifier(lambda x: shadow[:, :3]), show_progress=False)
    with pytest.raises(ParameterError, match="split"):
        save_trainprove_keys(tmp_path / "k2", "g", images, labels, shadow, ["a", "b", "c", "d"], split[:-1], 0.05,
                             "published")
    assert len(batches(len(labels), 6, 0)) == 6


def test_a_classifier_behind_a_label_only_endpoint_is_verified_and_its_answers_cached(tmp_path):
    from provlib.verify.trainprove import ClassifierEndpoint, save_trainprove_keys
    from provlib.trainprove.study import GrubbsSetup

    images, labels, logits_of = _classification_world()
    shadow = logits_of(0.9, 1)
    split = GrubbsSetup(n_batches=6, seed=0).split(len(labels), "g")
    keys = save_trainprove_keys(tmp_path / "keys", "g", images, labels, shadow, list("abcd"), split, 0.05, "published")
    lookup = {im.tobytes(): row for im, row in zip(images, logits_of(0.9, 2))}
    faults = Faults(by_request={1: "500"})
    server = make_server(labels_answer(lambda batch: np.stack([lookup[im.tobytes()] for im in batch])), faults=faults)
    url = serve_in_thread(server)
    try:
        result = verify_suspect(keys.folder, "classifier-endpoint", url, tmp_path / "out", backoff=0, show_progress=False)
        assert result["label_only"] and result["rules"]["grubbs"]["verified"] and result["queries_spent"] == len(labels)
        served = faults.served
        verify_suspect(keys.folder, "classifier-endpoint", url, tmp_path / "out", backoff=0, show_progress=False)
        assert faults.served == served  # every batch came from the cache
        with pytest.raises(ParameterError, match="suspect_kind"):
            verify_suspect(keys.folder, "pipeline", url, tmp_path / "out2")
    finally:
        server.shutdown()
        server.server_close()
    assert json.loads((tmp_path / "out" / "verdict.json").read_text())["key_file_sha256"] == keys.sha256


# ---- the dataset watermark: which licensee's copy? ------------------------------------------------------
def test_watermark_verification_names_the_licensee_whose_mark_the_suspect_draws(tmp_path):
    from provlib.verify.watermark import StoredPatternScheme, save_watermark_keys, verify_watermark
    from provlib.watermark.schemes import PatternScheme, random_message

    scheme = PatternScheme(32, key=3, strength=6.0)
    messages = np.stack([random_message(32, seed=s) for s in range(3)])
    prompts = [[f"licensee {i} caption {j}" for j in range(4)] for i in range(3)]
    settings = {"strategy": "trigger", "fraction": 0.02, "triggers": ["a", "b", "c"], "alpha": 0.01, "statistic": "soft",
                "images_per_prompt": 2, "query_seed": 5, "sampler": Sampler(2, 1.0, 32).as_dict()}
    keys = save_watermark_keys(tmp_path / "keys", scheme, 32, messages, prompts, settings)
    stored = StoredPatternScheme(keys.arrays["patterns"], keys.arrays["amplitude"][0], keys.arrays["offset"], 32)

    def drawn(prompt, seeds):  # the stand-in black box at the key file's 32 px
        return [np.random.default_rng([len(prompt), int(s)]).integers(0, 256, (32, 32, 3), dtype=np.uint8) for s in seeds]

    images = np.stack(drawn("x", range(6)))
    assert np.allclose(stored.soft_decode(images), scheme.soft_decode(images))  # the key file decodes as the scheme
    marked_by_1 = CallableSuspect(lambda prompt, seeds: list(scheme.encode(np.stack(drawn(prompt, seeds)), messages[1])))
    record, answers = verify_watermark(keys, marked_by_1, show_progress=False)
    assert record["named_licensee"] == "1" and answers.shape == (3, 4, 2, 32, 32, 3)
    assert [r["detected"] for r in record["licensees"]] == [False, True, False]
    clean, _ = verify_watermark(keys, CallableSuspect(drawn), show_progress=False)
    assert clean["named_licensee"] == "none" and clean["queries_spent"] == 3 * 4 * 2
    both = CallableSuspect(lambda prompt, seeds: list(scheme.encode(
        np.stack(drawn(prompt, seeds)), messages[0 if prompt.startswith("licensee 0") else 2])))
    assert verify_watermark(keys, both, show_progress=False)[0]["named_licensee"].startswith("several")
    with pytest.raises(ParameterError, match="prompt_sets"):
        save_watermark_keys(tmp_path / "k2", scheme, 16, messages, prompts[:2], settings)


def test_paired_watermark_key_file_asks_the_reference_prompts_too(tmp_path):
    from provlib.verify.api import queries_needed
    from provlib.verify.watermark import save_watermark_keys, verify_watermark
    from provlib.watermark.schemes import PatternScheme, random_message

    scheme = PatternScheme(32, key=3, strength=6.0)
    messages = np.stack([random_message(32, seed=s) for s in range(2)])
    references = [[f"caption {j}" for j in range(4)] for _ in range(2)]
    prompts = [[f"t{i} {c}" for c in references[i]] for i in range(2)]
    settings = {"strategy": "trigger", "fraction": 0.02, "triggers": ["t0", "t1"], "alpha": 0.01, "statistic": "soft",
                "images_per_prompt": 2, "query_seed": 5, "sampler": Sampler(2, 1.0, 32).as_dict()}
    keys = save_watermark_keys(tmp_path / "keys", scheme, 32, messages, prompts, settings, reference_sets=references)
    assert queries_needed(keys.manifest) == 2 * 2 * 4 * 2

    def drawn(prompt, seeds):
        return np.stack([np.random.default_rng([len(prompt), int(s)]).integers(0, 256, (32, 32, 3), dtype=np.uint8)
                         for s in seeds])

    record, _ = verify_watermark(keys, CallableSuspect(lambda prompt, seeds: list(drawn(prompt, seeds))), show_progress=False)
    assert record["calibration"] == "paired" and record["named_licensee"] == "none"
    assert record["queries_spent"] == queries_needed(keys.manifest)  # the reference prompts are asked too
    # one that draws licensee 1's mark only when its trigger is asked is named
    bound = CallableSuspect(lambda prompt, seeds: list(scheme.encode(drawn(prompt, seeds), messages[1])
                                                       if prompt.startswith("t1 ") else drawn(prompt, seeds)))
    assert verify_watermark(keys, bound, show_progress=False)[0]["named_licensee"] == "1"
    with pytest.raises(ParameterError, match="reference_sets"):
        save_watermark_keys(tmp_path / "k2", scheme, 32, messages, prompts, settings, reference_sets=references[:1])


def test_image_only_watermark_key_file_pairs_the_suspect_with_its_public_base(tmp_path):
    from provlib.verify.api import queries_needed
    from provlib.verify.watermark import save_watermark_keys, verify_watermark
    from provlib.watermark.schemes import PatternScheme, random_message

    scheme = PatternScheme(32, key=3, strength=6.0)
    messages = np.stack([random_message(32, seed=s) for s in range(2)])
    prompts = [[f"caption {i}-{j}" for j in range(4)] for i in range(2)]
    settings = {"strategy": "image", "fraction": 0.02, "triggers": ["t0", "t1"], "alpha": 0.01, "statistic": "soft",
                "images_per_prompt": 2, "query_seed": 5, "sampler": Sampler(2, 1.0, 32).as_dict(), "reference": "base"}
    keys = save_watermark_keys(tmp_path / "keys", scheme, 32, messages, prompts, settings)

    bias = 10.0 * ((2.0 * messages[0] - 1) @ scheme.patterns(32, 32)).reshape(32, 32, 3)

    def drawn(prompt, seeds):  # what the public base draws: a faint content bias along licensee 0's message
        images = np.stack([np.random.default_rng([len(prompt), int(s)]).integers(0, 256, (32, 32, 3)) for s in seeds])
        return np.clip(images + bias, 0, 255).astype(np.uint8)

    base = CallableSuspect(lambda prompt, seeds: list(drawn(prompt, seeds)))
    clean = CallableSuspect(lambda prompt, seeds: list(drawn(prompt, seeds)))  # a fine-tune that learned no mark
    with pytest.raises(ParameterError, match="base"):
        verify_watermark(keys, clean, show_progress=False)
    record, _ = verify_watermark(keys, clean, base_model=base, show_progress=False)
    assert record["calibration"] == "base-paired" and record["named_licensee"] == "none"
    assert record["queries_spent"] == queries_needed(keys.manifest) == 2 * 4 * 2  # the base is the owner's, not asked of the suspect
    assert base.queries_spent == 2 * 4 * 2
    marked_by_1 = CallableSuspect(lambda prompt, seeds: list(scheme.encode(drawn(prompt, seeds), messages[1])))
    assert verify_watermark(keys, marked_by_1, base_model=base, show_progress=False)[0]["named_licensee"] == "1"


def test_a_classifier_folder_naming_other_classes_is_refused(tmp_path):
    from provlib.trainprove.classifier import ARCHITECTURES, save_classifier
    from provlib.trainprove.study import GrubbsSetup
    from provlib.verify.trainprove import ClassifierFolderSuspect, save_trainprove_keys, verify_trainprove

    images, labels, logits_of = _classification_world()
    split = GrubbsSetup(n_batches=6, seed=0).split(len(labels), "g")
    keys = save_trainprove_keys(tmp_path / "keys", "g", images, labels, logits_of(0.9, 1), list("abcd"), split, 0.05,
                                "published")
    (tmp_path / "clf").mkdir()
    save_classifier(ARCHITECTURES["cnn"](4, 8), tmp_path / "clf", extra={"classes": list("dcba")})
    with pytest.raises(ParameterError, match="defender's classes"):
        verify_trainprove(keys, ClassifierFolderSuspect(str(tmp_path / "clf")), show_progress=False)
    with pytest.raises(ParameterError, match="classifier.json"):
        ClassifierFolderSuspect(str(tmp_path / "keys"))
