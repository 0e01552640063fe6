"""Interactive views for the lessons, one group per stage, built with ipywidgets.

Each widget is a thin layer: its callbacks call a plain function of this package
or of a stage module, so every view can be tested without a browser by calling
that function directly. Stage groups live in private modules and are imported
here, so lessons only ever write ``from medkit import widgets``.
"""

from medkit._fonts import use_cjk_fallback
from medkit.widgets._digitize import (
    clean_table,
    cleaning_explorer,
    compare_column,
    plot_column,
    plot_counts,
)
from medkit.widgets._intelligence import (
    LAB_MODELS,
    ModelLab,
    describe_threshold,
    fit_lab_model,
    model_lab,
    plot_lab,
)
from medkit.widgets._networking import (
    ENDPOINTS,
    ApiExplorer,
    ApiResult,
    Endpoint,
    KAnonymityExplorer,
    api_explorer,
    class_sizes,
    describe_k_anonymity,
    describe_response,
    k_anonymity_explorer,
    parse_parameters,
    plot_class_sizes,
    rarest_classes,
    send_request,
)
from medkit.widgets._personalize import (
    highlight_terms,
    recommendation_view,
    recommender,
)
from medkit.widgets._welcome import (
    STAGES,
    Stage,
    course_map,
    data_browser,
    describe_stage,
    preview_file,
)

# Lessons label plots in Chinese and English, so every lesson that imports the
# widgets gets a font with CJK glyphs.
use_cjk_fallback()

__all__ = [
    "ENDPOINTS",
    "LAB_MODELS",
    "STAGES",
    "ApiExplorer",
    "ApiResult",
    "Endpoint",
    "KAnonymityExplorer",
    "ModelLab",
    "Stage",
    "api_explorer",
    "class_sizes",
    "clean_table",
    "cleaning_explorer",
    "compare_column",
    "course_map",
    "data_browser",
    "describe_k_anonymity",
    "describe_response",
    "describe_stage",
    "describe_threshold",
    "fit_lab_model",
    "highlight_terms",
    "k_anonymity_explorer",
    "model_lab",
    "parse_parameters",
    "plot_class_sizes",
    "plot_column",
    "plot_counts",
    "plot_lab",
    "preview_file",
    "rarest_classes",
    "recommendation_view",
    "recommender",
    "send_request",
]
