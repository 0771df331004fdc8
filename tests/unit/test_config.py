"""Every configuration rule: one line naming key, value and rule; exit 2; no AWS call."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmgmt_deploy.errors import ConfigError
from taskmgmt_deploy.stack.config import DEFAULTS, load_settings


@pytest.fixture
def database_url() -> str:
    """These commands stop before any AWS or database call: no database is needed."""
    return "postgresql:///never-used"


BAD_FLAGS = [
    (["--env", "Dev"], "--env 'Dev' is invalid: must be 1-16 lowercase letters, digits or dashes"),
    (["--env", "a" * 17], "--env 'aaaaaaaaaaaaaaaaa' is invalid"),
    (["--env", "dev_1"], "--env 'dev_1' is invalid"),
    (
        ["--primary-region", "ap-southeast-2"],
        "--primary-region 'ap-southeast-2' is invalid: must be a region where Aurora DSQL supports multi-Region",
    ),
    (
        ["--secondary-region", "us-east-1"],
        "--secondary-region 'us-east-1' is invalid: must differ from PRIMARY_REGION (us-east-1)",
    ),
    (
        ["--secondary-region", "eu-west-1"],
        "--secondary-region 'eu-west-1' is invalid: must be in the DSQL region set of PRIMARY_REGION us-east-1: "
        "us-east-2, us-west-2",
    ),
    (
        ["--witness-region", "us-west-2"],
        "--witness-region 'us-west-2' is invalid: must differ from PRIMARY_REGION (us-east-1) and SECONDARY_REGION",
    ),
    (
        ["--witness-region", "eu-west-1"],
        "--witness-region 'eu-west-1' is invalid: must be in the DSQL region set of us-east-1 and us-west-2: us-east-2",
    ),
    (["--prefix", "Task"], "--prefix 'Task' is invalid: must start with a lowercase letter"),
    (["--prefix", "1task"], "--prefix '1task' is invalid"),
    (["--prefix", "task-"], "--prefix 'task-' is invalid: must not end with a dash"),
    (["--prefix", "t" * 25], "--prefix '" + "t" * 25 + "' is invalid"),
    (["--log-retention-days", "13"], "--log-retention-days '13' is invalid: must be one of 1, 3, 5, 7, 14"),
    (["--log-retention-days", "week"], "--log-retention-days 'week' is invalid"),
    (["--lambda-memory", "64"], "--lambda-memory '64' is invalid: must be an integer from 128 to 10240"),
    (["--lambda-memory", "10241"], "--lambda-memory '10241' is invalid"),
    (["--lambda-memory", "512MB"], "--lambda-memory '512MB' is invalid"),
    (["--lambda-timeout", "0"], "--lambda-timeout '0' is invalid: must be an integer from 1 to 900"),
    (["--lambda-timeout", "901"], "--lambda-timeout '901' is invalid"),
    (["--lambda-timeout", "-5"], "--lambda-timeout '-5' is invalid"),
    (["--max-workers", "0"], "--max-workers '0' is invalid: must be an integer from 1 to 64"),
    (["--endpoint-url", "localhost:5000"], "--endpoint-url 'localhost:5000' is invalid: must be an http(s) URL"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS)
@pytest.mark.parametrize("command", ["deploy", "status", "destroy"])
def test_bad_flag_stops_before_any_aws_call(aws, runtime, cli, calls, command, flags, message):
    extra = ["--yes"] if command in ("deploy", "destroy") else []
    result = cli(command, *extra, *flags)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err
    assert calls.calls == []


def test_bad_environment_variable_names_the_key(aws, runtime, cli, calls, monkeypatch):
    monkeypatch.setenv("LAMBDA_MEMORY_SIZE", "lots")
    result = cli("deploy", "--plan")
    assert result.code == 2
    assert result.err.strip() == (
        "error: LAMBDA_MEMORY_SIZE='lots' (from the environment) is invalid: must be an integer from 128 to 10240"
    )
    assert calls.calls == []


def test_bad_dotenv_value_names_the_key(aws, runtime, cli, calls, tmp_path):
    (tmp_path / ".env").write_text("LOG_RETENTION_DAYS=2\n")
    result = cli("status")
    assert result.code == 2
    assert f"LOG_RETENTION_DAYS='2' (from {tmp_path / '.env'}) is invalid" in result.err


def test_bad_deletion_protection_value(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="DELETION_PROTECTION='maybe' is invalid: must be true or false"):
        load_settings({}, {"DELETION_PROTECTION": "maybe"}, tmp_path)


def test_defaults(tmp_path: Path):
    settings = load_settings({}, {}, tmp_path)
    stack = settings.stack
    assert (stack.env, stack.prefix) == ("dev", "task-mgmt")
    assert (stack.primary_region, stack.secondary_region, stack.witness_region) == (
        "us-east-1",
        "us-west-2",
        "us-east-2",
    )
    assert (stack.log_retention_days, stack.lambda_memory, stack.lambda_timeout) == (7, 512, 60)
    assert stack.deletion_protection is False
    assert settings.state_dir == tmp_path / ".taskmgmt"
    assert settings.max_workers == 8


def test_precedence_is_flag_then_environment_then_dotenv_then_default(tmp_path: Path):
    (tmp_path / ".env").write_text(
        "# comment\nexport LAMBDA_MEMORY_SIZE=1024\nLAMBDA_TIMEOUT='30'\nLOG_RETENTION_DAYS=\"14\"\nENVIRONMENT=\n"
    )
    environ = {"LAMBDA_TIMEOUT": "45", "LOG_RETENTION_DAYS": "30"}
    stack = load_settings({"LOG_RETENTION_DAYS": "90"}, environ, tmp_path).stack
    assert stack.log_retention_days == 90  # flag
    assert stack.lambda_timeout == 45  # environment over .env
    assert stack.lambda_memory == 1024  # .env over default
    assert stack.env == "dev"  # an empty value counts as unset


def test_witness_defaults_to_the_remaining_region_of_the_set(tmp_path: Path):
    stack = load_settings({"PRIMARY_REGION": "us-east-2", "SECONDARY_REGION": "us-west-2"}, {}, tmp_path).stack
    assert stack.witness_region == "us-east-1"
    eu = load_settings({"PRIMARY_REGION": "eu-west-1", "SECONDARY_REGION": "eu-west-2"}, {}, tmp_path).stack
    assert eu.witness_region == "eu-central-1"


def test_deletion_protection_defaults_on_for_prod_and_staging(tmp_path: Path):
    for env, expected in (("prod", True), ("staging", True), ("qa", False)):
        assert load_settings({"ENVIRONMENT": env}, {}, tmp_path).stack.deletion_protection is expected
    assert (
        load_settings({"ENVIRONMENT": "prod", "DELETION_PROTECTION": "false"}, {}, tmp_path).stack.deletion_protection
        is False
    )


def test_state_dir_from_environment(tmp_path: Path):
    settings = load_settings({}, {"TASKMGMT_STATE_DIR": "state"}, tmp_path)
    assert settings.state_dir == tmp_path / "state"


def test_env_example_and_the_readme_document_every_key():
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    table = (root / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for key in DEFAULTS:
        assert f"{key}=" in example, key
        if not key.startswith("AWS_"):  # the AWS CLI's own settings are described below the table
            assert f"| {key} |" in table, key


def test_unknown_option_is_one_line_exit_2(cli):
    result = cli("deploy", "--colour", "red")
    assert result.code == 2
    assert "No such option: --colour" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_help_explains_each_command(cli):
    for command in ("deploy", "status", "destroy", "outputs", "unlock"):
        result = cli(command, "--help")
        assert result.code == 0
        assert "--env" in result.out


def test_help_on_80_columns_shows_every_option_name_whole(cli, monkeypatch):
    from taskmgmt_deploy.cli.main import _command

    monkeypatch.setenv("COLUMNS", "80")
    group = _command()
    commands = [(name,) for name in group.commands] + [
        (name, sub) for name, command in group.commands.items() for sub in getattr(command, "commands", {})
    ]
    assert ("deploy",) in commands and ("sandbox", "start") in commands
    for command in commands:
        result = cli(*command, "--help")
        assert result.code == 0, command
        assert "…" not in result.out, (command, [line for line in result.out.splitlines() if "…" in line])
        assert all(len(line) <= 80 for line in result.out.splitlines()), command
    assert "--no-deletion-protection" in cli("deploy", "--help").out


def test_the_two_flags_of_a_pair_conflict(cli):
    result = cli("deploy", "--plan", "--cluster-policy", "--no-cluster-policy")
    assert (
        result.code == 2 and result.err.strip() == "error: --cluster-policy and --no-cluster-policy conflict: give one"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (("invoke", "--payload", "{not json"), "--payload is invalid: not JSON"),
        (("invoke", "--payload", "@/no/such/file.json"), "--payload '@/no/such/file.json' is invalid"),
        (("serve", "--port", "eighty"), "--port 'eighty' is invalid: must be an integer from 0 to 65535"),
        (("serve", "--port", "99999"), "--port '99999' is invalid: must be an integer from 0 to 65535"),
        (("serve", "--port", "-1"), "--port '-1' is invalid"),
        (("serve", "--cors-origin", "localhost:3000/"), "--cors-origin 'localhost:3000/' is invalid"),
        (("deploy", "--plan", "--sandbox", "--profile", "work"), "--profile and --sandbox conflict"),
    ],
)
def test_bad_command_options_are_one_line_exit_2(aws, runtime, cli, calls, args, message):
    result = cli(*args)
    assert result.code == 2, result.err
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert calls.calls == []


def test_a_flag_is_named_as_typed_even_when_the_environment_sets_the_same_key(cli, monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "dev")
    result = cli("status", "--env", "UPPER")
    assert result.err.strip() == "error: --env 'UPPER' is invalid: must be 1-16 lowercase letters, digits or dashes"


def test_no_arguments_prints_the_help_and_exits_0(cli):
    result = cli()
    assert result.code == 0
    assert "Usage: taskmgmt" in result.out and result.err == ""


def test_version_comes_from_the_package_metadata(cli):
    from importlib.metadata import version

    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"taskmgmt {version('taskmgmt')}"


def test_completion_is_offered(cli):
    result = cli("--show-completion", "bash")
    assert result.code == 0, result.err
    assert "_taskmgmt_completion" in result.out or "complete" in result.out


def test_help_groups_the_commands_in_order_and_shows_types_as_they_are(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    top = cli("--help").out
    panels = [line.split("─ ")[1].split(" ─")[0] for line in top.splitlines() if line.startswith("╭─ ")]
    assert panels == ["Options", "Stack", "From CI", "Try it", "Local", "Repair"]
    commands = [line.split()[1] for line in top.splitlines() if line.startswith("│ ") and line.split()[1].isalpha()]
    assert commands == [
        "deploy",
        "status",
        "destroy",
        "outputs",
        "migrate",
        "logs",
        "preflight",
        "policy",
        "smoke",
        "invoke",
        "serve",
        "psql",
        "sandbox",
        "unlock",
        "state",
    ]
    for args in (("--help",), ("deploy", "--help"), ("destroy", "--help"), ("sandbox", "start", "--help")):
        assert "<bool>" not in cli(*args).out, args
    deploy = cli("deploy", "--help").out
    assert "INT 128-10240" in deploy and "INT 1-900" in deploy and "INT 1-64" in deploy
