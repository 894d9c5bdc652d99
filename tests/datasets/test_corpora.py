"""Corpus catalog and loader: real corpora from ../shared/data, file reading rules, errors.

Named corpora are loaded from temporary cache folders filled from the shared data, with the
downloader replaced by a function that fails the test, so no test touches the network.
"""
import gzip
import hashlib
import io
import json
import os
import pathlib
import platform
import shutil
import zipfile

import pytest

from seqdbr.datasets import corpora, download
from seqdbr.datasets.corpora import CorpusError, get_spec, list_corpora, load_corpus

BOM = b'\xef\xbb\xbf'
TINY_SHA = '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'
QUIJOTE_SHA = '485be638d952a55acbb944c964d0429418ca2da711df7bc48a36c612129ead9b'
# MANIFEST.md: sha256 of the decompressed ptb.char.train.txt.gz (the canonical file).
PTB_CHAR_TRAIN_SHA = 'e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9'


def _sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError('the network must not be touched: download_file%r' % (args,))
    monkeypatch.setattr(download, 'download_file', refuse)


def _sha256sums(shared):
    out = {}
    for line in (shared / 'SHA256SUMS').read_text().splitlines():
        digest, name = line.split(None, 1)
        out[name.strip()] = digest
    return out


def _stripped_ptb(raw):
    """The word-level text with each line stripped: MANIFEST's rule before the char step."""
    lines = raw.decode('ascii').split('\n')
    assert lines[-1] == ''          # the files end with a newline
    return '\n'.join(line.strip() for line in lines[:-1]) + '\n'


# ---------------------------------------------------------------------------------------
# catalog

def test_catalog_lists_required_corpora_with_complete_entries():
    names = list_corpora()
    assert names == sorted(names)
    for required in ('tinyshakespeare', 'ptb-char', 'text8', 'enwik8', 'quijote-es',
                     'neko-ja', 'pydoc'):
        assert required in names
    raw = json.loads(corpora.CATALOG_PATH.read_text(encoding='utf-8'))
    assert sorted(e['name'] for e in raw['corpora']) == names     # no duplicates, none lost
    for name in names:
        spec = get_spec(name)
        assert spec.licence and spec.description and spec.homepage
        assert spec.preprocessing in corpora.PREPROCESSING_STEPS
        for f in spec.files:
            assert f.urls and all(u.startswith(('http://', 'https://')) for u in f.urls)
            assert len(f.sha256) == 64 and f.size > 0


def test_catalog_pins_published_text8_and_enwik8_archives():
    text8, enwik8 = get_spec('text8'), get_spec('enwik8')
    (t,), (e,) = text8.files, enwik8.files
    assert t.urls[0] == 'http://mattmahoney.net/dc/text8.zip'
    assert e.urls[0] == 'http://mattmahoney.net/dc/enwik8.zip'
    assert (t.size, e.size) == (31344016, 36445475)
    assert t.extract['member'] == 'text8' and e.extract['member'] == 'enwik8'
    assert t.extract['size'] == e.extract['size'] == 100_000_000
    for spec in (text8, enwik8):
        parts = spec.splits['parts']
        assert [(p['name'], p['size']) for p in parts] == [
            ('train', 90_000_000), ('valid', 5_000_000), ('test', 5_000_000)]
    assert enwik8.default_encoding == 'bytes' and text8.default_encoding == 'utf-8'


def test_catalog_checksums_agree_with_shared_data(shared_data):
    sums = _sha256sums(shared_data)
    single = {'tinyshakespeare': 'tinyshakespeare/input.txt',
              'quijote-es': 'quijote-es/pg2000.txt', 'neko-ja': 'neko-ja/neko.txt'}
    for name, rel in single.items():
        (f,) = get_spec(name).files
        assert f.sha256 == sums[rel] == _sha((shared_data / rel).read_bytes())
        assert f.size == (shared_data / rel).stat().st_size
    assert get_spec('tinyshakespeare').files[0].sha256 == TINY_SHA
    ptb = {f.split: f for f in get_spec('ptb-char').files}
    assert list(ptb) == ['train', 'valid', 'test']
    for split in ('valid', 'test'):
        rel = 'ptb/ptb.char.%s.txt' % split
        assert ptb[split].sha256 == sums[rel]
        assert ptb[split].size == (shared_data / rel).stat().st_size
    train = gzip.decompress((shared_data / 'ptb/ptb.char.train.txt.gz').read_bytes())
    assert ptb['train'].sha256 == PTB_CHAR_TRAIN_SHA == _sha(train)
    assert ptb['train'].size == len(train)


def test_readme_table_covers_the_catalog():
    readme = (pathlib.Path(__file__).resolve().parents[2] / 'corpora' / 'README.md').read_text(encoding='utf-8')
    for name in list_corpora():
        spec = get_spec(name)
        assert '| `%s` |' % name in readme
        for f in spec.files:
            assert f.filename in readme
            assert '`%s…' % f.sha256[:8] in readme


def test_unknown_corpus_name_lists_known_names():
    with pytest.raises(CorpusError) as e:
        get_spec('tinyshakespear')
    for name in list_corpora():
        assert name in str(e.value)
    with pytest.raises(CorpusError, match='neither a known corpus.*tinyshakespeare'):
        load_corpus('no-such-corpus-or-file')


def test_malformed_catalog_entry_is_rejected():
    entry = {'name': 'x', 'kind': 'download', 'description': 'd', 'homepage': 'h',
             'licence': 'l', 'default_encoding': 'utf-8', 'preprocessing': 'none',
             'splits': None, 'files': [{'filename': 'x.txt', 'urls': ['https://e.org/x'],
                                        'sha256': 'ABC', 'size': 3}]}
    with pytest.raises(CorpusError, match='sha256 must be 64'):
        corpora._parse_entry(entry)
    entry['files'][0]['sha256'] = '0' * 64
    entry['preprocessing'] = 'lowercase'
    with pytest.raises(CorpusError, match="unknown preprocessing 'lowercase'"):
        corpora._parse_entry(entry)


# ---------------------------------------------------------------------------------------
# named corpora from a local cache

def test_tinyshakespeare_from_data_dir(shared_data, tmp_path, no_network):
    src = shared_data / 'tinyshakespeare' / 'input.txt'
    shutil.copy(src, tmp_path / 'input.txt')
    c = load_corpus('tinyshakespeare', data_dir=tmp_path)
    raw = src.read_bytes()
    assert c.name == 'tinyshakespeare' and c.encoding == 'utf-8'
    assert c.text == raw.decode('ascii')
    assert len(c.text) == 1_115_394 and c.text.count('\n') == 40_000
    assert len(set(c.text)) == 65
    assert c.sha256 == TINY_SHA
    assert c.splits == {}
    assert c.source == str(tmp_path / 'input.txt')
    assert '1115394 chars' in repr(c) and 'First Citizen' not in repr(c)


def test_tinyshakespeare_from_seqdbr_data_cache(shared_data, tmp_path, monkeypatch,
                                                no_network):
    monkeypatch.setenv('SEQDBR_DATA', str(tmp_path))
    d = tmp_path / 'corpora' / 'tinyshakespeare'
    d.mkdir(parents=True)
    # stored gzipped: decompressed on read, hashed as the content
    (d / 'input.txt.gz').write_bytes(
        gzip.compress((shared_data / 'tinyshakespeare' / 'input.txt').read_bytes()))
    assert corpora.corpus_dir('tinyshakespeare') == d
    c = load_corpus('tinyshakespeare', allow_download=False)
    assert c.sha256 == TINY_SHA and len(set(c.text)) == 65
    assert c.source == str(d / 'input.txt.gz')


def test_missing_file_downloads_into_cache(shared_data, tmp_path, monkeypatch):
    calls = []
    src = shared_data / 'tinyshakespeare' / 'input.txt'

    def fake_download(urls, dest, sha256, *, desc=None, timeout=30.0):
        calls.append((list(urls), pathlib.Path(dest), sha256))
        shutil.copy(src, dest)
        return pathlib.Path(dest)
    monkeypatch.setattr(download, 'download_file', fake_download)
    d = tmp_path / 'new' / 'folder'
    c = load_corpus('tinyshakespeare', data_dir=d)
    (f,) = get_spec('tinyshakespeare').files
    assert calls == [(list(f.urls), d / 'input.txt', TINY_SHA)]
    assert c.sha256 == TINY_SHA
    # second load: a cache hit, no more downloads
    load_corpus('tinyshakespeare', data_dir=d)
    assert len(calls) == 1


def test_missing_file_offline_says_where_to_put_it(tmp_path, no_network):
    with pytest.raises(CorpusError) as e:
        load_corpus('text8', data_dir=tmp_path / 'empty', allow_download=False)
    msg = str(e.value)
    assert str(tmp_path / 'empty') in msg
    assert 'text8.zip' in msg and 'http://mattmahoney.net/dc/text8.zip' in msg
    assert get_spec('text8').files[0].sha256 in msg
    assert 'extracted member text8' in msg
    assert not (tmp_path / 'empty').exists()


def test_corrupt_cached_file_is_refused(shared_data, tmp_path, no_network):
    raw = bytearray((shared_data / 'tinyshakespeare' / 'input.txt').read_bytes())
    raw[1000] ^= 1
    (tmp_path / 'input.txt').write_bytes(bytes(raw))
    with pytest.raises(CorpusError) as e:
        load_corpus('tinyshakespeare', data_dir=tmp_path)
    msg = str(e.value)
    assert _sha(bytes(raw)) in msg and TINY_SHA in msg and 'delete it' in msg


def test_ptb_char_preprocessing_reproduces_word_level_text(shared_data, tmp_path, no_network):
    ptb = shared_data / 'ptb'
    for name in ('ptb.char.train.txt.gz', 'ptb.char.valid.txt', 'ptb.char.test.txt'):
        shutil.copy(ptb / name, tmp_path / name)
    c = load_corpus('ptb-char', data_dir=tmp_path)
    assert list(c.splits) == ['train', 'valid', 'test']
    assert c.splits['valid'] == _stripped_ptb((ptb / 'ptb.valid.txt').read_bytes())
    assert c.splits['test'] == _stripped_ptb((ptb / 'ptb.test.txt').read_bytes())
    assert c.splits['train'] == _stripped_ptb(gzip.decompress(
        (ptb / 'ptb.train.txt.gz').read_bytes()))
    # MANIFEST: valid has 3,370 lines and 70,390 words; test 3,761 lines and 78,669 words
    assert c.splits['valid'].count('\n') == 3370 and len(c.splits['valid'].split()) == 70390
    assert c.splits['test'].count('\n') == 3761 and len(c.splits['test'].split()) == 78669
    assert c.text == c.splits['train'] + c.splits['valid'] + c.splits['test']
    contents = [gzip.decompress((ptb / 'ptb.char.train.txt.gz').read_bytes()),
                (ptb / 'ptb.char.valid.txt').read_bytes(),
                (ptb / 'ptb.char.test.txt').read_bytes()]
    assert c.sha256 == _sha(b''.join(contents))
    assert c.source == str(tmp_path)
    b = load_corpus('ptb-char', data_dir=tmp_path, encoding='bytes')
    assert b.splits['valid'] == c.splits['valid'].encode('ascii')


def test_neko_ja_keeps_crlf(shared_data, tmp_path, no_network):
    shutil.copy(shared_data / 'neko-ja' / 'neko.txt', tmp_path / 'neko.txt')
    c = load_corpus('neko-ja', data_dir=tmp_path)
    # MANIFEST: 338,685 characters, 3,042 distinct, 9,964 CRLF lines, no BOM
    assert len(c.text) == 338_685
    assert len(set(c.text)) == 3042
    assert c.text.count('\r\n') == 9964 == c.text.count('\n') == c.text.count('\r')
    assert c.text[0] != '\ufeff'


def test_quijote_strips_bom_keeps_crlf(shared_data, tmp_path, no_network):
    src = shared_data / 'quijote-es' / 'pg2000.txt'
    shutil.copy(src, tmp_path / 'pg2000.txt')
    c = load_corpus('quijote-es', data_dir=tmp_path)
    # MANIFEST counts 2,168,000 characters and 111 distinct ones *including* the BOM;
    # after the BOM is stripped that is 2,167,999 characters and 110 distinct.
    assert '\ufeff' not in c.text
    assert len(c.text) == 2_168_000 - 1
    assert len(set(c.text)) == 110
    assert c.text.count('\r\n') == 38054 == c.text.count('\n')
    assert c.sha256 == QUIJOTE_SHA          # of the raw bytes, BOM included
    raw = load_corpus('quijote-es', data_dir=tmp_path, encoding='bytes')
    assert raw.text == src.read_bytes() and raw.text.startswith(BOM)


# ---------------------------------------------------------------------------------------
# synthetic catalog entries (zip archive, contiguous splits, ptb-char format errors)

def _entry(name, files, preprocessing='none', splits=None, default_encoding='utf-8'):
    return {'name': name, 'kind': 'download', 'description': 'test corpus',
            'homepage': 'https://example.org/', 'licence': 'test', 'files': files,
            'default_encoding': default_encoding, 'preprocessing': preprocessing,
            'splits': splits}


def _with_entries(monkeypatch, *entries):
    specs = dict(corpora._catalog())
    for e in entries:
        specs[e['name']] = corpora._parse_entry(e)
    monkeypatch.setattr(corpora, '_catalog', lambda: specs)


def _zip_bytes(member, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, data)
    return buf.getvalue()


def test_zip_archive_with_contiguous_splits(tmp_path, monkeypatch, no_network):
    content = ('abcdefghij' * 3 + 'é').encode('utf-8')            # 32 bytes
    archive = _zip_bytes('toy', content)
    parts = [{'name': 'train', 'size': 24}, {'name': 'valid', 'size': 4},
             {'name': 'test', 'size': 4}]
    _with_entries(monkeypatch, _entry('toy', [{
        'filename': 'toy.zip', 'urls': ['https://example.org/toy.zip'], 'sha256': _sha(archive),
        'size': len(archive),
        'extract': {'member': 'toy', 'sha256': _sha(content), 'size': len(content)}}],
        splits={'method': 'contiguous', 'unit': 'bytes', 'parts': parts}))
    (tmp_path / 'toy.zip').write_bytes(archive)
    c = load_corpus('toy', data_dir=tmp_path)
    text = content.decode('utf-8')
    assert c.text == text and c.sha256 == _sha(content)
    assert c.splits == {'train': text[:24], 'valid': text[24:28], 'test': text[28:]}
    # the extracted member placed by hand is used in preference to the archive
    (tmp_path / 'toy.zip').unlink()
    (tmp_path / 'toy').write_bytes(content)
    assert load_corpus('toy', data_dir=tmp_path).splits == c.splits
    # a wrong member is refused
    (tmp_path / 'toy').write_bytes(content[:-1] + b'!')
    with pytest.raises(CorpusError, match="member 'toy'"):
        load_corpus('toy', data_dir=tmp_path)


def test_contiguous_split_inside_a_utf8_character(tmp_path, monkeypatch, no_network):
    content = 'aé'.encode('utf-8') + b'bc'       # b'a\xc3\xa9bc': byte 2 is inside 'é'
    _with_entries(monkeypatch, _entry('cut', [{
        'filename': 'cut.txt', 'urls': ['https://example.org/cut.txt'],
        'sha256': _sha(content), 'size': len(content)}],
        splits={'method': 'contiguous', 'unit': 'bytes',
                'parts': [{'name': 'train', 'size': 2}, {'name': 'valid', 'size': 3}]}))
    (tmp_path / 'cut.txt').write_bytes(content)
    with pytest.raises(CorpusError, match=r"bytes 0\.\.2 \(split 'train'\).*byte offset 1"):
        load_corpus('cut', data_dir=tmp_path)
    b = load_corpus('cut', data_dir=tmp_path, encoding='bytes')
    assert b.splits == {'train': b'a\xc3', 'valid': b'\xa9bc'}


def test_ptb_char_unsep_rejects_other_formats(tmp_path, monkeypatch, no_network):
    good = b'a _ b \n '
    bad = b'ab c \n '
    for name, data in (('sep-good', good), ('sep-bad', bad)):
        _with_entries(monkeypatch, _entry(name, [{
            'filename': name + '.txt', 'urls': ['https://example.org/x'],
            'sha256': _sha(data), 'size': len(data)}], preprocessing='ptb-char-unsep'))
        (tmp_path / (name + '.txt')).write_bytes(data)
    assert load_corpus('sep-good', data_dir=tmp_path).text == 'a b\n'
    with pytest.raises(CorpusError, match=r"c h a r _ s e p.*'b' at position 1"):
        load_corpus('sep-bad', data_dir=tmp_path)


# ---------------------------------------------------------------------------------------
# plain files and reading rules

def test_file_keeps_crlf_and_strips_bom(tmp_path):
    raw = BOM + 'línea uno\r\nline two\n\r\nend 😀'.encode('utf-8')
    p = tmp_path / 'mixed.txt'
    p.write_bytes(raw)
    c = load_corpus(str(p))
    assert c.text == 'línea uno\r\nline two\n\r\nend 😀'
    assert c.sha256 == _sha(raw) and c.source == str(p) and c.name == 'mixed.txt'
    assert c.splits == {} and c.encoding == 'utf-8'
    assert load_corpus(p, encoding='bytes').text == raw       # bytes: untouched, BOM kept


def test_gzipped_file_is_decompressed(tmp_path):
    raw = 'gzip me\r\n'.encode('utf-8') * 50
    p = tmp_path / 'g.txt.gz'
    p.write_bytes(gzip.compress(raw))
    c = load_corpus(p)
    assert c.text == raw.decode('utf-8') and c.sha256 == _sha(raw)


def test_empty_files_are_rejected(tmp_path):
    (tmp_path / 'empty.txt').write_bytes(b'')
    (tmp_path / 'bom.txt').write_bytes(BOM)
    with pytest.raises(CorpusError, match='empty.txt is empty'):
        load_corpus(tmp_path / 'empty.txt')
    with pytest.raises(CorpusError,
                       match=r'bom.txt \(after removing its byte-order mark\) is empty'):
        load_corpus(tmp_path / 'bom.txt')
    with pytest.raises(CorpusError, match='is empty'):
        load_corpus(tmp_path / 'empty.txt', encoding='bytes')


def test_invalid_utf8_names_file_offset_and_fix(tmp_path):
    p = tmp_path / 'latin1.txt'
    p.write_bytes('abc\nniño'.encode('latin-1'))     # 0xf1 at byte offset 6, line 2
    with pytest.raises(CorpusError) as e:
        load_corpus(p)
    msg = str(e.value)
    assert str(p) in msg and 'byte offset 6' in msg and 'line 2' in msg
    assert '--encoding bytes' in msg and 're-encode' in msg
    # offsets count from the start of the file, BOM included
    q = tmp_path / 'bom-latin1.txt'
    q.write_bytes(BOM + b'ab\xff')
    with pytest.raises(CorpusError, match='byte offset 5'):
        load_corpus(q)


def test_bytes_mode_returns_non_utf8_bytes_exactly(tmp_path):
    raw = bytes(range(256)) * 3 + b'\xff\xfe\r\n'
    p = tmp_path / 'binary.bin'
    p.write_bytes(raw)
    c = load_corpus(p, encoding='bytes')
    assert isinstance(c.text, bytes) and c.text == raw
    assert c.sha256 == _sha(raw) and c.encoding == 'bytes'


def test_bad_arguments(tmp_path):
    p = tmp_path / 'a.txt'
    p.write_text('abc', encoding='utf-8')
    with pytest.raises(ValueError, match="encoding must be 'utf-8' or 'bytes'.*latin-1"):
        load_corpus(p, encoding='latin-1')
    with pytest.raises(CorpusError, match='is a directory'):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match='data_dir applies to named corpora'):
        load_corpus(p, data_dir=tmp_path)
    with pytest.raises(TypeError, match='name_or_path'):
        load_corpus(3)
    with pytest.raises(CorpusError, match='empty corpus name'):
        load_corpus('')
    assert load_corpus(p, encoding='UTF8').text == 'abc'


# ---------------------------------------------------------------------------------------
# built-in default

def test_pydoc_default_corpus():
    from pydoc_data import topics
    c = load_corpus()
    assert c.name == 'pydoc' and c.splits == {}
    expected = '\n'.join(topics.topics[k] for k in sorted(topics.topics))
    assert c.text == expected
    assert len(c.text) > 100_000
    assert c.sha256 == hashlib.sha256(c.text.encode('utf-8')).hexdigest()
    assert platform.python_version() in c.source and 'pydoc_data.topics' in c.source
    assert load_corpus('pydoc') == c
    b = load_corpus('pydoc', encoding='bytes')
    assert b.text == expected.encode('utf-8') and b.sha256 == c.sha256


@pytest.mark.parametrize('exc, words', [
    (PermissionError(13, 'Permission denied'), 'permission denied'),
    (OSError(5, 'Input/output error'), 'Input/output error')])
def test_unreadable_file_is_a_corpus_error(tmp_path, monkeypatch, exc, words):
    # chmod 000 does not stop root, so the failing read is simulated.
    p = tmp_path / 'locked.txt'
    p.write_text('some text')
    real = pathlib.Path.read_bytes

    def read_bytes(self):
        if self == p:
            raise exc
        return real(self)

    monkeypatch.setattr(pathlib.Path, 'read_bytes', read_bytes)
    with pytest.raises(CorpusError) as e:
        load_corpus(str(p))
    assert str(p) in str(e.value) and words in str(e.value)


def test_devices_are_refused_not_read_forever():
    for dev in ('/dev/zero', '/dev/urandom'):
        if os.path.exists(dev):
            with pytest.raises(CorpusError, match='is a device or socket, not a text file'):
                load_corpus(dev)
