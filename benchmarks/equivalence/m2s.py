"""M2S: affectlab's ``official=True`` reading against the authors' released code.

Usage::

    python benchmarks/equivalence/m2s.py --official /path/to/Multi-to-Single

``--official`` is a checkout of ``Arcee-LYK/Multi-to-Single`` (Liu, Cai, Lu, Zheng,
"Multi-to-Single: Reducing Multimodal Dependency in Emotion Recognition Through Contrastive
Learning", AAAI 2025); the code is its ``M2S_demo_code`` folder (SEED, subject-dependent: the
only scripts of the release that run). Its ``models``, ``M2S``, ``CLUB``, ``M2MCPC``,
``pretrain`` and ``finetune`` modules are imported at run time; ``einops`` is replaced by a
reshape-only stand-in when it is not installed (the four patterns the release uses only regroup
axes). Every batch of the release goes through ``.cuda()``: on a CPU that is the identity here.

Equivalence. The released model and the two CLUB networks are built as ``pretrain.experiment``
builds them (seeded), and copied into affectlab's ``M2SNet`` / ``CLUBNet`` through the explicit
mapping :func:`mapping` (the two step predictors of each modality's CPC are stacked into one
``Linear``; the template layer each released encoder deep-copies is never run). Dropout is off
on both sides (probabilities 0), so both compute deterministically; the released code's random
draws (the CPC split point, one per model forward, and the CLUB permutations) are made from the
same seed and handed to affectlab. The released training steps are the released
``pretrain.train_epoch`` and ``finetune.train_epoch`` run on a one-batch loader. float64 runs
execute the released calls with float64 as the default dtype and ``Tensor.float()`` as the
identity (the release casts its batches and the CPC's LSTM state to float32); float32 runs
execute it unchanged (its CPC scores in float64, as released). Components, SEED shapes (EEG 310
= 62 x 5, EYE 33, T = 5, d = 128, 4 blocks), batch 16:

eeg_er_encoder    the EEG ER encoder (STS attention blocks + output map)
eye_er_encoder    the EYE ER encoder (transformer over time)
ei_encoders       both EI encoders
projection        the fine-tuning features of both modalities (``*_finetune_Encoder``)
club_loglikeli    ``CLUBSample_group.loglikeli`` vs ``-CLUBNet.learning_loss``: value and
                  gradients (parameters and inputs)
club_upper_bound  ``mi_est`` vs ``mi_upper_bound`` (same permutation): value and gradients
reconstruction    the decoders' outputs and the weighted reconstruction loss
m2m_cpc           the CPC loss (same split point) and its gradients wrt the ER features
info_nce          the symmetric InfoNCE of the model's logits (composed as ``train_epoch``
                  does) vs affectlab's term
total_loss        what the released ``train_epoch`` back-propagates: the total of Eq. 14 after
                  the three CLUB updates, and the last CLUB update's log-likelihood losses
gradients         the gradient of that total for every model parameter (each tensor relative
                  to its largest entry, or to 1e-3 of the largest of all: the CPC predictors'
                  biases have a zero gradient in exact arithmetic, the softmax over
                  predictions being invariant to them)
pretrain_step     the weight change of one pre-training step (3 CLUB updates + the model's
                  Adam step), entries whose (first) gradient, weight decay included, is at
                  least 1e-5: Adam's first step ``-lr g / (|g| + eps)`` turns round-off of a
                  gradient near its eps into a change of up to ``lr`` (with weight decay 1e-4
                  the decay term cancels the gradient of some entries); the error over every
                  entry is in the notes
finetune_step     one fine-tuning step: loss and the classifier's change (BatchNorm statistics
                  included; the same gradient floor)
encoder_passes    EEG encoder passes per pre-training step (released 4; ``club_forwards``)

Tolerances (relative): float64 1e-9 for every component; float32 1e-4, and 2e-3 for the
weight changes of a step (float32 resolves an updated weight to one unit in its last place, up
to 1.2e-3 of a step of lr 1e-4).

Timing. One pre-training step at the paper's shapes (batch 512, SEED, T = 5) and one
fine-tuning step (batch 512), dropout on, float32, one thread, alternating one step each:
the released ``train_epoch`` on one batch, affectlab ``official=True`` and the ``paper`` preset
(pre-training: one shared encoder pass; fine-tuning: the classifier on features computed once
in eval mode, as ``fit`` does); CPU seconds per step (``time.process_time``), medians in
``benchmarks/results/equivalence_m2s.json``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from affectlab.losses.club import CLUBNet  # noqa: E402
from affectlab.methods.m2s import (  # noqa: E402
    Classifier,
    M2SConfig,
    M2SNet,
    finetune_optimizer,
    finetune_step,
    pretrain_optimizers,
    pretrain_step,
)

T, N_STEPS, CHANNELS, BANDS, N_EYE, N_CLASSES, D = 5, 2, 62, 5, 33, 3, 128
SHAPES = {"eeg": (CHANNELS, BANDS), "eye": (N_EYE,)}
EPOCHS = 200                     # the released cosine schedule spans 200 x len(loader) steps
LR, WEIGHT_DECAY = 1e-4, 1e-4    # released pre-training optimiser
FT_LR, FT_WEIGHT_DECAY = 1e-3, 1e-4   # one point of the released fine-tuning grid
COMPONENTS = ["eeg_er_encoder", "eye_er_encoder", "ei_encoders", "projection",
              "club_loglikeli", "club_upper_bound", "reconstruction", "m2m_cpc", "info_nce",
              "total_loss", "gradients", "pretrain_step", "finetune_step", "encoder_passes"]
UNUSED = ["model.EEG_ER_encoder.encoder_layer.*", "model.Eye_ER_encoder.encoder_layer.*"]
WEIGHT_CHANGES = ("pretrain_step", "finetune_step")      # float32: common.STEP_TOLERANCE


def mapping(released_keys: list[str]) -> list[common.Rule]:
    """Released key (``model.*``, ``club_eeg.*``, ``club_eye.*``, ``classifier.*``) ->
    affectlab key (``net.*``, ``clubs.*``, ``classifier.*``)."""
    eeg, eye = "model.EEG_ER_encoder.", "model.Eye_ER_encoder."
    prefixes = [("net.er.eeg.out.", eeg + "affine_matrix."),
                ("net.er.eye.embed.", eye + "affine_matrix."),
                ("net.ei.eeg.0.", "model.EEG_EI_encoder.eeg_linear."),
                ("net.ei.eye.0.", "model.Eye_EI_encoder.eye_linear."),
                ("net.dec.eeg.er.", "model.eeg_decoder.eeg_linear."),
                ("net.dec.eeg.out.", "model.eeg_decoder.eeg_rec."),
                ("net.dec.eye.er.", "model.eye_decoder.eye_linear."),
                ("net.dec.eye.out.", "model.eye_decoder.eye_rec."),
                ("net.proj.eeg.", "model.eeg_transform.0."),
                ("net.proj.eye.", "model.eye_transform.0."),
                ("net.cpc.lstms.0.", "model.cpc.eeg_ar_lstm."),
                ("net.cpc.lstms.1.", "model.cpc.eye_ar_lstm."),
                ("classifier.", "classifier.event_classifier.")]
    for i in range(4):
        ours, theirs = f"net.er.eeg.blocks.{i}.", f"{eeg}encoder.layers.{i}."
        prefixes += [(ours + "attention.query.", theirs + "self_attn.to_q."),
                     (ours + "attention.key.", theirs + "self_attn.to_k."),
                     (ours + "attention.value.", theirs + "self_attn.to_v."),
                     (ours + "attention.out.", theirs + "self_attn.to_out.0."),
                     (ours + "ffn.0.", theirs + "layers.0."),
                     (ours + "ffn.3.", theirs + "layers.3."),
                     (ours + "norm1.", theirs + "norm1."), (ours + "norm2.", theirs + "norm2.")]
        ours, theirs = f"net.er.eye.layers.{i}.", f"{eye}encoder.layers.{i}."
        prefixes += [(ours + "self_attn.", theirs + "self_attn."),
                     (ours + "linear1.", theirs + "layers.0."),
                     (ours + "linear2.", theirs + "layers.3."),
                     (ours + "norm1.", theirs + "norm1."), (ours + "norm2.", theirs + "norm2.")]
    for name in ("eeg", "eye"):
        for j in (0, 2, 4, 6):
            prefixes += [(f"clubs.{name}.mu.{j}.", f"club_{name}.p_mu.{j}."),
                         (f"clubs.{name}.logvar.0.{j}.", f"club_{name}.p_logvar.{j}.")]
    out = common.rules_from_prefixes(released_keys, prefixes)
    out.append(common.Rule("net.logit_scale", ("model.logit_scale",)))
    for a, name in enumerate(("eeg", "eye")):      # N step predictors -> one Linear(.., N d)
        for p in ("weight", "bias"):
            out.append(common.Rule(f"net.cpc.predictors.{a}.{p}", tuple(
                f"model.cpc.{name}_predictors.{n}.{p}" for n in range(N_STEPS))))
    return out


# --------------------------------------------------------------------------- released code

def load_released(root: Path) -> tuple[dict, list[str]]:
    root = Path(root)
    if (root / "M2S_demo_code").is_dir():
        root = root / "M2S_demo_code"
    stubs = {}
    if importlib.util.find_spec("einops") is None:
        stubs["einops"] = {"rearrange": common.reshape_rearrange, "repeat": _no_repeat}
    with contextlib.redirect_stdout(io.StringIO()):
        return common.import_released(root, ["models", "M2S", "CLUB", "M2MCPC", "pretrain",
                                             "finetune"], stubs)


def _no_repeat(*args, **kwargs):
    raise NotImplementedError("einops.repeat is imported by the release but never called")


class Released:
    """The released model, CLUB networks and classifier, built as ``pretrain.experiment`` and
    ``finetune.experiment`` build them."""

    def __init__(self, mods: dict, seed: int = 0):
        torch.manual_seed(seed)
        self.mods = mods
        self.model = mods["M2S"].Multi_to_Single(eeg_dim=310, eye_dim=N_EYE, eeg_output_dim=D,
                                                 eye_output_dim=D, embedding_dim=D)
        self.club_eeg = mods["CLUB"].CLUBSample_group(x_dim=D, y_dim=D, hidden_dim=64)
        self.club_eye = mods["CLUB"].CLUBSample_group(x_dim=D, y_dim=D, hidden_dim=64)
        self.classifier = mods["M2S"].Classifier(class_num=N_CLASSES)

    def __deepcopy__(self, memo: dict) -> Released:
        twin = copy.copy(self)                     # the released modules are shared
        for name in ("model", "club_eeg", "club_eye", "classifier"):
            setattr(twin, name, copy.deepcopy(getattr(self, name), memo))
        return twin

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("model.", self.model), ("club_eeg.", self.club_eeg),
                               ("club_eye.", self.club_eye), ("classifier.", self.classifier)):
            out.update({prefix + k: v for k, v in module.state_dict().items()})
        return out

    def to(self, dtype: torch.dtype) -> Released:
        for module in (self.model, self.club_eeg, self.club_eye, self.classifier):
            module.to(dtype)
        return self

    def pretrain_optimizers(self):
        """As ``pretrain.experiment``: Adam for the model and each CLUB network, a cosine
        schedule over 200 epochs of the one-batch loader on the model's."""
        optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        return (optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS),
                torch.optim.Adam(self.club_eeg.parameters(), lr=LR, weight_decay=WEIGHT_DECAY),
                torch.optim.Adam(self.club_eye.parameters(), lr=LR, weight_decay=WEIGHT_DECAY))

    def pretrain_step(self, batch: dict, seed: int, optimizers, float64: bool
                      ) -> list[torch.Tensor]:
        """``pretrain.train_epoch`` on one batch; the losses it back-propagated, in order."""
        optimizer, scheduler, opt_eeg, opt_eye = optimizers
        loader = [(batch["eeg"], batch["eye"], batch["label"])]
        torch.manual_seed(seed)
        with common.cuda_as_cpu(), common.float64_port(float64), \
                common.record_backward() as losses:
            self.mods["pretrain"].train_epoch(self.model, loader, optimizer, scheduler,
                                              self.club_eeg, self.club_eye, opt_eeg, opt_eye)
        return losses

    def finetune_step(self, batch: dict, float64: bool) -> torch.Tensor:
        """``finetune.train_epoch`` (mode eeg2eeg) on one batch after ``experiment``'s set-up:
        the model frozen, Adam over model and classifier, cosine schedule; its loss."""
        for param in self.model.parameters():
            param.requires_grad = False
        optimizer = torch.optim.Adam([*self.model.parameters(), *self.classifier.parameters()],
                                     lr=FT_LR, weight_decay=FT_WEIGHT_DECAY)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
        loader = [(batch["eeg"], batch["eye"], batch["label"])]
        args = types.SimpleNamespace(mode="eeg2eeg")
        with common.cuda_as_cpu(), common.float64_port(float64), \
                common.record_backward() as losses:
            self.mods["finetune"].train_epoch(args, self.model, self.classifier, loader,
                                              optimizer, scheduler)
        return losses[-1]

    def forward(self, batch: dict, seed: int, float64: bool):
        torch.manual_seed(seed)
        with common.cuda_as_cpu(), common.float64_port(float64):
            return self.model(batch["eeg"], batch["eye"])


def released_draws(seed: int, forwards: int, batch: int) -> tuple[int, dict[str, torch.Tensor]]:
    """What the released step draws from the global generator seeded with ``seed``: the CPC
    split point ``t`` of each model forward (``randint(T - N - 1) + 1``), then the CLUB
    permutations of EEG and EYE. Returns affectlab's observed length ``M = t + 1`` of the last
    forward and the permutations."""
    torch.manual_seed(seed)
    splits = [int(torch.randint(T - N_STEPS - 1, (1,))) + 1 for _ in range(forwards)]
    perms = {"eeg": torch.randperm(batch), "eye": torch.randperm(batch)}
    return splits[-1] + 1, perms


# --------------------------------------------------------------------------- affectlab side

class Ours(nn.Module):
    """affectlab's network, CLUB networks and fine-tuning classifier (one state dict)."""

    def __init__(self, cfg: M2SConfig):
        super().__init__()
        self.cfg = cfg
        self.net = M2SNet(SHAPES, cfg)
        self.clubs = nn.ModuleDict({n: CLUBNet(D, D, cfg.club_hidden) for n in SHAPES})
        self.classifier = Classifier(cfg.proj_dim, cfg.ft_hidden, N_CLASSES)


def our_config(official: bool, dropout: bool) -> M2SConfig:
    options = {"official": official, "ft_lr": FT_LR, "ft_weight_decay": FT_WEIGHT_DECAY}
    if not dropout:
        options["dropout"] = 0.0
    return M2SConfig(**options)


def our_batch(batch: dict) -> dict[str, torch.Tensor]:
    b = len(batch["eeg"])
    return {"eeg": batch["eeg"].view(b, T, CHANNELS, BANDS), "eye": batch["eye"]}


def make_batch(size: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"eeg": torch.randn(size, T, CHANNELS * BANDS, generator=g).to(dtype),
            "eye": torch.randn(size, T, N_EYE, generator=g).to(dtype),
            "label": torch.randint(N_CLASSES, (size,), generator=g)}


# --------------------------------------------------------------------------- components

def with_grads(fn, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict:
    """``fn(*inputs)``, its gradients wrt the inputs and ``module``'s parameters (by name)."""
    inputs = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
    value = fn(*inputs)
    names, params = zip(*module.named_parameters(), strict=True)
    grads = torch.autograd.grad(value, (*inputs, *params))
    return {"value": value.detach(), "inputs": list(grads[:len(inputs)]),
            "params": dict(zip(names, grads[len(inputs):], strict=True))}


def renamed(result: dict, rules: list[common.Rule], prefix_ours: str, prefix_theirs: str
            ) -> dict:
    """``with_grads`` result of a released module with its parameter names in affectlab's."""
    to_ours = {r.sources[0]: r.target for r in rules if len(r.sources) == 1}
    params = {to_ours[prefix_theirs + k][len(prefix_ours):]: v
              for k, v in result["params"].items()}
    return {**result, "params": params}


def components(mods: dict, dtype: torch.dtype, batch_size: int = 16) -> tuple[dict, dict]:
    float64 = dtype == torch.float64
    errors, notes = {}, {}
    released = Released(mods).to(dtype)
    for module in (released.model, released.club_eeg, released.club_eye, released.classifier):
        common.disable_dropout(module)
    ours = Ours(our_config(official=True, dropout=False)).to(dtype)
    rules = mapping(list(released.state()))
    common.load_mapped(ours, released.state(), rules, UNUSED)
    net, model = ours.net, released.model
    batch = make_batch(batch_size, dtype)
    xb = our_batch(batch)
    b = batch_size
    net.train()
    model.train()

    def theirs(fn, *args):
        with torch.no_grad(), common.cuda_as_cpu(), common.float64_port(float64):
            return fn(*args)

    # ---- encoders and projections
    with torch.no_grad():
        errors["eeg_er_encoder"] = common.rel_error(
            net.er["eeg"](xb["eeg"]), theirs(model.EEG_ER_encoder, batch["eeg"]))
        errors["eye_er_encoder"] = common.rel_error(
            net.er["eye"](xb["eye"]), theirs(model.Eye_ER_encoder, batch["eye"]))
        errors["ei_encoders"] = common.rel_error(
            [net.ei["eeg"](batch["eeg"]), net.ei["eye"](batch["eye"])],
            [theirs(model.EEG_EI_encoder, batch["eeg"]),
             theirs(model.Eye_EI_encoder, batch["eye"])])
        errors["projection"] = common.rel_error(
            [net.features("eeg", xb["eeg"]), net.features("eye", xb["eye"])],
            [theirs(model.EEG_finetune_Encoder, batch["eeg"]),
             theirs(model.Eye_finetune_Encoder, batch["eye"])])

    # ---- CLUB
    g = torch.Generator().manual_seed(4)
    x = torch.randn(b, T, D, generator=g).to(dtype)
    y = torch.randn(b, T, D, generator=g).to(dtype)
    club_errors, bound_errors = [], []
    for name, theirs_club in (("eeg", released.club_eeg), ("eye", released.club_eye)):
        club = ours.clubs[name]
        club_errors.append(common.rel_error(
            with_grads(lambda u, v, c=club: -c.learning_loss(u, v), club, (x, y)),
            renamed(with_grads(theirs_club.loglikeli, theirs_club, (x, y)), rules,
                    f"clubs.{name}.", f"club_{name}.")))
        torch.manual_seed(7)
        perm = torch.randperm(b)
        torch.manual_seed(7)
        theirs = with_grads(theirs_club.mi_est, theirs_club, (x, y))
        bound_errors.append(common.rel_error(
            with_grads(lambda u, v, c=club, q=perm: c.mi_upper_bound(u, v, "shuffle", q),
                       club, (x, y)),
            renamed(theirs, rules, f"clubs.{name}.", f"club_{name}.")))
    errors["club_loglikeli"], errors["club_upper_bound"] = max(club_errors), max(bound_errors)

    # ---- the terms of Eq. 14 from one forward (same CPC split point)
    observed, _ = released_draws(11, 1, b)
    out = released.forward(batch, 11, float64)
    cpc_theirs, recon_theirs, logits_eeg, logits_eye, er_eeg, er_eye, ei_eeg, ei_eye = out
    z, z_ei = net.encode(xb)
    terms = net.losses(xb, z, z_ei, None, observed, skip=("club",))
    cfg = net.cfg
    with torch.no_grad():
        errors["reconstruction"] = common.rel_error(
            [net.dec["eeg"](er_eeg, ei_eeg), net.dec["eye"](er_eye, ei_eye),
             cfg.w_recon * terms["recon"]],
            [model.eeg_decoder(er_eeg, ei_eeg), model.eye_decoder(er_eye, ei_eye), recon_theirs])
        arange = torch.arange(b)
        nce_theirs = (F.cross_entropy(logits_eeg, arange) + F.cross_entropy(logits_eye, arange)) / 2
        errors["info_nce"] = common.rel_error(cfg.w_nce * terms["nce"], nce_theirs)
    er = [z["eeg"].detach().requires_grad_(True), z["eye"].detach().requires_grad_(True)]
    ours_cpc = cfg.w_cpc * net.losses(xb, dict(zip(SHAPES, er, strict=True)), z_ei, None,
                                      observed, skip=("club", "recon", "nce"))["cpc"]
    er_theirs = [er_eeg.detach().requires_grad_(True), er_eye.detach().requires_grad_(True)]
    torch.manual_seed(11)
    with common.float64_port(float64):
        cpc_again = model.cpc(*er_theirs)
    errors["m2m_cpc"] = common.rel_error(
        [ours_cpc.detach(), *torch.autograd.grad(ours_cpc, er)],
        [cpc_again.detach(), *torch.autograd.grad(cpc_again, er_theirs)])
    notes["cpc_forward_vs_module_call"] = common.rel_error(cpc_again, cpc_theirs)
    notes["cpc_observed_length"] = observed

    # ---- one fine-tuning step (from the initial weights)
    ft_released = copy.deepcopy(released)
    ft_ours = copy.deepcopy(ours)
    before = copy.deepcopy(ft_ours.classifier.state_dict())
    loss_theirs = ft_released.finetune_step(batch, float64)
    after_theirs = common.map_state(ft_released.state(), ft_ours.state_dict(), rules, UNUSED)
    optimizer, scheduler = finetune_optimizer(ft_ours.classifier, ft_ours.cfg, EPOCHS)
    ft_ours.net.train()
    with torch.no_grad():
        feats = ft_ours.net.features("eeg", xb["eeg"])
    ft_ours.classifier.train()
    loss_ours = finetune_step(ft_ours.classifier, optimizer, feats, batch["label"])
    scheduler.step()
    after = ft_ours.classifier.state_dict()
    to_ours = {r.sources[0]: r.target for r in rules if len(r.sources) == 1}
    released_grads = {}                           # what Adam sees (L2 decay included)
    for n, q in ft_released.classifier.named_parameters():
        key = to_ours["classifier." + n].removeprefix("classifier.")
        released_grads[key] = q.grad + FT_WEIGHT_DECAY * before[key]
    change_all, change = common.change_errors(
        before, after, {k: after_theirs["classifier." + k] for k in after}, released_grads)
    errors["finetune_step"] = max(change, common.rel_error(loss_ours, loss_theirs))
    notes["finetune_step_all_entries"] = change_all

    # ---- one pre-training step: 3 CLUB updates, then Eq. 14
    club_grads = first_club_gradients(ours, xb)
    optimizers = released.pretrain_optimizers()
    before_ours = copy.deepcopy(ours.state_dict())
    passes_theirs = common.count_calls(model.EEG_ER_encoder)
    losses = released.pretrain_step(batch, 21, optimizers, float64)
    after_theirs = common.map_state(released.state(), before_ours, rules, UNUSED)
    grads_theirs = {n: q.grad for n, q in model.named_parameters()}
    observed, perms = released_draws(21, cfg.club_steps + 1, b)
    optimizer, scheduler, club_optimizer = pretrain_optimizers(net, ours.clubs, EPOCHS)
    passes_ours = common.count_calls(net.er["eeg"])
    logs = pretrain_step(net, ours.clubs, optimizer, club_optimizer, xb, observed, perms)
    scheduler.step()
    after_ours = ours.state_dict()
    errors["total_loss"] = common.rel_error(
        {"total": logs["loss"], "last_club_nll": logs["club_nll"]},
        {"total": float(losses[-1]), "last_club_nll": float(losses[-3] + losses[-2])})
    ours_grads = {n: q.grad for n, q in ours.named_parameters() if n.startswith("net.")}
    theirs_grads = dict(zip(ours_grads, [None] * len(ours_grads), strict=True))
    for name, grad in grads_theirs.items():
        key = to_ours.get("model." + name)
        if key is not None:
            theirs_grads[key] = grad
    for a, name in enumerate(("eeg", "eye")):
        for p in ("weight", "bias"):
            theirs_grads[f"net.cpc.predictors.{a}.{p}"] = torch.cat(
                [grads_theirs[f"cpc.{name}_predictors.{n}.{p}"] for n in range(N_STEPS)])
    errors["gradients"] = common.gradient_error(ours_grads, theirs_grads)
    trained = [k for k in before_ours if not k.startswith("classifier.")]
    adam_grads = {k: g + WEIGHT_DECAY * before_ours[k]        # what Adam sees (L2 decay)
                  for k, g in {**theirs_grads, **club_grads}.items()}
    change_all, change = common.change_errors(
        {k: before_ours[k] for k in trained}, after_ours, after_theirs, adam_grads)
    errors["pretrain_step"] = change
    notes["pretrain_step_all_entries"] = change_all
    errors["encoder_passes"] = common.rel_error(len(passes_ours), len(passes_theirs))
    notes["encoder_passes"] = {"released": len(passes_theirs), "official": len(passes_ours)}
    notes["released_backward_calls"] = len(losses)
    return errors, notes


def first_club_gradients(ours: Ours, batch: dict) -> dict[str, torch.Tensor]:
    """The gradients of the first CLUB update (on copies): the features are the same for the
    three updates (dropout off, encoders unchanged), so they tell which entries of the CLUB
    networks' change are ill-conditioned in Adam's first step."""
    net, clubs = copy.deepcopy(ours.net), copy.deepcopy(ours.clubs)
    with torch.no_grad():
        z, z_ei = net.encode(batch)
    loss = sum(clubs[n].learning_loss(z[n], z_ei[n]) for n in SHAPES)
    names, params = zip(*clubs.named_parameters(), strict=True)
    return {"clubs." + n: g for n, g in
            zip(names, torch.autograd.grad(loss, params), strict=True)}


# --------------------------------------------------------------------------- timing

def timing(mods: dict, batch_size: int, repeats: int, warmup: int) -> dict:
    batch = make_batch(batch_size, torch.float32, seed=5)
    xb = our_batch(batch)
    released = Released(mods, seed=1)
    optimizers = released.pretrain_optimizers()
    variants = {}
    for name, official in (("official", True), ("paper", False)):
        torch.manual_seed(2)
        ours = Ours(our_config(official=official, dropout=True))
        opt, sched, club_opt = pretrain_optimizers(ours.net, ours.clubs, EPOCHS)
        ft_opt, ft_sched = finetune_optimizer(ours.classifier, ours.cfg, EPOCHS)
        variants[name] = (ours, opt, sched, club_opt, ft_opt)
    perms = {n: torch.randperm(batch_size) for n in SHAPES}
    ft_released = copy.deepcopy(released)
    with torch.no_grad():
        paper_net = variants["paper"][0].net
        paper_net.eval()
        paper_feats = paper_net.features("eeg", xb["eeg"])

    def ours_pretrain(name):
        ours, opt, sched, club_opt, _ = variants[name]
        pretrain_step(ours.net, ours.clubs, opt, club_opt, xb, 2, perms)
        sched.step()

    def ours_finetune(name):
        ours, *_, ft_opt = variants[name]
        if name == "official":              # frozen encoder in train mode, every batch
            ours.net.train()
            with torch.no_grad():
                feats = ours.net.features("eeg", xb["eeg"])
        else:                               # features computed once, in eval mode
            feats = paper_feats
        ours.classifier.train()
        finetune_step(ours.classifier, ft_opt, feats, batch["label"])

    steps = {"released_pretrain": lambda: released.pretrain_step(batch, 0, optimizers, False),
             "official_pretrain": lambda: ours_pretrain("official"),
             "paper_pretrain": lambda: ours_pretrain("paper"),
             "released_finetune": lambda: ft_released.finetune_step(batch, False),
             "official_finetune": lambda: ours_finetune("official"),
             "paper_finetune": lambda: ours_finetune("paper")}
    times = common.interleaved_timing(steps, repeats, warmup)
    summary = common.timing_summary(times)
    return {"seconds_per_step": {k: v["median"] for k, v in summary.items()},
            "summary": summary, "repeats": repeats, "warmup": warmup,
            "shapes": {"batch": batch_size, "T": T, "eeg": [CHANNELS, BANDS], "eye": N_EYE,
                       "d_model": D, "blocks": 4, "club_updates": 3}}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = common.harness_arguments(__doc__, "Arcee-LYK/Multi-to-Single (or its M2S_demo_code)",
                                      "equivalence_m2s.json", repeats=3, warmup=0)
    parser.add_argument("--timing-batch", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mods, stubbed = load_released(args.official)
    per_dtype, notes = {}, {}
    for name, dtype in common.DTYPES.items():
        per_dtype[name], notes[name] = components(mods, dtype)
    rows = [{"component": c, "errors": {d: per_dtype[d][c] for d in common.DTYPES},
             **({"tolerance": common.STEP_TOLERANCE} if c in WEIGHT_CHANGES else {})}
            for c in COMPONENTS]
    print(common.format_table(rows))
    einops = "stand-in (reshape)" if "einops" in stubbed else "installed"
    payload = {
        "method": "m2s", "released_code": "Arcee-LYK/Multi-to-Single (M2S_demo_code)",
        "released_commit": common.git_commit(args.official), "stubbed_modules": stubbed,
        "einops": einops, "tolerance": common.TOLERANCE,
        "dropout": "off in both (equivalence); on (timing)",
        "components": rows, "notes": notes,
        "all_match": all(common.row_matches(r) for r in rows),
    }
    if not args.no_timing:
        payload["timing"] = timing(mods, args.timing_batch, args.repeats, args.warmup)
        print({k: round(v, 3) for k, v in payload["timing"]["seconds_per_step"].items()},
              "CPU s / step")
    payload["environment"] = common.environment()
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
