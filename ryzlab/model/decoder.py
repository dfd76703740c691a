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
  Everything between two attentions (o, gate|up, down and the next layer's qkv, with their
  norms and epilogues) is one C call that keeps its OpenMP threads in one parallel region
  (``kernels_c/decode_steps.c``): 31 calls per 2B-4T token instead of 120 GEMV calls.
* RoPE, rotate-half (GPT-NeoX / Hugging Face Llama) convention: the head vector is split in
  halves ``x1 = x[:d/2]``, ``x2 = x[d/2:]``; with ``f_i = theta ** (-2i/d)`` and angle
  ``a_i = pos * f_i``: ``x1' = x1 cos a - x2 sin a``, ``x2' = x2 cos a + x1 sin a``.  (Not the
  interleaved pairs (x0, x1), (x2, x3) of the original RoFormer code.)  The cos/sin tables
  are computed in float64 once and stored as float32 (max_context x d/2).
* Attention: scores = q.k / sqrt(d), softmax in float32 (max subtracted), grouped-query:
  query head ``h`` reads KV head ``h // (heads / kv_heads)``.  The cache holds post-RoPE keys,
  as float32 (layers, kv_heads, max_context, head_dim) arrays allocated once.  Attention is
  numpy on one thread (OpenBLAS GEMV/GEMM calls, ~7 GB/s from DRAM here), not a ryzlab kernel.

Weights come from a source: random ones drawn like trained ones (:class:`RandomWeights`,
:meth:`Model.generate`) or a checkpoint's; the LM head is a choice (:mod:`ryzlab.model.heads`).
The bitnet-3b and bitnet-large entries reuse the 2B-4T block structure (sub-norms, squared
ReLU, tied embeddings) at their published shapes: they are decode *shapes*, not re-creations
of those checkpoints' exact layers.

Timings: every :meth:`Model.step` adds to ``timings`` (seconds) in four categories:
``ternary_gemv`` (the GEMVs only, timed inside the C chains from the barrier that starts
each to the one that ends it), ``attention`` (scores, softmax, weighted sum and the
cache write), ``lm_head`` (the final norm and the head: quantisation, GEMV and logit scaling
for the int8 head) and ``other`` (norms, quantisation, RoPE, residuals, embedding, scale
application and Python overhead; computed as
the step's wall time minus the other three, so the four add up to the step time).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core import native as _native
from ..core import validate
from ..core.kernels import resolve
from ..core.ops import DecodeChain, PackedWeights, pack, workspace_bytes
from ..errors import RyzlabError
from .config import Config, get_config
from .ops import MIN_ABSMAX, blas_threads, check_token, rope_tables
from .reference import ReferenceModel
from .heads import make_head
from .weights import _MATRIX_IDS, RandomWeights, _segments

TIMING_CATEGORIES = ("ternary_gemv", "attention", "lm_head", "other")
#: From this many cached positions on, attention scores use one GEMV per query head.
GEMV_SCORES_MIN_CONTEXT = 128



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
        self._p = {"h": _native.ptr(self._h, "float"), "qkv": _native.ptr(self._qkv, "float")}
        self._seconds = _native.ffi.new("double[2]")

        self.layers = []
        for layer in range(cfg.layers):
            L: dict = {}
            for name, w, wscales in source.layer_linears(layer):
                packed = pack(w, k.name)
                del w
                L[name] = _Linear(packed, _row_scales(cfg, name, wscales))
            L.update(source.layer_norms(layer))
            self.layers.append(L)
        # What runs between two attentions, as one C call each: layer 0's qkv; then per layer
        # its o, gate|up and down and the next layer's qkv.
        def step(x, norm, xq, lin, out, epilogue):
            return (x, norm, xq, lin.packed, lin.y, lin.row_scales, out, epilogue)

        def qkv(L):
            return step(self._h, L["attn_norm"], self._xh, L["qkv"], self._qkv, "store")

        def after_attention(L):
            return [step(self._a, L["attn_sub_norm"], self._xq, L["o"], self._h, "accumulate"),
                    step(self._h, L["ffn_norm"], self._xh, L["gate_up"], self._f, "sqrelu_gate"),
                    step(self._f, L["ffn_sub_norm"], self._xf, L["down"], self._h, "accumulate")]

        chains = [[qkv(self.layers[0])]]
        chains += [after_attention(L) + ([qkv(nxt)] if nxt else [])
                   for L, nxt in zip(self.layers, self.layers[1:] + [None])]
        self._chains = [DecodeChain(c, self._ws) for c in chains]
        self.final_norm = source.final_norm()

        shape = (cfg.layers, cfg.kv_heads, max_context, cfg.head_dim)
        self.k_cache = np.zeros(shape, dtype=np.float32)
        self.v_cache = np.zeros(shape, dtype=np.float32)
        self._scores = np.zeros((cfg.kv_heads, cfg.group, max_context), dtype=np.float32)
        self.cos, self.sin = rope_tables(cfg, max_context)
        self._cos_p, self._sin_p = _native.ptr(self.cos, "float"), _native.ptr(self.sin, "float")
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

        The ternary GEMVs and the head use ``threads`` OpenMP threads; the numpy parts
        (attention, norms, quantisation) run on one thread (:func:`blas_threads`)."""
        t_start = time.perf_counter()
        with blas_threads(1):
            return self._step(token, threads, t_start)

    def _step(self, token: int, threads: int, t_start: float) -> np.ndarray:
        cfg = self.config
        token = check_token(token, cfg.vocab)
        threads = validate.threads(threads)
        pos = self.pos
        if pos >= self.max_context:
            raise RyzlabError(f"context is full: position {pos} = max_context {self.max_context}; "
                              "call reset() or generate the model with a larger max_context")
        perf = time.perf_counter
        t_attn = 0.0
        eps = cfg.norm_eps
        kvh, g, hd, T = cfg.kv_heads, cfg.group, cfg.head_dim, pos + 1
        inv_sqrt_d = np.float32(1.0 / math.sqrt(hd))
        half = hd // 2
        cos, sin = self._cos_p + pos * half, self._sin_p + pos * half  # row pos of the tables
        lib, p, seconds = _native.lib(), self._p, self._seconds
        seconds[0] = seconds[1] = 0.0
        qkv = self._qkv
        q = qkv[:cfg.q_out].reshape(cfg.heads, hd)
        k = qkv[cfg.q_out:cfg.q_out + cfg.kv_out].reshape(kvh, hd)
        v = qkv[cfg.q_out + cfg.kv_out:].reshape(kvh, hd)
        qg = q.reshape(kvh, g, hd)
        s = self._scores[:, :, :T]  # (kvh, g, T) view of a preallocated buffer

        self._h[:] = self._embedding_row(token)
        self._chains[0].run(eps, MIN_ABSMAX, threads, seconds)  # layer 0's qkv
        for li in range(cfg.layers):
            lib.ryz_rope(p["qkv"], cfg.heads + kvh, hd, cos, sin)  # q and k: consecutive heads
            t = perf()
            kc, vc = self.k_cache[li], self.v_cache[li]
            kc[:, pos, :] = k
            vc[:, pos, :] = v
            if T >= GEMV_SCORES_MIN_CONTEXT:
                # one BLAS GEMV per query head streams its K rows: ~1.6x the bandwidth of a
                # batched GEMM with 4 columns, ~2.8x that of q . K^T (cold cache, 1 thread)
                for j in range(kvh):
                    kj = kc[j, :T, :]
                    for i in range(g):
                        np.dot(kj, qg[j, i], out=s[j, i])
            else:  # short contexts: one call, per-call overhead dominates
                np.matmul(qg, kc[:, :T, :].transpose(0, 2, 1), out=s)
            s *= inv_sqrt_d
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            np.matmul(s, vc[:, :T, :], out=self._a.reshape(kvh, g, hd))  # heads * hd
            t_attn += perf() - t
            # o (+ residual), gate|up, squared-ReLU gate, down (+ residual), next layer's qkv
            self._chains[li + 1].run(eps, MIN_ABSMAX, threads, seconds)
        t_gemv = seconds[0]

        t = perf()
        logits = self.head.logits(self._h, self.final_norm, eps, threads)
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
        the cache is reset first and holds the sequence afterwards (``pos`` = T).  Runs one
        decode step per token."""
        ids = self._token_ids(token_ids)
        threads = self._api_threads(threads)
        if len(ids) > self.max_context:
            raise RyzlabError(f"{len(ids)} tokens exceed max_context {self.max_context}")
        self.reset()
        out = np.empty((len(ids), self.config.vocab), np.float32)
        for i, t in enumerate(ids):
            out[i] = self.step(t, threads)
        return out

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
        for tok in ids[:-1]:
            self.step(tok, threads)
        logits = self.step(ids[-1], threads)
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
