"""An independent, minimal re-statement of the original VQGAN forward pass, with the original parameter names.

Written for the tests from the published architecture description (taming-transformers' Encoder/Decoder:
ResNet blocks with GroupNorm(32, eps 1e-6) and swish, single-head attention blocks of 1x1 convolutions,
asymmetrically padded strided-conv downsampling, nearest-neighbour upsampling). Its state_dict keys are the
original checkpoint keys, so converting its weights and comparing outputs tests the converter on
architectures the fixtures do not cover (attention in several levels, more res blocks, shortcuts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q = self.q(h).reshape(b, c, -1).transpose(1, 2)  # (b, n, c)
        k = self.k(h).reshape(b, c, -1)  # (b, c, n)
        v = self.v(h).reshape(b, c, -1)
        weights = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)  # (b, n_query, n_key)
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Level(nn.Module):
    pass


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, in_channels=3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        cin, res = ch, resolution
        for i, mult in enumerate(ch_mult):
            level = Level()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(cin, ch * mult))
                cin = ch * mult
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(cin))
            if i != len(ch_mult) - 1:
                level.downsample = Level()
                level.downsample.conv = nn.Conv2d(cin, cin, 3, 2, 0)
                res //= 2
            self.down.append(level)
        self.mid = Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(cin, cin),
            AttnBlock(cin),
            ResnetBlock(cin, cin),
        )
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[i](h)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(F.pad(h, (0, 1, 0, 1)))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, out_ch=3):
        super().__init__()
        cin = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, cin, 3, 1, 1)
        self.mid = Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(cin, cin),
            AttnBlock(cin),
            ResnetBlock(cin, cin),
        )
        levels = []
        for i in reversed(range(len(ch_mult))):
            level = Level()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(cin))
            if i != 0:
                level.upsample = Level()
                level.upsample.conv = nn.Conv2d(cin, cin, 3, 1, 1)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[i](h)
            if hasattr(level, "upsample"):
                h = level.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class Embedding(nn.Module):
    def __init__(self, n: int, d: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n, d)
        self.embedding.weight.data.uniform_(-1.0 / n, 1.0 / n)


class TamingVQGAN(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, embed_dim, n_embed):
        super().__init__()
        args = (ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels)
        self.encoder, self.decoder = Encoder(*args), Decoder(*args)
        self.quantize = Embedding(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        return torch.cdist(flat, self.quantize.embedding.weight).argmin(dim=1).reshape(z.shape[0], *z.shape[2:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        quant = self.quantize.embedding(self.indices(z)).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(quant))
