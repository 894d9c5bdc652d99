"""Text corpora for character-level language models: the catalog and the loader.

The catalog (``seqdbr/datasets/catalog.json``, shipped inside the package so it works in
any install; the single source of truth, summarised in ``corpora/README.md``) lists
the named corpora: where to download each file (canonical URL first, then mirrors), the
sha256 and size of every downloaded file, the licence, a named preprocessing step and the
train/valid/test splits. ``corpora/README.md`` renders it as a table.

:func:`load_corpus` accepts a catalog name, a path to any UTF-8 text file, or ``'pydoc'``
(the default), a corpus that ships with CPython and needs no download.

Reading rules (the same for every source):

* Text is decoded as strict UTF-8 from the raw bytes, so line endings are kept exactly
  (CRLF stays CRLF; there is no newline translation). One leading UTF-8 byte-order mark
  (U+FEFF) is removed. Invalid UTF-8 raises :class:`CorpusError` naming the file, the byte
  offset and the fix.
* ``encoding='bytes'`` returns the raw bytes instead (no BOM removal, no decoding).
* A file whose name ends in ``.gz`` is gunzipped on read; the sha256 reported is that of the
  decompressed content, so a corpus hashes the same whether it is stored gzipped or not.
* Empty content (also: empty once the BOM is removed) raises :class:`CorpusError`.

Named corpora live in ``<cache_dir()>/corpora/<name>/`` (``cache_dir()`` is ``$SEQDBR_DATA``,
else ``~/.cache/seqdbr``), or in the folder passed as ``data_dir``. Every file found there is
checked against the catalog's size and sha256 on every load (a corrupt or different file is an
error, never silently used). Missing files are downloaded with
:func:`seqdbr.datasets.download.download_file` unless ``allow_download=False``. A file may
also be placed by hand, plain or gzipped (``<filename>.gz``); for zip archives the extracted
member (e.g. ``text8``) may be placed instead of the archive.

Preprocessing steps (``CorpusSpec.preprocessing``):

``'none'``
    The decoded file content is the corpus text.
``'ptb-char-unsep'``
    Inverts Mikolov's ``ptb.char.*.txt`` format, in which every character of the text is
    followed by one space and spaces are written as ``'_'``: the characters at even
    positions are kept and ``'_'`` becomes ``' '``. The result is the word-level PTB text with
    each line stripped (``'\\n'.join(line.strip() for line in lines) + '\\n'``). A character at
    an odd position that is not a space raises :class:`CorpusError` (the file is not in that
    format).
``'pydoc-topics'``
    ``PYDOC_SEPARATOR.join(topics[k] for k in sorted(topics))`` over
    ``pydoc_data.topics.topics``.
"""
import dataclasses
import functools
import gzip
import hashlib
import json
import os
import pathlib
import platform
import zipfile

__all__ = ['CATALOG_PATH', 'PYDOC_SEPARATOR', 'PREPROCESSING_STEPS', 'CorpusError', 'Corpus',
           'CorpusFile', 'CorpusSpec', 'list_corpora', 'get_spec', 'corpus_dir', 'load_corpus']

#: Location of the catalog (package data, see pyproject.toml).
CATALOG_PATH = pathlib.Path(__file__).resolve().parent / 'catalog.json'

#: Joins the pydoc topic texts. Every topic text ends with ``'\n'``, so one more ``'\n'``
#: leaves exactly one blank line between consecutive topics.
PYDOC_SEPARATOR = '\n'

#: Names of the preprocessing steps a catalog entry may use (documented in the module docstring).
PREPROCESSING_STEPS = ('none', 'ptb-char-unsep', 'pydoc-topics')

_BOM = b'\xef\xbb\xbf'
_SPLIT_METHODS = ('files', 'contiguous')
_ENCODINGS = ('utf-8', 'bytes')


class CorpusError(ValueError):
    """A corpus cannot be found, read, verified or decoded. The message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class CorpusFile:
    """One downloadable file of a catalog corpus.

    Attributes:
        filename (str): name of the file in the corpus folder.
        urls (tuple of str): canonical URL first, then mirrors.
        sha256 (str): hex sha256 of the file as downloaded.
        size (int): size of the file as downloaded, in bytes.
        split (str or None): the split this file holds (``'files'`` split method only).
        extract (dict or None): for a zip archive, ``{'member', 'sha256', 'size'}`` of the
            one member that holds the corpus.
    """
    filename: str
    urls: tuple
    sha256: str
    size: int
    split: str = None
    extract: dict = None


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """A catalog entry (see ``corpora/README.md``).

    Attributes:
        name (str): catalog name, e.g. ``'tinyshakespeare'``.
        kind (str): ``'download'`` (files fetched into the cache) or ``'builtin'`` (``pydoc``).
        description, homepage, licence (str): human-readable facts.
        default_encoding (str): ``'utf-8'`` or ``'bytes'``: what ``load_corpus`` uses when
            ``encoding`` is None.
        files (tuple of CorpusFile): files to fetch, in split order.
        preprocessing (str): one of :data:`PREPROCESSING_STEPS`.
        splits (dict or None): None (no predefined split), ``{'method': 'files'}`` (one file per
            split) or ``{'method': 'contiguous', 'unit': 'bytes', 'parts': [{'name', 'size'}]}``
            (consecutive byte ranges of the content, in order, summing to its length).
    """
    name: str
    kind: str
    description: str
    homepage: str
    licence: str
    default_encoding: str
    files: tuple
    preprocessing: str
    splits: dict = None


@dataclasses.dataclass(frozen=True, repr=False)
class Corpus:
    """A loaded corpus.

    Attributes:
        name (str): catalog name, ``'pydoc'``, or the file name for a path.
        text (str or bytes): the whole corpus (str in ``'utf-8'`` mode, bytes in ``'bytes'``
            mode). For a corpus with file splits it is the concatenation of the splits in
            catalog order (train, valid, test).
        splits (dict): split name -> str/bytes (e.g. ``'train'``, ``'valid'``, ``'test'``) when
            the catalog defines splits, else ``{}``.
        sha256 (str): hex sha256 of the raw source bytes before BOM removal and preprocessing
            (decompressed content for ``.gz`` files, the extracted member for zip archives,
            the concatenated content of all files in catalog order for multi-file corpora,
            and the UTF-8 encoding of the joined text for ``'pydoc'``).
        source (str): file path, corpus folder (multi-file corpora), or
            ``'pydoc_data.topics (CPython X.Y.Z)'``.
        encoding (str): ``'utf-8'`` or ``'bytes'``.
    """
    name: str
    text: object
    splits: dict
    sha256: str
    source: str
    encoding: str

    def __repr__(self):
        unit = 'bytes' if self.encoding == 'bytes' else 'chars'
        splits = ', '.join('%s=%d' % (k, len(v)) for k, v in self.splits.items())
        return ('Corpus(name=%r, %d %s, splits={%s}, sha256=%r, source=%r, encoding=%r)'
                % (self.name, len(self.text), unit, splits, self.sha256, self.source,
                   self.encoding))


# --------------------------------------------------------------------------------------------
# Catalog

def _catalog_error(msg):
    return CorpusError('corpus catalog %s is malformed: %s (fix the catalog file)'
                       % (CATALOG_PATH, msg))


def _check_sha(value, where):
    if not (isinstance(value, str) and len(value) == 64
            and all(c in '0123456789abcdef' for c in value)):
        raise _catalog_error('%s: sha256 must be 64 lower-case hex digits, got %r'
                             % (where, value))


def _check_size(value, where):
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise _catalog_error('%s: size must be a positive integer (bytes), got %r'
                             % (where, value))


def _parse_entry(entry):
    if not isinstance(entry, dict):
        raise _catalog_error('each corpus entry must be an object, got %r' % (entry,))
    required = ('name', 'kind', 'description', 'homepage', 'licence', 'default_encoding',
                'files', 'preprocessing', 'splits')
    missing = [k for k in required if k not in entry]
    name = entry.get('name', '?')
    if missing:
        raise _catalog_error('entry %r lacks %s' % (name, ', '.join(missing)))
    for k in ('name', 'kind', 'description', 'homepage', 'licence'):
        if not isinstance(entry[k], str) or not entry[k]:
            raise _catalog_error('entry %r: %s must be a non-empty string' % (name, k))
    if entry['kind'] not in ('download', 'builtin'):
        raise _catalog_error("entry %r: kind must be 'download' or 'builtin'" % name)
    if entry['default_encoding'] not in _ENCODINGS:
        raise _catalog_error('entry %r: default_encoding must be one of %s'
                             % (name, _ENCODINGS))
    if entry['preprocessing'] not in PREPROCESSING_STEPS:
        raise _catalog_error('entry %r: unknown preprocessing %r (known: %s)'
                             % (name, entry['preprocessing'], ', '.join(PREPROCESSING_STEPS)))
    files = []
    if not isinstance(entry['files'], list):
        raise _catalog_error('entry %r: files must be a list' % name)
    for i, f in enumerate(entry['files']):
        where = '%s files[%d]' % (name, i)
        if not isinstance(f, dict):
            raise _catalog_error('%s must be an object' % where)
        fn = f.get('filename')
        if not isinstance(fn, str) or not fn or '/' in fn or '\\' in fn or fn.startswith('.'):
            raise _catalog_error('%s: filename must be a plain file name, got %r' % (where, fn))
        urls = f.get('urls')
        if (not isinstance(urls, list) or not urls
                or not all(isinstance(u, str) and u.startswith(('http://', 'https://'))
                           for u in urls)):
            raise _catalog_error('%s: urls must be a non-empty list of http(s) URLs' % where)
        _check_sha(f.get('sha256'), where)
        _check_size(f.get('size'), where)
        extract = f.get('extract')
        if extract is not None:
            if not isinstance(extract, dict) or not isinstance(extract.get('member'), str):
                raise _catalog_error('%s: extract must be {member, sha256, size}' % where)
            _check_sha(extract.get('sha256'), where + ' extract')
            _check_size(extract.get('size'), where + ' extract')
        files.append(CorpusFile(filename=fn, urls=tuple(urls), sha256=f['sha256'],
                                size=f['size'], split=f.get('split'),
                                extract=dict(extract) if extract is not None else None))
    if entry['kind'] == 'download' and not files:
        raise _catalog_error('entry %r: a download corpus needs at least one file' % name)
    if entry['kind'] == 'builtin' and files:
        raise _catalog_error('entry %r: a builtin corpus has no files' % name)
    splits = entry['splits']
    if splits is not None:
        if not isinstance(splits, dict) or splits.get('method') not in _SPLIT_METHODS:
            raise _catalog_error('entry %r: splits must be null or have method in %s'
                                 % (name, _SPLIT_METHODS))
        if splits['method'] == 'files':
            names = [f.split for f in files]
            if not all(isinstance(s, str) and s for s in names) or len(set(names)) != len(names):
                raise _catalog_error("entry %r: with split method 'files' every file needs a "
                                     'distinct split name' % name)
        else:
            parts = splits.get('parts')
            if splits.get('unit') != 'bytes' or not isinstance(parts, list) or not parts:
                raise _catalog_error("entry %r: contiguous splits need unit 'bytes' and a "
                                     'non-empty parts list' % name)
            for p in parts:
                if not isinstance(p, dict) or not isinstance(p.get('name'), str):
                    raise _catalog_error('entry %r: each part needs a name and a size' % name)
                _check_size(p.get('size'), '%s splits part %r' % (name, p.get('name')))
            if len(files) != 1:
                raise _catalog_error('entry %r: contiguous splits need exactly one file' % name)
            f = files[0]
            total = f.extract['size'] if f.extract else f.size
            if sum(p['size'] for p in parts) != total:
                raise _catalog_error('entry %r: split sizes sum to %d, content has %d bytes'
                                     % (name, sum(p['size'] for p in parts), total))
        splits = json.loads(json.dumps(splits))  # private deep copy
    return CorpusSpec(name=entry['name'], kind=entry['kind'], description=entry['description'],
                      homepage=entry['homepage'], licence=entry['licence'],
                      default_encoding=entry['default_encoding'], files=tuple(files),
                      preprocessing=entry['preprocessing'], splits=splits)


@functools.lru_cache(maxsize=None)
def _catalog():
    try:
        raw = CATALOG_PATH.read_bytes()
    except FileNotFoundError:
        raise CorpusError('corpus catalog %s not found: the seqdbr installation is incomplete; '
                          'reinstall it (pip install -e . from the source tree)'
                          % CATALOG_PATH) from None
    try:
        doc = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _catalog_error('not valid UTF-8 JSON (%s)' % e) from None
    if (not isinstance(doc, dict) or doc.get('format') != 'seqdbr.corpora.catalog'
            or doc.get('version') != 1 or not isinstance(doc.get('corpora'), list)):
        raise _catalog_error("expected {'format': 'seqdbr.corpora.catalog', 'version': 1, "
                             "'corpora': [...]}")
    specs = {}
    for entry in doc['corpora']:
        spec = _parse_entry(entry)
        if spec.name in specs:
            raise _catalog_error('duplicate corpus name %r' % spec.name)
        specs[spec.name] = spec
    return specs


def list_corpora():
    """Names of the catalog corpora, sorted.

    Returns:
        list of str, e.g. ``['enwik8', 'neko-ja', 'ptb-char', 'pydoc', ...]``.
    """
    return sorted(_catalog())


def get_spec(name):
    """The catalog entry of a named corpus.

    Args:
        name (str): catalog name (see :func:`list_corpora`).

    Returns:
        CorpusSpec.

    Raises:
        CorpusError: ``name`` is not in the catalog (the message lists the known names).
    """
    specs = _catalog()
    if not isinstance(name, str) or name not in specs:
        raise CorpusError('unknown corpus %r; known corpora: %s (or pass the path of a UTF-8 '
                          'text file)' % (name, ', '.join(sorted(specs))))
    return specs[name]


def corpus_dir(name, data_dir=None):
    """The folder where the files of a named corpus are looked for and downloaded to.

    Args:
        name (str): catalog name.
        data_dir (str or os.PathLike or None): a folder holding this corpus's files directly;
            None means ``cache_dir() / 'corpora' / name``.

    Returns:
        pathlib.Path (it need not exist yet).
    """
    get_spec(name)
    if data_dir is not None:
        return pathlib.Path(data_dir)
    from seqdbr.datasets import download
    return pathlib.Path(download.cache_dir()) / 'corpora' / name


# --------------------------------------------------------------------------------------------
# Reading and decoding

def _decode(raw, label):
    """Strict UTF-8 decode of ``raw`` (bytes), one leading BOM removed, no newline changes."""
    start = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        text = raw[start:].decode('utf-8')
    except UnicodeDecodeError as e:
        offset = start + e.start
        line = raw.count(b'\n', 0, offset) + 1
        bad = raw[offset:offset + 4].hex(' ')
        raise CorpusError(
            '%s is not valid UTF-8: %s at byte offset %d (line %d, bytes %s). Fix: read it as '
            "raw bytes with --encoding bytes (encoding='bytes'), or re-encode the file to "
            'UTF-8 (e.g. iconv -f LATIN1 -t UTF-8 in.txt > out.txt).'
            % (label, e.reason, offset, line, bad)) from None
    return text


def _read_content(path):
    """Raw content bytes of ``path``, gunzipped when the name ends in ``.gz``."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise CorpusError('%s is a directory; pass the path of a text file' % path)
    if path.is_char_device() or path.is_block_device() or path.is_socket():
        # /dev/zero or /dev/urandom would be read forever (e.g. named by a hostile
        # checkpoint's corpus record); a pipe (--corpus <(zcat x.gz)) is still accepted.
        raise CorpusError('%s is a device or socket, not a text file; pass the path of a '
                          'text file' % path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError('corpus file %s does not exist' % path) from None
    except PermissionError as e:
        raise CorpusError('cannot read corpus file %s: permission denied (%s); make it '
                          'readable (chmod u+r) or pass another file'
                          % (path, e.strerror or e)) from None
    except OSError as e:     # EIO, a FIFO that fails, a file vanishing mid-read, ...
        raise CorpusError('cannot read corpus file %s (%s: %s)'
                          % (path, type(e).__name__, e.strerror or e)) from None
    if path.name.endswith('.gz'):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise CorpusError('%s is not a valid gzip file (%s); re-download it or remove '
                              'the .gz suffix if it is plain text' % (path, e)) from None
    return raw


def _check_not_empty(content, label):
    if len(content) == 0:
        raise CorpusError('%s is empty (nothing to train on); pass a non-empty text file'
                          % label)


def _unsep_ptb_char(text, label):
    sep, space, underscore = (' ', ' ', '_') if isinstance(text, str) else (b' ', b' ', b'_')
    odd = text[1::2]
    stripped = odd.lstrip(sep)
    if stripped or len(text) % 2:
        if stripped:
            pos = 2 * (len(odd) - len(stripped)) + 1
            what = 'found %r at position %d' % (text[pos:pos + 1], pos)
        else:
            what = 'odd length %d' % len(text)
        raise CorpusError("%s is not in the 'c h a r _ s e p' format (every character followed "
                          'by one space): %s. Use preprocessing for plain text files instead.'
                          % (label, what))
    return text[0::2].replace(underscore, space)


def _preprocess(step, content, label):
    if step == 'none':
        return content
    if step == 'ptb-char-unsep':
        return _unsep_ptb_char(content, label)
    raise AssertionError('preprocessing %r not applicable here' % step)


def _to_text(raw, encoding, label):
    _check_not_empty(raw, label)
    if encoding == 'bytes':
        return bytes(raw)
    text = _decode(raw, label)
    _check_not_empty(text, label + ' (after removing its byte-order mark)')
    return text


def _normalize_encoding(encoding, default):
    if encoding is None:
        return default
    if isinstance(encoding, str):
        e = encoding.strip().lower().replace('_', '-')
        if e in ('utf-8', 'utf8'):
            return 'utf-8'
        if e == 'bytes':
            return 'bytes'
    raise ValueError("encoding must be 'utf-8' or 'bytes', got %r; re-encode other files to "
                     "UTF-8, or use 'bytes' to model raw bytes" % (encoding,))


# --------------------------------------------------------------------------------------------
# Sources

def _load_pydoc(encoding):
    try:
        from pydoc_data import topics as topics_module
    except ImportError:
        raise CorpusError("the built-in corpus 'pydoc' needs the standard-library package "
                          'pydoc_data, which this Python installation lacks; install the full '
                          'standard library (e.g. the libpython3-stdlib package) or pass a text '
                          'file') from None
    topics = topics_module.topics
    text = PYDOC_SEPARATOR.join(topics[k] for k in sorted(topics))
    raw = text.encode('utf-8')
    source = 'pydoc_data.topics (%s %s)' % (platform.python_implementation(),
                                            platform.python_version())
    return Corpus(name='pydoc', text=raw if encoding == 'bytes' else text, splits={},
                  sha256=hashlib.sha256(raw).hexdigest(), source=source, encoding=encoding)


def _load_file(path, encoding):
    raw = _read_content(path)
    text = _to_text(raw, encoding, str(path))
    return Corpus(name=path.name, text=text, splits={}, sha256=hashlib.sha256(raw).hexdigest(),
                  source=str(path), encoding=encoding)


def _verify(content, expected_sha, expected_size, path, f, what):
    if len(content) != expected_size or hashlib.sha256(content).hexdigest() != expected_sha:
        got = 'size %d bytes, sha256 %s' % (len(content), hashlib.sha256(content).hexdigest())
        raise CorpusError(
            '%s (%s) does not match the catalog: %s, expected size %d bytes, sha256 %s. The '
            'file is corrupt or a different version: delete it so that it is downloaded again, '
            'or replace it with the file from %s' % (path, what, got, expected_size,
                                                     expected_sha, f.urls[0]))


def _candidates(d, f):
    if f.extract:
        m = f.extract['member']
        return [(d / m, 'member'), (d / (m + '.gz'), 'member'), (d / f.filename, 'archive')]
    return [(d / f.filename, 'file'), (d / (f.filename + '.gz'), 'file')]


def _find(d, f):
    for path, kind in _candidates(d, f):
        if path.is_file():
            return path, kind
    return None, None


def _file_content(path, kind, f):
    """Verified content bytes of one catalog file found at ``path``."""
    raw = _read_content(path)
    if kind == 'file':
        _verify(raw, f.sha256, f.size, path, f, 'content')
        return raw
    if kind == 'archive':
        _verify(raw, f.sha256, f.size, path, f, 'archive')
        member = f.extract['member']
        try:
            with zipfile.ZipFile(path) as z:
                raw = z.read(member)
        except (zipfile.BadZipFile, KeyError) as e:
            raise CorpusError('%s: cannot extract %r (%s); delete it so it is downloaded again'
                              % (path, member, e)) from None
    _verify(raw, f.extract['sha256'], f.extract['size'], path, f, 'member %r' % f.extract['member'])
    return raw


def _missing_message(spec, d, missing):
    lines = ['corpus %r: %d file(s) missing from %s and downloading is disabled.'
             % (spec.name, len(missing), d)]
    for f in missing:
        alt = '' if f.extract else ' (or gzipped as %s.gz)' % f.filename
        lines.append('  put %s%s there: download %s (%d bytes, sha256 %s)'
                     % (f.filename, alt, ' or '.join(f.urls), f.size, f.sha256))
        if f.extract:
            m = f.extract
            lines.append('    or put its extracted member %s (or %s.gz) there (%d bytes, '
                         'sha256 %s)' % (m['member'], m['member'], m['size'], m['sha256']))
    lines.append('Or allow the download (allow_download=True / drop --offline). The folder is '
                 '$SEQDBR_DATA/corpora/%s (default ~/.cache/seqdbr/corpora/%s) unless a data '
                 'dir is given.' % (spec.name, spec.name))
    return '\n'.join(lines)


def _load_named(spec, encoding, data_dir, allow_download):
    if spec.kind == 'builtin':
        return _load_pydoc(encoding)
    d = corpus_dir(spec.name, data_dir)
    found = {f.filename: _find(d, f) for f in spec.files}
    missing = [f for f in spec.files if found[f.filename][0] is None]
    if missing:
        if not allow_download:
            raise CorpusError(_missing_message(spec, d, missing))
        from seqdbr.datasets import download
        d.mkdir(parents=True, exist_ok=True)
        for f in missing:
            download.download_file(list(f.urls), d / f.filename, f.sha256,
                                   desc='%s: %s' % (spec.name, f.filename))
            found[f.filename] = (d / f.filename, 'archive' if f.extract else 'file')

    contents = [(f, found[f.filename][0], _file_content(*found[f.filename], f))
                for f in spec.files]
    sha = hashlib.sha256()
    for _, _, raw in contents:
        sha.update(raw)

    def label(path):
        return '%s (corpus %r)' % (path, spec.name)

    splits = {}
    method = spec.splits['method'] if spec.splits else None
    if method == 'contiguous':
        (f, path, raw), = contents
        offset = 0
        for part in spec.splits['parts']:
            piece = raw[offset:offset + part['size']]
            where = '%s bytes %d..%d (split %r)' % (label(path), offset,
                                                    offset + part['size'], part['name'])
            splits[part['name']] = _preprocess(spec.preprocessing,
                                               _to_text(piece, encoding, where), where)
            offset += part['size']
        parts = list(splits.values())
    else:
        parts = [_preprocess(spec.preprocessing, _to_text(raw, encoding, label(path)),
                             label(path)) for f, path, raw in contents]
        if method == 'files':
            splits = {f.split: part for (f, _, _), part in zip(contents, parts)}
    text = parts[0] if len(parts) == 1 else (b'' if encoding == 'bytes' else '').join(parts)
    _check_not_empty(text, 'corpus %r after %s preprocessing' % (spec.name, spec.preprocessing))
    source = str(contents[0][1]) if len(contents) == 1 else str(d)
    return Corpus(name=spec.name, text=text, splits=splits, sha256=sha.hexdigest(),
                  source=source, encoding=encoding)


def load_corpus(name_or_path=None, *, encoding=None, data_dir=None, allow_download=True):
    """Load a corpus as text (or bytes).

    Args:
        name_or_path (str, os.PathLike or None): a catalog name (:func:`list_corpora`), the
            path of a UTF-8 text file (``.gz`` is gunzipped), or ``'pydoc'`` / None for the
            built-in CPython documentation corpus. A str is looked up in the catalog first; to
            load a file whose name equals a catalog name, pass ``'./name'`` or a ``Path``.
        encoding (str or None): ``'utf-8'`` (text: str) or ``'bytes'`` (raw bytes: bytes);
            None means the catalog's ``default_encoding`` for named corpora (``'bytes'`` for
            ``enwik8``, ``'utf-8'`` otherwise) and ``'utf-8'`` for files.
        data_dir (str, os.PathLike or None): named corpora only: the folder holding this
            corpus's files directly (default ``cache_dir()/'corpora'/<name>``). Missing files
            are downloaded into it.
        allow_download (bool): when False, a missing file raises :class:`CorpusError` telling
            where to put it instead of touching the network.

    Returns:
        Corpus: ``text`` is the whole corpus; ``splits`` holds the catalog's splits (empty
        for files, ``pydoc`` and corpora without predefined splits).

    Raises:
        CorpusError: unknown name that is not an existing file; empty content; invalid UTF-8
            (message gives the byte offset); a cached file whose size/sha256 differs from the
            catalog; missing files with ``allow_download=False``; ``data_dir`` given for a
            file path.
        ValueError: ``encoding`` is not ``'utf-8'`` or ``'bytes'``.
        seqdbr.datasets.download.DownloadError: a download failed (offline, bad checksum).
    """
    if name_or_path is None:
        name_or_path = 'pydoc'
    if isinstance(name_or_path, str) and not name_or_path.strip():
        raise CorpusError('empty corpus name; pass a catalog name (%s) or a file path'
                          % ', '.join(list_corpora()))
    if isinstance(name_or_path, str) and name_or_path in _catalog():
        spec = get_spec(name_or_path)
        enc = _normalize_encoding(encoding, spec.default_encoding)
        if spec.kind == 'builtin' and data_dir is not None:
            raise CorpusError('data_dir applies to downloaded corpora; %r is built in '
                              '(remove data_dir)' % spec.name)
        return _load_named(spec, enc, data_dir, allow_download)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError('name_or_path must be a corpus name or a path, got %s'
                        % type(name_or_path).__name__)
    enc = _normalize_encoding(encoding, 'utf-8')
    path = pathlib.Path(name_or_path)
    if not path.exists():
        raise CorpusError('%r is neither a known corpus (%s) nor an existing file'
                          % (os.fspath(name_or_path), ', '.join(list_corpora())))
    if data_dir is not None:
        raise CorpusError('data_dir applies to named corpora only; %s is a file path '
                          '(remove data_dir)' % path)
    return _load_file(path, enc)
