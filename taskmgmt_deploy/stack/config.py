"""Settings: flags > environment > .env in the working directory > defaults.

`load_settings` is pure apart from reading `.env`; every rule failure raises ConfigError
naming the key, the value and the rule, before anything talks to AWS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from taskmgmt_deploy.errors import ConfigError
from taskmgmt_deploy.stack.regions import MULTI_REGION, default_witness, region_set

# the retention periods CloudWatch Logs accepts
LOG_RETENTION_VALUES = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
PROTECTED_ENVIRONMENTS = ("prod", "staging")

# key -> default; None means "derived" (see _derived_default)
DEFAULTS: dict[str, str | None] = {
    "ENVIRONMENT": "dev",
    "PRIMARY_REGION": "us-east-1",
    "SECONDARY_REGION": "us-west-2",
    "WITNESS_REGION": None,
    "CLUSTER_NAME_PREFIX": "task-mgmt",
    "LOG_RETENTION_DAYS": "7",
    "LAMBDA_MEMORY_SIZE": "512",
    "LAMBDA_TIMEOUT": "60",
    "DELETION_PROTECTION": None,
    "ALARM_EMAIL": None,
    "KMS_KEY": None,
    "LAMBDA_RESERVED_CONCURRENCY": None,
    "DSQL_CLUSTER_POLICY": None,
    "API_AUTH": "iam",
    "JWT_ISSUER": None,
    "JWT_AUDIENCE": None,
    "JWT_LOGIN_URL": None,
    "CORS_ORIGINS": None,
    "API_THROTTLE_BURST": "100",
    "API_THROTTLE_RATE": "50",
    "TASKMGMT_STATE": None,  # a local directory or s3://bucket/prefix; wins over TASKMGMT_STATE_DIR
    "TASKMGMT_STATE_DIR": ".taskmgmt",
    "TASKMGMT_MAX_WORKERS": "8",
    "AWS_PROFILE": None,
    "AWS_ENDPOINT_URL": None,
    "TASKMGMT_DATABASE_URL": None,
}

_ENV_RE = re.compile(r"^[a-z0-9-]{1,16}$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KMS_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}$")
_KMS_MRK_RE = re.compile(r"^mrk-[0-9a-f]{32}$")
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://|s3:)", re.IGNORECASE)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_STATE_RULE = (
    "must be a local directory or s3://BUCKET/PREFIX, with a bucket name of 3-63 lowercase letters, "
    "digits, dots or dashes"
)


@dataclass(frozen=True)
class S3Url:
    """Where a team's state lives: {prefix}/{env}.json and {prefix}/{env}.lock in one bucket."""

    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_s3_url(raw: str) -> S3Url | None:
    """The bucket and prefix of s3://BUCKET[/PREFIX]; None when `raw` is not of that form."""
    if not raw.startswith("s3://"):
        return None
    bucket, _, prefix = raw[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket or re.fullmatch(r"[\d.]+", bucket):
        return None
    if "//" in prefix or any(part in (".", "..") for part in prefix.split("/")):
        return None
    return S3Url(bucket, prefix)


@dataclass(frozen=True)
class StackConfig:
    """What defines the deployed stack; recorded in the manifest."""

    env: str
    prefix: str
    primary_region: str
    secondary_region: str
    witness_region: str
    log_retention_days: int
    lambda_memory: int
    lambda_timeout: int
    deletion_protection: bool
    # Optional hardening; None (or False) changes nothing.
    alarm_email: str | None = None
    kms_key: str | None = None  # an alias or multi-Region key id, resolved in each region
    reserved_concurrency: int | None = None
    cluster_policy: bool = False
    # The HTTP and WebSocket APIs in front of the function.
    api_auth: str = "iam"  # "iam" (SigV4) or "jwt" (an authorizer on every route)
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    jwt_login_url: str | None = None  # the issuer's hosted login page, for the board
    cors_origins: tuple[str, ...] = ()  # empty: no CORS configuration
    api_throttle_burst: int = 100
    api_throttle_rate: int = 50  # requests per second

    @property
    def regions(self) -> tuple[str, str]:
        return (self.primary_region, self.secondary_region)

    @property
    def stack_name(self) -> str:
        """What every resource name starts with: {prefix}-{env}."""
        return f"{self.prefix}-{self.env}"

    def name(self, suffix: str) -> str:
        return f"{self.stack_name}-{suffix}"

    def tags(self) -> dict[str, str]:
        return {"taskmgmt:env": self.env, "taskmgmt:prefix": self.prefix, "managed-by": "taskmgmt"}

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs: the stack plus where and how to reach it."""

    stack: StackConfig
    state_dir: Path  # local: the manifests and locks (unless state_url), and the sandbox
    max_workers: int = 8
    profile: str | None = None
    endpoint_url: str | None = None
    database_url: str | None = field(default=None, repr=False)
    sandbox: bool = False  # AWS is the sandbox's emulator; the database its PostgreSQL
    state_url: S3Url | None = None  # the manifest and lock live in S3 instead of state_dir

    @property
    def state_where(self) -> str:
        return str(self.state_url) if self.state_url else str(self.state_dir)


def read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}


def resolve(
    flags: Mapping[str, str | None], environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> dict[str, str | None]:
    """Pick each key from the first source that sets it (empty strings count as unset)."""
    values: dict[str, str | None] = {}
    for key, default in DEFAULTS.items():
        for source in (flags, environ, dotenv):
            value = source.get(key)
            if value is not None and value != "":
                values[key] = str(value).strip()
                break
        else:
            values[key] = default
    return values


def load_settings(flags: Mapping[str, str | None], environ: Mapping[str, str], cwd: Path) -> Settings:
    values = resolve(flags, environ, read_dotenv(cwd / ".env"))
    stack = _stack_config(values)
    state_url, state_dir = _state(values)
    return Settings(
        stack=stack,
        state_dir=state_dir if state_dir.is_absolute() else cwd / state_dir,
        state_url=state_url,
        max_workers=_int_in_range(values, "TASKMGMT_MAX_WORKERS", 1, 64),
        profile=values["AWS_PROFILE"],
        endpoint_url=_endpoint_url(values),
        database_url=values["TASKMGMT_DATABASE_URL"],
    )


def _stack_config(values: Mapping[str, str | None]) -> StackConfig:
    env = _matching(values, "ENVIRONMENT", _ENV_RE, "must be 1-16 lowercase letters, digits or dashes")
    prefix = _matching(
        values,
        "CLUSTER_NAME_PREFIX",
        _PREFIX_RE,
        "must start with a lowercase letter and be 1-24 lowercase letters, digits or dashes",
    )
    if prefix.endswith("-"):
        raise ConfigError("CLUSTER_NAME_PREFIX", prefix, "must not end with a dash")
    primary, secondary, witness = _regions(values)
    return StackConfig(
        env=env,
        prefix=prefix,
        primary_region=primary,
        secondary_region=secondary,
        witness_region=witness,
        log_retention_days=_retention(values),
        lambda_memory=_int_in_range(values, "LAMBDA_MEMORY_SIZE", 128, 10240),
        lambda_timeout=_int_in_range(values, "LAMBDA_TIMEOUT", 1, 900),
        deletion_protection=_deletion_protection(values, env),
        alarm_email=_alarm_email(values),
        kms_key=_kms_key(values),
        reserved_concurrency=(
            None
            if values["LAMBDA_RESERVED_CONCURRENCY"] is None
            else _int_in_range(values, "LAMBDA_RESERVED_CONCURRENCY", 1, 100_000)
        ),
        cluster_policy=_flag(values, "DSQL_CLUSTER_POLICY", default=False),
        **_api(values),
    )


def _matching(values: Mapping[str, str | None], key: str, pattern: re.Pattern[str], rule: str) -> str:
    value = values[key] or ""
    if not pattern.match(value):
        raise ConfigError(key, value, rule)
    return value


def _regions(values: Mapping[str, str | None]) -> tuple[str, str, str]:
    primary = values["PRIMARY_REGION"] or ""
    if primary not in MULTI_REGION:
        raise ConfigError(
            "PRIMARY_REGION",
            primary,
            "must be a region where Aurora DSQL supports multi-Region clusters: " + ", ".join(MULTI_REGION),
        )
    same_set = region_set(primary) or ()
    secondary = values["SECONDARY_REGION"] or ""
    if secondary == primary:
        raise ConfigError("SECONDARY_REGION", secondary, f"must differ from PRIMARY_REGION ({primary})")
    if secondary not in same_set:
        raise ConfigError(
            "SECONDARY_REGION",
            secondary,
            f"must be in the DSQL region set of PRIMARY_REGION {primary}: "
            + ", ".join(r for r in same_set if r != primary),
        )
    witness = values["WITNESS_REGION"] or default_witness(primary, secondary) or ""
    if witness in (primary, secondary):
        raise ConfigError(
            "WITNESS_REGION", witness, f"must differ from PRIMARY_REGION ({primary}) and SECONDARY_REGION ({secondary})"
        )
    if witness not in same_set:
        allowed = ", ".join(r for r in same_set if r not in (primary, secondary))
        raise ConfigError(
            "WITNESS_REGION", witness, f"must be in the DSQL region set of {primary} and {secondary}: {allowed}"
        )
    return primary, secondary, witness


def _retention(values: Mapping[str, str | None]) -> int:
    raw = values["LOG_RETENTION_DAYS"] or ""
    if not raw.isdigit() or int(raw) not in LOG_RETENTION_VALUES:
        raise ConfigError("LOG_RETENTION_DAYS", raw, "must be one of " + ", ".join(map(str, LOG_RETENTION_VALUES)))
    return int(raw)


def _int_in_range(values: Mapping[str, str | None], key: str, low: int, high: int) -> int:
    raw = values[key] or ""
    if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
        raise ConfigError(key, raw, f"must be an integer from {low} to {high}")
    return int(raw)


def _deletion_protection(values: Mapping[str, str | None], env: str) -> bool:
    return _flag(values, "DELETION_PROTECTION", default=env in PROTECTED_ENVIRONMENTS)


def _flag(values: Mapping[str, str | None], key: str, default: bool) -> bool:
    raw = values[key]
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, raw, "must be true or false")


def _alarm_email(values: Mapping[str, str | None]) -> str | None:
    raw = values["ALARM_EMAIL"]
    if raw is not None and (len(raw) > 254 or not _EMAIL_RE.match(raw)):
        raise ConfigError("ALARM_EMAIL", raw, "must be one email address, such as ops@example.com")
    return raw


def _kms_key(values: Mapping[str, str | None]) -> str | None:
    """An alias or a multi-Region key id: a key id or ARN names one region, and the stack has two."""
    raw = values["KMS_KEY"]
    if raw is None:
        return None
    if raw.startswith("alias/aws/"):
        raise ConfigError(
            "KMS_KEY",
            raw,
            "is an AWS managed key: CloudWatch alarms cannot publish to a topic encrypted with it "
            "(every alarm would be silenced); give a customer managed key",
        )
    if not (_KMS_ALIAS_RE.match(raw) or _KMS_MRK_RE.match(raw)):
        raise ConfigError(
            "KMS_KEY",
            raw,
            "must be an alias (alias/NAME) that exists in both regions, or a multi-Region key id "
            "(mrk-...) replicated to both: KMS keys are regional and the stack spans two regions",
        )
    return raw


API_AUTH_VALUES = ("iam", "jwt")
_ORIGIN_RE = re.compile(r"^(\*|https?://[a-zA-Z0-9.-]+(:\d{1,5})?)$")


def _api(values: Mapping[str, str | None]) -> dict[str, object]:
    """The APIs' settings; JWT_* are required with API_AUTH=jwt and refused without it."""
    auth = (values["API_AUTH"] or "").lower()
    if auth not in API_AUTH_VALUES:
        raise ConfigError("API_AUTH", values["API_AUTH"] or "", "must be iam (SigV4) or jwt")
    jwt_keys = ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_LOGIN_URL")
    if auth == "iam":
        for key in jwt_keys:
            if values[key] is not None:
                raise ConfigError(key, values[key] or "", "is used only with API_AUTH=jwt")
        issuer, audience, login = None, (), None
    else:
        issuer = _https_url(values, "JWT_ISSUER", required=True)
        audience = _listed(values, "JWT_AUDIENCE")
        if not audience:
            raise ConfigError("JWT_AUDIENCE", "", "is required with API_AUTH=jwt: the client ids tokens are issued to")
        login = _https_url(values, "JWT_LOGIN_URL", required=False)
    origins = _listed(values, "CORS_ORIGINS")
    for origin in origins:
        if not _ORIGIN_RE.match(origin):
            raise ConfigError(
                "CORS_ORIGINS", origin, "must be * or origins such as https://app.example.com, comma-separated"
            )
    return {
        "api_auth": auth,
        "jwt_issuer": issuer,
        "jwt_audience": audience,
        "jwt_login_url": login,
        "cors_origins": origins,
        "api_throttle_burst": _int_in_range(values, "API_THROTTLE_BURST", 0, 5000),
        "api_throttle_rate": _int_in_range(values, "API_THROTTLE_RATE", 0, 10000),
    }


def _listed(values: Mapping[str, str | None], key: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (values[key] or "").split(",") if part.strip())


def _https_url(values: Mapping[str, str | None], key: str, required: bool) -> str | None:
    raw = values[key]
    if raw is None:
        if required:
            raise ConfigError(key, "", "is required with API_AUTH=jwt")
        return None
    parsed = urlparse(raw)
    # API Gateway accepts only an https issuer; the sandbox's local issuer is http on loopback
    if not parsed.netloc or not (
        parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost"))
    ):
        raise ConfigError(key, raw, "must be an https URL such as https://cognito-idp.us-east-1.amazonaws.com/POOL_ID")
    return raw


def _state(values: Mapping[str, str | None]) -> tuple[S3Url | None, Path]:
    """TASKMGMT_STATE: a local directory or s3://BUCKET/PREFIX. TASKMGMT_STATE_DIR, its older
    local-only form, still names the local directory (the sandbox lives there too)."""
    local = Path(values["TASKMGMT_STATE_DIR"] or ".taskmgmt")
    raw = values["TASKMGMT_STATE"]
    if raw is None:
        return None, local
    if not _URL_RE.match(raw):
        return None, Path(raw)
    url = parse_s3_url(raw)
    if url is None:
        raise ConfigError("TASKMGMT_STATE", raw, _STATE_RULE)
    return url, local


def _endpoint_url(values: Mapping[str, str | None]) -> str | None:
    raw = values["AWS_ENDPOINT_URL"]
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError("AWS_ENDPOINT_URL", raw, "must be an http(s) URL such as http://127.0.0.1:5000")
    return raw
