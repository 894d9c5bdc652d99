"""MNIST: the IDX reader on hand-made files, and get_mnist on the real data in ../shared/data.

The real files are parsed a few times per session only (each parse takes about a second).
"""
import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading

import numpy
import pytest

from seqdbr.datasets import mnist
from seqdbr.datasets.download import DownloadError
from seqdbr.datasets.mnist import get_mnist, read_idx
from seqdbr.datasets.tuple_dataset import TupleDataset

TRAIN_IMAGES_SHA = '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'
# Class frequencies of the MNIST training and test labels (digits 0..9), as published.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_RAW_MEAN = 33.3184   # mean training pixel value on the 0..255 scale


def _idx_bytes(array, type_code):
    header = bytes([0, 0, type_code, array.ndim])
    header += b''.join(int(n).to_bytes(4, 'big') for n in array.shape)
    return header + array.tobytes()


# -- read_idx on hand-made files -------------------------------------------------------

def test_read_idx_uint8_plain_and_gzip(tmp_path):
    a = numpy.arange(2 * 3 * 4, dtype=numpy.uint8).reshape(2, 3, 4) * 10
    raw = _idx_bytes(a, 0x08)
    assert raw[:4] == b'\x00\x00\x08\x03'          # magic 2051, as in MNIST image files
    (tmp_path / 'a.idx').write_bytes(raw)
    (tmp_path / 'a.gz').write_bytes(gzip.compress(raw))
    for name in ('a.idx', 'a.gz'):
        got = read_idx(tmp_path / name, expected_magic=2051)
        assert got.dtype == numpy.uint8 and got.shape == (2, 3, 4)
        numpy.testing.assert_array_equal(got, a)
        got[0, 0, 0] = 1                           # a writable copy


def test_read_idx_big_endian_types(tmp_path):
    i16 = numpy.array([[-2, 300], [32767, -32768]], dtype='>i2')
    (tmp_path / 'i16').write_bytes(_idx_bytes(i16, 0x0B))
    got = read_idx(tmp_path / 'i16')
    assert got.dtype == numpy.dtype('int16') and got.dtype.isnative
    assert got.tolist() == [[-2, 300], [32767, -32768]]
    f64 = numpy.array([1.5, -0.25, 1e300], dtype='>f8')
    (tmp_path / 'f64').write_bytes(_idx_bytes(f64, 0x0E))
    assert read_idx(tmp_path / 'f64').tolist() == [1.5, -0.25, 1e300]


def test_read_idx_truncated_payload_names_file(tmp_path):
    a = numpy.zeros((5, 28, 28), numpy.uint8)
    p = tmp_path / 'images.gz'
    p.write_bytes(gzip.compress(_idx_bytes(a, 0x08)[:-100]))
    with pytest.raises(ValueError, match='truncated') as info:
        read_idx(p)
    assert str(p) in str(info.value)
    assert '3920 bytes' in str(info.value) and '3820 bytes' in str(info.value)


def test_read_idx_extra_bytes(tmp_path):
    p = tmp_path / 'labels'
    p.write_bytes(_idx_bytes(numpy.arange(4, dtype=numpy.uint8), 0x08) + b'xyz')
    with pytest.raises(ValueError, match='3 unexpected bytes'):
        read_idx(p)


def test_read_idx_wrong_magic(tmp_path):
    p = tmp_path / 'labels.idx'
    p.write_bytes(_idx_bytes(numpy.arange(4, dtype=numpy.uint8), 0x08))   # magic 2049
    assert read_idx(p, expected_magic=2049).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match='magic number 2049, expected 2051') as info:
        read_idx(p, expected_magic=2051)
    assert str(p) in str(info.value)
    q = tmp_path / 'text.txt'
    q.write_bytes(b'hello, this is not IDX')
    with pytest.raises(ValueError, match='not an IDX file'):
        read_idx(q)
    (tmp_path / 'empty').write_bytes(b'')
    with pytest.raises(ValueError, match='only 0 bytes'):
        read_idx(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / 'absent.gz')


def test_read_idx_truncated_gzip(tmp_path):
    a = numpy.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=numpy.uint8)
    gz = gzip.compress(_idx_bytes(a, 0x08))
    p = tmp_path / 'cut.gz'
    p.write_bytes(gz[:len(gz) // 2])
    with pytest.raises(ValueError, match='truncated or corrupt gzip') as info:
        read_idx(p)
    assert str(p) in str(info.value)


# -- get_mnist argument checks and offline behaviour (no real data needed) -------------

@pytest.fixture
def refused_base():
    """A 127.0.0.1 base URL whose port is bound but not listening (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    try:
        yield 'http://127.0.0.1:%d/mnist/' % sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize('kwargs, match', [
    ({'ndim': 4}, 'ndim must be 1'),
    ({'ndim': True}, 'ndim must be 1'),
    ({'scale': 0}, 'scale must be a positive'),
    ({'scale': float('nan')}, 'scale must be a positive'),
    ({'scale': 'big'}, 'scale must be a positive'),
    ({'dtype': numpy.int32}, 'dtype must be a floating'),
    ({'label_dtype': numpy.float32}, 'label_dtype must be an integer'),
])
def test_get_mnist_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_mnist(data_dir=tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []          # rejected before touching any file


def test_get_mnist_offline_lists_files_and_paths(tmp_path, monkeypatch, refused_base):
    monkeypatch.setattr(mnist, 'MIRRORS', [refused_base])
    monkeypatch.setenv('SEQDBR_DATA', str(tmp_path))
    with pytest.raises(DownloadError) as info:
        get_mnist()                                # default folder: $SEQDBR_DATA/mnist
    msg = str(info.value)
    assert '4 MNIST files' in msg and 'offline' in msg
    for name, sha in mnist.FILES.items():
        assert str(tmp_path / 'mnist' / name) in msg
        assert refused_base + name in msg
        assert sha in msg
    assert list((tmp_path / 'mnist').iterdir()) == []


# -- the real data -------------------------------------------------------------------

@pytest.fixture(scope='session')
def mnist_dir(shared_data, tmp_path_factory):
    """A folder with the four canonical MNIST files, built from ../shared/data/mnist."""
    src = shared_data / 'mnist'
    parts = sorted(src.glob('train-images-idx3-ubyte.gz.part-*'))
    assert [p.name[-7:] for p in parts] == ['part-00', 'part-01', 'part-02']
    out = tmp_path_factory.mktemp('mnist')
    blob = b''.join(p.read_bytes() for p in parts)
    assert hashlib.sha256(blob).hexdigest() == TRAIN_IMAGES_SHA
    (out / 'train-images-idx3-ubyte.gz').write_bytes(blob)
    for name in ('train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                 't10k-labels-idx1-ubyte.gz'):
        (out / name).symlink_to(src / name)
    return out


@pytest.fixture(scope='session')
def mnist_default(mnist_dir):
    return get_mnist(data_dir=mnist_dir)


def test_shapes_dtypes_ranges(mnist_default):
    train, test = mnist_default
    assert isinstance(train, TupleDataset) and isinstance(test, TupleDataset)
    assert (len(train), len(test)) == (60000, 10000)
    for ds, n in ((train, 60000), (test, 10000)):
        x, t = ds.arrays
        assert x.shape == (n, 784) and x.dtype == numpy.float32
        assert t.shape == (n,) and t.dtype == numpy.int32
        assert x.min() == 0.0 and x.max() == 1.0
        assert t.min() == 0 and t.max() == 9
    image, label = train[0]
    assert image.shape == (784,) and int(label) == 5   # the first training digit is a 5
    assert int(test[0][1]) == 7                        # the first test digit is a 7


def test_label_histograms(mnist_default):
    train, test = mnist_default
    assert numpy.bincount(train.arrays[1], minlength=10).tolist() == TRAIN_COUNTS
    assert numpy.bincount(test.arrays[1], minlength=10).tolist() == TEST_COUNTS


def test_train_mean_pixel(mnist_default):
    x = mnist_default[0].arrays[0]
    assert abs(x.mean(dtype=numpy.float64) * 255 - TRAIN_RAW_MEAN) < 5e-5


def test_pixels_match_an_independent_decode(mnist_default, mnist_dir):
    # decode t10k with gzip + frombuffer (16-byte IDX header) and compare every pixel
    raw = gzip.decompress((mnist_dir / 't10k-images-idx3-ubyte.gz').read_bytes())
    ref = numpy.frombuffer(raw, numpy.uint8, offset=16).reshape(10000, 784)
    x = mnist_default[1].arrays[0]
    numpy.testing.assert_array_equal(numpy.rint(x * 255).astype(numpy.uint8), ref)
    # x = raw / 255 computed in float32 (correctly rounded division)
    numpy.testing.assert_array_equal(x, ref.astype(numpy.float32) / numpy.float32(255))
    labels = gzip.decompress((mnist_dir / 't10k-labels-idx1-ubyte.gz').read_bytes())
    assert mnist_default[1].arrays[1].tolist() == list(labels[8:])


def test_ndim2_and_int64_labels(mnist_default, mnist_dir):
    train, test = get_mnist(ndim=2, label_dtype=numpy.int64, data_dir=mnist_dir)
    x, t = test.arrays
    assert x.shape == (10000, 28, 28) and t.dtype == numpy.int64
    numpy.testing.assert_array_equal(x.reshape(10000, 784), mnist_default[1].arrays[0])
    numpy.testing.assert_array_equal(t, mnist_default[1].arrays[1])
    assert train[123][0].shape == (28, 28)


def test_missing_file_downloaded_from_mirror_ndim3_unlabelled(mnist_default, mnist_dir,
                                                             tmp_path, monkeypatch):
    """A missing file comes from the second mirror (first: 404), verified, then parsed."""
    _QuietHandler.paths = []
    served = tmp_path / 'www'
    (served / 'mirror2').mkdir(parents=True)
    shutil.copyfile(mnist_dir / 't10k-images-idx3-ubyte.gz',
                    served / 'mirror2' / 't10k-images-idx3-ubyte.gz')
    cache = tmp_path / 'cache'
    cache.mkdir()
    for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
                 't10k-labels-idx1-ubyte.gz'):
        (cache / name).symlink_to(mnist_dir / name)

    for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.01},
                              daemon=True)
    thread.start()
    try:
        base = 'http://127.0.0.1:%d' % httpd.server_address[1]
        monkeypatch.setattr(mnist, 'MIRRORS', [base + '/mirror1/', base + '/mirror2/'])
        train, test = get_mnist(ndim=3, scale=2.0, withlabel=False, data_dir=cache)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert _QuietHandler.paths == ['/mirror1/t10k-images-idx3-ubyte.gz',
                                   '/mirror2/t10k-images-idx3-ubyte.gz']
    assert (cache / 't10k-images-idx3-ubyte.gz').read_bytes() == \
        (mnist_dir / 't10k-images-idx3-ubyte.gz').read_bytes()
    assert isinstance(test, numpy.ndarray) and test.shape == (10000, 1, 28, 28)
    assert train.shape == (60000, 1, 28, 28) and train.dtype == numpy.float32
    assert test.max() == 2.0 and test.min() == 0.0
    numpy.testing.assert_allclose(test.reshape(10000, 784), 2 * mnist_default[1].arrays[0],
                                  rtol=1e-6)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    paths = []

    def do_GET(self):
        _QuietHandler.paths.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass
