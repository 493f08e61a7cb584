"""Training augmentation: each transform does what it says, hooks act on training batches only, seeded."""

from __future__ import annotations

import pytest
import torch

from mmedge.config import AudioAugmentConfig, AugmentConfig, ImageAugmentConfig, ModelConfig
from mmedge.errors import ConfigError
from mmedge.models.classifier import MultimodalClassifier
from mmedge.train.augment import (
    add_noise,
    attach_augmentation,
    augment_image,
    augment_waveform,
    check_augment,
    detach_augmentation,
    lowpass,
    random_crop,
    snr_db,
    spec_augment,
    speed_and_shift,
    token_dropout,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tone_with_padding(level: float, n: int = 4, length: int = 8000) -> torch.Tensor:
    """A 440 Hz tone at `level` in the first half, digital zeros in the second."""
    wave = torch.zeros(n, length)
    wave[:, : length // 2] = level * torch.sin(2 * torch.pi * 440 * torch.arange(length // 2) / 8000)
    return wave


@pytest.mark.parametrize("level", [0.9, 0.03, 0.001])
def test_noise_is_relative_to_the_clips_own_level(level: float):
    """The old fixed sigma 0.01 buried a -30 dB clip (SNR ~ 0 dB); SNR-relative noise keeps the asked SNR."""
    clean = tone_with_padding(level)
    noisy = add_noise(clean, torch.tensor([20.0, 10.0, 5.0, 30.0]), gen())
    for row, want in zip(range(4), (20.0, 10.0, 5.0, 30.0), strict=True):
        assert abs(snr_db(clean[row, :4000], noisy[row, :4000]) - want) < 1.0
    assert torch.all(noisy[:, 4000:] == 0)  # digital zero padding stays zero, as in a real padded file


def test_lowpass_removes_the_band_above_the_cutoff():
    rng = torch.Generator().manual_seed(1)
    white = torch.randn(2, 16000, generator=rng)
    out = lowpass(white, torch.tensor([3000.0, 1e9]), 16000)
    spec = torch.fft.rfft(out, dim=1).abs() ** 2
    freqs = torch.fft.rfftfreq(16000, 1 / 16000)
    assert float(spec[0, freqs > 3600].sum() / spec[0].sum()) < 1e-3  # an 8 kHz microphone's band
    torch.testing.assert_close(out[1], white[1], atol=1e-5, rtol=0)  # cutoff at/over Nyquist: unchanged


def test_speed_and_shift_move_and_stretch_with_zero_fill():
    wave = torch.zeros(2, 1000)
    wave[:, 400] = 1.0
    out = speed_and_shift(wave, torch.tensor([1.0, 1.0]), torch.tensor([100.0, -50.0]))
    assert int(out[0].argmax()) == 500 and int(out[1].argmax()) == 350
    ramp = torch.linspace(-1, 1, 1001)[None, :1000].repeat(2, 1)
    fast = speed_and_shift(ramp, torch.tensor([1.1, 0.9]), torch.zeros(2))
    assert fast[0, -10:].abs().max() == 0 and fast[1].abs().max() < 0.91  # sped up: zeros at the ends


def test_random_crop_takes_windows_of_longer_clips():
    wave = torch.arange(3000.0).repeat(8, 1)
    out = random_crop(wave, 1000, gen())
    assert out.shape == (8, 1000) and len({int(r[0]) for r in out}) > 1
    assert torch.all(out[:, 1:] - out[:, :-1] == 1)  # contiguous windows
    assert random_crop(wave[:, :1000], 1000, gen()) is not None


def test_spec_augment_masks_at_most_the_configured_widths():
    cfg = AudioAugmentConfig(time_masks=1, time_mask=0.1, freq_masks=1, freq_mask=0.125)
    ones = torch.ones(64, 1, 32, 60)
    out = spec_augment(ones, cfg, gen())
    masked_bands = (out == 0).all(dim=3).sum(dim=(1, 2))
    masked_frames = (out == 0).all(dim=2).sum(dim=(1, 2))
    assert int(masked_bands.max()) <= 4 and int(masked_frames.max()) <= 6
    assert int(masked_bands.sum()) > 0 and int(masked_frames.sum()) > 0


def test_waveform_augmentation_is_seeded_and_keeps_the_shape():
    wave = tone_with_padding(0.03, n=8)
    cfg = AudioAugmentConfig()
    a, b = augment_waveform(wave, 8000, 8000, cfg, gen(3)), augment_waveform(wave, 8000, 8000, cfg, gen(3))
    assert a.shape == wave.shape and torch.equal(a, b)
    assert not torch.equal(a, augment_waveform(wave, 8000, 8000, cfg, gen(4)))


def test_images_are_flipped_only_where_configured():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    still = ImageAugmentConfig(shift=0, rotate=0, scale=0, noise=0)
    torch.testing.assert_close(augment_image(x, still, gen()), x)  # digits: no flips by default
    flipped = augment_image(x, ImageAugmentConfig(hflip=True, shift=0, rotate=0, scale=0, noise=0), gen())
    mirrored = torch.all(flipped == x.flip(3), dim=(1, 2, 3))
    assert 10 < int(mirrored.sum()) < 54


def test_token_dropout_keeps_the_first_token():
    mask = torch.ones(200, 16, dtype=torch.int64)
    out = token_dropout(mask, 0.25, gen())
    assert torch.all(out[:, 0] == 1) and 0.2 < 1 - float(out[:, 1:].float().mean()) < 0.3


@pytest.mark.parametrize("bad", [AudioAugmentConfig(snr_db=[30.0, 5.0]), AudioAugmentConfig(speed=0.7),
                                 AudioAugmentConfig(lowpass_prob=2.0)])
def test_bad_settings_are_a_config_error(bad: AudioAugmentConfig):
    with pytest.raises(ConfigError, match=r"train\.augment"):
        check_augment(AugmentConfig(audio=bad))


def test_hooks_act_on_training_batches_only_and_reattach_replaces():
    torch.manual_seed(0)
    model = MultimodalClassifier(ModelConfig(modalities=["audio"]), 10, 0)
    enc = model.encoder("audio")
    wave = tone_with_padding(0.03, n=4)
    seen: list[torch.Tensor] = []
    probe = enc.frontend.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    summary = attach_augmentation(model, AugmentConfig(), seed=0)
    attach_augmentation(model, AugmentConfig(), seed=0)  # the loop re-attaches every epoch: never doubled
    assert summary == {"audio": "waveform + SpecAugment"}
    assert len(enc._forward_pre_hooks) == 1
    with torch.no_grad():
        enc.eval()
        enc(wave)  # validation, evaluation, export
        enc.train()
        enc(wave)  # a training batch
    assert torch.equal(seen[0], wave) and not torch.allclose(seen[1], wave, atol=1e-4)
    assert detach_augmentation(model) == 2 and len(enc._forward_pre_hooks) == 0
    probe.remove()
