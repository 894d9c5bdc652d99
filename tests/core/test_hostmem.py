"""The host allocator tuning is applied once on glibc and can be switched off."""
import os
import platform
import subprocess
import sys

import pytest

CODE = 'import seqdbr.core.hostmem as h; import seqdbr; print(h._applied)'


def _run(env_value):
    env = dict(os.environ)
    env.pop('SEQDBR_HOST_ALLOCATOR', None)
    if env_value is not None:
        env['SEQDBR_HOST_ALLOCATOR'] = env_value
    out = subprocess.run([sys.executable, '-c', CODE], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
                    reason='mallopt tuning exists on Linux/glibc only')
def test_applied_on_import_with_glibc():
    assert _run(None) == 'True'


def test_opt_out_keeps_c_library_defaults():
    assert _run('default') == 'False'
