"""The API explorer and k-anonymity explorer of the networking lesson."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json
import socket

import pandas as pd
import pytest

from medkit import datasets, network, privacy, widgets
from medkit.exceptions import MedkitError, MissingColumnError

TOKEN = "test-token-of-the-explorer-0123456789"
KEY = b"widget tests key, never a real one"

# Eight records in four classes of (sex, age_band): (M, 60-69) has 3 records of 2
# people, (F, 70-79) 2 records of 2 people, (F, 60-69) 2 records of 1 person, and
# (missing, 80-89) 1 record.
TABLE = pd.DataFrame(
    {
        "sex": ["M", "M", "M", "F", "F", "F", "F", None],
        "age_band": ["60-69"] * 3 + ["70-79"] * 2 + ["60-69"] * 2 + ["80-89"],
        "person": ["a", "a", "b", "c", "d", "e", "e", "f"],
    },
    index=[10, 11, 12, 13, 14, 15, 16, 17],
)


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    patients = datasets.load_answer_key("patients")
    visits = datasets.load_answer_key("visits").head(12)
    return privacy.shared_records(patients, visits, KEY, site="A")


@pytest.fixture(scope="module")
def site(records):
    with network.start_site("A", token=TOKEN) as running:
        running.client().upload(records)
        yield running


@pytest.fixture
def explorer(site, records):
    return widgets.api_explorer(site.url, site.token, records=records)


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_parse_parameters_query_string() -> None:
    assert widgets.parse_parameters(" page=2 & page_size=5 ") == [
        ("page", "2"),
        ("page_size", "5"),
    ]
    assert widgets.parse_parameters("department=%E5%BF%83%E5%86%85%E7%A7%91") == [
        ("department", "心内科")
    ]
    assert widgets.parse_parameters("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("page", r"Parameter 'page' has no '='"),
        ("=2", r"Parameter '=2' has no name"),
    ],
    ids=["no_equals", "no_name"],
)
def test_parse_parameters_invalid_raises(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        widgets.parse_parameters(text)


def test_send_request_health_without_token(site) -> None:
    result = widgets.send_request(site.url, "GET /health")

    assert result.status == 200
    assert result.ok
    assert not result.sent_token
    assert result.body == {"status": "ok", "site": "A", "records": 12}


def test_send_request_records_without_token_401(site) -> None:
    result = widgets.send_request(site.url, "GET /records")

    assert result.status == 401
    assert not result.ok
    assert "Missing bearer token" in result.body["detail"]


def test_send_request_wrong_token_403(site) -> None:
    result = widgets.send_request(site.url, "GET /records", token="x" * 20)

    assert result.status == 403


def test_send_request_last_page(site, records) -> None:
    result = widgets.send_request(
        site.url, "GET /records", parameters="page=3&page_size=5", token=TOKEN
    )

    assert result.status == 200
    assert result.url == f"{site.url}/records?page=3&page_size=5"
    assert result.body["total"] == 12
    # The service orders records by record_id.
    assert [record["record_id"] for record in result.body["records"]] == sorted(
        records["record_id"]
    )[10:]


def test_send_request_stats_pairs(site, records) -> None:
    result = widgets.send_request(
        site.url, "GET /stats", parameters=[("group_by", "sex")], token=TOKEN
    )

    counts = records["sex"].value_counts()
    rows_by_sex = {row["sex"]: row["n"] for row in result.body["rows"]}
    assert rows_by_sex == {sex: n for sex, n in counts.items() if n >= 5}


def test_send_request_post_with_name_422(site, records) -> None:
    record = json.loads(records.head(1).to_json(orient="records"))[0]
    body = json.dumps({"records": [{**record, "name": "张伟"}]}, ensure_ascii=False)

    result = widgets.send_request(site.url, "POST /records", token=TOKEN, body=body)

    assert result.status == 422
    assert [finding["kind"] for finding in result.body["findings"]] == ["name"]
    assert widgets.send_request(site.url, "GET /health").body["records"] == 12


def test_send_request_unknown_endpoint_raises(site) -> None:
    with pytest.raises(ValueError, match=r"Endpoint 'GET /patients' not found"):
        widgets.send_request(site.url, "GET /patients")


def test_send_request_connection_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    result = widgets.send_request(url, "GET /health", timeout=2.0)

    assert result.status is None
    assert not result.ok
    assert "No response" in widgets.describe_response(result)


def test_describe_response_hides_token(site) -> None:
    result = widgets.send_request(site.url, "GET /records", token=TOKEN)

    text = widgets.describe_response(result)

    assert TOKEN not in text
    assert "Authorization: Bearer ****" in text
    assert '<b style="color:green">200 OK</b>' in text


def test_describe_response_cuts_long_body() -> None:
    result = widgets.ApiResult(
        "GET", "http://127.0.0.1:1/x", False, 200, "OK", "a" * 50
    )

    text = widgets.describe_response(result, max_chars=20)

    assert "a" * 20 + "\n... (30 more characters)" in text
    assert "Authorization: (no token)" in text


def test_api_explorer_sends_health_first(explorer) -> None:
    [result] = explorer.results

    assert result.status == 200
    assert result.url.endswith("/health")
    assert "200 OK" in explorer.response.value


def test_api_explorer_endpoint_fills_parameters(explorer) -> None:
    explorer.endpoint.value = "GET /stats"

    assert explorer.parameters.value == "group_by=department"
    assert explorer.body.disabled

    explorer.endpoint.value = "POST /records"

    assert explorer.parameters.value == ""
    assert not explorer.body.disabled
    assert json.loads(explorer.body.value)["records"][0]["site"] == "A"


def test_api_explorer_token_off_401(explorer) -> None:
    explorer.endpoint.value = "GET /records"
    explorer.use_token.value = False

    explorer.send_button.click()

    assert explorer.results[-1].status == 401
    assert "401 Unauthorized" in explorer.response.value


def test_api_explorer_token_on_pages(explorer) -> None:
    explorer.endpoint.value = "GET /records"
    explorer.parameters.value = "page=2&page_size=4"

    result = explorer.send()

    assert result.status == 200
    assert result.body["page"] == 2
    assert len(result.body["records"]) == 4


def test_api_explorer_invalid_parameters_not_sent(explorer) -> None:
    explorer.endpoint.value = "GET /records"
    explorer.parameters.value = "page"

    assert explorer.send() is None
    assert len(explorer.results) == 1
    assert "Invalid parameters" in explorer.response.value


def test_api_explorer_without_token_disabled(site) -> None:
    explorer = widgets.api_explorer(site.url)

    assert explorer.use_token.disabled
    assert not explorer.use_token.value
    assert explorer.body.value == ""


def test_api_explorer_displays_as_widget(explorer) -> None:
    bundle = explorer._repr_mimebundle_()

    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_class_sizes_records_and_people() -> None:
    by_records = widgets.class_sizes(TABLE, ["sex", "age_band"])
    by_people = widgets.class_sizes(TABLE, ["sex", "age_band"], subject="person")

    assert list(by_records.index) == list(TABLE.index)
    assert by_records.tolist() == [3, 3, 3, 2, 2, 2, 2, 1]
    assert by_people.tolist() == [2, 2, 2, 2, 2, 1, 1, 1]


def test_rarest_classes_order() -> None:
    table = widgets.rarest_classes(TABLE, ["sex", "age_band"], n=3)

    assert table.to_dict("list") == {
        "sex": ["<missing>", "F", "F"],
        "age_band": ["80-89", "60-69", "70-79"],
        "records": [1, 2, 2],
    }


def test_rarest_classes_people_first() -> None:
    table = widgets.rarest_classes(TABLE, ["sex", "age_band"], subject="person")

    assert table["people"].tolist() == [1, 1, 2, 2]
    assert table["records"].tolist() == [1, 2, 2, 3]


def test_rarest_classes_missing_column_raises() -> None:
    with pytest.raises(MissingColumnError) as raised:
        widgets.rarest_classes(TABLE, ["sex", "age"])

    assert str(raised.value) == (
        "Column 'age' not found; choose from 'sex', 'age_band', 'person'."
    )
    assert raised.value.column == "age"
    assert isinstance(raised.value, MedkitError)


def test_describe_k_anonymity_counts() -> None:
    text = widgets.describe_k_anonymity(TABLE, ["sex", "age_band"], k=3)

    assert "8 records in 4 equivalence classes, sizes counted in records" in text
    assert (
        "smallest class size (records): <b>1</b>, so the table is 1-anonymous" in text
    )
    assert "highest re-identification risk: <b>100%</b>" in text
    # Mean of 1 / class size: (3 * 1/3 + 4 * 1/2 + 1) / 8 = 0.5.
    assert "mean risk 50.0%" in text
    assert (
        "smaller than k = 3: <b>5</b> (62.5%); suppressing them would leave 3" in text
    )


def test_describe_k_anonymity_people() -> None:
    text = widgets.describe_k_anonymity(TABLE, ["sex"], k=3, subject="person")

    # F has 4 records of 3 people, M 3 records of 2 people.
    assert "smallest class size (people): <b>1</b>" in text
    assert "smaller than k = 3: <b>4</b> (50.0%)" in text


def test_describe_k_anonymity_no_quasi_identifier() -> None:
    assert "Choose at least one quasi-identifier" in widgets.describe_k_anonymity(
        TABLE, []
    )


def test_plot_class_sizes_bars() -> None:
    figure = widgets.plot_class_sizes(TABLE, ["sex", "age_band"], k=3, cap=4)

    bars = figure.axes[0].patches
    assert [bar.get_height() for bar in bars] == [1, 4, 3, 0]
    red = matplotlib.colors.to_rgba("firebrick")
    assert [bar.get_facecolor() == red for bar in bars] == [True, True, False, False]
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == ["1", "2", "3", "4+"]


@pytest.fixture
def k_explorer():
    return widgets.k_anonymity_explorer(
        TABLE, selected=["sex", "age_band"], k=3, subject="person"
    )


def test_k_anonymity_explorer_offers_columns(k_explorer) -> None:
    assert k_explorer.quasi_identifiers.options == ("sex", "age_band")
    assert k_explorer.report().records_below_k == 5


def test_k_anonymity_explorer_k_change(k_explorer) -> None:
    k_explorer.k.value = 2

    assert k_explorer.report().records_below_k == 1
    assert "smaller than k = 2: <b>1</b>" in k_explorer.summary.value


def test_k_anonymity_explorer_count_people(k_explorer) -> None:
    k_explorer.count_people.value = True

    assert k_explorer.report().records_below_k == 8
    assert "sizes counted in people" in k_explorer.summary.value


def test_k_anonymity_explorer_fewer_quasi_identifiers(k_explorer) -> None:
    k_explorer.quasi_identifiers.value = ("sex",)

    assert k_explorer.report().k_min == 1
    assert k_explorer.report().classes == 3

    k_explorer.quasi_identifiers.value = ()

    assert "Choose at least one" in k_explorer.summary.value


def test_k_anonymity_explorer_unknown_column_raises() -> None:
    with pytest.raises(MissingColumnError, match=r"^Column 'postcode' not found"):
        widgets.k_anonymity_explorer(TABLE, selected=["postcode"])
    with pytest.raises(MissingColumnError, match=r"^Columns 'a', 'b' not found"):
        widgets.k_anonymity_explorer(TABLE, ["sex", "a", "b"])
