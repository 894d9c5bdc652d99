"""Human-written dates -> ISO 8601 dates: a seq2seq task generated from a seed, no download.

Each example is a pair of strings ``(source, target)``, e.g. ``('the 3rd of may 1998',
'1998-05-03')``. Dates range over :data:`FIRST_DATE` .. :data:`LAST_DATE` (1950-01-01 to
2049-12-31, 36,525 days); sources use one of :data:`FORMATS` (English names, written by this
module, independent of the locale), and names may be capitalised, lower-case or upper-case.

Conventions that make every source unambiguous:

* slashed numeric dates are US month/day (``05/03/1998`` is May 3), dotted ones are
  day.month (``03.05.1998``), ``yyyy/mm/dd`` and compact ``yyyymmdd`` start with the year;
* two-digit years ``50``..``99`` are 1950..1999 and ``00``..``49`` are 2000..2049.

The held-out split is fixed, independent of the seed and of the NumPy version: a date is
held out when the CRC-32 of its ISO text is ``0 mod 10`` (about 10 % of the days); those with
``crc % 20 == 0`` are the validation dates and ``crc % 20 == 10`` the test dates. Training
examples never use a held-out date, in any format, so the held-out accuracy measures
generalisation to unseen dates, not memorisation.
"""
import datetime
import zlib

import numpy

__all__ = ['FIRST_DATE', 'LAST_DATE', 'FORMATS', 'SOURCE_ALPHABET', 'TARGET_ALPHABET',
           'render', 'split_of', 'split_dates', 'make_examples', 'load_dates']

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)

_MONTHS = ('January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
           'September', 'October', 'November', 'December')
_DAYS = ('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday')


def _ordinal(n):
    if 10 <= n % 100 <= 20:
        return '%dth' % n
    return '%d%s' % (n, {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th'))


_RENDER = {
    'd MMMM yyyy': lambda d, M, W: '%d %s %d' % (d.day, M, d.year),
    'MMMM d, yyyy': lambda d, M, W: '%s %d, %d' % (M, d.day, d.year),
    'MMM dd yyyy': lambda d, M, W: '%s %02d %d' % (M[:3], d.day, d.year),
    'dd-MMM-yyyy': lambda d, M, W: '%02d-%s-%d' % (d.day, M[:3], d.year),
    'd MMM yy': lambda d, M, W: '%d %s %02d' % (d.day, M[:3], d.year % 100),
    'the dth of MMMM yyyy': lambda d, M, W: 'the %s of %s %d' % (_ordinal(d.day), M, d.year),
    'EEEE, MMMM d, yyyy': lambda d, M, W: '%s, %s %d, %d' % (W, M, d.day, d.year),
    'EEE dd MMM yyyy': lambda d, M, W: '%s %02d %s %d' % (W[:3], d.day, M[:3], d.year),
    'dd.mm.yyyy': lambda d, M, W: '%02d.%02d.%d' % (d.day, d.month, d.year),
    'mm/dd/yyyy': lambda d, M, W: '%02d/%02d/%d' % (d.month, d.day, d.year),
    'm/d/yy': lambda d, M, W: '%d/%d/%02d' % (d.month, d.day, d.year % 100),
    'yyyy/mm/dd': lambda d, M, W: '%d/%02d/%02d' % (d.year, d.month, d.day),
    'yyyymmdd': lambda d, M, W: '%d%02d%02d' % (d.year, d.month, d.day),
}
#: The source formats (keys of the renderer; ``MMMM`` month name, ``MMM`` its first three
#: letters, ``EEEE``/``EEE`` the weekday, ``yy`` a two-digit year).
FORMATS = tuple(_RENDER)
_CASES = ('title', 'lower', 'upper')

#: Every character a source can contain (sorted).
SOURCE_ALPHABET = ''.join(sorted(set(
    ' ,./-0123456789' + ''.join(_MONTHS + _DAYS) + ''.join(_MONTHS + _DAYS).lower()
    + ''.join(_MONTHS + _DAYS).upper() + 'thstndrdTHSTNDRDof' + 'OF')))
#: Every character a target can contain.
TARGET_ALPHABET = '-0123456789'


def render(date, fmt, case='title'):
    """``date`` (datetime.date) written in format ``fmt`` (one of :data:`FORMATS`), with the
    month/weekday names and words in ``case`` ('title', 'lower' or 'upper').

    Raises:
        ValueError: unknown format or case.
    """
    if fmt not in _RENDER:
        raise ValueError('render: unknown format %r; choose one of %s' % (fmt, list(FORMATS)))
    if case not in _CASES:
        raise ValueError("render: case must be 'title', 'lower' or 'upper', got %r" % (case,))
    s = _RENDER[fmt](date, _MONTHS[date.month - 1], _DAYS[date.weekday()])
    return s.lower() if case == 'lower' else s.upper() if case == 'upper' else s


def split_of(date):
    """'train', 'val' or 'test': the fixed split of ``date`` (see the module docstring)."""
    crc = zlib.crc32(date.isoformat().encode('ascii')) % 20
    return 'val' if crc == 0 else 'test' if crc == 10 else 'train'


def split_dates():
    """``{'train': [...], 'val': [...], 'test': [...]}``: every date of the range, by split."""
    out = {'train': [], 'val': [], 'test': []}
    d, one = FIRST_DATE, datetime.timedelta(days=1)
    while d <= LAST_DATE:
        out[split_of(d)].append(d)
        d += one
    return out


def make_examples(dates, n, rng):
    """``n`` pairs ``(source, target)`` with dates drawn uniformly (with replacement) from
    ``dates`` and a format and a case drawn uniformly, using ``rng`` (numpy Generator)."""
    idx = rng.integers(0, len(dates), n)
    fmts = rng.integers(0, len(FORMATS), n)
    cases = rng.integers(0, len(_CASES), n)
    return [(render(dates[i], FORMATS[f], _CASES[c]), dates[i].isoformat())
            for i, f, c in zip(idx.tolist(), fmts.tolist(), cases.tolist())]


def load_dates(n_train=20000, n_val=1000, n_test=1000, seed=0):
    """Generate the date-normalisation task.

    Args:
        n_train, n_val, n_test (int): examples per split (>= 0).
        seed (int): seeds the examples drawn (which dates, formats and cases); the split of
            the dates themselves is fixed (module docstring). Each split has its own stream,
            so ``n_train`` does not change the validation or test examples.

    Returns:
        dict ``{'train': [...], 'val': [...], 'test': [...]}`` of lists of
        ``(source, target)`` string pairs; targets are ``'YYYY-MM-DD'``.

    Raises:
        ValueError: a negative count.
    """
    for name, n in (('n_train', n_train), ('n_val', n_val), ('n_test', n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 0:
            raise ValueError('load_dates: %s must be an int >= 0, got %r' % (name, n))
    pools = split_dates()
    ss = numpy.random.SeedSequence(seed).spawn(3)
    return {name: make_examples(pools[name], int(n), numpy.random.default_rng(s))
            for (name, n), s in zip((('train', n_train), ('val', n_val), ('test', n_test)), ss)}
