"""Which rows a report section shows, and in what order: one corpus's rows, the comparable ones
(probabilities, not scores), their labels, and the headline figure that ranks them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lmpipe.lm.report.load import CorpusKey, RunData
from lmpipe.lm.report.palette import UNNORMALISED
from lmpipe.lm.report.text import count


def of_corpus(df: pd.DataFrame, key: CorpusKey) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["corpus"] == key[0]) & (df["tokenizer"] == key[1])]


def comparable(results: pd.DataFrame) -> pd.DataFrame:
    return results[~results["method"].isin(UNNORMALISED)]


def label(row: Any) -> str:
    return f"{row['method']} n={int(row['n'])}" if row["family"] == "ngram" else str(row["model"])


def settings_of(row: Any) -> dict[str, Any]:
    return json.loads(row["settings_json"] or "{}")


def split_has_oov(data: RunData, key: CorpusKey) -> dict[str, bool]:
    return {s.split: s.oov > 0 for s in of_corpus(data.splits, key).itertuples(index=False)}


def as_n(n: Any) -> int | None:
    return None if n is None or pd.isna(n) else int(n)


@dataclass(frozen=True)
class Headline:
    """Which test figure ranks the models of one corpus, and why."""

    column: str  # "perplexity" or "perplexity_excluding_oov"
    name: str
    note: str


def headline(data: RunData, key: CorpusKey) -> Headline:
    """Excluding OOV positions when the test split has OOVs that no model could learn (<unk>
    never in training: an n-gram model still gives it mass, a neural model almost none, so the
    full figure would favour n-grams for a reason that is no merit); the full perplexity
    otherwise (docs/design.md §3)."""
    test = of_corpus(data.splits, key)
    test_oov = int(test[test["split"] == "test"]["oov"].sum()) if not test.empty else 0
    if test_oov and data.unk_train_count.get(key, 0) == 0:
        return Headline(
            "perplexity_excluding_oov",
            "test perplexity excluding OOV",
            f"The test split has {count(test_oov)} out-of-vocabulary tokens and `<unk>` never "
            "occurs in training, so n-gram models give it probability mass and neural models "
            "almost none: models are ranked by **perplexity excluding the OOV positions**. Full "
            "perplexities and bits per byte (which count every token) are in the tables.",
        )
    note = "Models are ranked by **test perplexity** (every token, `</s>` included)."
    if test_oov:
        note += " `<unk>` occurs in training, so every model has learned its probability."
    return Headline("perplexity", "test perplexity", note)


def ranked(results: pd.DataFrame, column: str, family: str | None = None) -> pd.DataFrame:
    """Comparable test rows, best first (ties by model name and n, for a stable order)."""
    r = comparable(results[results["split"] == "test"])
    if family:
        r = r[r["family"] == family]
    r = r[r[column].notna()]
    return r.sort_values([column, "model", "n"], na_position="first", kind="stable")


def best_of(results: pd.DataFrame, column: str, family: str | None = None) -> Any:
    r = ranked(results, column, family)
    return None if r.empty else r.iloc[0]
