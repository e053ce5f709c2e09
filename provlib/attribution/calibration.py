"""Instance-level attribution over the zoo: key sets per source, per-key distances per suspect, thresholds.

Thresholds (δ0 and the conf level) are chosen from **shadow** models only: ``calibrate`` filters its
models to ``split == "shadow"`` itself, so a caller cannot leak test models into the choice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from provlib.attribution.instance import (
    best_key_distances,
    conf_from_distances,
    select_conf_threshold,
    select_delta0,
)
from provlib.attribution.keys import KeySet, select_keys
from provlib.core.errors import ParameterError
from provlib.core.progress import tqdm
from provlib.core.results import read_table
from provlib.core.store import derive_seed


def key_sets(zoo, source: str, space, n: int | None = None, strategies=("strategy1", "strategy2", "strategy12", "random"),
             reference_bases: str | None = None, detection_statistic: str | None = None,
             combined_key_image: str | None = None) -> dict[str, KeySet]:
    """Every applicable strategy's key set for one source (N = the preset's key_count unless given; the preset's
    reference bases, Strategy 1 seed statistic and Strategy 1+2 key image unless given)."""
    detection_statistic = detection_statistic or zoo.p.attribution.detection_statistic
    combined_key_image = combined_key_image or zoo.p.attribution.combined_key_image
    probe = zoo.candidate_probe(source, reference_bases)
    n = zoo.p.attribution.key_count if n is None else n
    needs_training_data = {"strategy1", "random"}
    out = {}
    for strategy in strategies:
        if probe.training_images is None and strategy in needs_training_data:
            continue  # paper-scale base source: its training data is not available to the defender
        out[strategy] = select_keys(probe, strategy, n, source=source, space=space,
                                    seed=derive_seed(zoo.p.seed, "random-keys", source),
                                    detection_statistic=detection_statistic, combined_key_image=combined_key_image)
    return out


def key_distances(zoo, specs, keys_by_source: dict[str, dict[str, KeySet]], space, desc: str = "key distances",
                  queries: int | None = None) -> pd.DataFrame:
    """One row per (suspect, strategy, key): the suspect's best distance to that key image over its first
    ``queries`` answers per key (all of them by default)."""
    rows = []
    for spec in tqdm(specs, desc=desc, disable=not zoo.show_progress, mininterval=5):
        answers = zoo.suspect_answers(spec)[:, :queries]
        for strategy, keys in keys_by_source[spec.source].items():
            distances = best_key_distances(answers[keys.candidate_index], keys.images, space)
            rows += [{"model_id": spec.model_id, "source": spec.source, "rho": spec.rho, "split": spec.split,
                      "strategy": strategy, "key_rank": rank, "prompt": prompt, "distance": float(d)}
                     for rank, (prompt, d) in enumerate(zip(keys.prompts, distances), start=1)]
    return pd.DataFrame(rows)


def model_confs(distances: pd.DataFrame, delta0: float, n_keys: int | None = None) -> pd.DataFrame:
    """conf (Eq. 6) per (model, strategy) from the first ``n_keys`` keys of each key set."""
    frame = distances if n_keys is None else distances[distances.key_rank <= n_keys]
    keys_used = frame.groupby(["model_id", "strategy"]).key_rank.max().rename("n_keys")
    conf = (frame.groupby(["model_id", "source", "rho", "split", "strategy"], as_index=False).distance
            .agg(lambda d: conf_from_distances(d.to_numpy(), delta0)).rename(columns={"distance": "conf"}))
    return conf.merge(keys_used.reset_index(), on=["model_id", "strategy"])


def calibrate(zoo, specs, keys_by_source, space, strategy: str = "strategy12", rule: str = "max_gap",
              innocent_key_rate: float = 0.05, false_positive_rate: float = 0.1, queries: int | None = None,
              level_rule: str = "empirical") -> dict:
    """δ0 and the conf decision level for one feature space, from shadow models only.

    ``max_gap`` and ``innocent_rate`` compare pooled per-key distances of the shadow models at the largest ρ
    (infringing) with the shadow innocent models (ρ = 0), as the paper picks δ0 from one ρ = 1 and one innocent
    model; ``low_rho_tpr`` picks the δ0 that calls the most shadows at the smallest ρ infringing
    (``select_delta0_for_decision``). The conf level then lets at most ``false_positive_rate`` of shadow innocent
    models through (``level_rule``: ``select_conf_threshold``'s empirical or split-conformal order statistic, or the
    conformal one guarded by a fitted tail);
    ``shadow_rho`` names the infringing shadows δ0 was chosen on. ``queries`` limits every key to the suspect's first
    answers (the query budget), as ``key_distances``.
    """
    shadow = _shadow_models(specs)
    shadow_rho = _shadow_rho([s.rho for s in shadow], rule)
    chosen = [s for s in shadow if s.rho in (0.0, shadow_rho)]
    distances = key_distances(zoo, chosen, {src: {strategy: ks[strategy]} for src, ks in keys_by_source.items()},
                              space, desc=f"shadow distances ({space.name})", queries=queries)
    return _calibrate_on(distances, shadow_rho, rule, innocent_key_rate, false_positive_rate, space.name, strategy,
                         level_rule)


def _shadow_models(specs) -> list:
    """The shadow models among ``specs``; calibration reads nothing else."""
    shadow = [s for s in specs if s.split == "shadow"]
    if not shadow:
        raise ParameterError("specs", "at least one shadow model (split == 'shadow')", [s.model_id for s in specs])
    return shadow


def _shadow_rho(shadow_rhos, rule: str) -> float:
    """The infringing shadows δ0 is chosen on: the smallest ρ for the decision rule, the largest for the paper's rules."""
    positive = [r for r in shadow_rhos if r > 0] or [0.0]
    return min(positive) if rule == "low_rho_tpr" else max(shadow_rhos)


def _calibrate_on(distances: pd.DataFrame, shadow_rho: float, rule: str, innocent_key_rate: float,
                  false_positive_rate: float, space_name: str, strategy: str, level_rule: str = "empirical") -> dict:
    """``calibrate``'s choice from the shadow models' key distances (innocent and ρ = ``shadow_rho`` rows only)."""
    if rule == "low_rho_tpr":
        # the decision that matters: δ0 that calls the most smallest-ρ shadows infringing at the conf level that lets at
        # most false_positive_rate of innocent shadows through (the largest-ρ shadows copy so closely that a δ0 fitted
        # to them is too tight for ρ = 0.3)
        delta0 = select_delta0_for_decision(distances, shadow_rho, false_positive_rate, level_rule=level_rule)
    else:
        infringing = distances[distances.rho == shadow_rho].distance
        innocent = distances[distances.rho == 0.0].distance
        delta0 = select_delta0(infringing, innocent, rule=rule, innocent_key_rate=innocent_key_rate)
    confs = model_confs(distances, delta0)
    innocent_confs = confs[confs.rho == 0.0].conf
    conf_threshold = select_conf_threshold(innocent_confs, false_positive_rate, level_rule, int(confs.n_keys.max()))
    infringing_confs = confs[confs.rho == shadow_rho].conf
    return {"feature_space": space_name, "delta0": delta0, "conf_threshold": conf_threshold, "rule": rule,
            "conf_level_rule": level_rule,
            "strategy": strategy, "shadow_rho": shadow_rho, "n_shadow_infringing": int(confs[confs.rho == shadow_rho].model_id.nunique()),
            "n_shadow_innocent": int(innocent_confs.size),
            "shadow_conf_infringing": float(infringing_confs.mean()), "shadow_conf_innocent": float(innocent_confs.mean()),
            "shadow_conf_gap": float(infringing_confs.mean() - innocent_confs.mean()),
            "shadow_models": sorted(confs.model_id.unique())}


def select_delta0_for_decision(distances: pd.DataFrame, rho: float, false_positive_rate: float, grid=None,
                               level_rule: str = "empirical") -> float:
    """δ0 maximizing the share of ρ = ``rho`` models whose conf exceeds the innocent models' conf level (the level
    ``select_conf_threshold`` sets at ``false_positive_rate``); ties go to the larger conf gap, then the smaller δ0."""
    grid = np.round(np.arange(0.01, 0.6, 0.005), 4) if grid is None else np.asarray(grid)
    by_model = {key: g.distance.to_numpy() for key, g in distances.groupby(["model_id", "rho"])}
    innocent = [d for (_, r), d in by_model.items() if r == 0.0]
    infringing = [d for (_, r), d in by_model.items() if r == rho]
    if not innocent or not infringing:
        raise ParameterError("shadow models", f"innocent shadows and shadows at rho={rho:g}", sorted({r for _, r in by_model}))
    n_keys = max(len(d) for d in innocent)
    best, best_key = float(grid[0]), (-1.0, -np.inf)
    for delta0 in grid:
        innocent_confs = np.array([(d < delta0).mean() for d in innocent])
        infringing_confs = np.array([(d < delta0).mean() for d in infringing])
        level = select_conf_threshold(innocent_confs, false_positive_rate, level_rule, n_keys)
        key = ((infringing_confs > level).mean(), infringing_confs.mean() - innocent_confs.mean())
        if key > best_key:
            best, best_key = float(delta0), key
    return best


def conf_by_queries(zoo, specs, keys_by_source, space, *, rule: str, false_positive_rate: float,
                    strategy: str = "strategy12", innocent_key_rate: float = 0.05,
                    level_rule: str = "empirical") -> pd.DataFrame:
    """The query-budget ablation: for k = 1 .. the answers per key the suspects gave, δ0 and the conf level
    re-chosen on the shadows from each key's first k answers (the same rule as the headline), then every model's
    conf and decision. One row per (k, split, ρ)."""
    available = zoo.p.attribution.query_images
    keys = {source: {strategy: sets[strategy]} for source, sets in keys_by_source.items()}
    shadow_rho = _shadow_rho([s.rho for s in specs if s.split == "shadow"], rule)
    rows = []
    for k in range(1, available + 1):
        distances = key_distances(zoo, specs, keys, space, desc=f"key distances, k={k}", queries=k)
        # the choice reads the shadow rows only, as calibrate does
        shadow = distances[(distances.split == "shadow") & distances.rho.isin([0.0, shadow_rho])]
        chosen = _calibrate_on(shadow, shadow_rho, rule, innocent_key_rate, false_positive_rate, space.name, strategy,
                               level_rule)
        confs = model_confs(distances, chosen["delta0"]).assign(called_infringing=lambda c: c.conf > chosen["conf_threshold"])
        table = (confs.groupby(["split", "rho"], as_index=False)
                 .agg(mean_conf=("conf", "mean"), called_infringing=("called_infringing", "mean"), n_models=("conf", "size")))
        rows.append(table.assign(queries_per_key=k, delta0=chosen["delta0"], conf_threshold=chosen["conf_threshold"],
                                 queries=k * int(confs.n_keys.max()), feature_space=space.name))
    return pd.concat(rows, ignore_index=True)


def conf_by_rho(confs: pd.DataFrame, queries_per_key: int) -> pd.DataFrame:
    """Figure 6's table: mean conf per (method, ρ) with the number of models and the query cost."""
    table = (confs.groupby(["strategy", "rho"], as_index=False)
             .agg(mean_conf=("conf", "mean"), std_conf=("conf", "std"), n_models=("conf", "size"), n_keys=("n_keys", "max")))
    table["queries"] = table.n_keys * queries_per_key
    return table.rename(columns={"strategy": "method"})


def decision_rates(confs: pd.DataFrame, conf_threshold: float) -> pd.DataFrame:
    """Share of models called infringing (conf > level) per method and ρ: TPR for ρ > 0, FPR at ρ = 0."""
    return (confs.assign(called_infringing=confs.conf > conf_threshold)
            .groupby(["strategy", "rho"], as_index=False).called_infringing.mean())


def innocents_by_lineage(zoo, confs: pd.DataFrame, conf_threshold: float) -> pd.DataFrame:
    """Innocent models' conf per lineage: fine-tunes of the suspect base (the headline) and, with
    ``innocents_on_every_base``, of the source's own base, which share the source's pre-trained model."""
    base_of = {s.model_id: s.base for s in zoo.suspect_specs()}
    innocent = confs[confs.rho == 0.0]
    lineage = np.where(innocent.model_id.map(base_of) == innocent.source.map(zoo.suspect_base), "suspect base",
                       "the source's own base")
    return (innocent.assign(innocent_base=lineage).groupby("innocent_base")
            .agg(models=("model_id", "count"), mean_conf=("conf", "mean"),
                 called_infringing=("conf", lambda c: float((c > conf_threshold).mean()))).reset_index())


def distinct_references(zoo, choices) -> list[str]:
    """The distinct reference-base choices among ``choices`` ("suspect", "every"), in order: with one public base
    (or one base besides the suspect base's lineage) "every" is the suspect base alone and is dropped."""
    if isinstance(choices, str) or not choices:
        raise ParameterError("reference_choices", "a non-empty list of 'suspect' and/or 'every'", choices)
    distinct, seen = [], set()
    for mode in choices:
        references = tuple(zoo.reference_bases(zoo.p.source_names[0], mode))  # validates the name
        if references not in seen:
            seen.add(references)
            distinct.append(mode)
    return distinct


def select_calibration(table: pd.DataFrame, preferred_reference: str | None = None) -> pd.Series:
    """Which (feature space, reference bases) row of notebook 03's calibration table the later notebooks use: the
    largest shadow conf gap; ties go to ``preferred_reference`` (the preset's), then to the first row."""
    gap = table.shadow_conf_gap.to_numpy()
    best = np.isclose(gap, gap.max(), rtol=0, atol=1e-12)
    if preferred_reference is not None and "reference_bases" in table:
        preferred = best & (table.reference_bases == preferred_reference).to_numpy()
        best = preferred if preferred.any() else best
    return pd.Series(np.arange(len(table)) == np.flatnonzero(best)[0], index=table.index)


def shadow_calibrations(preset) -> pd.DataFrame:
    """Notebook 03's calibration table (one row per feature space and reference choice, ``selected`` marking the one
    the later notebooks use), refused unless 03 ran for this preset, seed, N and k."""
    return read_table("delta0", preset, "03_delta0_threshold", same=("attribution.key_count", "attribution.query_images"))


def shadow_selection(preset):
    """Notebook 03's selected calibration row (feature space, δ0, conf level, reference bases), read for this preset,
    seed, N and k only, and the preset with the reference bases 03 chose: what notebooks 04, 05 and 08 key on."""
    table = shadow_calibrations(preset)
    chosen = table[table.selected].iloc[0]
    reference = chosen.get("reference_bases", preset.attribution.reference_bases)
    return preset.replace(reference_bases=reference), chosen


def compare_reference_bases(zoo, specs, space, strategy: str = "strategy12", rule: str = "max_gap",
                            innocent_key_rate: float = 0.05, false_positive_rate: float = 0.1,
                            level_rule: str = "empirical", choices=("suspect", "every"),
                            chosen_reference: str | None = None) -> pd.DataFrame:
    """Key selection with the suspect base as the only reference against every public base, judged on shadow models
    only: for each choice, δ0 and the conf level calibrated as ``calibrate`` does, then the shadows' mean conf and
    the share called infringing, for the infringing shadows δ0 is chosen on and for innocents of each lineage.
    ``chosen_reference`` marks the choice the later notebooks use (the preset's if not given)."""
    shadow = _shadow_models(specs)
    shadow_rho = _shadow_rho([s.rho for s in shadow], rule)
    shadow = [s for s in shadow if s.rho in (0.0, shadow_rho)]
    chosen_reference = chosen_reference or zoo.p.attribution.reference_bases
    rows = []
    for mode in distinct_references(zoo, choices):
        keys = {source: key_sets(zoo, source, space, strategies=(strategy,), reference_bases=mode)
                for source in zoo.p.source_names}
        # one pass over the shadows' answers serves both the calibration and the conf table
        distances = key_distances(zoo, shadow, keys, space, desc=f"shadows, reference {mode}")
        chosen = _calibrate_on(distances, shadow_rho, rule, innocent_key_rate, false_positive_rate, space.name, strategy,
                               level_rule)
        confs = model_confs(distances, chosen["delta0"])
        infringing = confs[confs.rho == shadow_rho]
        groups = [pd.DataFrame([{"innocent_base": f"infringing (rho={shadow_rho:g})", "models": len(infringing),
                                 "mean_conf": infringing.conf.mean(),
                                 "called_infringing": float((infringing.conf > chosen["conf_threshold"]).mean())}]),
                  innocents_by_lineage(zoo, confs, chosen["conf_threshold"])]
        rows.append(pd.concat(groups, ignore_index=True).rename(columns={"innocent_base": "shadow_models"})
                    .assign(reference_bases=mode, delta0=chosen["delta0"], conf_threshold=chosen["conf_threshold"],
                            chosen=mode == chosen_reference))
    return pd.concat(rows, ignore_index=True)
