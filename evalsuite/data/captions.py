"""Catalogue fields said in words: the description every prepared item (and the synthetic
catalogues) carries as its caption."""

from __future__ import annotations

from collections.abc import Mapping

GENDER_WORDS = {
    "Men": "men",
    "Women": "women",
    "Boys": "boys",
    "Girls": "girls",
    "Unisex": "men and women",
}


def catalogue_sentences(row: Mapping[str, str]) -> list[str]:
    """Natural sentences from the catalogue fields, skipping the empty ones."""
    article = row["articleType"].lower() or "footwear"
    head = f"{row['baseColour'].lower()} {article}".strip()
    if row["gender"]:
        head += f" for {GENDER_WORDS.get(row['gender'], row['gender'].lower())}"
    head = head[0].upper() + head[1:]
    sentences = [
        f"{head}: {row['productDisplayName']}." if row["productDisplayName"] else f"{head}."
    ]
    year = to_year(row["year"])
    period = " ".join(part for part in (row["season"], str(year or "")) if part)
    usage = row["usage"].lower()
    article_word = "An" if usage[:1] in tuple("aeiou") else "A"
    if usage and period:
        sentences.append(f"{article_word} {usage} style from the {period} collection.")
    elif usage:
        sentences.append(f"{article_word} {usage} style.")
    elif period:
        sentences.append(f"From the {period} collection.")
    return sentences


def describe(row: Mapping[str, str], caption: str | None, lace_colour: str | None) -> str:
    """Catalogue sentences, then the generated caption, then the shoelace annotation."""
    sentences = catalogue_sentences(row)
    if caption:
        sentences.append(caption if caption[-1] in ".!?" else caption + ".")
    if lace_colour:
        sentences.append(f"It has {lace_colour.lower()} shoelaces.")
    return " ".join(sentences)


def to_year(text: str) -> int | None:
    """The catalogue year as a number ("2012" or "2012.0"), None when absent or not a number."""
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
