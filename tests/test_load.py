"""ryzlab.load: the decoder over real checkpoints, against transformers' outputs (the golden
fixtures of tools/make_golden.py), on every runnable kernel, and its errors on bad files.

Tolerance: logits within 1 % of max|logit| at every prompt position (the f32 head measures
~5e-7 relative: the kernels' exact int32 products vs transformers' fake-quantised float
matmul differ only in float32 rounding), the same argmax at every position and the same 16
greedy tokens."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ryzlab
from ryzlab.errors import RyzlabError
from ryzlab.model import Model
from ryzlab.model.checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    ConfigError,
    MissingTensorError,
    TensorShapeError,
    TernaryValueError,
    UnsupportedCheckpointError,
)
from ryzlab.model.sources import CheckpointWeights, ModelNotFoundError
from ryzlab.model.checkpoint import open_checkpoint
from ryzlab.model.weights import FUSED
from test_checkpoint import KEY_Q, KEY_UP, _copy, _edit_config, _edit_tensors, _gguf, _tensor_info_offset

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
REPO = Path(__file__).parent.parent
TOL = 0.01
#: every file of each fixture's weights; the first is the Hugging Face packed checkpoint
FORMATS = {"tiny96": ["tiny96", "tiny96-bf16", "tiny96/model-i2_s.gguf"],
           "small256": ["small256", "small256/model-i2_s.gguf", "small256/model-tq2_0.gguf",
                        "small256/model-tq1_0.gguf"]}


def _expected(rel: str):
    return np.load(GOLDEN / rel.split("/")[0] / "expected.npz")


def _check_golden(m: Model, e, threads: int, label: str, api: bool = True) -> float:
    """Logits at every prompt position and the 16 greedy tokens; ``api``: the greedy tokens
    from :meth:`Model.generate` (which runs the prompt again), else by stepping on from the
    forward pass's cache (half the steps: on a loaded 2-core machine 2-thread steps are slow)."""
    ids, ref = e["input_ids"], e["logits"]
    lg = m.forward(ids, threads=threads)
    assert lg.dtype == np.float32 and lg.shape == ref.shape
    err = float(np.abs(lg - ref).max() / np.abs(ref).max())
    assert err <= TOL, f"{label}: max logit error {100 * err:.3g} % of max|logit|"
    assert np.array_equal(lg.argmax(-1), ref.argmax(-1)), label
    if api:
        greedy = m.generate(ids, 16, threads=threads)
    else:
        greedy = [int(np.argmax(lg[-1]))]
        while len(greedy) < 16:
            greedy.append(int(np.argmax(m.step(greedy[-1], threads))))
    assert greedy == e["greedy"].tolist(), label
    return err


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize("fixture", list(FORMATS))  # tiny96-bf16 packs to tiny96's weights: below
@pytest.mark.parametrize("kernel", ryzlab.kernels())
def test_golden_every_kernel_and_thread_count(fixture, kernel):
    m = ryzlab.load(GOLDEN / fixture, kernel=kernel, head="f32", max_context=64)
    assert m.kernel == kernel and m.head.kind == "f32"
    for threads in (1, 2):
        err = _check_golden(m, _expected(fixture), threads, f"{fixture} {kernel} {threads} thr", api=threads == 1)
        assert err < 1e-5  # measured ~5e-7: float32 rounding only


@pytest.mark.parametrize("fixture", list(FORMATS))
def test_gguf_formats_give_the_same_weights_and_tokens(fixture):
    """Every file of the same weights packs to the same bytes and generates the same tokens."""
    e = _expected(fixture)
    ref = ryzlab.load(GOLDEN / FORMATS[fixture][0], head="f32", max_context=64)
    for rel in FORMATS[fixture][1:]:
        m = ryzlab.load(GOLDEN / rel, head="f32", max_context=64)
        assert m.kernel == ref.kernel
        for L, L0 in zip(m.layers, ref.layers):
            for name in FUSED:
                assert np.array_equal(L[name].packed.data, L0[name].packed.data), (rel, name)
                assert np.array_equal(L[name].row_scales, L0[name].row_scales), (rel, name)
            for norm in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
                assert np.array_equal(L[norm], L0[norm])
        _check_golden(m, e, 1, rel)


def test_source_protocol_and_config():
    ck = open_checkpoint(GOLDEN / "small256" / "model-tq2_0.gguf")
    src = CheckpointWeights(ck)
    c = src.config
    assert c.name == "model-tq2_0" and (c.hidden, c.ffn, c.layers, c.heads, c.kv_heads) == (256, 512, 1, 4, 2)
    assert c.rope_theta == ck.config.rope_theta and c.norm_eps == ck.config.eps
    linears = {name: (w, s) for name, w, s in src.layer_linears(0)}
    assert list(linears) == list(FUSED)
    w, s = linears["qkv"]
    parts = [ck.ternary(0, p) for p in ("q", "k", "v")]
    assert np.array_equal(w, np.concatenate([p[0] for p in parts])) and s == [p[1] for p in parts]
    q, scales = src.head_int8()
    f = ck.head()
    assert q.dtype == np.int8 and q.shape == f.shape
    assert np.abs(q * scales[:, None] - f).max() <= scales.max() / 2 * 1.0001
    assert np.array_equal(src.embedding_row(7), f[7])
    assert ryzlab.load(GOLDEN / "tiny96", max_context=8).config.name == "tiny96"


def test_int8_head_runs_and_reports_its_error(capsys):
    """The int8 head is an approximation (no accuracy threshold beyond sanity)."""
    e = _expected("tiny96")
    f32 = ryzlab.load(GOLDEN / "tiny96", head="f32", max_context=32).forward(e["input_ids"])
    m = ryzlab.load(GOLDEN / "tiny96", head="int8", max_context=32)
    assert m.head.kind == "int8"
    i8 = m.forward(e["input_ids"])
    err = float(np.abs(i8 - f32).max() / np.abs(f32).max())
    top1 = float(np.mean(i8.argmax(-1) == f32.argmax(-1)))
    with capsys.disabled():
        print(f"\nint8 head on tiny96: max logit error {100 * err:.2f} % of max|logit|, top-1 agreement {top1:.2f}")
    assert np.all(np.isfinite(i8)) and err < 0.1


def test_model_api():
    m = ryzlab.load(GOLDEN / "tiny96", head="f32", threads=1, max_context=32)
    e = _expected("tiny96")
    ids = e["input_ids"].tolist()
    assert m.tokenizer is not None and m.chat_template and m.checkpoint.format == "hf"
    streamed = m.generate(ids, 5, stream=True)
    assert not isinstance(streamed, list) and list(streamed) == e["greedy"][:5].tolist()
    g = m.last_generation
    assert g["prompt_tokens"] == len(ids) and g["decode_steps"] == 4 and g["prompt_s"] > 0
    a = m.generate(ids, 8, temperature=1.0, top_k=5, seed=3)
    assert a == m.generate(ids, 8, temperature=1.0, top_k=5, seed=3) and len(a) == 8
    assert m.generate(ids, 4, top_k=1, temperature=5.0, seed=0) == e["greedy"][:4].tolist()
    assert m.generate(np.array(ids), 1) == e["greedy"][:1].tolist()
    with pytest.raises(ValueError, match="temperature"):
        m.generate(ids, 2, temperature=-1)
    with pytest.raises(ValueError, match="token"):
        m.forward([300])
    with pytest.raises(RyzlabError, match="max_context"):
        m.generate(ids, 30)
    with pytest.raises(ValueError):
        m.generate([], 3)
    # the class still builds random models; the old greedy API still works
    r = Model.generate("tiny", seed=0, max_context=16)
    assert r.generate_tokens([1, 2, 3], 4) == r.generate([1, 2, 3], 4, threads=1)
    assert ryzlab.load("tiny", max_context=16).generate([1, 2, 3], 4, threads=1) == r.generate([1, 2, 3], 4)


# --------------------------------------------------------------------------- CLI


def _cli(*args, ok=True):
    p = subprocess.run([sys.executable, "-m", "ryzlab", "generate", *args], capture_output=True, cwd=REPO,
                       timeout=120)
    p.stdout, p.stderr = p.stdout.decode("utf-8"), p.stderr.decode("utf-8")  # no newline translation
    assert (p.returncode == 0) == ok, p.stderr
    return p


def test_cli_generate():
    e = _expected("tiny96")
    ids = ",".join(map(str, e["input_ids"].tolist()))
    p = _cli("--model", str(GOLDEN / "tiny96"), "--prompt-ids", ids, "--max-tokens", "8", "--head", "f32",
             "--threads", "1", "--ignore-eos")
    assert p.stdout.split() == [str(t) for t in e["greedy"][:8]]
    assert "pp " in p.stderr and "tg " in p.stderr and "tok/s" in p.stderr
    _cli("--model", "tests/fixtures/golden/tiny96", "--prompt-ids", "1,2,3", "--max-tokens", "8")
    meta_text = "What is the capital of France?"
    p = _cli("--model", str(GOLDEN / "tiny96"), "--prompt", meta_text, "--max-tokens", "8", "--head", "f32",
             "--ignore-eos")
    tok = open_checkpoint(GOLDEN / "tiny96").tokenizer()
    assert p.stdout.rstrip("\n") == tok.decode(e["greedy"][:8].tolist(), skip_special_tokens=True)
    p = _cli("--model", str(GOLDEN / "tiny96" / "model-i2_s.gguf"), "--prompt", "Hi", "--chat", "--max-tokens",
             "4")
    assert "tok/s" in p.stderr


def test_cli_generate_errors(capsys):
    from ryzlab import cli

    assert cli.main(["generate", "--model", str(GOLDEN / "small256" / "model-tq2_0.gguf"), "--prompt", "Hi"]) == 2
    assert "--prompt-ids" in capsys.readouterr().err  # no tokenizer in that file
    assert cli.main(["generate", "--model", "no/such/dir", "--prompt-ids", "1"]) == 2
    assert "no/such/dir" in capsys.readouterr().err
    assert cli.main(["generate", "--model", str(GOLDEN / "small256"), "--prompt-ids", "1,2,3", "--max-tokens", "2",
                     "--threads", "1"]) == 0
    assert len(capsys.readouterr().out.split()) == 2


def test_decode_measurement_accepts_a_checkpoint():
    """``python -m ryzlab decode --model PATH`` hands the path to measure_decode."""
    from ryzlab.measure import decode

    # the probe reads a buffer of the tiny model's bytes per token (ReadBench.for_working_set)
    r = decode.measure_decode(str(GOLDEN / "small256"), threads=1, tokens=1, warmup=0, bandwidth_samples=1)
    assert r["model"] == "small256" and r["seed"] is None and len(r["generated"]) == 1


# --------------------------------------------------------------------------- bad files


def _load_raises(exc, path, tensor=None, **kw):
    with pytest.raises(exc) as info:
        ryzlab.load(path, max_context=8, **kw)
    err = info.value
    assert isinstance(err, RyzlabError) and isinstance(err, CheckpointError)
    assert str(path) in str(err), str(err)
    if tensor:
        assert tensor in str(err), str(err)


def test_load_bad_hf_files(tmp_path):
    _load_raises(ModelNotFoundError, tmp_path / "nothing")
    _load_raises(ConfigError, tmp_path)  # a directory without config.json
    d = _copy(tmp_path / "a", "tiny96")
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    _load_raises(CheckpointFormatError, f)
    d = _copy(tmp_path / "b", "tiny96")
    _edit_config(d, lambda c: c["quantization_config"].update(quant_method="gptq"))
    _load_raises(UnsupportedCheckpointError, d / "config.json")
    d = _copy(tmp_path / "c", "tiny96")
    _edit_tensors(d, lambda t: t.pop(KEY_UP))
    _load_raises(MissingTensorError, d, KEY_UP)
    d = _copy(tmp_path / "d", "tiny96")
    _edit_config(d, lambda c: c.update(intermediate_size=168))
    _load_raises(TensorShapeError, d)
    d = _copy(tmp_path / "e", "tiny96")

    def poison(t):  # a packed code 3: found while the model is built, after layer 0 is packed
        dt, shape, raw = t[KEY_Q]
        t[KEY_Q] = (dt, shape, raw[:7] + bytes([0b11 << 4]) + raw[8:])

    _edit_tensors(d, poison)
    _load_raises(TernaryValueError, d / "model.safetensors", KEY_Q)


def test_load_bad_gguf_files(tmp_path):
    f = _gguf(tmp_path, "small256/model-tq2_0.gguf")
    good = f.read_bytes()
    f.write_bytes(good[:len(good) // 2])
    _load_raises(CheckpointFormatError, f)
    data = bytearray(good)
    struct.pack_into("<I", data, _tensor_info_offset(bytes(data), "blk.0.ffn_up.weight"), 99)
    f.write_bytes(bytes(data))
    _load_raises(UnsupportedCheckpointError, f, "blk.0.ffn_up.weight")
    f.write_bytes(good.replace(b"blk.0.ffn_up.weight", b"blk.0.ffn_uq.weight", 1))
    _load_raises(MissingTensorError, f, "blk.0.ffn_up.weight")
    f.write_bytes(good.replace(b"bitnet.feed_forward_length", b"bitnet.feed_forward_lengtx", 1))
    _load_raises(ConfigError, f)


def test_int8_head_packed_in_row_blocks_equals_packed_whole():
    from ryzlab.core.head import Int8Head

    rng = np.random.default_rng(0)
    M, K = 203, 70
    q = rng.integers(-127, 128, size=(M, K), dtype=np.int8)
    s = rng.uniform(0.5, 1, M).astype(np.float32)
    whole = Int8Head.from_int8(q, s)
    cuts = [0, 5, 64, 130, 131, M]
    parts = Int8Head.from_row_chunks(M, K, ((q[a:b], s[a:b]) for a, b in zip(cuts, cuts[1:])))
    assert np.array_equal(parts.data, whole.data) and np.array_equal(parts.scales, whole.scales)
    x = rng.integers(-128, 128, K, dtype=np.int8)
    assert np.array_equal(parts.gemv_int(x), whole.gemv_int(x))
    with pytest.raises(ValueError, match="cover"):
        Int8Head.from_row_chunks(M, K, [(q[:10], s[:10])])


def test_synthetic_checkpoint_writer(tmp_path):
    """tools/make_synthetic_checkpoint.py's writer (full size: 1.18 GB; here a small shape)."""
    from ryzlab.model import Config
    from ryzlab.model.synthetic import write_checkpoint

    cfg = Config("syn", hidden=128, ffn=256, layers=2, heads=2, kv_heads=1, head_dim=64, vocab=96)
    d = write_checkpoint(tmp_path / "syn", cfg, seed=1)
    ck = open_checkpoint(d)
    assert ck.format == "hf" and ck.config.tied and (ck.config.hidden, ck.config.vocab) == (128, 96)
    w, s = ck.ternary(1, "down")
    assert w.shape == (128, 256) and set(np.unique(w).tolist()) == {-1, 0, 1} and s > 0
    m = ryzlab.load(d, max_context=8)
    assert m.config.name == "syn" and len(m.generate([1, 2], 3, threads=1)) == 3
