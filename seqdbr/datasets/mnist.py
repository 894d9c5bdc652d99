"""MNIST handwritten digits: IDX file reader and a loader returning TupleDatasets.

The four canonical gzip'ed IDX files (60,000 training and 10,000 test images of
28x28 grey pixels, with labels 0-9) are read from a local folder; any that is
missing is downloaded from a list of mirrors and checked against its published
SHA-256 digest.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, derived from
NIST Special Databases 1 and 3; it is commonly redistributed under CC BY-SA 3.0.
"""
import gzip
import math
import pathlib
import zlib

import numpy

from seqdbr.datasets.download import DownloadError, cache_dir, download_file
from seqdbr.datasets.tuple_dataset import TupleDataset

__all__ = ['MIRRORS', 'FILES', 'get_mnist', 'read_idx']

#: Base URLs tried in order for a missing file (the file name is appended).
MIRRORS = [
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
]

#: file name -> published SHA-256 of the gzip'ed file.
FILES = {
    'train-images-idx3-ubyte.gz':
        '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    'train-labels-idx1-ubyte.gz':
        '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    't10k-images-idx3-ubyte.gz':
        '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    't10k-labels-idx1-ubyte.gz':
        'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
}

_IMAGES_MAGIC = 2051   # 0x00000803: unsigned bytes, 3 dimensions
_LABELS_MAGIC = 2049   # 0x00000801: unsigned bytes, 1 dimension

# IDX type code -> big-endian NumPy dtype
_IDX_TYPES = {
    0x08: numpy.dtype('u1'),
    0x09: numpy.dtype('i1'),
    0x0B: numpy.dtype('>i2'),
    0x0C: numpy.dtype('>i4'),
    0x0D: numpy.dtype('>f4'),
    0x0E: numpy.dtype('>f8'),
}


def _read_bytes(path):
    with open(path, 'rb') as f:
        head = f.read(2)
    if head == b'\x1f\x8b':
        try:
            with gzip.open(path, 'rb') as f:
                return f.read()
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise ValueError('%s is a truncated or corrupt gzip file (%s: %s); delete it and '
                             'download it again' % (path, type(e).__name__, e)) from None
    with open(path, 'rb') as f:
        return f.read()


def read_idx(path, expected_magic=None):
    """Read an IDX file (plain or gzip'ed) into a NumPy array.

    The IDX format: a 4-byte big-endian magic number ``0x0000TTDD`` (``TT`` the
    element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64; ``DD`` the number of dimensions), then ``DD`` big-endian uint32
    sizes, then the elements in C order. MNIST images have magic 2051 (uint8,
    3 dims), labels 2049 (uint8, 1 dim). Gzip input is detected from its first two
    bytes, not from the file name.

    Args:
        path (str or os.PathLike): the file.
        expected_magic (int or None): when given, the file's magic number must equal it.

    Returns:
        numpy.ndarray: a new writable, native-byte-order array of the shape given by
        the header (e.g. uint8 ``(60000, 28, 28)`` for MNIST training images).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an IDX file, wrong magic number, unknown element type, or a
            payload whose size does not match the header (truncated or extra bytes);
            the message names the file.
    """
    path = pathlib.Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError('%s is not an IDX file: only %d bytes long' % (path, len(data)))
    magic = int.from_bytes(data[:4], 'big')
    if expected_magic is not None and magic != expected_magic:
        raise ValueError('%s has IDX magic number %d, expected %d; it is not the file it '
                         'should be (wrong or corrupt download?)' % (path, magic, expected_magic))
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise ValueError('%s is not an IDX file: bad magic number 0x%08x' % (path, magic))
    dtype = _IDX_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError('%s is truncated: its header needs %d bytes, the file has %d'
                         % (path, header, len(data)))
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise ValueError('%s is truncated: its header declares shape %s (%d bytes of data) but '
                         'only %d bytes follow; delete it and download it again'
                         % (path, shape, expected, payload))
    if payload > expected:
        raise ValueError('%s has %d unexpected bytes after the %d bytes of data its header '
                         'declares (shape %s); it is not a valid IDX file'
                         % (path, payload - expected, expected, shape))
    array = numpy.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    return array.reshape(shape).astype(dtype.newbyteorder('='), copy=True)


def _fetch_all(folder):
    """Verify (and download when missing) the four files; one error lists every failure."""
    errors = []
    for name, sha256 in FILES.items():
        try:
            download_file([base + name for base in MIRRORS], folder / name, sha256,
                          desc='MNIST ' + name)
        except DownloadError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise DownloadError('%d MNIST files are missing and could not be downloaded:\n\n%s'
                            % (len(errors), '\n\n'.join(str(e) for e in errors)),
                            dest=folder, urls=[u for e in errors for u in e.urls],
                            failures=[f for e in errors for f in e.failures])


def _load_split(folder, images_name, labels_name):
    images = read_idx(folder / images_name, expected_magic=_IMAGES_MAGIC)
    labels = read_idx(folder / labels_name, expected_magic=_LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError('%s holds images of shape %s, expected (28, 28)'
                         % (folder / images_name, images.shape[1:]))
    if labels.shape[0] != images.shape[0]:
        raise ValueError('%s has %d labels but %s has %d images'
                         % (folder / labels_name, labels.shape[0], folder / images_name,
                            images.shape[0]))
    if labels.size and labels.max() > 9:
        raise ValueError('%s holds label %d; MNIST labels are 0-9'
                         % (folder / labels_name, int(labels.max())))
    return images, labels


def _convert(images, labels, ndim, scale, dtype, label_dtype, withlabel):
    shape = {1: (784,), 2: (28, 28), 3: (1, 28, 28)}[ndim]
    x = numpy.divide(images.reshape((images.shape[0],) + shape), 255, dtype=dtype)
    if scale != 1:
        x *= dtype.type(scale)
    if not withlabel:
        return x
    return TupleDataset(x, labels.astype(label_dtype))


def get_mnist(ndim=1, scale=1.0, dtype=numpy.float32, label_dtype=numpy.int32,
              withlabel=True, data_dir=None):
    """Load MNIST as ``(train, test)``, downloading missing files.

    Pixel intensities 0..255 are mapped linearly to ``[0, scale]``
    (``x = raw / 255 * scale``, computed in ``dtype``).

    Args:
        ndim (int): image layout; 1: ``(784,)``, 2: ``(28, 28)``, 3: ``(1, 28, 28)``
            (channel first).
        scale (float): value of a white (255) pixel; must be positive and finite.
        dtype: floating dtype of the images (default float32).
        label_dtype: integer dtype of the labels (default int32).
        withlabel (bool): return datasets of ``(image, label)`` pairs; when False
            return the bare image arrays instead.
        data_dir (str or os.PathLike or None): folder holding the four files
            ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; default
            ``cache_dir() / 'mnist'`` (``$SEQDBR_DATA/mnist``). Files present with the
            right SHA-256 are used as they are; missing ones are downloaded there
            from :data:`MIRRORS`.

    Returns:
        tuple: ``(train, test)``. With ``withlabel``, two :class:`TupleDataset` of
        60,000 and 10,000 examples ``(image, label)``, image of shape given by
        ``ndim`` and ``dtype``, label a ``label_dtype`` scalar in 0..9. Without, two
        arrays of shape ``(60000,) + image shape`` and ``(10000,) + image shape``.

    Raises:
        ValueError: bad ``ndim``, ``scale``, ``dtype`` or ``label_dtype``; a file that
            is not the expected IDX data (the message names it).
        DownloadError: a missing file could not be downloaded (offline); the message
            says where to put it by hand.
    """
    if ndim not in (1, 2, 3) or isinstance(ndim, bool):
        raise ValueError('ndim must be 1 (784,), 2 (28, 28) or 3 (1, 28, 28), got %r' % (ndim,))
    try:
        scale_ok = math.isfinite(scale) and scale > 0
    except TypeError:
        scale_ok = False
    if not scale_ok:
        raise ValueError('scale must be a positive finite number, got %r' % (scale,))
    dtype = numpy.dtype(dtype)
    if dtype.kind != 'f':
        raise ValueError('dtype must be a floating type such as numpy.float32, got %s' % dtype)
    label_dtype = numpy.dtype(label_dtype)
    if label_dtype.kind not in 'iu':
        raise ValueError('label_dtype must be an integer type such as numpy.int32, got %s'
                         % label_dtype)
    folder = pathlib.Path(data_dir) if data_dir is not None else cache_dir() / 'mnist'
    folder = folder.expanduser().absolute()
    _fetch_all(folder)

    train = _convert(*_load_split(folder, 'train-images-idx3-ubyte.gz',
                                  'train-labels-idx1-ubyte.gz'),
                     ndim, scale, dtype, label_dtype, withlabel)
    test = _convert(*_load_split(folder, 't10k-images-idx3-ubyte.gz',
                                 't10k-labels-idx1-ubyte.gz'),
                    ndim, scale, dtype, label_dtype, withlabel)
    return train, test
