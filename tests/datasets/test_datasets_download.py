"""Downloader tests against a real HTTP server on 127.0.0.1 started by the test."""
import gzip
import hashlib
import http.server
import os
import pathlib
import socket
import threading

import pytest
import requests

from seqdbr.datasets import download
from seqdbr.datasets.download import (DownloadError, cache_dir, download_file, ensure_file,
                                      sha256_file)

GOOD = bytes(range(256)) * 700 + b'tail'          # 179,204 bytes: several 64 KiB chunks
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
OTHER = b'not the file you are looking for\n' * 100
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()
GZ = gzip.compress(b'hello gzip world\n' * 1000, mtime=0)
GZ_SHA = hashlib.sha256(GZ).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    # routes: path -> dict(status=int, body=bytes, length=int or None, headers=dict)
    routes = {}
    hits = {}
    lock = threading.Lock()

    def do_GET(self):
        with self.lock:
            self.hits[self.path] = self.hits.get(self.path, 0) + 1
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, 'no such file')
            return
        body = route['body']
        self.send_response(route.get('status', 200))
        length = route.get('length', len(body))
        if length is not None:
            self.send_header('Content-Length', str(length))
        for k, v in route.get('headers', {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True     # the socket is closed after the (short) body

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Make sure requests talks straight to 127.0.0.1, never through a proxy."""
    for var in ('http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY',
                'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1:<free port>; yields (base_url, routes, hits)."""
    routes = {
        '/good.bin': {'body': GOOD},
        '/other.bin': {'body': OTHER},
        '/cut.bin': {'body': GOOD[:5000], 'length': len(GOOD)},
        '/nolength.bin': {'body': GOOD, 'length': None},
        '/data.gz': {'body': GZ, 'headers': {'Content-Type': 'application/gzip',
                                              'Content-Encoding': 'gzip'}},
    }
    hits = {}
    handler = type('Handler', (_Handler,), {'routes': routes, 'hits': hits,
                                            'lock': threading.Lock()})
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.01},
                              daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % httpd.server_address[1], routes, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 whose port is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    try:
        yield 'http://127.0.0.1:%d/file.bin' % sock.getsockname()[1]
    finally:
        sock.close()


def _listing(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / 'x'
    p.write_bytes(GOOD)
    assert sha256_file(p) == GOOD_SHA
    assert sha256_file(p, chunk_size=7) == GOOD_SHA
    (tmp_path / 'empty').write_bytes(b'')
    # the SHA-256 of the empty string, from FIPS 180-2 test vectors
    assert sha256_file(tmp_path / 'empty') == \
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'


def test_good_download_then_cached_without_network(server, tmp_path, monkeypatch):
    base, _, hits = server
    dest = tmp_path / 'sub' / 'dir' / 'good.bin'          # parents are created
    out = download_file(base + '/good.bin', dest, GOOD_SHA)
    assert out == dest
    assert dest.read_bytes() == GOOD
    assert _listing(dest.parent) == ['good.bin']          # no temp file left over
    assert hits == {'/good.bin': 1}

    def no_network(*args, **kwargs):
        raise AssertionError('download_file used the network for a cached file')

    monkeypatch.setattr(requests, 'get', no_network)
    assert download_file(base + '/good.bin', dest, GOOD_SHA.upper()) == dest
    assert hits == {'/good.bin': 1}


def test_progress_counts_every_byte(server, tmp_path, monkeypatch):
    base, _, _ = server
    seen = []

    class Recorder:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            seen.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(download, '_progress_bar', Recorder)
    download_file(base + '/good.bin', tmp_path / 'g', GOOD_SHA, desc='label', chunk_size=4096)
    (bar,) = seen
    assert (bar.total, bar.desc, bar.n, bar.closed) == (len(GOOD), 'label', len(GOOD), True)


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / 'good.bin'
    with pytest.raises(DownloadError) as info:
        download_file([base + '/other.bin'], dest, GOOD_SHA)
    msg = str(info.value)
    assert GOOD_SHA in msg and OTHER_SHA in msg and base + '/other.bin' in msg
    assert 'checksum mismatch' in msg
    assert _listing(tmp_path) == []                       # neither dest nor temp file
    assert info.value.dest == dest and info.value.sha256 == GOOD_SHA
    assert [u for u, _ in info.value.failures] == [base + '/other.bin']


def test_mismatch_keeps_existing_file_untouched(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / 'good.bin'
    dest.write_bytes(b'old contents')
    old_sha = hashlib.sha256(b'old contents').hexdigest()
    with pytest.raises(DownloadError) as info:
        download_file(base + '/other.bin', dest, GOOD_SHA)
    assert dest.read_bytes() == b'old contents'
    assert old_sha in str(info.value)                     # the stale file is reported
    assert _listing(tmp_path) == ['good.bin']


def test_stale_file_is_replaced_by_good_download(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / 'good.bin'
    dest.write_bytes(b'corrupt')
    download_file(base + '/good.bin', dest, GOOD_SHA)
    assert dest.read_bytes() == GOOD
    assert _listing(tmp_path) == ['good.bin']


def test_connection_refused_gives_offline_message(dead_url, tmp_path):
    dest = tmp_path / 'data' / 'file.bin'
    second = dead_url.replace('/file.bin', '/mirror/file.bin')
    with pytest.raises(DownloadError) as info:
        download_file([dead_url, second], dest, GOOD_SHA, timeout=5)
    msg = str(info.value)
    assert 'offline' in msg
    assert dead_url in msg and second in msg
    assert str(dest) in msg                               # where to put the file by hand
    assert GOOD_SHA in msg
    assert not dest.exists()
    assert all('cannot connect' in reason for _, reason in info.value.failures)


def test_interrupted_transfer_leaves_no_partial_file(server, tmp_path):
    base, _, hits = server
    dest = tmp_path / 'good.bin'
    with pytest.raises(DownloadError) as info:
        download_file(base + '/cut.bin', dest, GOOD_SHA)
    assert hits['/cut.bin'] == 1
    assert 'transfer failed' in str(info.value)
    assert 'offline' not in str(info.value)
    assert _listing(tmp_path) == []


def test_mirror_fallback_after_404_and_interruption(server, tmp_path):
    base, _, hits = server
    dest = tmp_path / 'good.bin'
    urls = [base + '/missing.bin', base + '/cut.bin', base + '/good.bin']
    assert download_file(urls, dest, GOOD_SHA) == dest
    assert dest.read_bytes() == GOOD
    assert hits == {'/missing.bin': 1, '/cut.bin': 1, '/good.bin': 1}
    assert _listing(tmp_path) == ['good.bin']


def test_all_404_reports_status(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DownloadError) as info:
        download_file([base + '/a', base + '/b'], tmp_path / 'f', GOOD_SHA)
    assert [r for _, r in info.value.failures] == ['HTTP error 404', 'HTTP error 404']


def test_body_without_content_length(server, tmp_path):
    base, _, _ = server
    dest = download_file(base + '/nolength.bin', tmp_path / 'f', GOOD_SHA)
    assert dest.read_bytes() == GOOD


def test_gzip_content_encoding_keeps_bytes_as_published(server, tmp_path):
    # A server that labels a .gz file Content-Encoding: gzip must not make us
    # store the decompressed text: the checksum is of the .gz bytes.
    base, _, _ = server
    dest = download_file(base + '/data.gz', tmp_path / 'data.gz', GZ_SHA)
    assert dest.read_bytes() == GZ
    assert gzip.decompress(dest.read_bytes()) == b'hello gzip world\n' * 1000


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='64 hex digits'):
        download_file('http://127.0.0.1:9/x', tmp_path / 'x', 'abc')
    with pytest.raises(ValueError, match='at least one URL'):
        download_file([], tmp_path / 'x', GOOD_SHA)
    with pytest.raises(ValueError, match='http:// or https://'):
        download_file(['ftp://127.0.0.1/x'], tmp_path / 'x', GOOD_SHA)
    with pytest.raises(ValueError, match='timeout'):
        download_file('http://127.0.0.1:9/x', tmp_path / 'x', GOOD_SHA, timeout=0)
    with pytest.raises(ValueError, match='bare file name'):
        ensure_file('a/b.bin', 'http://127.0.0.1:9/x', GOOD_SHA, data_dir=tmp_path)


def test_cache_dir_from_env_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv('SEQDBR_DATA', str(tmp_path / 'env' / 'cache'))
    assert cache_dir() == tmp_path / 'env' / 'cache'
    assert cache_dir().is_dir()
    monkeypatch.delenv('SEQDBR_DATA')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert cache_dir() == tmp_path / 'home' / '.cache' / 'seqdbr'
    assert (tmp_path / 'home' / '.cache' / 'seqdbr').is_dir()


def test_ensure_file_uses_cache_subdir(server, tmp_path, monkeypatch):
    base, _, hits = server
    monkeypatch.setenv('SEQDBR_DATA', str(tmp_path))
    p = ensure_file('good.bin', [base + '/missing', base + '/good.bin'], GOOD_SHA,
                    subdir='corpus')
    assert p == tmp_path / 'corpus' / 'good.bin'
    assert p.read_bytes() == GOOD
    q = ensure_file('good.bin', base + '/good.bin', GOOD_SHA, data_dir=tmp_path / 'corpus')
    assert q == p and hits['/good.bin'] == 1
    assert os.listdir(tmp_path / 'corpus') == ['good.bin']
