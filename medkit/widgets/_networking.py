"""Widgets of the networking lesson: the API explorer and the k-anonymity explorer."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import pandas as pd

from medkit.exceptions import MissingColumnError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One request the API explorer can send.

    ``parameters`` is the query string filled in when the endpoint is chosen.
    """

    label: str
    method: str
    path: str
    parameters: str = ""


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET /health", "GET", "/health"),
    Endpoint("GET /records", "GET", "/records", "page=1&page_size=3"),
    Endpoint("GET /stats", "GET", "/stats", "group_by=department"),
    Endpoint("GET /models", "GET", "/models"),
    Endpoint("POST /records", "POST", "/records"),
)
"""Endpoints of the sharing service that the explorer offers, in menu order."""

MAX_BODY_CHARS = 3000
"""Characters of a response body that :func:`describe_response` shows."""


@dataclass(frozen=True)
class ApiResult:
    """A request sent by the API explorer and the response to it.

    ``status`` is None when no response arrived (connection refused, timed
    out); ``reason`` then contains the transport error.
    """

    method: str
    url: str
    sent_token: bool
    status: int | None
    reason: str
    body: Any = None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return self.status is not None and 200 <= self.status < 300


def parse_parameters(text: str) -> list[tuple[str, str]]:
    """Read query parameters written as a query string, ``name=value&name=value``.

    Spaces around names and values are removed and empty pairs are skipped, so
    ``" page=2 & page_size=5 "`` works.

    Raises
    ------
    ValueError
        If a pair has no ``=`` or an empty name.
    """
    pairs = []
    for part in text.split("&"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(
                f"Parameter {part!r} has no '='; write it as name=value, for "
                "example page=2."
            )
        [(name, value)] = parse_qsl(part, keep_blank_values=True)
        if not name.strip():
            raise ValueError(f"Parameter {part!r} has no name before '='.")
        pairs.append((name.strip(), value.strip()))
    return pairs


def send_request(
    url: str,
    endpoint: Endpoint | str,
    *,
    parameters: str | Sequence[tuple[str, str]] = "",
    token: str | None = None,
    body: str | None = None,
    timeout: float = 10.0,
) -> ApiResult:
    """Send one request to a sharing service and keep its status and body.

    Unlike :class:`medkit.network.SiteClient`, this never raises for an error
    status: a 401 or 422 is a result to look at. Transport errors (connection
    refused, time-outs) are returned as a result without status and logged.

    Parameters
    ----------
    url : str
        The service's base URL, such as ``http://127.0.0.1:8731``.
    endpoint : Endpoint or str
        An endpoint, or its label from :data:`ENDPOINTS` (``"GET /records"``).
    parameters : str or sequence of (str, str), default=""
        Query parameters, as a query string or as pairs.
    token : str, optional
        Sent as ``Authorization: Bearer <token>`` when given.
    body : str, optional
        A JSON text sent as the request body, for POST endpoints.
    timeout : float, default=10.0
        Seconds to wait for the response.

    Returns
    -------
    ApiResult
        The body is the decoded JSON, or the text when it is not JSON.

    Raises
    ------
    ValueError
        If ``endpoint`` names no endpoint or ``parameters`` is not a valid
        query string.
    """
    import httpx

    endpoint = _endpoint(endpoint)
    pairs = parse_parameters(parameters) if isinstance(parameters, str) else parameters
    query = urlencode(list(pairs))
    target = url.rstrip("/") + endpoint.path + (f"?{query}" if query else "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = httpx.request(
            endpoint.method,
            target,
            headers=headers,
            content=body.encode("utf-8") if body is not None else None,
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        logger.warning("%s %s failed: %s", endpoint.method, target, error)
        return ApiResult(endpoint.method, target, bool(token), None, str(error))
    try:
        content: Any = response.json()
    except ValueError:
        content = response.text
    return ApiResult(
        endpoint.method,
        target,
        bool(token),
        response.status_code,
        response.reason_phrase,
        content,
    )


def _endpoint(endpoint: Endpoint | str) -> Endpoint:
    if isinstance(endpoint, Endpoint):
        return endpoint
    for known in ENDPOINTS:
        if known.label == endpoint:
            return known
    labels = ", ".join(repr(known.label) for known in ENDPOINTS)
    raise ValueError(f"Endpoint {endpoint!r} not found; expected one of {labels}.")


def describe_response(result: ApiResult, *, max_chars: int = MAX_BODY_CHARS) -> str:
    """Render a request and its response as HTML for the explorer.

    The token itself is never shown, only whether it was sent. A body longer
    than ``max_chars`` is cut, with the number of characters left out.
    """
    authorization = "Bearer ****" if result.sent_token else "(no token)"
    request = (
        f"<p><code>{html.escape(result.method)} {html.escape(result.url)}</code><br>"
        f"Authorization: {authorization}</p>"
    )
    if result.status is None:
        status = f"<p><b>No response</b>: {html.escape(result.reason)}</p>"
        return request + status
    colour = "green" if result.ok else "firebrick"
    status = (
        f'<p><b style="color:{colour}">{result.status} '
        f"{html.escape(result.reason)}</b></p>"
    )
    if isinstance(result.body, str):
        text = result.body
    else:
        text = json.dumps(result.body, indent=2, ensure_ascii=False)
    if len(text) > max_chars:
        text = f"{text[:max_chars]}\n... ({len(text) - max_chars} more characters)"
    return request + status + f"<pre>{html.escape(text)}</pre>"


class ApiExplorer:
    """A widget to send requests to a sharing service and read the responses.

    Choose an endpoint, edit its query parameters (and, for POST, its JSON
    body), switch the token on or off and press *Send*. The status code and
    body appear below. A request to ``/health`` is sent when the widget is
    built, so the service is shown to be up.

    Parameters
    ----------
    url : str
        The service's base URL.
    token : str, optional
        The service's token. Without it, the token box is off and disabled.
    records : DataFrame or list of dict, optional
        Records whose first one fills the body of ``POST /records``.
    timeout : float, default=10.0

    Attributes
    ----------
    results : list of ApiResult
        Every request sent so far, oldest first.
    widget : ipywidgets.VBox
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        records: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        import ipywidgets as widgets

        self.url, self.timeout = url, timeout
        self._token = token
        self.results: list[ApiResult] = []
        self._example = _example_body(records)
        self.endpoint = widgets.Dropdown(
            options=[known.label for known in ENDPOINTS], description="Endpoint:"
        )
        self.parameters = widgets.Text(
            description="Parameters:", placeholder="name=value&name=value"
        )
        self.use_token = widgets.Checkbox(
            value=token is not None,
            description="Send token",
            disabled=token is None,
            indent=False,
        )
        self.body = widgets.Textarea(
            description="Body:", layout=widgets.Layout(width="95%", height="8em")
        )
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.response = widgets.HTML()
        self.endpoint.observe(self.on_endpoint_change, names="value")
        self.send_button.on_click(self.send)
        self.on_endpoint_change()
        self.send()
        controls = widgets.HBox([self.endpoint, self.use_token, self.send_button])
        self.widget = widgets.VBox(
            [controls, self.parameters, self.body, self.response]
        )

    def on_endpoint_change(self, _change: object = None) -> None:
        """Fill in the chosen endpoint's default parameters and body."""
        endpoint = _endpoint(self.endpoint.value)
        self.parameters.value = endpoint.parameters
        is_post = endpoint.method == "POST"
        self.body.value = self._example if is_post else ""
        self.body.disabled = not is_post

    def send(self, _button: object = None) -> ApiResult | None:
        """Send the request set by the controls and show the response.

        Returns None, and shows why, when the parameters are not a valid query
        string; nothing is sent then.
        """
        endpoint = _endpoint(self.endpoint.value)
        try:
            parameters = parse_parameters(self.parameters.value)
        except ValueError as error:
            message = html.escape(str(error))
            self.response.value = f"<p><b>Invalid parameters</b>: {message}</p>"
            return None
        result = send_request(
            self.url,
            endpoint,
            parameters=parameters,
            token=self._token if self.use_token.value else None,
            body=self.body.value if endpoint.method == "POST" else None,
            timeout=self.timeout,
        )
        self.results.append(result)
        self.response.value = describe_response(result)
        return result

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)


def _example_body(records: pd.DataFrame | Sequence[Mapping[str, Any]] | None) -> str:
    """Return a ``{"records": [...]}`` JSON text with the first record, or ``""``."""
    if records is None or len(records) == 0:
        return ""
    if isinstance(records, pd.DataFrame):
        # to_json writes NaN as null and timestamps as ISO text, as JSON needs.
        first = json.loads(records.head(1).to_json(orient="records", date_format="iso"))
    else:
        first = [dict(records[0])]
    return json.dumps({"records": first}, indent=2, ensure_ascii=False)


def api_explorer(
    url: str,
    token: str | None = None,
    *,
    records: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    timeout: float = 10.0,
) -> ApiExplorer:
    """Build the API explorer for a running sharing service; see :class:`ApiExplorer`.

    Returns
    -------
    ApiExplorer
        Displays as its widget in a notebook.
    """
    return ApiExplorer(url, token, records=records, timeout=timeout)


def class_sizes(
    frame: pd.DataFrame,
    quasi_identifiers: Iterable[str],
    *,
    subject: str | None = None,
) -> pd.Series:
    """Return, for each record, the size of its equivalence class.

    An equivalence class is the set of records that share every value of the
    quasi-identifiers, and a missing value counts as a value of its own, as in
    :func:`medkit.privacy.k_anonymity`.

    Parameters
    ----------
    frame : DataFrame
    quasi_identifiers : iterable of str
        At least one column.
    subject : str, optional
        Column that identifies the person; with it, a class's size counts
        different people rather than records.

    Returns
    -------
    pandas.Series of int
        Indexed like ``frame``.
    """
    from medkit._privacy_kanon import class_sizes as sizes_of

    sizes = sizes_of(frame, list(quasi_identifiers), subject)
    return pd.Series(sizes, index=frame.index, dtype="int64", name="class_size")


def _check_columns(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        noun = "Column" if len(absent) == 1 else "Columns"
        raise MissingColumnError(
            f"{noun} {', '.join(map(repr, absent))} not found; choose from "
            f"{', '.join(map(repr, map(str, frame.columns)))}.",
            column=absent[0],
        )
    return columns


def rarest_classes(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    n: int = 5,
    *,
    subject: str | None = None,
) -> pd.DataFrame:
    """List the ``n`` smallest equivalence classes with their sizes.

    Returns
    -------
    DataFrame
        One row per class: the quasi-identifier values (missing shown as
        ``<missing>``), ``records`` and, with ``subject``, ``people``. The
        smallest classes come first, by people when counted, then records,
        ties in the order of the values.
    """
    columns = _check_columns(frame, quasi_identifiers)
    keys = frame[columns].astype("string").fillna("<missing>")
    grouped = keys.assign(_subject=frame[subject] if subject else 0).groupby(
        columns, sort=False
    )["_subject"]
    table = grouped.size().rename("records").to_frame()
    order = ["records"]
    if subject:
        table["people"] = grouped.nunique(dropna=False)
        order = ["people", "records"]
    table = table.reset_index().sort_values([*order, *columns], kind="stable")
    return table.head(n).reset_index(drop=True)


def describe_k_anonymity(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    k: int = 5,
    *,
    subject: str | None = None,
) -> str:
    """Render the k-anonymity and re-identification risk of a table as HTML.

    Uses :func:`medkit.privacy.reidentification_risk`, and lists the rarest
    combinations of quasi-identifier values. With ``subject``, class sizes
    count different people, so that several stays of one patient hide nobody.
    """
    from medkit import privacy

    if not quasi_identifiers:
        return (
            "<p>Choose at least one quasi-identifier: a column that an attacker "
            "could know from elsewhere, such as sex or age.</p>"
        )
    quasi_identifiers = list(quasi_identifiers)
    report = privacy.reidentification_risk(
        frame, quasi_identifiers, k=k, subject=subject
    )
    unit = "people" if subject else "records"
    share = report.records_below_k / report.records if report.records else 0.0
    names = ", ".join(html.escape(str(name)) for name in quasi_identifiers)
    remaining = report.records - report.records_below_k
    lines = [
        f"<p>Quasi-identifiers <b>{names}</b>: {report.records:,} records in "
        f"{report.classes:,} equivalence classes, sizes counted in {unit}.</p>",
        "<ul>",
        f"<li>smallest class size ({unit}): <b>{report.k_min}</b>, so the table "
        f"is {report.k_min}-anonymous</li>",
        f"<li>highest re-identification risk: <b>{report.max_risk:.0%}</b> "
        f"(1 / smallest class); mean risk {report.mean_risk:.1%}</li>",
        f"<li>records in classes smaller than k = {k}: "
        f"<b>{report.records_below_k:,}</b> ({share:.1%}); suppressing them "
        f"would leave {remaining:,}</li>",
        "</ul>",
        "<p>The rarest combinations:</p>",
        rarest_classes(frame, quasi_identifiers, subject=subject).to_html(index=False),
    ]
    return "\n".join(lines)


def plot_class_sizes(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    k: int = 5,
    *,
    subject: str | None = None,
    cap: int = 20,
) -> Figure:
    """Draw how many records sit in classes of each size, red below ``k``.

    Classes of ``cap`` or more share the last bar, labelled ``cap+``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    sizes = class_sizes(frame, quasi_identifiers, subject=subject).clip(upper=cap)
    counts = sizes.value_counts().reindex(range(1, cap + 1), fill_value=0)
    labels = [str(size) for size in counts.index[:-1]] + [f"{cap}+"]
    colours = ["firebrick" if size < k else "grey" for size in counts.index]
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.bar(labels, counts.to_numpy(), color=colours)
    unit = "people" if subject else "records"
    axis.set_xlabel(f"size of the record's equivalence class ({unit})")
    axis.set_ylabel("records")
    axis.set_title(f"Records in classes smaller than k = {k} in red")
    figure.tight_layout()
    return figure


class KAnonymityExplorer:
    """A widget to choose quasi-identifiers and k, and see the risk they give.

    Parameters
    ----------
    frame : DataFrame
        The table to check, one row per record.
    columns : sequence of str, optional
        The columns offered as quasi-identifiers; all columns but ``subject``
        by default.
    selected : sequence of str, optional
        The quasi-identifiers chosen at first; the first two offered by default.
    k : int, default=5
    subject : str, optional
        Column that identifies the person, such as ``patient_pseudonym``. With
        it, a checkbox switches between counting records and people.

    Attributes
    ----------
    widget : ipywidgets.VBox
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        columns: Sequence[str] | None = None,
        *,
        selected: Sequence[str] | None = None,
        k: int = 5,
        subject: str | None = None,
    ) -> None:
        import ipywidgets as widgets

        if columns is None:
            columns = [column for column in frame.columns if column != subject]
        offered = _check_columns(frame, columns)
        chosen = _check_columns(
            frame, selected if selected is not None else offered[:2]
        )
        if subject is not None:
            _check_columns(frame, [subject])
        self.frame, self.subject = frame, subject
        self.quasi_identifiers = widgets.SelectMultiple(
            options=offered,
            value=tuple(chosen),
            rows=min(len(offered), 8),
            description="Quasi-identifiers:",
            style={"description_width": "initial"},
        )
        self.k = widgets.IntSlider(
            value=k, min=2, max=20, description="k:", continuous_update=False
        )
        self.count_people = widgets.Checkbox(
            value=False,
            description=f"count people ({subject})" if subject else "count people",
            disabled=subject is None,
            indent=False,
        )
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        for control in (self.quasi_identifiers, self.k, self.count_people):
            control.observe(self.on_change, names="value")
        self.on_change()
        settings = widgets.VBox([self.k, self.count_people])
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.quasi_identifiers, settings]),
                self.summary,
                self.output,
            ]
        )

    @property
    def chosen_subject(self) -> str | None:
        """The subject column when people are counted, else None."""
        return self.subject if self.count_people.value else None

    def on_change(self, _change: object = None) -> None:
        """Recompute the summary and redraw the class sizes."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        chosen = list(self.quasi_identifiers.value)
        self.summary.value = describe_k_anonymity(
            self.frame, chosen, self.k.value, subject=self.chosen_subject
        )
        self.output.clear_output(wait=True)
        if not chosen:
            return
        with self.output:
            figure = plot_class_sizes(
                self.frame, chosen, self.k.value, subject=self.chosen_subject
            )
            display(figure)
            plt.close(figure)

    def report(self):
        """Return the :class:`medkit.privacy.RiskReport` of the chosen settings."""
        from medkit import privacy

        return privacy.reidentification_risk(
            self.frame,
            list(self.quasi_identifiers.value),
            k=self.k.value,
            subject=self.chosen_subject,
        )

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)


def k_anonymity_explorer(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    selected: Sequence[str] | None = None,
    k: int = 5,
    subject: str | None = None,
) -> KAnonymityExplorer:
    """Build the k-anonymity explorer for a table; see :class:`KAnonymityExplorer`.

    Returns
    -------
    KAnonymityExplorer
        Displays as its widget in a notebook.
    """
    return KAnonymityExplorer(frame, columns, selected=selected, k=k, subject=subject)
