"""Golden BitNet b1.58 fixtures, written and run by Hugging Face transformers itself.

For each fixture this script builds a small BitNet checkpoint in the layout of
``microsoft/bitnet-b1.58-2B-4T`` (``config.json`` with ``model_type: bitnet`` and
``quantization_config {quant_method: bitnet, linear_class: autobitlinear,
quantization_mode: offline}``; ``model.safetensors`` with bf16 embedding / norms, linear
weights packed by transformers' own ``pack_weights`` into uint8, 4 ternary codes per byte
along the output axis, code = w + 1, and a bf16 per-tensor ``weight_scale``; tied embedding),
loads it with ``BitNetForCausalLM`` (float32, eager attention) and stores what transformers
computes next to it (``expected.npz`` / ``expected.json``): the logits of a fixed prompt at
every position and 16 greedy tokens from ``generate(do_sample=False)``.

The same ternary weights are also written as

* ``tiny96-bf16``: bf16 master weights as in ``microsoft/bitnet-b1.58-2B-4T-bf16``
  (``quantization_mode: online``: transformers' ``WeightQuant`` ternarises them by absmean at
  every forward).  The masters are built so that absmean gives back exactly the fixture's
  ternary weights and scale (|W| is a multiple of scale/8, the multiples sum to 8 n);
* GGUF files (``model-i2_s.gguf``, ``model-tq2_0.gguf``, ``model-tq1_0.gguf``) with llama.cpp's
  tensor names for the ``bitnet`` arch: TQ1_0 / TQ2_0 quantised by gguf-py's own quantisers
  from the float weights ``w * scale`` (what llama.cpp's converter feeds them), I2_S packed here
  (bitnet.cpp's type 36 is not in mainline gguf-py; see :func:`pack_i2_s`).  TQ types need
  rows that are a multiple of 256 weights, so only ``small256`` has them (llama.cpp falls back
  to F16 there too).  F16 embedding, F32 norms.

Every scale is ``a / 128`` with ``a`` in 8..12: exact in bf16 and fp16, and ``1 / (1 / s)`` is
``s`` in float32, so every format carries the very same float scale.

Regenerate (torch and transformers live in a separate venv, not in the project's .venv)::

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /work/refvenv/bin/pip install 'transformers>=5.24' 'safetensors>=0.8' 'gguf>=0.19' 'tokenizers>=0.23'
    /work/refvenv/bin/python tools/make_golden.py            # writes tests/fixtures/golden/

(or ``pip install -e '.[reference]'`` into that venv).  The output is deterministic for a
given transformers / torch version; ``expected.json`` records both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "golden"
BUDGET_BYTES = 2 * 1024 * 1024

LINEARS = {  # ryzlab name -> (HF module path, GGUF name)
    "q": ("self_attn.q_proj", "attn_q"),
    "k": ("self_attn.k_proj", "attn_k"),
    "v": ("self_attn.v_proj", "attn_v"),
    "o": ("self_attn.o_proj", "attn_output"),
    "gate": ("mlp.gate_proj", "ffn_gate"),
    "up": ("mlp.up_proj", "ffn_up"),
    "down": ("mlp.down_proj", "ffn_down"),
}
NORMS = {  # ryzlab name -> (HF tensor, GGUF tensor)
    "input_norm": ("input_layernorm", "attn_norm"),
    "post_norm": ("post_attention_layernorm", "ffn_norm"),
    "attn_sub_norm": ("self_attn.attn_sub_norm", "attn_sub_norm"),
    "ffn_sub_norm": ("mlp.ffn_sub_norm", "ffn_sub_norm"),
}
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
# The shape of 2B-4T's template (tokenizer_config.json there), shortened.
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
                 "{{ message['role'] | capitalize }}: {{ message['content'] }}<|eot_id|>{% endfor %}"
                 "{% if add_generation_prompt %}Assistant: {% endif %}")
CORPUS = [
    "Hello world, this is ryzlab: exact ternary kernels for BitNet b1.58 on x86.",
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.",
    "Ternary weights are minus one, zero or plus one; activations are int8 per token.",
    "User: What is the capital of France? Assistant: Paris is the capital of France.",
] * 4
PROMPT_TEXT = "What is the capital of France?"

GGML_TYPE_I2_S = 36  # bitnet.cpp's ggml.h (its fork of llama.cpp); not in mainline gguf-py
LLAMA_FTYPE_MOSTLY_I2_S = 40  # bitnet.cpp's llama.h


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    seed: int
    gguf: tuple[str, ...]
    tokenizer: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shape(self, name: str) -> tuple[int, int]:
        kv = self.kv_heads * self.head_dim
        return {"q": (self.hidden, self.hidden), "k": (kv, self.hidden), "v": (kv, self.hidden),
                "o": (self.hidden, self.hidden), "gate": (self.ffn, self.hidden),
                "up": (self.ffn, self.hidden), "down": (self.hidden, self.ffn)}[name]

    def norm_size(self, name: str) -> int:
        return self.ffn if name == "ffn_sub_norm" else self.hidden


# Seeds chosen (of 20..27) for the largest smallest top-1/top-2 greedy margin.
SHAPES = [
    # No size a power of two; GQA 3:1.  K = 96 and 160: I2_S only (TQ needs K % 256 == 0).
    Shape("tiny96", hidden=96, ffn=160, layers=2, heads=3, kv_heads=1, vocab=300, seed=22,
          gguf=("i2_s",), tokenizer=True),
    # K = 256 and 512: every GGUF ternary type.  GQA 2:1.
    Shape("small256", hidden=256, ffn=512, layers=1, heads=4, kv_heads=2, vocab=200, seed=25,
          gguf=("i2_s", "tq2_0", "tq1_0")),
]


# --------------------------------------------------------------------------- weights


def make_weights(shape: Shape) -> dict:
    """Ternary int8 matrices with scales, norm vectors and an embedding, all exact in bf16."""
    rng = np.random.default_rng(shape.seed)
    layers = []
    for _ in range(shape.layers):
        L = {}
        for name in LINEARS:
            M, K = shape.linear_shape(name)
            u = rng.random((M, K))
            w = np.where(u < 0.3, 0, np.where(u < 0.65, 1, -1)).astype(np.int8)
            scale = float(rng.integers(8, 13)) / 128.0
            L[name] = (w, scale)
        for name in NORMS:  # 1 + k/128: exact in bf16, fp16 and float32
            L[name] = (1.0 + rng.integers(-32, 33, shape.norm_size(name)) / 128.0).astype(np.float32)
        layers.append(L)
    final = (1.0 + rng.integers(-32, 33, shape.hidden) / 128.0).astype(np.float32)
    # Small next to what the layers add (k/1024, |k| < 256: exact in bf16 and fp16): with a tied
    # head, an embedding that dominates the residual stream makes the model repeat its input.
    emb = (np.clip(np.round(rng.standard_normal((shape.vocab, shape.hidden)) * 48), -255, 255) / 1024).astype(np.float32)
    return {"layers": layers, "final_norm": final, "embedding": emb}


def master_weights(w: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Float32 (bf16-exact) masters that absmean-quantise to ``w`` with mean|W| == scale.

    |W| = e * scale / 8 with e in 6..12 where w != 0 and e in 0..3 where w == 0, and
    sum(e) == 8 n, so the float32 mean is exactly ``scale`` in any summation order."""
    nz = w != 0
    e = np.where(nz, rng.integers(8, 13, w.shape), rng.integers(0, 4, w.shape)).astype(np.int64)
    deficit = 8 * w.size - int(e.sum())
    flat_e, flat_nz = e.reshape(-1), nz.reshape(-1)
    order = rng.permutation(w.size)
    while deficit != 0:
        step = 1 if deficit > 0 else -1
        ok = flat_nz[order] & ((flat_e[order] < 12) if step > 0 else (flat_e[order] > 6))
        idx = order[ok][: abs(deficit)]
        if idx.size == 0:
            raise RuntimeError("cannot balance the master weights")
        flat_e[idx] += step
        deficit -= step * idx.size
    sign = np.where(nz, w, np.where(rng.random(w.shape) < 0.5, -1, 1))
    W = (sign * e * (scale / 8)).astype(np.float32)
    assert np.float32(np.abs(W).sum(dtype=np.float64) / W.size) == np.float32(scale)
    return W


# --------------------------------------------------------------------------- packing


def pack_i2_s(w: np.ndarray, scale: float) -> np.ndarray:
    """bitnet.cpp's I2_S bytes for one (M, K) ternary matrix (x86 layout).

    Written from ``quantize_i2_s`` in microsoft/BitNet ``src/ggml-bitnet-mad.cpp`` (the
    ACT_PARALLEL branch, the default of its ``include/gemm-config.h``; QK_I2_S = 128 on x86):
    the matrix is flattened row-major; each block of 128 weights is 32 bytes, weight ``j`` of
    a block sits in byte ``j % 32`` at bit ``6 - 2 * (j // 32)``; codes 0, 1, 2 are -1, 0, +1.
    After the ``n / 4`` code bytes comes a float32 scale (max |w| of the float weights, i.e.
    the per-tensor scale) and padding to 32 bytes: ``n / 4 + 32`` bytes in all."""
    n = w.size
    assert n % 128 == 0, "I2_S packs blocks of 128 weights"
    codes = (w.reshape(-1, 4, 32).astype(np.int16) + 1).astype(np.uint8)  # (blocks, group, pos)
    packed = np.zeros((n // 128, 32), np.uint8)
    for g in range(4):
        packed |= codes[:, g, :] << np.uint8(6 - 2 * g)
    tail = np.zeros(32, np.uint8)
    tail[:4] = np.frombuffer(np.float32(scale).tobytes(), np.uint8)
    return np.concatenate([packed.reshape(-1), tail])


# --------------------------------------------------------------------------- tokenizer


def make_tokenizer(vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[0]} $A", special_tokens=[(SPECIALS[0], tok.token_to_id(SPECIALS[0]))])
    assert tok.get_vocab_size() <= vocab
    return tok


# --------------------------------------------------------------------------- writers


def hf_config(shape: Shape, mode: str, bos: int, eos: int) -> dict:
    # Keys and order as microsoft/bitnet-b1.58-2B-4T's config.json.
    return {
        "architectures": ["BitNetForCausalLM"],
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "relu2",
        "hidden_size": shape.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shape.ffn,
        "max_position_embeddings": 256,
        "model_type": "bitnet",
        "rms_norm_eps": 1e-05,
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": shape.vocab,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": mode},
    }


def write_hf(d: Path, shape: Shape, wts: dict, bf16_master: bool, bos: int, eos: int) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers.integrations.bitnet import pack_weights

    rng = np.random.default_rng(shape.seed + 1000)
    bf = torch.bfloat16
    t: dict[str, torch.Tensor] = {"model.embed_tokens.weight": torch.from_numpy(wts["embedding"]).to(bf)}
    for i, L in enumerate(wts["layers"]):
        p = f"model.layers.{i}."
        for name, (mod, _) in LINEARS.items():
            w, scale = L[name]
            if bf16_master:
                t[p + mod + ".weight"] = torch.from_numpy(master_weights(w, scale, rng)).to(bf)
            else:
                t[p + mod + ".weight"] = pack_weights(torch.from_numpy(w.copy()).to(torch.int8)).contiguous()
                t[p + mod + ".weight_scale"] = torch.tensor([scale], dtype=bf)
        for name, (hf, _) in NORMS.items():
            t[p + hf + ".weight"] = torch.from_numpy(L[name]).to(bf)
    t["model.norm.weight"] = torch.from_numpy(wts["final_norm"]).to(bf)
    for k, v in t.items():  # everything above is exact in bf16
        if v.dtype == bf:
            assert torch.equal(v.float(), v.float().to(bf).float()), k
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = hf_config(shape, "online" if bf16_master else "offline", bos, eos)
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def write_gguf(path: Path, shape: Shape, wts: dict, qtype: str, tok, bos: int, eos: int) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BITNET])
    w.add_name(shape.name)
    w.add_context_length(256)
    w.add_embedding_length(shape.hidden)
    w.add_block_count(shape.layers)
    w.add_feed_forward_length(shape.ffn)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_rope_dimension_count(shape.head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(shape.vocab)
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)  # as llama.cpp's BitnetModel
    w.add_rope_scaling_factor(1.0)
    ftype = {"i2_s": LLAMA_FTYPE_MOSTLY_I2_S, "tq2_0": gguf.LlamaFileType.MOSTLY_TQ2_0,
             "tq1_0": gguf.LlamaFileType.MOSTLY_TQ1_0}[qtype]
    w.add_file_type(int(ftype))
    if tok is not None:  # byte-level BPE ("gpt2"), as llama.cpp writes Llama 3's tokenizer
        vocab = tok.get_vocab()
        rev = {i: s for s, i in vocab.items()}
        tokens = [rev.get(i, f"[PAD{i}]") for i in range(shape.vocab)]
        types = [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL if i in rev
                 else gguf.TokenType.USER_DEFINED for i, t in enumerate(tokens)]
        merges = json.loads(tok.to_str())["model"]["merges"]
        merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")  # the fixture tokenizer splits with GPT-2's byte-level regex
        w.add_token_list(tokens)
        w.add_token_types([int(t) for t in types])
        w.add_token_merges(merges)
        w.add_bos_token_id(bos)
        w.add_eos_token_id(eos)
        w.add_chat_template(CHAT_TEMPLATE)

    w.add_tensor("token_embd.weight", wts["embedding"].astype(np.float16))
    for i, L in enumerate(wts["layers"]):
        for name, (_, g) in LINEARS.items():
            m, scale = L[name]
            if qtype == "i2_s":
                # gguf-py has no I2_S: raw bytes with the logical (M, K) shape and type id 36.
                # An int8 view keeps GGUFWriter from converting a uint8 byte shape through
                # GGML_QUANT_SIZES, which has no entry for type 36.
                w.add_tensor(f"blk.{i}.{g}.weight", pack_i2_s(m, scale).view(np.int8),
                             raw_shape=m.shape, raw_dtype=GGML_TYPE_I2_S)
            else:
                q = gguf.GGMLQuantizationType[qtype.upper()]
                data = gguf.quants.quantize(m.astype(np.float32) * np.float32(scale), q)
                w.add_tensor(f"blk.{i}.{g}.weight", data, raw_dtype=q)  # byte shape -> (M, K)
        for name, (_, g) in NORMS.items():
            w.add_tensor(f"blk.{i}.{g}.weight", L[name].astype(np.float32))
    w.add_tensor("output_norm.weight", wts["final_norm"].astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------- reference run


def run_transformers(d: Path, ids: list[int], n_new: int = 16) -> dict:
    import torch
    from transformers import BitNetForCausalLM

    torch.manual_seed(0)
    model = BitNetForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    # transformers 5.24 with the bitnet quantizer casts only the linear weights and scales to
    # dtype=float32; embedding and norms stay bf16 and the first linear then fails on mixed
    # dtypes.  Widen the rest (bf16 -> float32 is exact) to get the float32 forward asked for.
    model = model.to(torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.eval()
    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        logits = model(x).logits[0].float().numpy()
        # eos_token_id=-1: no early stop (the eos id is an ordinary token to these random weights)
        # (an explicit all-ones mask: generate() would otherwise mask tokens equal to pad_token_id)
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=False,
                             eos_token_id=-1, pad_token_id=model.config.vocab_size - 1)
        greedy = out[0, len(ids):].numpy()
        # the same decoding by hand, to record the top-1 / top-2 margin of every step
        seq, margins = list(ids), []
        for _ in range(n_new):
            lg = model(torch.tensor([seq])).logits[0, -1].float().numpy()
            top = np.sort(lg)[-2:]
            margins.append(float(top[1] - top[0]))
            seq.append(int(np.argmax(lg)))
    assert seq[len(ids):] == greedy.tolist(), "generate() and the step-by-step argmax disagree"
    return {"logits": logits.astype(np.float32), "greedy": greedy.astype(np.int64),
            "margins": np.array(margins, np.float32)}


def save_expected(d: Path, ids: list[int], res: dict, extra: dict) -> None:
    import torch
    import transformers

    np.savez_compressed(d / "expected.npz", input_ids=np.array(ids, np.int64), logits=res["logits"],
                        greedy=res["greedy"], margins=res["margins"])
    meta = {"input_ids": ids, "greedy": res["greedy"].tolist(),
            "min_greedy_margin": float(res["margins"].min()),
            "logits_std": float(res["logits"].std()),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "dtype": "float32", "attn_implementation": "eager", **extra}
    (d / "expected.json").write_text(json.dumps(meta, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def build(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for shape in SHAPES:
        wts = make_weights(shape)
        tok, bos, eos = None, 1, 2
        d = out / shape.name
        d.mkdir()
        if shape.tokenizer:
            tok = make_tokenizer(shape.vocab)
            bos, eos = tok.token_to_id(SPECIALS[0]), tok.token_to_id(SPECIALS[1])
        variants = [(d, False)] + ([(out / f"{shape.name}-bf16", True)] if shape.tokenizer else [])
        for vd, bf16 in variants:
            vd.mkdir(exist_ok=True)
            write_hf(vd, shape, wts, bf16, bos, eos)
            extra = {}
            if tok is not None:
                tok.save(str(vd / "tokenizer.json"))
                (vd / "tokenizer_config.json").write_text(json.dumps(
                    {"bos_token": SPECIALS[0], "eos_token": SPECIALS[1], "chat_template": CHAT_TEMPLATE,
                     "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2) + "\n")
                ids = tok.encode(PROMPT_TEXT).ids
                extra = {"prompt_text": PROMPT_TEXT}
            else:
                ids = [bos] + [int(i) for i in np.random.default_rng(shape.seed).integers(3, shape.vocab, 9)]
            res = run_transformers(vd, ids)
            save_expected(vd, ids, res, extra)
            print(f"{vd.name}: prompt {len(ids)} tokens, greedy {res['greedy'].tolist()}, "
                  f"min margin {res['margins'].min():.4g}")
        for q in shape.gguf:
            write_gguf(d / f"model-{q}.gguf", shape, wts, q, tok, bos, eos)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"  {f.relative_to(out)}: {f.stat().st_size:,} B")
    print(f"total {total:,} B")
    if total > BUDGET_BYTES:
        sys.exit(f"fixtures are {total:,} B, over the {BUDGET_BYTES:,} B budget")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    build(ap.parse_args().out)


if __name__ == "__main__":
    main()
