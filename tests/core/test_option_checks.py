import numpy
import pytest

from seqdbr.core.option_checks import flag_name, is_int, is_real


@pytest.mark.parametrize('v,integer,real', [
    (3, True, True), (numpy.int64(3), True, True), (True, False, False), (False, False, False),
    (2.0, False, True), (numpy.float32(0.5), False, True), ('3', False, False),
    (None, False, False), (numpy.array(3), False, False)])
def test_bools_are_not_numbers(v, integer, real):
    assert is_int(v) is integer and is_real(v) is real


def test_flag_name():
    assert flag_name('batch_size') == '--batch-size' and flag_name('seed') == '--seed'
