"""The batched augmentations against TorchIO's own transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from scipy import ndimage as ndi
from torchio.transforms.augmentation.intensity.random_motion import Motion

from spineseg_core.data import batch_augment as ba


def _image(h: int = 48, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 1, h, w)
    x[..., h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 1.0
    x[..., 5:9, 4:30] = 0.5
    return x + 0.05 * torch.rand(x.shape, generator=g)


def _tio_image(x: torch.Tensor, spacing=(1.0, 1.0)) -> tio.ScalarImage:
    # (1, 1, H, W) -> TorchIO's (C, X, Y, Z) with a singleton third axis, like a 2D slice.
    return tio.ScalarImage(tensor=x[0].unsqueeze(-1).clone(),
                           affine=np.diag([spacing[0], spacing[1], 1.0, 1.0]))


@pytest.mark.parametrize("sigma", [(0.0, 0.0), (0.7, 1.9), (2.0, 0.3)])
def test_blur_matches_torchio(sigma):
    x = _image()
    ref = tio.Blur(std=(sigma[0], sigma[1], 0.0))(_tio_image(x)).data[0, ..., 0]
    ours = ba.gaussian_blur(x, torch.tensor([sigma]))[0, 0]
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-5)


def test_blur_per_sample_sigma_and_spacing_in_mm():
    x = torch.cat([_image(seed=1), _image(seed=2)])
    sig = torch.tensor([[1.0, 0.5], [0.2, 1.5]])
    out = ba.gaussian_blur(x, sig)
    for i in range(2):
        ref = ndi.gaussian_filter(x[i, 0].numpy(), sig[i].numpy())
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=2e-4)


@pytest.mark.parametrize("num_ghosts,axis,intensity", [(4, 0, 0.5), (7, 1, 1.0), (10, 0, 0.8)])
def test_ghosting_matches_torchio(num_ghosts, axis, intensity):
    x = _image()
    ref = tio.Ghosting(num_ghosts=num_ghosts, axis=axis, intensity=intensity,
                       restore=None)(_tio_image(x)).data[0, ..., 0]
    ours = ba.add_ghosting(x, torch.tensor([num_ghosts]), torch.tensor([axis]),
                           torch.tensor([intensity]))[0, 0]
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-4)


def _torchio_compose(copies: np.ndarray, times: np.ndarray) -> np.ndarray:
    # TorchIO's Motion.add_artifact after resampling: its own sort, then its segment rule.
    spectra = [torch.fft.fftshift(torch.fft.fftn(torch.from_numpy(c))) for c in copies]
    Motion.sort_spectra(spectra, times)
    result = torch.empty_like(spectra[0])
    last = result.shape[-1]
    idx = [int(v) for v in (last * times).astype(int).tolist()] + [last]
    ini = 0
    for spec, fin in zip(spectra, idx, strict=True):
        result[..., ini:fin] = spec[..., ini:fin]
        ini = fin
    return torch.fft.ifftn(torch.fft.ifftshift(result)).real.numpy()


@pytest.mark.parametrize("times", [[0.3, 0.62], [0.2, 0.45], [0.55, 0.8], [0.4]])
def test_kspace_composition_follows_torchio(times):
    rng = np.random.default_rng(3)
    t = len(times)
    copies = rng.normal(size=(t + 1, 12, 16)).astype(np.float32)
    ref = _torchio_compose(copies, np.array(times))
    ours = ba.compose_kspace(torch.from_numpy(copies)[None, :, None],
                             torch.tensor([times]))[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_motion_without_movement_is_identity_and_translation_moves_content():
    x = _image()
    zero = ba.add_motion(x, torch.zeros(1, 2), torch.zeros(1, 2, 2), torch.tensor([[0.3, 0.6]]))
    torch.testing.assert_close(zero, x, atol=1e-5, rtol=1e-5)
    moved = ba.rigid_warp(x, torch.zeros(1, 1), torch.tensor([[[3.0, -2.0]]]))[0, 0, 0]
    torch.testing.assert_close(moved[10:40, 6:30], x[0, 0, 7:37, 8:32], atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_turns_a_square_image():
    x = _image(32, 32)
    rot = ba.rigid_warp(x, torch.tensor([[90.0]]), torch.zeros(1, 1, 2))[0, 0, 0]
    # Positive angles turn the content counter-clockwise as displayed (rows down, cols right).
    torch.testing.assert_close(rot, torch.rot90(x[0, 0], k=1, dims=(0, 1)), atol=1e-5, rtol=0)


def test_noise_statistics_match_torchio():
    torch.manual_seed(0)
    x = torch.zeros(400, 1, 16, 16)
    cfg = ba.BatchAugmentConfig(p_noise=1.0, p_blur=0, p_motion=0, p_ghosting=0)
    ours = ba.BatchAugment(cfg)(x, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    noise = tio.RandomNoise()
    ref = torch.stack([noise(_tio_image(x[i:i + 1])).data[0, ..., 0] for i in range(400)])
    ours_std = ours.flatten(1).std(dim=1)
    ref_std = ref.flatten(1).std(dim=1)
    # Per-sample std ~ U(0, 0.25) in both: same mean (0.125) and spread (0.072).
    assert float(ours_std.mean()) == pytest.approx(0.125, abs=0.01)
    assert float(ref_std.mean()) == pytest.approx(0.125, abs=0.01)
    assert float(ours_std.std()) == pytest.approx(float(ref_std.std()), abs=0.01)
    assert float(ours.flatten().std()) == pytest.approx(ba.expected_noise_std(cfg), rel=0.05)


def test_probabilities_and_determinism():
    x = _image().repeat(64, 1, 1, 1)
    none = ba.BatchAugment(ba.BatchAugmentConfig(0, 0, 0, 0))(x)
    torch.testing.assert_close(none, x)
    aug = ba.BatchAugment()
    a = aug(x, spacing=(1.2, 1.2), generator=torch.Generator().manual_seed(5))
    b = aug(x, spacing=(1.2, 1.2), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    changed = (a - x).flatten(1).abs().amax(dim=1) > 1e-6
    # Each sample is untouched with probability 0.75 ** 4 ~ 0.32.
    assert 0.4 < float(changed.float().mean()) < 0.95
    assert torch.isfinite(a).all()


def test_config_rejects_bad_probability():
    with pytest.raises(ValueError, match="p_blur"):
        ba.BatchAugmentConfig(p_blur=1.5)
