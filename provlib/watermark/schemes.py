"""Image watermarks: the encoders/decoders behind Baseline 1 and dataset watermarking.

Every scheme carries an ``n_bits`` message (32 bits for the attribution paper's Baseline 1), is keyed by a
secret integer, and offers the same interface: ``encode(images, message)``, ``soft_decode(images)`` (one
score per bit, positive = 1), ``decode(images)`` and ``bit_accuracy(images, message)``. Images are uint8
``[n, H, W, 3]`` RGB arrays, as everywhere in the workbook.

* ``DwtDctScheme`` (``"dwtdct"``): the frequency-domain algorithm of the ``invisible-watermark`` package's
  ``dwtDct`` method (``imwatermark.maxDct.EmbedMaxDct``, the watermark Stable Diffusion's reference scripts
  stamp): RGB -> YUV, one-level Haar DWT of the chroma channels, 4x4 blocks of the LL band, DCT of each block,
  and quantization-index modulation (QIM) of one DCT coefficient per block: it is set to
  ``(floor(|v| / s) + 0.25 + 0.5 * bit) * s`` with step ``s`` (36, the package's default); bits are read back
  from where ``|v| mod s`` falls and majority-voted over the blocks that carry the same bit.
  The package itself refuses images below 256x256 and pulls OpenCV and ONNX, and resizing a 32 px image up to
  embed and back down destroys the mark (every 4x4 LL block of a 256 px image becomes one 32 px pixel), so the
  algorithm is re-implemented here with PyWavelets and ``scipy.fft``. Two deviations, both needed at 32 px
  where a 32-bit message gets a single 4x4 block per bit: blocks are numbered across U and V (the package
  restarts the count per channel, so bits 16-31 would never be written), and the modulated coefficient is a
  fixed mid-frequency one (``coefficient``) rather than the block's largest AC coefficient, whose position can
  move when it is re-quantized (a bit error the package's many blocks per bit vote away, one block cannot).
* ``PatternScheme`` (``"pattern"``): spread-spectrum watermarking (Cox et al., 1997) in its "improved" form
  (ISS, Malvar & Florencio, 2003): the P_b are orthonormal pseudo-random patterns drawn from the key and
  band-limited to ``band`` cycles per image; bit b sets the image's projection on P_b to ``+-a`` (removing
  ``host_rejection`` of the image's own projection, which would otherwise drown the mark); decoding
  correlates the image with each P_b. Band-limiting to low/mid
  frequencies keeps the mark through a latent-diffusion VAE (whose 4x-8x downsampling drops fine detail) and
  through resizing, and the patterns are defined in cycles per image, so the same key works at 32 px and 512 px.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np
import pywt
from scipy.fft import dctn, idctn

from provlib.core.errors import ParameterError

SCHEMES = ("dwtdct", "pattern")

# BT.601 RGB <-> YUV as OpenCV's COLOR_BGR2YUV (U, V centred on 128 for 8-bit images)
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.299 * 0.492, -0.587 * 0.492, (1 - 0.114) * 0.492],
                        [(1 - 0.299) * 0.877, -0.587 * 0.877, -0.114 * 0.877]])
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV)
_CHROMA_OFFSET = np.array([0.0, 128.0, 128.0])


def check_message(message, n_bits: int) -> np.ndarray:
    """A message as a uint8 array of 0/1 of length ``n_bits``; anything else raises naming ``message``."""
    bits = np.asarray(message)
    if bits.ndim != 1 or len(bits) != n_bits or not np.isin(bits, (0, 1)).all():
        raise ParameterError("message", f"a bit string of {n_bits} zeros and ones", message)
    return bits.astype(np.uint8)


def random_message(n_bits: int, seed: int) -> np.ndarray:
    """A seeded random message (each owner / licensee gets its own)."""
    return np.random.default_rng(seed).integers(0, 2, n_bits).astype(np.uint8)


def message_hex(message) -> str:
    """Compact printable form of a message for tables."""
    bits = np.asarray(message, dtype=np.uint8)
    return np.packbits(np.pad(bits, (0, -len(bits) % 8))).tobytes().hex()


def as_image_batch(images, parameter: str = "images") -> np.ndarray:
    """uint8 [n, H, W, 3] from one image or a batch; raises naming ``parameter`` otherwise."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ParameterError(parameter, "uint8 RGB images shaped [n, H, W, 3]", (images.shape, str(images.dtype)))
    return images


class WatermarkScheme:
    """Common interface: subclasses implement ``_embed`` (one float image) and ``_correlate``.

    ``calibrated(clean_images)`` returns a copy whose soft scores are measured from the mean score of the
    owner's own clean images (the content's average projection, which is not the mark); the owner always
    has such images: its generations before stamping, or its dataset before marking.
    """

    name = "scheme"

    def __init__(self, n_bits: int = 32, key: int = 0):
        if not isinstance(n_bits, (int, np.integer)) or n_bits < 1:
            raise ParameterError("n_bits", "a positive number of message bits", n_bits)
        self.n_bits, self.key = int(n_bits), int(key)
        self.offset = np.zeros(self.n_bits)

    # -- to override ---------------------------------------------------------------------------
    def min_side(self) -> int:
        return 1

    def _embed(self, image: np.ndarray, bits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _correlate(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def check_images(self, images) -> np.ndarray:
        images = as_image_batch(images)
        side = self.min_side()
        if min(images.shape[1:3]) < side:
            raise ParameterError("images", f"images of at least {side}x{side} px for the {self.name} scheme with "
                                 f"{self.n_bits} bits", images.shape[1:3])
        return images

    def encode(self, images, message) -> np.ndarray:
        """The images with ``message`` embedded (uint8, same shape)."""
        images = self.check_images(images)
        bits = check_message(message, self.n_bits)
        marked = [self._embed(image.astype(np.float64), bits) for image in images]
        return np.clip(np.rint(np.stack(marked)), 0, 255).astype(np.uint8)

    def soft_decode(self, images) -> np.ndarray:
        """Float [n, n_bits]: positive where the image carries a 1 (after the calibration offset, if any)."""
        return self._correlate(self.check_images(images)) - self.offset

    def calibrated(self, clean_images) -> "WatermarkScheme":
        """A copy that subtracts the mean soft score of ``clean_images`` (unmarked images of the owner)."""
        twin = copy.copy(self)
        twin.offset = self._correlate(self.check_images(clean_images)).mean(0)
        return twin

    def decode(self, images) -> np.ndarray:
        """uint8 [n, n_bits] bits read from every image."""
        return (self.soft_decode(images) > 0).astype(np.uint8)

    def bit_accuracy(self, images, message) -> np.ndarray:
        """Share of the message's bits read correctly from each image: 1.0 marked, about 0.5 unmarked."""
        bits = check_message(message, self.n_bits)
        return (self.decode(images) == bits[None]).mean(1)

    def describe(self) -> dict:
        return {"scheme": self.name, "n_bits": self.n_bits, "key": self.key}


class DwtDctScheme(WatermarkScheme):
    """invisible-watermark's ``dwtDct`` (Haar DWT + 4x4 block DCT + QIM on the chroma channels), see module doc."""

    name = "dwtdct"

    def __init__(self, n_bits: int = 32, key: int = 0, step: float = 36.0, block: int = 4,
                 coefficient: tuple = (1, 1), channels: tuple = (1, 2)):
        super().__init__(n_bits, key)
        if step <= 0:
            raise ParameterError("step", "a positive quantization step", step)
        if not (0 <= coefficient[0] < block and 0 <= coefficient[1] < block) or tuple(coefficient) == (0, 0):
            raise ParameterError("coefficient", f"an AC position (row, column) inside a {block}x{block} block", coefficient)
        self.step, self.block, self.coefficient, self.channels = float(step), int(block), tuple(coefficient), tuple(channels)

    def min_side(self) -> int:
        # blocks of the LL band (half size), over all channels, must hold every bit at least once
        per_side = int(np.ceil(np.sqrt(self.n_bits / len(self.channels))))
        return 2 * self.block * per_side

    def _blocks(self, shape) -> list[tuple[int, int, int, int]]:
        """(channel, row, col, bit) of every LL block, numbered across channels so every bit is used."""
        rows, cols = shape[0] // 2 // self.block, shape[1] // 2 // self.block
        places = [(c, i, j) for c in self.channels for i in range(rows) for j in range(cols)]
        return [(c, i, j, n % self.n_bits) for n, (c, i, j) in enumerate(places)]

    def _yuv_ll(self, image: np.ndarray):
        h, w = image.shape[0] // 4 * 4, image.shape[1] // 4 * 4
        yuv = image @ _RGB_TO_YUV.T + _CHROMA_OFFSET
        bands = {c: pywt.dwt2(yuv[:h, :w, c], "haar") for c in self.channels}
        return yuv, bands, (h, w)

    def _embed(self, image, bits):
        yuv, bands, (h, w) = self._yuv_ll(image)
        b, (u, v) = self.block, self.coefficient
        for channel, i, j, bit in self._blocks((h, w)):
            ll = bands[channel][0]
            coefficients = dctn(ll[i * b:(i + 1) * b, j * b:(j + 1) * b], norm="ortho")
            value = coefficients[u, v]
            coefficients[u, v] = np.sign(value or 1.0) * (np.floor(abs(value) / self.step) + 0.25 + 0.5 * bits[bit]) * self.step
            ll[i * b:(i + 1) * b, j * b:(j + 1) * b] = idctn(coefficients, norm="ortho")
        for channel, (ll, details) in bands.items():
            yuv[:h, :w, channel] = pywt.idwt2((ll, details), "haar")
        return (yuv - _CHROMA_OFFSET) @ _YUV_TO_RGB.T

    def _correlate(self, images):
        b, (u, v) = self.block, self.coefficient
        out = np.zeros((len(images), self.n_bits))
        for n, image in enumerate(images):
            _, bands, (h, w) = self._yuv_ll(image.astype(np.float64))
            votes, counts = np.zeros(self.n_bits), np.zeros(self.n_bits)
            for channel, i, j, bit in self._blocks((h, w)):
                value = dctn(bands[channel][0][i * b:(i + 1) * b, j * b:(j + 1) * b], norm="ortho")[u, v]
                # a 1 sits at 0.75 of a quantization cell, a 0 at 0.25: vote +1 / -1 by the half the value is in
                votes[bit] += 1.0 if (abs(value) % self.step) > 0.5 * self.step else -1.0
                counts[bit] += 1
            out[n] = votes / np.maximum(counts, 1)
        return out

    def describe(self) -> dict:
        return {**super().describe(), "step": self.step, "block": self.block, "coefficient": str(self.coefficient)}


def _band_mask(height: int, width: int, band: tuple) -> np.ndarray:
    """bool [H, W//2 + 1]: the rfft2 frequencies whose radius lies inside ``band`` cycles per image."""
    radius = np.hypot((np.fft.fftfreq(height) * height)[:, None], (np.fft.rfftfreq(width) * width)[None, :])
    return (radius >= band[0]) & (radius <= band[1])


@lru_cache(maxsize=8)
def band_basis(height: int, width: int, band: tuple) -> np.ndarray:
    """Orthonormal [d, H*W*3] basis of the RGB images whose spectrum lies inside ``band`` cycles per image."""
    vectors = []
    for channel in range(3):
        for i, j in np.argwhere(_band_mask(height, width, band)):
            for part in (1.0, 1.0j):  # cosine and sine of each frequency
                spectrum = np.zeros((3, height, width // 2 + 1), complex)
                spectrum[channel, i, j] = part
                vectors.append(np.fft.irfft2(spectrum, s=(height, width)).transpose(1, 2, 0).ravel())
    vectors = np.array(vectors)
    vectors = vectors[np.linalg.norm(vectors, axis=1) > 1e-9]  # the sine of a self-conjugate frequency is zero
    q, r = np.linalg.qr(vectors.T)
    return np.ascontiguousarray(q[:, np.abs(np.diag(r)) > 1e-9].T)


@lru_cache(maxsize=8)
def cell_basis(height: int, width: int, grid: int) -> np.ndarray:
    """Orthonormal [grid*grid*3, H*W*3] basis of images constant on each cell of a ``grid`` x ``grid`` layout, per
    colour channel: the coarse colour layout an image-level signature can change (one cell per latent pixel of an
    8x autoencoder at 32 px)."""
    if not isinstance(grid, (int, np.integer)) or grid < 1 or height % grid or width % grid:
        raise ParameterError("grid", f"a positive number of cells that divides the image side ({height}x{width})", grid)
    rows, cols = np.arange(height) * grid // height, np.arange(width) * grid // width
    cell = (rows[:, None] * grid + cols[None, :]).ravel()
    vectors = np.zeros((grid * grid * 3, height * width * 3))
    for channel in range(3):
        for c in range(grid * grid):
            image = np.zeros((height * width, 3))
            image[cell == c, channel] = 1.0
            vectors[channel * grid * grid + c] = image.ravel() / np.sqrt((cell == c).sum())
    return vectors


def _random_band_images(rng, n: int, height: int, width: int, band: tuple) -> np.ndarray:
    """[n, H*W*3] images with Gaussian spectra inside ``band`` (a random draw from the band, without its basis)."""
    inside = _band_mask(height, width, band)
    if inside.sum() * 3 < n:
        raise ParameterError("band", f"a frequency band with room for {n} patterns at {height}x{width}", band)
    shape = (n, 3) + inside.shape
    spectra = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * inside
    return np.fft.irfft2(spectra, s=(height, width)).transpose(0, 2, 3, 1).reshape(n, -1)


def fit_transmitted_subspace(round_trip, probe_images: np.ndarray, content_images: np.ndarray, band: tuple,
                             transmitted: int, dims: int, probe: float = 60.0):
    """Directions of ``band`` that ``round_trip`` (a VAE's encode-decode) passes well and image content barely uses.

    ``round_trip`` maps float images [n, H, W, 3] in 0-255 to the same. Two steps, both on the owner's side:

    1. *Transmitted*: every band direction is added to ``probe_images`` with amplitude ``probe``; the mean
       response, projected back on the band, estimates the pipeline's linear response M on the band, and the top
       ``transmitted`` eigenvectors of its symmetric part are kept (gain 1 = passed intact, 0 = removed).
    2. *Quiet*: of those, the ``dims`` directions in which ``content_images`` (after the round trip) have the
       smallest second moment. Content there neither drowns the mark nor biases it for a given message, and
       host rejection (which removes the content's projection) costs little image quality there.

    Returns orthonormal rows [dims, H*W*3], each direction's gain through the round trip, and the content's RMS
    projection on it (0-255 units).
    """
    probe_images = as_image_batch(probe_images, "probe_images").astype(np.float64)
    content_images = as_image_batch(content_images, "content_images").astype(np.float64)
    h, w = probe_images.shape[1:3]
    basis = band_basis(h, w, tuple(band))
    if not dims <= transmitted <= len(basis):
        raise ParameterError("wm_pattern_subspace", f"dims <= transmitted <= the band's {len(basis)} directions at "
                             f"{h}x{w}", (dims, transmitted))
    base = np.asarray(round_trip(probe_images), dtype=np.float64)
    response = np.empty((len(basis), len(basis)))
    for k, direction in enumerate(basis):
        moved = np.asarray(round_trip(probe_images + probe * direction.reshape(h, w, 3)), dtype=np.float64)
        response[:, k] = basis @ ((moved - base).reshape(len(probe_images), -1).mean(0) / probe)
    symmetric = (response + response.T) / 2
    gains, vectors = np.linalg.eigh(symmetric)
    kept = (basis.T @ vectors[:, np.argsort(gains)[::-1][:transmitted]]).T       # [transmitted, D]
    content = np.asarray(round_trip(content_images), dtype=np.float64).reshape(len(content_images), -1) @ kept.T
    energy, rotation = np.linalg.eigh(content.T @ content / len(content))        # ascending: quietest first
    subspace = np.ascontiguousarray((kept.T @ rotation[:, :dims]).T)
    coordinates = subspace @ basis.T                                               # [dims, band]
    through = np.einsum("ij,jk,ik->i", coordinates, symmetric, coordinates)
    return subspace, through, np.sqrt(np.clip(energy[:dims], 0, None))


class PatternScheme(WatermarkScheme):
    """Improved spread spectrum with keyed patterns in a low/mid frequency band (see module doc).

    The patterns are keyed random orthonormal combinations of a basis: the band's Fourier basis, or a
    ``subspace`` fitted to the model's autoencoder (``fit_transmitted_subspace``), so that the mark sits in the
    directions a latent-diffusion model can reproduce. ``subspace_id`` names a fitted subspace in ``describe``.
    """

    name = "pattern"

    def __init__(self, n_bits: int = 32, key: int = 0, strength: float = 3.0, band: tuple = (2.0, 8.0),
                 host_rejection: float = 1.0, subspace: np.ndarray | None = None, subspace_id: str = ""):
        super().__init__(n_bits, key)
        if strength <= 0:
            raise ParameterError("strength", "a positive watermark RMS in 0-255 pixel units", strength)
        if not 0 < band[0] < band[1]:
            raise ParameterError("band", "(low, high) cycles per image with 0 < low < high", band)
        if not 0.0 <= host_rejection <= 1.0:
            raise ParameterError("host_rejection", "a share in [0, 1] of the image's own pattern projection removed", host_rejection)
        if subspace is not None and (subspace.ndim != 2 or len(subspace) < n_bits):
            raise ParameterError("subspace", f"an orthonormal basis of at least {n_bits} directions", np.shape(subspace))
        self.strength, self.band = float(strength), (float(band[0]), float(band[1]))
        self.host_rejection = float(host_rejection)
        self.subspace, self.subspace_id = subspace, subspace_id
        self._patterns = {}

    def min_side(self) -> int:
        return int(np.ceil(2 * self.band[1])) + 2  # the band's top frequency must be below Nyquist

    def patterns(self, height: int, width: int) -> np.ndarray:
        """Orthonormal [n_bits, H*W*3]: keyed random combinations of the basis at this image size."""
        if (height, width) not in self._patterns:
            rng = np.random.default_rng([self.key, self.n_bits, 7919])
            if self.subspace is None:
                drawn = _random_band_images(rng, self.n_bits, height, width, self.band)
            elif self.subspace.shape[1] == height * width * 3:
                drawn = rng.standard_normal((self.n_bits, len(self.subspace))) @ self.subspace
            else:
                raise ParameterError("images", "images of the size the scheme's subspace was fitted at "
                                     f"({self.subspace.shape[1] // 3} pixels)", (height, width))
            self._patterns[(height, width)] = np.ascontiguousarray(np.linalg.qr(drawn.T)[0].T)
        return self._patterns[(height, width)]

    def amplitude(self, height: int, width: int) -> float:
        """Per-bit amplitude a so that the whole mark's RMS per pixel value is ``strength``."""
        return self.strength * np.sqrt(height * width * 3 / self.n_bits)

    def _embed(self, image, bits):
        # improved spread spectrum (Malvar & Florencio 2003): remove a share of the image's own projection on
        # each pattern, so the content does not drown the mark; with host_rejection = 1 every projection is
        # exactly +-a and a freshly marked image decodes without error
        h, w = image.shape[:2]
        patterns = self.patterns(h, w)
        host = patterns @ image.ravel()
        signs = 2.0 * bits - 1.0
        return image + ((self.amplitude(h, w) * signs - self.host_rejection * host) @ patterns).reshape(h, w, 3)

    def _correlate(self, images):
        """Correlation with each bit's pattern, in units of the embedding amplitude (+-1 on a freshly marked image)."""
        h, w = images.shape[1:3]
        flat = images.reshape(len(images), -1).astype(np.float64)
        return flat @ self.patterns(h, w).T / self.amplitude(h, w)

    def describe(self) -> dict:
        return {**super().describe(), "strength": self.strength, "band": str(self.band),
                "host_rejection": self.host_rejection, "subspace": self.subspace_id or "band"}


def make_scheme(name: str, n_bits: int = 32, key: int = 0, **options) -> WatermarkScheme:
    """A scheme by name (``SCHEMES``) with its options (e.g. ``step`` or ``strength``)."""
    classes = {"dwtdct": DwtDctScheme, "pattern": PatternScheme}
    if name not in classes:
        raise ParameterError("scheme", f"one of {SCHEMES}", name)
    return classes[name](n_bits=n_bits, key=key, **options)


def image_quality(clean, marked) -> dict:
    """What marking costs: mean PSNR (dB) and SSIM of marked vs clean images (``skimage.metrics``)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    clean, marked = as_image_batch(clean, "clean"), as_image_batch(marked, "marked")
    if clean.shape != marked.shape:
        raise ParameterError("marked", f"images shaped like the clean ones {clean.shape}", marked.shape)
    # identical images have infinite PSNR; cap at 100 dB so means stay finite
    psnr = [min(100.0, peak_signal_noise_ratio(a, b, data_range=255)) if (a != b).any() else 100.0
            for a, b in zip(clean, marked)]
    ssim = [structural_similarity(a, b, data_range=255, channel_axis=-1, win_size=min(7, a.shape[0] // 2 * 2 - 1))
            for a, b in zip(clean, marked)]
    return {"psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "n_images": len(clean)}
