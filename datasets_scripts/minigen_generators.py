"""Small generator networks for MiniGenImage, one per generator family.

Every family maps a batch of real crops (N, 3, H, W) in [0, 1] to a content-matched fake batch of
the same shape.  The families differ on purpose in *how* they synthesise pixels (their upsampler,
their bottleneck, their training objective), so each leaves its own fingerprint, the way real
generators do.  All networks are tiny and train on the CPU in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

WIDTH = 32  # channels of every hidden layer: enough for good 2x reconstructions, cheap on a CPU


def _encoder() -> nn.Sequential:
    """Shared 2x downsampling encoder: the upsampling decoder is what differs between families."""
    return nn.Sequential(
        nn.Conv2d(3, WIDTH, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(WIDTH, WIDTH, 4, stride=2, padding=1),
        nn.ReLU(),
    )


class AutoEncoder(nn.Module):
    """Encoder, then a decoder whose 2x upsampling stage is the family's fingerprint.

    With `last=True` the upsampler itself writes the RGB output (as in DCGAN/ProGAN-like generators,
    whose last layer is a transposed conv or a sub-pixel conv), so its artifacts reach the pixels
    unsmoothed; otherwise (resize-convolution) a 3x3 convolution follows the upsampler.
    """

    def __init__(self, upsampler: nn.Module, last: bool = False) -> None:
        super().__init__()
        self.encoder = _encoder()
        if last:
            self.decoder = nn.Sequential(nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.ReLU(), upsampler)
        else:
            self.decoder = nn.Sequential(upsampler, nn.ReLU(), nn.Conv2d(WIDTH, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))


class FixedUpsample(nn.Module):
    """2x interpolation as a fixed depthwise transposed convolution.

    Equivalent to `F.interpolate` away from the borders, but its backward pass is a plain
    convolution, several times faster on a CPU than the interpolation kernels' backward.
    """

    def __init__(self, taps: tuple[float, ...]) -> None:
        super().__init__()
        kernel_1d = torch.tensor(taps)
        kernel = torch.outer(kernel_1d, kernel_1d).expand(WIDTH, 1, len(taps), len(taps)).clone()
        self.register_buffer("kernel", kernel)
        self.padding = (len(taps) - 2) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.kernel, stride=2, padding=self.padding, groups=WIDTH)


# 1-D taps of 2x interpolation kernels sampled at the output phases (each sums to 2 = 1 per phase)
UPSAMPLE_TAPS = {
    "nearest": (1.0, 1.0),
    "bilinear": (0.25, 0.75, 0.75, 0.25),
    "bicubic": (-0.03515625, -0.10546875, 0.26171875, 0.87890625, 0.87890625, 0.26171875, -0.10546875, -0.03515625),
}


def _resize_conv(mode: str) -> nn.Sequential:
    return nn.Sequential(FixedUpsample(UPSAMPLE_TAPS[mode]), nn.Conv2d(WIDTH, WIDTH, 3, padding=1))


def make_tconv() -> nn.Module:
    """Transposed convolution (kernel 4, stride 2): the classic checkerboard fingerprint."""
    return AutoEncoder(nn.ConvTranspose2d(WIDTH, 3, 4, stride=2, padding=1), last=True)


def make_nearest() -> nn.Module:
    return AutoEncoder(_resize_conv("nearest"))


def make_bilinear() -> nn.Module:
    return AutoEncoder(_resize_conv("bilinear"))


def make_pixelshuffle() -> nn.Module:
    return AutoEncoder(nn.Sequential(nn.Conv2d(WIDTH, 4 * 3, 3, padding=1), nn.PixelShuffle(2)), last=True)


def make_gan() -> nn.Module:
    """Image-to-image GAN generator (pix2pix style): odd-kernel transposed conv, adversarial loss."""
    return AutoEncoder(nn.ConvTranspose2d(WIDTH, 3, 3, stride=2, padding=1, output_padding=1), last=True)


class VectorQuantizedAE(nn.Module):
    """VQ autoencoder: the latent grid snaps to a small codebook (straight-through gradients)."""

    def __init__(self, codebook_size: int = 256) -> None:
        super().__init__()
        self.encoder = _encoder()
        self.codebook = nn.Parameter(torch.randn(codebook_size, WIDTH) * 0.1)
        self.decoder = nn.Sequential(_resize_conv("bicubic"), nn.ReLU(), nn.Conv2d(WIDTH, 3, 3, padding=1))
        self.commit_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        flat = z.permute(0, 2, 3, 1).reshape(-1, WIDTH)
        codes = torch.cdist(flat, self.codebook).argmin(dim=1)
        quantised = self.codebook[codes].reshape(z.shape[0], z.shape[2], z.shape[3], WIDTH).permute(0, 3, 1, 2)
        # codebook + commitment terms are picked up by the training loop through this attribute
        self.commit_loss = F.mse_loss(quantised, z.detach()) + 0.25 * F.mse_loss(z, quantised.detach())
        z_q = z + (quantised - z).detach()
        return torch.sigmoid(self.decoder(z_q))


def make_vqae() -> nn.Module:
    return VectorQuantizedAE()


class Denoiser(nn.Module):
    """Full-resolution residual denoiser conditioned on the noise level (no resampling at all)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, WIDTH, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(WIDTH, WIDTH, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(WIDTH, WIDTH, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(WIDTH, 3, 3, padding=1),
        )

    def forward(self, noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        level = torch.full_like(noisy[:, :1], sigma)
        return noisy - self.net(torch.cat([noisy, level], dim=1))


# Noise schedule of the diffusion family: SDEdit-style, partially noise a real crop then denoise.
DIFFUSION_SIGMAS = (0.2, 0.1, 0.05)


def make_diffusion() -> nn.Module:
    return Denoiser()


class PatchDiscriminator(nn.Module):
    """Small PatchGAN discriminator used only to train the `gan` family."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "tconv": make_tconv,
    "nearest": make_nearest,
    "bilinear": make_bilinear,
    "pixelshuffle": make_pixelshuffle,
    "gan": make_gan,
    "diffusion": make_diffusion,
    "vqae": make_vqae,
}


def _lr(step: int, steps: int, base: float = 5e-3) -> float:
    """Cosine decay: ends training on a small step so outputs are stable and sharp."""
    return base * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))


def train_generator(
    family: str,
    crops: torch.Tensor,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
    progress: Callable[[], None] | None = None,
) -> nn.Module:
    """Train the family's network on real crops (N, 3, H, W) in [0, 1] and return it in eval mode."""
    model = FACTORIES[family]()
    optimiser = torch.optim.Adam(model.parameters(), lr=_lr(0, steps))
    discriminator = PatchDiscriminator() if family == "gan" else None
    d_optimiser = torch.optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999)) if discriminator else None
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps)
        idx = torch.randint(len(crops), (batch_size,), generator=generator)
        real = crops[idx]
        d_loss = None
        if family == "diffusion":
            sigma = DIFFUSION_SIGMAS[step % len(DIFFUSION_SIGMAS)]
            noisy = real + sigma * torch.randn(real.shape, generator=generator)
            loss = F.mse_loss(model(noisy, sigma), real)
        else:
            fake = model(real)
            loss = F.l1_loss(fake, real)
            if family == "vqae":
                loss = loss + model.commit_loss
            if discriminator is not None:
                loss = loss + 0.05 * F.softplus(-discriminator(fake)).mean()
                d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if d_loss is not None:
            d_optimiser.zero_grad()
            d_loss.backward()
            d_optimiser.step()
        if progress is not None:
            progress()
    return model.eval()


def match_histograms(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Give each image, channel by channel, exactly the pixel values of its reference, in the image's own order.

    A monotone remap: the image keeps its spatial structure (which pixel is brighter than which), and takes the
    reference's histogram. Pixels the image ties on (a flat region the generator rendered flat) are ordered as the
    reference orders them, then by position: ordered by position alone they would take the reference's values as a
    raster-order ramp, a pattern no photograph has, which a detector could learn instead of the generator.
    """
    batch, channels = images.shape[:2]
    flat, reference = images.reshape(batch, channels, -1), references.reshape(batch, channels, -1)
    # a lexicographic sort by (image value, reference value, position): stable sorts, the minor key first
    by_reference = reference.argsort(dim=-1, stable=True)
    ranks = by_reference.gather(-1, flat.gather(-1, by_reference).argsort(dim=-1, stable=True))
    matched = torch.empty_like(flat)
    matched.scatter_(-1, ranks, reference.sort(dim=-1, stable=True).values)
    return matched.reshape(images.shape)


@torch.no_grad()
def generate(family: str, model: nn.Module, crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fakes for a batch of real crops, each with its source crop's per-channel histogram.

    Matching the histograms leaves a detector no global statistic to read (colour cast, contrast, or how often a
    pixel saturates: a sigmoid decoder almost never reaches 0 or 255, while a third of the photographs' crops
    hold clipped highlights), so it must rely on the generator's local fingerprint.
    """
    if family == "diffusion":
        out = crops + DIFFUSION_SIGMAS[0] * torch.randn(crops.shape, generator=generator)
        for i, sigma in enumerate(DIFFUSION_SIGMAS):
            out = model(out, sigma)
            if i + 1 < len(DIFFUSION_SIGMAS):
                # re-noise to the next (smaller) level, as an ancestral sampler does
                nxt = DIFFUSION_SIGMAS[i + 1]
                out = out + nxt * torch.randn(out.shape, generator=generator)
    else:
        out = model(crops)
    return match_histograms(out, crops)
