"""The model lab of the intelligence lesson, driven without a browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from medkit import intelligence, widgets


@pytest.fixture(scope="module")
def split():
    data = intelligence.answer_key_readmission()
    return intelligence.split_by_patient(data)


@pytest.fixture
def lab(split):
    train, test = split
    return widgets.model_lab(train, test, trees=20)


def test_fit_lab_model_matches_fit_model(split) -> None:
    train, test = split

    proba = widgets.fit_lab_model(train, test, "logistic")

    expected = intelligence.fit_model(train, "logistic").predict_proba(test)
    np.testing.assert_array_equal(proba, expected)


def test_describe_threshold_rates() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    proba = np.array([0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.1, 0.1, 0.05, 0.6])

    text = widgets.describe_threshold(y, proba, 0.5)

    assert "threshold 0.50" in text
    assert "<b>sensitivity</b> 0.50" in text
    assert "<b>specificity</b> 0.67" in text
    assert "flagged 4 of 10" in text


def test_describe_threshold_nobody_flagged() -> None:
    text = widgets.describe_threshold(np.array([1, 0]), np.array([0.2, 0.1]), 0.9)

    assert "<b>PPV</b> n/a" in text
    assert "<b>sensitivity</b> 0.00" in text


def test_plot_lab_two_panels(split) -> None:
    _, test = split
    proba = np.linspace(0, 1, len(test))

    figure = widgets.plot_lab(test.y, proba, 0.3)

    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0] == "ROC curve"
    assert titles[1].startswith("sensitivity")


def test_model_lab_threshold_does_not_refit(lab) -> None:
    before = lab.summary.value
    sensitivity = lab.metrics()["sensitivity"]

    lab.threshold.value = 0.15

    assert lab.fits == 1
    assert lab.summary.value != before
    assert "threshold 0.15" in lab.summary.value
    assert lab.metrics()["sensitivity"] > sensitivity


def test_model_lab_model_change_fits_once(lab) -> None:
    lab.model.value = "forest"
    lab.threshold.value = 0.3
    lab.model.value = "logistic"
    lab.model.value = "forest"

    assert lab.fits == 2
    assert not lab.depth.disabled


def test_model_lab_depth_only_for_trees(lab) -> None:
    assert lab.depth.disabled
    assert lab.trees.disabled

    lab.depth.value = 3

    assert lab.fits == 1


def test_model_lab_majority_auroc_half(lab) -> None:
    lab.model.value = "majority"

    assert lab.metrics()["auroc"] == 0.5
    assert "AUROC 0.500" in lab.summary.value


def test_model_lab_displays_as_widget(lab) -> None:
    bundle = lab._repr_mimebundle_()

    assert "application/vnd.jupyter.widget-view+json" in bundle
