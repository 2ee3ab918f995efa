"""Small transformers models built offline, to try ``harness run --model`` without the hub.

``python -m harness.models.tiny bert OUT --texts FILE.tsv`` trains a WordPiece tokenizer on the
file's first column and saves a BERT classifier built from its config (random weights unless
``--weights``); ``python -m harness.models.tiny vit OUT`` saves a ViT with its image processor.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable
from pathlib import Path

__all__ = ["make_bert", "make_vit"]


def make_bert(folder: str | Path, texts: Iterable[str], *, vocab_size: int = 2000,
              hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
              max_positions: int = 128, num_labels: int = 2, weights: bool = True,
              seed: int = 0) -> Path:
    """A BERT sequence classifier and a WordPiece tokenizer trained on ``texts``, saved with
    ``save_pretrained`` in ``folder`` (no weight file when ``weights`` is False)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=special))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_positions)
    fast.save_pretrained(folder)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=num_heads,
                        intermediate_size=4 * hidden_size, max_position_embeddings=max_positions,
                        num_labels=num_labels, pad_token_id=fast.pad_token_id)
    if weights:
        torch.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(folder)
    else:
        config.architectures = ["BertForSequenceClassification"]
        config.save_pretrained(folder)
    return folder


def make_vit(folder: str | Path, *, image_size: int = 16, patch_size: int = 4,
             hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2,
             num_labels: int = 2, seed: int = 0) -> Path:
    """A ViT image classifier (random weights) and its image processor, saved in ``folder``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = ViTConfig(image_size=image_size, patch_size=patch_size, num_channels=3,
                       hidden_size=hidden_size, num_hidden_layers=num_layers,
                       num_attention_heads=num_heads, intermediate_size=2 * hidden_size,
                       num_labels=num_labels)
    torch.manual_seed(seed)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def _texts(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        next(rows, None)
        return [row[0] for row in rows if row]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.models.tiny", description=__doc__)
    parser.add_argument("kind", choices=["bert", "vit"])
    parser.add_argument("out")
    parser.add_argument("--texts", type=Path, help="bert: csv/tsv whose first column is text")
    parser.add_argument("--max-texts", type=int, default=20000)
    parser.add_argument("--no-weights", action="store_true", help="bert: config only")
    args = parser.parse_args(argv)
    if args.kind == "bert":
        if args.texts is None:
            parser.error("bert needs --texts FILE to train its WordPiece tokenizer")
        make_bert(args.out, _texts(args.texts)[: args.max_texts], weights=not args.no_weights)
    else:
        make_vit(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
