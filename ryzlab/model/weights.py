"""Random BitNet b1.58 weights drawn like trained ones, deterministic per seed.

A Gaussian matrix ternarised by absmean has P(0) = P(|z| < 0.5 * sqrt(2/pi)) = 0.310 and
P(+1) = P(-1) = 0.345.  Here one random byte ``b`` per weight is mapped through a 256-entry
table (computed as two comparisons, which is the same map and ~10x faster than ``np.take``
with its int64 index conversion): ``b < 80 -> 0``, ``80 <= b < 168 -> +1``, ``b >= 168 ->
-1``: P(0) = 80/256 = 0.3125 and P(+1) = P(-1) = 88/256 = 0.34375.  Weight scales are
``sqrt(2/pi) / sqrt(K)`` (the absmean of N(0, 1/K) weights) times U(0.9, 1.1).  The int8 head
has uniform rows in [-127, 127] with per-row scales ``U(0.75, 1.25) * 4 / (127 sqrt(hidden))``
(logits of a few units).  Norm weights are ones plus N(0, 0.02) noise.  Every matrix has its
own random stream, so the weights do not depend on generation order.
"""

from __future__ import annotations

import math

import numpy as np

from .config import Config

#: Random byte thresholds of the ternary weight map (see the module docstring).
_ZERO_BELOW, _PLUS_BELOW = 80, 168
#: Ternary weight probabilities of that map: P(-1), P(0), P(+1).
TERNARY_PROBABILITIES = {-1: (256 - _PLUS_BELOW) / 256, 0: _ZERO_BELOW / 256, 1: (_PLUS_BELOW - _ZERO_BELOW) / 256}

def _rng(seed: int, *path: int) -> np.random.Generator:
    # One independent stream per matrix: the weights do not depend on generation order.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *path])))


def random_ternary(rng: np.random.Generator, M: int, K: int) -> np.ndarray:
    """Random int8 (M, K) ternary weights with :data:`TERNARY_PROBABILITIES`."""
    n = M * K
    b = rng.bit_generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
    # 256-entry table as arithmetic: 2*(b < 168) - (b < 80) - 1  ->  0 / +1 / -1.
    w = np.less(b, _PLUS_BELOW).view(np.int8) * np.int8(2)
    w -= np.less(b, _ZERO_BELOW).view(np.int8)
    w -= np.int8(1)
    return w.reshape(M, K)


def _weight_scale(rng: np.random.Generator, K: int) -> float:
    return float(math.sqrt(2 / math.pi) / math.sqrt(K) * rng.uniform(0.9, 1.1))


def _norm_weight(rng: np.random.Generator, n: int) -> np.ndarray:
    return (1.0 + 0.02 * rng.standard_normal(n)).astype(np.float32)


_MATRIX_IDS = {"qkv": 0, "o": 1, "gate_up": 2, "down": 3}
_SEGMENTS = {"qkv": ("q", "k", "v"), "o": ("o",), "gate_up": ("gate", "up"), "down": ("down",)}


def _segments(cfg: Config, name: str) -> list[int]:
    return {"qkv": [cfg.q_out, cfg.kv_out, cfg.kv_out], "o": [cfg.hidden],
            "gate_up": [cfg.ffn, cfg.ffn], "down": [cfg.hidden]}[name]


def _layer_weights(cfg: Config, seed: int, layer: int):
    """Yield (name, int8 matrix, per-segment scales) for one layer, then the norm weights."""
    for name, (M, K) in cfg.linear_shapes().items():
        rng = _rng(seed, 1, layer, _MATRIX_IDS[name])
        w = random_ternary(rng, M, K)
        scales = [_weight_scale(rng, K) for _ in _SEGMENTS[name]]
        yield name, w, scales


def _norm_weights(cfg: Config, seed: int, layer: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, 2, layer)
    return {"attn_norm": _norm_weight(rng, cfg.hidden), "attn_sub_norm": _norm_weight(rng, cfg.q_out),
            "ffn_norm": _norm_weight(rng, cfg.hidden), "ffn_sub_norm": _norm_weight(rng, cfg.ffn)}


def _head_weights(cfg: Config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed, 0)
    n = cfg.vocab * cfg.hidden
    q = rng.bit_generator.random_raw((n + 7) // 8).view(np.int8)[:n].reshape(cfg.vocab, cfg.hidden)
    np.maximum(q, np.int8(-127), out=q)  # symmetric range, as head.quantize_rows
    scales = (rng.uniform(0.75, 1.25, cfg.vocab) * 4.0 / (127.0 * math.sqrt(cfg.hidden))).astype(np.float32)
    return q, scales


def _final_norm_weight(cfg: Config, seed: int) -> np.ndarray:
    return _norm_weight(_rng(seed, 3), cfg.hidden)


#: The ternary matrices of a layer as the decoder fuses them: name -> the checkpoint's parts.
FUSED = _SEGMENTS


class RandomWeights:
    """The weight source of a random model: everything the decoder needs, drawn from ``seed``.

    Every weight source (this one, and a checkpoint's for ``ryzlab.load``) offers the same
    calls, so the decoder is built the same way from either:

    * ``layer_linears(i)``: yields ``(name, int8 (M, K) fused ternary matrix, [scale per part])``
      for ``qkv``, ``o``, ``gate_up``, ``down`` (parts in :data:`FUSED`; ``W_float = scale * W``);
    * ``layer_norms(i)``: float32 ``attn_norm``, ``attn_sub_norm``, ``ffn_norm``, ``ffn_sub_norm``;
    * ``final_norm()``; ``head_int8()`` (int8 rows, float32 row scales) and ``head_f32()`` of the
      LM head; ``embedding_row``: a function token -> float32 row, or None when the embedding
      is the head's own rows (tied, and exact in the head's representation).
    """

    embedding_row = None

    def __init__(self, config: Config, seed: int = 0):
        self.config, self.seed = config, seed
        self.description = f"random weights (seed {seed})"

    def layer_linears(self, layer: int):
        return _layer_weights(self.config, self.seed, layer)

    def layer_norms(self, layer: int) -> dict[str, np.ndarray]:
        return _norm_weights(self.config, self.seed, layer)

    def final_norm(self) -> np.ndarray:
        return _final_norm_weight(self.config, self.seed)

    def head_int8(self) -> tuple[np.ndarray, np.ndarray]:
        """The head as drawn: uniform int8 rows and per-row scales (this is the exact head)."""
        return _head_weights(self.config, self.seed)

    def head_f32(self) -> np.ndarray:
        """The same head as float32, ``q * scale`` row by row (exact: int8 times one float32)."""
        q, scales = _head_weights(self.config, self.seed)
        return q.astype(np.float32) * scales[:, None]
