"""Vocabulary: symbol order, encode/decode round trips, unknown symbols, JSON round trip."""
import json

import numpy
import pytest

from seqdbr.charlm.vocab import ID_DTYPE, UnknownCharacterError, Vocabulary

TRICKY = ('line one\r\nline two\n\x00tab\there 吾輩は猫である。\r\n'
          'emoji 😀🐍 and 𝄞 é\u0301\ufeff')


def _reference_ids(text, symbols):
    """Ids computed the slow obvious way: position of each character in the symbol list."""
    index = {s: i for i, s in enumerate(symbols)}
    return [index[c] for c in text]


def test_from_text_is_sorted_unique_and_order_independent():
    v = Vocabulary.from_text('banana\r\n')
    assert v.mode == 'char'
    assert v.symbols == ('\n', '\r', 'a', 'b', 'n')
    assert len(v) == 5
    assert Vocabulary.from_text('\nnab\rananab') == v
    astral = Vocabulary.from_text('😀a\U0010ffff')
    assert astral.symbols == ('a', '😀', '\U0010ffff')       # sorted by code point


def test_encode_matches_reference_and_round_trips():
    v = Vocabulary.from_text(TRICKY)
    assert list(v.symbols) == sorted(set(TRICKY))
    ids = v.encode(TRICKY)
    assert ids.dtype == ID_DTYPE == numpy.int32
    assert ids.shape == (len(TRICKY),)
    assert ids.tolist() == _reference_ids(TRICKY, sorted(set(TRICKY)))
    assert v.decode(ids) == TRICKY
    assert v.decode(ids.tolist()) == TRICKY                   # plain lists work too
    assert v.decode(ids.astype(numpy.int64)) == TRICKY
    assert v.encode('').shape == (0,) and v.encode('').dtype == ID_DTYPE
    assert v.decode([]) == ''


def test_latin1_range_round_trip():
    text = 'café ÿ\x80\r\n\x00'              # every code point < 256 (one-byte decode path)
    v = Vocabulary.from_text(text)
    assert v.decode(v.encode(text)) == text
    assert v.decode(v.encode(text)[::-1]) == text[::-1]


def test_lone_surrogates_round_trip():
    text = 'a\udcffb\ud800'
    v = Vocabulary.from_text(text)
    assert v.decode(v.encode(text)) == text


def test_real_corpora_round_trip(shared_data):
    tiny = (shared_data / 'tinyshakespeare' / 'input.txt').read_bytes().decode('utf-8')
    v = Vocabulary.from_text(tiny)
    assert len(v) == 65
    ids = v.encode(tiny)
    assert v.decode(ids) == tiny
    head = tiny[:5000]
    assert ids[:5000].tolist() == _reference_ids(head, sorted(set(tiny)))
    neko = (shared_data / 'neko-ja' / 'neko.txt').read_bytes().decode('utf-8')
    vn = Vocabulary.from_text(neko)
    assert len(vn) == 3042
    assert vn.decode(vn.encode(neko)) == neko               # CRLF and kanji survive
    assert '\r' in vn and '猫' in vn


def test_unknown_characters_error_lists_them_with_counts():
    v = Vocabulary.from_text('abc \n')
    with pytest.raises(UnknownCharacterError) as e:
        v.encode('a Zz\r\nzéZ😀c')
    err = e.value
    assert isinstance(err, ValueError)
    # sorted by code point, de-duplicated, with counts
    assert err.unknown == {'\r': 1, 'Z': 2, 'z': 2, 'é': 1, '😀': 1}
    assert list(err.unknown) == sorted(err.unknown)
    msg = str(err)
    order = [msg.index(repr(c)) for c in ('\r', 'Z', 'z', 'é', '😀')]
    assert order == sorted(order)
    assert "'Z' (U+005A) x2" in msg and "'😀' (U+1F600) x1" in msg
    assert '5 distinct characters (7 occurrences)' in msg
    assert '--unknown skip' in msg and 'corpus that contains them' in msg


def test_unknown_error_truncates_long_lists():
    v = Vocabulary.from_text('a')
    with pytest.raises(UnknownCharacterError) as e:
        v.encode(''.join(chr(0x4e00 + i) for i in range(30)))
    assert len(e.value.unknown) == 30 and '... and 10 more' in str(e.value)


def test_unknown_skip_drops_symbols():
    v = Vocabulary.from_text('abc')
    text = 'xaybz😀c'
    ids = v.encode(text, unknown='skip')
    assert ids.tolist() == [0, 1, 2]
    assert v.decode(ids) == 'abc'
    assert v.encode('xyz', unknown='skip').tolist() == []
    with pytest.raises(ValueError, match="unknown must be 'error' or 'skip'"):
        v.encode('abc', unknown='replace')


def test_bytes_mode_round_trips_non_utf8_bytes():
    data = b'\xff\xfe\x00\r\n\x80abc\xc3'          # not valid UTF-8
    v = Vocabulary.from_text(data)
    assert v.mode == 'bytes'
    assert v.symbols == tuple(sorted(set(data)))
    ids = v.encode(data)
    assert ids.dtype == ID_DTYPE
    assert ids.tolist() == _reference_ids(list(data), sorted(set(data)))
    out = v.decode(ids)
    assert isinstance(out, bytes) and out == data
    assert v.encode(bytearray(data)).tolist() == ids.tolist()
    assert v.encode(memoryview(data)).tolist() == ids.tolist()
    with pytest.raises(UnknownCharacterError, match='0x01 x2') as e:
        v.encode(b'\x01a\x01')
    assert e.value.unknown == {1: 2}
    assert v.encode(b'\x01a\x01', unknown='skip').tolist() == [v.encode(b'a')[0]]
    assert 255 in v and 1 not in v and 'a' not in v


def test_type_errors_point_to_the_right_mode():
    chars = Vocabulary.from_text('abc')
    raw = Vocabulary.from_text(b'abc')
    assert chars != raw
    with pytest.raises(TypeError, match='decode the bytes to str'):
        chars.encode(b'abc')
    with pytest.raises(TypeError, match='encode the str first'):
        raw.encode('abc')
    with pytest.raises(TypeError, match='from_text needs str'):
        Vocabulary.from_text(['a'])
    with pytest.raises(ValueError, match='empty'):
        Vocabulary.from_text('')
    with pytest.raises(ValueError, match='empty'):
        Vocabulary.from_text(b'')


def test_decode_validates_ids():
    v = Vocabulary.from_text('abc')
    with pytest.raises(ValueError, match='id 3 at position 1 is out of range.*0..2'):
        v.decode([0, 3])
    with pytest.raises(ValueError, match='id -1'):
        v.decode(numpy.array([-1], dtype=numpy.int32))
    with pytest.raises(TypeError, match='integers'):
        v.decode(numpy.array([0.0, 1.0]))
    with pytest.raises(ValueError, match='1-D'):
        v.decode(numpy.zeros((2, 2), dtype=numpy.int32))


def test_constructor_validation():
    assert Vocabulary(['b', 'a']).symbols == ('b', 'a')     # explicit order is kept
    with pytest.raises(ValueError, match="duplicate symbol 'a'"):
        Vocabulary(['a', 'b', 'a'])
    with pytest.raises(TypeError, match='1-character'):
        Vocabulary(['ab'])
    with pytest.raises(TypeError, match='from_text'):
        Vocabulary('abc')
    with pytest.raises(ValueError, match='0..255'):
        Vocabulary([1, 256], mode='bytes')
    with pytest.raises(TypeError, match='ints 0..255'):
        Vocabulary([True], mode='bytes')
    with pytest.raises(ValueError, match='at least one symbol'):
        Vocabulary([])
    with pytest.raises(ValueError, match="mode must be"):
        Vocabulary(['a'], mode='word')


def test_equality_and_hash():
    a = Vocabulary.from_text('xyz')
    assert a == Vocabulary(['x', 'y', 'z']) and hash(a) == hash(Vocabulary(['x', 'y', 'z']))
    assert a != Vocabulary(['z', 'y', 'x'])                  # same set, other ids
    assert a != Vocabulary.from_text('xy')
    assert a != 'xyz'
    assert len({a, Vocabulary.from_text('zyx')}) == 1


@pytest.mark.parametrize('text', [TRICKY, b'\x00\xff\r\n\x80', 'only\r', '\x00'])
def test_json_round_trip_is_exact(text):
    v = Vocabulary.from_text(text)
    d = v.to_json()
    # JSON-native: survives any writer setting and encoding
    for s in (json.dumps(d), json.dumps(d, ensure_ascii=False)):
        back = Vocabulary.from_json(json.loads(s.encode('utf-8').decode('utf-8')))
        assert back == v
        assert back.symbols == v.symbols and back.mode == v.mode
        assert back.decode(back.encode(text)) == text
    assert json.loads(json.dumps(d)) == d


def test_from_json_rejects_bad_documents():
    good = Vocabulary.from_text('ab').to_json()
    with pytest.raises(TypeError, match='json.loads'):
        Vocabulary.from_json(json.dumps(good))
    with pytest.raises(ValueError, match='not a seqdbr vocabulary'):
        Vocabulary.from_json(dict(good, format='other'))
    with pytest.raises(ValueError, match='version 2 is not supported'):
        Vocabulary.from_json(dict(good, version=2))
    with pytest.raises(ValueError, match='list of integers'):
        Vocabulary.from_json(dict(good, symbols=['a', 'b']))
    with pytest.raises(ValueError, match='list of integers in 0..255'):
        Vocabulary.from_json(dict(good, mode='bytes', symbols=[97, 300]))
    with pytest.raises(ValueError, match='duplicate'):
        Vocabulary.from_json(dict(good, symbols=[97, 97]))


def test_large_text_encodes_vectorised():
    rng = numpy.random.default_rng(0)
    alphabet = 'abc 😀\n'
    idx = rng.integers(0, len(alphabet), size=200_000)
    text = ''.join(alphabet[i] for i in idx)
    v = Vocabulary.from_text(text)
    sorted_alpha = sorted(alphabet)
    expected = numpy.array([sorted_alpha.index(c) for c in alphabet])[idx]
    numpy.testing.assert_array_equal(v.encode(text), expected)
    assert v.decode(v.encode(text)) == text
