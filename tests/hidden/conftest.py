"""Hidden suites: each tests one chapter's interface through the ``impl`` fixture.

By default ``impl`` is the reference package (so ``pytest tests/hidden`` checks it scores 100 %);
``pytest tests/hidden --submission PATH.ipynb`` grades a notebook in the sandbox; ``tfmcourse grade``
and ``tfmcourse.grading.nbgrader_check`` install their own implementation. See
``tfmcourse/grading/impl.py`` for the API and ``tfmcourse/grading/checks.py`` for the assertions.
"""
from tfmcourse.grading.pytest_plugin import (impl, one_intra_op_thread, pytest_addoption,  # noqa: F401
                                             pytest_configure)
