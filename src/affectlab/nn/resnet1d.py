"""ResNet-18-1D: a ResNet-18 whose convolutions have one-dimensional kernels (SGMC, ME-MHACL).

A window ``(channels, samples)`` is treated as a one-plane image ``(1, channels, samples)``; every
convolution kernel spans either the time axis (``(1, k)``) or the channel axis (``(k, 1)``).

Paper layout (ME-MHACL Sec. III-D, Fig. 4): a stem convolution of length 9 along time (64 maps,
stride 2 in time), batch norm, ReLU, max pooling ``(1, 3)``; then 8 residual blocks in 4 stages of
64 / 128 / 256 / 512 maps with kernel lengths 15, 15, 11, 11, 7, 3, 3, 5. In every block the
first convolution runs along time and the second along channels (both with the block's length),
each followed by batch norm (ReLU after the first and after the residual sum). Global average
pooling gives the 512-d representation ``h`` (Eq. 4).

Strides are not in the paper; they follow the parent code (SGMC ``ResNet_model.py``): the first
block of stages 1-2 halves time (first convolution) and channels (second convolution), that of
stages 3-4 halves time only; the shortcut of a block that changes shape is a 1x1 convolution with
the same total stride plus batch norm.

:func:`sgmc_blocks` gives the released code's kernels, which differ from the paper's text: stage 3
ends both blocks with a ``(3, 1)`` channel kernel and its second block starts along channels
``(7, 1)``; stage 4 uses a square ``5 x 5`` second convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

PAPER_LENGTHS = (15, 15, 11, 11, 7, 3, 3, 5)
STAGE_WIDTHS = (1, 1, 2, 2, 4, 4, 8, 8)          # multiples of the base width, per block
# (channel, time) downsampling of each block's first / second convolution (SGMC strides)
STRIDE1 = ((1, 2), (1, 1), (1, 2), (1, 1), (1, 2), (1, 1), (1, 2), (1, 1))
STRIDE2 = ((2, 1), (1, 1), (2, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1))


@dataclass(frozen=True)
class BlockSpec:
    """One residual block: output maps and the (channel, time) kernel / stride of both convs."""

    width: int
    kernel1: tuple[int, int]
    kernel2: tuple[int, int]
    stride1: tuple[int, int] = (1, 1)
    stride2: tuple[int, int] = (1, 1)


def paper_blocks(base_width: int = 64) -> list[BlockSpec]:
    """The paper's 8 blocks: length ``L`` along time then ``L`` along channels."""
    return [BlockSpec(base_width * m, (1, k), (k, 1), s1, s2)
            for m, k, s1, s2 in zip(STAGE_WIDTHS, PAPER_LENGTHS, STRIDE1, STRIDE2, strict=True)]


def sgmc_blocks(base_width: int = 64) -> list[BlockSpec]:
    """The released SGMC code's kernels (see the module docstring)."""
    kernels = (((1, 15), (15, 1)), ((1, 15), (15, 1)), ((1, 11), (11, 1)), ((1, 11), (11, 1)),
               ((1, 7), (3, 1)), ((7, 1), (3, 1)), ((1, 3), (5, 5)), ((1, 3), (5, 5)))
    return [BlockSpec(base_width * m, k1, k2, s1, s2)
            for m, (k1, k2), s1, s2 in zip(STAGE_WIDTHS, kernels, STRIDE1, STRIDE2, strict=True)]


def _conv(n_in: int, n_out: int, kernel: tuple[int, int],
          stride: tuple[int, int] = (1, 1)) -> nn.Conv2d:
    """Bias-free convolution with 'same' padding along the kernel's axes."""
    return nn.Conv2d(n_in, n_out, kernel, stride=stride,
                     padding=(kernel[0] // 2, kernel[1] // 2), bias=False)


class ResidualBlock1D(nn.Module):
    """conv1 -> BN -> ReLU -> conv2 -> BN, plus the (projected) input, then ReLU."""

    def __init__(self, n_in: int, spec: BlockSpec):
        super().__init__()
        self.conv1 = _conv(n_in, spec.width, spec.kernel1, spec.stride1)
        self.bn1 = nn.BatchNorm2d(spec.width)
        self.conv2 = _conv(spec.width, spec.width, spec.kernel2, spec.stride2)
        self.bn2 = nn.BatchNorm2d(spec.width)
        stride = (spec.stride1[0] * spec.stride2[0], spec.stride1[1] * spec.stride2[1])
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1) or n_in != spec.width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(n_in, spec.width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(spec.width))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet1D(nn.Module):
    """ResNet-18-1D base encoder ``f``: ``(N, channels, samples)`` -> ``(N, 8 * base_width)``.

    blocks: residual block specs (default :func:`paper_blocks`); stem_kernel: length of the first
    convolution along time (9 in the paper).
    """

    def __init__(self, base_width: int = 64, blocks: Sequence[BlockSpec] | None = None,
                 stem_kernel: int = 9):
        super().__init__()
        specs = list(blocks) if blocks is not None else paper_blocks(base_width)
        self.stem = nn.Sequential(
            _conv(1, base_width, (1, stem_kernel), (1, 2)), nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True), nn.MaxPool2d((1, 3), stride=(1, 2), padding=(0, 1)))
        layers, n_in = [], base_width
        for spec in specs:
            layers.append(ResidualBlock1D(n_in, spec))
            n_in = spec.width
        self.blocks = nn.Sequential(*layers)
        self.out_dim = n_in
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x.unsqueeze(1)))
        return out.mean(dim=(2, 3))
