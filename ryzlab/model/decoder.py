"""A BitNet b1.58 decoder on the ternary kernels: the real architecture, timed op by op.

The block structure follows BitNet b1.58 2B-4T (Microsoft, 2025)::

    h = embed(token)                                   tied with the LM head
    per layer:
        a = RMSNorm(h)            -> int8 per token -> FUSED q|k|v ternary GEMV (one matrix)
        q, k = RoPE(q), RoPE(k)   (theta from the config, rotate-half convention, below)
        o = GQA attention over the float32 KV cache (preallocated to max_context)
        o = RMSNorm_sub(o)        -> int8 -> o ternary GEMV;          h = h + o
        f = RMSNorm(h)            -> int8 -> FUSED gate|up ternary GEMV
        f = relu(gate)**2 * up    (squared-ReLU gating)
        f = RMSNorm_sub(f)        -> int8 -> down ternary GEMV;       h = h + f
    logits = LM head(RMSNorm(h));  next token = argmax (greedy)

Numerics (what the kernels see is what a BitNet runtime feeds them):

* Ternary linears: weights in {-1, 0, +1}, packed once for one kernel; one absmean scale per
  linear (q, k, v, o, gate, up, down each have their own; the fused matrices carry one scale
  per row segment).  ``y = int32(W . x_q) * (w_scale / x_scale)`` in float32; the int32 result
  is exact and below 2**24, so its float32 conversion is exact too.
* Activations: per-token absmax int8 (:func:`ryzlab.quant.quantize_activations`).
* RMSNorm: ``x / sqrt(mean(x*x) + eps) * weight`` in float32, ``eps`` (and RoPE's theta)
  from the config: a checkpoint's own (``rms_norm_eps``, 1e-5 for 2B-4T); random weights are
  ones plus N(0, 0.02) noise from the seed.
* Between the GEMVs, RMSNorm + quantisation, dequantisation (+ residual), the squared-ReLU
  gate and RoPE are C steps (``kernels_c/decode_ops.c``) in the same float32 operation order
  as the numpy formulation kept by :class:`ReferenceModel`; only the RMSNorm sum of squares is
  accumulated differently (double in C), which can move an int8 activation by one, rarely.
  All the layers of a token (each layer's qkv, attention, o, gate|up and down, with their
  norms and epilogues) and the int8 or int4 LM head are one C call that keeps its OpenMP
  threads in one parallel region (``kernels_c/decode_steps.c``); the f32 head follows in numpy.
* RoPE, rotate-half (GPT-NeoX / Hugging Face Llama) convention: the head vector is split in
  halves ``x1 = x[:d/2]``, ``x2 = x[d/2:]``; with ``f_i = theta ** (-2i/d)`` and angle
  ``a_i = pos * f_i``: ``x1' = x1 cos a - x2 sin a``, ``x2' = x2 cos a + x1 sin a``.  (Not the
  interleaved pairs (x0, x1), (x2, x3) of the original RoFormer code.)  The cos/sin tables
  are computed in float64 once and stored as float32 (max_context x d/2).
* Attention: scores = q.k / sqrt(d), softmax in float32 (max subtracted), grouped-query:
  query head ``h`` reads KV head ``h // (heads / kv_heads)``.  The cache holds post-RoPE keys,
  as float32 (layers, kv_heads, max_context, head_dim) arrays allocated once.  RoPE, the cache
  write and attention (kernels_c/attention.c) run inside the token's region in decode, and as
  one ``ryz_rope_attention`` call per layer in prefill, parallel over KV heads and positions;
  the results do not depend on the thread count.
* Prefill (:meth:`Model.prefill`): the same layer as GEMMs over the prompt's T tokens (one
  :class:`PreparedGemm` per matrix shape, prepared once per T), the float steps row-batched in
  C (each row computed by the decode step's own functions), causal attention over the prompt;
  its logits equal T decode steps' up to the int32 GEMM results, which are exact: bit-identical
  in practice.

Weights come from a source: random ones drawn like trained ones (:class:`RandomWeights`,
:meth:`Model.generate`) or a checkpoint's; the LM head is a choice (:mod:`ryzlab.model.heads`).
The bitnet-3b and bitnet-large entries reuse the 2B-4T block structure (sub-norms, squared
ReLU, tied embeddings) at their published shapes: they are decode *shapes*, not re-creations
of those checkpoints' exact layers.

Timings: every :meth:`Model.step` adds to ``timings`` (seconds) in four categories:
``ternary_gemv`` (the GEMVs with their row-wise dequantisation, timed inside the C call from
the barrier that starts each to the one that ends it), ``attention`` (RoPE, the cache write,
scores, softmax and weighted sum, timed inside the same call), ``lm_head`` (the final norm
and the head: quantisation, GEMV and logit scaling, timed in the same call for the int8 and
int4 heads) and ``other`` (norms, quantisation, the
gates, barriers, the embedding row and Python overhead; the step's wall time minus the other
three, so the four add up to the step time).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core import native as _native
from ..core import validate
from ..core.kernels import resolve
from ..core.layer_ops import RopeAttention, dequant_rows, rmsnorm_quant_rows
from ..core.ops import DecodeChain, PackedWeights, PreparedGemm, default_threads, pack, workspace_bytes
from ..errors import RyzlabError
from .config import Config, get_config
from .ops import MIN_ABSMAX, blas_threads, check_token, rope_tables
from .reference import ReferenceModel
from .heads import make_head
from .weights import _MATRIX_IDS, RandomWeights, _segments

TIMING_CATEGORIES = ("ternary_gemv", "attention", "lm_head", "other")
#: Categories of :attr:`Model.prefill_timings` (seconds of the last prefill).
PREFILL_CATEGORIES = ("ternary_gemm", "attention", "lm_head", "other")


class _Linear:
    """One packed ternary matrix of a layer with its float32 row scales (M,) and the int32
    output buffer (M,) its GEMV writes."""

    def __init__(self, packed: PackedWeights, row_scales: np.ndarray):
        self.packed, self.row_scales = packed, row_scales
        self.y = np.empty(packed.M, dtype=np.int32)


def _row_scales(cfg: Config, name: str, scales: list[float]) -> np.ndarray:
    return np.concatenate([np.full(n, s, dtype=np.float32) for n, s in zip(_segments(cfg, name), scales)])




def _pick_token(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """argmax when ``temperature`` is 0, else a sample of softmax(logits / temperature) over
    the ``top_k`` largest logits (all when None)."""
    if temperature == 0.0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    idx = np.argpartition(z, -top_k)[-top_k:] if top_k is not None and top_k < z.size else np.arange(z.size)
    p = np.exp(z[idx] - z[idx].max())
    p /= p.sum()
    return int(idx[rng.choice(idx.size, p=p)])


class _ClassOrInstanceMethod:
    """A method that is one function on the class and another on an instance."""

    def __init__(self, on_class: classmethod, on_instance):
        self._on_class, self._on_instance = on_class, on_instance
        self.__doc__ = (f"On the class: {on_class.__func__.__doc__}\n\nOn a model: {on_instance.__doc__}")

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self._on_class.__get__(None, objtype)
        return self._on_instance.__get__(obj, objtype)


class Model:
    """A BitNet b1.58 decoder over packed ternary weights.  Build with :meth:`generate` (random
    weights) or :func:`ryzlab.load` (a checkpoint)."""

    def __init__(self, cfg: Config, kernel: str, max_context: int, seed: int):
        self.config, self.kernel, self.max_context, self.seed = cfg, kernel, max_context, seed
        self.pos = 0
        self.timings = dict.fromkeys(TIMING_CATEGORIES, 0.0)
        self.last_timings = dict.fromkeys(TIMING_CATEGORIES, 0.0)
        self.steps = 0
        self.generation_s = 0.0

    # ---- construction

    @classmethod
    def generate(cls, config: Config | str, seed: int = 0, kernel: str | None = None,
                 max_context: int = 2048, head: str = "int8") -> Model:
        """Random weights from ``seed`` (:class:`RandomWeights`), packed for ``kernel``."""
        return cls.build(RandomWeights(get_config(config), seed), kernel, max_context, head)

    @classmethod
    def build(cls, source, kernel: str | None = None, max_context: int = 2048, head: str = "int8") -> Model:
        """The decoder over the weights of ``source`` (:class:`RandomWeights` or a checkpoint's
        source), packed for ``kernel`` (default: dispatch's choice), with LM head ``head``
        (:data:`ryzlab.model.heads.HEADS`).

        Matrices are read and packed one at a time; only packed bytes are kept.  The KV
        cache (float32, layers x 2 x kv_heads x max_context x head_dim) is allocated here.
        """
        t0 = time.perf_counter()
        cfg = source.config
        max_context = validate.positive_int(max_context, "max_context")
        k = resolve(kernel)
        self = cls(cfg, k.name, max_context, getattr(source, "seed", None))
        self.source_description = source.description

        # The head first: its unpacked copy is the largest temporary, so it comes and goes
        # before the ternary weights accumulate (keeps the peak RSS down).
        self.head = make_head(head, source)
        self._embedding_row = source.embedding_row or self.head.embedding_row

        ws_bytes = max(workspace_bytes(k, m, 1, kk) for m, kk in cfg.linear_shapes().values())
        self._ws = np.zeros(ws_bytes, dtype=np.uint8)
        self._xh = np.zeros(cfg.hidden, np.int8)  # quantised activations, K = hidden
        self._xq = np.zeros(cfg.q_out, np.int8) if cfg.q_out != cfg.hidden else self._xh
        self._xf = np.zeros(cfg.ffn, np.int8)  # K = ffn
        # float32 buffers of a step, read and written by the C chains (DecodeChain)
        self._h = np.zeros(cfg.hidden, np.float32)  # the residual stream
        self._qkv = np.zeros(cfg.q_out + 2 * cfg.kv_out, np.float32)
        self._a = np.zeros(cfg.q_out, np.float32)  # attention output
        self._f = np.zeros(cfg.ffn, np.float32)  # gated FFN activation
        self._seconds = _native.ffi.new("double[4]")

        self.layers = []
        for layer in range(cfg.layers):
            L: dict = {}
            for name, w, wscales in source.layer_linears(layer):
                packed = pack(w, k.name)
                del w
                L[name] = _Linear(packed, _row_scales(cfg, name, wscales))
            L.update(source.layer_norms(layer))
            self.layers.append(L)
        self.final_norm = source.final_norm()
        shape = (cfg.layers, cfg.kv_heads, max_context, cfg.head_dim)
        self.k_cache = np.zeros(shape, dtype=np.float32)
        self.v_cache = np.zeros(shape, dtype=np.float32)
        self.cos, self.sin = rope_tables(cfg, max_context)
        attention = [RopeAttention(self._qkv, self.k_cache[li], self.v_cache[li], self.cos, self.sin, self._a,
                                   cfg.heads) for li in range(cfg.layers)]

        # A token as one C call: per layer qkv, attention + o, gate|up, down.
        def step(x, norm, xq, lin, out, epilogue, attn=None):
            return (x, norm, xq, lin.packed, lin.y, lin.row_scales, out, epilogue, attn)

        steps = []
        for L, attn in zip(self.layers, attention):
            steps += [step(self._h, L["attn_norm"], self._xh, L["qkv"], self._qkv, "store"),
                      step(self._a, L["attn_sub_norm"], self._xq, L["o"], self._h, "accumulate", attn),
                      step(self._h, L["ffn_norm"], self._xh, L["gate_up"], self._f, "sqrelu_gate"),
                      step(self._f, L["ffn_sub_norm"], self._xf, L["down"], self._h, "accumulate")]
        # the int8 and int4 heads end the same call; the f32 head is numpy's
        self._logits = np.empty(cfg.vocab, np.float32)
        self._logits_ptr = _native.ptr(self._logits, "float")
        fused = getattr(self.head, "decode_struct", None)
        self._token = DecodeChain(steps, self._ws, fused(self._h, self.final_norm, self._logits) if fused else None)
        self._prefill_state = None  # (T, threads) and the buffers of the last prefill
        self.prefill_timings = dict.fromkeys(PREFILL_CATEGORIES, 0.0)
        self.generation_s = time.perf_counter() - t0
        return self

    @classmethod
    def reference(cls, config: Config | str, seed: int = 0, max_context: int = 2048) -> ReferenceModel:
        """The same quantised model (same seed, same weights) as plain numpy with dense
        weights, for tests.  Refused for models above :data:`REFERENCE_MAX_WEIGHTS`."""
        return ReferenceModel(get_config(config), seed, max_context)

    # ---- state

    def reset(self) -> None:
        """Forget the context (position 0).  The cache memory is kept, not cleared."""
        self.pos = 0

    def reset_timings(self) -> None:
        self.timings = dict.fromkeys(TIMING_CATEGORIES, 0.0)
        self.last_timings = dict.fromkeys(TIMING_CATEGORIES, 0.0)
        self.steps = 0

    def prefill_synthetic(self, context: int, seed: int = 0) -> None:
        """Fill positions [0, context) of the KV cache with random N(0, 1) float32 keys and
        values and set the position to ``context``, without running ``context`` forward
        passes.  Decode time at context C depends on C (bytes read, softmax length), not on
        the cached values, so this times decode at any context cheaply; the tokens it then
        produces are not those a real prompt would give."""
        context = int(context)
        if not 0 <= context < self.max_context:
            raise ValueError(f"context must be in [0, {self.max_context}) (max_context), got {context}")
        rng = np.random.default_rng([seed, 7])
        for cache in (self.k_cache, self.v_cache):
            for layer in range(self.config.layers):
                for head in range(self.config.kv_heads):  # contiguous (context, head_dim) blocks
                    rng.standard_normal(out=cache[layer, head, :context, :], dtype=np.float32)
        self.pos = context

    # ---- accounting

    @property
    def ternary_bytes(self) -> int:
        """Packed ternary weight bytes streamed per token (padding included)."""
        return sum(L[n].packed.nbytes for L in self.layers for n in _MATRIX_IDS)

    def bytes_per_token(self) -> dict[str, int]:
        """Bytes the next decode step streams, by source.

        ``ternary``: all packed ternary matrices (each is read once per token);
        ``head``: the packed int8 head and its row scales (:attr:`Int8Head.nbytes`);
        ``kv``: float32 keys and values the next step reads, at positions [0, pos] (the
        cached context plus the token's own); ``total``: their sum.  Left out, as < 0.1 %:
        the embedding row, norm weights, RoPE rows and activations.
        """
        kv = self.config.kv_bytes_per_position() * (self.pos + 1)
        d = {"ternary": self.ternary_bytes, "head": self.head.nbytes, "kv": kv}
        d["total"] = sum(d.values())
        return d

    # ---- decode

    def step(self, token: int, threads: int = 1) -> np.ndarray:
        """One decode step at position ``pos``: float32 logits (vocab,); ``pos`` advances.

        The ternary GEMVs, attention and the head use ``threads`` OpenMP threads; numpy's BLAS
        (the f32 head) is held to one thread (:func:`blas_threads`)."""
        return self._step(token, threads, time.perf_counter())

    def _step(self, token: int, threads: int, t_start: float) -> np.ndarray:
        cfg = self.config
        token = check_token(token, cfg.vocab)
        threads = validate.threads(threads)
        pos = self.pos
        if pos >= self.max_context:
            raise RyzlabError(f"context is full: position {pos} = max_context {self.max_context}; "
                              "call reset() or generate the model with a larger max_context")
        perf = time.perf_counter
        seconds = self._seconds
        seconds[0] = seconds[1] = seconds[2] = seconds[3] = 0.0
        self._h[:] = self._embedding_row(token)
        head = self._token.head
        if head:
            # The caller keeps the logits: the head writes them into a new array rather than into
            # the model's buffer, which a copy would read back cold (~70 us of a 20 ms token).
            logits = np.empty_like(self._logits)
            head.logits = _native.ptr(logits, "float")
        try:
            self._token.run(pos, cfg.norm_eps, MIN_ABSMAX, threads, seconds)
        finally:
            if head:
                head.logits = self._logits_ptr
        t_gemv, t_attn, t_head = seconds[0], seconds[1], seconds[2]
        if not head:
            t = perf()
            # only this head calls BLAS; entering the limit costs ~0.1 ms, so the C heads skip it
            with blas_threads(1):
                logits = self.head.logits(self._h, self.final_norm, cfg.norm_eps, threads)
            t_head = perf() - t

        self.pos = pos + 1
        total = perf() - t_start
        last = {"ternary_gemv": t_gemv, "attention": t_attn, "lm_head": t_head,
                "other": total - t_gemv - t_attn - t_head}
        for c, v in last.items():
            self.timings[c] += v
        self.last_timings = last
        self.steps += 1
        return logits

    def generate_tokens(self, prompt: list[int], n: int, threads: int = 1) -> list[int]:
        """Greedy decoding: feed ``prompt`` one token per step from the current position, then
        return the ``n`` tokens argmax picks (each fed back except the last)."""
        if not isinstance(prompt, (list, tuple)) or not prompt:
            raise ValueError("prompt must be a non-empty list of token ids")
        n = validate.positive_int(n, "n")
        prompt = [check_token(t, self.config.vocab) for t in prompt]
        need = len(prompt) + n - 1
        if self.pos + need > self.max_context:
            raise RyzlabError(f"{len(prompt)} prompt tokens + {n} new ones need {need} positions from "
                              f"position {self.pos}, beyond max_context {self.max_context}")
        for t in prompt[:-1]:
            self.step(t, threads)
        out, tok = [], prompt[-1]
        for i in range(n):
            tok = int(np.argmax(self.step(tok, threads)))
            out.append(tok)
        return out


    # ---- prefill

    def _prefill_buffers(self, T: int, threads: int) -> dict:
        """GEMMs prepared for T tokens (one per matrix shape, shared by the layers) and the
        float and int8 buffers of T rows; kept for the next prefill of the same T and threads."""
        key = (T, threads)
        if self._prefill_state is not None and self._prefill_state["key"] == key:
            return self._prefill_state
        self._prefill_state = None  # drop the old buffers before allocating new ones
        cfg, L0 = self.config, self.layers[0]
        b = {"key": key}
        b["gemm"] = {name: PreparedGemm(L0[name].packed, T, threads) for name in ("qkv", "o", "gate_up", "down")}
        b["h"] = np.zeros((T, cfg.hidden), np.float32)
        b["qkv"] = np.zeros((T, cfg.q_out + 2 * cfg.kv_out), np.float32)
        b["a"] = np.zeros((T, cfg.q_out), np.float32)
        b["f"] = np.zeros((T, cfg.ffn), np.float32)
        b["xh"] = np.zeros((T, cfg.hidden), np.int8)
        b["xq"] = np.zeros((T, cfg.q_out), np.int8)
        b["xf"] = np.zeros((T, cfg.ffn), np.int8)
        b["xs"] = np.zeros(T, np.float32)
        b["attention"] = [RopeAttention(b["qkv"], self.k_cache[li], self.v_cache[li], self.cos, self.sin, b["a"],
                                        cfg.heads) for li in range(cfg.layers)]
        self._prefill_state = b
        return b

    def prefill(self, token_ids, threads: int | None = None, return_all: bool = False) -> np.ndarray:
        """Run the prompt ``token_ids`` (T >= 1 ids) from the current position through every
        layer as GEMMs (N = T), fill the KV cache at positions pos .. pos+T-1 and advance
        ``pos`` by T, as T calls of :meth:`step` would.

        Returns the float32 logits (vocab,) of the last position, or with ``return_all`` those
        of every position (T, vocab).  Per token: the activations are quantised to int8 by
        per-token absmax after each RMSNorm, exactly as a decode step does; attention is causal
        (token t attends to positions [0, pos + t]).  ``threads``: OpenMP threads (default:
        physical cores).  Seconds by part of the last call: :attr:`prefill_timings`."""
        t_start = time.perf_counter()
        cfg = self.config
        if isinstance(token_ids, np.ndarray):
            token_ids = token_ids.tolist()
        if not isinstance(token_ids, (list, tuple)) or not token_ids:
            raise ValueError("token_ids must be a non-empty list of token ids")
        tokens = [check_token(t, cfg.vocab) for t in token_ids]
        threads = default_threads() if threads is None else validate.threads(threads)
        T, p0 = len(tokens), self.pos
        if p0 + T > self.max_context:
            raise RyzlabError(f"{T} prompt tokens from position {p0} exceed max_context {self.max_context}; "
                              "call reset() or generate the model with a larger max_context")
        with blas_threads(1):
            return self._prefill(tokens, threads, return_all, t_start)

    def _prefill(self, tokens: list[int], threads: int, return_all: bool, t_start: float) -> np.ndarray:
        cfg, eps, perf = self.config, self.config.norm_eps, time.perf_counter
        T, p0 = len(tokens), self.pos
        b = self._prefill_buffers(T, threads)
        G, h, qkv, a, f, xs = b["gemm"], b["h"], b["qkv"], b["a"], b["f"], b["xs"]
        t_gemm = t_attn = 0.0

        def linear(x, norm, xq, name, L, out, epilogue):
            nonlocal t_gemm
            rmsnorm_quant_rows(x, norm, eps, MIN_ABSMAX, xq, xs, threads)
            t = perf()
            y = G[name](xq, weights=L[name].packed)
            t_gemm += perf() - t
            dequant_rows(y, L[name].row_scales, xs, out, epilogue, threads)

        for i, tok in enumerate(tokens):
            h[i] = self._embedding_row(tok)
        for li, L in enumerate(self.layers):
            linear(h, L["attn_norm"], b["xh"], "qkv", L, qkv, "store")
            t = perf()
            b["attention"][li](T, p0, threads)
            t_attn += perf() - t
            linear(a, L["attn_sub_norm"], b["xq"], "o", L, h, "accumulate")
            linear(h, L["ffn_norm"], b["xh"], "gate_up", L, f, "sqrelu_gate")
            linear(f, L["ffn_sub_norm"], b["xf"], "down", L, h, "accumulate")
        self.pos = p0 + T

        t = perf()
        if return_all:
            logits = np.stack([self.head.logits(h[i], self.final_norm, eps, threads) for i in range(T)])
        else:
            logits = self.head.logits(h[T - 1], self.final_norm, eps, threads)
        t_head = perf() - t
        total = perf() - t_start
        self.prefill_timings = {"ternary_gemm": t_gemm, "attention": t_attn, "lm_head": t_head,
                                "other": total - t_gemm - t_attn - t_head}
        return logits

    # ---- the model API (ryzlab.load): whole sequences from position 0

    def _api_threads(self, threads: int | None) -> int:
        if threads is None:
            threads = getattr(self, "default_threads", None)
        if threads is None:
            from ..core.topology import physical_cores

            threads = min(physical_cores(), validate.max_threads())
        return validate.threads(threads)

    def _token_ids(self, token_ids) -> list[int]:
        if isinstance(token_ids, np.ndarray):
            if token_ids.ndim != 1:
                raise ValueError(f"token_ids must be 1-D, got shape {token_ids.shape}")
            token_ids = token_ids.tolist()
        if not isinstance(token_ids, (list, tuple)) or not token_ids:
            raise ValueError("token_ids must be a non-empty sequence of token ids")
        ids = [check_token(t, self.config.vocab) for t in token_ids]
        return ids

    def forward(self, token_ids, threads: int | None = None) -> np.ndarray:
        """float32 logits (T, vocab) at every position of ``token_ids`` (T ids), from position 0:
        the cache is reset first and holds the sequence afterwards (``pos`` = T).  Runs
        :meth:`prefill` (GEMMs over the whole sequence), whose logits equal those of one
        :meth:`step` per token."""
        ids = self._token_ids(token_ids)
        threads = self._api_threads(threads)
        if len(ids) > self.max_context:
            raise RyzlabError(f"{len(ids)} tokens exceed max_context {self.max_context}")
        self.reset()
        return self.prefill(ids, threads, return_all=True)

    def _generate_ids(self, token_ids, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
                      seed: int | None = None, threads: int | None = None, stream: bool = False):
        """``max_new_tokens`` new token ids after the prompt ``token_ids``, from position 0.

        Greedy (argmax) by default; ``temperature`` > 0 samples from softmax(logits /
        temperature), restricted to the ``top_k`` most likely tokens when given, with
        ``numpy.random.default_rng(seed)``.  Returns the list of new ids, or with
        ``stream=True`` an iterator that yields each id as soon as it is chosen.  Each new id
        except the last is fed back.  Afterwards ``last_generation`` holds the prompt and
        decode timings (``prompt_tokens``, ``prompt_s``, ``decode_steps``, ``decode_s``,
        ``new_tokens``): pp tok/s = prompt_tokens / prompt_s, tg tok/s = decode_steps / decode_s.
        """
        ids = self._token_ids(token_ids)
        n = validate.positive_int(max_new_tokens, "max_new_tokens")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
                or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if top_k is not None:
            top_k = min(validate.positive_int(top_k, "top_k"), self.config.vocab)
        threads = self._api_threads(threads)
        need = len(ids) + n - 1
        if need > self.max_context:
            raise RyzlabError(f"{len(ids)} prompt tokens + {n} new ones need {need} positions, beyond "
                              f"max_context {self.max_context}")
        it = self._generate_iter(ids, n, float(temperature), top_k, np.random.default_rng(seed), threads)
        return it if stream else list(it)

    def _generate_iter(self, ids, n, temperature, top_k, rng, threads):
        perf = time.perf_counter
        stats = {"prompt_tokens": len(ids), "prompt_s": 0.0, "new_tokens": 0, "decode_steps": 0, "decode_s": 0.0}
        self.last_generation = stats
        self.reset()
        t = perf()
        logits = self.prefill(ids, threads)
        stats["prompt_s"] = perf() - t
        for i in range(n):
            tok = _pick_token(logits, temperature, top_k, rng)
            stats["new_tokens"] += 1
            yield tok
            if i + 1 < n:
                t = perf()
                logits = self.step(tok, threads)
                stats["decode_s"] += perf() - t
                stats["decode_steps"] += 1

    # ``Model.generate(shape, seed=...)`` builds a random model; ``model.generate(ids, n)`` generates.
    generate = _ClassOrInstanceMethod(generate, _generate_ids)
