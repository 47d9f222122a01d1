"""Secret values are masked in everything a run reports: its summary and its log lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cronfleet_runner.contract import RunMetadata
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.execution import execute, mask_summary
from cronfleet_runner.masking import (
    MASK,
    MIN_SECRET_CHARS,
    Masker,
    secret_variables,
    value_forms,
)
from cronfleet_runner.registry import default_registry
from cronfleet_runner.summary import MAX_MESSAGE_CHARS, MAX_SUMMARY_BYTES, clip, failed
from tests.unit.runner.loopback import LoopbackServer
from tests.unit.runner.test_entrypoint import run

TOKEN = "s3cr3t-t0ken-4711"


# -- which variables are secret ---------------------------------------------------


def test_named_secret_variables_are_secret() -> None:
    environ = {"TOKEN": TOKEN, "REGION": "eu-west-1", "CRONFLEET_SECRET_ENV": "TOKEN,MISSING"}
    assert secret_variables(environ) == {"TOKEN"}


def test_without_the_contract_variables_nothing_is_secret() -> None:
    assert secret_variables({"TOKEN": TOKEN, "PATH": "/usr/bin"}) == set()


def test_an_envfrom_secret_masks_all_but_plain_contract_and_image_variables() -> None:
    environ = {
        "token": TOKEN,
        "DB_PASSWORD": "hunter22",
        "REGION": "eu-west-1",
        "HOME": "/tmp",
        "PATH": "/usr/local/bin:/usr/bin",
        "HOSTNAME": "leaky-29123456-abcde",
        "CRONFLEET_TASK": "command",
        "CRONFLEET_SECRET_ENV": "",
        "CRONFLEET_SECRET_ENV_FROM": "*",
        "CRONFLEET_PLAIN_ENV": "REGION",
    }
    assert secret_variables(environ) == {"token", "DB_PASSWORD"}


def test_an_envfrom_prefix_limits_the_masked_names() -> None:
    environ = {
        "DB_PASSWORD": "hunter22",
        "DB_HOST": "db.tenant-acme.svc",
        "OTHER": "not-from-the-secret",
        "CRONFLEET_SECRET_ENV_FROM": "DB_*",
        "CRONFLEET_PLAIN_ENV": "DB_HOST",
    }
    assert secret_variables(environ) == {"DB_PASSWORD"}


def test_a_named_secret_is_masked_even_with_an_image_variable_name() -> None:
    environ = {"HOME": "/home/secret-dir", "CRONFLEET_SECRET_ENV": "HOME"}
    assert secret_variables(environ) == {"HOME"}


# -- what a value looks like -------------------------------------------------------


def test_value_forms_cover_trailing_newlines_lines_and_collapsed_whitespace() -> None:
    pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAK\n  second  line  \n-----END KEY-----\n"
    forms = value_forms(pem)
    assert pem in forms
    assert pem.strip() in forms
    assert "MIIBOgIBAAJBAK" in forms
    assert "second line" not in forms  # a line is stripped, not collapsed
    assert "second  line" in forms
    assert " ".join(pem.split()) in forms


def test_short_values_are_not_masked() -> None:
    masker = Masker.of_values(["eu", "abc", "1"])
    assert not masker
    assert masker.text("eu abc 1") == "eu abc 1"
    assert len("abcd") == MIN_SECRET_CHARS
    assert Masker.of_values(["abcd"]).text("xabcdx") == f"x{MASK}x"


# -- masking text and values ---------------------------------------------------------


def test_every_occurrence_is_masked_and_the_longest_secret_first() -> None:
    masker = Masker.of_values(["pass", "password-1234"])
    assert masker.text("password-1234 and pass and password-1234") == "*** and *** and ***"


def test_a_clip_through_a_secret_masks_what_is_left_of_it() -> None:
    masker = Masker.of_values([TOKEN])
    message = clip(f"the token is {TOKEN}", len("the token is ") + 8)
    assert message.endswith("…") and TOKEN[:6] in message
    masked = masker.text(message)
    assert TOKEN[:4] not in masked
    assert masked == f"the token is {MASK}…"


def test_a_tail_kept_from_the_end_masks_the_end_of_a_cut_secret() -> None:
    masker = Masker.of_values([TOKEN])
    tail = "…" + f"{TOKEN} was refused"[7:]
    assert masker.text(f"stderr ends with:\n{tail}") == f"stderr ends with:\n…{MASK} was refused"


def test_values_are_masked_inside_json_like_data_keys_included() -> None:
    masker = Masker.of_values([TOKEN])
    data = {"json": {"auth": f"Bearer {TOKEN}", TOKEN: [TOKEN, 3, True, None]}, "status": 200}
    assert masker.value(data) == {
        "json": {"auth": f"Bearer {MASK}", MASK: [MASK, 3, True, None]},
        "status": 200,
    }


@given(
    secret=st.text(min_size=MIN_SECRET_CHARS, max_size=40).filter(lambda s: s.strip()),
    before=st.text(max_size=60),
    after=st.text(max_size=60),
    limit=st.integers(min_value=1, max_value=200),
)
def test_no_secret_of_four_or_more_characters_survives_masking_and_clipping(
    secret: str, before: str, after: str, limit: int
) -> None:
    masker = Masker.of_values([secret])
    # Masked before clipping (as the runner does) and clipped text masked again
    # (as a task that clips its own message sees it): the secret never shows.
    text = before + secret + after
    masked = masker.text(text)
    assert len(masked) <= len(text)
    for form in value_forms(secret):
        assert form not in masked
    clipped = masker.text(clip(text, limit))
    for form in value_forms(secret):
        assert form not in clipped


def test_masking_keeps_the_summary_within_its_bounds() -> None:
    masker = Masker.of_values([TOKEN])
    summary = mask_summary(failed(f"{TOKEN} " * 500, {"echo": TOKEN * 100}), masker)
    line = summary.to_line()
    assert TOKEN not in line
    assert len(line.encode()) <= MAX_SUMMARY_BYTES
    assert len(json.loads(line)["message"]) <= MAX_MESSAGE_CHARS


# -- the log -------------------------------------------------------------------------


def test_every_log_field_is_masked_before_it_is_clipped() -> None:
    stream = io.StringIO()
    metadata = RunMetadata("command", "tenant-acme/leaky", None, "Manual", 0, None)
    log = EventLog(stream, metadata, masker=Masker.of_values([TOKEN]))
    log.info("command.output", line=f"token={TOKEN}", nested={"argv": ["curl", TOKEN]})
    log.info("command.output", line="x" * 8190 + TOKEN)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["line"] == f"token={MASK}"
    assert first["nested"] == {"argv": ["curl", MASK]}
    assert second["line"].endswith("*…")  # masked first, then clipped
    assert TOKEN[:4] not in stream.getvalue()


# -- whole runs, through the real program ----------------------------------------------


def test_a_command_printing_a_secret_reports_stars(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "command",
        {"argv": ["sh", "-c", 'echo "connecting with $TOKEN" >&2; exit 3']},
        TOKEN=TOKEN + "\n",  # as a Secret made from a file often is
        CRONFLEET_SECRET_ENV="TOKEN",
        CRONFLEET_SECRET_ENV_FROM="",
        CRONFLEET_PLAIN_ENV="",
    )
    assert result.exit_code == 1
    assert result.summary["message"].endswith(f"connecting with {MASK}")
    output = [event["line"] for event in result.events if event["event"] == "command.output"]
    assert output[0] == f"connecting with {MASK}"  # then the newline the token ended with
    everything = json.dumps(result.events) + json.dumps(result.summary)
    assert TOKEN not in everything


def test_an_envfrom_secret_is_masked_and_plain_variables_are_not(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "command",
        {"argv": ["sh", "-c", 'echo "$token in $REGION" >&2; exit 3']},
        token=TOKEN,
        REGION="eu-west-1",
        CRONFLEET_SECRET_ENV="",
        CRONFLEET_SECRET_ENV_FROM="*",
        CRONFLEET_PLAIN_ENV="REGION",
    )
    assert result.summary["message"].endswith(f"{MASK} in eu-west-1")
    assert TOKEN not in json.dumps(result.events)


def test_an_http_response_echoing_a_credential_is_masked_in_message_and_data(
    tmp_path: Path, server: LoopbackServer
) -> None:
    result = run(
        tmp_path,
        "http",
        {"url": server.url("/echo"), "headersFromEnv": {"Authorization": "API_AUTHORIZATION"}},
        API_TOKEN=TOKEN,
        API_AUTHORIZATION=f"Bearer {TOKEN}",
        CRONFLEET_SECRET_ENV="API_TOKEN",
        CRONFLEET_SECRET_ENV_FROM="",
        CRONFLEET_PLAIN_ENV="",  # API_AUTHORIZATION is "Bearer $(API_TOKEN)": not plain
    )
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert result.exit_code == 0
    assert f"Bearer {MASK}" in result.summary["message"]
    assert result.summary["data"]["json"]["headers"]["authorization"] == f"Bearer {MASK}"
    assert TOKEN not in json.dumps(result.summary) + json.dumps(result.events)


def test_a_python_exception_carrying_a_secret_is_masked(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "python",
        {"callable": "tests.unit.runner.callables:login", "kwargs": {"variable": "TOKEN"}},
        TOKEN=TOKEN,
        CRONFLEET_SECRET_ENV="TOKEN",
        PYTHONPATH=str(Path(__file__).parents[3]),
    )
    assert result.exit_code == 1
    assert f"login refused for key '{MASK}'" in result.summary["message"]
    raised = [event for event in result.events if event["event"] == "python.raised"]
    assert raised and MASK in json.dumps(raised)
    assert TOKEN not in json.dumps(result.summary) + json.dumps(result.events)


def test_execute_masks_in_process(tmp_path: Path) -> None:
    stdout = io.StringIO()
    environ = {
        "CRONFLEET_TASK": "sleep",
        "CRONFLEET_PARAMS": json.dumps({"message": f"the key is {TOKEN}"}),
        "CRONFLEET_TERMINATION_MESSAGE_PATH": str(tmp_path / "termination-log"),
        "CRONFLEET_SECRET_ENV": "KEY",
        "KEY": TOKEN,
    }
    result = execute(environ, default_registry(), stdout)
    assert result.summary.message == f"the key is {MASK}"
    written = (tmp_path / "termination-log").read_text()
    assert TOKEN not in written and TOKEN not in stdout.getvalue()
