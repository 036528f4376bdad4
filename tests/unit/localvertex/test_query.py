"""List filters and order_by as Vertex AI's list methods document them."""

import pytest

from localvertex.errors import VertexError
from localvertex.query import MODELS, PIPELINE_JOBS, SCHEDULES, compile_filter, order, page

DIGITS = {"model": "7", "display_name": "digits", "labels": {"team": "ml", "a key": "x"}, "create_time": ""}
OTHER = {"model": "8", "display_name": "other", "labels": {}, "create_time": ""}


def matching(text: str, schema=MODELS) -> list[str]:
    predicate = compile_filter(text, schema)
    return [v["display_name"] for v in (DIGITS, OTHER) if predicate(v)]


def test_snake_and_camel_case_names_and_label_keys():
    assert matching('display_name="digits"') == matching('displayName="digits"') == ["digits"]
    assert matching('labels.team="ml"') == ["digits"] and matching('labels."a key"="x"') == ["digits"]
    assert matching("labels:team") == ["digits"] and matching("labels.team:*") == ["digits"]
    assert matching("model=8") == ["other"] and matching("") == ["digits", "other"]


def test_not_equal_or_and_not():
    assert matching('display_name!="digits"') == ["other"]
    assert matching('display_name="digits" OR model=8') == ["digits", "other"]
    assert matching('NOT display_name="digits"') == ["other"] and matching('-display_name="digits"') == ["other"]
    # AIP-160: OR binds tighter than AND
    assert matching('model=7 AND display_name="x" OR display_name="digits"') == ["digits"]
    assert matching('(model=7 OR model=8) AND labels.team="ml"') == ["digits"]


def test_an_unsupported_filter_is_refused_before_anything_is_read():
    for text in ('state="ACTIVE"', 'display_name>"a"', 'display_name ~ "a"', 'display_name="a" AND', "(model=1"):
        with pytest.raises(VertexError) as e:
            compile_filter(text, MODELS)
        assert e.value.status == "INVALID_ARGUMENT"
    with pytest.raises(VertexError, match="filters on model, display_name"):
        compile_filter('state="ACTIVE"', MODELS)


def test_times_compare_as_times_and_wildcards_match():
    jobs = [
        {
            "display_name": "nightly-step",
            "create_time": "2026-01-02T00:00:00.5+00:00",
            "state": "PIPELINE_STATE_FAILED",
        },
        {"display_name": "hourly", "create_time": "2026-01-01T00:00:00+00:00", "state": "PIPELINE_STATE_SUCCEEDED"},
    ]
    newer = compile_filter('create_time>"2026-01-01T12:00:00Z"', PIPELINE_JOBS)
    assert [j["display_name"] for j in jobs if newer(j)] == ["nightly-step"]
    stepped = compile_filter('display_name:"*step*" OR state="PIPELINE_STATE_SUCCEEDED"', PIPELINE_JOBS)
    assert [j["display_name"] for j in jobs if stepped(j)] == ["nightly-step", "hourly"]
    with pytest.raises(VertexError, match="RFC 3339"):
        compile_filter('create_time>"yesterday"', PIPELINE_JOBS)
    assert compile_filter("NOT end_time:*", SCHEDULES)({"end_time": ""})


def test_order_by_takes_fields_directions_and_the_default():
    items = [
        {"display_name": "b", "create_time": "2026-01-01T00:00:02+00:00"},
        {"display_name": "a", "create_time": "2026-01-01T00:00:03+00:00"},
        {"display_name": "b", "create_time": "2026-01-01T00:00:01+00:00"},
    ]
    assert order(items, "display_name, create_time desc", MODELS, dict) == [items[1], items[0], items[2]]
    assert order(items, "createTime desc", MODELS, dict) == [items[1], items[0], items[2]]
    assert order(items, "", PIPELINE_JOBS, dict) == [items[1], items[0], items[2]]  # newest first by default
    for bad in ("create_time sideways", "state"):
        with pytest.raises(VertexError, match="Unsupported orderBy"):
            order(items, bad, MODELS, dict)


def test_pages_hand_out_tokens_until_the_last():
    assert page(list(range(5)), 2, "") == ([0, 1], "2")
    assert page(list(range(5)), 2, "4") == ([4], "")
    with pytest.raises(VertexError, match="pageToken"):
        page([], 2, "abc")
