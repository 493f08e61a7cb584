"""Random crops of longer training audio: energy-centred long windows, crops that vary per epoch, eval unchanged."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from ft_helpers import make_model, small_model_config, synthetic_split, train_config

from mmedge.config import AudioAugmentConfig, AugmentConfig
from mmedge.data.audio import fit_audio
from mmedge.data.sample import Dataset, Sample
from mmedge.specs import AudioSpec
from mmedge.train import augment
from mmedge.train.crop import crop_applies, long_waveforms
from mmedge.train.loop import fit
from mmedge.train.modes import build_plans

RATE = 8000


def burst_clip(seconds: float = 3.0, at: float = 2.0) -> np.ndarray:
    """Quiet noise with a loud 0.4 s burst starting `at` seconds in."""
    rng = np.random.default_rng(0)
    wave = (0.01 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)
    wave[int(at * RATE) : int((at + 0.4) * RATE)] += 0.5 * rng.standard_normal(int(0.4 * RATE)).astype(np.float32)
    return wave


def test_long_training_audio_is_centred_on_the_eval_window() -> None:
    wave = burst_clip()
    clip = fit_audio(wave, RATE, RATE, 1.0)
    long = fit_audio(wave, RATE, RATE, 1.0, context=1.5)
    assert clip.shape == (RATE,) and long.shape == (RATE * 3 // 2,)
    np.testing.assert_array_equal(long[RATE // 4 : RATE // 4 + RATE], clip)  # the eval window, in the middle
    assert np.abs(long[: RATE // 4]).max() > 0 and np.abs(long[-RATE // 4 :]).max() > 0  # real context both sides
    np.testing.assert_array_equal(fit_audio(wave, RATE, RATE, 1.0, context=1.0), clip)


def test_short_clips_keep_their_start_and_files_match_arrays(tmp_path) -> None:
    short = burst_clip(0.7, 0.1)
    long = fit_audio(short, RATE, RATE, 1.0, context=1.5)
    np.testing.assert_array_equal(long[: len(short)], short)
    assert not long[len(short) :].any()
    crops = augment.random_crop(torch.from_numpy(long).repeat(6, 1), RATE, torch.Generator().manual_seed(0))
    assert all(torch.equal(row, torch.from_numpy(fit_audio(short, RATE, RATE, 1.0))) for row in crops)
    ds = Dataset("long", ["a", "b"], [Sample(label=0, audio=burst_clip(), sample_rate=RATE), Sample(label=1, text="x")])
    out = long_waveforms(ds, AudioSpec(RATE, 1.0), 1.5)
    assert out is not None
    np.testing.assert_array_equal(out[0].numpy(), fit_audio(burst_clip(), RATE, RATE, 1.0, context=1.5))
    assert out is not None and out.shape == (2, RATE * 3 // 2) and not out[1].any()
    only_short = Dataset("short", ["a"], [Sample(label=0, audio=short, sample_rate=RATE)])
    assert long_waveforms(only_short, AudioSpec(RATE, 1.0), 1.5) is None  # nothing to crop: no long copy


def only_crop() -> AugmentConfig:
    """Audio augmentation reduced to the random crop (no gain, speed, shift, noise, low-pass or masks)."""
    audio = AudioAugmentConfig(gain_db=0.0, shift=0.0, speed_prob=0.0, noise_prob=0.0, lowpass_prob=0.0,
                               time_masks=0, freq_masks=0)
    return AugmentConfig(audio=audio)


def test_crops_vary_across_epochs_and_eval_sees_clip_length_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(set(), small_model_config(("audio",)))
    samples = model.encoder("audio").samples
    assert crop_applies(model, only_crop()) and not crop_applies(model, AugmentConfig(
        audio=AudioAugmentConfig(crop_factor=1.0)))
    train = synthetic_split(8, 0, samples=samples, n_modalities=1)
    train.crop["waveform"] = torch.randn(8, samples * 3 // 2, generator=torch.Generator().manual_seed(5))
    val = synthetic_split(8, 1, samples=samples, n_modalities=1)
    crops: list[torch.Tensor] = []
    real_crop = augment.random_crop
    monkeypatch.setattr(augment, "random_crop", lambda w, n, g: crops.append(real_crop(w, n, g)) or crops[-1])
    seen_in_eval: list[torch.Tensor] = []
    model.encoder("audio").register_forward_pre_hook(
        lambda mod, args: None if mod.training else seen_in_eval.append(args[0].clone()))
    cfg = train_config("full", epochs=3, batch_size=8)
    cfg.augment = only_crop()
    fit(model, train, val, cfg, build_plans(model, cfg)[0], 4)
    starts: dict[int, set[int]] = {}
    long = train.crop["waveform"]
    for batch in crops:
        assert batch.shape == (8, samples)
        for row in batch:  # which training row and offset each crop came from
            hits = [(i, s) for i in range(8) for s in range(long.shape[1] - samples + 1)
                    if torch.equal(long[i, s : s + samples], row)]
            assert len(hits) == 1
            starts.setdefault(hits[0][0], set()).add(hits[0][1])
    assert len(crops) == 3 and len(starts) == 8
    assert sum(len(s) > 1 for s in starts.values()) >= 6  # windows move between epochs
    assert seen_in_eval and all(torch.equal(x, val.inputs["waveform"]) for x in seen_in_eval)


def test_cached_audio_keeps_the_clip_length(caplog: pytest.LogCaptureFixture) -> None:
    model = make_model({"audio"}, small_model_config(("audio",)))
    samples = model.encoder("audio").samples
    train = synthetic_split(8, 0, samples=samples, n_modalities=1)
    train.crop["waveform"] = torch.randn(8, samples * 3 // 2)
    cfg = train_config("frozen", epochs=1, batch_size=8)
    plan = build_plans(model, cfg)[0]
    assert "audio" in plan.frozen
    with caplog.at_level(logging.INFO, logger="mmedge.train.crop"):
        fit(model, train, synthetic_split(8, 1, samples=samples, n_modalities=1), cfg, plan, 4)
    assert "no random crop" in caplog.text


def test_train_run_crops_long_manifest_audio(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A manifest of 2 s files (1 s clips): the run reads them longer, crops them, and says so."""
    import json

    import soundfile as sf

    from mmedge.models.presets import preset_config
    from mmedge.train.run import train_run

    rng = np.random.default_rng(1)
    rows = []
    for i in range(48):
        t = np.arange(2 * RATE) / RATE
        wave = 0.3 * np.sin(2 * np.pi * (300 + 400 * (i % 2)) * t) * (t > rng.uniform(0.2, 1.0))
        sf.write(tmp_path / f"{i}.wav", wave.astype(np.float32), RATE)
        rows.append(json.dumps({"audio": f"{i}.wav", "label": ["low", "high"][i % 2]}))
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    cfg = preset_config("tiny")
    cfg.data, cfg.model.modalities, cfg.train.epochs = str(tmp_path / "m.jsonl"), ["audio"], 2
    with caplog.at_level(logging.INFO, logger="mmedge.train.crop"):
        result = train_run(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    assert "clips longer than the 1 s clip are read at up to 1.5 × it" in caplog.text
    assert result.metrics["test"]["all"]["n"] > 0
