"""Puts the suite's deprecation rule into every Python process a test starts.

``tests/conftest.py`` puts this folder first on ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up, before the process's own code. See
``tests/deprecations.py``.
"""

from tests import deprecations

deprecations.install_in_subprocess()
