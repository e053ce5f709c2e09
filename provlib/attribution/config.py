"""The attribution method's configuration: instance-level keys and queries, the statistical-level discriminator."""
from __future__ import annotations

from dataclasses import dataclass

from provlib.core.config import Section, at_least_int, choice, positive_int, setting

# how Strategy 1 sums up the source's distances to a training image over the probe seeds: "mean" (reproduced across
# seeds, as the paper words it; a suspect's training set holds one generation per prompt, so a copy the source draws
# at every seed is the one it passes on) or "min" (reproduced by at least one seed)
DETECTION_STATISTICS = ("mean", "min")
# Strategy 1+2's key image for a prompt: the source's own medoid generation whichever strategy picked the prompt
# ("generation": the image an infringer's training set holds; for a prompt Strategy 1 picks it is the source's near-copy
# of its training image) or the image of the strategy that flagged the prompt more strongly ("strongest"); notebook 03
# compares both on shadows (docs/decisions.md, "Strategy 1+2's key image is the source's generation")
COMBINED_KEY_IMAGES = ("generation", "strongest")
# whose seed draws a source's key candidates: "training_set" (sources fine-tuned on one training set draw the same
# candidates, the draw of the first such source in the preset's order, so a suspect asked for every source's prompts in
# notebook 05 answers one set per training set; a single source's draw is unchanged) or "source" (each source its own
# draw). Key selection stays per source either way (docs/decisions.md, "One draw of key candidates per training set").
KEY_CANDIDATE_DRAWS = ("training_set", "source")


@dataclass(frozen=True)
class Attribution(Section):
    """Instance-level attribution: key-sample selection and what a suspect is asked."""
    memorization_prompts: int = setting(64, positive_int)  # prompts per source in notebook 01's memorization check
    key_candidates: int = setting(64, positive_int)  # candidate prompts per source that key selection ranks
    probe_seeds: int = setting(8, at_least_int(2))   # source / reference images per candidate (strategy 2 needs >= 2)
    key_count: int = setting(30, positive_int)       # N: key samples per source (paper: 30)
    query_images: int = setting(4, positive_int)     # k: images the suspect is asked for per key prompt
    descriptor_steps: int = setting(1500, positive_int)  # training steps of the copy-detection descriptor
    # which training image a candidate prompt names when several share its caption (a base's pre-training set):
    # "first" in the set, or "nearest" to the source's own generations for it (the defender searches its training
    # data for what the source draws, as extraction attacks match generations to the training set; Baseline 2's
    # random keys then name the matched image too, which can only favour the baseline)
    training_match: str = setting("first", choice("first", "nearest"))
    # what key selection (and the discriminator's d_reference) discounts: the generations of the suspect base only
    # ("suspect", the paper's reference), or of every public base ("every"): a prompt that any public model already
    # answers with the key image says nothing about training data, and an innocent fine-tune of the source's own base
    # inherits what that base draws
    reference_bases: str = setting("suspect", choice("suspect", "every"))
    # Strategy 1's source distance over the probe seeds (DETECTION_STATISTICS); notebook 03 compares both on shadows
    # (docs/decisions.md, "Strategy 1 by the mean over probe seeds")
    detection_statistic: str = setting("mean", choice(*DETECTION_STATISTICS))
    combined_key_image: str = setting("generation", choice(*COMBINED_KEY_IMAGES))  # COMBINED_KEY_IMAGES
    key_candidate_draw: str = setting("training_set", choice(*KEY_CANDIDATE_DRAWS))  # KEY_CANDIDATE_DRAWS

    def validate(self):
        self.require(self.key_count <= self.key_candidates, "key_count", f"at most key_candidates={self.key_candidates}")


@dataclass(frozen=True)
class Discriminator(Section):
    """Statistical-level attribution: how the discriminator is chosen and how its uncertainty is reported."""
    cv_repeats: int = setting(3, positive_int)             # reshuffled shadow-model folds averaged when choosing
    bootstrap_resamples: int = setting(1000, positive_int)  # resamples of test models behind every interval
    learning_curve_repeats: int = setting(10, positive_int)  # random shadow subsets per learning-curve point
