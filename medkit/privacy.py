"""Stage 3 privacy: pseudonymise, generalise, check k-anonymity, scan for identifiers.

Records leave a site only after their direct identifiers are removed and their
quasi-identifiers generalised. Each step is a function a lesson can call:

* :func:`load_key` reads the pseudonym key from ``$MEDKIT_PSEUDONYM_KEY`` or a
  file, and :func:`new_key` makes one.
* :func:`pseudonymize` replaces IDs with keyed HMAC-SHA256 pseudonyms, the same
  at every site that has the key. :func:`shift_dates` moves each patient's
  dates by a secret number of days.
* :func:`age_band`, :func:`to_month` and :func:`postcode_prefix` generalise
  quasi-identifiers; :func:`deidentify` applies all of them to a table by the
  column roles in ``ROLES``.
* :func:`shared_records` builds the one record per stay that sites exchange
  (``SHARED_COLUMNS``).
* :func:`k_anonymity`, :func:`reidentification_risk` and
  :func:`enforce_k_anonymity` measure and enforce k-anonymity.
* :func:`scan` and :func:`scan_notebook` find names, phone numbers, resident ID
  numbers, e-mail and street addresses, and known patient IDs.
"""

from __future__ import annotations

from medkit._privacy_kanon import (
    DEFAULT_GENERALIZERS,
    SUPPRESSED_VALUE,
    KAnonymityResult,
    RiskReport,
    enforce_k_anonymity,
    k_anonymity,
    reidentification_risk,
)
from medkit._privacy_keys import KEY_ENV, load_key, new_key, pseudonymize, shift_dates
from medkit._privacy_records import (
    KEY_PREFIXES,
    ROLES,
    SHARED_COLUMNS,
    SHARED_DTYPES,
    age_band,
    deidentify,
    postcode_prefix,
    shared_records,
    to_month,
)
from medkit._privacy_scan import (
    HEADER_KINDS,
    KINDS,
    Finding,
    ScanReport,
    require_no_identifiers,
    scan,
    scan_notebook,
)

__all__ = [
    "DEFAULT_GENERALIZERS",
    "SUPPRESSED_VALUE",
    "KAnonymityResult",
    "RiskReport",
    "enforce_k_anonymity",
    "k_anonymity",
    "reidentification_risk",
    "HEADER_KINDS",
    "KEY_ENV",
    "KEY_PREFIXES",
    "KINDS",
    "ROLES",
    "SHARED_COLUMNS",
    "SHARED_DTYPES",
    "Finding",
    "ScanReport",
    "age_band",
    "deidentify",
    "load_key",
    "new_key",
    "postcode_prefix",
    "pseudonymize",
    "require_no_identifiers",
    "scan",
    "scan_notebook",
    "shared_records",
    "shift_dates",
    "to_month",
]
