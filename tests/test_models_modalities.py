"""The encoder's image and audio front-ends with every registered attention, and one tiny
end-to-end accuracy run per modality (image, audio) through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from harness.attention import list_attentions
from harness.cli import app
from harness.models import EncoderClassifier, EncoderConfig, build_model, count_parameters
from harness.suites.base import DataOptions
from tests.test_accuracy import TRAIN, run_cli, tiny_profile
from tests.test_data_modalities import needs_espeak, write_audio_folder

ATTENTIONS = list_attentions()
SMALL = dict(num_labels=3, hidden_size=32, num_layers=2, num_heads=2, ffn_size=64, seed=0)
OPTIONS = {"sparse": {"block_size": 8}, "lsh": {"chunk_size": 8}}


def image_model(attention: str = "standard", patch_size: int = 2, **kw) -> EncoderClassifier:
    return build_model(attention, vocab_size=1, max_position=1, modality="image",
                       image_size=(16, 16), num_channels=1, patch_size=patch_size,
                       attention_options=OPTIONS.get(attention), **{**SMALL, **kw})


def audio_model(attention: str = "standard", **kw) -> EncoderClassifier:
    return build_model(attention, vocab_size=1, max_position=64, modality="audio",
                       num_mel_bins=20, attention_options=OPTIONS.get(attention),
                       **{**SMALL, **kw})


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_trains_on_images_and_audio(attention: str) -> None:
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(3, 1, 16, 16, generator=gen)
    frames = torch.randn(3, 64, 20, generator=gen)
    mask = torch.arange(64)[None] < torch.tensor([64, 40, 17])[:, None]
    labels = torch.tensor([0, 1, 2])
    for model, inputs, m in ((image_model(attention), pixels, None),
                             (audio_model(attention), frames, mask)):
        out = model(inputs, attention_mask=m, labels=labels)
        assert out.logits.shape == (3, 3)
        out.loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    # the transformers names reach the same front-end
    model = image_model(attention).eval()
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, model(pixel_values=pixels).logits)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_parameter_counts_within_ten_percent_per_modality(attention: str) -> None:
    for build in (image_model, audio_model):
        standard = count_parameters(build("standard", hidden_size=128, ffn_size=512,
                                          num_heads=4))
        other = count_parameters(build(attention, hidden_size=128, ffn_size=512, num_heads=4))
        assert abs(other - standard) <= 0.10 * standard, (build.__name__, attention)


def test_patch_and_pixel_front_ends_have_the_expected_layout() -> None:
    h = SMALL["hidden_size"]
    pixel = image_model(patch_size=1)
    assert pixel.config.sequence_length == 256
    assert pixel.patch_embeddings.weight.shape == (h, 1, 1, 1)
    patch = image_model(patch_size=4)
    assert patch.config.sequence_length == 16 and patch.row_embeddings.weight.shape == (4, h)
    assert not hasattr(patch, "token_embeddings") and not hasattr(patch, "position_embeddings")
    hidden = patch.eval().encode(torch.rand(2, 1, 16, 16))
    assert hidden.shape == (2, 16, h)
    # patch k (row-major) sees only its own 4x4 pixels: changing another patch leaves it alone
    with torch.no_grad():
        a = patch.embed(torch.zeros(1, 1, 16, 16))
        img = torch.zeros(1, 1, 16, 16)
        img[..., 4:8, 0:4] = 1.0  # patch (1, 0) = index 4
        b = patch.embed(img)
    changed = (a - b).abs().sum(-1)[0] > 0
    assert changed.tolist() == [i == 4 for i in range(16)]
    audio = audio_model()
    assert audio.frame_embeddings.weight.shape == (h, 20)


@pytest.mark.parametrize("build", [image_model, audio_model])
def test_save_load_round_trip_keeps_the_modality(build, tmp_path) -> None:
    model = build().eval()
    inputs = torch.rand(2, 1, 16, 16) if model.config.modality == "image" else torch.randn(
        2, 30, 20)
    with torch.no_grad():
        before = model(inputs).logits
    model.save_pretrained(tmp_path)
    loaded = EncoderClassifier.from_pretrained(tmp_path).eval()
    assert loaded.config.modality == model.config.modality
    assert loaded.config.image_size == model.config.image_size
    with torch.no_grad():
        assert torch.equal(loaded(inputs).logits, before)


def test_audio_padding_frames_do_not_change_predictions() -> None:
    model = audio_model().eval()
    frames = torch.randn(1, 30, 20)
    padded = torch.cat([frames, torch.randn(1, 34, 20)], dim=1)
    mask = torch.arange(64)[None] < 30
    with torch.no_grad():
        short = model(frames).logits
        long = model(padded, attention_mask=mask).logits
        unmasked = model(padded).logits
    assert torch.allclose(short, long, atol=1e-5)
    assert not torch.allclose(short, unmasked, atol=1e-5)  # the mask is what makes them agree


def test_bad_modality_inputs_and_configs_raise() -> None:
    image, audio = image_model(), audio_model()
    with pytest.raises(ValueError, match="pixel_values"):
        image(input_ids=torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        image(torch.rand(2, 1, 16, 16), attention_mask=torch.ones(2, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(batch, 1, 16, 16\)"):
        image(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="float"):
        image(torch.ones(2, 1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="mel bins"):
        audio(torch.randn(2, 10, 21))
    with pytest.raises(ValueError, match="max_position"):
        audio(torch.randn(2, 65, 20))
    with pytest.raises(ValueError, match="once"):
        audio(torch.randn(2, 10, 20), input_features=torch.randn(2, 10, 20))
    with pytest.raises(ValueError, match="patch_size"):
        EncoderConfig(modality="image", image_size=[16, 16], patch_size=3)
    with pytest.raises(ValueError, match="modality"):
        EncoderConfig(modality="video")
    with pytest.raises(ValueError, match="image_size"):
        EncoderConfig(modality="image", image_size=[16])


def test_run_data_options_for_folders() -> None:
    assert DataOptions(data_dir="x", data_format="imagefolder").media_given
    assert not DataOptions(data_dir="x", data_format="imagefolder").given
    assert not DataOptions(dataset="cifar10", data_format="imagefolder").given
    assert DataOptions(dataset="glue/sst2").given
    with pytest.raises(ValueError, match="data_format"):
        DataOptions(data_dir="x")
    with pytest.raises(ValueError, match="data_dir"):
        DataOptions(data_format="audiofolder")


# ------------------------------------------------------------------------- end to end (CLI)
IMAGE_TRAIN = {**TRAIN, "patch_size": 2}


def run_cli_fails(tmp_path: Path, profile: dict, *extra: str):
    tmp_path.mkdir(parents=True)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return CliRunner().invoke(app, ["run", "accuracy", "--profile", str(path), "--out",
                                    str(tmp_path / "runs"), "--no-progress", *extra])


def test_accuracy_end_to_end_on_digits_and_an_audio_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    write_audio_folder(tmp_path / "sounds", per_class=10,  # >= 20 files per split
                       splits=("train", "validation", "test"))
    profile = tiny_profile(
        tasks=[{"name": "digits", "params": {"n_val": 20, "n_test": 40},
                "train": IMAGE_TRAIN}],
        media={"params": {"max_frames": 30, "max_train": 8}},
    )
    result, _, records = run_cli(tmp_path, profile, "--data-dir", str(tmp_path / "sounds"),
                                 "--data-format", "audiofolder")
    assert result.exit_code == 0, result.output
    cells = [r for r in records if r["metric"] == "macro_f1" and r["cell"] != "summary:accuracy"]
    assert {(r["params"]["task"], r["label"]) for r in cells} == {
        (task, label) for task in ("digits", "media")
        for label in ("standard", "sparse", "lsh", "linear[favor]", "no-attention")}
    # every cell ran (summary comparisons on a budget this tiny may be no_signal-skipped)
    assert all(r["status"] == "ok" for r in records if r["cell"] != "summary:accuracy")
    assert {r["params"].get("data") for r in cells if r["params"]["task"] == "media"} == {
        "sounds"}
    fidelity = [r for r in records if r["metric"] == "fidelity_rel_error"]
    assert {r["params"]["task"] for r in fidelity} == {"digits", "media"}
    bad = CliRunner().invoke(app, ["run", "accuracy", "--data-dir", str(tmp_path / "nowhere"),
                                   "--data-format", "audiofolder", "--no-progress"])
    assert bad.exit_code == 2 and "not a folder" in bad.output
    bad = CliRunner().invoke(app, ["run", "accuracy", "--data-format", "videofolder"])
    assert bad.exit_code == 2 and "imagefolder" in bad.output
    del profile["suites"]["accuracy"]["media"]  # a profile without a media entry says so
    bad = run_cli_fails(tmp_path / "nomedia", profile, "--data-dir", str(tmp_path / "sounds"),
                        "--data-format", "audiofolder")
    assert bad.exit_code == 2 and "accuracy.media" in bad.output


@needs_espeak
def test_accuracy_end_to_end_on_speech(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    profile = tiny_profile(tasks=[{
        "name": "speech", "params": {"words": ["yes", "no"], "n_train": 16, "n_val": 4,
                                     "n_test": 8, "hop_ms": 20}, "train": TRAIN}])
    profile["attentions"] = [{"name": "standard"}, {"name": "linear"}]
    result, _, records = run_cli(tmp_path, profile)
    assert result.exit_code == 0, result.output
    f1 = [r for r in records if r["metric"] == "macro_f1" and r["cell"] != "summary:accuracy"]
    assert {r["params"]["task"] for r in f1} == {"speech"}
    assert {r["label"] for r in f1} == {"standard", "linear", "no-attention"}
    assert len(f1) == 3 and all(r["status"] == "ok" and r["n"] == 8 for r in f1)


def test_speech_cells_are_skipped_without_espeak(tmp_path, monkeypatch) -> None:
    from harness.data import speech
    from harness.suites import AttentionSpec, RunContext, get_suite
    from harness.suites.accuracy import AccuracyParams

    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    speech.synthesize.cache_clear()
    suite = get_suite("accuracy")
    params = AccuracyParams.model_validate(tiny_profile(tasks=[{
        "name": "speech", "params": {"words": ["left", "right"], "n_train": 2, "n_val": 2,
                                     "n_test": 2, "seed": 99}}])["suites"]["accuracy"])
    cell = suite.plan(params, [AttentionSpec("standard")], [0])[0]
    records = suite.run_cell(cell, params, RunContext(run_dir=tmp_path))
    assert [r.status for r in records] == ["skipped"] and "espeak-ng" in records[0].error
