"""Random BitNet b1.58 weights drawn like trained ones, deterministic per seed.

A Gaussian matrix ternarised by absmean has P(0) = P(|z| < 0.5 * sqrt(2/pi)) = 0.310 and
P(+1) = P(-1) = 0.345.  Here one random byte ``b`` per weight is mapped through a 256-entry
table (computed as two comparisons, which is the same map and ~10x faster than ``np.take``
with its int64 index conversion): ``b < 80 -> 0``, ``80 <= b < 168 -> +1``, ``b >= 168 ->
-1``: P(0) = 80/256 = 0.3125 and P(+1) = P(-1) = 88/256 = 0.34375.  Weight scales are
``sqrt(2/pi) / sqrt(K)`` (the absmean of N(0, 1/K) weights) times U(0.9, 1.1).  The int8 head
has uniform rows in [-127, 127] with per-row scales ``U(0.75, 1.25) * 4 / (127 sqrt(hidden))``
(logits of a few units).  ``RandomWeights(..., head_rows="embedding")`` draws the head instead
like a trained embedding, for measuring quantised heads (:func:`_embedding_head_rows`).  Norm weights are ones plus N(0, 0.02) noise.  Every matrix has its
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


#: Rows per block of the embedding-like head: each block has its own random stream, so the rows
#: can be drawn (and quantised) block by block.
HEAD_BLOCK_ROWS = 4096


def _embedding_head_rows(cfg: Config, seed: int, block: int) -> np.ndarray:
    """Rows [block * HEAD_BLOCK_ROWS, ...) of a head drawn like a trained embedding, float32.

    ``w[m, k] = z * r[m] * c[k]`` with z ~ N(0, 1); per-row scales ``r = 2.5 / sqrt(hidden) *
    exp(0.3 N(0, 1))`` (rows differ in norm, as token embeddings do; logits of a few units) and
    per-channel scales ``c = exp(0.25 N(0, 1))`` with 1 % of the channels times 4 (the outlier
    dimensions of trained embeddings), shared by all rows.  A model of a trained embedding's
    shape, not measured from a checkpoint: it puts the within-group spread that a group
    quantiser sees (Gaussian tails, outlier channels, unequal row norms) into the head, unlike
    the uniform rows of the default head, whose groups quantise unrealistically well in int8 and
    unrealistically badly in int4."""
    crng = _rng(seed, 4)
    c = np.exp(0.25 * crng.standard_normal(cfg.hidden))
    c[crng.choice(cfg.hidden, max(1, cfg.hidden // 100), replace=False)] *= 4.0
    m0 = block * HEAD_BLOCK_ROWS
    rows = min(HEAD_BLOCK_ROWS, cfg.vocab - m0)
    rng = _rng(seed, 5, block)
    r = 2.5 / math.sqrt(cfg.hidden) * np.exp(0.3 * rng.standard_normal(rows))
    z = rng.standard_normal((rows, cfg.hidden), dtype=np.float32)
    z *= r.astype(np.float32)[:, None]
    z *= c.astype(np.float32)[None, :]
    return z


def _final_norm_weight(cfg: Config, seed: int) -> np.ndarray:
    return _norm_weight(_rng(seed, 3), cfg.hidden)


#: Head kinds of :class:`RandomWeights` (``head_rows``).
HEAD_ROWS = ("uniform", "embedding")

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
      LM head, and ``head_f32_chunks()`` (optional): the float32 rows in order, a block at a
      time (multiples of 16 rows but the last), for quantising a head without the whole float
      matrix; ``embedding_row``: a function token -> float32 row, or None when the embedding
      is the head's own rows (tied, and exact in the head's representation).

    ``head_rows``: ``"uniform"`` (default: uniform int8 rows with per-row scales, the int8 head
    is exact) or ``"embedding"`` (float rows drawn like a trained embedding, see
    :func:`_embedding_head_rows`; its int8 head is the per-row absmax quantisation).
    """

    embedding_row = None

    def __init__(self, config: Config, seed: int = 0, head_rows: str = "uniform"):
        if head_rows not in HEAD_ROWS:
            raise ValueError(f"head_rows must be one of {', '.join(HEAD_ROWS)}, got {head_rows!r}")
        self.config, self.seed, self.head_rows = config, seed, head_rows
        self.description = f"random weights (seed {seed})" + ("" if head_rows == "uniform" else f", {head_rows}-like head")

    def layer_linears(self, layer: int):
        return _layer_weights(self.config, self.seed, layer)

    def layer_norms(self, layer: int) -> dict[str, np.ndarray]:
        return _norm_weights(self.config, self.seed, layer)

    def final_norm(self) -> np.ndarray:
        return _final_norm_weight(self.config, self.seed)

    def head_int8(self) -> tuple[np.ndarray, np.ndarray]:
        """The head as int8 rows and per-row scales: as drawn (uniform: this is the exact head)
        or the per-row absmax quantisation of the embedding-like rows."""
        if self.head_rows == "uniform":
            return _head_weights(self.config, self.seed)
        from ..core.head import quantize_rows

        parts = [quantize_rows(w) for w in self.head_f32_chunks()]
        return np.concatenate([q for q, _ in parts]), np.concatenate([s for _, s in parts])

    def head_f32(self) -> np.ndarray:
        """The same head as float32 (uniform: ``q * scale`` row by row, exact)."""
        out = np.empty((self.config.vocab, self.config.hidden), np.float32)
        m0 = 0
        for w in self.head_f32_chunks():  # filled in place: no second copy of the matrix
            out[m0:m0 + w.shape[0]] = w
            m0 += w.shape[0]
        return out

    def head_f32_chunks(self):
        """The float32 head rows in order, :data:`HEAD_BLOCK_ROWS` at a time.  Uniform rows are
        drawn whole as int8 first (1 byte per weight), embedding-like ones block by block."""
        cfg = self.config
        if self.head_rows == "uniform":
            q, scales = _head_weights(cfg, self.seed)
            for m0 in range(0, cfg.vocab, HEAD_BLOCK_ROWS):
                yield q[m0:m0 + HEAD_BLOCK_ROWS].astype(np.float32) * scales[m0:m0 + HEAD_BLOCK_ROWS, None]
        else:
            for block in range(-(-cfg.vocab // HEAD_BLOCK_ROWS)):
                yield _embedding_head_rows(cfg, self.seed, block)
