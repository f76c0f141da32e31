#!/usr/bin/env python3
"""Golden reference files for DreamBooth-LoRA, produced by the upstream Python implementations
(diffusers + peft + transformers, unmodified) on the tiny-a fixture model.

Reference tooling only (never a product dependency). Environment: scripts/lora_reference_env.sh.

    # golden 1 (lora_unet), golden 2 (lora_dreambooth_step), lora_diffusers_reference, manifest
    PYTHONPATH=.deps/lora-ref .deps/venv/bin/python3 tests/data/lora/make_goldens.py

    # golden 3 (lora_load) from the files the C++ exporter wrote
    PYTHONPATH=.deps/lora-ref .deps/venv/bin/python3 tests/data/lora/make_goldens.py \
        --load tests/data/lora/golden/lora_export_kohya.safetensors \
               tests/data/lora/golden/lora_export_diffusers.safetensors

    # self-test of the --load stage (writes a kohya file from golden 1 into a temp dir; golden/ untouched)
    PYTHONPATH=.deps/lora-ref .deps/venv/bin/python3 tests/data/lora/make_goldens.py --selftest-load

Everything runs on CPU, float32, one thread; regenerating gives bit-identical files.
"""

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

import diffusers  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import transformers  # noqa: E402
from diffusers import DDPMScheduler, StableDiffusionPipeline  # noqa: E402
from diffusers.utils import convert_state_dict_to_diffusers  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "golden"
BASE_MODEL_REL = "../fixtures/tiny-a"  # relative to tests/data/lora/
MODEL_DIR = (HERE / BASE_MODEL_REL).resolve()
FIXTURE_GOLDEN = MODEL_DIR / "golden"
PRODUCED_BY = "tests/data/lora/make_goldens.py"

# ---- golden 1 configuration ----------------------------------------------------------------------
G1_RANK = 4
G1_ALPHA = 8  # scale alpha/r = 2, deliberately != 1
G1_UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "conv1", "conv2"]
G1_TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
G1_SEED = 20260101

# ---- golden 2: examples/dreambooth/train_dreambooth_lora.py (diffusers main 2026-08, see README) --
G2_RANK = 4  # --rank default 4; the script sets lora_alpha = rank
G2_ALPHA = 4
G2_INIT = "gaussian"  # the script's init_lora_weights
G2_UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_v_proj"]
G2_SEED = 20260202
G2_LR = 1e-3  # script default 5e-4; 1e-3 as in tiny-a/golden/dreambooth_step.safetensors
G2_BETAS = (0.9, 0.999)
G2_EPS = 1e-8
G2_WD = 1e-2
G2_MAX_GRAD_NORM = 0.01  # script default is 1.0, which does not clip here (global norm ~0.03); 0.01 makes it clip
G2_PRIOR_LOSS_WEIGHT = 1.0


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scalar(x, dtype=torch.float32):
    return torch.tensor([x], dtype=dtype)


def clean(t):
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.contiguous().clone()


def save_golden(path, tensors, group, extra_meta=None):
    meta = {"group": group, "produced_by": PRODUCED_BY}
    if extra_meta:
        meta.update(extra_meta)
    tensors = {k: clean(v) for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
        assert v.dim() >= 1, k
    write_safetensors(path, tensors, meta)
    log(f"wrote {os.path.relpath(path, ROOT)} ({path.stat().st_size} B)")


def write_safetensors(path, tensors, metadata):
    """Deterministic safetensors writer (the Rust writer's __metadata__ order is not stable between runs):
    tensors sorted by name, no gaps, JSON header with sorted keys padded with spaces to a multiple of 8."""
    dt = {torch.float32: "F32", torch.int64: "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.numpy().tobytes() if t.dtype != torch.int64 else t.numpy().astype("<i8").tobytes()
        header[k] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.chmod(path, 0o644)


def tensor_table(path):
    out = {}
    with safe_open(str(path), "pt") as f:
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            out[k] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape())}
    return out


def file_metadata(path):
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def load_pipe(dtype=torch.float32):
    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL_DIR), torch_dtype=dtype, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.eval()
    pipe.text_encoder.eval()
    return pipe


def internal_name(prefix, peft_param_name, adapter="default"):
    """peft parameter name -> our internal name: drop '.<adapter>' and prefix the component."""
    name = peft_param_name.replace(f".lora_A.{adapter}.", ".lora_A.").replace(f".lora_B.{adapter}.", ".lora_B.")
    return f"{prefix}.{module_path(prefix, name)}"


def module_path(prefix, name):
    """transformers 5 CLIPTextModel has no `text_model` submodule any more (its modules are `encoder.layers.N...`,
    the checkpoint keys `text_model.*` are renamed on load). Internal names keep the checkpoint spelling
    `text_model.encoder.layers.N...` (= transformers 4 module names, = kohya `lora_te_text_model_...`)."""
    if prefix == "text_encoder" and not name.startswith("text_model."):
        return "text_model." + name
    return name


def lora_params(model, prefix, adapter="default"):
    """(internal name, parameter) for every LoRA parameter, in named_parameters() order."""
    out = []
    for n, p in model.named_parameters():
        if ".lora_A." in n or ".lora_B." in n:
            assert f".{adapter}." in n, n
            out.append((internal_name(prefix, n, adapter), p))
    return out


def lora_modules(model, prefix):
    return [module_path(prefix, n) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def lora_scalings(model):
    vals = {}
    for n, m in model.named_modules():
        if isinstance(m, BaseTunerLayer):
            for a, s in m.scaling.items():
                vals[(n, a)] = float(s)
    return vals


def randomize_lora(params, seed, b_std=0.1):
    """Overwrite LoRA weights: A ~ N(0, 1/fan_in) (fan_in = in*kh*kw), B ~ N(0, b_std^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in params:
            if ".lora_A." in name:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g, dtype=torch.float32) / (fan_in ** 0.5)
            else:
                v = torch.randn(p.shape, generator=g, dtype=torch.float32) * b_std
            p.copy_(v)


def golden1_inputs():
    """Same inputs as tiny-a/golden/unet.safetensors (sample, integer timesteps, ehs) and the first two
    rows of tiny-a/golden/text_encoder.safetensors (synthetic ids: BOS 998, body < 998, EOS/pad 999),
    so out.sample_base / the base text output can be checked against the tiny-a goldens."""
    u = load_file(str(FIXTURE_GOLDEN / "unet.safetensors"))
    t = load_file(str(FIXTURE_GOLDEN / "text_encoder.safetensors"))
    return {
        "in.sample": u["in.sample"],
        "in.timestep": u["in.timestep_int"],
        "in.encoder_hidden_states": u["in.encoder_hidden_states"],
        "in.input_ids": t["in.input_ids"][:2].clone(),
    }, u, t


def maxabs(a, b):
    return float((a - b).abs().max())


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"[{record.name}] {record.levelname}: {record.getMessage()}")


def capture_load(pipe, path, adapter_name):
    """pipe.load_lora_weights with every diffusers/peft/transformers warning captured."""
    cap = LogCapture()
    loggers = [logging.getLogger(n) for n in ("diffusers", "peft", "transformers")]
    for lg in loggers:
        lg.addHandler(cap)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            pipe.load_lora_weights(str(path), adapter_name=adapter_name)
    finally:
        for lg in loggers:
            lg.removeHandler(cap)
    msgs = cap.records + [f"[warnings] {x.category.__name__}: {x.message}" for x in w]
    return msgs


@torch.no_grad()
def forward_all(pipe, inp, **unet_kwargs):
    s = pipe.unet(inp["in.sample"], inp["in.timestep"], inp["in.encoder_hidden_states"], **unet_kwargs).sample
    t = pipe.text_encoder(inp["in.input_ids"]).last_hidden_state
    return s, t


# --------------------------------------------------------------------------------------------------
# golden 1
# --------------------------------------------------------------------------------------------------
def make_golden1(manifest, dtype=torch.float32, write=True):
    """write=False: only compute out.sample / out.sample_scale_half / out.sample_base / out.text_last_hidden_state
    (used by --measure-noise with dtype=float64 or other thread counts)."""
    inp, fix_unet, fix_te = golden1_inputs()
    inp = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inp.items()}
    pipe = load_pipe(dtype)
    unet, te = pipe.unet, pipe.text_encoder

    # base outputs before adapters: cross-check against the tiny-a goldens (diffusers 0.25.1 / transformers 4.33)
    with torch.no_grad():
        s0, t0 = forward_all(pipe, inp)
    d_unet = maxabs(s0, fix_unet["out.sample_int"])
    d_te = maxabs(t0, fix_te["out.last_hidden_state"][:2])
    log(f"base vs tiny-a goldens: unet max_abs {d_unet:.3g}, text max_abs {d_te:.3g}")
    assert d_unet < 1e-4 and d_te < 1e-4, "reference environment does not reproduce the tiny-a goldens"

    # adapters as the diffusers training scripts add them
    unet.requires_grad_(False)
    te.requires_grad_(False)
    unet_cfg = LoraConfig(r=G1_RANK, lora_alpha=G1_ALPHA, lora_dropout=0.0, init_lora_weights=True,
                          target_modules=G1_UNET_TARGETS)
    te_cfg = LoraConfig(r=G1_RANK, lora_alpha=G1_ALPHA, lora_dropout=0.0, init_lora_weights=True,
                        target_modules=G1_TE_TARGETS)
    unet.add_adapter(unet_cfg)
    te.add_adapter(te_cfg)
    unet_mods = lora_modules(unet, "unet")
    te_mods = lora_modules(te, "text_encoder")
    log(f"UNet modules with adapters: {len(unet_mods)}; text encoder: {len(te_mods)}")

    # peft default init check (A kaiming-uniform, B zeros) before overwriting
    up = lora_params(unet, "unet")
    tp = lora_params(te, "text_encoder")
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in up + tp if ".lora_B." in n), "peft B init not zero"
    randomize_lora(up, G1_SEED)
    randomize_lora(tp, G1_SEED + 1)

    scal = set(lora_scalings(unet).values()) | set(lora_scalings(te).values())
    assert scal == {G1_ALPHA / G1_RANK}, scal

    with torch.no_grad():
        s1, t1 = forward_all(pipe, inp)
        s_half, _ = forward_all(pipe, inp, cross_attention_kwargs={"scale": 0.5})
        unet.disable_adapters()
        s_base = unet(inp["in.sample"], inp["in.timestep"], inp["in.encoder_hidden_states"]).sample
        unet.enable_adapters()
        te.disable_adapters()
        t_base = te(inp["in.input_ids"]).last_hidden_state
        te.enable_adapters()
        s1b, t1b = forward_all(pipe, inp)
    assert torch.equal(s1, s1b) and torch.equal(t1, t1b)
    assert torch.equal(s_base, s0) and torch.equal(t_base, t0)
    # scaling must be restored after the call-time scale
    assert set(lora_scalings(unet).values()) == {G1_ALPHA / G1_RANK}
    log(f"effect: |sample - base| max {maxabs(s1, s_base):.3g} (|base| max {float(s_base.abs().max()):.3g}), "
        f"|half - base| max {maxabs(s_half, s_base):.3g}, |text - base| max {maxabs(t1, t_base):.3g}")

    if not write:
        return {"out.sample": s1, "out.sample_scale_half": s_half, "out.sample_base": s_base,
                "out.text_last_hidden_state": t1}

    # diffusers-format file, written exactly like train_dreambooth_lora.py's final save
    tmp = Path(tempfile.mkdtemp(prefix="lora_ref_"))
    try:
        unet_lora_state_dict = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
        text_encoder_state_dict = convert_state_dict_to_diffusers(get_peft_model_state_dict(te))
        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(tmp / "plain"),
            unet_lora_layers=unet_lora_state_dict,
            text_encoder_lora_layers=text_encoder_state_dict,
        )
        ref_path = GOLDEN / "lora_diffusers_reference.safetensors"
        shutil.copyfile(tmp / "plain" / "pytorch_lora_weights.safetensors", ref_path)
        os.chmod(ref_path, 0o644)
        log(f"wrote {ref_path.relative_to(ROOT)} ({ref_path.stat().st_size} B), "
            f"__metadata__ = {file_metadata(ref_path)}")

        # variant with adapter metadata (what save_lora_weights stores when given *_lora_adapter_metadata;
        # not what train_dreambooth_lora.py does). Only its reload outputs are kept.
        unet_meta = unet.peft_config["default"].to_dict()
        te_meta = te.peft_config["default"].to_dict()
        for md in (unet_meta, te_meta):  # sets -> sorted lists, for a stable metadata string
            for k, v in md.items():
                if isinstance(v, (set, frozenset)):
                    md[k] = sorted(v)
            md["base_model_name_or_path"] = None  # an absolute local path otherwise
        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(tmp / "meta"),
            unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
            text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(te)),
            unet_lora_adapter_metadata=unet_meta,
            text_encoder_lora_adapter_metadata=te_meta,
        )
        meta_file = tmp / "meta" / "pytorch_lora_weights.safetensors"
        meta_md = file_metadata(meta_file)

        # fresh pipelines: what the files mean to diffusers
        p2 = load_pipe()
        msgs = capture_load(p2, ref_path, "ref")
        s_rel, t_rel = forward_all(p2, inp)
        scal_rel = sorted(set(lora_scalings(p2.unet).values()) | set(lora_scalings(p2.text_encoder).values()))
        p3 = load_pipe()
        msgs3 = capture_load(p3, meta_file, "ref")
        s_relm, t_relm = forward_all(p3, inp)
        scal_relm = sorted(set(lora_scalings(p3.unet).values()) | set(lora_scalings(p3.text_encoder).values()))
    finally:
        shutil.rmtree(tmp)
    for m in msgs + msgs3:
        log("  load warning:", m)
    log(f"reloaded (no metadata): scalings {scal_rel}; |reloaded - out.sample| max {maxabs(s_rel, s1):.3g}; "
        f"text {maxabs(t_rel, t1):.3g}")
    log(f"reloaded (with lora_adapter_metadata): scalings {scal_relm}; |.. - out.sample| max "
        f"{maxabs(s_relm, s1):.3g}; text {maxabs(t_relm, t1):.3g}")

    tensors = dict(inp)
    for n, p in up + tp:
        tensors[f"adapter.{n}"] = p
    tensors.update({
        "in.lora_rank": scalar(G1_RANK, torch.int64),
        "in.lora_alpha": scalar(float(G1_ALPHA)),
        "in.call_scale_half": scalar(0.5),
        "out.sample": s1,
        "out.sample_scale_half": s_half,
        "out.sample_base": s_base,
        "out.text_last_hidden_state": t1,
        "out.sample_reloaded": s_rel,
        "out.text_reloaded": t_rel,
    })
    extra = {
        "unet_lora_modules": json.dumps(unet_mods),
        "text_encoder_lora_modules": json.dumps(te_mods),
        "unet_lora_config": json.dumps({"r": G1_RANK, "lora_alpha": G1_ALPHA, "target_modules": G1_UNET_TARGETS,
                                        "init_lora_weights": True, "lora_dropout": 0.0}),
        "text_encoder_lora_config": json.dumps({"r": G1_RANK, "lora_alpha": G1_ALPHA,
                                                "target_modules": G1_TE_TARGETS,
                                                "init_lora_weights": True, "lora_dropout": 0.0}),
        "reloaded_effective_scalings": json.dumps(scal_rel),
        "reloaded_with_metadata_effective_scalings": json.dumps(scal_relm),
        "diffusers_lora_adapter_metadata_example": meta_md.get("lora_adapter_metadata", ""),
        "reloaded_with_metadata_max_abs_vs_out": json.dumps({"sample": maxabs(s_relm, s1), "text": maxabs(t_relm, t1)}),
    }
    path = GOLDEN / "lora_unet.safetensors"
    save_golden(path, tensors, "lora_unet", extra)
    manifest["files"]["golden/lora_unet.safetensors"] = {
        "description": (
            "tiny-a with peft LoRA adapters added like the diffusers training scripts (unet.add_adapter / "
            "text_encoder.add_adapter, LoraConfig r=4, lora_alpha=8 -> scale 2, dropout 0; UNet targets "
            + ", ".join(G1_UNET_TARGETS) + "; text-encoder targets " + ", ".join(G1_TE_TARGETS)
            + "), every lora_A/lora_B overwritten with seeded random values (A ~ N(0, 1/fan_in), "
            "B ~ N(0, 0.01)) and stored as adapter.<internal name>. Inputs = tiny-a/golden/unet.safetensors "
            "inputs and the first 2 rows of tiny-a/golden/text_encoder.safetensors ids. out.sample = "
            "unet(in.sample, in.timestep, in.encoder_hidden_states).sample with adapters (effective alpha/r = 2); "
            "out.sample_scale_half = same with cross_attention_kwargs={'scale': 0.5} (diffusers 0.42 "
            "apply_lora_scale -> peft scale_layer(0.5) on every LoRA layer of the UNet, resnet convs included: "
            "effective 1.0); out.sample_base = unet.disable_adapters(); out.text_last_hidden_state = "
            "text_encoder(in.input_ids).last_hidden_state with adapters (adapters disabled it equals tiny-a/golden/"
            "text_encoder.safetensors out.last_hidden_state[:2]). "
            "out.sample_reloaded / out.text_reloaded: fresh pipeline + load_lora_weights("
            "lora_diffusers_reference.safetensors), which stores no alpha, so diffusers uses lora_alpha = r "
            "(scale 1). The same file written with unet/text_encoder_lora_adapter_metadata = peft_config.to_dict() "
            "reloads to exactly out.sample / out.text_last_hidden_state (__metadata__ "
            "reloaded_with_metadata_max_abs_vs_out; example metadata string in __metadata__). Module lists "
            "in __metadata__."),
        "sha256": sha256_file(path),
        "tensors": tensor_table(path),
    }
    manifest["files"]["golden/lora_diffusers_reference.safetensors"] = {
        "description": (
            "Diffusers-format LoRA of golden 1's adapter, written by StableDiffusionPipeline.save_lora_weights("
            "save_directory, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)), "
            "text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder))) "
            "exactly as examples/dreambooth/train_dreambooth_lora.py does at the end of training (no adapter "
            "metadata argument), i.e. pytorch_lora_weights.safetensors. Key spelling is mixed, as "
            "convert_state_dict_to_diffusers (PEFT_TO_DIFFUSERS) renames only some modules: UNet attention "
            "projections unet.<module>.{to_q,to_k,to_v,to_out.0}.lora.down.weight / .lora.up.weight, every other "
            "UNet module (resnet conv1/conv2, ff.net.0.proj, ff.net.2) keeps peft's unet.<module>.lora_A.weight / "
            ".lora_B.weight, text encoder text_encoder.encoder.layers.N.self_attn.{q,k,v,out}_proj."
            "lora_linear_layer.down.weight / .up.weight (no 'text_model.': transformers 5 module names). "
            "__metadata__ = {format: pt} only (no alpha/rank)."),
        "sha256": sha256_file(ref_path),
        "tensors": tensor_table(ref_path),
    }
    return tensors


# --------------------------------------------------------------------------------------------------
# golden 2
# --------------------------------------------------------------------------------------------------
def make_golden2(manifest, dtype=torch.float32, write=True):
    fx = load_file(str(FIXTURE_GOLDEN / "dreambooth_step.safetensors"))
    latents, noise, timesteps, ehs = fx["in.latents"], fx["in.noise"], fx["in.timesteps"], fx["in.encoder_hidden_states"]
    latents, noise, ehs = latents.to(dtype), noise.to(dtype), ehs.to(dtype)
    pipe = load_pipe(dtype)
    unet = pipe.unet
    noise_scheduler = DDPMScheduler.from_pretrained(str(MODEL_DIR), subfolder="scheduler")
    assert noise_scheduler.config.prediction_type == "epsilon"

    unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    unet_lora_config = LoraConfig(
        r=G2_RANK,
        lora_alpha=G2_ALPHA,
        lora_dropout=0.0,
        init_lora_weights=G2_INIT,
        target_modules=G2_UNET_TARGETS,
    )
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        unet.add_adapter(unet_lora_config)
    for x in w:
        log("  add_adapter warning:", x.message)
    mods = lora_modules(unet, "unet")
    log(f"golden 2: {len(mods)} UNet modules with adapters")

    named = lora_params(unet, "unet")
    params_to_optimize = list(filter(lambda p: p.requires_grad, unet.parameters()))
    assert len(params_to_optimize) == len(named) and all(a is b for a, (_, b) in zip(params_to_optimize, named))
    # gaussian init check: A ~ N(0, 1/r), B = 0
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in named if ".lora_B." in n)
    randomize_lora(named, G2_SEED)

    optimizer = torch.optim.AdamW(params_to_optimize, lr=G2_LR, betas=G2_BETAS, weight_decay=G2_WD, eps=G2_EPS)
    before = {n: p.detach().clone() for n, p in named}

    unet.train()
    noisy_model_input = noise_scheduler.add_noise(latents, noise, timesteps)
    model_pred = unet(noisy_model_input, timesteps, ehs, return_dict=False)[0]
    target = noise
    mp, mp_prior = torch.chunk(model_pred, 2, dim=0)
    tg, tg_prior = torch.chunk(target, 2, dim=0)
    loss_inst = torch.nn.functional.mse_loss(mp.float(), tg.float(), reduction="mean")
    prior_loss = torch.nn.functional.mse_loss(mp_prior.float(), tg_prior.float(), reduction="mean")
    loss = loss_inst + G2_PRIOR_LOSS_WEIGHT * prior_loss
    loss.backward()

    grad_norms = torch.stack([p.grad.detach().norm(2) for p in params_to_optimize])
    global_norm = torch.linalg.vector_norm(grad_norms, 2)
    assert all(float(p.grad.abs().max()) > 0 for p in params_to_optimize), "some LoRA parameter got no gradient"
    total = torch.nn.utils.clip_grad_norm_(params_to_optimize, G2_MAX_GRAD_NORM)
    clip_coef = torch.clamp(G2_MAX_GRAD_NORM / (total + 1e-6), max=1.0)
    clipped = bool(float(total) > G2_MAX_GRAD_NORM)
    log(f"golden 2: loss {float(loss.detach()):.6g}, grad global norm {float(global_norm):.6g} (clip_grad_norm_ returned "
        f"{float(total):.6g}), clipping triggered: {clipped}, coef {float(clip_coef):.6g}")
    assert clipped, "clipping did not trigger; choose a smaller max_grad_norm"
    grads = {n: p.grad.detach().clone() for n, p in named}
    optimizer.step()
    optimizer.zero_grad()

    tensors = {
        "in.latents": latents, "in.noise": noise, "in.timesteps": timesteps, "in.encoder_hidden_states": ehs,
        "in.prior_loss_weight": scalar(G2_PRIOR_LOSS_WEIGHT), "in.max_grad_norm": scalar(G2_MAX_GRAD_NORM),
        "in.lr": scalar(G2_LR), "in.adam_beta1": scalar(G2_BETAS[0]), "in.adam_beta2": scalar(G2_BETAS[1]),
        "in.adam_eps": scalar(G2_EPS), "in.weight_decay": scalar(G2_WD),
        "in.lora_rank": scalar(G2_RANK, torch.int64), "in.lora_alpha": scalar(float(G2_ALPHA)),
        "out.loss": loss.reshape(1), "out.loss_instance": loss_inst.reshape(1), "out.loss_prior": prior_loss.reshape(1),
        "out.grad_norms": grad_norms, "out.grad_global_norm": global_norm.reshape(1),
        "out.clip_coef": clip_coef.reshape(1),
        "out.noisy_latents": noisy_model_input, "out.model_pred": model_pred, "out.target": target,
    }
    for n, p in named:
        tensors[f"param.{n}.before"] = before[n]
        tensors[f"param.{n}.grad"] = grads[n]
        tensors[f"param.{n}.after"] = p
    if not write:
        return tensors
    extra = {
        "param_names": json.dumps([n for n, _ in named]),
        "unet_lora_modules": json.dumps(mods),
        "unet_lora_config": json.dumps({"r": G2_RANK, "lora_alpha": G2_ALPHA, "init_lora_weights": G2_INIT,
                                        "lora_dropout": 0.0, "target_modules": G2_UNET_TARGETS}),
        "clipping_triggered": "true" if clipped else "false",
    }
    path = GOLDEN / "lora_dreambooth_step.safetensors"
    save_golden(path, tensors, "lora_dreambooth_step", extra)
    manifest["files"]["golden/lora_dreambooth_step.safetensors"] = {
        "description": (
            "One DreamBooth-LoRA step as diffusers examples/dreambooth/train_dreambooth_lora.py computes it: "
            "base UNet frozen (requires_grad_(False)), unet.add_adapter(LoraConfig(r=4, lora_alpha=4, "
            "lora_dropout=0, init_lora_weights='gaussian', target_modules=['to_k','to_q','to_v','to_out.0',"
            "'add_k_proj','add_v_proj'])) (add_k_proj/add_v_proj do not exist in this UNet), then every lora_A/"
            "lora_B overwritten with seeded random values (param.*.before). Inputs = tiny-a/golden/"
            "dreambooth_step.safetensors inputs (batch 4 = 2 instance + 2 class). unet.train(); noisy = "
            "DDPMScheduler.add_noise(latents, noise, t); pred = unet(noisy, t, ehs); target = noise; loss = "
            "mse(pred[:2], target[:2]) + prior_loss_weight * mse(pred[2:], target[2:]); backward; out.grad_norms "
            "= per-parameter L2 norms of the raw gradients in unet.parameters() order (= __metadata__ "
            "param_names), out.grad_global_norm = their L2 norm; torch.nn.utils.clip_grad_norm_(params, "
            "in.max_grad_norm) (in.max_grad_norm = 0.01 instead of the script default 1.0, which would not clip here; triggered: clip_coef = max_norm/(total+1e-6) = out.clip_coef); one "
            "torch.optim.AdamW step (in.lr, in.adam_beta1/2, in.adam_eps, in.weight_decay). param.<name>.grad "
            "is the gradient after clipping; .after the parameter after the step."),
        "sha256": sha256_file(path),
        "tensors": tensor_table(path),
    }
    return tensors


# --------------------------------------------------------------------------------------------------
# golden 3
# --------------------------------------------------------------------------------------------------
def kohya_from_internal(adapter, alpha):
    """Kohya/A1111 LoRA from internal names (used only by --selftest-load)."""
    sd = {}
    for name, t in adapter.items():
        comp, rest = name.split(".", 1)
        module, kind = rest.rsplit(".lora_", 1)  # kind: "A.weight" / "B.weight"
        pre = {"unet": "lora_unet_", "text_encoder": "lora_te_"}[comp]
        key = pre + module.replace(".", "_")
        sd[key + (".lora_down.weight" if kind == "A.weight" else ".lora_up.weight")] = t.clone()
        sd[key + ".alpha"] = torch.tensor(float(alpha))  # kohya stores a 0-dim tensor
    return sd


def loaded_internal_state(pipe, adapter_name):
    out = {}
    for prefix, model in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder)):
        for n, p in model.named_parameters():
            if ".lora_A." in n or ".lora_B." in n:
                out[internal_name(prefix, n, adapter_name)] = p.detach()
    return out


def run_load(kohya_file, diffusers_file, out_path, manifest=None, g1=None):
    g1 = g1 if g1 is not None else load_file(str(GOLDEN / "lora_unet.safetensors"))
    inp = {k: g1[k] for k in ("in.sample", "in.timestep", "in.encoder_hidden_states", "in.input_ids")}
    golden_adapter = {k[len("adapter."):]: v for k, v in g1.items() if k.startswith("adapter.")}
    results = {}
    problems = []
    for tag, f in (("kohya", kohya_file), ("diffusers", diffusers_file)):
        f = Path(f)
        log(f"--- {tag}: {f} (sha256 {sha256_file(f)}), __metadata__ = {file_metadata(f)}")
        pipe = load_pipe()
        msgs = capture_load(pipe, f, tag)
        for m in msgs:
            log(f"  {tag} load warning: {m}")
        if msgs:
            problems.append(f"{tag}: diffusers/peft emitted {len(msgs)} warning(s) while loading")
        loaded = loaded_internal_state(pipe, tag)
        missing = sorted(set(golden_adapter) - set(loaded))
        extra = sorted(set(loaded) - set(golden_adapter))
        if missing or extra:
            problems.append(f"{tag}: loaded adapter keys differ from golden 1: {len(missing)} missing "
                            f"(e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})")
        else:
            worst = max(maxabs(loaded[k], golden_adapter[k]) for k in golden_adapter)
            log(f"  {tag}: all {len(golden_adapter)} adapter tensors loaded; max |loaded - golden| = {worst:.3g}")
        scal = sorted(set(lora_scalings(pipe.unet).values()) | set(lora_scalings(pipe.text_encoder).values()))
        log(f"  {tag}: effective scalings (alpha/r) after load: {scal}")
        s, t = forward_all(pipe, inp)
        results[tag] = (s, t, scal)
        for ref in ("out.sample", "out.sample_reloaded"):
            log(f"  {tag}: max |sample - {ref}| = {maxabs(s, g1[ref]):.3g}")
        for ref in ("out.text_last_hidden_state", "out.text_reloaded"):
            log(f"  {tag}: max |text - {ref}| = {maxabs(t, g1[ref]):.3g}")
    if problems:
        for p in problems:
            log("ERROR:", p)
        raise SystemExit("load stage failed: diffusers did not take the files as they are (see above)")
    tensors = {}  # inputs: golden 1's in.* (not repeated here)
    tensors.update({
        "out.kohya_sample": results["kohya"][0], "out.kohya_text": results["kohya"][1],
        "out.diffusers_sample": results["diffusers"][0], "out.diffusers_text": results["diffusers"][1],
    })
    extra = {
        "inputs": "in.sample, in.timestep, in.encoder_hidden_states, in.input_ids of lora_unet.safetensors",
        "lora_unet_sha256": sha256_file(GOLDEN / "lora_unet.safetensors"),
        "kohya_file": Path(kohya_file).name, "kohya_sha256": sha256_file(kohya_file),
        "diffusers_file": Path(diffusers_file).name, "diffusers_sha256": sha256_file(diffusers_file),
        "kohya_effective_scalings": json.dumps(results["kohya"][2]),
        "diffusers_effective_scalings": json.dumps(results["diffusers"][2]),
    }
    save_golden(out_path, tensors, "lora_load", extra)
    if manifest is not None:
        manifest["files"]["golden/lora_load.safetensors"] = {
            "description": (
                "What diffusers makes of our exports: for KOHYA = " + Path(kohya_file).name + " and DIFFUSERS = "
                + Path(diffusers_file).name + " (sha256 in __metadata__), a fresh tiny-a pipeline, "
                "pipe.load_lora_weights(file) (no warnings, every golden-1 adapter tensor loaded), then "
                "out.<kohya|diffusers>_sample = unet(in.sample, in.timestep, in.encoder_hidden_states).sample and "
                "out.<kohya|diffusers>_text = text_encoder(in.input_ids).last_hidden_state; inputs = golden 1's "
                "in.* (lora_unet.safetensors, not repeated here)."),
            "sha256": sha256_file(out_path),
            "tensors": tensor_table(out_path),
        }
    return tensors


# --------------------------------------------------------------------------------------------------
def measure_noise():
    """Natural noise of the reference: recompute in float64 (1 thread) and float32 with 2 threads and compare
    with the stored float32 single-thread goldens (same method as tests/data/fixtures/README.md)."""
    stored = {"lora_unet": load_file(str(GOLDEN / "lora_unet.safetensors")),
              "lora_dreambooth_step": load_file(str(GOLDEN / "lora_dreambooth_step.safetensors"))}
    worst = {}
    for label, dtype, threads in (("float64/1", torch.float64, 1), ("float32/2", torch.float32, 2)):
        torch.set_num_threads(threads)
        got = {"lora_unet": make_golden1(None, dtype, write=False),
               "lora_dreambooth_step": make_golden2(None, dtype, write=False)}
        for g, d in got.items():
            for k, v in d.items():
                if not k.startswith(("out.", "param.")) or not v.is_floating_point() or k.endswith(".before"):
                    continue
                ref = stored[g][k].double()
                diff = (v.detach().double() - ref)
                ma = float(diff.abs().max())
                rl = float(diff.norm() / ref.norm()) if float(ref.norm()) > 0 else 0.0
                key = (g, k.rsplit(".", 1)[-1] if k.startswith("param.") else k)
                w = worst.get(key, (0.0, 0.0, 0.0))
                worst[key] = (max(w[0], ma), max(w[1], rl), max(w[2], float(ref.abs().max())))
    torch.set_num_threads(1)
    print("| golden tensor | measured max_abs | measured rel_l2 | ref max |")
    print("| --- | ---: | ---: | ---: |")
    for (g, k), (ma, rl, rm) in sorted(worst.items()):
        name = f"{g}/{k}" if not k in ("grad", "after") else f"{g}/param.*.{k} (worst over params)"
        print(f"| `{name}` | {ma:.2g} | {rl:.2g} | {rm:.2g} |")


def load_manifest():
    p = GOLDEN / "manifest.json"
    if p.exists():
        m = json.loads(p.read_text())
    else:
        m = {"files": {}}
    m["base_model"] = BASE_MODEL_REL
    m["model"] = "tiny-a"
    m["upstream"] = {"diffusers": diffusers.__version__, "peft": peft.__version__,
                     "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                     "train_dreambooth_lora.py": "huggingface/diffusers main 58eb52c0803ea9af3abec60841c2a093bdf1f951 "
                                                 "(examples/dreambooth; not shipped in the 0.42.1 wheel)"}
    m["torch"] = torch.__version__
    m["threads"] = 1
    m["produced_by"] = PRODUCED_BY
    return m


def write_manifest(m):
    m["files"] = dict(sorted(m["files"].items()))
    p = GOLDEN / "manifest.json"
    text = json.dumps(m, indent=1, sort_keys=False)
    # keep the (multi-line) integer lists of shapes on one line: [2, 4, 32, 24]
    text = re.sub(r"\[(\s*\n[0-9,\s]*)\]",
                  lambda mo: "[" + ", ".join(x.strip() for x in mo.group(1).split(",") if x.strip()) + "]", text)
    p.write_text(text + "\n")
    log(f"wrote {p.relative_to(ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", nargs=2, metavar=("KOHYA_FILE", "DIFFUSERS_FILE"),
                    help="golden 3: load our exported files into diffusers and record outputs")
    ap.add_argument("--selftest-load", action="store_true",
                    help="check the --load stage with a kohya file written from golden 1 (nothing in golden/ changes)")
    ap.add_argument("--measure-noise", action="store_true",
                    help="recompute goldens 1/2 in float64 and with 2 threads; print max_abs/rel_l2 vs the stored files")
    args = ap.parse_args()
    for n in ("diffusers", "peft", "transformers"):
        logging.getLogger(n).setLevel(logging.WARNING)
    log(f"torch {torch.__version__}, diffusers {diffusers.__version__}, peft {peft.__version__}, "
        f"transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    GOLDEN.mkdir(parents=True, exist_ok=True)

    if args.selftest_load:
        g1 = load_file(str(GOLDEN / "lora_unet.safetensors"))
        adapter = {k[len("adapter."):]: v for k, v in g1.items() if k.startswith("adapter.")}
        tmp = Path(tempfile.mkdtemp(prefix="lora_selftest_"))
        try:
            kf = tmp / "selftest_kohya.safetensors"
            save_file(kohya_from_internal(adapter, float(g1["in.lora_alpha"])), str(kf),
                      metadata={"ss_network_dim": str(int(g1["in.lora_rank"])),
                                "ss_network_alpha": str(float(g1["in.lora_alpha"]))})
            out = run_load(kf, GOLDEN / "lora_diffusers_reference.safetensors", tmp / "lora_load.safetensors",
                           None, g1)
        finally:
            shutil.rmtree(tmp)
        d1 = maxabs(out["out.kohya_sample"], g1["out.sample"])
        d2 = maxabs(out["out.kohya_text"], g1["out.text_last_hidden_state"])
        d3 = maxabs(out["out.diffusers_sample"], g1["out.sample_reloaded"])
        d4 = maxabs(out["out.diffusers_text"], g1["out.text_reloaded"])
        log(f"selftest: kohya vs out.sample {d1:.3g}, vs text {d2:.3g}; reference file vs out.sample_reloaded "
            f"{d3:.3g}, text {d4:.3g}")
        assert max(d1, d2) < 1e-5 and max(d3, d4) == 0.0
        log("selftest OK")
        return

    if args.measure_noise:
        measure_noise()
        return

    manifest = load_manifest()
    if args.load:
        run_load(args.load[0], args.load[1], GOLDEN / "lora_load.safetensors", manifest)
        for f in args.load:
            f = Path(f).resolve()
            if f.parent == GOLDEN:
                manifest["files"][f"golden/{f.name}"] = {
                    "description": "Written by our C++ exporter from golden 1's adapter (input of lora_load).",
                    "sha256": sha256_file(f), "tensors": tensor_table(f)}
        write_manifest(manifest)
        return

    make_golden1(manifest)
    make_golden2(manifest)
    write_manifest(manifest)


if __name__ == "__main__":
    main()
