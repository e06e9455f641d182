"""Check `vecext advise`'s extrapolation of the rerank depth (a benchmark, not a test).

    /work/venv/bin/python bench/advise_scaling.py [--dataset DIR|synthetic:...] [--rows N]

``vecext advise`` measures, on a 20,000-row sample, the rerank depth each codec needs
for recall@10 >= 0.95 and extrapolates it to the whole table from the growth between
nested prefixes of the sample. This script does the same as advise for a few codecs,
then measures the depth on the whole table (numpy brute force for the truth, the same
held-out queries) and prints predicted against measured.

Default data: ``../shared/data/wordnet-minilm`` (117,659 x 384). ``--dataset
synthetic:n=300000,d=384`` gives a table where the depth grows faster.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import faiss
import numpy as np

from vecext.codecs import make_codec
from vecext.datasets import parse_synthetic_spec
from vecext.tools import advise as adv
from vecext.tools.bench.truth import exact_topk

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet-minilm"
CODECS = [("pq", {"m": 8}), ("pq", {"m": 16}), ("pq", {"m": 32}), ("binary", {})]


def load(spec: str, rows: int | None) -> np.ndarray:
    if spec.startswith("synthetic:"):
        x = parse_synthetic_spec(spec + ",nq=10").xb
    else:
        x = np.load(Path(spec) / "docs.f16.npy").astype(np.float32)
    return x[:rows] if rows else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=str(DATA))
    ap.add_argument("--rows", type=int, default=None, help="use the first N rows")
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--recall", type=float, default=0.95)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)

    x = load(args.dataset, args.rows)
    d = x.shape[1]
    # advise's split: shuffle, hold out queries, the sample is a prefix of the rest
    xb_all, xq = adv.split_sample(x, args.queries, seed=0)
    sample = xb_all[: args.sample]
    nb = xb_all / np.linalg.norm(xb_all, axis=1, keepdims=True)
    nq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    t0 = time.perf_counter()
    _, truth_full = exact_topk(nb, nq, 10)
    sizes = adv.prefix_sizes(len(sample), 10)
    truths = {m: adv.exact_neighbours(sample[:m], xq, 10, "cosine") for m in sizes}
    print(
        f"{len(xb_all):,} rows x {d}, {len(xq)} queries; truth in {time.perf_counter() - t0:.0f} s"
    )
    out = []
    for kind, params in CODECS:
        codec = make_codec(kind, d, "cosine", **params).train(sample[:10_000])
        depths = []
        for m in sizes:
            D = codec.distances(xq, codec.encode(sample[:m]))
            depths.append(adv.depth_for_recall(adv.code_positions(D, truths[m]), args.recall, 10))
        growth = adv.fit_growth(sizes, depths)
        n = len(xb_all)
        predicted = min(n, max(depths[-1], math.ceil(depths[-1] * (n / sizes[-1]) ** growth)))
        codes = codec.encode(xb_all)
        pos = np.vstack(
            [
                adv.code_positions(codec.distances(xq[i : i + 10], codes), truth_full[i : i + 10])
                for i in range(0, len(xq), 10)
            ]
        )
        measured = adv.depth_for_recall(pos, args.recall, 10)
        row = {
            "codec": adv.Candidate(kind, params).label,
            "depth_by_sample_size": dict(zip(sizes, depths, strict=True)),
            "growth": round(growth, 3),
            "predicted_depth": predicted,
            "measured_depth": measured,
            "ratio": round(predicted / measured, 2),
        }
        out.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": args.dataset, "results": out}, indent=2))


if __name__ == "__main__":
    main()
