"""medkit: a course kit that teaches digital healthcare in Jupyter.

The stage modules are :mod:`medkit.digitize`, :mod:`medkit.intelligence`,
:mod:`medkit.network` with :mod:`medkit.privacy`, and :mod:`medkit.personalize`.
Synthetic hospital data comes from :mod:`medkit.datasets`.
"""

import logging

from medkit.exceptions import MedkitError

__all__ = ["MedkitError", "__version__"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
