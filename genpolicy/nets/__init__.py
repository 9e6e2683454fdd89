"""Networks with signature ``net(x, t, cond) -> Tensor`` shaped like ``x`` (``x``: ``(B, x_dim)``, ``t``: ``(B,)``).

- :class:`GaussianFourierTime`: Gaussian random Fourier features of t (Tancik et al.; as in Song et al. 2021).
- :class:`MLP`: concatenation of x, time and condition embeddings into an MLP.
- :class:`ResNet`: LayerNorm residual MLP (IDQL's "LN-ResNet").
- :class:`MLPUNet`: the MLP U-Net of QGPO / GenerativeRL (hidden 512-256-128 with skips; time and condition
  embeddings added in every block), the paper's policy network.
- :class:`DiT1d`: a small diffusion transformer over the vector's entries as tokens, adaLN-Zero conditioned.

Conditions may be a tensor ``(B, *cond_shape)`` (flattened per sample) or a TensorDict, whose leaves are
flattened and concatenated in sorted key order (:func:`flatten_condition`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "flatten_condition", "GaussianFourierTime", "TimeCondEmbedding", "MLP", "ResNet", "MLPUNet", "DiT1d",
    "make_net", "NETS", "NetName", "mlp",
]


def flatten_condition(cond) -> Tensor | None:
    """A flat ``(B, C)`` tensor from a tensor or TensorDict condition (None stays None)."""
    if cond is None:
        return None
    if isinstance(cond, Tensor):
        return cond.reshape(cond.shape[0], -1)
    b = cond.batch_size[0]
    keys = sorted(cond.keys(include_nested=True, leaves_only=True), key=lambda k: k if isinstance(k, str) else ".".join(k))
    return torch.cat([cond.get(k).reshape(b, -1).to(torch.get_default_dtype()) for k in keys], dim=1)


class GaussianFourierTime(nn.Module):
    """Fixed random Fourier features ``[sin(2 pi W t), cos(2 pi W t)]`` with ``W ~ N(0, scale^2)``.

    Args:
        dim: output dimension (even).
        scale: standard deviation of the frequencies.
    """

    def __init__(self, dim: int = 32, scale: float = 30.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"GaussianFourierTime dim must be even, got {dim}")
        self.register_buffer("w", torch.randn(dim // 2) * scale)

    def forward(self, t: Tensor) -> Tensor:
        proj = 2 * math.pi * t[:, None] * self.w[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class TimeCondEmbedding(nn.Module):
    """Embeds ``(t, cond)`` into one vector: Fourier time features (+ flattened condition) through an MLP."""

    def __init__(self, cond_dim: int, out_dim: int, t_dim: int = 32, t_scale: float = 30.0):
        super().__init__()
        self.cond_dim = cond_dim
        self.time = GaussianFourierTime(t_dim, t_scale)
        self.mlp = nn.Sequential(nn.Linear(t_dim + cond_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor, cond) -> Tensor:
        parts = [self.time(t)]
        c = flatten_condition(cond)
        if self.cond_dim:
            if c is None or c.shape[1] != self.cond_dim:
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"network expects a condition of {self.cond_dim} features per sample, got {got}")
            parts.append(c)
        elif c is not None:
            raise ValueError(f"network was built unconditional (cond_dim=0) but got a condition of shape {tuple(c.shape)}")
        return self.mlp(torch.cat(parts, dim=-1))


def _act(name: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu": nn.ReLU, "mish": nn.Mish, "gelu": nn.GELU, "tanh": nn.Tanh}[name]()


def mlp(inp: int, out: int, hidden=(256, 256), act: str = "relu", layer_norm: bool = False) -> nn.Sequential:
    """A plain MLP ``inp -> hidden... -> out`` (``Linear [-> LayerNorm] -> act`` per hidden layer); the one MLP
    builder of the package (critics, SAC, the time-conditioned :class:`MLP`)."""
    layers, d = [], inp
    for h in hidden:
        layers += [nn.Linear(d, h)] + ([nn.LayerNorm(h)] if layer_norm else []) + [_act(act)]
        d = h
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """``MLP([x, emb(t, cond)])``.

    Args:
        x_dim: data dimension. cond_dim: flattened condition size (0 for none).
        hidden: hidden sizes. emb_dim: size of the time/condition embedding. act: activation name.
    """

    def __init__(self, x_dim: int, cond_dim: int = 0, hidden=(256, 256, 256), emb_dim: int = 64, act: str = "silu",
                 t_scale: float = 30.0):
        super().__init__()
        self.emb = TimeCondEmbedding(cond_dim, emb_dim, t_scale=t_scale)
        self.mlp = mlp(x_dim + emb_dim, x_dim, hidden, act)

    def forward(self, x: Tensor, t: Tensor, cond=None) -> Tensor:
        return self.mlp(torch.cat([x, self.emb(t, cond)], dim=-1))


class _ResBlock(nn.Module):
    def __init__(self, dim: int, act: str, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout) if dropout else nn.Identity(), nn.LayerNorm(dim),
                                 nn.Linear(dim, 4 * dim), _act(act), nn.Linear(4 * dim, dim))

    def forward(self, h):
        return h + self.net(h)


class ResNet(nn.Module):
    """LayerNorm residual MLP as in IDQL: ``Linear -> n_blocks x (h + MLP(LN(h))) -> act -> Linear``.

    Args:
        x_dim, cond_dim: as in :class:`MLP`. hidden: width. n_blocks: residual blocks. dropout: per block.
    """

    def __init__(self, x_dim: int, cond_dim: int = 0, hidden: int = 256, n_blocks: int = 3, emb_dim: int = 64,
                 act: str = "mish", dropout: float = 0.0, t_scale: float = 30.0):
        super().__init__()
        self.emb = TimeCondEmbedding(cond_dim, emb_dim, t_scale=t_scale)
        self.inp = nn.Linear(x_dim + emb_dim, hidden)
        self.blocks = nn.Sequential(*[_ResBlock(hidden, act, dropout) for _ in range(n_blocks)])
        self.out = nn.Sequential(_act(act), nn.Linear(hidden, x_dim))

    def forward(self, x, t, cond=None):
        return self.out(self.blocks(self.inp(torch.cat([x, self.emb(t, cond)], dim=-1))))


class _UBlock(nn.Module):
    """``act(LN(Linear(h) + proj(emb)))`` followed by a Linear, with a projected residual."""

    def __init__(self, d_in: int, d_out: int, emb_dim: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_out)
        self.emb = nn.Linear(emb_dim, d_out)
        self.norm = nn.LayerNorm(d_out)
        self.act = _act(act)
        self.fc2 = nn.Linear(d_out, d_out)
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()

    def forward(self, h, e):
        return self.skip(h) + self.fc2(self.act(self.norm(self.fc1(h) + self.emb(e))))


class MLPUNet(nn.Module):
    """MLP U-Net (QGPO's / GenerativeRL's TemporalSpatialResidualNet): down path 512->256->128, up path
    128->256->512 with skip concatenations; the time+condition embedding is added inside every block.

    Args:
        x_dim, cond_dim: as in :class:`MLP`. hidden: the down-path widths (default 512, 256, 128).
        emb_dim: size of the time/condition embedding.
    """

    def __init__(self, x_dim: int, cond_dim: int = 0, hidden=(512, 256, 128), emb_dim: int = 256, act: str = "silu",
                 t_scale: float = 30.0):
        super().__init__()
        hidden = tuple(hidden)
        self.emb = TimeCondEmbedding(cond_dim, emb_dim, t_scale=t_scale)
        self.inp = nn.Linear(x_dim, hidden[0])
        self.down = nn.ModuleList([_UBlock(hidden[i], hidden[i + 1], emb_dim, act) for i in range(len(hidden) - 1)])
        self.mid = _UBlock(hidden[-1], hidden[-1], emb_dim, act)
        self.up = nn.ModuleList([_UBlock(2 * hidden[i + 1], hidden[i], emb_dim, act)
                                 for i in reversed(range(len(hidden) - 1))])
        self.out = nn.Sequential(_act(act), nn.Linear(2 * hidden[0], x_dim))

    def forward(self, x, t, cond=None):
        e = self.emb(t, cond)
        h = self.inp(x)
        skips = [h]
        for blk in self.down:
            h = blk(h, e)
            skips.append(h)
        h = self.mid(h, e)
        for blk in self.up:
            h = blk(torch.cat([h, skips.pop()], dim=-1), e)
        return self.out(torch.cat([h, skips.pop()], dim=-1))


class _DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.n2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h, e):
        s1, b1, g1, s2, b2, g2 = self.ada(e)[:, None, :].chunk(6, dim=-1)
        a = self.n1(h) * (1 + s1) + b1
        h = h + g1 * self.attn(a, a, a, need_weights=False)[0]
        m = self.n2(h) * (1 + s2) + b2
        return h + g2 * self.mlp(m)


class DiT1d(nn.Module):
    """A small diffusion transformer for vectors: each entry of x is a token (value + position embedding),
    blocks use adaLN-Zero modulation from the time/condition embedding (Peebles & Xie 2023).

    Args:
        x_dim, cond_dim: as in :class:`MLP`. dim: token width. depth: blocks. heads: attention heads.
    """

    def __init__(self, x_dim: int, cond_dim: int = 0, dim: int = 64, depth: int = 2, heads: int = 4,
                 t_scale: float = 30.0):
        super().__init__()
        self.emb = TimeCondEmbedding(cond_dim, dim, t_scale=t_scale)
        self.tok = nn.Linear(1, dim)
        self.pos = nn.Parameter(torch.randn(x_dim, dim) * 0.02)
        self.blocks = nn.ModuleList([_DiTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, cond=None):
        e = self.emb(t, cond)
        h = self.tok(x[..., None]) + self.pos
        for blk in self.blocks:
            h = blk(h, e)
        s, b = self.ada(e)[:, None, :].chunk(2, dim=-1)
        return self.out(self.norm(h) * (1 + s) + b).squeeze(-1)


NETS = {"mlp": MLP, "resnet": ResNet, "unet": MLPUNet, "dit": DiT1d}
NetName = Literal[tuple(NETS)]


def make_net(name: str, x_dim: int, cond_dim: int = 0, **kwargs) -> nn.Module:
    """Build a network by name: ``mlp``, ``resnet``, ``unet`` (the paper's MLP U-Net) or ``dit``."""
    if name not in NETS:
        raise ValueError(f"unknown network {name!r}; expected one of {sorted(NETS)}")
    return NETS[name](x_dim, cond_dim, **kwargs)
