"""nbgrader settings of every single-user server on the class hub.

The hub puts this folder on ``JUPYTER_CONFIG_PATH``, after the folder of the
user's role (``instructor/`` or ``trainee/``), and passes the exchange settings
in ``MEDKIT_HUB_EXCHANGE`` and ``MEDKIT_HUB_COURSE_ID``.
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets defines get_config when it loads this file)

config_dir = str(Path(__file__).resolve().parent)
if config_dir not in sys.path:
    sys.path.append(config_dir)

c.CourseDirectory.course_id = os.environ.get("MEDKIT_HUB_COURSE_ID", "medkit")
c.Exchange.root = os.environ.get("MEDKIT_HUB_EXCHANGE", "/srv/nbgrader/exchange")
c.ExchangeFactory.submit = "private_exchange.PrivateExchangeSubmit"
