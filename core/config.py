"""Settings: defaults, then an optional TOML file, then ``GRIDLINE_*`` environment variables.

One flat namespace so that every setting has exactly one environment variable (``GRIDLINE_<NAME>``) and one
TOML key (``<name>`` at the top level or ``[section] name`` flattened as ``section_name``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "GRIDLINE_"
SECRET_MARKERS = ("secret", "token", "password", "aes_key")
QUERY_SECRETS = ("shift_lead_wecom",)  # robot URLs whose query (key=…) is the credential
STARTTLS = ("true", "false")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and the source."""


def _default_database_url() -> str:
    return f"sqlite:///{Path('var') / 'gridline.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: str = "var"
    district_code: str = "339901"
    default_area_class: str = "B"
    geocoder_fallbacks: str = ""
    nominatim_user_agent: str = "gridline"
    nominatim_domain: str = "nominatim.openstreetmap.org"
    baidu_api_key: str = ""
    log_level: str = "INFO"
    work_windows: str = "08:30-12:00,13:30-17:30"
    extra_holidays: str = ""
    extra_workdays: str = ""
    stage_hours: str = "受理=1,核实=2,立案=0.5,派遣=0.5,核查=2,结案=1"
    extension_quota: float = 0.03
    duplicate_radius_m: float = 50.0
    duplicate_window_days: float = 7.0
    auto_accept_confidence: float = 0.0
    auto_dispatch_codes: str = ""
    classifier_model: str = ""  # empty: models/classifier.npz of this checkout; "keyword" for the keyword classifier
    classifier_auto: float = 0.0  # 0: the thresholds stored in the model file
    classifier_review: float = 0.0
    classifier_margin: float = 0.0
    scope_file: str = ""  # a city's scope.toml: topics it takes in or words differently (core/data/scope.toml)
    wechat_token: str = ""
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_aes_key: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_template_id: str = ""
    telegram_token: str = ""
    telegram_secret: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    vosk_model: str = ""
    prompts_dir: str = ""  # empty: <data_dir>/prompts
    console_idle_minutes: int = 30  # a console session unused this long ends
    map_tile_url: str = ""  # optional base-map tiles for the console's maps ({z}/{x}/{y}); empty: the grid alone
    public_url: str = "http://127.0.0.1:8080"  # the console as the departments reach it: the link in every notice
    shift_lead_telegram: str = ""  # the 值班长's Telegram chat id for limit alerts (through telegram_token)
    shift_lead_wecom: str = ""  # the 值班长's 企业微信 group robot URL for limit alerts
    smtp_host: str = ""  # empty: no e-mail notices
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "gridline@localhost"
    smtp_starttls: str = "false"  # true: upgrade the connection with STARTTLS before logging in

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with secrets and database passwords hidden, for printing."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if any(m in f.name for m in SECRET_MARKERS) or f.name.endswith("_api_key"):
                value = "***" if value else ""
            elif f.name == "database_url":
                value = mask_url(value)
            elif f.name in QUERY_SECRETS:
                value = mask_query(value)
            out[f.name] = value
        return out


def mask_url(url: str) -> str:
    """Hide the password of a database URL (``scheme://user:pw@host`` → ``scheme://user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _pw = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def mask_query(url: str) -> str:
    """Hide the values of a URL's query (a robot's ``key=`` or ``access_token=`` is its credential)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    names = [part.partition("=")[0] for part in query.split("&") if part]
    return base + "?" + "&".join(f"{name}=***" for name in names)


def _coerce(name: str, raw: Any, kind: type, source: str) -> Any:
    if kind in (int, float):
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {name} 应为{'整数' if kind is int else '数值'}，得到 {raw!r}") from None
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{source}: {name} 应为有限数值，得到 {raw!r}")
        return value
    if not isinstance(raw, str | int | float):
        raise ConfigError(f"{source}: {name} 应为字符串，得到 {type(raw).__name__}")
    return str(raw)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_").lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_settings(config_file: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the effective settings; unknown keys and bad values raise ConfigError naming them."""
    environ = dict(os.environ if environ is None else environ)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    types = {name: {"int": int, "float": float}.get(str(f.type), str) for name, f in fields.items()}
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: 配置文件不存在") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: TOML 格式错误: {exc}") from None
        for name, raw in _flatten(table).items():
            if name not in fields:
                raise ConfigError(f"{path}: 未知配置项 {name}")
            values[name] = _coerce(name, raw, types[name], str(path))
    for name in fields:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if env_name in environ and environ[env_name] != "":
            values[name] = _coerce(name, environ[env_name], types[name], env_name)
    if "smtp_starttls" in values:  # TOML's `starttls = true` arrives as "True"
        values["smtp_starttls"] = values["smtp_starttls"].lower()
    settings = Settings(**values)
    if settings.smtp_starttls not in STARTTLS:
        raise ConfigError(f"smtp_starttls 应为 true 或 false，得到 {settings.smtp_starttls!r}")
    if not settings.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"public_url 应以 http:// 或 https:// 开头，得到 {settings.public_url!r}")
    if settings.default_area_class not in ("A", "B", "C"):
        raise ConfigError(f"default_area_class 应为 A、B 或 C，得到 {settings.default_area_class!r}")
    return settings
