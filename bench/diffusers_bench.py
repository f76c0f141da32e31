"""The standard CPU measurements of tests/data/bench/README.md, run on diffusers + PyTorch.

Mirrors `dbtool bench` (UNet forward b1/b4 and forward+backward b2 on the mid UNet, 25-step DDIM
sampling with CFG 7.5 on tiny-a at 64x64, VAE encode/decode) and `train_step_bench mid_step` (one
DreamBooth step with prior preservation, 1+1 latents, AdamW). Prints one JSON object per line:
{"name": ..., "median_ms": ...}. For comparisons only; never a dependency of the product.

usage: python diffusers_bench.py --threads T [--repeats R] [--mid-config PATH] [--tiny-a DIR]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel


def measure(name, fn, repeats, warmup=1, unit="ms"):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    median = statistics.median(times)
    print(json.dumps({"name": name, "median_ms": round(median, 2), "min_ms": round(min(times), 2),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    return median


def bench_mid(args):
    config = UNet2DConditionModel.load_config(args.mid_config)
    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_config(config)
    t = torch.tensor([500])
    unet.eval()
    for batch in (1, 4):
        x = torch.randn(batch, 4, 32, 32)
        ctx = torch.randn(batch, 77, 768)
        with torch.no_grad():
            measure(f"unet_mid_fwd_b{batch}", lambda: unet(x, t, ctx).sample, args.repeats)
    x = torch.randn(2, 4, 32, 32)
    ctx = torch.randn(2, 77, 768)
    target = torch.randn(2, 4, 32, 32)
    unet.train()

    def fwd_bwd():
        unet.zero_grad()
        F.mse_loss(unet(x, t, ctx).sample, target).backward()

    measure("unet_mid_fwd_bwd_b2", fwd_bwd, args.repeats)

    # One DreamBooth step with prior preservation, as diffusers' train_dreambooth.py computes it.
    scheduler = DDPMScheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)

    def step():
        latents = torch.randn(2, 4, 32, 32)
        noise = torch.randn(2, 4, 32, 32)
        timesteps = torch.randint(0, 1000, (2,))
        ehs = torch.randn(2, 77, 768)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        pred = unet(noisy, timesteps, ehs).sample
        pred, pred_prior = torch.chunk(pred, 2, dim=0)
        target, target_prior = torch.chunk(noise, 2, dim=0)
        loss = F.mse_loss(pred.float(), target.float()) + F.mse_loss(pred_prior.float(),
                                                                     target_prior.float())
        loss.backward()
        opt.step()
        opt.zero_grad()

    ms = measure("dreambooth_step_mid", step, args.repeats, warmup=2)
    print(json.dumps({"name": "dreambooth_step_mid_steps_per_s", "value": round(1000.0 / ms, 3)}))


def bench_tiny(args):
    pipe = StableDiffusionPipeline.from_pretrained(args.tiny_a, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    # tiny-a's text encoder has 1000 ids: the same synthetic ids as dbtool bench.
    ids = torch.full((1, 77), 999, dtype=torch.long)
    ids[0, 0] = 998
    for i in range(1, 7):
        ids[0, i] = 10 * i
    neg = torch.full((1, 77), 999, dtype=torch.long)
    neg[0, 0] = 998

    def sample():
        with torch.no_grad():
            cond = pipe.text_encoder(ids)[0]
            uncond = pipe.text_encoder(neg)[0]
        pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=25,
             guidance_scale=7.5, height=64, width=64, output_type="np",
             generator=torch.Generator().manual_seed(0))

    measure("sample_tiny_ddim25_cfg_64px", sample, args.repeats)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    latents = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        measure("vae_tiny_encode_64px", lambda: pipe.vae.encode(image).latent_dist.mean,
                args.repeats)
        measure("vae_tiny_decode_64px", lambda: pipe.vae.decode(latents).sample, args.repeats)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mid-config", default="tests/data/bench/mid/unet/config.json")
    parser.add_argument("--tiny-a", default="tests/data/fixtures/tiny-a")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_mid(args)
    bench_tiny(args)


if __name__ == "__main__":
    main()
