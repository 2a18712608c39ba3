"""UF-AMA: affectlab's ``official=True`` reading against the authors' released code.

Usage::

    python benchmarks/equivalence/uf_ama.py --official /path/to/UF-AMA

``--official`` is a checkout of ``BetterCoderLab/UF-AMA`` (Wang, Wang, Wang, "UF-AMA: A unified
framework for cross-domain emotion recognition via adaptive multimodal alignment",
arXiv:2606.00170). Its ``graph``, ``backbone``, ``loss_mmd`` and ``main_seed`` /
``main_seed_iv`` modules are imported at run time; stand-ins are registered only for modules
the release lacks (``loss_cmmd``, imported and never used; the data loaders
``load_data_seed*``) and for ``seaborn`` when it is not installed (plots only).

Equivalence. The released model and optimiser are built by the released ``main()`` itself
(its seed, ``init_all``, its ``Adam`` over the three base networks), with a one-batch loader in
place of the missing data loader; the released training step is the released ``train()`` run
for one epoch of one batch. The weights are copied into affectlab's network through the
explicit state-dict mapping :func:`mapping` (every key on both sides accounted for; the
template layer that ``nn.TransformerEncoder`` deep-copies is never run). Dropout is off on
both sides (probabilities set to 0), so both compute deterministically. Each component runs in
float64 and float32 on SEED (1 block, 33 eye features, 3 classes) and SEED-IV (3 blocks, 31,
4); its error (:func:`common.rel_error`) is the larger of the two datasets:

kernel_matrix        ``loss_mmd.guassian_kernel`` vs affectlab's bandwidths + kernel sum
mmd_linear           ``mmd_rbf_accelerate`` vs ``mk_mmd(estimator="linear")``, value + gradients
mmd_quadratic        ``mmd_rbf_no_accelerate`` vs ``mk_mmd(estimator="quadratic")``
delta_schedule       ``segmented_function(e)`` vs ``official_delta(e)``, e = 0..399
affinity_bce         the weighted affinity BCE of the released ``train()`` (its log) vs the step's
screening            the released ``target_filter`` sets (consistent, EEG teaches eye, eye
                     teaches EEG, with labels) vs :func:`screen`, on the batch and with every
                     confidence tied (head outputs zeroed)
encoder              both modality encoders (tokens and vector)
fusion               the ICAF fusion on the same tokens
forward              the model's forward: source logits, softmax similarity matrices, the three
                     MMD terms, the consistency cross-entropy
total_loss           every loss term and the total the released ``train()`` back-propagates
gradients            the gradient of that total for every trainable parameter (each tensor
                     relative to its largest entry, or to 1e-3 of the largest of all)
adam_step            the weight change of one Adam step (released ``train()`` vs ``_step``),
                     over the entries whose gradient is at least 1e-5 (1000 x Adam's eps;
                     the first step ``-lr g / (|g| + eps)`` turns round-off of a gradient near
                     eps into a change of up to ``lr``; the error over every entry is in the
                     JSON notes)
optimiser_membership the parameters each optimiser updates (the heads are in neither)

The step components run twice: from the initial weights, and with the heads' last layers
scaled by 100 so that confidences pass the 0.9 gate and the distillation and consistency terms
act.

Tolerances (relative): float64 1e-9 for every component; float32 1e-4, and 2e-3 for the
weight changes of a step (float32 resolves an updated weight to one unit in its last place, up
to 1.2e-3 of a step of lr 1e-4).

Timing. One training step at the papers' shapes (32 source + 32 target windows, EEG 62 x 5, eye
33 / 31), dropout on, float32, one thread: the released ``train()`` for one epoch of one batch
(its checkpoint and log writes replaced by no-ops; its end-of-epoch evaluation, on one window, is
timed apart as ``released_evaluate``), affectlab ``official=True`` and the ``paper`` preset
(epoch 200, every term active), alternating one step each; CPU seconds per step
(``time.process_time``), medians in ``benchmarks/results/equivalence_uf_ama.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from affectlab.losses.affinity import cosine_matrix  # noqa: E402
from affectlab.losses.mmd import (  # noqa: E402
    EPS,
    bandwidths,
    gaussian_kernel_sum,
    mk_mmd,
    pairwise_sq_dists,
)
from affectlab.methods.base import build_config  # noqa: E402
from affectlab.methods.uf_ama import (  # noqa: E402
    UFAMA,
    UFAMANet,
    build_optimiser,
    masked_ce,
    official_delta,
    resolve,
    screen,
)

B = 32
DATASETS = {   # released script, eye features, classes, blocks and seed of its main()
    "seed": {"script": "main_seed", "n_eye": 33, "n_classes": 3, "blocks": 1, "seed": 50},
    "seed_iv": {"script": "main_seed_iv", "n_eye": 31, "n_classes": 4, "blocks": 3, "seed": 10},
}
COMPONENTS = ["kernel_matrix", "mmd_linear", "mmd_quadratic", "delta_schedule", "affinity_bce",
              "screening", "encoder", "fusion", "forward", "total_loss", "gradients",
              "adam_step", "optimiser_membership"]
#: the template layer of each released encoder (deep-copied by nn.TransformerEncoder, never run)
UNUSED = ["eeg_base_network.attn_layer.*", "eye_base_network.attn_layer.*"]
CONFIDENT_SCALE = 100.0


def mapping(released_keys: list[str], blocks: int) -> list[common.Rule]:
    """Released key -> affectlab key, module by module."""
    prefixes = [("fusion.proj_a.", "fusion_base_network.eeg_feature_dim_change."),
                ("fusion.proj_b.", "fusion_base_network.eye_feature_dim_change."),
                ("fusion.attn_a.", "fusion_base_network.eeg_eye_attn."),
                ("fusion.attn_b.", "fusion_base_network.eye_eeg_attn."),
                ("fusion.down_a.", "fusion_base_network.eeg_feature_dim_down."),
                ("fusion.down_b.", "fusion_base_network.eye_feature_dim_down."),
                ("eeg_head.", "eeg_classifier."), ("eye_head.", "eye_classifier."),
                ("fusion_head.", "fusion_classifier.")]
    for ours, theirs in (("eeg_encoder.", "eeg_base_network."),
                         ("eye_encoder.", "eye_base_network.")):
        prefixes += [(ours + "embed.", theirs + "dim_up."), (ours + "down.", theirs + "dim_down.")]
        prefixes += [(f"{ours}blocks.{i}.", f"{theirs}encoder.layers.{i}.") for i in range(blocks)]
    return common.rules_from_prefixes(released_keys, prefixes)


# --------------------------------------------------------------------------- released code

def load_released(root: Path) -> tuple[dict, list[str]]:
    def missing_loader(*args, **kwargs):
        raise NotImplementedError("the released data loaders are not in the release")

    stubs = {"loss_cmmd": {}, "load_data_seed": {"load_data": missing_loader},
             "load_data_seed_iv": {"load_data": missing_loader}, "seaborn": {}}
    os.environ.setdefault("MPLBACKEND", "Agg")
    with contextlib.redirect_stdout(io.StringIO()):
        return common.import_released(root, ["graph", "loss_mmd", "main_seed", "main_seed_iv"],
                                      stubs)


class _Built(Exception):
    def __init__(self, model, optimizer):
        super().__init__("built")
        self.model, self.optimizer = model, optimizer


def build_released(script, spec: dict, loaders: tuple):
    """The released model and optimiser exactly as ``main()`` builds them for the first fold
    (``setup_seed``, ``graph.UF_AMA``, ``Adam`` over the base networks, ``init_all``)."""
    def load_data(test_id, BATCH_SIZE, session):  # noqa: N803 (the released signature)
        return loaders

    def stop(source_loader, target_train_loader, target_test_loader, model, optimizer, *rest):
        raise _Built(model, optimizer)

    saved = script.load_data, script.train
    script.load_data, script.train = load_data, stop
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            script.main(1, spec["blocks"], 1e-5, 1, spec["seed"])
    except _Built as built:
        return built.model, built.optimizer
    finally:
        script.load_data, script.train = saved
    raise RuntimeError("the released main() did not reach train()")


def released_train_step(script, model, optimizer, loaders: tuple) -> tuple[dict, torch.Tensor]:
    """One epoch of one batch of the released ``train()``: its logged loss terms and the total
    it back-propagated."""
    script.args.n_epoch = 1
    script.log.clear()
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp), \
            contextlib.redirect_stdout(io.StringIO()), common.record_backward() as losses:
        script.train(*loaders, model, optimizer, 1, 1e-5, 1)
    _, clf, bce, mmd, distill, consistency, total = script.log[-1]
    terms = {"cls": clf, "bce": bce, "mmd": mmd, "dstl": distill, "cnst": consistency,
             "loss": total}
    return terms, losses[-1]


@contextlib.contextmanager
def released_io_off():
    """The released ``train()`` writes a checkpoint and a CSV log every epoch: no-ops here."""
    save, savetxt = torch.save, np.savetxt
    torch.save = lambda *args, **kwargs: None
    np.savetxt = lambda *args, **kwargs: None
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp), \
                contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        torch.save, np.savetxt = save, savetxt


def released_screening(model, batch: dict) -> dict:
    """The sets the released ``target_filter`` returns during a forward, as {trial: label}."""
    captured = {}
    original = model.target_filter

    def spy(all_trial_id, all_modality_id, all_pseudo_label, all_data, *rest):
        result = original(all_trial_id, all_modality_id, all_pseudo_label, all_data, *rest)
        captured.update(result=result, all_data=all_data)
        return result

    model.target_filter = spy
    try:
        with torch.no_grad():
            model(0, *released_inputs(batch))
    finally:
        del model.target_filter
    n = len(batch["eeg_t"])
    rows = {"eeg_features": captured["all_data"][:n], "eye_features": captured["all_data"][n:]}
    out = {}
    for key, name, feature in (("filtered_target", "consistent", "eeg_features"),
                               ("distill_eeg", "eeg_teaches", "eeg_features"),
                               ("distill_eye", "eye_teaches", "eye_features")):
        part = captured["result"][key]
        out[name] = {} if part is None else {
            _row_index(rows[feature], row): int(label)
            for row, label in zip(part[feature], part["labels"], strict=True)}
    return out


def _row_index(reference: torch.Tensor, row: torch.Tensor) -> int:
    hits = [i for i in range(len(reference)) if torch.equal(reference[i], row)]
    if len(hits) != 1:
        raise RuntimeError("a screened feature row does not identify one target sample")
    return hits[0]


def released_inputs(batch: dict) -> tuple:
    return batch["eeg_s"], batch["eye_s"], batch["eeg_t"], batch["eye_t"], batch["onehot_s"]


# --------------------------------------------------------------------------- affectlab side

def affectlab_config(official: bool, dropout: bool):
    options = {"official": True} if official else {}
    if not dropout:
        options.update(encoder_dropout=0.0, head_dropout=0.0)
    return build_config(UFAMA, "paper", options)


def affectlab_setup(spec: dict, dataset: str, official: bool, dropout: bool,
                    dtype: torch.dtype = torch.float32):
    cfg = affectlab_config(official, dropout)
    settings = resolve(cfg, dataset)
    net = UFAMANet((62, 5), (spec["n_eye"], 1), spec["n_classes"], cfg, settings).to(dtype)
    method = UFAMA(cfg, n_classes=spec["n_classes"])
    method.net_, method.settings_ = net, settings
    return method


def affectlab_inputs(batch: dict) -> tuple[dict, torch.Tensor, dict]:
    n = len(batch["eeg_s"])
    xs = {"eeg": batch["eeg_s"].view(n, 62, 5), "eye": batch["eye_s"].view(n, -1, 1)}
    xt = {"eeg": batch["eeg_t"].view(n, 62, 5), "eye": batch["eye_t"].view(n, -1, 1)}
    return xs, batch["onehot_s"].argmax(1), xt


def affectlab_step(method, optimiser, batch: dict, epoch: int = 0) -> dict:
    xs, ys, xt = affectlab_inputs(batch)
    rows = torch.arange(len(ys))
    method.net_.train()
    return method._step(xs, ys, xt, rows, rows, optimiser, epoch)


def affectlab_screening(method, batch: dict) -> dict:
    xs, _, xt = affectlab_inputs(batch)
    with torch.no_grad():
        out = method.net_(xt["eeg"], xt["eye"])
    scr = screen(torch.softmax(out.logits[0], 1), torch.softmax(out.logits[1], 1),
                 method.config.alpha, method.settings_.low_set)

    def labelled(mask, labels):
        return {int(i): int(labels[i]) for i in torch.nonzero(mask).flatten()}

    return {"consistent": labelled(scr.consistent, scr.pseudo_eeg),
            "eeg_teaches": labelled(scr.eeg_teaches, scr.pseudo_eeg),
            "eye_teaches": labelled(scr.eye_teaches, scr.pseudo_eye)}


# --------------------------------------------------------------------------- data

def make_batch(spec: dict, dtype: torch.dtype, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c, p = spec["n_classes"], spec["n_eye"]
    y = torch.randint(c, (B,), generator=g)
    return {"eeg_s": torch.randn(B, 310, generator=g).to(dtype),
            "eye_s": torch.randn(B, p, generator=g).to(dtype),
            "eeg_t": torch.randn(B, 310, generator=g).to(dtype),
            "eye_t": torch.randn(B, p, generator=g).to(dtype),
            "onehot_s": F.one_hot(y, c).to(dtype),
            "onehot_t": F.one_hot(torch.randint(c, (B,), generator=g), c).to(dtype)}


def loaders_of(batch: dict) -> tuple:
    test = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        batch["eeg_t"][:1], batch["eye_t"][:1], batch["onehot_t"][:1]), batch_size=1)
    return ([(batch["eeg_s"], batch["eye_s"], batch["onehot_s"])],
            [(batch["eeg_t"], batch["eye_t"], batch["onehot_t"])], test)


# --------------------------------------------------------------------------- components

def value_and_grads(fn, s: torch.Tensor, t: torch.Tensor) -> dict:
    s, t = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    value = fn(s, t)
    grad_s, grad_t = torch.autograd.grad(value, (s, t))
    return {"value": value.detach(), "grad_source": grad_s, "grad_target": grad_t}


def loss_components(mods: dict, dtype: torch.dtype, dataset: str) -> dict[str, float]:
    """kernel matrix, both MMD estimators and the delta schedule (no model needed)."""
    loss_mmd, script = mods["loss_mmd"], mods[DATASETS[dataset]["script"]]
    g = torch.Generator().manual_seed(1)
    s = torch.randn(B, 64, generator=g).to(dtype)
    t = (torch.randn(B, 64, generator=g) + 0.5).to(dtype)

    def kernel(a, b):                   # what mk_mmd(estimator="quadratic") builds
        pooled = torch.cat([a, b])
        return gaussian_kernel_sum(pairwise_sq_dists(pooled, pooled) + EPS, bandwidths(pooled))

    return {
        "kernel_matrix": common.rel_error(kernel(s, t), loss_mmd.guassian_kernel(s, t)),
        "mmd_linear": common.rel_error(
            value_and_grads(lambda a, b: mk_mmd(a, b, estimator="linear"), s, t),
            value_and_grads(loss_mmd.mmd_rbf_accelerate, s, t)),
        "mmd_quadratic": common.rel_error(
            value_and_grads(lambda a, b: mk_mmd(a, b, estimator="quadratic"), s, t),
            value_and_grads(loss_mmd.mmd_rbf_no_accelerate, s, t)),
        "delta_schedule": common.rel_error([official_delta(e) for e in range(400)],
                                           [float(script.segmented_function(e))
                                            for e in range(400)]),
    }


def model_components(mods: dict, dataset: str, dtype: torch.dtype) -> tuple[dict, dict]:
    """Every component that needs the network, from the same released initial weights."""
    spec = DATASETS[dataset]
    script = mods[spec["script"]]
    batch = make_batch(spec, dtype)
    errors: dict[str, float] = {}
    notes: dict[str, object] = {}

    def fresh(scale: float = 1.0, zero_outputs: bool = False):
        """Released model + optimiser from main(), dropout off, in ``dtype``; the affectlab
        method with the same weights; the released initial state."""
        model, optimizer = build_released(script, spec, loaders_of(make_batch(spec, dtype)))
        common.disable_dropout(model)
        model.to(dtype)
        with torch.no_grad():
            for head in (model.eeg_classifier, model.eye_classifier, model.fusion_classifier):
                head[3].weight.mul_(scale)
                head[3].bias.mul_(scale)
            if zero_outputs:
                for head in (model.eeg_classifier, model.eye_classifier):
                    head[3].weight.zero_()
                    head[3].bias.zero_()
        method = affectlab_setup(spec, dataset, official=True, dropout=False, dtype=dtype)
        rules = mapping(list(model.state_dict()), spec["blocks"])
        common.load_mapped(method.net_, model.state_dict(), rules, UNUSED)
        return model, optimizer, method, rules

    # ---- encoder, fusion, forward, screening (initial weights)
    model, optimizer, method, rules = fresh()
    net = method.net_
    model.train()
    net.train()
    x_eeg, x_eye = batch["eeg_s"].view(B, 62, 5), batch["eye_s"].view(B, -1, 1)
    with torch.no_grad():
        errors["encoder"] = common.rel_error(
            [net.eeg_encoder(x_eeg), net.eye_encoder(x_eye)],
            [model.eeg_base_network(x_eeg), model.eye_base_network(x_eye)])
        g = torch.Generator().manual_seed(2)
        tok_eeg = torch.randn(B, 62, 64, generator=g).to(dtype)
        tok_eye = torch.randn(B, spec["n_eye"], 64, generator=g).to(dtype)
        errors["fusion"] = common.rel_error(net.fusion(tok_eeg, tok_eye),
                                            model.fusion_base_network(tok_eeg, tok_eye))
        released = model(0, *released_inputs(batch))
        xs, ys, xt = affectlab_inputs(batch)
        out = net(torch.cat([xs["eeg"], xt["eeg"]]), torch.cat([xs["eye"], xt["eye"]]))
        src, tgt = out.part(slice(0, B)), out.part(slice(B, 2 * B))
        scr = screen(torch.softmax(tgt.logits[0], 1), torch.softmax(tgt.logits[1], 1),
                     method.config.alpha, method.settings_.low_set)
        ours = {"logits": list(src.logits),
                "similarity": [cosine_matrix(torch.softmax(lg, 1)) for lg in src.logits],
                "label_similarity": (ys[:, None] == ys[None]).to(dtype),
                "mmd": [mk_mmd(a, b, estimator="linear")
                        for a, b in zip(src.features, tgt.features, strict=True)],
                "consistency_ce": masked_ce(tgt.logits[2], scr.pseudo_eeg, scr.consistent)}
        theirs = {"logits": [released[0], released[4], released[8]],
                  "similarity": [released[3], released[7], released[11]],
                  "label_similarity": released[12],
                  "mmd": [released[1], released[5], released[9]],
                  "consistency_ce": released[10]}
        errors["forward"] = common.rel_error(ours, theirs)
    screening = [common.rel_error(affectlab_screening(method, batch),
                                  released_screening(model, batch))]

    # ---- optimiser membership
    name_of = {id(p): n for n, p in model.named_parameters()}
    to_ours = {rule.sources[0]: rule.target for rule in rules}
    released_names = [name_of[id(p)] for group in optimizer.param_groups
                      for p in group["params"]]
    released_members = sorted(to_ours[n] for n in released_names if n in to_ours)
    notes["released_optimiser_template_members"] = len(
        [n for n in released_names if n not in to_ours])       # never run, never updated
    ours_optimiser = build_optimiser(net, method.config, method.settings_)
    ours_name = {id(p): n for n, p in net.named_parameters()}
    ours_members = sorted(ours_name[id(p)] for group in ours_optimiser.param_groups
                          for p in group["params"])
    errors["optimiser_membership"] = common.rel_error(ours_members, released_members)
    notes["parameters_not_optimised"] = sorted(set(ours_name.values()) - set(ours_members))

    # ---- one training step: initial weights, and heads scaled so the gate opens
    step_errors = {"affinity_bce": [], "total_loss": [], "gradients": [], "adam_step": []}
    for scenario, scale in (("initial", 1.0), ("confident", CONFIDENT_SCALE)):
        model, optimizer, method, rules = fresh(scale)
        net = method.net_
        to_ours = {rule.sources[0]: rule.target for rule in rules}
        if scenario == "confident":
            screening.append(common.rel_error(affectlab_screening(method, batch),
                                              released_screening(model, batch)))
        before_ours = copy.deepcopy(net.state_dict())
        before_theirs = common.map_state(model.state_dict(), before_ours, rules, UNUSED)
        terms, backpropagated = released_train_step(script, model, optimizer, loaders_of(batch))
        after_theirs = common.map_state(model.state_dict(), before_ours, rules, UNUSED)
        parts = affectlab_step(method, build_optimiser(net, method.config, method.settings_),
                               batch)
        after_ours = net.state_dict()
        ours_terms = {k: float(parts[k]) for k in terms}
        step_errors["affinity_bce"].append(common.rel_error(ours_terms["bce"], terms["bce"]))
        step_errors["total_loss"].append(common.rel_error(
            {**ours_terms, "backpropagated": parts["loss"]},
            {**terms, "backpropagated": backpropagated}))
        ours_grads = {n: q.grad for n, q in net.named_parameters() if q.requires_grad}
        theirs_grads = {to_ours[n]: q.grad for n, q in model.named_parameters()
                        if n in to_ours and to_ours[n] in ours_grads}
        step_errors["gradients"].append(common.gradient_error(ours_grads, theirs_grads))
        assert common.rel_error(before_ours, before_theirs) == 0.0     # the same start
        change, conditioned = common.change_errors(before_ours, after_ours, after_theirs,
                                                   theirs_grads)
        step_errors["adam_step"].append(conditioned)
        notes[f"adam_step_all_entries_{scenario}"] = change
        notes[f"step_{scenario}"] = {
            "released_terms": terms, "gate_open": float(parts["gate_open"]),
            "consistent_samples": float(parts["consistent"])}
    for key, values in step_errors.items():
        errors[key] = max(values)

    # ---- tied confidences: every EEG / eye head output zero
    model, optimizer, method, rules = fresh(zero_outputs=True)
    ours, theirs = affectlab_screening(method, batch), released_screening(model, batch)
    screening.append(common.rel_error(ours, theirs))
    method.settings_ = dataclasses.replace(method.settings_, low_set="complement")
    complement = affectlab_screening(method, batch)
    notes["tied_confidences"] = {
        "released_candidates": sum(len(v) for k, v in theirs.items() if k != "consistent"),
        "official_candidates": sum(len(v) for k, v in ours.items() if k != "consistent"),
        "complement_candidates": sum(len(v) for k, v in complement.items()
                                     if k != "consistent")}
    errors["screening"] = max(screening)
    return errors, notes


# --------------------------------------------------------------------------- timing

def timing(mods: dict, dataset: str, repeats: int, warmup: int) -> dict:
    spec = DATASETS[dataset]
    script = mods[spec["script"]]
    batch = make_batch(spec, torch.float32, seed=3)
    loaders = loaders_of(batch)
    model, optimizer = build_released(script, spec, loaders)
    script.args.n_epoch = 1
    official = affectlab_setup(spec, dataset, official=True, dropout=True)
    paper = affectlab_setup(spec, dataset, official=False, dropout=True)
    opt_official = build_optimiser(official.net_, official.config, official.settings_)
    opt_paper = build_optimiser(paper.net_, paper.config, paper.settings_)

    def released_step():
        script.log.clear()
        script.train(*loaders, model, optimizer, 1, 1e-5, 1)

    steps = {"released": released_step,
             "released_evaluate": lambda: script.evaluate(model, loaders[2]),
             "official": lambda: affectlab_step(official, opt_official, batch, epoch=0),
             "paper": lambda: affectlab_step(paper, opt_paper, batch, epoch=200)}
    with released_io_off():
        times = common.interleaved_timing(steps, repeats, warmup)
    summary = common.timing_summary(times)
    return {"seconds_per_step": {k: v["median"] for k, v in summary.items()},
            "summary": summary, "repeats": repeats, "warmup": warmup,
            "shapes": {"source": B, "target": B, "eeg": [62, 5], "eye": spec["n_eye"],
                       "classes": spec["n_classes"], "blocks_official": spec["blocks"],
                       "blocks_paper": paper.settings_.blocks}}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = common.harness_arguments(__doc__, "BetterCoderLab/UF-AMA",
                                      "equivalence_uf_ama.json", repeats=15, warmup=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mods, stubbed = load_released(args.official)
    per_dataset: dict[str, dict] = {}
    notes: dict[str, dict] = {}
    for dataset in DATASETS:
        for name, dtype in common.DTYPES.items():
            errors = loss_components(mods, dtype, dataset)
            model_errors, model_notes = model_components(mods, dataset, dtype)
            errors.update(model_errors)
            per_dataset.setdefault(dataset, {})[name] = errors
            notes.setdefault(dataset, {})[name] = model_notes
    rows = [{"component": c, "errors": {d: max(per_dataset[s][d][c] for s in DATASETS)
                                        for d in common.DTYPES},
             **({"tolerance": common.STEP_TOLERANCE} if c == "adam_step" else {})}
            for c in COMPONENTS]
    print(common.format_table(rows))
    payload = {
        "method": "uf_ama", "released_code": "BetterCoderLab/UF-AMA",
        "released_commit": common.git_commit(args.official), "stubbed_modules": stubbed,
        "tolerance": common.TOLERANCE, "dropout": "off in both (equivalence); on (timing)",
        "components": rows, "per_dataset": per_dataset, "notes": notes,
        "all_match": all(common.row_matches(r) for r in rows),
    }
    if not args.no_timing:
        payload["timing"] = {}
        for dataset in DATASETS:
            payload["timing"][dataset] = timing(mods, dataset, args.repeats, args.warmup)
            print(dataset, {k: round(v, 4) for k, v in
                            payload["timing"][dataset]["seconds_per_step"].items()},
                  "CPU s / step")
    payload["environment"] = common.environment()
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
