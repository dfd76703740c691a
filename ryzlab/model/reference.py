"""A float numpy twin of the decoder with the same weights, for tests."""

from __future__ import annotations

import math

import numpy as np

from ..core import quant
from ..errors import RyzlabError
from .config import Config
from .ops import check_token, rmsnorm
from .weights import _SEGMENTS, _final_norm_weight, _head_weights, _layer_weights, _norm_weights, _segments

#: Largest model (in ternary weights) :class:`ReferenceModel` keeps dense.
REFERENCE_MAX_WEIGHTS = 20_000_000


class ReferenceModel:
    """Float numpy twin of :class:`Model` with the same weights (dense, unfused), for tests.

    Integer products are float64 matmuls of the same int8 activations (exact); the float ops
    are the same (RMSNorm, per-token absmax quantisation via ryzlab.quant, float32 scaling),
    written independently where that checks something: q, k, v, gate and up are separate
    matrices, RoPE angles are computed on the fly in float64, attention loops over query
    heads against a cache that grows by concatenation, the embedding comes from the dense
    int8 head.
    """

    def __init__(self, cfg: Config, seed: int = 0, max_context: int = 2048):
        if cfg.ternary_weights > REFERENCE_MAX_WEIGHTS:
            raise ValueError(
                f"the float reference keeps dense weights and is meant for small models: {cfg.name} has "
                f"{cfg.ternary_weights:,} ternary weights (limit {REFERENCE_MAX_WEIGHTS:,}); use 'tiny'"
            )
        self._quantize = quant.quantize_activations
        self.config, self.seed, self.max_context = cfg, seed, max_context
        self.head_q, self.head_scales = _head_weights(cfg, seed)
        self.layers = []
        for layer in range(cfg.layers):
            L: dict = {}
            for name, w, scales in _layer_weights(cfg, seed, layer):
                start = 0
                for seg, n, s in zip(_SEGMENTS[name], _segments(cfg, name), scales):
                    L[seg] = (w[start:start + n].astype(np.float64), np.float32(s))
                    start += n
            L.update(_norm_weights(cfg, seed, layer))
            L["keys"] = np.zeros((0, cfg.kv_heads, cfg.head_dim), np.float32)
            L["values"] = np.zeros((0, cfg.kv_heads, cfg.head_dim), np.float32)
            self.layers.append(L)
        self.final_norm = _final_norm_weight(cfg, seed)
        self.pos = 0

    def _linear(self, w_s, x_q: np.ndarray, x_scale: np.float32) -> np.ndarray:
        w, s = w_s
        y = w @ x_q.astype(np.float64)  # exact integers
        return y.astype(np.float32) * (s / x_scale)

    def _rope(self, x: np.ndarray, pos: int) -> np.ndarray:
        d = x.shape[-1]
        i = np.arange(d // 2, dtype=np.float64)
        ang = pos * self.config.rope_theta ** (-2.0 * i / d)
        c, s = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        x1, x2 = x[:, : d // 2], x[:, d // 2:]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)

    def step(self, token: int, threads: int = 1) -> np.ndarray:
        cfg, eps = self.config, self.config.norm_eps
        token = check_token(token, cfg.vocab)
        if self.pos >= self.max_context:
            raise RyzlabError(f"context is full: position {self.pos} = max_context {self.max_context}")
        h = self.head_q[token].astype(np.float32) * self.head_scales[token]
        for L in self.layers:
            xq, xs = self._quantize(rmsnorm(h, L["attn_norm"], eps))
            q = self._rope(self._linear(L["q"], xq, xs).reshape(cfg.heads, cfg.head_dim), self.pos)
            k = self._rope(self._linear(L["k"], xq, xs).reshape(cfg.kv_heads, cfg.head_dim), self.pos)
            v = self._linear(L["v"], xq, xs).reshape(cfg.kv_heads, cfg.head_dim)
            L["keys"] = np.concatenate([L["keys"], k[None]])
            L["values"] = np.concatenate([L["values"], v[None]])
            heads = []
            for hq in range(cfg.heads):
                kv = hq // cfg.group
                s = (L["keys"][:, kv, :] @ q[hq]) * np.float32(1.0 / math.sqrt(cfg.head_dim))
                p = np.exp(s - s.max())
                p /= p.sum()
                heads.append(p @ L["values"][:, kv, :])
            a = np.concatenate(heads)
            xq, xs = self._quantize(rmsnorm(a, L["attn_sub_norm"], eps))
            h = h + self._linear(L["o"], xq, xs)
            xq, xs = self._quantize(rmsnorm(h, L["ffn_norm"], eps))
            gate, up = self._linear(L["gate"], xq, xs), self._linear(L["up"], xq, xs)
            f = np.maximum(gate, 0) ** 2 * up
            xq, xs = self._quantize(rmsnorm(f, L["ffn_sub_norm"], eps))
            h = h + self._linear(L["down"], xq, xs)
        xq, xs = self._quantize(rmsnorm(h, self.final_norm, eps))
        logits = (self.head_q.astype(np.float64) @ xq.astype(np.float64)).astype(np.float32)
        self.pos += 1
        return logits * (self.head_scales / xs)

    def generate_tokens(self, prompt: list[int], n: int, threads: int = 1) -> list[int]:
        for t in prompt[:-1]:
            self.step(t)
        out, tok = [], prompt[-1]
        for _ in range(n):
            tok = int(np.argmax(self.step(tok)))
            out.append(tok)
        return out
