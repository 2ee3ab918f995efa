"""Small files shaped like real inputs this project did not write (the content is its own).

* :func:`write_eec` - the Equity Evaluation Corpus layout (ID, Sentence, Template, Person, Gender,
  Race, Emotion, Emotion word): emotion templates x persons x emotion words, plus neutral
  templates whose Emotion and Emotion word cells are empty (they pair by template alone), and
  noun phrases with an empty Race, as published;
* :func:`write_crows` - CrowS-Pairs style wide pairs (sent_more, sent_less, bias_type);
* :func:`write_review_tsv` - a review corpus TSV (``sentence<TAB>label``) whose reviews are quoted
  across several lines, with tabs and doubled quotes inside;
* :func:`write_messy_csv` - UTF-8 BOM, CRLF line ends, string labels, column names with spaces and
  a quoted line break;
* :func:`write_image_folder` / :func:`write_audio_folder` - class folders mixing formats, modes,
  sizes, sample rates and channel counts, with one corrupt file each.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

EEC_COLUMNS = ["ID", "Sentence", "Template", "Person", "Gender", "Race", "Emotion",
               "Emotion word"]
EMOTION_TEMPLATES = ("<person> feels <emotion word>.", "The visit made <person> <emotion word>.")
NEUTRAL_TEMPLATES = ("I met <person> at the station.", "<person> has a new bicycle.")
PERSONS = (("Katie", "female", "white"), ("Megan", "female", "white"),
           ("Todd", "male", "white"), ("Connor", "male", "white"),
           ("Lakisha", "female", "black"), ("Keisha", "female", "black"),
           ("Jamal", "male", "black"), ("Darnell", "male", "black"),
           ("my sister", "female", ""), ("my brother", "male", ""),
           ("my aunt", "female", ""), ("my uncle", "male", ""))
WORDS = (("glad", "joy"), ("happy", "joy"), ("sad", "sadness"), ("angry", "anger"))


def eec_rows() -> list[dict[str, str]]:
    """2 emotion templates x 12 persons x 4 words + 2 neutral templates x 12 persons = 120."""
    rows = []
    for template in EMOTION_TEMPLATES + NEUTRAL_TEMPLATES:
        words = WORDS if "<emotion word>" in template else (("", ""),)
        for person, gender, race in PERSONS:
            for word, emotion in words:
                text = template.replace("<person>", person).replace("<emotion word>", word)
                rows.append({"Sentence": text[:1].upper() + text[1:], "Template": template,
                             "Person": person, "Gender": gender, "Race": race,
                             "Emotion": emotion, "Emotion word": word})
    for i, row in enumerate(rows):
        row["ID"] = f"{i:04d}"
    return rows


def write_eec(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=EEC_COLUMNS)
        writer.writeheader()
        writer.writerows(eec_rows())
    return path


CROWS_FRAMES = ("{} is {} at the office.", "Everyone said {} was {} today.",
                "{} seemed {} after the game.", "I think {} is {}.")
CROWS_WORDS = ("happy", "great", "sad", "awful", "fine")


def write_crows(path: Path) -> Path:
    """Wide pairs: ``sent_more`` names a woman, ``sent_less`` a man (bias_type gender), or the
    two name a Black and a white person (bias_type race-color); 80 rows."""
    rows = []
    pairs = {"gender": (("she", "he"), ("my sister", "my brother"), ("Katie", "Todd"),
                        ("Megan", "Connor")),
             "race-color": (("Lakisha", "Katie"), ("Jamal", "Todd"), ("Keisha", "Megan"),
                            ("Darnell", "Connor"))}
    for bias_type, names in pairs.items():
        for a, b in names:
            for frame in CROWS_FRAMES:
                for word in CROWS_WORDS:
                    more, less = frame.format(a, word), frame.format(b, word)
                    rows.append({"sent_more": more[:1].upper() + more[1:],
                                 "sent_less": less[:1].upper() + less[1:],
                                 "stereo_antistereo": "stereo", "bias_type": bias_type})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["sent_more", "sent_less", "stereo_antistereo",
                                                "bias_type"])
        writer.writeheader()
        writer.writerows(rows)
    return path


GOOD = ("wonderful", "great", "charming", "sturdy", "delightful", "excellent")
BAD = ("broken", "awful", "dull", "flimsy", "tedious", "useless")


def review(rng: np.random.Generator, label: int, domain: str, words: int) -> str:
    """A review of about ``words`` words on ``domain``, over several lines, with a quoted
    phrase and a tab inside."""
    cues = GOOD if label else BAD
    filler = ("the", "it", "was", "and", "a", f"{domain}", "really", "i", "bought", "this",
              "after", "reading", "about", "week", "use")
    lines = []
    for _ in range(max(1, words // 12)):
        line = [str(rng.choice(filler)) for _ in range(10)] + [str(rng.choice(cues))] * 2
        lines.append(" ".join(line))
    lines[0] = f'"{rng.choice(cues)}" said my friend\t{lines[0]}'
    return "\n".join(lines)


def write_review_tsv(path: Path, n: int, domain: str, *, seed: int = 0,
                     words: int = 120) -> Path:
    """``n`` multi-line reviews (half each label), quoted as csv writers quote them."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["sentence", "label"])
        for i in range(n):
            writer.writerow([review(rng, i % 2, domain, words), i % 2])
    return path


def write_messy_csv(path: Path, n: int, *, text: str = " review text ",
                    label: str = "Sentiment Label") -> Path:
    """BOM, CRLF, string labels, spaced column names, one quoted line break per ten rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([text, label])
    for i in range(n):
        cue = GOOD[i % len(GOOD)] if i % 2 else BAD[i % len(BAD)]
        body = f"row {i}: a {cue} film, \"truly\" {cue}"
        if i % 10 == 0:
            body += "\r\nsecond line"
        writer.writerow([body, "positive" if i % 2 else "negative"])
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))
    return path


SPLITS = ("train", "validation", "test")


def write_image_folder(root: Path, per_class: int = 10, corrupt: bool = True,
                       splits: tuple[str, ...] = SPLITS) -> Path:
    """Two classes (dark, light) per split folder whose files cycle through PNG (L, RGBA,
    16-bit), JPEG (RGB), BMP, GIF (P) and a palette PNG with transparency, each of its own size;
    one corrupt PNG in the first split. ``splits=("",)`` writes class folders at the root."""
    for split in splits:
        _image_classes(root / split, per_class)
    if corrupt:
        (root / splits[0] / "dark" / "broken.png").write_bytes(
            b"\x89PNG\r\n\x1a\n" + b"not an image" * 8)
    return root


def _image_classes(root: Path, per_class: int) -> None:
    from PIL import Image

    for name, value in (("dark", 30), ("light", 220)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (8 + 3 * i, 6 + 5 * (i % 4))
            kind = i % 7
            if kind == 0:
                Image.new("L", size, value).save(folder / f"{i}.png")
            elif kind == 1:
                Image.new("RGB", size, (value, value, value)).save(folder / f"{i}.jpg",
                                                                   quality=95)
            elif kind == 2:
                Image.new("RGB", size, (value, value, value)).save(folder / f"{i}.bmp")
            elif kind == 3:
                Image.new("RGB", size, (value, value, value)).convert("P").save(
                    folder / f"{i}.gif")
            elif kind == 4:
                Image.new("RGBA", size, (value, value, value, 255)).save(folder / f"{i}.png")
            elif kind == 5:
                arr = np.full(size[::-1], value * 257, dtype=np.uint16)
                Image.fromarray(arr).save(folder / f"{i}.png")  # 16-bit grayscale
            else:
                img = Image.new("P", size, 0)
                img.putpalette([value, value, value] * 256)
                img.save(folder / f"{i}.png", transparency=255)


def write_audio_folder(root: Path, per_class: int = 10, corrupt: bool = True,
                       splits: tuple[str, ...] = SPLITS) -> Path:
    """Two classes (low, high tone) per split folder whose files cycle through WAV 8-bit
    unsigned, 16 and 24-bit, FLAC and OGG, mono and stereo, at 8, 11.025, 16 and 22.05 kHz; one
    corrupt WAV in the first split."""
    for split in splits:
        _audio_classes(root / split, per_class)
    if corrupt:
        (root / splits[0] / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    return root


def _audio_classes(root: Path, per_class: int) -> None:
    import soundfile

    formats = (("WAV", "PCM_U8", "wav"), ("WAV", "PCM_16", "wav"), ("WAV", "PCM_24", "wav"),
               ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"))
    rates = (8000, 11025, 16000, 22050)
    for name, freq in (("low", 300.0), ("high", 2500.0)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            fmt, subtype, ext = formats[i % len(formats)]
            rate = rates[i % len(rates)]
            t = np.arange(int(rate * 0.3)) / rate
            wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
            data = np.stack([wave, wave], axis=1) if i % 2 else wave
            soundfile.write(folder / f"{i}.{ext}", data, rate, format=fmt, subtype=subtype)
