"""Peers measured in the same run: llama.cpp (through llama-cpp-python) and numpy float32.

llama.cpp is an optional extra (``make peers`` installs ``llama-cpp-python``, which builds
llama.cpp from source, and ``gguf``).  :func:`write_gguf` writes a GGUF with the shapes of a
ryzlab model configuration for llama.cpp's ``bitnet`` architecture: ternary layers as TQ2_0
(2.06 bits/weight) or TQ1_0 (1.69), the tied embedding / output matrix as Q8_0 (8.5 bits,
comparable to ryzlab's int8 head plus scales), norms as F32.  Weights are random but valid
codes of each type: decode speed does not depend on their values.  Note that llama.cpp's
``bitnet`` graph gates its FFN with SiLU where BitNet b1.58 2B-4T uses squared ReLU; one
elementwise op per layer, immaterial for speed.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np


#: Bytes per 256-weight block of each llama.cpp type used here (ggml's block layouts).
_TERNARY_BLOCK = {"TQ2_0": 66, "TQ1_0": 54}


def available() -> tuple[bool, str]:
    """Whether llama-cpp-python and gguf are installed, and if not, how to install them."""
    missing = [m for m in ("llama_cpp", "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"not installed: {', '.join(missing)} (run `make peers`)"
    return True, "llama-cpp-python " + _version("llama_cpp_python")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _fp16_bytes(value: float, n: int) -> np.ndarray:
    return np.frombuffer(np.full(n, value, dtype=np.float16).tobytes(), dtype=np.uint8).reshape(n, 2)


def _ternary_rows(rng: np.random.Generator, rows: int, cols: int, qtype: str) -> np.ndarray:
    """Random valid ``qtype`` bytes for a rows x cols matrix (cols a multiple of 256)."""
    blocks = rows * cols // 256
    if qtype == "TQ2_0":
        # 2-bit codes in {0, 1, 2}: 81 valid bytes
        valid = np.array([a | b << 2 | c << 4 | d << 6 for a in range(3) for b in range(3)
                          for c in range(3) for d in range(3)], dtype=np.uint8)
        qs = valid[rng.integers(0, 81, size=(blocks, 64))]
    else:  # TQ1_0: every byte decodes to 5 (or 4) trits
        qs = rng.integers(0, 256, size=(blocks, 52), dtype=np.uint8)
    return np.concatenate([qs, _fp16_bytes(0.02, blocks)], axis=1).reshape(rows, -1)


def _q8_rows(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    blocks = rows * cols // 32
    qs = rng.integers(-127, 128, size=(blocks, 32), dtype=np.int8).view(np.uint8)
    return np.concatenate([_fp16_bytes(0.01, blocks), qs], axis=1).reshape(rows, -1)


def _tensors(cfg: Any, qtype: str):
    """(name, numpy shape (rows, cols), ggml type, row generator) in file order."""
    h, f, hd = cfg.hidden, cfg.ffn, cfg.head_dim
    q_out, kv_out = cfg.heads * hd, cfg.kv_heads * hd
    yield "token_embd.weight", (cfg.vocab, h), "Q8_0"
    yield "output_norm.weight", (h,), "F32"
    for i in range(cfg.layers):
        b = f"blk.{i}."
        yield b + "attn_norm.weight", (h,), "F32"
        yield b + "attn_q.weight", (q_out, h), qtype
        yield b + "attn_k.weight", (kv_out, h), qtype
        yield b + "attn_v.weight", (kv_out, h), qtype
        yield b + "attn_sub_norm.weight", (q_out,), "F32"
        yield b + "attn_output.weight", (h, q_out), qtype
        yield b + "ffn_norm.weight", (h,), "F32"
        yield b + "ffn_gate.weight", (f, h), qtype
        yield b + "ffn_up.weight", (f, h), qtype
        yield b + "ffn_sub_norm.weight", (f,), "F32"
        yield b + "ffn_down.weight", (h, f), qtype


def write_gguf(path: str | Path, cfg: Any, qtype: str = "TQ2_0", seed: int = 0, context: int = 4096) -> Path:
    """Write a llama.cpp ``bitnet`` GGUF with the shapes of ``cfg`` (a ryzlab model Config).

    Streams tensor by tensor, so memory stays at one tensor.  Every ternary input dimension
    must be a multiple of 256 (TQ block size), true of the BitNet 2B-4T, 3B and large shapes.
    """
    import gguf

    if qtype not in _TERNARY_BLOCK:
        raise ValueError(f"qtype must be one of {sorted(_TERNARY_BLOCK)}, got {qtype!r}")
    for dim in (cfg.hidden, cfg.ffn, cfg.heads * cfg.head_dim):
        if dim % 256:
            raise ValueError(f"{qtype} needs input dimensions that are multiples of 256, got {dim}")
    path = Path(path)
    rng = np.random.default_rng(seed)
    types = {"F32": gguf.GGMLQuantizationType.F32, "Q8_0": gguf.GGMLQuantizationType.Q8_0,
             qtype: getattr(gguf.GGMLQuantizationType, qtype)}
    w = gguf.GGUFWriter(path, "bitnet")
    w.add_context_length(context)
    w.add_embedding_length(cfg.hidden)
    w.add_block_count(cfg.layers)
    w.add_feed_forward_length(cfg.ffn)
    w.add_head_count(cfg.heads)
    w.add_head_count_kv(cfg.kv_heads)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_vocab_size(cfg.vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ2_0 if qtype == "TQ2_0" else gguf.LlamaFileType.MOSTLY_TQ1_0)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, cfg.vocab)])
    w.add_token_scores([0.0] * cfg.vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * cfg.vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    specs = list(_tensors(cfg, qtype))

    def data(shape, kind):
        if kind == "F32":
            return np.ones(shape, dtype=np.float32)
        if kind == "Q8_0":
            return _q8_rows(rng, *shape)
        return _ternary_rows(rng, *shape, kind)

    for name, shape, kind in specs:
        if kind == "F32":
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
        else:
            per_block = {"Q8_0": (32, 34)}.get(kind, (256, _TERNARY_BLOCK.get(kind)))
            nbytes = shape[0] * shape[1] // per_block[0] * per_block[1]
            w.add_tensor_info(name, (shape[0], shape[1] // per_block[0] * per_block[1]), np.dtype(np.uint8),
                              nbytes, raw_dtype=types[kind])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, shape, kind in specs:
        w.write_tensor_data(data(shape, kind))
    w.close()
    return path


class LlamaDecoder:
    """llama.cpp greedy decode one token at a time, for interleaving with other systems.

    Each :meth:`step` evaluates one token (a decode of batch 1), takes the argmax of its
    logits as the next token and returns the seconds it took.
    """

    def __init__(self, path: str | Path, threads: int, context: int = 512):
        from llama_cpp import Llama

        self.threads = threads
        self.version = _version("llama_cpp_python")
        self._llm = Llama(model_path=str(path), n_ctx=context, n_batch=min(512, context), n_threads=threads,
                          n_threads_batch=threads, verbose=False, use_mmap=True)
        self._token = 1

    def prompt(self, n_tokens: int, seed: int = 0) -> float:
        """Seconds to process a prompt of ``n_tokens`` random token ids from position 0 (the
        cache is cleared first): llama-bench's "pp" measurement."""
        tokens = np.random.default_rng(seed).integers(3, self._llm.n_vocab(), n_tokens).tolist()
        self._llm.reset()
        t0 = time.perf_counter()
        self._llm.eval(tokens)
        seconds = time.perf_counter() - t0
        self._llm.reset()
        return seconds

    def step(self) -> float:
        t0 = time.perf_counter()
        self._llm.eval([self._token])
        seconds = time.perf_counter() - t0
        self._token = int(np.argmax(self._llm.scores[self._llm.n_tokens - 1]))
        return seconds

    def close(self) -> None:
        self._llm.close()
