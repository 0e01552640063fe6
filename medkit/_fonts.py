"""A Chinese font for matplotlib, so plots can label 心内科 as well as "male".

matplotlib's default font, DejaVu Sans, has no CJK glyphs: Chinese labels
render as empty boxes and each missing glyph raises a UserWarning. The package
``noto-cjk-sans-otc`` ships Noto Sans CJK (SIL Open Font License) inside the
environment, so nothing is downloaded when a plot is drawn.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging

logger = logging.getLogger(__name__)

CJK_FAMILY = "Noto Sans CJK SC"


@functools.cache
def use_cjk_fallback() -> bool:
    """Register Noto Sans CJK with matplotlib as the fallback for missing glyphs.

    Latin text keeps the current font; only characters that it lacks, such as
    Chinese, are drawn with Noto Sans CJK SC. Calling it again does nothing.

    Returns
    -------
    bool
        True if the font was registered, False if the font package is absent.
    """
    import matplotlib as mpl
    from matplotlib import font_manager

    try:
        font = (
            importlib.resources.files("noto_cjk_sans_otc") / "NotoSansCJK-Regular.ttc"
        )
    except ModuleNotFoundError:
        logger.warning(
            "Chinese labels in plots will show as boxes: install the package "
            "noto-cjk-sans-otc to draw them."
        )
        return False

    font_manager.fontManager.addfont(str(font))
    families = list(mpl.rcParams["font.family"])
    if CJK_FAMILY not in families:
        mpl.rcParams["font.family"] = [*families, CJK_FAMILY]
    logger.debug("Registered %s as the fallback font", CJK_FAMILY)
    return True
