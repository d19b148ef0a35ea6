"""``clinsum providers``: which providers can run here, and which can run offline.

It looks without touching: SDKs are found with ``importlib.util.find_spec`` (never
imported), credentials are reported as set or not (never printed), hosts are shown
without any user:password part, and nothing is sent over the network unless
``--probe`` asks the Ollama host whether it runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from clinsum.cli import app
from clinsum.cli.common import ListFormat, reported_errors, shown, stdout, write_stdout

LANGCHAIN_INTEGRATIONS = {
    "anthropic": "langchain_anthropic",
    "openai / azure_openai": "langchain_openai",
    "bedrock / bedrock_converse": "langchain_aws",
    "google_vertexai": "langchain_google_vertexai",
    "google_genai": "langchain_google_genai",
    "ollama": "langchain_ollama",
    "mistralai": "langchain_mistralai",
    "groq": "langchain_groq",
}
"""init_chat_model provider names -> the integration module that serves them (a selection)."""


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    target: str
    """The ``module:factory`` the registry builds it with."""
    sdk: str | None
    """The module the provider needs (None: nothing beyond clinsum)."""
    sdk_installed: bool | None
    configured: bool | None
    """Credentials/host present (None: unknown, for plugins)."""
    detail: str
    local: bool | None
    """Usable with ``--offline`` (None: unknown)."""
    fix: str | None = None
    origin: str = "built in"
    """``built in``, ``registered`` (in this process) or ``entry point <distribution> <version>``."""


def module_installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (only its parent packages)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def safe_url(url: str) -> str:
    """A URL without user:password, query or fragment: safe to print."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def adc_file(env: Mapping[str, str], home: Path) -> Path | None:
    """The Application Default Credentials file google-auth would use, if it exists."""
    explicit = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    if env.get("CLOUDSDK_CONFIG"):
        config = Path(env["CLOUDSDK_CONFIG"])
    elif os.name == "nt" and env.get("APPDATA"):
        config = Path(env["APPDATA"]) / "gcloud"
    else:
        config = home / ".config" / "gcloud"
    candidate = config / "application_default_credentials.json"
    return candidate if candidate.is_file() else None


def _anthropic(env: Mapping[str, str]) -> tuple[bool, str, str | None]:
    keys = [k for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN") if env.get(k)]
    detail = f"{keys[0]} set" if keys else "ANTHROPIC_API_KEY not set"
    if env.get("ANTHROPIC_BASE_URL"):
        detail += f"; base URL {safe_url(env['ANTHROPIC_BASE_URL'])}"
    return bool(keys), detail, None if keys else "export ANTHROPIC_API_KEY=..."


def _vertex(env: Mapping[str, str], home: Path) -> tuple[bool, str, str | None]:
    adc = adc_file(env, home)
    project = env.get("GOOGLE_CLOUD_PROJECT")
    parts = [
        "ADC file present" if adc else (
            "GOOGLE_APPLICATION_CREDENTIALS points at no file" if env.get("GOOGLE_APPLICATION_CREDENTIALS")
            else "no ADC file"),
        f"project {project}" if project else "GOOGLE_CLOUD_PROJECT not set (the ADC project is used if any)",
        f"location {env.get('GOOGLE_CLOUD_LOCATION') or 'global (default)'}",
    ]
    fix = None
    if not adc:
        fix = "gcloud auth application-default login"
    elif not project:
        fix = "export GOOGLE_CLOUD_PROJECT=..."
    return adc is not None, "; ".join(parts), fix


def _ollama(env: Mapping[str, str]) -> tuple[str, str, bool]:
    """The host (safe to print), a description, and whether it is loopback."""
    from clinsum.offline import is_loopback_host

    raw = env.get("OLLAMA_HOST")
    host = safe_url(raw) if raw else "http://127.0.0.1:11434"
    if raw and "://" not in raw and urlsplit(host).port is None:
        host += ":11434"  # the ollama SDK's default port for a bare host
    local = is_loopback_host(host)
    source = "OLLAMA_HOST" if raw else "default"
    where = "loopback" if local else "NOT loopback: not usable offline"
    return host, f"host {host} ({source}, {where}); not probed", local


def probe_ollama(host: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Ask the Ollama server for its version and pulled models (``--probe`` only)."""
    import httpx

    try:
        version = httpx.get(f"{host}/api/version", timeout=timeout_s).json().get("version", "?")
        models = [m.get("name", "?") for m in httpx.get(f"{host}/api/tags", timeout=timeout_s).json()
                  .get("models", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return False, f"not reachable ({type(exc).__name__})"
    shown = ", ".join(models[:5]) + (", ..." if len(models) > 5 else "")
    return True, f"running, Ollama {version}, {len(models)} model(s) pulled" + (f": {shown}" if shown else "")


def _langchain(env: Mapping[str, str]) -> str:
    found = [name for name, module in LANGCHAIN_INTEGRATIONS.items() if module_installed(module)]
    detail = "integrations: " + (", ".join(found) if found else "none installed")
    detail += "; credentials per integration; offline only as langchain:ollama:... on a loopback host"
    if any(env.get(v, "").lower() == "true" for v in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")):
        detail += "; WARNING: LangSmith tracing is on and would send every prompt to LangSmith"
    return detail


def provider_statuses(env: Mapping[str, str] | None = None, home: Path | None = None,
                      *, probe: bool = False) -> list[ProviderStatus]:
    """One status per provider the registry knows (built-in and plugins).

    Nothing touches the network unless ``probe``: then the Ollama host is asked for its
    version and models.
    """
    from clinsum.providers import registry

    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    statuses = []
    for name, target in registry.available().items():
        origin = registry.origin(name)
        if origin != "built in":  # a plugin, even one that takes a built-in name, is shown as itself
            statuses.append(_plugin(name, target, origin))
            continue
        if name == "extractive":
            status = ProviderStatus(name, target, None, None, True, "built in; copies sentences of the note", True)
        elif name == "replay":
            status = ProviderStatus(name, target, None, None, True, "built in; serves stored summaries", True)
        elif name == "anthropic":
            ok, detail, fix = _anthropic(env)
            status = ProviderStatus(name, target, "anthropic", module_installed("anthropic"), ok, detail, False,
                                    fix)
        elif name == "vertex":
            ok, detail, fix = _vertex(env, home)
            status = ProviderStatus(name, target, "google.genai", module_installed("google.genai"), ok, detail,
                                    False, fix)
        elif name == "langchain":
            status = ProviderStatus(name, target, "langchain", module_installed("langchain"), None,
                                    _langchain(env), None)
        elif name == "ollama":
            host, detail, local = _ollama(env)
            ok = True  # a host is always configured: OLLAMA_HOST or the default
            fix = None if local else "export OLLAMA_HOST=http://127.0.0.1:11434 for offline use"
            if probe:
                ok, answer = probe_ollama(host)
                detail = detail.replace("not probed", answer)
                fix = fix if ok else "start it with `ollama serve`"
            status = ProviderStatus(name, target, "ollama", module_installed("ollama"), ok, detail, local, fix)
        else:  # a name in BUILTIN that this listing does not know yet
            status = ProviderStatus(name, target, None, None, None, "built in", None)
        if status.sdk is not None and status.sdk_installed is False:
            extra = name if name in ("anthropic", "vertex", "langchain", "ollama") else None
            fix = f"pip install 'clinsum[{extra}]'" if extra else f"install the package providing {status.sdk}"
            status = ProviderStatus(**{**asdict(status), "fix": fix})
        statuses.append(status)
    return statuses


def _plugin(name: str, target: str, origin: str) -> ProviderStatus:
    """A plugin, described without importing it (an entry point's module may import an SDK).

    A provider registered in this process is already imported: its factory (or the class
    it builds) may say ``local = True`` and whether it has ``batch`` (the batch interface).
    """
    module = target.partition(":")[0]
    local: bool | None = None
    detail = f"plugin ({origin}); its own credential checks apply"
    if origin == "registered":
        from clinsum.providers import registry

        factory = registry.registered(name)
        declared = getattr(factory, "local", None)
        local = declared if isinstance(declared, bool) else None
        if callable(getattr(factory, "batch", None)):
            detail += "; can batch (--batch)"
    installed = module_installed(module)
    return ProviderStatus(name, target, module, installed, None, detail, local,
                          None if installed else f"install the package providing {module}", origin)


def _mark(value: bool | None) -> str:
    return {True: "[green]yes[/green]", False: "[red]no[/red]", None: "[dim]?[/dim]"}[value]


@app.command("providers")
def providers(
    format: Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")] = ListFormat.table,
    probe: Annotated[bool, typer.Option(
        "--probe", help="Ask the Ollama host whether it runs and which models it has.")] = False,
) -> None:
    """List the providers, whether their SDK is installed, whether credentials or a host are
    configured (secrets are never shown), and which can run offline. Nothing is sent over
    the network, except to the Ollama host with --probe."""
    with reported_errors():
        statuses = provider_statuses(probe=probe)
    if format is ListFormat.json:
        write_stdout(json.dumps([asdict(s) for s in statuses], indent=2))
        return
    from rich.table import Table

    table = Table(title="clinsum providers")
    for column in ("provider", "from", "SDK", "configured", "offline"):
        table.add_column(column, no_wrap=True)
    table.add_column("details", overflow="fold")
    for s in statuses:
        sdk = "built in" if s.sdk is None else f"{_mark(s.sdk_installed)} {shown(s.sdk)}"
        detail = shown(s.detail) + (f"\n[yellow]fix:[/yellow] {shown(s.fix)}" if s.fix else "")
        table.add_row(shown(s.provider), shown(s.origin), sdk, _mark(s.configured), _mark(s.local), detail)
    stdout.print(table)
