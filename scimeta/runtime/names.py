"""Names that become file names: labels, regimes, split names.

A name read from a file or a config (a store's ``regime`` attribute, a dataset's
split name, a validation label) is only ever joined to a folder after
:func:`safe_name` has accepted it, so no content can make scimeta write outside the
folder it chose (``../x``, ``/etc/x``, ``a/b``, hidden files, device names).
"""

from __future__ import annotations

import re

from ..errors import ConfigError

#: letters, digits, then also space . _ + = , @ -; at most 100 characters
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+=,@-]{0,99}")
ALLOWED = ("1 to 100 characters: letters, digits, space and . _ + = , @ -, starting with a "
           "letter or digit and not ending with a space or a dot")


def is_safe_name(value: object) -> bool:
    """Whether ``value`` is a string :func:`safe_name` accepts."""
    return (isinstance(value, str) and SAFE_NAME.fullmatch(value) is not None
            and not value.endswith((" ", ".")))


def safe_name(value: object, what: str) -> str:
    """``value`` unchanged if it is safe as a file name, else a :class:`ConfigError`.

    ``what`` names where the value comes from, e.g. ``"regime attribute of 'x.h5'"``
    or ``"data.validation label"``; the message gives the value and what is allowed.
    """
    if not is_safe_name(value):
        raise ConfigError(f"{what} {value!r} cannot be used as a file name; allowed: "
                          f"{ALLOWED}")
    return value  # type: ignore[return-value]
