"""What the operator tells each run about Secrets and the http deny-list, and params
passed so that the kubelet's ``$(VAR)`` expansion leaves them as written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfleet.config import OperatorConfig
from cronfleet.manifests import (
    UpstreamFacts,
    desired_cronjob,
    literal_env_value,
    plain_env_names,
    run_job,
    runner_env,
    secret_env_from_patterns,
    secret_env_names,
)
from cronfleet.models import RunTrigger, ScheduleSpec
from cronfleet_runner.egress import DenyListError, parse_deny_cidrs


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion of env values (Kubernetes third_party/forked/golang/expansion),
    transcribed: ``$$`` is one ``$``, ``$(NAME)`` a defined variable's value (an undefined
    one stays as written), an unclosed ``$(`` and any other ``$x`` stay."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                read, advance = "$", 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    read, advance = "$(", 1
                else:
                    name = rest[1:close]
                    read, advance = env.get(name, f"$({name})"), close + 1
            else:
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


SECRET_ENV = {"TOKEN": "s3cr3t-t0ken-4711", "DB_PASSWORD": "hunter22"}


def test_the_transcription_expands_as_the_kubelet_does() -> None:
    assert kubelet_expand("Bearer $(TOKEN)", SECRET_ENV) == "Bearer s3cr3t-t0ken-4711"
    assert (
        kubelet_expand("$$(TOKEN) $(NOPE) $$ $5 $( $", SECRET_ENV) == "$(TOKEN) $(NOPE) $ $5 $( $"
    )


@pytest.mark.parametrize(
    "params",
    [
        {"argv": ["echo", "$(TOKEN)"]},
        {"body": "$$(TOKEN) costs $$5 or $5, $(", "url": "http://x/$(DB_PASSWORD)"},
        {"json": {"$(TOKEN)": "$$$(TOKEN)$"}},
    ],
)
def test_params_reach_the_runner_as_written(params: dict[str, Any]) -> None:
    spec = ScheduleSpec.model_validate({"cron": "0 2 * * *", "task": "http", "params": params})
    env = runner_env("tenant-acme", "sync", spec, RunTrigger.SCHEDULED, 0)
    [value] = [entry["value"] for entry in env if entry["name"] == "CRONFLEET_PARAMS"]
    assert json.loads(kubelet_expand(value, SECRET_ENV)) == params


@given(st.text(alphabet=st.sampled_from("$()TOKEN_ab "), max_size=40))
def test_any_text_survives_the_kubelet_once_escaped(text: str) -> None:
    assert kubelet_expand(literal_env_value(text), SECRET_ENV) == text


def test_upstream_data_is_escaped_too() -> None:
    spec = ScheduleSpec.model_validate({"task": "sleep"})
    upstream = UpstreamFacts("ns/up", "up-1", "Succeeded", '{"return":"$(TOKEN)"}')
    env = runner_env("ns", "down", spec, RunTrigger.AFTER, 0, None, upstream)
    [value] = [entry["value"] for entry in env if entry["name"] == "CRONFLEET_UPSTREAM_DATA"]
    assert kubelet_expand(value, SECRET_ENV) == '{"return":"$(TOKEN)"}'


ENV: list[dict[str, Any]] = [
    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}},
    {"name": "REGION", "value": "eu-west-1"},
    {"name": "AUTHORIZATION", "value": "Bearer $(TOKEN)"},
    {"name": "EMPTY"},
    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
]
ENV_FROM: list[dict[str, Any]] = [
    {"secretRef": {"name": "db"}},
    {"configMapRef": {"name": "settings"}},
    {"secretRef": {"name": "api"}, "prefix": "API_"},
    {"secretRef": {"name": "other"}},
]


def test_secret_env_names_are_the_secret_key_refs() -> None:
    assert secret_env_names(ENV) == ["TOKEN"]
    assert secret_env_names(None) == []


def test_plain_names_exclude_secrets_and_literals_that_refer_to_variables() -> None:
    assert plain_env_names(ENV) == ["REGION", "EMPTY", "LEVEL", "POD_IP", "CPU"]


def test_a_name_with_a_comma_is_never_listed_as_plain() -> None:
    # Relaxed env names may hold commas; split, "TOKEN" would be exempted.
    env = [{"name": "TOKEN,X", "value": "literal"}, {"name": "A", "value": "1"}]
    assert plain_env_names(env) == ["A"]


def test_env_from_secrets_become_name_patterns_config_maps_do_not() -> None:
    assert secret_env_from_patterns(ENV_FROM) == ["*", "API_*"]
    assert secret_env_from_patterns([{"configMapRef": {"name": "settings"}}]) == []


def contract(env: list[dict[str, Any]]) -> dict[str, str]:
    # A variable with neither value nor valueFrom is set, to "" (as the kubelet does).
    return {entry["name"]: entry.get("value", "") for entry in env if "valueFrom" not in entry}


def test_the_runner_is_told_which_variables_hold_secrets() -> None:
    spec = ScheduleSpec.model_validate(
        {"task": "command", "params": {"argv": ["true"]}, "env": ENV, "envFrom": ENV_FROM}
    )
    env = contract(runner_env("tenant-acme", "leaky", spec, RunTrigger.MANUAL, 0))
    assert env["CRONFLEET_SECRET_ENV"] == "TOKEN"
    assert env["CRONFLEET_SECRET_ENV_FROM"] == "*,API_*"
    assert env["CRONFLEET_PLAIN_ENV"] == "REGION,EMPTY,LEVEL,POD_IP,CPU"
    assert env["CRONFLEET_HTTP_DENY_CIDRS"] == "default"


def test_the_contract_variables_are_set_even_when_empty_and_before_the_users_own() -> None:
    # In env they win over anything an envFrom source of the Schedule holds.
    spec = ScheduleSpec.model_validate({"task": "sleep", "env": [{"name": "A", "value": "1"}]})
    env = runner_env("ns", "quiet", spec, RunTrigger.SCHEDULED, 0)
    names = [entry["name"] for entry in env]
    for name in (
        "CRONFLEET_SECRET_ENV",
        "CRONFLEET_SECRET_ENV_FROM",
        "CRONFLEET_PLAIN_ENV",
        "CRONFLEET_HTTP_DENY_CIDRS",
    ):
        assert name in names and names.index(name) < names.index("A")
    assert contract(env)["CRONFLEET_SECRET_ENV"] == ""
    assert contract(env)["CRONFLEET_SECRET_ENV_FROM"] == ""


def test_the_operators_deny_list_reaches_cronjobs_and_its_own_jobs() -> None:
    config = OperatorConfig.from_env({"CRONFLEET_HTTP_DENY_CIDRS": " 10.96.0.0/12 ,10.244.0.0/16"})
    assert config.http_deny_cidrs == "10.96.0.0/12,10.244.0.0/16"
    spec = ScheduleSpec.model_validate({"cron": "0 2 * * *", "task": "http", "params": {}})
    cronjob = desired_cronjob("ns", "sync", "uid-1", spec, config, suspend=False)
    job = run_job(
        "ns",
        "sync",
        "uid-1",
        spec,
        config,
        job_name="sync-manual-1",
        trigger=RunTrigger.MANUAL,
        attempt=0,
        scheduled_time=None,
        origin=None,
    )
    for pod in (cronjob["spec"]["jobTemplate"]["spec"]["template"], job["spec"]["template"]):
        env = contract(pod["spec"]["containers"][0]["env"])
        assert env["CRONFLEET_HTTP_DENY_CIDRS"] == "10.96.0.0/12,10.244.0.0/16"


@pytest.mark.parametrize(
    ("given", "passed"), [("", "default"), ("none", "none"), (" ,", "default")]
)
def test_the_deny_list_setting_defaults_and_can_be_turned_off(given: str, passed: str) -> None:
    assert OperatorConfig.from_env({"CRONFLEET_HTTP_DENY_CIDRS": given}).http_deny_cidrs == passed
    assert OperatorConfig.from_env({}).http_deny_cidrs == "default"


def test_a_bad_deny_list_stops_the_operator_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/40' is none of these"):
        OperatorConfig.from_env({"CRONFLEET_HTTP_DENY_CIDRS": "10.0.0.0/40"})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "none",
        "default",
        "NONE, 10.0.0.0/8",
        "10.1.2.3/8,fd00::/8",
        "127.0.0.1",
        "none,default",
        "10.0.0.0/33",
        "cluster",
        "10.0.0.0/8;x",
        "::1/129",
    ],
)
def test_the_operator_accepts_exactly_what_the_runner_can_read(text: str) -> None:
    # The operator checks the setting without the runner package: the two must agree.
    try:
        parse_deny_cidrs(text)
        runner_reads = True
    except DenyListError:
        runner_reads = False
    try:
        OperatorConfig.from_env({"CRONFLEET_HTTP_DENY_CIDRS": text})
        operator_accepts = True
    except ValueError:
        operator_accepts = False
    assert operator_accepts == runner_reads


def test_empty_contract_variables_are_written_as_the_api_server_stores_them() -> None:
    # The API server omits an empty `value`; a desired `value: ""` would be
    # drift at every reconcile, and the CronJob applied again each time.
    from cronfleet.config import OperatorConfig  # noqa: PLC0415
    from cronfleet.manifests import desired_cronjob  # noqa: PLC0415
    from cronfleet.models import ScheduleSpec  # noqa: PLC0415

    spec = ScheduleSpec.model_validate({"cron": "0 2 * * *", "task": "sleep"})
    cronjob = desired_cronjob("team-a", "nightly", "u-1", spec, OperatorConfig(), suspend=False)
    env = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(variable.get("value") != "" for variable in env)
    assert {"name": "CRONFLEET_SECRET_ENV"} in env
